"""Which fields a scan finds, and what it reports."""

from __future__ import annotations

import json
import os
from pathlib import Path

import jsonschema
import pytest

from automator.errors import ManifestError, PermanentError
from automator.manifests import _imagepolicy, scan
from automator.manifests._annotations import PLATFORM
from tests.unit.manifests.helpers import deployment, write

AUTOMATED = "automator.gitops.io/automated"


def _policies(root: Path) -> dict[str, str]:
    return {f"{f.name}/{f.container}": f.policy for f in scan(root).fields}


def test_a_container_policy_wins_over_the_default_policy(tmp_path: Path) -> None:
    annotations = {
        AUTOMATED: "true",
        "automator.gitops.io/policy": "semver:^1",
        "automator.gitops.io/policy.side": "alphabetical:desc",
        "automator.gitops.io/filter.side": "^main-",
        "automator.gitops.io/extract.side": "$ts",
    }
    write(
        tmp_path,
        "d.yaml",
        deployment(annotations=annotations, containers=(("app", "a:1"), ("side", "b:1"))),
    )

    fields = {f.container: f for f in scan(tmp_path).fields}

    assert (fields["app"].policy, fields["app"].source) == (
        "semver:^1",
        "automator.gitops.io/policy",
    )
    assert (fields["side"].policy, fields["side"].filter, fields["side"].extract) == (
        "alphabetical:desc",
        "^main-",
        "$ts",
    )


def test_containers_without_a_policy_are_not_automated(tmp_path: Path) -> None:
    annotations = {AUTOMATED: "true", "automator.gitops.io/policy.app": "semver:^1"}
    write(
        tmp_path,
        "d.yaml",
        deployment(annotations=annotations, containers=(("app", "a:1"), ("side", "b:1"))),
    )

    assert _policies(tmp_path) == {"web/app": "semver:^1"}


def test_a_workload_without_the_automated_annotation_gives_no_field_and_no_error(
    tmp_path: Path,
) -> None:
    write(
        tmp_path, "a.yaml", deployment("a", annotations={"automator.gitops.io/policy": "semver:^1"})
    )
    write(
        tmp_path,
        "b.yaml",
        deployment("b", annotations={AUTOMATED: "false", "automator.gitops.io/policy.nope": "x"}),
    )

    assert scan(tmp_path).fields == ()
    assert scan(tmp_path).errors == ()


def test_a_locked_workload_gives_no_field(tmp_path: Path) -> None:
    annotations = {
        AUTOMATED: "true",
        "automator.gitops.io/locked": "true",
        "automator.gitops.io/policy": "semver:^1",
    }
    write(tmp_path, "d.yaml", deployment(annotations=annotations))

    assert scan(tmp_path).fields == ()


def test_an_automated_value_other_than_true_or_false_is_reported(tmp_path: Path) -> None:
    write(
        tmp_path,
        "d.yaml",
        deployment(annotations={AUTOMATED: "yes", "automator.gitops.io/policy": "semver:^1"}),
    )

    result = scan(tmp_path)

    assert result.fields == ()
    assert 'automator.gitops.io/automated is \'yes\': set it to "true" or "false"' in str(
        result.errors[0]
    )


def test_an_annotation_naming_a_missing_container_is_reported_with_the_existing_ones(
    tmp_path: Path,
) -> None:
    annotations = {AUTOMATED: "true", "automator.gitops.io/policy.ap": "semver:^1"}
    write(
        tmp_path,
        "apps/d.yaml",
        deployment(
            annotations=annotations, namespace="prod", containers=(("app", "a:1"), ("side", "b:1"))
        ),
    )

    result = scan(tmp_path)

    assert result.fields == ()
    (error,) = result.errors
    assert isinstance(error, ManifestError)
    assert isinstance(error, PermanentError)
    message = str(error)
    assert message.startswith("apps/d.yaml:3: Deployment/prod/web: ")
    assert "automator.gitops.io/policy.ap names container 'ap'" in message
    assert "(containers: app, side)" in message
    assert "fix the container name" in message


def test_a_file_that_does_not_parse_is_reported_and_the_others_are_still_scanned(
    tmp_path: Path,
) -> None:
    write(tmp_path, "a.yaml", deployment("a"))
    write(
        tmp_path,
        "b.yaml",
        "metadata:\n  annotations: {automator.gitops.io/automated: 'true'\n  - broken: [\n",
    )
    write(tmp_path, "c.yaml", deployment("c"))

    result = scan(tmp_path)

    assert [f.name for f in result.fields] == ["a", "c"]
    (error,) = result.errors
    assert str(error).startswith("b.yaml:")
    assert "not valid YAML" in str(error)
    assert "left untouched" in str(error)


def test_a_file_that_is_not_utf8_is_reported(tmp_path: Path) -> None:
    write(tmp_path, "latin.yaml", deployment().encode() + b"# caf\xe9\n")

    (error,) = scan(tmp_path).errors

    assert str(error).startswith("latin.yaml: not UTF-8")


def test_yaml_that_is_not_a_kubernetes_workload_is_ignored_silently(tmp_path: Path) -> None:
    write(tmp_path, "values.yaml", "automator.gitops.io/automated: 'true'\nimage: {tag: 1}\n")
    write(tmp_path, "list.yaml", "- automator.gitops.io/policy\n- 2\n")
    write(tmp_path, "crd.yaml", deployment().replace("apps/v1", "example.com/v1"))
    write(
        tmp_path,
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\n"
        "metadata: {name: x, annotations: {automator.gitops.io/automated: 'true'}}\n",
    )

    assert scan(tmp_path) == scan(tmp_path / ".")
    assert scan(tmp_path).fields == ()
    assert scan(tmp_path).errors == ()


def test_a_broken_file_without_automation_is_still_reported_as_not_parsing(
    tmp_path: Path,
) -> None:
    write(
        tmp_path, "chart/templates/deploy.yaml", "metadata:\n  name: {{ .Release.Name }}\n  x: [\n"
    )
    write(tmp_path, "chart/templates/ok.yaml", "kind: Service\nmetadata: {name: ok}\n")

    errors = scan(tmp_path).errors
    assert [str(e).split(": ", 1)[0] for e in errors] == ["chart/templates/deploy.yaml:4"]
    assert "not valid YAML" in str(errors[0])


def test_only_the_configured_paths_are_scanned_in_sorted_order_skipping_hidden_directories(
    tmp_path: Path,
) -> None:
    write(tmp_path, "clusters/prod/b.yml", deployment("b"))
    write(tmp_path, "clusters/prod/a/x.yaml", deployment("x"))
    write(tmp_path, "clusters/prod/.hidden/h.yaml", deployment("h"))
    write(tmp_path, "clusters/prod/readme.txt", deployment("t"))
    write(tmp_path, "clusters/staging/s.yaml", deployment("s"))
    write(tmp_path, ".git/config.yaml", deployment("g"))

    assert [f.file for f in scan(tmp_path, ["clusters/prod"]).fields] == [
        "clusters/prod/a/x.yaml",
        "clusters/prod/b.yml",
    ]
    assert [f.name for f in scan(tmp_path).fields] == ["x", "b", "s"]
    assert [f.name for f in scan(tmp_path, ["clusters/staging/s.yaml", "clusters"]).fields] == [
        "x",
        "b",
        "s",
    ]


def test_a_path_that_does_not_exist_is_reported_with_the_config_key(tmp_path: Path) -> None:
    write(tmp_path, "apps/a.yaml", deployment("a"))

    result = scan(tmp_path, ["apps", "clusters/prd"])

    assert [f.name for f in result.fields] == ["a"]
    (error,) = result.errors
    assert "git.paths: 'clusters/prd' does not exist" in str(error)
    assert "fix `git.paths`" in str(error)


def test_a_path_outside_the_repository_is_refused(tmp_path: Path) -> None:
    (tmp_path / "repo").mkdir()
    write(tmp_path, "other/a.yaml", deployment("a"))

    result = scan(tmp_path / "repo", ["../other"])

    assert result.fields == ()
    assert "is outside the repository" in str(result.errors[0])


def test_symlinked_files_are_skipped(tmp_path: Path) -> None:
    target = write(tmp_path, "outside/a.yaml", deployment("a"))
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "link.yaml").symlink_to(target)

    assert scan(tmp_path / "repo").fields == ()


def test_multi_document_files_give_document_indexes_and_namespace_none_when_unset(
    tmp_path: Path,
) -> None:
    text = (
        "kind: Service\napiVersion: v1\nmetadata: {name: s}\n---\n"
        + deployment("a")
        + "---\n"
        + deployment("b", namespace="ns")
    )
    write(tmp_path, "m.yaml", text)

    fields = scan(tmp_path).fields

    assert [(f.doc, f.name, f.namespace, f.line) for f in fields] == [
        (1, "a", None, 17),
        (2, "b", "ns", 32),
    ]


def test_flux_v1_tag_patterns_get_glob_by_default_and_regexp_becomes_regex(tmp_path: Path) -> None:
    annotations = {
        "fluxcd.io/automated": "true",
        "fluxcd.io/tag.a": "1.*",
        "fluxcd.io/tag.b": "regexp:^v",
        "fluxcd.io/tag.c": "semver:~1",
        "fluxcd.io/tag.d": "glob:main-*",
    }
    containers = tuple((name, f"{name}:1") for name in "abcde")
    write(tmp_path, "d.yaml", deployment(annotations=annotations, containers=containers))

    assert _policies(tmp_path) == {
        "web/a": "glob:1.*",
        "web/b": "regex:^v",
        "web/c": "semver:~1",
        "web/d": "glob:main-*",
    }


def test_our_annotations_win_over_flux_v1_ones(tmp_path: Path) -> None:
    annotations = {
        "fluxcd.io/automated": "true",
        "fluxcd.io/locked": "true",
        "automator.gitops.io/locked": "false",
        "fluxcd.io/tag.app": "semver:~1",
        "automator.gitops.io/policy.app": "semver:^2",
        "fluxcd.io/tag.side": "semver:~3",
        "automator.gitops.io/policy": "semver:^4",
    }
    write(
        tmp_path,
        "d.yaml",
        deployment(
            annotations=annotations, containers=(("app", "a:1"), ("side", "b:1"), ("x", "c:1"))
        ),
    )

    assert _policies(tmp_path) == {
        "web/app": "semver:^2",
        "web/side": "semver:~3",
        "web/x": "semver:^4",
    }


def test_flux_v1_ignore_and_locked_skip_the_workload_unless_ours_say_otherwise(
    tmp_path: Path,
) -> None:
    flux = {"fluxcd.io/automated": "true", "fluxcd.io/tag.app": "semver:~1"}
    write(
        tmp_path,
        "ignored.yaml",
        deployment("ignored", annotations={**flux, "fluxcd.io/ignore": "true"}),
    )
    write(
        tmp_path,
        "locked.yaml",
        deployment("locked", annotations={**flux, "fluxcd.io/locked": "true"}),
    )
    write(
        tmp_path,
        "ours.yaml",
        deployment("ours", annotations={**flux, "fluxcd.io/ignore": "true", AUTOMATED: "true"}),
    )

    assert _policies(tmp_path) == {"ours/app": "semver:~1"}


def test_a_container_without_image_and_a_duplicated_container_name_are_reported(
    tmp_path: Path,
) -> None:
    write(tmp_path, "noimage.yaml", deployment("n").replace("          image: nginx:1.0.0\n", ""))
    write(tmp_path, "twice.yaml", deployment("t", containers=(("app", "a:1"), ("app", "b:1"))))

    messages = sorted(str(e) for e in scan(tmp_path).errors)

    assert "noimage.yaml:12: Deployment/-/n container 'app': has no image" in messages[0]
    assert "container name 'app' is used twice" in messages[1]


def test_a_multi_line_image_value_is_reported_as_not_supported(tmp_path: Path) -> None:
    write(
        tmp_path,
        "d.yaml",
        deployment().replace("image: nginx:1.0.0", 'image: "nginx:\n            1.0.0"'),
    )
    write(
        tmp_path,
        "e.yaml",
        deployment("e").replace("image: nginx:1.0.0", 'image: "nginx:\\x31.0.0"'),
    )
    write(
        tmp_path,
        "f.yaml",
        deployment("f").replace("image: nginx:1.0.0", "image: |\n            nginx:1"),
    )

    errors = [str(e) for e in scan(tmp_path).errors]

    assert scan(tmp_path).fields == ()
    assert len(errors) == 3
    assert all("does not edit" in e for e in errors)


def test_an_alias_of_an_automated_image_follows_it_and_other_aliases_are_reported(
    tmp_path: Path,
) -> None:
    merged = (
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: merged\n  annotations:\n"
        '    automator.gitops.io/automated: "true"\n    automator.gitops.io/policy: semver:^1\n'
        "base: &base {image: 'acme/base:1'}\n"
        "spec:\n  containers:\n    - <<: *base\n      name: app\n"
    )
    write(tmp_path, "merged.yaml", merged)

    (error,) = scan(tmp_path).errors

    assert (
        "merged.yaml:11: Pod/-/merged container 'app': "
        "the image is an alias of anchor &base (line 8)" in str(error)
    )


def test_the_field_line_is_the_line_of_the_value_even_after_an_anchor_on_its_own_line(
    tmp_path: Path,
) -> None:
    write(
        tmp_path,
        "d.yaml",
        deployment().replace("image: nginx:1.0.0", "image: &i\n            nginx:1.0.0"),
    )

    (field,) = scan(tmp_path).fields

    assert (field.image, field.line) == ("nginx:1.0.0", 14)


def test_documents_without_annotations_are_blanked_keeping_every_offset_and_line() -> None:
    from automator.manifests._yaml import screen_documents

    text = (
        "a: 1\r\n--- # x\r\nkind: Service\r\n...\r\n"
        "---\r\nautomator.gitops.io/x: y\r\n---\r\nz: é\r\n"
    )

    screened = screen_documents(text, ["automator.gitops.io/"])

    assert len(screened) == len(text)
    assert [i for i, c in enumerate(screened) if c in "\r\n"] == [
        i for i, c in enumerate(text) if c in "\r\n"
    ]
    assert screened.split("\r\n") == [
        "a: 1",
        "---    ",
        "             ",
        "...",
        "---",
        "automator.gitops.io/x: y",
        "---",
        "    ",
        "",
    ]


def test_a_broken_document_next_to_an_automated_workload_does_not_hide_it(tmp_path: Path) -> None:
    write(tmp_path, "d.yaml", deployment() + "---\nkind: ConfigMap\ndata: {broken: [}\n")

    result = scan(tmp_path)

    assert [(f.doc, f.container) for f in result.fields] == [(0, "app")]


def test_ignore_tags_pin_digest_and_platform_annotations_reach_the_field(tmp_path: Path) -> None:
    annotations = {
        AUTOMATED: "true",
        "automator.gitops.io/policy": "semver:^1",
        "automator.gitops.io/ignore-tags.app": " *-debug ,latest",
        "automator.gitops.io/pin-digest.app": "true",
        "automator.gitops.io/platform.app": "linux/arm/v7",
        "automator.gitops.io/pin-digest.side": "false",
        "automator.gitops.io/platform.side": "linux/amd64",
    }
    write(
        tmp_path,
        "d.yaml",
        deployment(annotations=annotations, containers=(("app", "a:1"), ("side", "b:1"))),
    )

    result = scan(tmp_path)

    assert result.errors == ()
    app, side = result.fields
    assert (app.ignore_tags, app.pin_digest, app.platform) == (
        ("*-debug", "latest"),
        True,
        "linux/arm/v7",
    )
    assert (side.ignore_tags, side.pin_digest, side.platform) == ((), False, "linux/amd64")
    for field in (app, side):
        assert (field.part, field.repository, field.marker) == ("image", None, None)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (
            "pin-digest.app",
            "yes",
            'annotation automator.gitops.io/pin-digest.app is \'yes\': set it to "true" or "false"',
        ),
        (
            "platform.app",
            "arm64",
            "annotation automator.gitops.io/platform.app is 'arm64': write the platform as "
            "os/arch[/variant], e.g. linux/arm64 or linux/arm/v7",
        ),
        (
            "platform.app",
            "Linux/ARM64",
            "annotation automator.gitops.io/platform.app is 'Linux/ARM64': write the platform",
        ),
        (
            "platform.app",
            "linux/arm/v7/x",
            "annotation automator.gitops.io/platform.app is 'linux/arm/v7/x'",
        ),
        (
            "ignore-tags.app",
            "a,,b",
            "annotation automator.gitops.io/ignore-tags.app is 'a,,b', which has an empty "
            'pattern: write comma-separated globs without empty entries, e.g. "*-debug,latest"',
        ),
        (
            "ignore-tags.app",
            "",
            "annotation automator.gitops.io/ignore-tags.app is empty: give it a value or remove it",
        ),
        (
            "pin-digest.ap",
            "true",
            "annotation automator.gitops.io/pin-digest.ap names container 'ap', which this "
            "workload does not have (containers: app, side): fix the container name",
        ),
        (
            "ignore-tags.nope",
            "x",
            "annotation automator.gitops.io/ignore-tags.nope names container 'nope'",
        ),
        (
            "platform.side",
            "linux/arm64",
            "annotation automator.gitops.io/platform.side is set but container 'side' has no "
            "policy: add automator.gitops.io/policy.side (or automator.gitops.io/policy) or "
            "remove it",
        ),
    ],
)
def test_a_wrong_ignore_tags_pin_digest_or_platform_annotation_is_reported(
    tmp_path: Path, key: str, value: str, message: str
) -> None:
    annotations = {
        AUTOMATED: "true",
        "automator.gitops.io/policy.app": "semver:^1",
        f"automator.gitops.io/{key}": value,
    }
    write(
        tmp_path,
        "d.yaml",
        deployment(annotations=annotations, containers=(("app", "a:1"), ("side", "b:1"))),
    )

    result = scan(tmp_path)

    assert result.fields == ()
    (error,) = result.errors
    assert str(error).startswith("d.yaml:3: Deployment/-/web: ")
    assert message in str(error)


def test_the_policies_folder_schema_is_a_relative_link_to_the_packaged_schema() -> None:
    repo = Path(__file__).parents[3]
    link = repo / "policies" / "imagepolicy.schema.json"
    packaged = repo / "automator" / "schemas" / "imagepolicy.schema.json"

    assert link.is_symlink()
    assert os.readlink(link) == "../automator/schemas/imagepolicy.schema.json"
    assert link.resolve() == packaged.resolve()
    assert _imagepolicy.schema() == json.loads(link.read_text())
    jsonschema.Draft202012Validator.check_schema(_imagepolicy.schema())


def test_the_annotation_platform_grammar_is_the_schemas() -> None:
    spec = _imagepolicy.schema()["properties"]["spec"]["properties"]
    assert spec["platform"]["pattern"] == "^" + PLATFORM.pattern.replace("(?:", "(") + "$"
