"""The ``sync:`` section of the configuration: its defaults, and an error for each bad value
that names the key path (so the user knows which line to fix) and what to write instead."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from automator.config import (
    Settings,
    SyncPath,
    SyncVerify,
    load_settings,
    settings_from_mapping,
)
from automator.errors import ConfigError

_GIT = {"url": "file:///srv/config.git"}


def _settings(sync: Any = None, **top: Any) -> Settings:
    doc: dict[str, Any] = {"git": _GIT, **top}
    if sync is not None:
        doc["sync"] = sync
    return settings_from_mapping(doc)


def test_a_config_without_a_sync_section_gets_the_documented_defaults() -> None:
    sync = _settings().sync
    assert sync.interval == 60.0
    assert sync.timeout == 300.0
    assert sync.mode == "correct"
    assert sync.prune is True
    assert sync.paths == (SyncPath(path="."),)
    assert sync.paths[0].namespace is None
    assert sync.name == "default"
    assert sync.namespace == "automator-system"
    assert sync.kubeconfig is None
    assert sync.context is None
    assert sync.verify is None
    assert sync.workdir is None
    assert sync.max_concurrency == 8
    assert sync.listen is None


def test_every_sync_key_is_read_from_a_yaml_file(tmp_path: Path) -> None:
    config = tmp_path / "automator.yaml"
    config.write_text(
        f"""\
git: {{url: "file:///srv/config.git"}}
sync:
  interval: 2m
  timeout: 1m30s
  mode: report
  prune: false
  paths:
    - path: clusters/prod
      namespace: prod
    - {{path: infra}}
  name: prod-eu
  namespace: gitops
  kubeconfig: {tmp_path / "kubeconfig"}
  context: admin@prod
  verify: {{allowed_signers_file: {tmp_path / "signers"}}}
  workdir: {tmp_path / "sync-clone"}
  max_concurrency: 16
  listen: 127.0.0.1:9090
""",
        encoding="utf-8",
    )
    sync = load_settings(config).sync
    assert sync.interval == 120.0
    assert sync.timeout == 90.0
    assert sync.mode == "report"
    assert sync.prune is False
    assert sync.paths == (
        SyncPath(path="clusters/prod", namespace="prod"),
        SyncPath(path="infra"),
    )
    assert sync.name == "prod-eu"
    assert sync.namespace == "gitops"
    assert sync.kubeconfig == tmp_path / "kubeconfig"
    assert sync.context == "admin@prod"
    assert sync.verify == SyncVerify(allowed_signers_file=tmp_path / "signers")
    assert sync.workdir == tmp_path / "sync-clone"
    assert sync.max_concurrency == 16
    assert sync.listen == "127.0.0.1:9090"


@pytest.mark.parametrize(
    ("sync", "key", "fix"),
    [
        pytest.param({"mode": "fix"}, "key sync.mode:", "'correct' or 'report'", id="mode"),
        pytest.param({"paths": []}, "key sync.paths:", "list at least one path", id="no-paths"),
        pytest.param({"paths": "deploy"}, "key sync.paths:", "a list", id="paths-not-a-list"),
        pytest.param(
            {"paths": [{"path": "/srv/deploy"}]},
            "key sync.paths[0].path:",
            "relative to the repository root",
            id="absolute-path",
        ),
        pytest.param(
            {"paths": [{"path": "ok"}, {"path": "../outside"}]},
            "key sync.paths[1].path:",
            "without '..'",
            id="path-leaves-the-repo",
        ),
        pytest.param(
            {"paths": [{"path": ""}]},
            "key sync.paths[0].path:",
            "relative to the repository root",
            id="empty-path",
        ),
        pytest.param(
            {"paths": [{"namespace": "prod"}]},
            "required key sync.paths[0].path is missing",
            "add it",
            id="path-missing",
        ),
        pytest.param(
            {"paths": [{"path": "ok", "namespace": "Prod_EU"}]},
            "key sync.paths[0].namespace:",
            "lowercase letters, digits and '-'",
            id="bad-target-namespace",
        ),
        pytest.param(
            {"paths": [{"path": "ok", "recurse": True}]},
            "unknown key sync.paths[0].recurse",
            "remove it or correct its spelling",
            id="unknown-path-key",
        ),
        pytest.param(
            {"name": "Prod"}, "key sync.name:", "lowercase letters, digits and '-'", id="name"
        ),
        pytest.param(
            {"namespace": "n" * 64},
            "key sync.namespace:",
            "at most 63",
            id="namespace-too-long",
        ),
        pytest.param({"interval": "soon"}, "key sync.interval:", "write e.g. 30s", id="interval"),
        pytest.param(
            {"interval": "500ms"},
            "key sync.interval:",
            "greater than or equal to 1",
            id="interval-below-a-second",
        ),
        pytest.param({"timeout": "0s"}, "key sync.timeout:", "greater than 0", id="timeout"),
        pytest.param(
            {"max_concurrency": 0},
            "key sync.max_concurrency:",
            "greater than or equal to 1",
            id="no-concurrency",
        ),
        pytest.param(
            {"max_concurrency": 65},
            "key sync.max_concurrency:",
            "less than or equal to 64",
            id="too-much-concurrency",
        ),
        pytest.param({"listen": "8080"}, "key sync.listen:", "host:port", id="listen-no-host"),
        pytest.param(
            {"listen": "127.0.0.1:70000"}, "key sync.listen:", "port 1-65535", id="listen-port"
        ),
        pytest.param(
            {"verify": {}},
            "key sync.verify:",
            "set allowed_signers_file (SSH) or keyring_file (OpenPGP)",
            id="verify-empty",
        ),
        pytest.param(
            {"verify": {"allowed_signers_file": "/etc/signers", "keys": "x"}},
            "unknown key sync.verify.keys",
            "remove it or correct its spelling",
            id="verify-unknown-key",
        ),
        pytest.param(
            {"prune": "sometimes"}, "key sync.prune:", "valid boolean", id="prune-not-a-bool"
        ),
        pytest.param(
            {"dry_run": True},
            "unknown key sync.dry_run",
            "remove it or correct its spelling",
            id="unknown-key",
        ),
    ],
)
def test_a_bad_sync_value_is_refused_with_its_key_path_and_the_fix(
    sync: dict[str, Any], key: str, fix: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        _settings(sync)
    message = str(caught.value)
    assert key in message
    assert fix in message


def test_every_bad_sync_value_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        _settings({"mode": "fix", "paths": [], "max_concurrency": 0})
    message = str(caught.value)
    for key in ("sync.mode", "sync.paths", "sync.max_concurrency"):
        assert f"key {key}:" in message


def test_the_sync_clone_is_beside_the_automators_clone_when_only_workdir_is_set() -> None:
    settings = _settings(workdir="/var/lib/automator/repo")
    assert settings.clone_dir == Path("/var/lib/automator/repo")
    assert settings.sync_clone_dir == Path("/var/lib/automator/repo-sync")


def test_the_sync_clone_defaults_to_its_own_cache_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    settings = _settings()
    assert settings.clone_dir == tmp_path / "automator" / "repo"
    assert settings.sync_clone_dir == tmp_path / "automator" / "sync"


def test_sync_workdir_wins_over_the_derived_folder() -> None:
    settings = _settings({"workdir": "/srv/sync-clone"}, workdir="/srv/clone")
    assert settings.sync_clone_dir == Path("/srv/sync-clone")
    assert settings.clone_dir == Path("/srv/clone")


@pytest.mark.parametrize(
    ("top", "sync"),
    [
        pytest.param({}, {}, id="defaults"),
        pytest.param({"workdir": "/srv/clone"}, {}, id="workdir"),
        pytest.param({"workdir": "/srv/clone/"}, {}, id="workdir-trailing-slash"),
        pytest.param({}, {"workdir": "/srv/sync"}, id="sync-workdir"),
        pytest.param({"workdir": "/srv/a"}, {"workdir": "/srv/b"}, id="both"),
    ],
)
def test_the_sync_clone_is_never_the_automators_clone(
    top: dict[str, Any], sync: dict[str, Any]
) -> None:
    settings = _settings(sync, **top)
    assert settings.sync_clone_dir != settings.clone_dir


def test_a_sync_workdir_equal_to_the_automators_workdir_is_refused() -> None:
    # The automator commits and pushes in its clone and the synchronizer resets its own
    # to the fetched tip: sharing one folder would let either throw away the other's work.
    with pytest.raises(ConfigError) as caught:
        _settings({"workdir": "/srv/clone"}, workdir="/srv/clone")
    assert "sync.workdir" in str(caught.value)
