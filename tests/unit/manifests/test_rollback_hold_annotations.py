"""``rollback-hold`` annotations and ``spec.rollbackHold`` reach the scanned field."""

from __future__ import annotations

from pathlib import Path

import pytest

from automator.manifests import scan
from tests.unit.manifests.helpers import deployment, write

OURS = "automator.gitops.io/"


def fields(tmp_path: Path, **extra: str) -> dict[str, bool]:
    annotations = {OURS + "automated": "true", OURS + "policy": "semver:^1", **extra}
    write(
        tmp_path,
        "d.yaml",
        deployment(annotations=annotations, containers=(("app", "a:1"), ("side", "b:1"))),
    )
    result = scan(tmp_path)
    assert result.errors == ()
    return {f.container: f.rollback_hold for f in result.fields}


def test_rollback_holds_are_on_unless_an_annotation_turns_them_off(tmp_path: Path) -> None:
    assert fields(tmp_path) == {"app": True, "side": True}


def test_the_per_container_annotation_turns_off_one_container(tmp_path: Path) -> None:
    got = fields(tmp_path, **{OURS + "rollback-hold.app": "false"})
    assert got == {"app": False, "side": True}


def test_the_workload_annotation_turns_off_all_and_a_container_can_opt_back_in(
    tmp_path: Path,
) -> None:
    got = fields(tmp_path, **{OURS + "rollback-hold": "false", OURS + "rollback-hold.side": "true"})
    assert got == {"app": False, "side": True}


@pytest.mark.parametrize("key", ["rollback-hold", "rollback-hold.app"])
def test_a_rollback_hold_annotation_that_is_not_true_or_false_is_reported(
    tmp_path: Path, key: str
) -> None:
    annotations = {OURS + "automated": "true", OURS + "policy": "semver:^1", OURS + key: "no"}
    write(tmp_path, "d.yaml", deployment(annotations=annotations, containers=(("app", "a:1"),)))

    result = scan(tmp_path)

    assert [str(e) for e in result.errors] == [
        f'd.yaml:3: Deployment/-/web: annotation {OURS}{key} is \'no\': set it to "true" or "false"'
    ]


def test_spec_rollback_hold_false_reaches_a_marker_field(tmp_path: Path) -> None:
    write(
        tmp_path,
        "v.yaml",
        "apiVersion: automator.gitops.io/v1\nkind: ImagePolicy\nmetadata: {name: web}\n"
        "spec: {image: reg.example/web, policy: 'semver:^1', rollbackHold: false}\n"
        "---\nkind: ConfigMap\nmetadata: {name: v}\n"
        'data:\n  tag: 1.0.0 # {"$imagepolicy": "web:tag"}\n',
    )

    result = scan(tmp_path)

    assert result.errors == ()
    assert [(f.container, f.rollback_hold) for f in result.fields] == [("data.tag", False)]
