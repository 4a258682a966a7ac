"""render/apply refuse anything doubtful and leave the file untouched."""

from __future__ import annotations

import dataclasses
import os
import stat
from pathlib import Path

import pytest

from automator.manifests import Change, ImageField, apply, render, scan
from tests.unit.manifests.helpers import deployment, write


def _only_field(root: Path) -> ImageField:
    (field,) = scan(root).fields
    return field


def test_a_value_that_changed_since_the_scan_is_reported_and_the_file_left_untouched(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "d.yaml", deployment())
    field = _only_field(tmp_path)
    path.write_text(deployment().replace("nginx:1.0.0", "nginx:1.0.5"))
    before = path.read_bytes()

    result = apply(tmp_path, [Change(field, "nginx:1.1.0")])

    assert result.written == ()
    (error,) = result.errors
    assert "d.yaml:13: Deployment/-/web container 'app': the image now reads 'nginx:1.0.5'" in str(
        error
    )
    assert "changed since the scan: scan again" in str(error)
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda text: text.replace("name: web", "name: other"), "no longer in document 0"),
        (lambda text: text.replace("name: app", "name: renamed"), "the container is gone"),
        (lambda text: "kind: Service\n---\n" + text, "no longer in document 0"),
        (lambda text: text + "  broken: [\n", "not valid YAML"),
    ],
)
def test_a_file_restructured_since_the_scan_is_reported_and_left_untouched(
    tmp_path: Path, edit: object, message: str
) -> None:
    path = write(tmp_path, "d.yaml", deployment())
    field = _only_field(tmp_path)
    assert callable(edit)
    path.write_text(edit(deployment()))
    before = path.read_bytes()

    rendered, errors = render(tmp_path, [Change(field, "nginx:1.1.0")])

    assert rendered == {}
    assert message in str(errors[0])
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    ("image", "new", "message"),
    [
        ("nginx:1.0.0", "nginx:1.1.0 # sneaky", "cannot be written as a plain value"),
        ("'nginx:1.0.0'", "nginx:it's", "cannot be written as a single-quoted value"),
        ('"nginx:1.0.0"', 'nginx:"1"', "cannot be written as a double-quoted value"),
        ("nginx:1.0.0", "nginx:1.1.0\nx: y", "cannot be written as a plain value"),
        ("nginx:1.0.0", "", "cannot be written"),
        ("nginx:1.0.0", "1.5", "would change more than the image"),
        ("nginx:1.0.0", "[a, b]", "would change more than the image"),
    ],
)
def test_a_new_value_that_would_change_more_than_the_image_is_refused(
    tmp_path: Path, image: str, new: str, message: str
) -> None:
    path = write(tmp_path, "d.yaml", deployment(containers=(("app", image),)))
    before = path.read_bytes()

    result = apply(tmp_path, [Change(_only_field(tmp_path), new)])

    assert result.written == ()
    assert message in str(result.errors[0])
    assert "left untouched" in str(result.errors[0])
    assert path.read_bytes() == before


def test_a_change_aimed_at_an_alias_is_refused_naming_the_anchor(tmp_path: Path) -> None:
    text = deployment(containers=(("app", "&img nginx:1.0.0"), ("side", "*img")))
    path = write(tmp_path, "d.yaml", text)
    app = _only_field(tmp_path)
    side = dataclasses.replace(app, container="side")

    rendered, errors = render(tmp_path, [Change(side, "nginx:1.1.0")])

    assert rendered == {}
    assert "the image is an alias of anchor &img" in str(errors[0])
    assert path.read_bytes() == text.encode()


def test_an_edited_anchor_carries_its_aliases_along(tmp_path: Path) -> None:
    text = deployment(containers=(("app", "&img nginx:1.0.0"), ("side", "*img")))
    path = write(tmp_path, "d.yaml", text)

    (field,) = scan(tmp_path).fields
    result = apply(tmp_path, [Change(field, "nginx:1.1.0")])

    assert result.errors == ()
    assert path.read_text() == text.replace("&img nginx:1.0.0", "&img nginx:1.1.0")


def test_two_different_values_for_the_same_image_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "d.yaml", deployment())
    field = _only_field(tmp_path)

    result = apply(tmp_path, [Change(field, "nginx:1.1.0"), Change(field, "nginx:1.2.0")])

    assert "asked to write both 'nginx:1.1.0' and 'nginx:1.2.0'" in str(result.errors[0])
    assert path.read_text() == deployment()


def test_one_broken_file_does_not_stop_the_others(tmp_path: Path) -> None:
    good = write(tmp_path, "a.yaml", deployment("a"))
    stale = write(tmp_path, "b.yaml", deployment("b"))
    fields = scan(tmp_path).fields
    stale.write_text(deployment("b", containers=(("app", "nginx:9.9.9"),)))

    result = apply(tmp_path, [Change(f, "nginx:1.1.0") for f in fields])

    assert result.written == ("a.yaml",)
    assert [str(e).split(":")[0] for e in result.errors] == ["b.yaml"]
    assert good.read_text() == deployment("a").replace("nginx:1.0.0", "nginx:1.1.0")


def test_a_change_to_the_same_value_writes_nothing(tmp_path: Path) -> None:
    write(tmp_path, "d.yaml", deployment())
    field = _only_field(tmp_path)

    assert render(tmp_path, [Change(field, field.image)]) == ({}, ())
    assert apply(tmp_path, [Change(field, field.image)]).written == ()


def test_apply_keeps_the_file_mode_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = write(tmp_path, "apps/d.yaml", deployment())
    path.chmod(0o640)
    field = _only_field(tmp_path)

    result = apply(tmp_path, [Change(field, "nginx:1.1.0")])

    assert result.written == ("apps/d.yaml",)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert sorted(os.listdir(path.parent)) == ["d.yaml"]


def test_a_write_failure_is_reported_and_the_file_left_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "d.yaml", deployment())
    field = _only_field(tmp_path)

    def disk_full(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    result = apply(tmp_path, [Change(field, "nginx:1.1.0")])

    assert result.written == ()
    assert "d.yaml: could not be written (No space left on device)" in str(result.errors[0])
    assert path.read_text() == deployment()
    assert os.listdir(tmp_path) == ["d.yaml"]


def test_symlinks_and_paths_outside_the_repository_are_never_edited(tmp_path: Path) -> None:
    outside = write(tmp_path, "outside/d.yaml", deployment())
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "link.yaml").symlink_to(outside)
    field = _only_field(tmp_path / "outside")

    linked = dataclasses.replace(field, file="link.yaml")
    escaping = dataclasses.replace(field, file="../outside/d.yaml")
    rendered, errors = render(tmp_path / "repo", [Change(linked, "x:2"), Change(escaping, "x:2")])

    assert rendered == {}
    messages = sorted(str(e) for e in errors)
    assert "not a path inside the repository" in messages[0]
    assert "is a symbolic link" in messages[1]
    assert outside.read_text() == deployment()
