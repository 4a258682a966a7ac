"""Benchmark: ``automator sync`` on 1,000 objects against ``kubectl apply --server-side``.

    .venv/bin/python bench/bench_sync.py [--objects 1000] [--files 100] [--keep]

Starts its own control plane (etcd, kube-apiserver, controller-manager, scheduler and kwok,
from the directory ``hack/control-plane.sh all`` prints, or ``$AUTOMATOR_KUBE_BIN``) with an
audit log, generates a config repo and measures, in the same run and on the same cluster:

``ours``     ``Synchronizer.run()`` twice, in a child Python process started for the purpose
             (so its memory figures are its own): the first apply (every object created,
             then the wait for the Deployments to become Available), then a re-sync with
             Git unchanged (every object ``unchanged``, nothing written);
``kubectl``  ``kubectl apply --server-side --field-manager=bench -f DIR -R`` twice on the same
             objects rendered into other namespaces (first apply, then unchanged), and,
             for the comparison with our health wait, ``kubectl wait --for=condition=Available``
             on the Deployments after the first apply.

The objects (default 1,000, Namespaces included) are a realistic mix spread over ~100 YAML
files in one directory: per 1,000, 3 Namespaces, 797 ConfigMaps, 80 Services, 40
ServiceAccounts, 40 Secrets and 40 Deployments (1 replica; kwok makes them Available).
The Namespaces are in ``00-namespaces.yaml``, so kubectl (which applies in file order)
creates them first; the synchronizer orders by kind itself.

API requests are counted exactly, by the apiserver: its audit policy logs (level Metadata,
stage RequestReceived omitted) only the two benchmark users, ``bench-automator`` (the
synchronizer's token) and ``bench-kubectl`` (kubectl's), both in ``system:masters``, so the
controllers' own traffic never mixes in. A request is one audit ID; a window is the part of
the log written between two marks (taken once the log has stopped growing). The
synchronizer's own ``SyncReport.requests`` is printed beside it as a cross-check: it counts
calls, so a LIST the client pages (500 per page) counts once there and once per page in
the audit.

What each time includes:

* ours, ``wall``: ``Synchronizer.run()`` only (the child's imports and the client's
  construction are outside it): the state read, ``git fetch`` (a clone the first time,
  from a ``file://`` bare repo), render, one LIST per kind, the apply, the health wait and
  the state record. The phases are timed by wrapping the synchronizer's steps and printed
  under the table; ``apply only`` is ``wall`` minus the health phase (on the re-sync the
  health phase is one GET per Deployment, all already Available);
* kubectl, ``wall``: the whole ``kubectl apply`` process, start to exit, with a warm
  discovery cache (``kubectl api-resources`` runs before, outside the window); kubectl
  does not wait for health, so ``+ wait`` adds ``kubectl wait`` for the Deployments.

Peak memory: ours is the child's peak RSS during each run (``VmHWM`` reset before it);
kubectl's comes from ``/usr/bin/time -v`` (``n/a`` without it: ``getrusage`` of a child
started from Python carries this process's own peak over, so it would say nothing).
CPU seconds: ours is the child's user+system time (plus its ``git`` children), kubectl's
is its own (``/usr/bin/time``, else ``RUSAGE_CHILDREN``).

It also checks the run is correct: after ours, every object exists and is managed by
``automator`` (operation Apply); the first run reports every object ``created`` and the
re-sync every object ``unchanged``, the audit log shows that the re-sync wrote nothing but
the synchronizer's state record, and no resourceVersion moved (for Deployments, whose
status controllers keep writing, the generation and our managedFields entry instead);
after kubectl, every object exists and is managed by ``bench``. It prints PASS or FAIL
(exit 1). No time is asserted.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import functools
import gc
import json
import os
import random
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.git import make_bare_repo
from tests.support.kube import COMPONENT_FILES, ControlPlane, kubectl_binary

REPO_ROOT = Path(__file__).resolve().parent.parent
OURS_USER = "bench-automator"
KUBECTL_USER = "bench-kubectl"
FIELD_MANAGER_KUBECTL = "bench"
SYNC_NAME = "bench"
STATE_NAMESPACE = "automator-system"
MIB = 1024 * 1024
HEALTH_TIMEOUT = "600s"
PODS_PER_NODE = 100  # kwok's node allows 110; leave room for anything else
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})

AUDIT_POLICY = f"""\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    users: [{OURS_USER}, {KUBECTL_USER}]
  - level: None
"""

# -- the objects -------------------------------------------------------------------------

NAMESPACE = """\
apiVersion: v1
kind: Namespace
metadata:
  name: {ns}
  labels:
    team: team-{index}
    environment: bench
"""

CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}
  namespace: {ns}
  labels:
    app.kubernetes.io/name: {app}
    app.kubernetes.io/part-of: bench
  annotations:
    bench.example.com/owner: team-{team}
data:
  LOG_LEVEL: info
  FEATURE_FLAGS: "search,checkout,{name}"
  TIMEOUT_SECONDS: "30"
  CACHE_TTL: 5m
  app.properties: |
    server.port=8080
    server.shutdown=graceful
    spring.application.name={app}
    management.endpoints.web.exposure.include=health,info,prometheus
    datasource.url=jdbc:postgresql://db.{ns}.svc:5432/{app}
    datasource.pool.max-size=20
    feature.{name}.enabled=true
"""

SECRET = """\
apiVersion: v1
kind: Secret
metadata:
  name: {name}
  namespace: {ns}
  labels:
    app.kubernetes.io/name: {app}
    app.kubernetes.io/part-of: bench
type: Opaque
data:
  username: {user}
  password: {password}
"""

SERVICE_ACCOUNT = """\
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {name}
  namespace: {ns}
  labels:
    app.kubernetes.io/name: {app}
    app.kubernetes.io/part-of: bench
automountServiceAccountToken: false
"""

SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: {name}
  namespace: {ns}
  labels:
    app.kubernetes.io/name: {app}
    app.kubernetes.io/part-of: bench
spec:
  type: ClusterIP
  selector:
    app.kubernetes.io/name: {app}
  ports:
    - name: http
      port: 80
      targetPort: http
      protocol: TCP
"""

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: {ns}
  labels:
    app.kubernetes.io/name: {app}
    app.kubernetes.io/part-of: bench
spec:
  replicas: 1
  revisionHistoryLimit: 3
  selector:
    matchLabels:
      app.kubernetes.io/name: {app}
  template:
    metadata:
      labels:
        app.kubernetes.io/name: {app}
        app.kubernetes.io/part-of: bench
    spec:
      containers:
        - name: app
          image: registry.example/bench/{app}:1.4.2
          ports:
            - name: http
              containerPort: 8080
          envFrom:
            - configMapRef:
                name: {config}
          env:
            - name: POD_NAME
              valueFrom:
                fieldRef:
                  fieldPath: metadata.name
          resources:
            requests:
              cpu: 10m
              memory: 32Mi
            limits:
              memory: 64Mi
          readinessProbe:
            httpGet:
              path: /healthz
              port: http
"""


@dataclass(frozen=True)
class Obj:
    """One generated object: what the checks need to find it, and its YAML."""

    kind: str
    namespace: str | None
    name: str
    text: str


@dataclass(frozen=True)
class Mix:
    namespaces: int
    configmaps: int
    services: int
    service_accounts: int
    secrets: int
    deployments: int

    @classmethod
    def for_total(cls, total: int) -> Mix:
        """Per 1,000: 3 Namespaces, 80 Services, 40 each of SAs, Secrets and Deployments."""
        namespaces = 2 if total < 300 else 3 if total < 3000 else 4
        deployments = max(1, round(total * 0.04))
        services = max(1, round(total * 0.08))
        accounts = max(1, round(total * 0.04))
        secret_count = max(1, round(total * 0.04))
        configmaps = total - namespaces - deployments - services - accounts - secret_count
        if configmaps < 1:
            raise SystemExit(f"--objects {total} is too few for the mix; use at least 20")
        return cls(namespaces, configmaps, services, accounts, secret_count, deployments)

    def describe(self) -> str:
        return (
            f"{self.namespaces} Namespaces, {self.configmaps} ConfigMaps, {self.services} "
            f"Services, {self.service_accounts} ServiceAccounts, {self.secrets} Secrets, "
            f"{self.deployments} Deployments"
        )


def generate(mix: Mix, prefix: str, files: int) -> tuple[list[Obj], dict[str, str]]:
    """The objects in namespaces ``PREFIX-N``, and the files (name -> YAML) holding them.

    The same seed gives the same objects and the same files for every prefix, so both tools
    apply the same number and kinds of objects, laid out the same way.
    """
    namespaces = [f"{prefix}-{i}" for i in range(mix.namespaces)]
    apps = [f"app-{i:03d}" for i in range(mix.deployments)]

    def where(i: int) -> tuple[str, str, int]:
        return namespaces[i % len(namespaces)], apps[i % len(apps)], i % 7

    objs: list[Obj] = []
    for i in range(mix.configmaps):
        ns, app, team = where(i)
        name = f"cfg-{i:04d}"
        objs.append(
            Obj("ConfigMap", ns, name, CONFIGMAP.format(name=name, ns=ns, app=app, team=team))
        )
    for i in range(mix.secrets):
        ns, app, _ = where(i)
        name = f"creds-{i:03d}"
        user = base64.b64encode(f"svc-{app}".encode()).decode()
        password = base64.b64encode(f"pw-{prefix}-{i:03d}-0123456789abcdef".encode()).decode()
        objs.append(
            Obj(
                "Secret",
                ns,
                name,
                SECRET.format(name=name, ns=ns, app=app, user=user, password=password),
            )
        )
    for i in range(mix.service_accounts):
        ns, app, _ = where(i)
        name = f"sa-{i:03d}"
        objs.append(
            Obj("ServiceAccount", ns, name, SERVICE_ACCOUNT.format(name=name, ns=ns, app=app))
        )
    for i in range(mix.services):
        ns, app, _ = where(i)
        name = f"svc-{i:03d}"
        objs.append(Obj("Service", ns, name, SERVICE.format(name=name, ns=ns, app=app)))
    for i in range(mix.deployments):
        ns, app, _ = where(i)
        config = f"cfg-{i:04d}"  # same namespace as the Deployment (same index)
        objs.append(
            Obj("Deployment", ns, app, DEPLOYMENT.format(name=app, ns=ns, app=app, config=config))
        )
    random.Random(1000).shuffle(objs)  # files mix kinds, as real app directories do

    ns_objs = [
        Obj("Namespace", None, ns, NAMESPACE.format(ns=ns, index=i))
        for i, ns in enumerate(namespaces)
    ]
    chunks = max(1, min(files - 1, len(objs)))
    width = max(2, len(str(chunks)))
    layout = {f"{0:0{width}d}-namespaces.yaml": "---\n".join(o.text for o in ns_objs)}
    for f in range(chunks):
        part = objs[f * len(objs) // chunks : (f + 1) * len(objs) // chunks]
        layout[f"{f + 1:0{width}d}-apps.yaml"] = "---\n".join(o.text for o in part)
    return ns_objs + objs, layout


# -- the audit log -----------------------------------------------------------------------


def audit_mark(path: Path, *, settle: float = 0.3, limit: float = 10.0) -> int:
    """The audit log's size once it has stopped growing (the apiserver writes an event
    right after it answers, so the last requests of a window may still be on their way)."""
    deadline = time.monotonic() + limit
    size = path.stat().st_size if path.exists() else 0
    while time.monotonic() < deadline:
        time.sleep(settle)
        now = path.stat().st_size if path.exists() else 0
        if now == size:
            return now
        size = now
    return size


@dataclass
class Window:
    """The requests one user made between two marks of the audit log."""

    total: int = 0
    by_verb: Counter[str] = field(default_factory=Counter)
    writes: list[str] = field(default_factory=list)  # resource/namespace/name, not dry-run

    def verbs(self, top: int = 4) -> str:
        """``get 1308 (configmaps 798, deployments 306, ... +3 kinds)``, verb by verb."""
        per_verb: dict[str, Counter[str]] = {}
        for label, n in self.by_verb.items():
            verb, _, rest = label.partition(" ")
            dry = rest.endswith(" (dry-run)")
            rest = rest.removesuffix(" (dry-run)")
            per_verb.setdefault(verb + (" dry-run" if dry else ""), Counter())[rest or "-"] += n
        parts = []
        for verb, kinds in sorted(per_verb.items()):
            shown = [f"{kind} {n}" for kind, n in kinds.most_common(top) if kind != "-"]
            if len(kinds) > top:
                shown.append(f"+{len(kinds) - top} kinds")
            detail = f" ({', '.join(shown)})" if shown else ""
            parts.append(f"{verb} {sum(kinds.values())}{detail}")
        return "; ".join(parts)


def audit_window(path: Path, start: int, end: int, user: str) -> Window:
    with path.open("rb") as log:
        log.seek(start)
        data = log.read(end - start)
    seen: set[str] = set()
    window = Window()
    for line in data.splitlines():
        if not line.strip():
            continue
        event = json.loads(line)
        if (event.get("user") or {}).get("username") != user:
            continue
        audit_id = event.get("auditID", "")
        if audit_id in seen:
            continue  # a long-running request (a watch) logs ResponseStarted too
        seen.add(audit_id)
        verb = str(event.get("verb", "?"))
        uri = str(event.get("requestURI", ""))
        dry = "dryRun=All" in uri
        ref = event.get("objectRef") or {}
        label = verb
        if ref.get("resource"):
            label = f"{verb} {ref['resource']}"
        if dry:
            label += " (dry-run)"
        window.total += 1
        window.by_verb[label] += 1
        if verb in WRITE_VERBS and not dry:
            window.writes.append(
                f"{ref.get('resource')}/{ref.get('namespace') or '-'}/{ref.get('name')}"
            )
    return window


# -- ours: the child process -------------------------------------------------------------


def _rss_mib() -> tuple[float, float]:
    """(current RSS, peak RSS since the last reset) of this process, in MiB."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return peak, peak
    kib = {
        key: int(value.split()[0])
        for key, _, value in (line.partition(":") for line in status.splitlines())
        if key in ("VmRSS", "VmHWM")
    }
    return kib["VmRSS"] / 1024, kib["VmHWM"] / 1024


def _reset_peak_rss() -> None:
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


class Phases:
    """Times (and counts the client's requests of) the synchronizer's steps by wrapping
    them on one instance; a step this version does not have is simply not timed."""

    STEPS = (
        ("state", "", "_previous_state"),
        ("fetch", "_source", "sync"),
        ("render", "", "_render"),
        ("list", "", "_live"),
        ("health", "", "_check_health"),
        ("record", "", "_record"),
    )

    def __init__(self, synchronizer: Any) -> None:
        self.seconds: dict[str, float] = {}
        self.requests: Counter[str] = Counter()
        kube = synchronizer._kube
        for name, owner_attr, method in self.STEPS:
            owner = getattr(synchronizer, owner_attr) if owner_attr else synchronizer
            original = getattr(owner, method, None)
            if original is not None:
                setattr(owner, method, self._timed(name, original, kube))

    def _timed(self, name: str, fn: Callable[..., Any], kube: Any) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start, before = time.perf_counter(), kube.requests
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
                self.requests[name] += kube.requests - before

        return timed

    def reset(self) -> None:
        self.seconds.clear()
        self.requests.clear()


def child(spec_path: Path) -> int:
    """Run the synchronizer twice in this (fresh) process, one JSON line per run on stdout;
    between the runs, wait for a line on stdin (the parent takes its snapshot then)."""
    spec = json.loads(spec_path.read_text())
    audit_log = Path(spec["audit_log"])
    from automator.config import settings_from_mapping
    from automator.log import configure_logging
    from automator.sync import Synchronizer

    with open(spec["log"], "a") as log_stream:
        configure_logging("json", level="info", stream=log_stream)
        settings = settings_from_mapping(spec["settings"])
        synchronizer = Synchronizer.from_settings(settings)
        phases = Phases(synchronizer)
        try:
            for name in ("first", "again"):
                if name != "first":
                    sys.stdin.readline()
                gc.collect()
                phases.reset()
                mark = audit_mark(audit_log)
                _reset_peak_rss()
                rss_before, _ = _rss_mib()
                cpu_self, cpu_kids = _cpu(resource.RUSAGE_SELF), _cpu(resource.RUSAGE_CHILDREN)
                start = time.perf_counter()
                report = synchronizer.run()
                wall = time.perf_counter() - start
                cpu = _cpu(resource.RUSAGE_SELF) - cpu_self
                cpu_git = _cpu(resource.RUSAGE_CHILDREN) - cpu_kids
                _, rss_peak = _rss_mib()
                run = {
                    "run": name,
                    "wall_s": wall,
                    "cpu_s": cpu,
                    "git_cpu_s": cpu_git,
                    "rss_before_mib": rss_before,
                    "rss_peak_mib": rss_peak,
                    "audit_start": mark,
                    "audit_end": audit_mark(audit_log),
                    "result": report.result,
                    "message": report.message[:1000],
                    "health": report.health,
                    "duration_s": report.duration,
                    "requests": report.requests,
                    "counts": report.counts(),
                    "phases_s": phases.seconds,
                    "phase_requests": dict(phases.requests),
                    "max_concurrency": settings.sync.max_concurrency,
                }
                print(json.dumps(run), flush=True)
        finally:
            synchronizer.close()
    return 0


# -- kubectl -----------------------------------------------------------------------------


@dataclass
class ToolRun:
    wall_s: float
    cpu_s: float | None
    peak_mib: float | None
    window: Window
    stdout: str


def run_kubectl(
    argv: Sequence[str], *, env: Mapping[str, str], audit_log: Path, tmp: Path
) -> ToolRun:
    """One kubectl process, timed, with its requests and (via /usr/bin/time) its memory."""
    gnu_time = Path("/usr/bin/time")
    stats = tmp / "time-v.txt"
    prefix = [str(gnu_time), "-v", "-o", str(stats)] if gnu_time.is_file() else []
    start_mark = audit_mark(audit_log)
    kids = _cpu(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(
        [*prefix, *argv], capture_output=True, text=True, env={**os.environ, **env}, check=False
    )
    wall = time.perf_counter() - start
    cpu: float | None = _cpu(resource.RUSAGE_CHILDREN) - kids
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv[:4])}... exited {proc.returncode}:\n{proc.stderr[-3000:]}"
        )
    peak: float | None = None
    if prefix:
        fields = dict(line.strip().rpartition(": ")[::2] for line in stats.read_text().splitlines())
        peak = int(fields["Maximum resident set size (kbytes)"]) / 1024
        cpu = float(fields["User time (seconds)"]) + float(fields["System time (seconds)"])
    window = audit_window(audit_log, start_mark, audit_mark(audit_log), KUBECTL_USER)
    return ToolRun(wall, cpu, peak, window, proc.stdout)


# -- checks ------------------------------------------------------------------------------

PLURALS = {
    "Namespace": ("/api/v1", "namespaces"),
    "ConfigMap": ("/api/v1", "configmaps"),
    "Secret": ("/api/v1", "secrets"),
    "ServiceAccount": ("/api/v1", "serviceaccounts"),
    "Service": ("/api/v1", "services"),
    "Deployment": ("/apis/apps/v1", "deployments"),
}


def snapshot(cluster: ControlPlane, objs: Sequence[Obj]) -> dict[tuple[str, str, str], Any]:
    """The live objects (as the API serves them, managedFields included), by identity."""
    namespaces = sorted({o.namespace for o in objs if o.namespace})
    out: dict[tuple[str, str, str], Any] = {}
    with cluster.client() as http:
        for kind, (base, plural) in PLURALS.items():
            paths = (
                [f"{base}/{plural}"]
                if kind == "Namespace"
                else [f"{base}/namespaces/{ns}/{plural}" for ns in namespaces]
            )
            for path in paths:
                response = http.get(path)
                response.raise_for_status()
                for item in response.json().get("items", []):
                    meta = item["metadata"]
                    out[(kind, meta.get("namespace", ""), meta["name"])] = item
    return out


def _key(o: Obj) -> tuple[str, str, str]:
    return (o.kind, o.namespace or "", o.name)


def _managed_by(item: Mapping[str, Any], manager: str) -> dict[str, Any] | None:
    for entry in item["metadata"].get("managedFields") or ():
        if entry.get("manager") == manager and entry.get("operation") == "Apply":
            found: dict[str, Any] = entry
            return found
    return None


def _unmoved(kind: str, before: Mapping[str, Any], after: Mapping[str, Any], manager: str) -> bool:
    """No write reached the object: its resourceVersion, or for a Deployment (whose status
    the controllers keep writing) its generation and our managedFields entry."""
    if kind != "Deployment":
        return bool(before["metadata"]["resourceVersion"] == after["metadata"]["resourceVersion"])
    return bool(
        before["metadata"].get("generation") == after["metadata"].get("generation")
        and _managed_by(before, manager) == _managed_by(after, manager)
    )


class Check:
    def __init__(self) -> None:
        self.problems: list[str] = []
        self.notes: list[str] = []

    def expect(self, ok: bool, what: str) -> None:
        (self.notes if ok else self.problems).append(what)


def check_present(
    check: Check,
    tool: str,
    objs: Sequence[Obj],
    live: Mapping[tuple[str, str, str], Any],
    manager: str,
) -> None:
    missing = [_key(o) for o in objs if _key(o) not in live]
    unmanaged = [
        _key(o) for o in objs if _key(o) in live and _managed_by(live[_key(o)], manager) is None
    ]
    check.expect(
        not missing,
        f"{tool}: {len(objs) - len(missing)}/{len(objs)} objects exist"
        + (f" (missing e.g. {missing[:3]})" if missing else ""),
    )
    check.expect(
        not unmanaged,
        f"{tool}: field manager {manager!r} (Apply) on every object"
        + (f" (not on {len(unmanaged)}, e.g. {unmanaged[:3]})" if unmanaged else ""),
    )


def check_unmoved(
    check: Check,
    tool: str,
    objs: Sequence[Obj],
    before: Mapping[tuple[str, str, str], Any],
    after: Mapping[tuple[str, str, str], Any],
    manager: str,
) -> None:
    moved = [
        _key(o)
        for o in objs
        if _key(o) in before
        and _key(o) in after
        and not _unmoved(o.kind, before[_key(o)], after[_key(o)], manager)
    ]
    check.expect(
        not moved,
        f"{tool}: unchanged re-apply moved no resourceVersion ({len(objs)} objects compared)"
        + (f"; moved: {len(moved)}, e.g. {moved[:3]}" if moved else ""),
    )


# -- the benchmark -----------------------------------------------------------------------


def kube_bin_dir() -> Path:
    given = os.environ.get("AUTOMATOR_KUBE_BIN")
    if given:
        return Path(given)
    result = subprocess.run(
        ["bash", str(REPO_ROOT / "hack" / "control-plane.sh"), "all"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        raise SystemExit(
            f"hack/control-plane.sh all exited {result.returncode} (2: no Go toolchain and no "
            f"binaries; set KUBEBUILDER_ASSETS or install Go):\n{result.stderr[-3000:]}"
        )
    return Path(lines[-1])


def add_nodes(cluster: ControlPlane, pods: int) -> int:
    """Enough fake nodes for ``pods`` pods (kwok's node takes 110): copies of the first
    one, which kwok (``--manage-all-nodes``) keeps Ready too. Returns the node count."""
    wanted = max(1, -(-pods // PODS_PER_NODE))
    template = cluster.get(f"/api/v1/nodes/{cluster.node_name}")
    meta = template["metadata"]
    names = [f"{cluster.node_name.rsplit('-', 1)[0]}-{i}" for i in range(1, wanted)]
    with cluster.client() as http:
        for name in names:
            node = {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "annotations": meta.get("annotations", {}),
                    "labels": {**meta.get("labels", {}), "kubernetes.io/hostname": name},
                },
                "status": {
                    "allocatable": template["status"]["allocatable"],
                    "capacity": template["status"]["capacity"],
                },
            }
            response = http.post("/api/v1/nodes", json=node)
            if response.status_code not in (201, 409):
                raise RuntimeError(f"creating node {name} failed: {response.text}")

    def ready(name: str) -> bool:
        node = cluster.get(f"/api/v1/nodes/{name}")
        conditions = node.get("status", {}).get("conditions", [])
        is_ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
        return is_ready and not node.get("spec", {}).get("taints")

    for name in names:
        cluster.wait_for(functools.partial(ready, name), timeout=120, what=f"node {name} Ready")
    return wanted


def user_kubeconfig(cluster: ControlPlane, token: str, path: Path) -> Path:
    config = json.loads(cluster.kubeconfig.read_text())
    config["users"] = [{"name": "admin", "user": {"token": token}}]
    path.write_text(json.dumps(config, indent=2) + "\n")
    path.chmod(0o600)
    return path


@contextlib.contextmanager
def terminate_on_sigterm() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so every ``with`` below stops what it started."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_ours(
    spec: Mapping[str, Any], tmp: Path, between: Callable[[], None]
) -> list[dict[str, Any]]:
    """The child's two runs; ``between`` runs after the first (outside both windows)."""
    spec_path = tmp / "ours-spec.json"
    spec_path.write_text(json.dumps(spec))
    errors = tmp / "ours-stderr.txt"
    runs: list[dict[str, Any]] = []
    with errors.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--child", str(spec_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
        try:
            assert proc.stdin is not None
            assert proc.stdout is not None
            for _ in range(2):
                line = proc.stdout.readline()
                if not line.strip():
                    break
                runs.append(json.loads(line))
                if len(runs) == 1:
                    between()
                    proc.stdin.write("go\n")
                    proc.stdin.flush()
            proc.stdin.close()
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    if proc.returncode != 0 or len(runs) != 2:
        tail = errors.read_text(errors="replace")[-4000:]
        raise RuntimeError(f"the synchronizer's run failed ({proc.returncode}):\n{tail}")
    return runs


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "n/a"
    return f"{a / b:.2f}"


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "n/a" if value is None else format(value, spec)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--objects", type=int, default=1000, help="Namespaces included")
    parser.add_argument("--files", type=int, default=100, help="YAML files the objects fill")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        return child(args.child)

    mix = Mix.for_total(args.objects)
    bin_dir = kube_bin_dir()
    missing = [name for name in COMPONENT_FILES if not (bin_dir / name).is_file()]
    if missing:
        raise SystemExit(f"{bin_dir} lacks {', '.join(missing)}; run hack/control-plane.sh all")
    tmp = Path(tempfile.mkdtemp(prefix="bench-sync-"))
    try:
        with terminate_on_sigterm():
            return bench(args, mix, bin_dir, tmp)
    except KeyboardInterrupt:
        print("interrupted; the control plane was stopped", file=sys.stderr)
        return 130
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def bench(args: argparse.Namespace, mix: Mix, bin_dir: Path, tmp: Path) -> int:
    ours_objs, ours_files = generate(mix, "bench-am", args.files)
    kc_objs, kc_files = generate(mix, "bench-kc", args.files)
    bare = make_bare_repo(
        tmp / "srv",
        "config.git",
        {f"deploy/{name}": text.encode() for name, text in ours_files.items()},
    )
    kc_dir = tmp / "kubectl" / "deploy"
    kc_dir.mkdir(parents=True)
    for name, text in kc_files.items():
        (kc_dir / name).write_text(text)

    audit_log = tmp / "audit.log"
    policy = tmp / "audit-policy.yaml"
    policy.write_text(AUDIT_POLICY)
    tokens = {OURS_USER: secrets.token_hex(16), KUBECTL_USER: secrets.token_hex(16)}
    cluster = ControlPlane(
        bin_dir,
        tmp / "control-plane",
        apiserver_args=[
            f"--audit-policy-file={policy}",
            f"--audit-log-path={audit_log}",
            "--audit-log-format=json",
            "--audit-log-mode=blocking",
            "--audit-log-maxsize=4096",  # MB: never rotate within a run
        ],
        users=tokens,
    )
    start = time.perf_counter()
    with cluster:
        nodes = add_nodes(cluster, 2 * mix.deployments)
        print(
            f"setup: control plane (etcd, apiserver with audit log, controller-manager, "
            f"scheduler, kwok; {nodes} fake node(s)) up in {time.perf_counter() - start:.1f}s; "
            f"{len(ours_objs)} objects per tool ({mix.describe()}) in {len(ours_files)} files",
            flush=True,
        )
        ours_kubeconfig = user_kubeconfig(cluster, tokens[OURS_USER], tmp / "ours.kubeconfig")
        kc_kubeconfig = user_kubeconfig(cluster, tokens[KUBECTL_USER], tmp / "kc.kubeconfig")
        kubectl = str(kubectl_binary())
        kc_env = {"KUBECONFIG": str(kc_kubeconfig), "KUBECACHEDIR": str(tmp / "kc-cache")}
        kc_base = [kubectl, f"--kubeconfig={kc_kubeconfig}", f"--cache-dir={tmp / 'kc-cache'}"]

        # -- scenario A: ours --------------------------------------------------------------
        spec = {
            "audit_log": str(audit_log),
            "log": str(tmp / "ours.log"),
            "settings": {
                "git": {"url": bare.as_uri(), "branch": "main"},
                "workdir": str(tmp / "clone"),
                "sync": {
                    "name": SYNC_NAME,
                    "namespace": STATE_NAMESPACE,
                    "kubeconfig": str(ours_kubeconfig),
                    "paths": [{"path": "deploy"}],
                    "timeout": HEALTH_TIMEOUT,
                },
            },
        }
        print("ours: first apply, then an unchanged re-sync ...", flush=True)
        snapshots: list[dict[tuple[str, str, str], Any]] = []
        first, again = run_ours(spec, tmp, lambda: snapshots.append(snapshot(cluster, ours_objs)))
        live_ours = snapshots[0]  # after the first apply
        live_ours_after = snapshot(cluster, ours_objs)  # after the re-sync
        windows = [
            audit_window(audit_log, r["audit_start"], r["audit_end"], OURS_USER)
            for r in (first, again)
        ]

        # -- scenario B: kubectl -----------------------------------------------------------
        print("kubectl: first apply, wait for Available, unchanged re-apply ...", flush=True)
        subprocess.run(
            [*kc_base, "api-resources"],
            capture_output=True,
            check=True,
            env={**os.environ, **kc_env},
        )  # warm kubectl's discovery cache, outside every window
        apply_argv = [
            *kc_base, "apply", "--server-side", f"--field-manager={FIELD_MANAGER_KUBECTL}",
            "-f", str(kc_dir), "-R",
        ]  # fmt: skip
        kc_first = run_kubectl(apply_argv, env=kc_env, audit_log=audit_log, tmp=tmp)
        waits: list[ToolRun] = []
        for ns in sorted({str(o.namespace) for o in kc_objs if o.kind == "Deployment"}):
            waits.append(
                run_kubectl(
                    [*kc_base, "wait", "--for=condition=Available", "deployment", "--all",
                     "-n", ns, f"--timeout={HEALTH_TIMEOUT}"],
                    env=kc_env, audit_log=audit_log, tmp=tmp,
                )
            )  # fmt: skip
        live_kc = snapshot(cluster, kc_objs)
        kc_again = run_kubectl(apply_argv, env=kc_env, audit_log=audit_log, tmp=tmp)
        live_kc_after = snapshot(cluster, kc_objs)

    # -- checks ----------------------------------------------------------------------------
    n = len(ours_objs)
    check = Check()
    check.expect(
        first["result"] == "succeeded" and first["health"] == "healthy",
        f"ours first: result {first['result']}, health {first['health']}"
        + (f" ({first['message'][:300]})" if first["message"] else ""),
    )
    check.expect(first["counts"] == {"created": n}, f"ours first: actions {first['counts']}")
    check.expect(
        again["result"] == "succeeded" and again["counts"] == {"unchanged": n},
        f"ours re-sync: result {again['result']}, actions {again['counts']}",
    )
    check_present(check, "ours", ours_objs, live_ours, "automator")
    ours_writes = [w for w in windows[1].writes if f"/{STATE_NAMESPACE}/" not in w]
    check.expect(
        not ours_writes,
        f"ours re-sync: audit shows no write but the state record ({len(windows[1].writes)} "
        f"write(s) in all)" + (f"; writes: {ours_writes[:5]}" if ours_writes else ""),
    )
    check_unmoved(check, "ours", ours_objs, live_ours, live_ours_after, "automator")
    check_present(check, "kubectl", kc_objs, live_kc, FIELD_MANAGER_KUBECTL)
    applied_lines = sum(1 for line in kc_first.stdout.splitlines() if line.strip())
    check.expect(applied_lines == n, f"kubectl first: {applied_lines} objects reported applied")
    check_unmoved(check, "kubectl", kc_objs, live_kc, live_kc_after, FIELD_MANAGER_KUBECTL)

    # -- figures ---------------------------------------------------------------------------
    wait_s = sum(w.wall_s for w in waits)
    wait_requests = sum(w.window.total for w in waits)
    f_health = first["phases_s"].get("health", 0.0)
    a_health = again["phases_s"].get("health", 0.0)
    rows: list[tuple[str, float, float | None, int, int | None, str, float, float | None]] = [
        ("first apply, with health wait", first["wall_s"], kc_first.wall_s + wait_s,
         windows[0].total, kc_first.window.total + wait_requests, str(first["requests"]),
         first["rss_peak_mib"], kc_first.peak_mib),
        ("first apply, apply only", first["wall_s"] - f_health, kc_first.wall_s,
         windows[0].total - first["phase_requests"].get("health", 0), kc_first.window.total,
         str(first["requests"] - first["phase_requests"].get("health", 0)),
         first["rss_peak_mib"], kc_first.peak_mib),
        ("unchanged re-sync", again["wall_s"], kc_again.wall_s, windows[1].total,
         kc_again.window.total, str(again["requests"]), again["rss_peak_mib"],
         kc_again.peak_mib),
        ("unchanged re-sync, apply only", again["wall_s"] - a_health, kc_again.wall_s,
         windows[1].total - again["phase_requests"].get("health", 0), kc_again.window.total,
         str(again["requests"] - again["phase_requests"].get("health", 0)),
         again["rss_peak_mib"], kc_again.peak_mib),
    ]  # fmt: skip
    print()
    print(
        f"{n} objects per tool; ours = Synchronizer.run() (max_concurrency "
        f"{first['max_concurrency']}), kubectl = kubectl apply --server-side (sequential)"
    )
    header = (
        f"{'':<32}{'ours s':>8}{'kubectl s':>10}{'ratio':>7}{'req ours':>10}{'req kubectl':>12}"
        f"{'ratio':>7}{'report.req':>11}{'ours MiB':>10}{'kubectl MiB':>12}"
    )
    print(header)
    for name, ours_s, kc_s, req_ours, req_kc, report_req, ours_mib, kc_mib in rows:
        print(
            f"{name:<32}{ours_s:>8.2f}{_fmt(kc_s):>10}{_ratio(ours_s, kc_s):>7}{req_ours:>10}"
            f"{_fmt(req_kc, 'd'):>12}{_ratio(req_ours, req_kc):>7}{report_req:>11}"
            f"{ours_mib:>10.1f}{_fmt(kc_mib, '.1f'):>12}"
        )
    print()
    print("CPU seconds (user+system):")
    print(
        f"  first apply:   ours {first['cpu_s']:.2f} (+ git {first['git_cpu_s']:.2f}), "
        f"kubectl apply {_fmt(kc_first.cpu_s)}, kubectl wait {sum(w.cpu_s or 0 for w in waits):.2f}"
    )
    print(
        f"  re-sync:       ours {again['cpu_s']:.2f} (+ git {again['git_cpu_s']:.2f}), "
        f"kubectl apply {_fmt(kc_again.cpu_s)}"
    )
    for label, run in (("first apply", first), ("re-sync", again)):
        phases = run["phases_s"]
        apply_s = run["wall_s"] - sum(phases.values())
        apply_req = run["requests"] - sum(run["phase_requests"].values())
        parts = [
            f"{name} {phases.get(name, 0.0):.2f}s/{run['phase_requests'].get(name, 0)}"
            for name in ("state", "fetch", "render", "list")
        ]
        parts.append(f"apply {apply_s:.2f}s/{apply_req}")
        parts += [
            f"{name} {phases.get(name, 0.0):.2f}s/{run['phase_requests'].get(name, 0)}"
            for name in ("health", "record")
        ]
        print(f"ours {label} phases (time/client calls): {', '.join(parts)}")
    print(f"ours first apply, audit: {windows[0].verbs()}")
    print(f"ours re-sync, audit:     {windows[1].verbs()}")
    print(f"kubectl first apply, audit: {kc_first.window.verbs()}")
    print(f"kubectl wait, audit:        {', '.join(w.window.verbs() for w in waits)}")
    print(f"kubectl re-apply, audit:    {kc_again.window.verbs()}")
    print()
    for note in check.notes:
        print(f"  ok    {note}")
    for problem in check.problems:
        print(f"  WRONG {problem}")
    ok = not check.problems
    print(f"check: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
