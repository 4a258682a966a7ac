"""Real git servers for tests, the demo and benchmarks: file, git daemon, smart HTTP, SSH.

Each server is a context manager around :class:`tests.support.process.ServerProcess`
(started on a free port, waited for, stopped by PID). Repositories are bare repos under
one root directory; :func:`make_bare_repo` seeds one with an initial commit.

Tests talk to these servers exactly as the product will talk to a real forge, so the
transport-specific behaviour (auth challenges, host-key checks, push rejection) is the real
one, not a mock of it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from tests.support.process import ServerProcess, free_port, wait_for_port

__all__ = [
    "GitDaemon",
    "GitHttpServer",
    "SshGitServer",
    "git",
    "make_bare_repo",
]

_SEED_IDENTITY = {
    "GIT_AUTHOR_NAME": "Seed",
    "GIT_AUTHOR_EMAIL": "seed@example.com",
    "GIT_COMMITTER_NAME": "Seed",
    "GIT_COMMITTER_EMAIL": "seed@example.com",
}


def git(*args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None) -> str:
    """Run git with a fixed identity and no user config surprises; return stdout."""
    full_env = {
        **os.environ,
        **_SEED_IDENTITY,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_CONFIG_NOSYSTEM": "1",
        **(env or {}),
    }
    proc = subprocess.run(
        ["git", *args], cwd=cwd, env=full_env, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc.stdout


def make_bare_repo(root: Path, name: str, files: dict[str, bytes], branch: str = "main") -> Path:
    """Create ``root/name`` as a bare repo whose ``branch`` holds one commit with ``files``.

    The bare repo accepts pushes over smart HTTP (``http.receivepack``) so every server
    below can serve it unchanged.
    """
    bare = root / name
    root.mkdir(parents=True, exist_ok=True)
    git("init", "-q", "--bare", f"--initial-branch={branch}", str(bare))
    git("config", "http.receivepack", "true", cwd=bare)
    with tempfile.TemporaryDirectory(prefix="seed-") as tmp:
        work = Path(tmp)
        git("init", "-q", f"--initial-branch={branch}", cwd=work)
        for rel, data in files.items():
            path = work / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        git("add", "-A", cwd=work)
        git("commit", "-q", "--allow-empty", "-m", "Initial commit", cwd=work)
        git("push", "-q", str(bare), f"HEAD:refs/heads/{branch}", cwd=work)
    return bare


class _Server:
    """Shared context-manager plumbing: start on enter, stop by PID on exit."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.port = free_port()
        self._process: ServerProcess | None = None

    def _start(self, process: ServerProcess) -> None:
        self._process = process.start()
        try:
            wait_for_port(self.port, timeout=20)
        except TimeoutError:
            process.check_alive()
            process.stop()
            raise
        process.check_alive()

    def start(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()
            self._process = None

    def __enter__(self) -> _Server:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class GitDaemon(_Server):
    """``git daemon`` serving every repo under ``root`` with push enabled (git://)."""

    def start(self) -> None:
        argv = [
            "git",
            "daemon",
            "--reuseaddr",
            f"--base-path={self.root}",
            "--export-all",
            "--enable=receive-pack",
            "--listen=127.0.0.1",
            f"--port={self.port}",
            "--informative-errors",
            str(self.root),
        ]
        self._start(ServerProcess(argv, log=self.root.parent / f"git-daemon-{self.port}.log"))

    def __enter__(self) -> GitDaemon:
        self.start()
        return self

    def url(self, name: str) -> str:
        return f"git://127.0.0.1:{self.port}/{name}"


class GitHttpServer(_Server):
    """Smart HTTP (``git http-backend`` as CGI), with optional basic auth."""

    def __init__(self, root: Path, auth: tuple[str, str] | None = None) -> None:
        super().__init__(root)
        self.auth = auth

    def start(self) -> None:
        argv = [
            sys.executable,
            "-m",
            "tests.support.git_http",
            "--root",
            str(self.root),
            "--port",
            str(self.port),
        ]
        env: dict[str, str] = {}
        if self.auth is not None:
            env = {"GIT_HTTP_AUTH_USER": self.auth[0], "GIT_HTTP_AUTH_PASSWORD": self.auth[1]}
        project_dir = Path(__file__).resolve().parents[2]
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(project_dir), os.environ.get("PYTHONPATH", "")) if p
        )
        self._start(
            ServerProcess(
                argv,
                log=self.root.parent / f"git-http-{self.port}.log",
                env=env,
                cwd=project_dir,
            )
        )

    def __enter__(self) -> GitHttpServer:
        self.start()
        return self

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"


class SshGitServer(_Server):
    """Debian openssh-server on 127.0.0.1 with its own host key and one client key.

    ``client_key`` is the private key the client must use, ``known_hosts`` a file that
    lists this server's host key (``[127.0.0.1]:PORT ...``) for strict checking.
    Requires ``/usr/sbin/sshd`` and root (to log in as root and create ``/run/sshd``).
    """

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.state = self.root.parent / f"sshd-{self.port}"
        self.client_key = self.state / "client_ed25519"
        self.known_hosts = self.state / "known_hosts"
        self.host_key = self.state / "ssh_host_ed25519_key"
        self.config = self.state / "sshd_config"

    def start(self) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)
        for key in (self.host_key, self.client_key):
            if not key.exists():
                subprocess.run(
                    ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
                    check=True,
                    capture_output=True,
                )
        host_pub = self.host_key.with_name(self.host_key.name + ".pub").read_text().split()
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {host_pub[0]} {host_pub[1]}\n")
        self.config.write_text(
            "\n".join(
                [
                    "ListenAddress 127.0.0.1",
                    f"Port {self.port}",
                    f"HostKey {self.host_key}",
                    f"AuthorizedKeysFile {self.client_key}.pub",
                    "PermitRootLogin prohibit-password",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "UsePAM no",
                    "StrictModes no",
                    f"PidFile {self.state / 'sshd.pid'}",
                    "LogLevel VERBOSE",
                    "",
                ]
            )
        )
        argv = ["/usr/sbin/sshd", "-D", "-e", "-f", str(self.config)]
        self._start(ServerProcess(argv, log=self.state / "sshd.log"))

    def __enter__(self) -> SshGitServer:
        self.start()
        return self

    def url(self, name: str) -> str:
        return f"ssh://root@127.0.0.1:{self.port}{self.root / name}"
