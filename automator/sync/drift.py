"""Has the cluster drifted from Git? A kubediff-style comparison of one object.

Only what Git sets is compared: the apiserver adds defaults (``strategy``,
``terminationMessagePath``, ...), controllers add ``status``, webhooks inject sidecars,
and none of that is drift. Within what Git sets, the comparison follows what the
apiserver does to a value, so that an apply that would change nothing reports nothing:

* resource quantities are compared by value (``1Gi`` is ``1024Mi``, ``500m`` is ``0.5``,
  ``2`` is ``"2"``), because the server stores them normalised;
* elsewhere a number and a numeric string differ (the server would have converted or
  refused it, so a live ``"2"`` for Git's ``2`` is a real difference), and so do ``true``
  and ``1``;
* a ``false``, ``0``, ``{}`` or ``[]`` that Git sets counts as equal to an absent field,
  because the server leaves such zero values out of the objects it returns;
* lists of named items (containers, env, volumes, ports) are matched by name, other lists
  by the key Kubernetes merges them on (``mountPath``, ``containerPort``/``port`` with
  ``protocol``), and the rest position by position;
* in ``metadata`` only the labels and annotations Git sets are compared, never
  ``kubectl.kubernetes.io/last-applied-configuration``.

Secrets: ``stringData`` is compared with the decoded live ``data``, ``data`` with
``data``, and the values are replaced by :data:`MASKED` before a Difference is made, so
no report, log line or repr can show a secret value.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Final, final

from automator.sync.order import group_of

__all__ = [
    "LAST_APPLIED",
    "MASKED",
    "Difference",
    "Masked",
    "compare",
    "parse_quantity",
    "render_text",
    "to_json",
]

LAST_APPLIED: Final = "kubectl.kubernetes.io/last-applied-configuration"


@final
class Masked:
    """Stands in for a Secret value. It holds nothing at all (not even a hash, which
    would let a short password be guessed offline), so it cannot leak through a repr, a
    log, a pickle or JSON; the values were compared before it was put in their place."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Masked)

    def __hash__(self) -> int:
        return hash(Masked)


MASKED: Final = Masked()


@dataclass(frozen=True)
class Difference:
    """One field whose live value differs from Git.

    ``path`` names the field (``spec.replicas``, ``spec.template.spec.containers[name=app]
    .image``, ``metadata.labels["app.kubernetes.io/name"]``); the empty path is the whole
    object. ``missing`` is True when the cluster does not have the field (or, for the
    empty path, the object) at all; ``live`` is then None. Secret values are
    :data:`MASKED` on both sides.
    """

    path: str
    desired: Any
    live: Any
    missing: bool = False


class _Absent:
    """A field the live object does not have (distinct from an explicit null)."""


_ABSENT: Final = _Absent()

_TOP_IGNORED = frozenset({"apiVersion", "kind", "status"})
# Mappings whose values are resource quantities, and fields that are one.
_QUANTITY_MAPS = frozenset({"limits", "requests", "hard", "capacity", "allocatable", "overhead"})
_QUANTITY_FIELDS = frozenset({"storage", "sizeLimit"})
# Lists whose items' names are not unique, and what Kubernetes merges them on instead.
_KEYS_BY_FIELD: dict[str, tuple[str, ...]] = {
    "volumeMounts": ("mountPath",),
    "volumeDevices": ("devicePath",),
    "hostAliases": ("ip",),
    "topologySpreadConstraints": ("topologyKey", "whenUnsatisfiable"),
}
_PORT_KEYS: tuple[tuple[str, ...], ...] = (("containerPort", "protocol"), ("port", "protocol"))
_KEY_DEFAULTS = {"protocol": "TCP"}
_SIMPLE_KEY = re.compile(r"[A-Za-z0-9_$/-]+")


def compare(
    desired: Mapping[str, Any], live: Mapping[str, Any] | None, *, strict: bool = False
) -> list[Difference]:
    """The fields Git sets whose live value differs, in Git's order; ``[]`` when in sync.

    ``live`` None (the object does not exist) gives one Difference for the whole object.

    By default a ``false``, ``0`` or ``[]`` in Git equals an absent live field, because
    the server omits such values from non-pointer fields. For pointer fields
    (``automountServiceAccountToken: false``) it keeps them, and without the schema the
    two cannot be told apart, so ``strict`` counts every absent field as a difference:
    the synchronizer uses it to decide whether it may skip an object, and lets a
    server-side dry-run settle the doubtful cases.
    """
    secret = _is_secret(desired)
    if live is None:
        shown = _masked_secret(desired) if secret else dict(desired)
        return [Difference("", shown, None, missing=True)]
    out: list[Difference] = []
    for key, value in desired.items():
        if key in _TOP_IGNORED:
            continue
        if key == "metadata":
            _metadata(value, live.get("metadata"), out)
        elif secret and key in ("data", "stringData"):
            _secret_values(key, value, desired, live, out)
        else:
            _walk(key, key, value, live.get(key, _ABSENT), out, quantity=False, strict=strict)
    return out


def _is_secret(obj: Mapping[str, Any]) -> bool:
    api_version = obj.get("apiVersion")
    return (
        obj.get("kind") == "Secret" and isinstance(api_version, str) and not group_of(api_version)
    )


def _masked_secret(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A Secret with every value replaced by MASKED (the keys stay: they are not secret)."""
    shown = dict(obj)
    for key in ("data", "stringData"):
        values = obj.get(key)
        if isinstance(values, Mapping):
            shown[key] = dict.fromkeys(values, MASKED)
        elif values is not None:
            shown[key] = MASKED
    return shown


def _metadata(desired: object, live: object, out: list[Difference]) -> None:
    if not isinstance(desired, Mapping):
        return
    live_meta = live if isinstance(live, Mapping) else {}
    for section in ("labels", "annotations"):
        wanted = desired.get(section)
        if not isinstance(wanted, Mapping):
            continue
        have = live_meta.get(section)
        have = have if isinstance(have, Mapping) else {}
        for key, value in wanted.items():
            if key == LAST_APPLIED:
                continue
            path = _key_path(f"metadata.{section}", key)
            _walk(path, None, value, have.get(key, _ABSENT), out, quantity=False)


def _secret_values(
    key: str,
    values: object,
    desired: Mapping[str, Any],
    live: Mapping[str, Any],
    out: list[Difference],
) -> None:
    """Compare decoded bytes; report only MASKED. ``stringData`` wins over ``data`` for a
    key in both, as the apiserver merges them."""
    if values is None:
        return
    live_data = live.get("data")
    live_data = live_data if isinstance(live_data, Mapping) else {}
    if not isinstance(values, Mapping):
        out.append(Difference(key, MASKED, MASKED))
        return
    string_data = desired.get("stringData")
    overridden = string_data if key == "data" and isinstance(string_data, Mapping) else {}
    for name, value in values.items():
        if value is None or name in overridden:
            continue
        path = _key_path(key, name)
        if name not in live_data:
            out.append(Difference(path, MASKED, None, missing=True))
            continue
        if key == "stringData":
            wanted = value.encode() if isinstance(value, str) else None
        else:
            wanted = _decode(value)
        have = _decode(live_data[name])
        if wanted is None or have is None or wanted != have:
            out.append(Difference(path, MASKED, MASKED))


def _decode(value: object) -> bytes | None:
    """Base64 as the apiserver reads it (line breaks tolerated); None if it is not."""
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value.replace("\n", "").replace("\r", ""), validate=True)
    except (binascii.Error, ValueError):
        return None


def _walk(
    path: str,
    field: str | None,
    desired: object,
    live: object,
    out: list[Difference],
    *,
    quantity: bool,
    strict: bool = False,
) -> None:
    """Compare ``desired`` (under key ``field``) with ``live``, appending what differs."""
    if desired is None:
        return  # null in Git means "not set": nothing to compare
    if live is _ABSENT or live is None:
        if strict or not _zero(desired):
            out.append(Difference(path, desired, None, missing=True))
        return
    if isinstance(desired, Mapping):
        if not isinstance(live, Mapping):
            out.append(Difference(path, desired, live))
            return
        quantities = field in _QUANTITY_MAPS
        for key, value in desired.items():
            _walk(
                _key_path(path, key),
                key,
                value,
                live.get(key, _ABSENT),
                out,
                quantity=quantities or key in _QUANTITY_FIELDS,
                strict=strict,
            )
        return
    if isinstance(desired, list):
        if not isinstance(live, list):
            out.append(Difference(path, desired, live))
        else:
            _walk_list(path, field, desired, live, out, strict=strict)
        return
    if not _same(desired, live, quantity=quantity):
        out.append(Difference(path, desired, live))


def _walk_list(
    path: str,
    field: str | None,
    desired: list[Any],
    live: list[Any],
    out: list[Difference],
    *,
    strict: bool = False,
) -> None:
    keys = _list_keys(field, desired)
    if keys is None:
        if len(desired) != len(live):
            out.append(Difference(path, desired, live))
            return
        for index, (want, have) in enumerate(zip(desired, live, strict=True)):
            _walk(f"{path}[{index}]", None, want, have, out, quantity=False, strict=strict)
        return
    by_key: dict[tuple[str, ...], object] = {}
    for item in live:
        if isinstance(item, Mapping):
            by_key.setdefault(_item_key(item, keys), item)
    for item in desired:
        have = by_key.get(_item_key(item, keys), _ABSENT)
        _walk(path + _selector(item, keys), None, item, have, out, quantity=False, strict=strict)


def _list_keys(field: str | None, desired: Sequence[object]) -> tuple[str, ...] | None:
    """The key the items of this list are matched on, or None for position."""
    if not desired or not all(isinstance(item, Mapping) for item in desired):
        return None
    items: list[Mapping[str, Any]] = [item for item in desired if isinstance(item, Mapping)]
    candidates: list[tuple[str, ...]] = []
    if field in _KEYS_BY_FIELD:
        candidates.append(_KEYS_BY_FIELD[field])
    candidates.append(("name",))
    if field == "ports":
        candidates.extend(_PORT_KEYS)
    for keys in candidates:
        if all(item.get(keys[0]) is not None for item in items):
            ids = {_item_key(item, keys) for item in items}
            if len(ids) == len(items):
                return keys
    return None


def _item_key(item: Mapping[str, Any], keys: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(
        json.dumps(item.get(key, _KEY_DEFAULTS.get(key)), sort_keys=True, default=str)
        for key in keys
    )


def _selector(item: Mapping[str, Any], keys: tuple[str, ...]) -> str:
    """``[name=app]``, ``[containerPort=53,protocol=UDP]``: how a keyed item is named."""
    parts = [f"{key}={_key_value(item[key])}" for key in keys if item.get(key) is not None]
    return f"[{','.join(parts)}]"


def _key_value(value: object) -> str:
    if isinstance(value, str) and _SIMPLE_KEY.fullmatch(value.replace(".", "-")):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def _key_path(path: str, key: str) -> str:
    """``spec.replicas``; keys that are not simple words, like ``app.kubernetes.io/name``,
    are written ``["app.kubernetes.io/name"]`` so the dots stay unambiguous."""
    if _SIMPLE_KEY.fullmatch(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key, ensure_ascii=False)}]"


def _zero(value: object) -> bool:
    """A zero value the apiserver omits from what it returns (``omitempty``).

    ``""`` is not one of them here: in labels, annotations and ConfigMap data (maps) an
    empty string is a real value the server keeps. Nor is ``{}``: Go's ``omitempty``
    never drops a struct, and a pointer to an empty struct (``emptyDir: {}``) is kept, so
    a ``{}`` missing live is real drift (say the volume became a hostPath).
    """
    if isinstance(value, bool):
        return value is False
    if isinstance(value, int | float):
        return value == 0
    return isinstance(value, list) and not value


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _same(desired: object, live: object, *, quantity: bool) -> bool:
    if quantity:
        want, have = parse_quantity(desired), parse_quantity(live)
        if want is not None and have is not None:
            return want == have
    if _number(desired) and _number(live):
        return desired == live
    return type(desired) is type(live) and desired == live


# ---------------------------------------------------------------------------- quantities

_QUANTITY = re.compile(
    r"(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?P<suffix>[KMGTPE]i|[eE][+-]?[0-9]+|[numkMGTPE])?"
)
_MULTIPLIERS: dict[str, Fraction] = {
    "": Fraction(1),
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 1000),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
    "Ki": Fraction(2**10),
    "Mi": Fraction(2**20),
    "Gi": Fraction(2**30),
    "Ti": Fraction(2**40),
    "Pi": Fraction(2**50),
    "Ei": Fraction(2**60),
}
# Far beyond any real quantity (int64 ends near 1e19); keeps "1e999999999" from costing.
_MAX_EXPONENT = 100


def parse_quantity(value: object) -> Fraction | None:
    """The exact value of a Kubernetes resource quantity, or None if ``value`` is not one.

    ``"1Gi"``, ``"1024Mi"``, ``"500m"``, ``"0.5"``, ``"1e3"``, ``2`` and ``0.5`` are all
    quantities (the grammar of k8s.io/apimachinery's resource.Quantity: a decimal number,
    then a binary suffix Ki..Ei, a decimal suffix n, u, m, k, M..E, or an exponent).
    Exact arithmetic, so ``0.1`` is one tenth and equality is never a rounding accident.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, float):
        # The decimal text the number was written as, which is what the server parses.
        return Fraction(repr(value)) if math.isfinite(value) else None
    if not isinstance(value, str):
        return None
    match = _QUANTITY.fullmatch(value)
    if match is None:
        return None
    number = Fraction(match["number"])
    suffix = match["suffix"] or ""
    if suffix not in _MULTIPLIERS:  # an exponent: e3, E-2 (but "Ei" and "E" are suffixes)
        exponent = int(suffix[1:])
        if abs(exponent) > _MAX_EXPONENT:
            return None
        return number * Fraction(10) ** exponent
    return number * _MULTIPLIERS[suffix]


# ----------------------------------------------------------------------------- reporting

_SHOWN_CHARS = 200


def render_text(obj_id: str, diffs: Iterable[Difference]) -> str:
    """A readable block, ``kubectl diff``-like, one line per field; ``""`` when in sync::

    Deployment.apps/prod/web
      spec.replicas: git 2, cluster 3
      spec.template.spec.containers[name=app].image: git "app:2", cluster "app:1"
      data.password: git ***, cluster *** (changed)
    """
    lines: list[str] = []
    for diff in diffs:
        if not diff.path and diff.missing:
            lines.append("  not in the cluster")
        elif diff.missing:
            lines.append(f"  {diff.path}: git {_show(diff.desired)}, cluster (missing)")
        else:
            changed = " (changed)" if isinstance(diff.desired, Masked) else ""
            lines.append(
                f"  {diff.path or '(object)'}: git {_show(diff.desired)}, "
                f"cluster {_show(diff.live)}{changed}"
            )
    if not lines:
        return ""
    return "\n".join([obj_id, *lines])


def to_json(diffs: Iterable[Difference]) -> list[dict[str, Any]]:
    """JSON-ready differences: ``path``, ``desired``, ``live`` and ``missing``; masked
    Secret values appear as the string ``"***"``."""
    return [
        {
            "path": diff.path,
            "desired": _jsonable(diff.desired),
            "live": _jsonable(diff.live),
            "missing": diff.missing,
        }
        for diff in diffs
    ]


def _jsonable(value: object) -> object:
    if isinstance(value, Masked):
        return "***"
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _show(value: object) -> str:
    text = json.dumps(_jsonable(value), ensure_ascii=False, default=str)
    if isinstance(value, Masked):
        text = "***"
    if len(text) > _SHOWN_CHARS:
        text = text[: _SHOWN_CHARS - 3] + "..."
    return text
