"""Which YAML documents are workloads, and where their containers are.

Shared by scan and render, so that render finds a container by exactly the same rules the
scan used (render re-locates every field from the file as it is *now*).
"""

from __future__ import annotations

from dataclasses import dataclass

from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from automator.manifests._yaml import Loc, Problem, items, mapping, scalar

__all__ = ["Container", "Workload", "read_workload"]

# Kind -> API groups it may come from (core group is ""), and the path to its pod spec.
# Checking the group keeps custom resources that happen to be called "Deployment" out.
_KINDS: dict[str, tuple[frozenset[str], tuple[str, ...]]] = {
    "Pod": (frozenset({""}), ("spec",)),
    "Deployment": (frozenset({"apps", "extensions"}), ("spec", "template", "spec")),
    "StatefulSet": (frozenset({"apps"}), ("spec", "template", "spec")),
    "DaemonSet": (frozenset({"apps", "extensions"}), ("spec", "template", "spec")),
    "ReplicaSet": (frozenset({"apps", "extensions"}), ("spec", "template", "spec")),
    "Job": (frozenset({"batch"}), ("spec", "template", "spec")),
    "CronJob": (frozenset({"batch"}), ("spec", "jobTemplate", "spec", "template", "spec")),
}


@dataclass(frozen=True)
class Container:
    """One entry of ``containers`` or ``initContainers``."""

    name: str
    init: bool
    loc: Loc
    image: Loc | None

    @property
    def position(self) -> int:
        """Offset of the container in the text, for file order across both lists."""
        return int(self.loc.node.start_mark.index)


@dataclass(frozen=True)
class Workload:
    """A workload document: identity and annotations are read eagerly, containers on demand
    (a workload that is not automated must never produce an error about its containers)."""

    doc: int
    kind: str
    namespace: str | None
    name: str
    annotations: dict[str, str | None]
    root: Loc
    line: int

    @property
    def ref(self) -> str:
        """``Kind/namespace/name`` as used in messages and commit trailers (``-``: no namespace)."""
        return f"{self.kind}/{self.namespace or '-'}/{self.name}"

    def containers(self) -> list[Container]:
        """All containers and init containers in file order; Problem when malformed."""
        spec: Loc | None = self.root
        for key in _KINDS[self.kind][1]:
            entries = mapping(spec)
            spec = entries.get(key) if entries is not None else None
        pod = mapping(spec)
        if pod is None:
            path = ".".join(_KINDS[self.kind][1])
            raise Problem(f"has no pod spec at {path}: fix the manifest", self.line)
        found: list[Container] = []
        for key, init in (("initContainers", True), ("containers", False)):
            listed = pod.get(key)
            if listed is None or _is_null(listed.node):
                continue
            if not isinstance(listed.node, SequenceNode):
                raise Problem(f"{key} is not a list: fix the manifest", listed.line)
            for entry in items(listed):
                fields = mapping(entry)
                name = scalar(fields.get("name")) if fields is not None else None
                if fields is None or not name:
                    raise Problem(f"an entry of {key} has no name: fix the manifest", entry.line)
                found.append(Container(name, init, entry, fields.get("image")))
        seen: set[str] = set()
        for container in found:
            if container.name in seen:
                raise Problem(
                    f"container name {container.name!r} is used twice (names must be unique "
                    "across containers and initContainers): rename one",
                    container.loc.line,
                )
            seen.add(container.name)
        return sorted(found, key=lambda c: c.position)


def _is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def read_workload(doc: int, root: Node) -> Workload | None:
    """The workload in one document, or None when the document is anything else.

    Anything that is not a mapping with a known workload ``kind``, a matching
    ``apiVersion`` and a ``metadata.name`` is not ours and is ignored without a word.
    """
    if not isinstance(root, MappingNode):
        return None
    top_loc = Loc(root, True, root.start_mark.line + 1)
    try:
        top = mapping(top_loc)
    except Problem:
        return None
    if top is None:
        return None
    kind = scalar(top.get("kind"))
    api_version = scalar(top.get("apiVersion"))
    if kind not in _KINDS or api_version is None:
        return None
    group = api_version.rpartition("/")[0] if "/" in api_version else ""
    if group not in _KINDS[kind][0]:
        return None
    metadata_loc = top.get("metadata")
    metadata = mapping(metadata_loc)
    if metadata is None:
        return None
    name = scalar(metadata.get("name"))
    if not name:
        return None
    annotations: dict[str, str | None] = {}
    for key, value in (mapping(metadata.get("annotations")) or {}).items():
        annotations[key] = scalar(value)
    namespace = scalar(metadata.get("namespace")) or None
    line = metadata_loc.line if metadata_loc is not None else top_loc.line
    return Workload(doc, kind, namespace, name, annotations, top_loc, line)
