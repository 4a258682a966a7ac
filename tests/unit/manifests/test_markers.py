"""Marker comments (``# {"$imagepolicy": "REF"}``) and the ImagePolicy documents they name."""

from __future__ import annotations

from pathlib import Path

import pytest

from automator.manifests import Change, apply, render, scan
from automator.manifests._markers import Ref, parse_ref
from automator.manifests._yaml import Problem
from tests.unit.manifests.helpers import deployment, write

POLICY = """\
apiVersion: automator.gitops.io/v1
kind: ImagePolicy
metadata:
  name: {name}
spec:
  image: ghcr.io/org/{name}
  policy: semver:^1
"""


def _policies(root: Path, *names: str, rel: str = "policies.yaml") -> None:
    write(root, rel, "---\n".join(POLICY.format(name=name) for name in names))


def _messages(root: Path) -> list[str]:
    return [str(error) for error in scan(root).errors]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("app", Ref(None, "app", "image", "app")),
        ("app:tag", Ref(None, "app", "tag", "app:tag")),
        ("app:name", Ref(None, "app", "name", "app:name")),
        ("app:digest", Ref(None, "app", "digest", "app:digest")),
        ("flux-system:app", Ref("flux-system", "app", "image", "flux-system:app")),
        ("flux-system:app:tag", Ref("flux-system", "app", "tag", "flux-system:app:tag")),
        ("flux-system:app:digest", Ref("flux-system", "app", "digest", "flux-system:app:digest")),
        ("tag", Ref(None, "tag", "image", "tag")),
        ("tag:app", Ref("tag", "app", "image", "tag:app")),
        ("ns:tag:name", Ref("ns", "tag", "name", "ns:tag:name")),
        ("app.v2:image", Ref("app.v2", "image", "image", "app.v2:image")),
    ],
)
def test_a_ref_is_namespace_name_and_part_with_two_segments_read_by_the_second(
    text: str, expected: Ref
) -> None:
    assert parse_ref(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is not [NAMESPACE:]NAME[:PART]"),
        (":app", "is not [NAMESPACE:]NAME[:PART]"),
        ("app:", "is not [NAMESPACE:]NAME[:PART]"),
        ("ns::tag", "is not [NAMESPACE:]NAME[:PART]"),
        ("a:b:c:d", "is not [NAMESPACE:]NAME[:PART]"),
        ("my app", "is not [NAMESPACE:]NAME[:PART]"),
        ("ns:app:latest", "ends in 'latest', which is not a part"),
        ("ns:app:Tag", "ends in 'Tag', which is not a part"),
    ],
)
def test_a_malformed_ref_is_a_problem_naming_the_grammar(text: str, message: str) -> None:
    with pytest.raises(Problem) as caught:
        parse_ref(text)

    assert message in caught.value.message


def test_a_file_with_only_markers_passes_the_screening_and_is_scanned(tmp_path: Path) -> None:
    write(tmp_path, "values.yaml", 'image:\n  tag: 1.0.0 # {"$imagepolicy": "app:tag"}\n')
    _policies(tmp_path, "app", rel="zz/policies.yaml")

    result = scan(tmp_path)

    assert result.errors == ()
    (field,) = result.fields
    assert (field.file, field.kind, field.namespace, field.name, field.container) == (
        "values.yaml",
        "-",
        None,
        "values",
        "image.tag",
    )
    assert (field.image, field.part, field.repository, field.marker, field.source) == (
        "1.0.0",
        "tag",
        "ghcr.io/org/app",
        "app:tag",
        "$imagepolicy app:tag",
    )
    assert (field.policy, field.filter, field.extract, field.line) == ("semver:^1", None, None, 2)
    assert field.ref == "-/-/values"


def test_an_imagepolicy_gives_its_spec_to_the_marker_fields(tmp_path: Path) -> None:
    write(
        tmp_path,
        "policy.yaml",
        "apiVersion: automator.gitops.io/v1\nkind: ImagePolicy\n"
        "metadata: {name: app, namespace: team}\n"
        "spec:\n  image: ghcr.io/org/app\n  policy: numerical:asc\n"
        "  filter: '^main-(?P<ts>[0-9]+)$'\n  extract: $ts\n"
        "  ignoreTags: ['*-debug', latest]\n  pinDigest: true\n  platform: linux/arm/v7\n",
    )
    write(tmp_path, "v.yaml", 'tag: main-1 # {"$imagepolicy": "team:app:tag"}\n')

    (field,) = scan(tmp_path).fields

    assert (field.policy, field.filter, field.extract) == (
        "numerical:asc",
        "^main-(?P<ts>[0-9]+)$",
        "$ts",
    )
    assert (field.ignore_tags, field.pin_digest, field.platform) == (
        ("*-debug", "latest"),
        True,
        "linux/arm/v7",
    )


@pytest.mark.parametrize(
    ("comment", "message"),
    [
        ('{"$imagepolicy": app}', "is not valid JSON (Expecting value, column 18)"),
        ('{"$imagepolicy": "app"', "is not valid JSON"),
        ("{'$imagepolicy': 'app'}", "is not valid JSON"),
        ('see {"$imagepolicy": "app"}', "is not valid JSON"),
        ('{"$imagepolicy": 1}', "is not a JSON object with the single string key"),
        ('{"$imagepolicy": "app", "x": 1}', "is not a JSON object with the single string key"),
        ('["$imagepolicy"]', "is not a JSON object with the single string key"),
        ('{"$imagepolicy": "ns:app:latest"}', "ends in 'latest', which is not a part"),
    ],
)
def test_a_malformed_marker_is_reported_with_its_line_and_the_fix_and_the_rest_still_scanned(
    tmp_path: Path, comment: str, message: str
) -> None:
    write(tmp_path, "a.yaml", f"image:\n  tag: 1.0.0 # {comment}\n  other: x\n")
    write(tmp_path, "b.yaml", 'tag: 1.0.0 # {"$imagepolicy": "app:tag"}\n')
    _policies(tmp_path, "app")

    result = scan(tmp_path)

    assert [f.file for f in result.fields] == ["b.yaml"]
    (error,) = (str(e) for e in result.errors)
    assert error.startswith("a.yaml:2: -/-/a field image.tag: ")
    assert message in error
    assert '# {"$imagepolicy": "NAME"}' in error


def test_a_marker_naming_an_unknown_policy_lists_the_available_ones(tmp_path: Path) -> None:
    write(tmp_path, "apps/values.yaml", 'image:\n  tag: 1.0.0 # {"$imagepolicy": "ap:tag"}\n')
    _policies(tmp_path, "web", "app")
    write(
        tmp_path,
        "team.yaml",
        POLICY.format(name="db").replace("  name: db\n", "  name: db\n  namespace: team\n"),
    )

    (error,) = _messages(tmp_path)

    assert error.startswith("apps/values.yaml:2: -/-/values field image.tag: ")
    assert "refers to ImagePolicy 'ap', which does not exist under the scanned paths" in error
    assert "(ImagePolicies: app, team:db, web)" in error
    assert "fix the name in the marker or add the ImagePolicy" in error


def test_a_namespaced_ref_needs_the_policy_in_that_namespace(tmp_path: Path) -> None:
    _policies(tmp_path, "app")
    write(tmp_path, "v.yaml", 'image: a:1.0.0 # {"$imagepolicy": "prod:app"}\n')

    (error,) = _messages(tmp_path)

    assert "refers to ImagePolicy 'prod:app', which does not exist" in error
    assert "(ImagePolicies: app)" in error


def test_a_bare_name_shared_by_several_namespaces_prefers_the_documents_own_then_none(
    tmp_path: Path,
) -> None:
    for namespace in ("a", "b"):
        write(
            tmp_path,
            f"p-{namespace}.yaml",
            POLICY.format(name="app").replace(
                "  name: app\n", f"  name: app\n  namespace: {namespace}\n"
            ),
        )
    marker = 'spec:\n  image: x:1.0.0 # {"$imagepolicy": "app"}\n'
    write(tmp_path, "in-b.yaml", "kind: Thing\nmetadata: {name: t, namespace: b}\n" + marker)
    write(tmp_path, "nowhere.yaml", marker)

    result = scan(tmp_path)

    assert [(f.file, f.repository) for f in result.fields] == [("in-b.yaml", "ghcr.io/org/app")]
    (error,) = (str(e) for e in result.errors)
    assert error.startswith("nowhere.yaml:2: ")
    assert "ImagePolicy name 'app' is ambiguous (policies: a:app, b:app)" in error
    assert "write NAMESPACE:NAME in the marker" in error

    _policies(tmp_path, "app")
    assert [f.file for f in scan(tmp_path).fields] == ["in-b.yaml", "nowhere.yaml"]


_VALID = POLICY.format(name="app")


@pytest.mark.parametrize(
    ("document", "where", "expected"),
    [
        (
            _VALID.replace("  policy:", "  polcy:"),
            "p.yaml:5: ImagePolicy app:",
            "spec: 'policy' is a required property (add it)",
        ),
        (
            _VALID.replace("  policy:", "  polcy:"),
            "p.yaml:5: ImagePolicy app:",
            "spec.polcy (line 7): Additional properties are not allowed ('polcy' was unexpected)"
            " (remove it or fix its spelling; allowed keys here: extract, filter, ignoreTags,",
        ),
        (
            _VALID.replace("semver:^1", "latest"),
            "p.yaml:7: ImagePolicy app:",
            "spec.policy: 'latest' does not match",
        ),
        (
            _VALID + "  extract: $ts\n",
            "p.yaml:5: ImagePolicy app:",
            "spec: 'filter' is a dependency of 'extract' (extract compares groups of the filter "
            "regex: add spec.filter or drop extract)",
        ),
        (
            _VALID.replace("/v1", "/v2"),
            "p.yaml:1: ImagePolicy app:",
            "apiVersion: 'automator.gitops.io/v1' was expected (set it to automator.gitops.io/v1)",
        ),
        (
            _VALID + "  ignoreTags: '*-debug'\n",
            "p.yaml:8: ImagePolicy app:",
            "spec.ignoreTags: '*-debug' is not of type 'array'",
        ),
        (
            _VALID + "  ignoreTags: [a, '']\n",
            "p.yaml:8: ImagePolicy app:",
            "spec.ignoreTags[1]: '' should be non-empty",
        ),
        (
            _VALID + '  pinDigest: "true"\n',
            "p.yaml:8: ImagePolicy app:",
            "spec.pinDigest: 'true' is not of type 'boolean'",
        ),
        (
            _VALID + "  platform: arm64\n",
            "p.yaml:8: ImagePolicy app:",
            "spec.platform: 'arm64' does not match",
        ),
        (
            _VALID.replace("name: app", "name: My_App"),
            "p.yaml:4: ImagePolicy My_App:",
            "metadata.name: 'My_App' does not match",
        ),
        (
            _VALID.replace("  name: app\n", "  namespace: x\n"),
            "p.yaml:3: ImagePolicy (without a string metadata.name):",
            "metadata: 'name' is a required property",
        ),
    ],
)
def test_an_invalid_imagepolicy_is_reported_with_line_name_path_and_fix(
    tmp_path: Path, document: str, where: str, expected: str
) -> None:
    write(tmp_path, "p.yaml", document)

    (error,) = _messages(tmp_path)

    assert error.startswith(where + " does not match the ImagePolicy schema: ")
    assert expected in error
    assert error.endswith(
        "fix the document (schema: policies/imagepolicy.schema.json; "
        "examples: policies/examples.yaml)"
    )


def test_a_marker_naming_an_invalid_policy_is_reported_and_not_applied(tmp_path: Path) -> None:
    write(tmp_path, "p.yaml", _VALID.replace("semver:^1", "sometimes"))
    write(tmp_path, "v.yaml", 'tag: 1.0.0 # {"$imagepolicy": "app:tag"}\n')

    result = scan(tmp_path)

    assert result.fields == ()
    assert len(result.errors) == 2
    assert str(result.errors[0]).startswith("p.yaml:7: ImagePolicy app: does not match")
    assert str(result.errors[1]) == (
        "v.yaml:1: -/-/v field tag: refers to ImagePolicy 'app', which is invalid "
        "(see the error for p.yaml): fix the ImagePolicy"
    )


def test_a_policy_defined_twice_is_reported_and_markers_naming_it_are_not_applied(
    tmp_path: Path,
) -> None:
    _policies(tmp_path, "app", rel="a.yaml")
    _policies(tmp_path, "app", rel="b.yaml")
    write(tmp_path, "v.yaml", 'tag: 1.0.0 # {"$imagepolicy": "app:tag"}\n')

    result = scan(tmp_path)

    assert result.fields == ()
    messages = [str(e) for e in result.errors]
    assert messages[0] == (
        "b.yaml:4: ImagePolicy app: is defined twice (also at a.yaml:4): rename or remove "
        "one; markers naming it are not applied"
    )
    assert (
        "refers to ImagePolicy 'app', which is defined more than once (a.yaml:4, b.yaml:4)"
        in (messages[1])
    )


def test_flux_imagepolicies_are_not_ours_and_are_skipped_silently(tmp_path: Path) -> None:
    write(
        tmp_path,
        "flux.yaml",
        "apiVersion: image.toolkit.fluxcd.io/v1beta2\nkind: ImagePolicy\n"
        "metadata: {name: app}\nspec: {imageRepositoryRef: {name: app}, policy: {semver: "
        "{range: 1.x}}}\n",
    )

    assert scan(tmp_path) == scan(tmp_path / ".")
    assert scan(tmp_path).errors == ()


def test_the_policies_folder_examples_are_valid(tmp_path: Path) -> None:
    examples = Path(__file__).parents[3] / "policies" / "examples.yaml"
    write(tmp_path, "examples.yaml", examples.read_bytes())
    write(
        tmp_path,
        "v.yaml",
        'a: x:1 # {"$imagepolicy": "app"}\nb: x:1 # {"$imagepolicy": "app-main"}\n',
    )

    result = scan(tmp_path)

    assert result.errors == ()
    assert [f.policy for f in result.fields] == ["semver:^1.0", "numerical:asc"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'image: # {"$imagepolicy": "app"}\n  tag: 1.0.0\n',
            "v.yaml:1: marker: this $imagepolicy comment does not follow a value on its line",
        ),
        (
            'images: [a:1, b:1] # {"$imagepolicy": "app"}\n',
            "v.yaml:1: marker: this $imagepolicy comment does not follow a value on its line",
        ),
        (
            'x: 1\n\nimages:\n  - {image: a:1} # {"$imagepolicy": "app"}\n',
            "v.yaml:4: marker: this $imagepolicy comment does not follow a value on its line",
        ),
        (
            'x: 1\ntag: # {"$imagepolicy": "app:tag"}\n',
            "v.yaml:2: marker: this $imagepolicy comment does not follow a value on its line",
        ),
    ],
)
def test_a_marker_that_follows_no_value_is_reported(
    tmp_path: Path, text: str, message: str
) -> None:
    _policies(tmp_path, "app")
    write(tmp_path, "v.yaml", text)

    (error,) = _messages(tmp_path)

    assert error.startswith(message)
    assert "right after the single-line value it updates" in error


def test_commented_out_markers_and_markers_quoted_in_text_are_not_markers(tmp_path: Path) -> None:
    _policies(tmp_path, "app")
    write(
        tmp_path,
        "v.yaml",
        '# tag: 1.0.0 # {"$imagepolicy": "app:tag"}\n'
        'doc: |\n  write tag: 1 # {"$imagepolicy": "app:tag"}\n'
        'quoted: "a # {\\"$imagepolicy\\": \\"app\\"}"\n'
        '  # {"$imagepolicy": "app"}\n',
    )

    result = scan(tmp_path)

    assert result == scan(tmp_path)
    assert (result.fields, result.errors) == ((), ())


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1.2", "the value '1.2' reads as a YAML float, not a string"),
        ("10", "the value '10' reads as a YAML int, not a string"),
        ("true", "the value 'true' reads as a YAML bool, not a string"),
        ("~", "reads as a YAML null, not a string"),
        ('"1.2\\u0033"', "with escape sequences"),
        ("ghcr.io/org/app", "the marker says this value is a tag, but 'ghcr.io/org/app' is not"),
    ],
)
def test_a_marker_on_a_value_that_is_not_a_plain_single_line_tag_is_reported(
    tmp_path: Path, value: str, message: str
) -> None:
    _policies(tmp_path, "app")
    write(tmp_path, "v.yaml", f'image:\n  tag: {value} # {{"$imagepolicy": "app:tag"}}\n')

    result = scan(tmp_path)

    assert result.fields == ()
    (error,) = (str(e) for e in result.errors)
    assert error.startswith("v.yaml:2: -/-/v field image.tag: ")
    assert message in error


def test_a_digest_marker_needs_a_digest(tmp_path: Path) -> None:
    _policies(tmp_path, "app")
    write(tmp_path, "v.yaml", 'digest: v1.0 # {"$imagepolicy": "app:digest"}\n')

    (error,) = _messages(tmp_path)

    assert "the marker says this value is a digest, but 'v1.0' is not one" in error


def test_a_marker_and_the_containers_own_policy_annotation_conflict_and_neither_applies(
    tmp_path: Path,
) -> None:
    _policies(tmp_path, "app")
    annotations = {
        "automator.gitops.io/automated": "true",
        "automator.gitops.io/policy.app": "semver:^2",
        "automator.gitops.io/policy.side": "semver:^3",
    }
    text = deployment(annotations=annotations, containers=(("app", "a:1"), ("side", "b:1")))
    write(tmp_path, "d.yaml", text.replace("image: a:1", 'image: a:1 # {"$imagepolicy": "app"}'))

    result = scan(tmp_path)

    assert result.fields == ()
    (error,) = (str(e) for e in result.errors)
    assert error.startswith("d.yaml:14: Deployment/-/web container 'app': its image has a marker")
    assert '{"$imagepolicy": "app"} and annotation automator.gitops.io/policy.app also' in error
    assert "keep one of them" in error


def test_a_marker_wins_over_the_workload_default_policy(tmp_path: Path) -> None:
    _policies(tmp_path, "app")
    text = deployment(containers=(("app", "a:1"), ("side", "b:1")))
    write(tmp_path, "d.yaml", text.replace("image: a:1", 'image: a:1 # {"$imagepolicy": "app"}'))

    fields = scan(tmp_path).fields

    assert [(f.container, f.policy, f.marker) for f in fields] == [
        ("spec.template.spec.containers[0].image", "semver:^1", "app"),
        ("side", "semver:^1", None),
    ]
    assert [f.ref for f in fields] == ["Deployment/-/web", "Deployment/-/web"]


def test_markers_of_a_locked_document_change_nothing(tmp_path: Path) -> None:
    _policies(tmp_path, "app")
    marker = 'spec:\n  image: a:1 # {"$imagepolicy": "app"}\n'
    for name, value in (("ours", "true"), ("bad", "yes")):
        write(
            tmp_path,
            f"{name}.yaml",
            f"kind: Thing\nmetadata:\n  name: {name}\n"
            f'  annotations: {{automator.gitops.io/locked: "{value}"}}\n' + marker,
        )
    write(
        tmp_path,
        "flux.yaml",
        'kind: Thing\nmetadata:\n  name: f\n  annotations: {fluxcd.io/locked: "true"}\n' + marker,
    )

    result = scan(tmp_path)

    assert result.fields == ()
    (error,) = (str(e) for e in result.errors)
    assert error == (
        "bad.yaml:2: Thing/-/bad: annotation automator.gitops.io/locked is 'yes': "
        'set it to "true" or "false"'
    )


def test_a_marker_path_never_holds_a_blank_and_quotes_keys_that_are_not_words(
    tmp_path: Path,
) -> None:
    _policies(tmp_path, "app")
    write(
        tmp_path,
        "v.yaml",
        "- first\n- my images:\n    app.kubernetes.io/x:\n"
        '      - tag: v1 # {"$imagepolicy": "app:tag"}\n',
    )

    (field,) = scan(tmp_path).fields

    assert field.container == '[1]["my\\u0020images"]["app.kubernetes.io/x"][0].tag'
    assert " " not in field.container


def test_a_plain_tag_is_rewritten_plain_and_a_number_looking_new_tag_is_refused(
    tmp_path: Path,
) -> None:
    _policies(tmp_path, "app")
    path = write(tmp_path, "v.yaml", 'image:\n  tag: 1.2.3 # {"$imagepolicy": "app:tag"}\n')
    (field,) = scan(tmp_path).fields

    rendered, errors = render(tmp_path, [Change(field, "1.3")])

    assert rendered == {}
    (error,) = (str(e) for e in errors)
    assert error.startswith("v.yaml:2: -/-/v field image.tag: the new value '1.3' would change")
    assert "written plain it reads as a YAML float" in error
    assert 'quote the value in the file (e.g. "1.2.3")' in error

    result = apply(tmp_path, [Change(field, "1.3.0")])

    assert result.errors == ()
    assert path.read_text() == 'image:\n  tag: 1.3.0 # {"$imagepolicy": "app:tag"}\n'


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace("1.0.0", "1.0.5"), "the value now reads '1.0.5', not '1.0.0'"),
        (lambda t: t.replace('"app:tag"', '"web:tag"'), "the marker now reads 'web:tag'"),
        (lambda t: t.replace(" # {", "\n# {"), "the value or its marker comment is gone"),
        (lambda t: t.replace("image:", "picture:"), "the value or its marker comment is gone"),
        (lambda t: "kind: Other\n" + t, "the document is no longer in document 0"),
    ],
)
def test_a_marker_field_changed_since_the_scan_is_reported_and_left_untouched(
    tmp_path: Path, edit: object, message: str
) -> None:
    _policies(tmp_path, "app", "web")
    original = 'image:\n  tag: 1.0.0 # {"$imagepolicy": "app:tag"}\n'
    path = write(tmp_path, "v.yaml", original)
    (field,) = scan(tmp_path).fields
    assert callable(edit)
    path.write_text(edit(original))
    before = path.read_bytes()

    result = apply(tmp_path, [Change(field, "1.1.0")])

    assert result.written == ()
    (error,) = (str(e) for e in result.errors)
    assert error.startswith("v.yaml:")
    assert "-/-/v field image.tag: " in error
    assert message in error
    assert path.read_bytes() == before


def test_screening_blanks_documents_without_markers_but_keeps_those_with_them(
    tmp_path: Path,
) -> None:
    _policies(tmp_path, "app")
    write(
        tmp_path,
        "v.yaml",
        'kind: Thing\nmetadata: {name: t}\nimage: a:1 # {"$imagepolicy": "app"}\n'
        "---\nkind: ConfigMap\ndata: {broken: [}\n---\n"
        'kind: Thing\nmetadata: {name: u}\nimage: a:1 # {"$imagepolicy": "app"}\n',
    )

    result = scan(tmp_path)

    assert result.errors == ()
    assert [(f.doc, f.kind, f.name, f.line) for f in result.fields] == [
        (0, "Thing", "t", 3),
        (2, "Thing", "u", 10),
    ]


@pytest.mark.parametrize("new", ["yes", "on", "N", "1_000", "0755", "0x1f"])
def test_a_new_plain_tag_that_yaml_1_1_reads_as_bool_or_number_is_refused(
    tmp_path: Path, new: str
) -> None:
    _policies(tmp_path, "app")
    write(tmp_path, "v.yaml", 'image:\n  tag: abc # {"$imagepolicy": "app:tag"}\n')
    (field,) = scan(tmp_path).fields

    rendered, errors = render(tmp_path, [Change(field, new)])

    assert rendered == {}
    (error,) = (str(e) for e in errors)
    assert f"the new value {new!r} would change more than the image" in error
    assert "quote the value in the file" in error


def test_yaml_1_1_look_alikes_that_are_strings_everywhere_are_written_plain(
    tmp_path: Path,
) -> None:
    _policies(tmp_path, "app")
    path = write(tmp_path, "v.yaml", 'image:\n  tag: abc # {"$imagepolicy": "app:tag"}\n')
    (field,) = scan(tmp_path).fields

    assert apply(tmp_path, [Change(field, "yesterday")]).errors == ()
    assert path.read_text() == 'image:\n  tag: yesterday # {"$imagepolicy": "app:tag"}\n'
