"""Apply and prune order, stage one, and how objects are named in the inventory."""

from __future__ import annotations

from typing import Any

import pytest

from automator.errors import ManifestError
from automator.sync.order import ObjectId, delete_key, group_of, is_stage_one, sort_key


def obj(kind: str, name: str, namespace: str | None = None, api: str = "v1") -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    return {"apiVersion": api, "kind": kind, "metadata": metadata}


def kinds(objects: list[dict[str, Any]]) -> list[str]:
    return [str(ObjectId.from_obj(o)) for o in objects]


def test_objects_are_applied_in_helm_install_order_then_custom_resources_then_webhooks() -> None:
    shuffled = [
        obj("ValidatingWebhookConfiguration", "vw", api="admissionregistration.k8s.io/v1"),
        obj("Certificate", "tls", "app", api="cert-manager.io/v1"),
        obj("Deployment", "web", "app", api="apps/v1"),
        obj("Service", "web", "app"),
        obj("CustomResourceDefinition", "certs", api="apiextensions.k8s.io/v1"),
        obj("ConfigMap", "cfg", "app"),
        obj("Secret", "s", "app"),
        obj("ServiceAccount", "sa", "app"),
        obj("Namespace", "app"),
        obj("PriorityClass", "high", api="scheduling.k8s.io/v1"),
        obj("Ingress", "web", "app", api="networking.k8s.io/v1"),
        obj("IngressClass", "nginx", api="networking.k8s.io/v1"),
        obj("MutatingWebhookConfiguration", "mw", api="admissionregistration.k8s.io/v1"),
    ]

    assert kinds(sorted(shuffled, key=sort_key)) == [
        "PriorityClass.scheduling.k8s.io/high",
        "Namespace/app",
        "ServiceAccount/app/sa",
        "Secret/app/s",
        "ConfigMap/app/cfg",
        "CustomResourceDefinition.apiextensions.k8s.io/certs",
        "Service/app/web",
        "Deployment.apps/app/web",
        "IngressClass.networking.k8s.io/nginx",
        "Ingress.networking.k8s.io/app/web",
        "Certificate.cert-manager.io/app/tls",
        "MutatingWebhookConfiguration.admissionregistration.k8s.io/mw",
        "ValidatingWebhookConfiguration.admissionregistration.k8s.io/vw",
    ]


def test_a_custom_resource_named_like_a_built_in_kind_is_ordered_as_a_custom_resource() -> None:
    knative = obj("Service", "web", "app", api="serving.knative.dev/v1")
    core = obj("Service", "web", "app")
    deployment = obj("Deployment", "web", "app", api="apps/v1")

    assert sort_key(core) < sort_key(deployment) < sort_key(knative)


def test_objects_of_the_same_kind_are_ordered_by_namespace_then_name() -> None:
    objects = [obj("ConfigMap", "b", "y"), obj("ConfigMap", "a", "y"), obj("ConfigMap", "z", "x")]

    assert kinds(sorted(objects, key=sort_key)) == [
        "ConfigMap/x/z",
        "ConfigMap/y/a",
        "ConfigMap/y/b",
    ]


def test_unknown_kinds_are_ordered_alphabetically_among_themselves() -> None:
    objects = [obj("Zebra", "z", "n", api="ex.com/v1"), obj("Apple", "a", "n", api="ex.com/v1")]

    assert kinds(sorted(objects, key=sort_key)) == ["Apple.ex.com/n/a", "Zebra.ex.com/n/z"]


def test_pruning_deletes_webhooks_and_custom_resources_before_crds_and_namespaces() -> None:
    ids = [
        ObjectId("", "Namespace", None, "app"),
        ObjectId("apiextensions.k8s.io", "CustomResourceDefinition", None, "certs"),
        ObjectId("cert-manager.io", "Certificate", "app", "tls"),
        ObjectId("apps", "Deployment", "app", "web"),
        ObjectId("admissionregistration.k8s.io", "ValidatingWebhookConfiguration", None, "vw"),
    ]

    assert [i.kind for i in sorted(ids, key=delete_key)] == [
        "ValidatingWebhookConfiguration",
        "Certificate",
        "Deployment",
        "CustomResourceDefinition",
        "Namespace",
    ]


def test_sort_key_takes_an_object_id_as_well_as_an_object() -> None:
    deployment = obj("Deployment", "web", "app", api="apps/v1")

    assert sort_key(deployment) == sort_key(ObjectId.from_obj(deployment))


@pytest.mark.parametrize(
    ("api", "kind", "expected"),
    [
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition", True),
        ("v1", "Namespace", True),
        ("rbac.authorization.k8s.io/v1", "ClusterRole", True),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", True),
        ("rbac.authorization.k8s.io/v1", "Role", False),
        ("v1", "ServiceAccount", False),
        ("apps/v1", "Deployment", False),
        ("example.com/v1", "Namespace", False),
    ],
)
def test_stage_one_holds_crds_namespaces_and_cluster_rbac(
    api: str, kind: str, expected: bool
) -> None:
    assert is_stage_one(obj(kind, "x", api=api)) is expected


def test_the_group_of_a_core_api_version_is_empty() -> None:
    assert (group_of("v1"), group_of("apps/v1"), group_of("cert-manager.io/v1")) == (
        "",
        "apps",
        "cert-manager.io",
    )


def test_an_object_id_reads_like_kubectl_kind_dot_group() -> None:
    assert str(ObjectId.from_obj(obj("Deployment", "web", "prod", api="apps/v1"))) == (
        "Deployment.apps/prod/web"
    )
    assert str(ObjectId.from_obj(obj("ConfigMap", "cfg", "prod"))) == "ConfigMap/prod/cfg"
    assert str(ObjectId.from_obj(obj("Namespace", "prod"))) == "Namespace/prod"


def test_the_api_version_is_not_part_of_the_identity() -> None:
    v1 = ObjectId.from_obj(obj("HorizontalPodAutoscaler", "h", "n", api="autoscaling/v1"))
    v2 = ObjectId.from_obj(obj("HorizontalPodAutoscaler", "h", "n", api="autoscaling/v2"))

    assert v1 == v2


def test_a_default_namespace_is_given_to_namespaced_objects_only() -> None:
    config = ObjectId.from_obj(obj("ConfigMap", "cfg"), default_namespace="apps")
    role = ObjectId.from_obj(
        obj("ClusterRole", "r", api="rbac.authorization.k8s.io/v1"), default_namespace="apps"
    )
    explicit = ObjectId.from_obj(obj("ConfigMap", "cfg", "mine"), default_namespace="apps")

    assert (config.namespace, role.namespace, explicit.namespace) == ("apps", None, "mine")


@pytest.mark.parametrize(
    "object_id",
    [
        ObjectId("apps", "Deployment", "prod", "web"),
        ObjectId("", "ConfigMap", "prod", "cfg.v1"),
        ObjectId("", "Namespace", None, "prod"),
        ObjectId("rbac.authorization.k8s.io", "ClusterRole", None, "system:aggregate-to-edit"),
        ObjectId("cert-manager.io", "Certificate", "prod", "tls"),
    ],
)
def test_an_object_id_survives_the_inventory_round_trip(object_id: ObjectId) -> None:
    assert ObjectId.from_json(object_id.to_json()) == object_id


@pytest.mark.parametrize("entry", ["", "Deployment", "/prod/web", "Deployment//web", "a/b/c/d", 7])
def test_a_malformed_inventory_entry_is_refused(entry: object) -> None:
    with pytest.raises(ManifestError, match="not an object id"):
        ObjectId.from_json(entry)


def test_an_object_without_a_name_cannot_be_identified() -> None:
    with pytest.raises(ManifestError, match=r"metadata\.name"):
        ObjectId.from_obj({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}})
