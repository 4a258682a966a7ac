"""The synchronizer's state record: what it writes into its ConfigMap reads back the same,
and a record it cannot read is refused with a fix rather than guessed at (a wrong
inventory would prune the wrong objects)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from automator.errors import ClusterError
from automator.sync.order import ObjectId
from automator.sync.state import (
    InventoryEntry,
    SyncState,
    content_hash,
    state_configmap,
    state_from_configmap,
    state_name,
)

_INVENTORY = (
    InventoryEntry(ObjectId("", "ConfigMap", "prod", "settings"), "v1", "a" * 32),
    InventoryEntry(ObjectId("apps", "Deployment", "prod", "web"), "v1", "b" * 32),
    InventoryEntry(ObjectId("", "Namespace", None, "prod"), "v1", "c" * 32),
    InventoryEntry(
        ObjectId("rbac.authorization.k8s.io", "ClusterRole", None, "reader"), "v1", "d" * 32
    ),
    InventoryEntry(ObjectId("widgets.example.com", "Widget", "prod", "alpha"), "v1beta2", ""),
    InventoryEntry(ObjectId("widgets.example.com", "Gadget", None, "global"), "v1", "e" * 32),
)


def _state(**changes: Any) -> SyncState:
    fields: dict[str, Any] = {
        "revision": "1" * 40,
        "applied_revision": "0" * 40,
        "result": "failed",
        "message": "ConfigMap/prod/settings: forbidden",
        "health": "progressing",
        "health_message": "Deployment.apps/prod/web: 1 of 2 updated replicas are available",
        "time": "2025-01-02T03:04:05Z",
        "counts": {"created": 2, "failed": 1, "unchanged": 3},
        "inventory": _INVENTORY,
    }
    fields.update(changes)
    return SyncState(**fields)


def _through_the_apiserver(obj: dict[str, Any]) -> dict[str, Any]:
    """What a GET returns: the same JSON, plus the bookkeeping the server adds."""
    served: dict[str, Any] = json.loads(json.dumps(obj))
    served["metadata"]["resourceVersion"] = "4711"
    served["metadata"]["uid"] = "6f1c2a8e-0000-4000-8000-000000000000"
    return served


def _garbage(**data: str) -> dict[str, Any]:
    """A state record with ``data`` keys replaced; a plain ``inventory.json`` stands in
    for the gzipped one (the form a hand edit, or an older version, leaves)."""
    good = state_configmap(_state(), name="prod", namespace="automator-system")
    broken = {**good, "data": {**good["data"], **data}}
    if "inventory.json" in data:
        del broken["binaryData"]
    return broken


def test_a_corrupt_gzipped_inventory_is_refused_with_a_fix() -> None:
    broken = state_configmap(_state(), name="prod", namespace="automator-system")
    broken["binaryData"] = {"inventory.json.gz": "bm90IGd6aXA="}
    with pytest.raises(ClusterError, match=r"does not decompress.*delete the ConfigMap"):
        state_from_configmap(broken)


def test_the_inventory_is_stored_gzipped_so_a_large_one_fits_in_a_configmap() -> None:
    entries = tuple(
        InventoryEntry(
            ObjectId("", "ConfigMap", f"team-{i % 40}", f"settings-{i}"),
            "v1",
            content_hash({"i": i}),  # random-looking, as real hashes are
        )
        for i in range(10_000)
    )
    configmap = state_configmap(
        SyncState(result="succeeded", inventory=entries), name="prod", namespace="automator-system"
    )
    size = sum(len(v) for v in configmap["binaryData"].values())
    assert size < 1_000_000
    assert state_from_configmap(configmap).inventory == entries


def test_the_state_configmap_reads_back_as_the_same_state_with_every_kind_of_object() -> None:
    state = _state()
    configmap = state_configmap(state, name="prod", namespace="automator-system")
    assert configmap["metadata"]["name"] == state_name("prod") == "automator-sync-prod"
    assert configmap["metadata"]["namespace"] == "automator-system"
    assert all(isinstance(v, str) for v in configmap["data"].values())

    back = state_from_configmap(_through_the_apiserver(configmap))

    assert back == state
    assert [e.api_version for e in back.inventory] == [
        "v1",
        "apps/v1",
        "v1",
        "rbac.authorization.k8s.io/v1",
        "widgets.example.com/v1beta2",
        "widgets.example.com/v1",
    ]
    assert [e.id.namespace for e in back.inventory] == [
        "prod",
        "prod",
        None,
        None,
        "prod",
        None,
    ]


def test_a_state_that_never_recorded_anything_reads_back_as_never_synced() -> None:
    empty = SyncState()
    back = state_from_configmap(
        _through_the_apiserver(state_configmap(empty, name="x", namespace="y"))
    )
    assert back == empty
    assert back.result == "never"
    assert back.inventory == ()


def test_an_absent_configmap_is_the_never_synced_state() -> None:
    assert state_from_configmap(None) == SyncState()
    assert state_from_configmap(None).result == "never"


def test_the_status_summary_counts_objects_but_leaves_the_inventory_out() -> None:
    summary = _state().to_json()
    assert summary["objects"] == len(_INVENTORY)
    assert "inventory" not in summary
    assert summary["result"] == "failed"
    assert summary["counts"] == {"created": 2, "failed": 1, "unchanged": 3}


@pytest.mark.parametrize(
    "data",
    [
        pytest.param({"inventory.json": "[{not json"}, id="inventory-not-json"),
        pytest.param({"state.json": "{not json"}, id="state-not-json"),
        pytest.param(
            {"inventory.json": '[{"id": "ConfigMap/prod/x"}]'}, id="entry-without-version"
        ),
        pytest.param({"inventory.json": "7"}, id="inventory-not-a-list"),
        pytest.param(
            {"inventory.json": '[{"id": "not-an-object-id", "v": "v1", "h": ""}]'},
            id="entry-id-not-an-object-id",
        ),
        pytest.param({"state.json": '["a", "list"]'}, id="state-not-an-object"),
        pytest.param(
            {"state.json": '{"result": "succeeded", "counts": {"created": "many"}}'},
            id="counts-not-numbers",
        ),
    ],
)
def test_a_garbage_state_configmap_is_refused_with_a_fix_naming_it(data: dict[str, str]) -> None:
    with pytest.raises(ClusterError) as caught:
        state_from_configmap(_garbage(**data))
    message = str(caught.value)
    assert "automator-system/automator-sync-prod" in message
    assert "delete the ConfigMap" in message


def test_content_hash_ignores_key_order_at_every_depth() -> None:
    one = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "a", "labels": {"x": "1", "y": "2"}},
        "data": {"k": "v", "l": "w"},
    }
    other = {
        "data": {"l": "w", "k": "v"},
        "metadata": {"labels": {"y": "2", "x": "1"}, "name": "a"},
        "kind": "ConfigMap",
        "apiVersion": "v1",
    }
    assert content_hash(one) == content_hash(other)
    assert len(content_hash(one)) == 32
    assert all(c in "0123456789abcdef" for c in content_hash(one))


def test_content_hash_changes_when_a_value_or_a_list_order_changes() -> None:
    base = {"kind": "ConfigMap", "data": {"k": "v"}, "list": [1, 2]}
    assert content_hash(base) != content_hash({**base, "data": {"k": "w"}})
    assert content_hash(base) != content_hash({**base, "list": [2, 1]})
    assert content_hash(base) != content_hash({**base, "data": {"k": "v", "extra": ""}})
