"""The apiserver adapter against answers a real apiserver rarely gives on demand:
paged lists, proxies answering in plain text, outages (httpx.MockTransport)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from automator.errors import ClusterError, ClusterUnavailable, ConfigError
from automator.sync.kube import Kube, ResourceType

CONFIGMAPS = ResourceType("", "v1", "ConfigMap", "configmaps", True)

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://k8s.invalid:6443"}}]
users: [{name: u, user: {token: not-a-real-token}}]
contexts: [{name: x, context: {cluster: c, user: u, namespace: default}}]
current-context: x
"""


def _kube(tmp_path: Path, handler: Callable[[httpx.Request], httpx.Response]) -> Kube:
    config = tmp_path / "kubeconfig"
    config.write_text(KUBECONFIG)
    return Kube(config, transport=httpx.MockTransport(handler))


def _configmap(i: int) -> dict[str, object]:
    return {"metadata": {"name": f"cm-{i}", "namespace": "default", "uid": str(i)}}


def test_a_paged_list_counts_every_page_it_fetched(tmp_path: Path) -> None:
    pages: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        start = int(request.url.params.get("continue") or 0)
        pages.append(request.url.params.get("limit", ""))
        items = [_configmap(i) for i in range(start, min(start + 500, 1010))]
        meta = {"continue": str(start + 500)} if start + 500 < 1010 else {}
        return httpx.Response(200, json={"kind": "ConfigMapList", "metadata": meta, "items": items})

    with _kube(tmp_path, handler) as kube:
        found = kube.list(CONFIGMAPS, namespace="default")
        assert len(found) == 1010
        assert found[0]["kind"] == "ConfigMap"
        assert len(pages) == 3
        assert kube.requests == 3


def test_a_plain_text_404_is_an_answer_not_an_outage(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            404, text="404 page not found", headers={"content-type": "text/plain"}
        )

    with _kube(tmp_path, handler) as kube:
        assert kube.get(CONFIGMAPS, "gone", "default") is None
        assert kube.delete(CONFIGMAPS, "gone", "default") is False


def test_a_forbidden_answer_from_a_proxy_names_the_object_and_the_rbac_fix(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            403, text="<html>denied</html>", headers={"content-type": "text/html"}
        )

    with _kube(tmp_path, handler) as kube, pytest.raises(ClusterError) as caught:
        kube.get(CONFIGMAPS, "app", "prod")
    assert caught.value.status == 403
    assert "ConfigMap/prod/app" in str(caught.value)
    assert "Role/ClusterRole binding" in str(caught.value)


def test_an_api_status_refusal_keeps_the_servers_reason(tmp_path: Path) -> None:
    status = {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": 'Deployment.apps "web" is invalid: spec.selector: field is immutable',
        "reason": "Invalid",
        "code": 422,
    }

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            422, content=json.dumps(status), headers={"content-type": "application/json"}
        )

    obj = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "p"},
    }
    with _kube(tmp_path, handler) as kube, pytest.raises(ClusterError) as caught:
        kube.apply(obj)
    assert caught.value.status == 422
    assert caught.value.reason == "Invalid"
    assert "field is immutable" in str(caught.value)


@pytest.mark.parametrize(
    "answer",
    [
        lambda r: httpx.Response(503, text="upstream connect error"),
        lambda r: httpx.Response(429, json={"kind": "Status", "code": 429, "message": "slow down"}),
    ],
)
def test_overload_and_server_errors_are_transient(
    tmp_path: Path, answer: Callable[[httpx.Request], httpx.Response]
) -> None:
    with _kube(tmp_path, answer) as kube, pytest.raises(ClusterUnavailable, match="ConfigMap/p/x"):
        kube.get(CONFIGMAPS, "x", "p")


def test_an_unreachable_server_is_transient_and_names_the_server_and_the_fix(
    tmp_path: Path,
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with _kube(tmp_path, handler) as kube, pytest.raises(ClusterUnavailable) as caught:
        kube.list(CONFIGMAPS)
    assert "https://k8s.invalid:6443" in str(caught.value)
    assert "sync.kubeconfig" in str(caught.value)


def test_built_in_kinds_are_known_without_asking_the_server(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"no request expected, got {request.url}")

    with _kube(tmp_path, handler) as kube:
        deployment = kube.resource_type("apps/v1", "Deployment")
        namespace = kube.resource_type("v1", "Namespace")
    assert (deployment.plural, deployment.namespaced) == ("deployments", True)
    assert (namespace.plural, namespace.namespaced) == ("namespaces", False)


def test_a_crd_teaches_its_served_versions_only(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, json={"kind": "CustomResourceDefinitionList", "metadata": {}, "items": []}
        )

    crd = {
        "spec": {
            "group": "example.com",
            "scope": "Cluster",
            "names": {"kind": "Widget", "plural": "widgets"},
            "versions": [{"name": "v1", "served": True}, {"name": "v0", "served": False}],
        }
    }
    with _kube(tmp_path, handler) as kube:
        kube.learn_crd(crd)
        widget = kube.resource_type("example.com/v1", "Widget")
        assert (widget.plural, widget.namespaced) == ("widgets", False)
        with pytest.raises(ClusterError, match="serves no such kind"):
            kube.resource_type("example.com/v0", "Widget")


def test_a_kubeconfig_that_is_not_yaml_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "kubeconfig"
    config.write_text("clusters: [unclosed\n")
    with pytest.raises(ConfigError, match=r"sync\.kubeconfig"):
        Kube(config)


def test_a_kind_is_listed_at_its_preferred_served_version_falling_back_on_404(
    tmp_path: Path,
) -> None:
    asked: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        if "/v2/" in request.url.path:
            return httpx.Response(404, text="404 page not found")
        return httpx.Response(200, json={"kind": "HorizontalPodAutoscalerList", "items": []})

    with _kube(tmp_path, handler) as kube:
        (versions,) = [
            v
            for v in kube.kinds()
            if v[0].group == "autoscaling" and v[0].kind == "HorizontalPodAutoscaler"
        ]
        assert [t.version for t in versions] == ["v2", "v1"]
        listed = kube.list_served(versions)
    assert listed is not None
    assert listed[0].version == "v1"
    assert [p.split("/")[3] for p in asked if "horizontalpodautoscalers" in p] == ["v2", "v1"]
