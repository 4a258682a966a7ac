"""Golden trees: ``testdata/<case>/original`` scanned, changed and compared byte for byte
with ``testdata/<case>/expected``. ``changes.json`` maps file -> "workload/container" -> new
image, and lists substrings of the scan errors the case expects."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from automator.manifests import Change, apply, render, scan

TESTDATA = Path(__file__).parent / "testdata"
CASES = sorted(p.name for p in TESTDATA.iterdir() if p.is_dir())


def _files(directory: Path) -> dict[str, bytes]:
    return {
        p.relative_to(directory).as_posix(): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def _changes(case: str, root: Path) -> tuple[list[Change], list[str]]:
    spec = json.loads((TESTDATA / case / "changes.json").read_text())
    wanted: dict[str, dict[str, str]] = spec["changes"]
    result = scan(root)
    messages = [str(error) for error in result.errors]
    for expected in spec.get("scan_errors", []):
        assert any(expected in message for message in messages), (expected, messages)
    assert len(messages) == len(spec.get("scan_errors", [])), messages
    changes = [
        Change(field, wanted[field.file][f"{field.name}/{field.container}"])
        for field in result.fields
        if f"{field.name}/{field.container}" in wanted.get(field.file, {})
    ]
    found = {(f.file, f"{f.name}/{f.container}") for f in result.fields}
    asked = {(file, key) for file, per_file in wanted.items() for key in per_file}
    assert found == asked, "the scan must find exactly the fields the case lists"
    return changes, messages


@pytest.mark.parametrize("case", CASES)
def test_applying_the_changes_turns_original_into_expected_byte_for_byte(
    case: str, tmp_path: Path
) -> None:
    shutil.copytree(TESTDATA / case / "original", tmp_path, dirs_exist_ok=True)
    changes, _ = _changes(case, tmp_path)

    result = apply(tmp_path, changes)

    assert result.errors == ()
    expected = _files(TESTDATA / case / "expected")
    assert _files(tmp_path) == expected
    original = _files(TESTDATA / case / "original")
    assert set(result.written) == {f for f in expected if expected[f] != original[f]}


@pytest.mark.parametrize("case", CASES)
def test_render_computes_the_expected_bytes_and_writes_nothing(case: str, tmp_path: Path) -> None:
    shutil.copytree(TESTDATA / case / "original", tmp_path, dirs_exist_ok=True)
    changes, _ = _changes(case, tmp_path)

    rendered, errors = render(tmp_path, changes)

    assert errors == ()
    expected = _files(TESTDATA / case / "expected")
    original = _files(TESTDATA / case / "original")
    assert rendered == {f: expected[f] for f in expected if expected[f] != original[f]}
    assert _files(tmp_path) == original


def test_the_fixtures_really_hold_crlf_and_bom_so_git_did_not_normalise_them() -> None:
    crlf = (TESTDATA / "crlf" / "original" / "db.yaml").read_bytes()
    bom = (TESTDATA / "bom" / "original" / "agent-crlf.yaml").read_bytes()
    assert crlf.count(b"\r\n") == crlf.count(b"\n") > 10
    assert bom.startswith(b"\xef\xbb\xbf")
    assert bom.count(b"\r\n") == bom.count(b"\n")
    assert (
        not (TESTDATA / "no_final_newline" / "original" / "last.yaml").read_bytes().endswith(b"\n")
    )


def test_the_golden_scan_reports_where_each_field_is() -> None:
    result = scan(TESTDATA / "comments" / "original")
    (field,) = result.fields
    assert (field.kind, field.namespace, field.name, field.container) == (
        "Deployment",
        "shop",
        "web",
        "app",
    )
    assert (field.file, field.doc, field.line, field.init) == ("app.yaml", 0, 19, False)
    assert field.image == "registry.example.com/shop/web:1.2.3"
    assert (field.policy, field.source) == ("semver:^1.2", "automator.gitops.io/policy.app")


def test_the_golden_marker_scan_reports_part_repository_and_key_path() -> None:
    result = scan(TESTDATA / "marker_kustomize" / "original")

    assert [
        (f.kind, f.name, f.container, f.part, f.repository, f.marker) for f in result.fields
    ] == [
        (
            "Kustomization",
            "kustomization",
            "images[0].newName",
            "name",
            "registry.example.com/org/app",
            "app:name",
        ),
        (
            "Kustomization",
            "kustomization",
            "images[0].newTag",
            "tag",
            "registry.example.com/org/app",
            "app:tag",
        ),
        (
            "Kustomization",
            "kustomization",
            "images[1].newTag",
            "tag",
            "ghcr.io/org/side",
            "side:tag",
        ),
        (
            "Kustomization",
            "kustomization",
            "images[2].digest",
            "digest",
            "registry.example.com/org/app",
            "app:digest",
        ),
    ]
    first = result.fields[0]
    assert (first.line, first.source, first.namespace) == (
        7,
        "$imagepolicy app:name",
        None,
    )
