"""Build and run the repo's Dockerfile on a machine that cannot pull images.

:class:`Dockerd` starts Debian's ``dockerd`` the way it works here (vfs storage, no
iptables, no bridge; its own data root, exec root and socket) and talks to it with the
``docker`` CLI. :meth:`Dockerd.base_image` imports the Debian bookworm tarball that
``hack/container-base.sh`` builds with debootstrap (Python 3.11 like the official
``python:3.11-slim``), and :meth:`Dockerd.build` builds the Dockerfile on it with
``--build-arg BASE=...``.

The data root lives under ``~/.cache/automator/container/docker`` so the layer cache
survives between runs (a warm build redoes only the layers whose inputs changed); a lock
file lets only one dockerd use it at a time, so parallel sessions wait for each other.
Old images are pruned after each build to keep vfs (a full copy per layer) in bounds.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from tests.support.process import ServerProcess, wait_until

__all__ = ["CONTAINER_CACHE", "ContainerToolsMissing", "Dockerd"]

REPO_ROOT = Path(__file__).resolve().parents[2]
CONTAINER_CACHE = Path(
    os.environ.get("AUTOMATOR_CONTAINER_CACHE")
    or Path(os.environ.get("HOME") or "/root") / ".cache" / "automator" / "container"
)
BASE_REPOSITORY = "automator-test-base"
# The CA bundle update-ca-certificates writes in the Debian base (hack/container-base.sh
# adds this machine's extra CAs to it): pip in the build trusts what the host trusts.
BASE_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


class ContainerToolsMissing(RuntimeError):
    """dockerd, the docker CLI, debootstrap or root is missing: the tests cannot build."""


def _unmount_under(root: Path) -> None:
    mounts = Path("/proc/self/mounts").read_text().splitlines()
    points = [line.split()[1] for line in mounts if len(line.split()) > 1]
    for point in sorted(
        (p for p in points if p == str(root) or p.startswith(f"{root}/")), reverse=True
    ):
        subprocess.run(["umount", "--lazy", point], capture_output=True, check=False)


class Dockerd:
    """A private ``dockerd``; a context manager that holds the data root's lock while up."""

    def __init__(self, data_root: Path | None = None, lock_timeout: float = 1800.0) -> None:
        self.data_root = data_root or CONTAINER_CACHE / "docker"
        self.lock_timeout = lock_timeout
        self.exec_root: Path | None = None
        self.socket: Path | None = None
        self._process: ServerProcess | None = None
        self._lock: int | None = None

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> Dockerd:
        missing = [tool for tool in ("dockerd", "docker") if shutil.which(tool) is None]
        if missing:
            raise ContainerToolsMissing(
                f"{' and '.join(missing)} not installed (bash hack/setup.sh installs docker.io)"
            )
        if os.geteuid() != 0:
            raise ContainerToolsMissing("dockerd needs root here (it runs containers with runc)")
        self.data_root.mkdir(parents=True, exist_ok=True)
        self._acquire_lock()
        # Short path: containerd's sockets live under the exec root (108-byte socket limit).
        self.exec_root = Path(tempfile.mkdtemp(prefix="adk-", dir="/tmp"))
        self.socket = self.exec_root / "docker.sock"
        argv = [
            "dockerd",
            "--storage-driver=vfs",
            "--iptables=false",
            "--ip6tables=false",
            "--bridge=none",
            f"--data-root={self.data_root}",
            f"--exec-root={self.exec_root}",
            f"--pidfile={self.exec_root / 'docker.pid'}",
            "-H",
            f"unix://{self.socket}",
        ]
        self._process = ServerProcess(argv, log=self.exec_root / "dockerd.log").start()
        try:
            wait_until(self._ready, timeout=60, what="dockerd to answer on its socket")
        except TimeoutError:
            self._process.check_alive()
            self.stop()
            raise
        return self

    def _acquire_lock(self) -> None:
        fd = os.open(self.data_root.parent / "dockerd.lock", os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.lock_timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise TimeoutError(
                        f"another session holds {self.data_root.parent / 'dockerd.lock'} "
                        f"for more than {self.lock_timeout:.0f}s"
                    ) from None
                time.sleep(1)
        self._lock = fd

    def _ready(self) -> bool:
        assert self._process is not None
        self._process.check_alive()
        return self.docker("version", check=False, timeout=10).returncode == 0

    def stop(self) -> None:
        if self._process is not None:
            if self._process.proc is not None and self._process.proc.poll() is None:
                running = self.docker("ps", "-q", check=False, timeout=30).stdout.split()
                if running:
                    self.docker("rm", "-f", *running, check=False, timeout=60)
            self._process.stop(grace=30)
            self._process = None
        if self.exec_root is not None:
            _unmount_under(self.exec_root)  # dockerd leaves netns/default mounted
            shutil.rmtree(self.exec_root, ignore_errors=True)
            self.exec_root = None
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            os.close(self._lock)
            self._lock = None

    def __enter__(self) -> Dockerd:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- the CLI -----------------------------------------------------------------------------
    def docker(
        self, *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run ``docker ARGS`` against this daemon; raise with its output when check fails."""
        assert self.socket is not None, "dockerd is not started"
        env = {
            **os.environ,
            "DOCKER_HOST": f"unix://{self.socket}",
            # The classic builder: it runs RUN steps on host networking without BuildKit.
            "DOCKER_BUILDKIT": "0",
            "DOCKER_CONFIG": str(self.exec_root),
        }
        proc = subprocess.run(
            ["docker", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(
                f"docker {' '.join(args)} exited {proc.returncode}:\n"
                f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
            )
        return proc

    def base_image(self) -> str:
        """The local Debian bookworm base (from the cached debootstrap tarball), imported once."""
        result = subprocess.run(
            ["bash", str(REPO_ROOT / "hack" / "container-base.sh")],
            capture_output=True,
            text=True,
            timeout=1200,
            check=False,
            env={**os.environ, "AUTOMATOR_CONTAINER_CACHE": str(CONTAINER_CACHE)},
        )
        if result.returncode == 2:
            raise ContainerToolsMissing(result.stderr.strip())
        lines = result.stdout.strip().splitlines()
        if result.returncode != 0 or not lines:
            raise RuntimeError(
                f"hack/container-base.sh exited {result.returncode}:\n{result.stderr[-4000:]}"
            )
        tarball = Path(lines[-1])
        key = tarball.stem.rsplit("-", 1)[-1]
        ref = f"{BASE_REPOSITORY}:{key}"
        if self.docker("image", "inspect", ref, check=False).returncode != 0:
            self.docker("import", str(tarball), ref, timeout=600)
        stale = [
            line
            for line in self.docker(
                "images", "--format", "{{.Repository}}:{{.Tag}}", BASE_REPOSITORY
            ).stdout.split()
            if line != ref
        ]
        if stale:
            self.docker("rmi", *stale, check=False)
        return ref

    def build(self, tag: str, base: str, context: Path = REPO_ROOT) -> str:
        """``docker build`` the Dockerfile in ``context`` on ``base``; returns the build log."""
        args = [
            "build",
            "--network=host",
            f"--build-arg=BASE={base}",
            f"--build-arg=PIP_CERT={BASE_CA_BUNDLE}",
        ]
        if os.environ.get("PIP_INDEX_URL"):
            args.append(f"--build-arg=PIP_INDEX_URL={os.environ['PIP_INDEX_URL']}")
        # The build stage gets a tag of its own: its layers are the cache of the next build
        # (the dependencies layer above all), and untagged they would count as dangling.
        log = self.docker(
            *args, "--target=build", "-t", f"{tag}-build", str(context), timeout=1800
        ).stdout
        log += self.docker(*args, "-t", tag, str(context), timeout=1800).stdout
        # Earlier builds' images, untagged by this one: vfs keeps a full copy per layer.
        self.docker("image", "prune", "--force", check=False, timeout=600)
        return log
