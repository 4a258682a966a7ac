"""Drift between Git and the cluster: only what Git sets, compared the way the server stores it."""

from __future__ import annotations

import base64
import copy
import json
import pickle
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from automator.sync.drift import (
    LAST_APPLIED,
    MASKED,
    Difference,
    Masked,
    compare,
    parse_quantity,
    render_text,
    to_json,
)


def deployment(**overrides: Any) -> dict[str, Any]:
    """What Git holds."""
    obj: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "prod", "labels": {"app": "web"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": "ghcr.io/org/app:1.0.0",
                            "ports": [{"containerPort": 8080}],
                            "resources": {
                                "requests": {"cpu": "500m", "memory": "1Gi"},
                                "limits": {"cpu": 1},
                            },
                        }
                    ]
                },
            },
        },
    }
    obj.update(overrides)
    return obj


def live_of(desired: dict[str, Any]) -> dict[str, Any]:
    """What the apiserver returns for it: defaults, server metadata, status, normalised
    quantities and an injected sidecar."""
    live = copy.deepcopy(desired)
    live["metadata"].update(
        {
            "uid": "5f0c1a2e-0000-4000-8000-000000000000",
            "resourceVersion": "4711",
            "generation": 3,
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "managedFields": [{"manager": "automator", "operation": "Apply"}],
            "annotations": {
                "deployment.kubernetes.io/revision": "3",
                LAST_APPLIED: '{"spec":{"replicas":9}}',
            },
        }
    )
    spec = live["spec"]
    spec.update({"progressDeadlineSeconds": 600, "revisionHistoryLimit": 10})
    pod = spec["template"]["spec"]
    pod.update({"restartPolicy": "Always", "dnsPolicy": "ClusterFirst"})
    app = pod["containers"][0]
    app["ports"][0]["protocol"] = "TCP"
    app["terminationMessagePath"] = "/dev/termination-log"
    app["resources"] = {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "1"}}
    pod["containers"].insert(0, {"name": "istio-proxy", "image": "istio/proxyv2:1.22"})
    live["status"] = {"observedGeneration": 3, "replicas": 2, "readyReplicas": 2}
    return live


def test_an_object_as_the_server_returns_it_has_no_drift() -> None:
    desired = deployment()

    assert compare(desired, live_of(desired)) == []


def test_a_changed_field_is_reported_with_both_values() -> None:
    desired = deployment()
    live = live_of(desired)
    live["spec"]["replicas"] = 3

    assert compare(desired, live) == [Difference("spec.replicas", 2, 3)]


def test_a_container_field_is_found_by_container_name_not_position() -> None:
    desired = deployment()
    live = live_of(desired)
    live["spec"]["template"]["spec"]["containers"][1]["image"] = "ghcr.io/org/app:0.9.0"

    assert compare(desired, live) == [
        Difference(
            "spec.template.spec.containers[name=app].image",
            "ghcr.io/org/app:1.0.0",
            "ghcr.io/org/app:0.9.0",
        )
    ]


def test_a_container_missing_from_the_cluster_is_reported_as_missing() -> None:
    desired = deployment()
    live = live_of(desired)
    live["spec"]["template"]["spec"]["containers"].pop()

    (diff,) = compare(desired, live)

    assert (diff.path, diff.live, diff.missing) == (
        "spec.template.spec.containers[name=app]",
        None,
        True,
    )


def test_a_missing_object_is_one_difference_for_the_whole_object() -> None:
    desired = deployment()

    assert compare(desired, None) == [Difference("", desired, None, missing=True)]


@pytest.mark.parametrize(
    ("git", "cluster"),
    [("1Gi", "1024Mi"), ("500m", "0.5"), (1, "1000m"), ("1", 1), ("1e3", "1k"), ("0.5", 0.5)],
)
def test_resource_quantities_are_compared_by_value(git: object, cluster: object) -> None:
    desired = deployment()
    desired["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] = git
    live = live_of(desired)
    live["spec"]["template"]["spec"]["containers"][1]["resources"]["limits"]["cpu"] = cluster

    assert compare(desired, live) == []


def test_a_different_quantity_is_drift() -> None:
    desired = deployment()
    live = live_of(desired)
    live["spec"]["template"]["spec"]["containers"][1]["resources"]["requests"]["memory"] = "1G"

    assert [d.path for d in compare(desired, live)] == [
        "spec.template.spec.containers[name=app].resources.requests.memory"
    ]


def test_pvc_storage_and_quota_hard_limits_are_quantities_too() -> None:
    pvc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data"},
        "spec": {"resources": {"requests": {"storage": "1Gi"}}},
    }
    quota: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "q"},
        "spec": {"hard": {"pods": 10, "requests.memory": "2Gi"}},
    }
    live_pvc = copy.deepcopy(pvc)
    live_pvc["spec"]["resources"]["requests"]["storage"] = "1073741824"
    live_quota = copy.deepcopy(quota)
    live_quota["spec"]["hard"] = {"pods": "10", "requests.memory": "2048Mi"}

    assert compare(pvc, live_pvc) == []
    assert compare(quota, live_quota) == []


def test_a_number_and_a_numeric_string_differ_outside_quantities() -> None:
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
    desired = {**config, "data": {"port": "8080"}}
    live = {**config, "data": {"port": 8080}}
    flag = deployment()
    flag["spec"]["paused"] = True
    live_flag = live_of(flag)
    live_flag["spec"]["paused"] = 1

    assert compare(desired, live) == [Difference("data.port", "8080", 8080)]
    assert compare(flag, live_flag) == [Difference("spec.paused", True, 1)]


def test_zero_values_the_server_omits_are_not_drift_but_empty_label_values_are() -> None:
    desired = deployment()
    pod = desired["spec"]["template"]["spec"]
    pod.update({"hostNetwork": False, "tolerations": [], "securityContext": {}})
    desired["metadata"]["labels"]["tier"] = ""

    assert compare(desired, live_of(desired) | {"metadata": {"labels": {"app": "web"}}}) == [
        Difference("metadata.labels.tier", "", None, missing=True)
    ]


def test_only_the_labels_and_annotations_git_sets_are_compared() -> None:
    desired = deployment()
    desired["metadata"]["annotations"] = {
        "example.com/owner": "team-a",
        LAST_APPLIED: '{"from": "git"}',
    }
    live = live_of(desired)
    live["metadata"]["annotations"]["example.com/owner"] = "team-b"
    live["metadata"]["labels"]["added-by-hand"] = "yes"
    live["metadata"]["finalizers"] = ["example.com/protect"]

    assert compare(desired, live) == [
        Difference('metadata.annotations["example.com/owner"]', "team-a", "team-b")
    ]


def test_volume_mounts_of_one_volume_are_matched_by_mount_path() -> None:
    desired = deployment()
    desired["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] = [
        {"name": "config", "mountPath": "/etc/a", "subPath": "a"},
        {"name": "config", "mountPath": "/etc/b", "subPath": "b"},
    ]
    live = live_of(desired)
    mounts = live["spec"]["template"]["spec"]["containers"][1]["volumeMounts"]
    mounts.reverse()
    mounts[0]["subPath"] = "changed"

    assert [d.path for d in compare(desired, live)] == [
        "spec.template.spec.containers[name=app].volumeMounts[mountPath=/etc/b].subPath"
    ]


def test_unnamed_service_ports_are_matched_by_port_and_protocol() -> None:
    service: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "dns"},
        "spec": {
            "ports": [
                {"port": 53, "protocol": "UDP", "targetPort": 5353},
                {"port": 53, "targetPort": 5353},
            ]
        },
    }
    live = copy.deepcopy(service)
    live["spec"]["ports"] = [
        {"port": 53, "protocol": "TCP", "targetPort": 5300},
        {"port": 53, "protocol": "UDP", "targetPort": 5353},
    ]

    assert compare(service, live) == [Difference("spec.ports[port=53].targetPort", 5353, 5300)]


def test_a_plain_list_of_a_different_length_is_reported_whole() -> None:
    desired = deployment()
    desired["spec"]["template"]["spec"]["containers"][0]["args"] = ["--a", "--b"]
    live = live_of(desired)
    live["spec"]["template"]["spec"]["containers"][1]["args"] = ["--a"]

    assert compare(desired, live) == [
        Difference("spec.template.spec.containers[name=app].args", ["--a", "--b"], ["--a"])
    ]


def secret(**fields: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db", "namespace": "prod"},
        "type": "Opaque",
        **fields,
    }


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_secret_string_data_is_compared_with_the_decoded_live_data() -> None:
    desired = secret(stringData={"password": "hunter2"}, data={"user": b64("admin")})
    live = secret(data={"password": b64("hunter2"), "user": b64("admin")})

    assert compare(desired, live) == []


def test_a_changed_secret_value_is_detected_but_never_shown() -> None:
    desired = secret(stringData={"password": "hunter2"}, data={"user": b64("admin")})
    live = secret(data={"password": b64("correct-horse"), "token": b64("s3cr3t-token")})

    diffs = compare(desired, live)

    assert diffs == [
        Difference("stringData.password", MASKED, MASKED),
        Difference("data.user", MASKED, None, missing=True),
    ]
    shown = repr(diffs) + render_text("Secret/prod/db", diffs) + json.dumps(to_json(diffs))
    shown += repr(pickle.dumps(diffs))
    for value in ("hunter2", "correct-horse", "admin", b64("hunter2"), b64("admin")):
        assert value not in shown


def test_a_secret_missing_from_the_cluster_is_reported_without_its_values() -> None:
    desired = secret(stringData={"password": "hunter2"}, data={"user": b64("admin")})

    (diff,) = compare(desired, None)

    assert diff.missing
    assert diff.desired["stringData"] == {"password": MASKED}
    assert "hunter2" not in repr(diff)
    assert b64("admin") not in json.dumps(to_json([diff]))


def test_the_masked_marker_carries_no_value() -> None:
    assert Masked() == MASKED
    assert repr(MASKED) == "***"
    assert not hasattr(MASKED, "__dict__")


def test_the_text_report_reads_like_kubediff() -> None:
    diffs = [
        Difference("spec.replicas", 2, 3),
        Difference("spec.template.spec.containers[name=app].image", "app:2", "app:1"),
        Difference("metadata.labels.team", "a", None, missing=True),
        Difference("data.password", MASKED, MASKED),
    ]

    assert render_text("Deployment.apps/prod/web", diffs) == (
        "Deployment.apps/prod/web\n"
        "  spec.replicas: git 2, cluster 3\n"
        '  spec.template.spec.containers[name=app].image: git "app:2", cluster "app:1"\n'
        '  metadata.labels.team: git "a", cluster (missing)\n'
        "  data.password: git ***, cluster *** (changed)"
    )


def test_no_differences_render_as_nothing_and_a_missing_object_as_one_line() -> None:
    assert render_text("ConfigMap/prod/c", []) == ""
    assert render_text("ConfigMap/prod/c", [Difference("", {}, None, missing=True)]) == (
        "ConfigMap/prod/c\n  not in the cluster"
    )


def test_the_json_report_has_path_values_and_missing() -> None:
    diffs = [Difference("spec.replicas", 2, 3), Difference("data.k", MASKED, None, missing=True)]

    assert to_json(diffs) == [
        {"path": "spec.replicas", "desired": 2, "live": 3, "missing": False},
        {"path": "data.k", "desired": "***", "live": None, "missing": True},
    ]


BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
DECIMAL = {"k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(sorted(BINARY)))
def test_a_binary_suffix_multiplies_by_a_power_of_1024(number: int, suffix: str) -> None:
    assert parse_quantity(f"{number}{suffix}") == parse_quantity(str(number * BINARY[suffix]))


@given(st.integers(min_value=-(10**6), max_value=10**6), st.sampled_from(sorted(DECIMAL)))
def test_a_decimal_suffix_multiplies_by_a_power_of_1000(number: int, suffix: str) -> None:
    assert parse_quantity(f"{number}{suffix}") == number * DECIMAL[suffix]


@given(st.integers(min_value=0, max_value=10**9), st.integers(min_value=-30, max_value=30))
def test_an_exponent_is_a_power_of_ten(number: int, exponent: int) -> None:
    expected = Fraction(number) * Fraction(10) ** exponent
    assert parse_quantity(f"{number}e{exponent}") == expected
    assert parse_quantity(f"{number}E{exponent}") == expected


@given(st.integers(min_value=0, max_value=10**9))
def test_milli_is_a_thousandth(number: int) -> None:
    assert parse_quantity(f"{number}m") == Fraction(number, 1000)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0.1", Fraction(1, 10)),
        (".5", Fraction(1, 2)),
        ("1.", Fraction(1)),
        ("+2", Fraction(2)),
        ("100n", Fraction(1, 10**7)),
        ("5u", Fraction(5, 10**6)),
        ("1E", Fraction(10**18)),
    ],
)
def test_quantities_in_every_spelling_the_apiserver_accepts(text: str, value: Fraction) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize(
    "text", ["", "Gi", "1 Gi", "1gi", "1KB", "1e", "0x10", "1e1000000", True, None, "1.2.3"]
)
def test_other_values_are_not_quantities(text: object) -> None:
    assert parse_quantity(text) is None


def test_an_empty_mapping_missing_live_is_drift_because_the_server_keeps_it() -> None:
    desired = deployment()
    desired["spec"]["template"]["spec"]["volumes"] = [{"name": "scratch", "emptyDir": {}}]
    live = live_of(desired)
    live["spec"]["template"]["spec"]["volumes"] = [{"name": "scratch", "hostPath": {"path": "/"}}]
    assert compare(desired, live) == [
        Difference("spec.template.spec.volumes[name=scratch].emptyDir", {}, None, missing=True)
    ]


def test_strict_comparison_counts_an_absent_false_as_a_difference() -> None:
    desired = deployment()
    desired["spec"]["template"]["spec"]["automountServiceAccountToken"] = False
    live = live_of(desired)
    del live["spec"]["template"]["spec"]["automountServiceAccountToken"]
    assert compare(desired, live) == []
    assert compare(desired, live, strict=True) == [
        Difference("spec.template.spec.automountServiceAccountToken", False, None, missing=True)
    ]
