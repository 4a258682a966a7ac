"""In which order objects are applied and pruned, and how an object is named.

Pure: no I/O, no client. The applier sorts with :func:`sort_key` and applies the
:func:`is_stage_one` objects first (and waits for CRDs to be established) the way Flux's
kustomize-controller applies "cluster definitions" before everything else; pruning sorts
with :func:`delete_key`.

The kind order is Helm's ``InstallOrder`` (pkg/releaseutil/kind_sorter.go), which people
already know from ``helm install``, with two deliberate differences:

* a kind counts as the built-in one only in its own API group: a Knative ``Service``
  (serving.knative.dev) is a custom resource, not a core Service;
* admission webhook configurations come last, *after* custom resources. Helm 4 puts them
  before custom resources, and charts whose webhook validates their own custom resources
  broke (the webhook's Deployment is not serving yet when the custom resources arrive).
  Applying them last is what kustomize and kubecfg do.

Pruning runs the same classes in reverse (webhooks and custom resources are deleted
before the CRDs and Namespaces that would take them down anyway), by name within a kind.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from automator.errors import ManifestError

__all__ = ["ObjectId", "delete_key", "group_of", "is_stage_one", "sort_key"]

_CORE = frozenset({""})
_APPS = frozenset({"apps", "extensions"})
_RBAC = frozenset({"rbac.authorization.k8s.io"})
_NETWORKING = frozenset({"networking.k8s.io", "extensions"})

# Helm's InstallOrder (v3.13+: PriorityClass first, SecretList, IngressClass), each kind
# with the API groups it is built into ("extensions" is the pre-1.16 home of several).
_INSTALL_ORDER: tuple[tuple[str, frozenset[str]], ...] = (
    ("PriorityClass", frozenset({"scheduling.k8s.io"})),
    ("Namespace", _CORE),
    ("NetworkPolicy", _NETWORKING),
    ("ResourceQuota", _CORE),
    ("LimitRange", _CORE),
    ("PodSecurityPolicy", frozenset({"policy", "extensions"})),
    ("PodDisruptionBudget", frozenset({"policy"})),
    ("ServiceAccount", _CORE),
    ("Secret", _CORE),
    ("SecretList", _CORE),
    ("ConfigMap", _CORE),
    ("StorageClass", frozenset({"storage.k8s.io"})),
    ("PersistentVolume", _CORE),
    ("PersistentVolumeClaim", _CORE),
    ("CustomResourceDefinition", frozenset({"apiextensions.k8s.io"})),
    ("ClusterRole", _RBAC),
    ("ClusterRoleList", _RBAC),
    ("ClusterRoleBinding", _RBAC),
    ("ClusterRoleBindingList", _RBAC),
    ("Role", _RBAC),
    ("RoleList", _RBAC),
    ("RoleBinding", _RBAC),
    ("RoleBindingList", _RBAC),
    ("Service", _CORE),
    ("DaemonSet", _APPS),
    ("Pod", _CORE),
    ("ReplicationController", _CORE),
    ("ReplicaSet", _APPS),
    ("Deployment", _APPS),
    ("HorizontalPodAutoscaler", frozenset({"autoscaling"})),
    ("StatefulSet", frozenset({"apps"})),
    ("Job", frozenset({"batch"})),
    ("CronJob", frozenset({"batch"})),
    ("IngressClass", frozenset({"networking.k8s.io"})),
    ("Ingress", _NETWORKING),
    ("APIService", frozenset({"apiregistration.k8s.io"})),
)
_RANK: dict[tuple[str, str], int] = {
    (group, kind): rank for rank, (kind, groups) in enumerate(_INSTALL_ORDER) for group in groups
}
_UNKNOWN = len(_INSTALL_ORDER)  # custom resources and built-ins Helm does not list
_ADMISSION = "admissionregistration.k8s.io"
_LAST: dict[tuple[str, str], int] = {
    (_ADMISSION, "MutatingWebhookConfiguration"): _UNKNOWN + 1,
    (_ADMISSION, "ValidatingWebhookConfiguration"): _UNKNOWN + 2,
}

_STAGE_ONE = frozenset(
    {
        ("apiextensions.k8s.io", "CustomResourceDefinition"),
        ("", "Namespace"),
        ("rbac.authorization.k8s.io", "ClusterRole"),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    }
)

# Built-in kinds that have no namespace, so a default namespace must not be given to them.
# Custom resources are not known here: the caller, which has discovery, passes
# ``default_namespace=None`` for a cluster-scoped one.
_CLUSTER_SCOPED = frozenset(
    {
        ("", "Namespace"),
        ("", "Node"),
        ("", "PersistentVolume"),
        ("", "ComponentStatus"),
        ("scheduling.k8s.io", "PriorityClass"),
        ("storage.k8s.io", "StorageClass"),
        ("storage.k8s.io", "CSIDriver"),
        ("storage.k8s.io", "CSINode"),
        ("storage.k8s.io", "VolumeAttachment"),
        ("apiextensions.k8s.io", "CustomResourceDefinition"),
        ("apiregistration.k8s.io", "APIService"),
        ("rbac.authorization.k8s.io", "ClusterRole"),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
        ("networking.k8s.io", "IngressClass"),
        ("node.k8s.io", "RuntimeClass"),
        ("policy", "PodSecurityPolicy"),
        ("certificates.k8s.io", "CertificateSigningRequest"),
        ("flowcontrol.apiserver.k8s.io", "FlowSchema"),
        ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration"),
        (_ADMISSION, "MutatingWebhookConfiguration"),
        (_ADMISSION, "ValidatingWebhookConfiguration"),
        (_ADMISSION, "ValidatingAdmissionPolicy"),
        (_ADMISSION, "ValidatingAdmissionPolicyBinding"),
    }
)


def group_of(api_version: str) -> str:
    """The API group of an ``apiVersion``: ``apps/v1`` is ``apps``, ``v1`` is the core ``""``."""
    group, sep, _ = api_version.rpartition("/")
    return group if sep else ""


@dataclass(frozen=True)
class ObjectId:
    """Who an object is, independent of its API version: what the inventory remembers.

    The version is left out on purpose: ``apps/v1`` and ``apps/v1beta2`` name the same
    stored object, so an apiVersion bump in Git must not look like delete-and-create.
    """

    group: str
    kind: str
    namespace: str | None
    name: str

    @classmethod
    def from_obj(cls, obj: Mapping[str, Any], default_namespace: str | None = None) -> ObjectId:
        """The id of a Kubernetes object dict.

        ``default_namespace`` fills in a missing ``metadata.namespace`` (like ``kubectl
        apply -n``), except for built-in cluster-scoped kinds, which never get one.
        """
        api_version = obj.get("apiVersion")
        kind = obj.get("kind")
        metadata = obj.get("metadata")
        name = metadata.get("name") if isinstance(metadata, Mapping) else None
        namespace = metadata.get("namespace") if isinstance(metadata, Mapping) else None
        if not (
            isinstance(api_version, str)
            and isinstance(kind, str)
            and isinstance(name, str)
            and (namespace is None or isinstance(namespace, str))
        ):
            raise ManifestError(
                f"object {_describe(obj)}: needs string apiVersion, kind and metadata.name "
                "(and a string metadata.namespace, if any): fix the manifest"
            )
        group = group_of(api_version)
        if not namespace:
            namespace = None if (group, kind) in _CLUSTER_SCOPED else default_namespace
        return cls(group=group, kind=kind, namespace=namespace, name=name)

    def __str__(self) -> str:
        """``Deployment.apps/prod/web``, ``ConfigMap/prod/cfg``, ``Namespace/prod``.

        The kubectl ``kind.group`` spelling; the core group is left out.
        """
        kind = f"{self.kind}.{self.group}" if self.group else self.kind
        if self.namespace is None:
            return f"{kind}/{self.name}"
        return f"{kind}/{self.namespace}/{self.name}"

    def to_json(self) -> str:
        """The :meth:`__str__` form, which is also what the inventory stores.

        It reads back without ambiguity: a kind has no ``.``, and neither a namespace nor
        an object name may contain ``/`` (the apiserver refuses them in path segments).
        """
        return str(self)

    @classmethod
    def from_json(cls, data: object) -> ObjectId:
        """Read back :meth:`to_json`; anything else is refused rather than guessed at,
        because a wrong id in the inventory would prune the wrong object."""
        if isinstance(data, str):
            parts = data.split("/")
            kind, _, group = parts[0].partition(".")
            if len(parts) in (2, 3) and kind and all(parts[1:]):
                namespace = parts[1] if len(parts) == 3 else None
                return cls(group=group, kind=kind, namespace=namespace, name=parts[-1])
        raise ManifestError(
            f"inventory entry {data!r} is not an object id (Kind[.group][/namespace]/name, "
            "e.g. Deployment.apps/prod/web): repair the inventory or delete it so that the "
            "next sync writes a new one"
        )


def _describe(obj: Mapping[str, Any]) -> str:
    metadata = obj.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    return f"{obj.get('kind', '?')}/{name if name is not None else '?'}"


def _id(obj: Mapping[str, Any] | ObjectId) -> ObjectId:
    return obj if isinstance(obj, ObjectId) else ObjectId.from_obj(obj)


def _rank(object_id: ObjectId) -> int:
    key = (object_id.group, object_id.kind)
    return _RANK.get(key, _LAST.get(key, _UNKNOWN))


def is_stage_one(obj: Mapping[str, Any] | ObjectId) -> bool:
    """True for the objects other objects need to exist first: CRDs (custom resources need
    their type), Namespaces (namespaced objects need their home) and cluster-wide RBAC
    (ServiceAccounts in the second stage are bound to it)."""
    object_id = _id(obj)
    return (object_id.group, object_id.kind) in _STAGE_ONE


def sort_key(obj: Mapping[str, Any] | ObjectId) -> tuple[int, str, str, str, str]:
    """Apply order: kind class (Helm's list, then other kinds, then admission webhooks),
    then kind, group, namespace and name, so the order never depends on the file order."""
    object_id = _id(obj)
    return (
        _rank(object_id),
        object_id.kind,
        object_id.group,
        object_id.namespace or "",
        object_id.name,
    )


def delete_key(obj: Mapping[str, Any] | ObjectId) -> tuple[int, str, str, str, str]:
    """Prune order: the kind classes of :func:`sort_key` reversed, by name within a kind.

    Takes an :class:`ObjectId` too, because what is pruned is known only from the inventory.
    """
    rank, kind, group, namespace, name = sort_key(obj)
    return (-rank, kind, group, namespace, name)
