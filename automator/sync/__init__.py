"""The synchronizer: apply the config repo to a cluster, prune, report drift and health.

Modules, one job each: :mod:`~automator.sync.render` (repo -> objects, plain YAML and
Kustomize), :mod:`~automator.sync.order` (apply stages and kind order),
:mod:`~automator.sync.drift` (kubediff-style comparison), :mod:`~automator.sync.health`
(rollout rules), :mod:`~automator.sync.state` (inventory and last result, kept in the
cluster) are pure; :mod:`~automator.sync.kube` is the only module that talks to the
apiserver (lightkube); :mod:`~automator.sync.syncer` orchestrates one sync.
"""

from __future__ import annotations

from automator.sync.syncer import Change, DriftReport, Synchronizer, SyncReport

__all__ = ["Change", "DriftReport", "SyncReport", "Synchronizer"]
