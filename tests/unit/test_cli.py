"""CLI details that need no servers: trailer parsing for history, exit codes, pipes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from automator.cli import _parse_trailer


def test_history_parses_trailers_whose_file_path_has_spaces() -> None:
    value = "my apps/web.yaml Deployment/-/web app reg/app:1.0.0 -> reg/app:1.1.0"
    assert _parse_trailer(value) == {
        "file": "my apps/web.yaml",
        "workload": "Deployment/-/web",
        "container": "app",
        "old": "reg/app:1.0.0",
        "new": "reg/app:1.1.0",
    }


def test_a_trailer_of_another_shape_is_kept_whole_rather_than_misread() -> None:
    assert _parse_trailer("something else") == {
        "file": "",
        "workload": "",
        "container": "",
        "old": "",
        "new": "something else",
    }


def test_a_git_password_in_the_url_never_reaches_the_output(tmp_path: Path) -> None:
    config = tmp_path / "automator.yaml"
    config.write_text(
        f"git: {{url: 'http://bob:T0PSECRET@127.0.0.1:1/x.git'}}\nworkdir: {tmp_path / 'work'}\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "automator", "--config", str(config), "once"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1
    assert "FAILED git http://bob:***@127.0.0.1:1/x.git" in proc.stdout
    assert "T0PSECRET" not in proc.stdout + proc.stderr


def test_a_closed_pipe_is_not_a_traceback(tmp_path: Path) -> None:
    cmd = (
        f"{sys.executable} -m automator check --tags "
        + ",".join(f"1.{i}.0" for i in range(3000))
        + " --policy semver:* --explain | head -1"
    )
    proc = subprocess.run(
        ["bash", "-o", "pipefail", "-c", cmd],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert "Traceback" not in proc.stderr
    assert proc.stdout.startswith("policy:")
