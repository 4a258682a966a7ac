"""Cluster I/O for the synchronizer: the only module that imports lightkube.

Why lightkube rather than the official ``kubernetes`` client: it talks to the apiserver
over httpx, the HTTP stack the rest of the product already uses (one set of TLS, proxy
and timeout behaviour), it does server-side apply and server-side dry-run directly, and it
imports in a fraction of the time with a fraction of the memory. It is pinned below 1.0,
which moved to the ``httpx2`` fork.

Every object goes in and out as a plain ``dict``: types are described by
:class:`ResourceType` (plural and scope) and reach lightkube as *generic* resource
classes that are never registered globally, so built-in kinds are not decoded into model
dataclasses (1,000 objects per sync) and two clients never fight over lightkube's
registry. Built-in kinds are found in lightkube's models (no discovery round trip);
custom kinds are learnt from CustomResourceDefinitions, the ones in Git first, then the
ones in the cluster.

Library errors are translated here: an API refusal of one object is
:class:`~automator.errors.ClusterError` (permanent, with the server's reason), a network
failure, 429 or 5xx is :class:`~automator.errors.ClusterUnavailable` (transient).
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import httpx
import lightkube.resources
from lightkube import ApiError, Client, KubeConfig
from lightkube.config.kubeconfig import SingleConfig
from lightkube.core import resource as lk_resource
from lightkube.core.exceptions import LoadResourceError
from lightkube.core.resource_registry import resource_registry
from lightkube.generic_resource import (
    GenericGlobalResource,
    GenericNamespacedResource,
    create_api_info,
)
from lightkube.types import CascadeType, PatchType

from automator.errors import ClusterError, ClusterUnavailable, ConfigError

__all__ = ["FIELD_MANAGER", "Kube", "ResourceType", "api_group"]

FIELD_MANAGER = "automator"
_PAGE = 500
_T = TypeVar("_T")


def api_group(api_version: str) -> str:
    """``apps`` for ``apps/v1``, ``""`` for ``v1``."""
    return api_version.rpartition("/")[0]


@dataclass(frozen=True)
class ResourceType:
    """What the apiserver needs to address one kind: group, version, plural and scope."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def lightkube_class(self) -> type[Any]:
        """A generic, unregistered lightkube class for this type (dict in, dict out)."""
        base: type[Any] = GenericNamespacedResource if self.namespaced else GenericGlobalResource
        info = create_api_info(self.group, self.version, self.kind, self.plural)
        return type(self.kind, (base,), {"_api_info": info})


class Kube:
    """One apiserver connection with a type cache; safe to share between threads."""

    def __init__(
        self,
        kubeconfig: Path | None = None,
        context: str | None = None,
        *,
        timeout: float = 30.0,
        field_manager: str = FIELD_MANAGER,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._field_manager = field_manager
        config = _load_config(kubeconfig, context)
        self.server = config.cluster.server
        self._client = Client(
            config=config,
            field_manager=field_manager,
            timeout=httpx.Timeout(timeout),
            trust_env=False,
            transport=_Shared(transport) if transport is not None else None,
        )
        self._types: dict[tuple[str, str], ResourceType] = {}
        self._classes: dict[ResourceType, type[Any]] = {}
        self._lock = threading.Lock()
        self._crds_loaded_at = 0.0
        self.requests = 0

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Kube:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ types

    def learn_crd(self, crd: Mapping[str, Any]) -> None:
        """Remember the kinds a CustomResourceDefinition (from Git or the cluster) serves.

        Only served versions count: a version with ``served: false`` answers 404.
        Malformed definitions are ignored here; the apiserver refuses them on apply.
        """
        spec = crd.get("spec")
        names = spec.get("names") if isinstance(spec, Mapping) else None
        if not isinstance(spec, Mapping) or not isinstance(names, Mapping):
            return
        group, kind, plural = spec.get("group"), names.get("kind"), names.get("plural")
        if not (isinstance(group, str) and isinstance(kind, str) and isinstance(plural, str)):
            return
        namespaced = spec.get("scope", "Namespaced") == "Namespaced"
        versions = spec.get("versions")
        with self._lock:
            for version in versions if isinstance(versions, list) else ():
                if not isinstance(version, Mapping) or version.get("served") is False:
                    continue
                name = version.get("name")
                if isinstance(name, str):
                    rtype = ResourceType(group, name, kind, plural, namespaced)
                    self._types[(rtype.api_version, kind)] = rtype

    def served_type(self, group: str, kind: str, version: str) -> ResourceType | None:
        """``kind`` at ``version`` if served, else at any version served for the group.

        For pruning: the version an object was applied at may no longer be served (a CRD
        dropped it), while the object itself is still reachable at another version.
        """
        api_version = f"{group}/{version}" if group else version
        try:
            return self.resource_type(api_version, kind)
        except ClusterError:
            pass
        with self._lock:
            for rtype in self._types.values():
                if rtype.group == group and rtype.kind == kind:
                    return rtype
        return None

    def kinds(self, *, namespaced_only: bool = False) -> list[list[ResourceType]]:
        """Every listable kind this client can address, each as its versions, the
        preferred first (GA before beta before alpha, higher before lower).

        Built-in kinds come from lightkube's models, custom kinds from the cluster's
        CRDs. Not every version need be served: :meth:`list_served` falls back.
        """
        self._load_cluster_crds()
        found = dict.fromkeys(_builtin_types())
        with self._lock:
            found.update(dict.fromkeys(self._types.values()))
        by_kind: dict[tuple[str, str], list[ResourceType]] = {}
        for rtype in found:
            if rtype.namespaced or not namespaced_only:
                by_kind.setdefault((rtype.group, rtype.kind), []).append(rtype)
        return [
            sorted(versions, key=lambda t: _version_rank(t.version), reverse=True)
            for _, versions in sorted(by_kind.items())
        ]

    def list_served(
        self,
        versions: Sequence[ResourceType],
        *,
        namespace: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> tuple[ResourceType, list[dict[str, Any]]] | None:
        """LIST one kind at its first served version; None when no version is served."""
        for rtype in versions:
            try:
                return rtype, self.list(rtype, namespace=namespace, labels=labels)
            except ClusterError as exc:
                if exc.status not in (404, 405):
                    raise
        return None

    def resource_type(self, api_version: str, kind: str) -> ResourceType:
        """The type of ``kind`` in ``api_version``; ClusterError when nothing serves it."""
        key = (api_version, kind)
        found = self._types.get(key) or _builtin_type(api_version, kind)
        if found is None and time.monotonic() - self._crds_loaded_at > 5.0:
            self._load_cluster_crds()
            found = self._types.get(key)
        if found is None:
            raise ClusterError(
                f"{kind} ({api_version}): the cluster serves no such kind; check apiVersion "
                "and kind, or add the CustomResourceDefinition that defines it to the repo"
            )
        with self._lock:
            self._types[key] = found
        return found

    def _load_cluster_crds(self) -> None:
        crd_type = ResourceType(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            False,
        )
        for crd in self.list(crd_type):
            self.learn_crd(crd)
        self._crds_loaded_at = time.monotonic()

    def _class(self, rtype: ResourceType) -> type[Any]:
        cls = self._classes.get(rtype)
        if cls is None:
            cls = rtype.lightkube_class()
            with self._lock:
                self._classes[rtype] = cls
        return cls

    # ------------------------------------------------------------------ verbs

    def apply(self, obj: Mapping[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        """Server-side apply ``obj`` as our field manager, taking over conflicting fields.

        Forcing is what Flux does: Git is the source of truth, so a field someone changed
        by hand (and now owns) is taken back instead of failing the whole sync.
        """
        rtype = self.resource_type(obj["apiVersion"], obj["kind"])
        meta = obj["metadata"]
        result = self._call(
            lambda: self._client.patch(
                self._class(rtype),
                meta["name"],
                dict(obj),
                namespace=meta.get("namespace") if rtype.namespaced else None,
                patch_type=PatchType.APPLY,
                field_manager=self._field_manager,
                force=True,
                dry_run=dry_run,
            ),
            what=_describe(rtype, meta.get("namespace"), meta["name"]),
        )
        return _plain(result)

    def get(
        self, rtype: ResourceType, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        """The live object, or ``None`` when it does not exist."""
        try:
            result = self._call(
                lambda: self._client.get(
                    self._class(rtype), name, namespace=namespace if rtype.namespaced else None
                ),
                what=_describe(rtype, namespace, name),
            )
        except ClusterError as exc:
            if exc.status == 404:
                return None
            raise
        return _plain(result)

    def list(
        self,
        rtype: ResourceType,
        *,
        namespace: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> list[dict[str, Any]]:
        """Every object of one type (in one namespace, or all), optionally by labels."""
        ns: Any = namespace if namespace is not None else ("*" if rtype.namespaced else None)

        def run() -> list[dict[str, Any]]:
            items: Iterator[Any] = iter(
                self._client.list(
                    self._class(rtype), namespace=ns, labels=dict(labels or {}), chunk_size=_PAGE
                )
            )
            return [_plain(item) for item in items]

        found = self._call(run, what=f"{rtype.kind} ({rtype.api_version}) list")
        with self._lock:  # lightkube pages by itself: count the pages it fetched
            self.requests += max(0, -(-len(found) // _PAGE) - 1)
        return found

    def delete(self, rtype: ResourceType, name: str, namespace: str | None = None) -> bool:
        """Delete one object (dependents in the background); False when already gone."""
        try:
            self._call(
                lambda: self._client.delete(
                    self._class(rtype),
                    name,
                    namespace=namespace if rtype.namespaced else None,
                    cascade=CascadeType.BACKGROUND,
                ),
                what=_describe(rtype, namespace, name),
            )
        except ClusterError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def _call(self, fn: Callable[[], _T], *, what: str) -> _T:
        with self._lock:
            self.requests += 1
        try:
            return fn()
        except ApiError as exc:
            status = exc.response.status_code if exc.response is not None else 0
            message = exc.status.message or str(exc)
            reason = exc.status.reason or ""
            if status == 429 or status >= 500:
                raise ClusterUnavailable(
                    f"{what}: the apiserver answered {status} ({message}); will retry"
                ) from exc
            raise ClusterError(
                f"{what}: {message}{_fix_for(status)}", status=status, reason=reason
            ) from exc
        except httpx.HTTPStatusError as exc:
            # an answer without a Status body, e.g. "404 page not found" for a group or
            # version the server does not serve: still an answer, judged by its code
            status = exc.response.status_code
            if status == 429 or status >= 500:
                raise ClusterUnavailable(
                    f"{what}: the apiserver answered {status}; will retry"
                ) from exc
            reason = "NotFound" if status == 404 else ""
            text = (
                "not found (the server does not serve it)"
                if status == 404
                else exc.response.text[:200]
            )
            raise ClusterError(
                f"{what}: {text}{_fix_for(status)}", status=status, reason=reason
            ) from exc
        except httpx.HTTPError as exc:
            raise ClusterUnavailable(
                f"{what}: cannot reach the apiserver at {self.server} ({exc.__class__.__name__}: "
                f"{exc}); check sync.kubeconfig and the network"
            ) from exc


def _fix_for(status: int) -> str:
    if status == 401:
        return "; the credentials in sync.kubeconfig were refused: renew them"
    if status == 403:
        return (
            "; grant the synchronizer's identity this verb with a Role/ClusterRole binding, "
            "or remove the object from the synchronized paths"
        )
    return ""


def _describe(rtype: ResourceType, namespace: str | None, name: str) -> str:
    group = f".{rtype.group}" if rtype.group else ""
    if rtype.namespaced:
        return f"{rtype.kind}{group}/{namespace or 'default'}/{name}"
    return f"{rtype.kind}{group}/{name}"


def _plain(obj: Any) -> dict[str, Any]:
    if isinstance(obj, dict):
        return cast(dict[str, Any], obj.to_dict() if hasattr(obj, "to_dict") else dict(obj))
    return cast(dict[str, Any], obj.to_dict())


def _builtin_type(api_version: str, kind: str) -> ResourceType | None:
    """A built-in kind from lightkube's models, or None for anything else."""
    try:
        model = resource_registry.load(api_version, kind)
    except (LoadResourceError, ImportError, AttributeError, ValueError):
        return None
    if model is None or issubclass(model, (GenericGlobalResource, GenericNamespacedResource)):
        return None
    return _model_type(model)


def _model_type(model: type[Any]) -> ResourceType:
    """The type one of lightkube's model classes addresses."""
    info = lk_resource.api_info(model)
    res = info.resource
    namespaced = issubclass(model, lk_resource.NamespacedResource)
    return ResourceType(res.group, res.version, res.kind, info.plural, namespaced)


_VERSION_RE = re.compile(r"v(\d+)(?:(alpha|beta)(\d+))?")


def _version_rank(version: str) -> tuple[int, int, int]:
    """Kubernetes' version priority: v2 > v1 > v1beta2 > v1beta1 > v1alpha1."""
    match = _VERSION_RE.fullmatch(version)
    if match is None:
        return (-1, 0, 0)
    stability = {"alpha": 0, "beta": 1, None: 2}[match.group(2)]
    return (stability, int(match.group(1)), int(match.group(3) or 0))


@functools.cache
def _builtin_types() -> tuple[ResourceType, ...]:
    """Every listable kind in lightkube's models (computed once)."""
    found: set[ResourceType] = set()
    for module_info in pkgutil.iter_modules(lightkube.resources.__path__):
        module = importlib.import_module(f"lightkube.resources.{module_info.name}")
        for value in vars(module).values():
            if not (isinstance(value, type) and issubclass(value, lk_resource.Resource)):
                continue
            info = getattr(value, "_api_info", None)
            if info is None or info.action or info.parent or "list" not in (info.verbs or ()):
                continue
            found.add(_model_type(value))
    return tuple(sorted(found, key=str))


class _Shared(httpx.BaseTransport):
    """Hands lightkube the caller's transport itself: lightkube deep-copies what it is
    given, and a transport holding an SSL context cannot be copied."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self._inner = inner

    def __deepcopy__(self, memo: dict[int, object]) -> _Shared:
        return self

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


def _load_config(kubeconfig: Path | None, context: str | None) -> SingleConfig:
    try:
        if kubeconfig is not None:
            config = KubeConfig.from_file(str(kubeconfig.expanduser()))
        else:
            config = KubeConfig.from_env()
        single = config.get(context_name=context)
    except Exception as exc:
        where = (
            f"sync.kubeconfig {kubeconfig}" if kubeconfig else "the in-cluster/KUBECONFIG config"
        )
        raise ConfigError(
            f"cannot load {where}: {exc}; point sync.kubeconfig at a readable kubeconfig "
            "(and sync.context at one of its contexts)"
        ) from exc
    if single is None:
        raise ConfigError(
            f"sync.context {context!r} is not in the kubeconfig; set it to one of its contexts"
        )
    return single
