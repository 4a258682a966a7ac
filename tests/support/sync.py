"""What the synchronizer's integration tests share: a config repo to commit to, the identity
of one synchronizer on the test cluster, and the manifests and report views they use.

Each test file keeps its own way of running the synchronizer (in-process, through the CLI
in a subprocess, or with a fault-injecting transport); :class:`SyncRig` is the part they
have in common.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from automator.config import Settings, settings_from_mapping
from automator.sync import SyncReport
from tests.support.git import git, make_bare_repo
from tests.support.kube import ControlPlane

__all__ = [
    "STATE_NAMESPACE",
    "ConfigRepo",
    "SyncRig",
    "actions",
    "configmap",
    "secret",
]

STATE_NAMESPACE = "automator-system"
"""Where the synchronizers under test keep their state records."""


class ConfigRepo:
    """A bare config repo under ``root/remote`` and an author's clone of it at ``root/author``."""

    def __init__(self, root: Path) -> None:
        self.bare = make_bare_repo(root / "remote", "config.git", {"README.md": b"config\n"})
        self.work = root / "author"
        git("clone", "-q", str(self.bare), str(self.work))

    @property
    def url(self) -> str:
        return self.bare.as_uri()

    def commit(
        self,
        files: Mapping[str, str],
        *,
        remove: tuple[str, ...] = (),
        sign_with: Path | None = None,
        keep_tree: bool = False,
    ) -> str:
        """Write ``files``, remove ``remove``, commit (SSH-signed with the private key
        ``sign_with`` if given) and push to ``main``; return the new revision.

        ``keep_tree`` adds a placeholder so ``deploy/`` survives removing its last file.
        """
        for rel, text in files.items():
            path = self.work / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        for rel in remove:
            git("rm", "-q", rel, cwd=self.work)
        if keep_tree:
            (self.work / "deploy").mkdir(exist_ok=True)
            (self.work / "deploy" / "README.md").write_text("kept\n")
        git("add", "-A", cwd=self.work)
        sign = ["-c", "gpg.format=ssh", "-c", f"user.signingkey={sign_with}"] if sign_with else []
        git(*sign, "commit", "-q", *(["-S"] if sign_with else []), "-m", "change", cwd=self.work)
        git("push", "-q", "origin", "HEAD:main", cwd=self.work)
        return git("rev-parse", "HEAD", cwd=self.work).strip()


class SyncRig:
    """One config repo and one synchronizer's identity on the test cluster.

    The synchronizer has its own sync name (so its own inventory and state record) and
    syncs ``deploy/`` into ``namespace``. Subclasses decide how it runs.
    """

    timeout = "60s"
    """``sync.timeout`` in :meth:`settings`."""

    def __init__(self, root: Path, cluster: ControlPlane, namespace: str) -> None:
        self.root = root
        self.cluster = cluster
        self.namespace = namespace
        self.name = f"s-{uuid.uuid4().hex[:8]}"
        self.repo = ConfigRepo(root)
        self.commit = self.repo.commit
        """Commit and push to the config repo: :meth:`ConfigRepo.commit`."""

    def settings(self, **sync: Any) -> Settings:
        """The settings of this synchronizer; ``sync`` adds or replaces keys of ``sync:``."""
        return settings_from_mapping(
            {
                "git": {"url": self.repo.url, "branch": "main"},
                "workdir": str(self.root / "clone"),
                "sync": {
                    "name": self.name,
                    "namespace": STATE_NAMESPACE,
                    "kubeconfig": str(self.cluster.kubeconfig),
                    "paths": [{"path": "deploy", "namespace": self.namespace}],
                    "timeout": self.timeout,
                    **sync,
                },
            }
        )


def configmap(name: str, value: str, annotations: Mapping[str, str] | None = None) -> str:
    """A ConfigMap manifest with ``data.value`` set to ``value``."""
    notes = ""
    if annotations:
        notes = "  annotations:\n" + "".join(f'    {k}: "{v}"\n' for k, v in annotations.items())
    return f"""\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}
{notes}data:
  value: "{value}"
"""


def secret(name: str, value: str, *, key: str = "token") -> str:
    """An Opaque Secret manifest with ``stringData[key]`` set to ``value``."""
    return f"""\
apiVersion: v1
kind: Secret
metadata:
  name: {name}
type: Opaque
stringData:
  {key}: "{value}"
"""


def actions(report: SyncReport) -> dict[str, str]:
    """Each object's action in ``report``, by object id."""
    return {c.id: c.action for c in report.changes}
