"""The Lease store of leader election: one ``coordination.k8s.io/v1`` Lease over lightkube.

Why its own module rather than :mod:`automator.sync.kube`: that adapter belongs to the
synchronizer, a separate process with cluster-wide credentials whose errors name
``sync.*`` keys; the automator must not depend on the synchronizer package (nor the other
way round), and all it needs from the cluster is get, create and update of one object with
compare-and-swap on ``resourceVersion``. So lightkube is imported by these two modules
only (import-linter contract), each translating its errors at its own boundary.

Errors: 409 Conflict (someone else wrote first) is :class:`~automator.errors.ClusterError`
with ``status`` 409, which the elector treats as "lost this round"; other refusals are
ClusterError with the fix (RBAC, credentials); network failures, 429 and 5xx are
:class:`~automator.errors.ClusterUnavailable`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import httpx
from lightkube import ApiError, Client, KubeConfig
from lightkube.config.kubeconfig import SingleConfig
from lightkube.models.coordination_v1 import LeaseSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.coordination_v1 import Lease

from automator.config import LeaderElectionSettings
from automator.errors import ClusterError, ClusterUnavailable, ConfigError
from automator.leader import LeaseRecord

__all__ = ["KubeLeaseStore"]

_T = TypeVar("_T")


class KubeLeaseStore:
    """Get, create and compare-and-swap one Lease (implements ``leader.LeaseStore``)."""

    def __init__(
        self,
        name: str,
        namespace: str,
        *,
        kubeconfig: Path | None = None,
        context: str | None = None,
        timeout: float = 5.0,
    ) -> None:
        self.name, self.namespace = name, namespace
        config = _load_config(kubeconfig, context)
        self.server = config.cluster.server
        self._client = Client(config=config, timeout=httpx.Timeout(timeout), trust_env=False)

    @classmethod
    def from_settings(cls, settings: LeaderElectionSettings) -> KubeLeaseStore:
        # A request may not outlast half the renew deadline: the leader must get a
        # second try before it has to stop writing.
        return cls(
            settings.lease,
            settings.namespace,
            kubeconfig=settings.kubeconfig,
            context=settings.context,
            timeout=max(0.5, settings.renew_deadline / 2),
        )

    def close(self) -> None:
        self._client.close()

    def describe(self) -> str:
        return f"Lease {self.namespace}/{self.name}"

    def get(self) -> LeaseRecord | None:
        try:
            lease = self._call(lambda: self._client.get(Lease, self.name, namespace=self.namespace))
        except ClusterError as exc:
            if exc.status == 404:
                return None
            raise
        return _record(lease)

    def create(self, record: LeaseRecord) -> LeaseRecord:
        lease = Lease(
            metadata=ObjectMeta(name=self.name, namespace=self.namespace),
            spec=_spec(record),
        )
        return _record(self._call(lambda: self._client.create(lease)))

    def update(self, record: LeaseRecord) -> LeaseRecord:
        """PUT the record with its ``resourceVersion``: 409 if the Lease changed since."""
        lease = Lease(
            metadata=ObjectMeta(
                name=self.name, namespace=self.namespace, resourceVersion=record.version
            ),
            spec=_spec(record),
        )
        return _record(self._call(lambda: self._client.replace(lease)))

    def _call(self, fn: Callable[[], _T]) -> _T:
        what = self.describe()
        try:
            return fn()
        except ApiError as exc:
            status = exc.response.status_code if exc.response is not None else 0
            message = exc.status.message or str(exc)
            if status == 429 or status >= 500:
                raise ClusterUnavailable(
                    f"{what}: the apiserver answered {status} ({message}); will retry"
                ) from exc
            raise ClusterError(
                f"{what}: {message}{self._fix_for(status)}",
                status=status,
                reason=exc.status.reason or "",
            ) from exc
        except httpx.HTTPError as exc:
            raise ClusterUnavailable(
                f"{what}: cannot reach the apiserver at {self.server} ({exc.__class__.__name__}: "
                f"{exc}); check leader_election.kubeconfig and the network"
            ) from exc

    def _fix_for(self, status: int) -> str:
        if status == 401:
            return "; the apiserver refused the credentials: renew the ServiceAccount token"
        if status == 403:
            return (
                f"; grant get, create and update on leases (coordination.k8s.io) in namespace "
                f"{self.namespace} to the automator's ServiceAccount (the Role in "
                "deploy/automator.yaml)"
            )
        return ""


def _spec(record: LeaseRecord) -> LeaseSpec:
    return LeaseSpec(
        holderIdentity=record.holder,
        leaseDurationSeconds=record.duration,
        acquireTime=record.acquire_time,
        renewTime=record.renew_time,
        leaseTransitions=record.transitions,
    )


def _record(lease: Lease) -> LeaseRecord:
    spec = lease.spec or LeaseSpec()
    meta = lease.metadata or ObjectMeta()
    return LeaseRecord(
        holder=spec.holderIdentity or "",
        duration=spec.leaseDurationSeconds or 0,
        acquire_time=spec.acquireTime,
        renew_time=spec.renewTime,
        transitions=spec.leaseTransitions or 0,
        version=meta.resourceVersion or "",
    )


def _load_config(kubeconfig: Path | None, context: str | None) -> SingleConfig:
    try:
        if kubeconfig is not None:
            config = KubeConfig.from_file(str(kubeconfig.expanduser()))
        else:
            config = KubeConfig.from_env()
        single = config.get(context_name=context)
    except Exception as exc:
        where = (
            f"leader_election.kubeconfig {kubeconfig}"
            if kubeconfig
            else "the in-cluster/KUBECONFIG config"
        )
        raise ConfigError(
            f"cannot load {where} for leader election: {exc}; run in a Pod with a "
            "ServiceAccount token, or point leader_election.kubeconfig at a readable "
            "kubeconfig (and leader_election.context at one of its contexts)"
        ) from exc
    if single is None:
        raise ConfigError(
            f"leader_election.context {context!r} is not in the kubeconfig; set it to one "
            "of its contexts"
        )
    return single
