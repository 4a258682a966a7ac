"""ImagePolicy documents: where marker comments get their policy from (DESIGN §4).

Any document under the scanned paths with ``kind: ImagePolicy`` and an ``apiVersion`` of our
group (``automator.gitops.io/...``) is one; Flux's ImagePolicy (another group) is not ours
and is skipped silently, so a repository can hold both while it migrates. Every one of
ours is validated against the JSON Schema shipped in ``automator/schemas/`` (the
top-level ``policies/`` folder links to the same file): an invalid document is reported
with the line and key path of each violation, and markers that name it are reported too
rather than guessed at.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from automator.manifests._markers import Ref
from automator.manifests._yaml import Composer, format_path

__all__ = ["Catalogue", "ImagePolicy", "is_image_policy", "read_image_policy", "schema"]

GROUP = "automator.gitops.io"
KIND = "ImagePolicy"
_SCHEMA_FILE = "imagepolicy.schema.json"
_FIX = "(schema: policies/imagepolicy.schema.json; examples: policies/examples.yaml)"


@functools.cache
def schema() -> dict[str, Any]:
    """The ImagePolicy JSON Schema, read once from the package data."""
    text = resources.files("automator").joinpath("schemas", _SCHEMA_FILE).read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@functools.cache
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema())


@dataclass(frozen=True)
class ImagePolicy:
    """One ImagePolicy document; ``problem`` is set (and the spec empty) when it is invalid."""

    namespace: str | None
    name: str
    file: str
    line: int
    image: str = ""
    policy: str = ""
    filter: str | None = None
    extract: str | None = None
    ignore_tags: tuple[str, ...] = ()
    pin_digest: bool = False
    platform: str | None = None
    rollback_hold: bool = True
    problem: str | None = None

    @property
    def ref(self) -> str:
        """``NAME`` or ``NAMESPACE:NAME``, as a marker writes it."""
        return f"{self.namespace}:{self.name}" if self.namespace else self.name

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


def is_image_policy(root: Node) -> bool:
    """Cheap test on the top-level keys: ``kind: ImagePolicy`` in our API group."""
    if not isinstance(root, MappingNode):
        return False
    kind = api_version = None
    for key, value in root.value:
        if isinstance(key, ScalarNode) and isinstance(value, ScalarNode):
            if key.value == "kind":
                kind = value.value
            elif key.value == "apiVersion":
                api_version = value.value
    return kind == KIND and isinstance(api_version, str) and api_version.startswith(GROUP + "/")


def read_image_policy(composer: Composer, file: str, root: Node) -> ImagePolicy:
    """Validate the document against the schema and read it (see :func:`is_image_policy`)."""
    line = int(root.start_mark.line) + 1
    data = composer.construct(root)
    top = data if isinstance(data, dict) else {}
    meta = top.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    name = meta.get("name") if isinstance(meta.get("name"), str) else None
    namespace = meta.get("namespace") if isinstance(meta.get("namespace"), str) else None
    label = f"ImagePolicy {name}" if namespace is None else f"ImagePolicy {namespace}:{name}"
    if name is None:
        label = "ImagePolicy (without a string metadata.name)"
    violations = sorted(_validator().iter_errors(data), key=lambda e: [str(p) for p in e.path])
    if violations:
        described = [_describe(root, error) for error in violations]
        first_line = described[0][0]
        details = "; ".join(
            f"{where}: {text}" if at == first_line else f"{where} (line {at}): {text}"
            for at, where, text in described
        )
        problem = (
            f"{file}:{first_line}: {label}: does not match the ImagePolicy schema: {details}: "
            f"fix the document {_FIX}"
        )
        return ImagePolicy(namespace, name or "", file, line, problem=problem)
    spec = top["spec"]
    return ImagePolicy(
        namespace=namespace,
        name=str(name),
        file=file,
        line=_line_of(root, ("metadata", "name")),
        image=spec["image"],
        policy=spec["policy"],
        filter=spec.get("filter"),
        extract=spec.get("extract"),
        ignore_tags=tuple(spec.get("ignoreTags", ())),
        pin_digest=bool(spec.get("pinDigest", False)),
        platform=spec.get("platform"),
        rollback_hold=bool(spec.get("rollbackHold", True)),
    )


def _describe(root: Node, error: ValidationError) -> tuple[int, str, str]:
    """Line, key path and ``message (hint)`` of one schema violation."""
    path: list[str | int] = [p if isinstance(p, int) else str(p) for p in error.absolute_path]
    hint = ""
    subschema = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(subschema.get("properties", {}))
        extra = [k for k in error.instance if k not in allowed]
        if extra:
            path.append(str(extra[0]))
        hint = f"remove it or fix its spelling; allowed keys here: {', '.join(allowed)}"
    elif error.validator == "required":
        hint = "add it"
    elif error.validator == "const":
        hint = f"set it to {error.validator_value}"
    elif error.validator == "dependentRequired":
        hint = "extract compares groups of the filter regex: add spec.filter or drop extract"
    elif "description" in subschema:
        hint = str(subschema["description"])
    text = error.message + (f" ({hint})" if hint else "")
    return _line_of(root, path), format_path(path) or "(document)", text


def _line_of(root: Node, path: Sequence[str | int]) -> int:
    """1-based line of the deepest node on ``path`` (the key's line for mapping entries)."""
    node = root
    line = int(root.start_mark.line) + 1
    for step in path:
        child: Node | None = None
        if isinstance(node, MappingNode) and isinstance(step, str):
            for key, value in node.value:
                if isinstance(key, ScalarNode) and str(key.value) == step:
                    child, line = value, int(key.start_mark.line) + 1
                    break
        elif isinstance(node, SequenceNode) and isinstance(step, int) and step < len(node.value):
            child = node.value[step]
            line = int(child.start_mark.line) + 1
        if child is None:
            break
        node = child
    return line


class Catalogue:
    """The ImagePolicy documents of one scan, by ``(namespace, name)``.

    Built while files are scanned, consulted once they all are (a marker may come before
    the policy it names, in file order).
    """

    def __init__(self) -> None:
        self._policies: dict[tuple[str | None, str], list[ImagePolicy]] = {}

    def add(self, policy: ImagePolicy) -> str | None:
        """Record a policy; a problem message when another one has the same name."""
        if not policy.name:
            return None
        same = self._policies.setdefault((policy.namespace, policy.name), [])
        same.append(policy)
        if len(same) > 1:
            return (
                f"{policy.where}: ImagePolicy {policy.ref}: is defined twice (also at "
                f"{same[0].where}): rename or remove one; markers naming it are not applied"
            )
        return None

    def names(self) -> list[str]:
        """The usable policies as a marker would name them, sorted."""
        return sorted(
            group[0].ref
            for group in self._policies.values()
            if len(group) == 1 and group[0].problem is None
        )

    def resolve(self, ref: Ref, namespace: str | None) -> ImagePolicy | str:
        """The policy a marker names, or a message saying why there is none and the fix.

        ``NAMESPACE:NAME`` must match exactly. A bare ``NAME`` is the only policy of that
        name in any namespace; when several share it, the one in the marker's own
        document's namespace, else the one without a namespace; else it is ambiguous.
        """
        if ref.namespace is not None:
            groups = list(self._groups(((ref.namespace, ref.name),)))
        else:
            groups = [g for (_, name), g in self._policies.items() if name == ref.name]
            if len(groups) > 1:
                groups = [g for g in groups if g[0].namespace == namespace] or [
                    g for g in groups if g[0].namespace is None
                ]
                if len(groups) != 1:
                    choices = sorted(
                        g[0].ref for (_, n), g in self._policies.items() if n == ref.name
                    )
                    return (
                        f"ImagePolicy name {ref.name!r} is ambiguous (policies: "
                        f"{', '.join(choices)}): write NAMESPACE:NAME in the marker"
                    )
        if not groups:
            available = ", ".join(self.names()) or "none"
            return (
                f"refers to ImagePolicy {ref.policy!r}, which does not exist under the "
                f"scanned paths (ImagePolicies: {available}): fix the name in the marker "
                "or add the ImagePolicy"
            )
        group = groups[0]
        if len(group) > 1:
            return (
                f"refers to ImagePolicy {ref.policy!r}, which is defined more than once "
                f"({', '.join(p.where for p in group)}): rename or remove one"
            )
        if group[0].problem is not None:
            return (
                f"refers to ImagePolicy {ref.policy!r}, which is invalid (see the error "
                f"for {group[0].file}): fix the ImagePolicy"
            )
        return group[0]

    def _groups(self, keys: Iterable[tuple[str | None, str]]) -> Iterable[list[ImagePolicy]]:
        for key in keys:
            if key in self._policies:
                yield self._policies[key]
