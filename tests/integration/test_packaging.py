"""Installing the package is quiet: no deprecation or other warnings from pip or setuptools.

Both ways people install it are built from a copy of the sources, in a fresh build
environment (pip's build isolation fetches the pinned setuptools, cached after the first
run): the wheel (`pip wheel`, what the Dockerfile and users do) and the editable install
(`pip install -e`, what hack/setup.sh does), into a fresh virtualenv.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
WARNING = re.compile(r"deprecat|warn", re.IGNORECASE)


def _sources(tmp_path: Path) -> Path:
    """What the Dockerfile copies: pyproject.toml, README.md and the package."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO_ROOT / name, src / name)
    shutil.copytree(
        REPO_ROOT / "automator", src / "automator", ignore=shutil.ignore_patterns("__pycache__")
    )
    return src


def _pip(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "pip", "--no-input", *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


def _warnings(output: str) -> list[str]:
    return [line for line in output.splitlines() if WARNING.search(line)]


def test_building_the_wheel_prints_no_warnings_and_declares_an_spdx_license(
    tmp_path: Path,
) -> None:
    src = _sources(tmp_path)
    output = _pip("wheel", "--no-deps", "--wheel-dir", str(tmp_path / "dist"), str(src))
    assert _warnings(output) == [], output
    (wheel,) = (tmp_path / "dist").glob("automator-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        headers = archive.read(metadata).decode()
    assert "License-Expression: Apache-2.0" in headers.splitlines()
    # The package and its data, nothing else from the tree (tests, hack, bench stay out).
    assert {name.split("/")[0] for name in names} == {"automator", metadata.split("/")[0]}
    assert "automator/py.typed" in names
    assert any(name.startswith("automator/schemas/") for name in names)


def test_an_editable_install_into_a_fresh_venv_prints_no_warnings(tmp_path: Path) -> None:
    src = _sources(tmp_path)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    output = _pip("--python", str(python), "install", "--no-deps", "--editable", str(src))
    assert _warnings(output) == [], output
    imported = subprocess.run(
        [str(python), "-c", "import automator; print(automator.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    ).stdout.strip()
    assert Path(imported) == src / "automator" / "__init__.py"
