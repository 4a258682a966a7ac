"""The daemon: run one cycle every ``interval`` and serve health endpoints.

APScheduler (3.x) owns the timing, with exactly one job that may never overlap itself
(``max_instances=1``, ``coalesce=True``): a cycle that runs long delays the next one
instead of starting a second one beside it. SIGTERM and SIGINT stop the scheduler after
the running cycle has finished, so a rollout of the daemon never cuts a commit in half.

``/healthz`` answers while the process lives; ``/readyz`` once a cycle has completed;
``/metrics`` exposes a few counters in the Prometheus text format.
"""

from __future__ import annotations

import contextlib
import json
import signal
import threading
from collections.abc import Callable, Collection
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import structlog
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)

from automator.config import SecretRef, Settings, read_secret
from automator.engine import CycleResult, Engine
from automator.errors import ConfigError, ImageRefError
from automator.images import ImageRef
from automator.kubelease import KubeLeaseStore
from automator.leader import Elector, LeaderElection, default_identity
from automator.notify import CycleEvents, Notifier
from automator.registry import RegistryMetrics
from automator.sync import Synchronizer, SyncReport
from automator.webhooks import (
    HookError,
    HookRequest,
    RepositoryRef,
    authorize,
    parse_hook,
    pushed_branch,
)

__all__ = ["DaemonState", "SyncDaemonState", "run_daemon", "run_sync_daemon"]

log = structlog.get_logger(__name__)


class _Served:
    """Readiness and metrics, shared by the scheduler thread and the HTTP server.

    The metrics live in one explicit prometheus ``CollectorRegistry`` (never the library's
    global default), which the registry client also writes its request counters to.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self._lock = threading.Lock()
        self._ready = False
        self.notifications = Counter(
            "automator_notifications",
            "Notifications by outcome: sent, failed (given up), dropped (queue full).",
            ["result"],
            registry=self.registry,
        )

    def count_notification(self, result: str) -> None:
        self.notifications.labels(result=result).inc()

    @property
    def ready(self) -> bool:
        with self._lock:
            return self._ready

    def _mark_ready(self) -> None:
        with self._lock:
            self._ready = True

    def metrics(self) -> bytes:
        return generate_latest(self.registry)


class DaemonState(_Served):
    """Readiness and cycle metrics of ``automator run``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        self.cycles = Counter("automator_cycles", "Automation cycles run.", registry=self.registry)
        self.failed_cycles = Counter(
            "automator_cycle_failures",
            "Cycles in which some workload failed.",
            registry=self.registry,
        )
        self.updates = Counter(
            "automator_image_updates",
            "Image values rewritten and pushed.",
            registry=self.registry,
        )
        self.failed_workloads = Gauge(
            "automator_failed_workloads",
            "Workloads that failed in the last cycle.",
            registry=self.registry,
        )
        self.duration = Gauge(
            "automator_last_cycle_duration_seconds",
            "Duration of the last cycle.",
            registry=self.registry,
        )
        self.last_success = Gauge(
            "automator_last_success_timestamp_seconds",
            "Unix time of the last cycle without failures.",
            registry=self.registry,
        )
        self.leader = Gauge(
            "automator_leader",
            "1 while this replica may write (it leads, or leader election is off), else 0.",
            registry=self.registry,
        )
        self.push_exhausted = Counter(
            "automator_push_retries_exhausted",
            "Cycles whose every push attempt was rejected (push_retries ran out).",
            registry=self.registry,
        )

    def record(
        self, *, ok: bool, updates: int, failed: int, duration: float, partial: bool = False
    ) -> None:
        """Count one cycle. A ``partial`` (webhook) cycle saw only some workloads, so it
        does not speak for the others: it leaves the failure gauge, the last-success time
        and readiness to the full cycles."""
        self.cycles.inc()
        if not ok:
            self.failed_cycles.inc()
        self.updates.inc(updates)
        if partial:
            return
        self.failed_workloads.set(failed)
        self.duration.set(duration)
        if ok:
            self.last_success.set_to_current_time()
        self._mark_ready()


_MAX_HOOK_BODY = 1 << 20


def _repository_matcher(refs: Collection[RepositoryRef]) -> Callable[[ImageRef], bool]:
    """Accept an image whose repository a hook named (host too, when the hook gave one)."""
    wanted: list[tuple[str | None, str]] = []
    for ref in refs:
        probe = ImageRef.parse(f"{ref.host}/{ref.path}" if ref.host else ref.path)
        wanted.append((probe.registry if ref.host else None, probe.repository))

    def matches(image: ImageRef) -> bool:
        return any(
            path == image.repository and (host is None or host in (image.registry, image.host))
            for host, path in wanted
        )

    return matches


def _check_repository(ref: RepositoryRef) -> None:
    """Refuse, at the door, a repository name no image could have (HookError 400)."""
    try:
        ImageRef.parse(str(ref))
    except ImageRefError as exc:
        raise HookError(400, f"repository {str(ref)!r} is not a valid image name: {exc}") from exc


class Cycles:
    """Runs cycles one at a time: the scheduled full ones and the webhook-triggered ones.

    Hooks arriving within ``batch_window`` of the first one are gathered into one cycle
    over the union of their repositories, so a CI pipeline pushing ten tags makes one
    commit, not ten.
    """

    def __init__(
        self,
        engine: Engine,
        state: DaemonState,
        scheduler: BackgroundScheduler,
        window: float,
        *,
        gate: Callable[[], bool] | None = None,
        on_result: Callable[[CycleResult, bool], None] | None = None,
    ) -> None:
        """``gate`` says whether this replica may write now (leader election); cycles
        are skipped while it says no. ``on_result`` sees every finished cycle and whether
        it was partial (notifications)."""
        self._engine, self._state, self._scheduler, self._window = engine, state, scheduler, window
        self._gate, self._on_result = gate, on_result
        self._cycle_lock = threading.Lock()
        self._pending_lock = threading.Lock()
        self._pending: dict[RepositoryRef, None] = {}
        self._armed = False

    def full(self) -> None:
        self._run(None)

    def writable(self) -> bool:
        return self._gate is None or self._gate()

    def hook(self, refs: Collection[RepositoryRef]) -> None:
        """Queue repositories for the next webhook cycle (armed once per window)."""
        with self._pending_lock:
            self._pending.update(dict.fromkeys(refs))
            if self._armed:
                return
            self._armed = True
        run_at = datetime.now(UTC) + timedelta(seconds=self._window)
        # One job id, never dropped as "missed" even if it starts late (a long full cycle
        # holds the cycle lock): otherwise `_armed` would stay set and hooks would stop.
        self._scheduler.add_job(
            self._run_pending,
            DateTrigger(run_date=run_at),
            id="webhook-cycle",
            replace_existing=True,
            misfire_grace_time=None,
        )

    def _run_pending(self) -> None:
        with self._pending_lock:
            refs, self._pending, self._armed = list(self._pending), {}, False
        if refs:
            log.info("webhook_cycle", repositories=[str(r) for r in refs])
            self._run(_repository_matcher(refs))

    def _run(self, only: Callable[[ImageRef], bool] | None) -> None:
        with self._cycle_lock:
            if not self.writable():
                return  # a follower: the leader runs the cycles
            try:
                result = self._engine.run_once(only=only)
            except Exception:
                log.exception("cycle_crashed")
                self._state.record(ok=False, updates=0, failed=0, duration=0.0)
                return
        self._state.record(
            ok=result.ok,
            updates=len(result.changes),
            failed=len(result.failures),
            duration=result.duration,
            partial=only is not None,
        )
        if result.push_exhausted:
            self._state.push_exhausted.inc()
        if self._on_result is not None:
            self._on_result(result, only is not None)


class SyncDaemonState(_Served):
    """Readiness and metrics of ``automator sync``: one record per sync."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        self.syncs = Counter(
            "automator_syncs", "Syncs run, by result.", ["result"], registry=self.registry
        )
        self.objects = Gauge(
            "automator_sync_objects",
            "Objects of the last sync, by what happened to them.",
            ["action"],
            registry=self.registry,
        )
        self.drifted = Gauge(
            "automator_sync_drifted_objects",
            "Objects whose live state differed from an unchanged Git revision in the last sync.",
            registry=self.registry,
        )
        self.healthy = Gauge(
            "automator_sync_healthy",
            "1 when every workload of the last sync rolled out, else 0.",
            registry=self.registry,
        )
        self.duration = Gauge(
            "automator_sync_last_duration_seconds",
            "Duration of the last sync.",
            registry=self.registry,
        )
        self.requests = Counter(
            "automator_sync_api_requests", "Requests made to the apiserver.", registry=self.registry
        )
        self.last_success = Gauge(
            "automator_sync_last_success_timestamp_seconds",
            "Unix time of the last successful sync.",
            registry=self.registry,
        )

    def record(self, report: SyncReport) -> None:
        self.syncs.labels(result=report.result).inc()
        counts = report.counts()
        for action in ("created", "configured", "unchanged", "deleted", "skipped", "failed"):
            self.objects.labels(action=action).set(counts.get(action, 0))
        self.drifted.set(len(report.drift))
        self.healthy.set(1 if report.health == "healthy" else 0)
        self.duration.set(report.duration)
        self.requests.inc(report.requests)
        if report.ok:
            self.last_success.set_to_current_time()
        self._mark_ready()


def _handler(
    state: _Served,
    cycles: Cycles | None,
    secret: str | None,
    git_hook: Callable[[str | None], bool] | None = None,
) -> type[BaseHTTPRequestHandler]:
    """The HTTP endpoints. ``cycles`` takes registry hooks (``automator run``);
    ``git_hook`` takes ``/hooks/git`` with the pushed branch and says whether it started
    a sync (``automator sync``)."""

    class Handler(BaseHTTPRequestHandler):
        timeout = 30  # a slow or silent client cannot hold a thread forever

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            if path == "/healthz":
                self._reply(200, "ok\n")
            elif path == "/readyz":
                ready = state.ready
                self._reply(200 if ready else 503, "ready\n" if ready else "no cycle yet\n")
            elif path == "/metrics":
                self._reply(200, state.metrics(), CONTENT_TYPE_LATEST)
            else:
                self._reply(404, "not found\n")

        def do_POST(self) -> None:
            url = urlsplit(self.path)
            kind = url.path.removeprefix("/hooks/").strip("/")
            git = kind == "git" and git_hook is not None
            if not url.path.startswith("/hooks/") or (cycles is None and not git):
                self._reply(404, "not found\n")
                return
            raw_length = self.headers.get("Content-Length") or "0"
            if not raw_length.isdigit():
                self._json(400, {"error": "Content-Length must be a non-negative integer"})
                return
            length = int(raw_length)
            if length > _MAX_HOOK_BODY:
                self._json(413, {"error": "webhook body larger than 1 MiB"})
                return
            request = HookRequest(
                kind=kind,
                headers={k.lower(): v for k, v in self.headers.items()},
                query=dict(parse_qsl(url.query)),
                body=self.rfile.read(length),
            )
            try:
                authorize(request, secret)
                if cycles is not None and not git and not cycles.writable():
                    # A follower: 503 makes the registry retry, and the Service may send
                    # the retry to the leader (the interval cycle catches up regardless).
                    log.info("webhook_not_leader", kind=kind)
                    self.send_response(503)
                    self.send_header("Retry-After", "5")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if git and git_hook is not None:
                    branch = pushed_branch(request)
                    started = git_hook(branch)
                    log.info("webhook_received", kind=kind, branch=branch, sync=started)
                    self._json(202, {"sync": started, "branch": branch})
                    return
                refs = parse_hook(request)
                for ref in refs:
                    _check_repository(ref)
            except HookError as exc:
                if exc.status < 400:
                    log.info("webhook_ignored", kind=kind, reason=str(exc))
                    self._json(exc.status, {"sync": False, "reason": str(exc)})
                    return
                log.warning("webhook_rejected", kind=kind, status=exc.status, reason=str(exc))
                self._json(exc.status, {"error": str(exc)})
                return
            log.info("webhook_received", kind=kind, repositories=[str(r) for r in refs])
            if refs and cycles is not None:
                cycles.hook(refs)
            self._json(202, {"repositories": [str(r) for r in refs]})

        def _json(self, code: int, doc: object) -> None:
            self._reply(code, json.dumps(doc) + "\n", "application/json")

        def _reply(self, code: int, body: str | bytes, ctype: str = "text/plain") -> None:
            data = body.encode() if isinstance(body, str) else body
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            """Silence the stdlib access log; structlog is our only log stream."""

    return Handler


def run_sync_daemon(
    settings: Settings, synchronizer: Synchronizer, *, stop: threading.Event | None = None
) -> int:
    """``automator sync``: one sync every ``sync.interval`` until SIGTERM/SIGINT.

    Same shape as the automator's daemon (one job that never overlaps itself, stop after
    the running sync), and a separate process from it: the synchronizer holds cluster
    credentials and read-only Git access, the automator push rights and no cluster access.
    """
    stop = stop or threading.Event()
    state = SyncDaemonState()
    secret = _hook_secret(settings.sync.webhook_secret_env, key="sync.webhook_secret")
    # A push must never be lost and syncs must never overlap: every trigger (interval or
    # hook) raises `wanted`; whoever holds `running` syncs until nobody wants more, and a
    # trigger that finds it held leaves the work to the holder, which looks at `wanted`
    # again only after releasing it.
    wanted = threading.Event()
    running = threading.Lock()
    notifier = Notifier.from_settings(settings, on_outcome=state.count_notification)
    events = CycleEvents.from_settings(settings)

    def drain() -> None:
        while wanted.is_set() and not stop.is_set():
            if not running.acquire(blocking=False):
                return
            try:
                wanted.clear()
                report = synchronizer.run()
                state.record(report)
                notifier.notify_all(events.sync(report))
            finally:
                running.release()

    def one_sync() -> None:
        wanted.set()
        drain()

    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.add_job(
        one_sync,
        IntervalTrigger(seconds=settings.sync.interval),
        id="sync",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=None,
        next_run_time=datetime.now(UTC),
    )

    def git_hook(branch: str | None) -> bool:
        if branch is not None and branch != settings.git.branch:
            return False
        wanted.set()
        # its own job id: never skipped for the interval job's instance running
        scheduler.add_job(drain, id="sync-hook", replace_existing=True, max_instances=2)
        return True

    server: ThreadingHTTPServer | None = None
    if settings.sync.listen is not None:
        handler = _handler(state, None, secret, git_hook=git_hook)
        try:
            server = _serve(settings.sync.listen, handler, key="sync.listen")
        except ConfigError:
            notifier.close(0)
            raise

    previous = _install_stop_signals(stop)
    log.info(
        "sync_daemon_started",
        interval_s=settings.sync.interval,
        mode=settings.sync.mode,
        listen=settings.sync.listen,
        webhooks_authenticated=secret is not None,
    )
    if server is not None and secret is None:
        log.warning("webhooks_unauthenticated", fix="set sync.webhook_secret_env")
    scheduler.start()
    try:
        stop.wait()
    finally:
        synchronizer.interrupt()  # a rollout wait may last sync.timeout: do not hold shutdown
        scheduler.shutdown(wait=True)
        if server is not None:
            server.shutdown()
            server.server_close()
        notifier.close()
        _restore_signals(previous)
        log.info("sync_daemon_stopped")
    return 0


def _serve(listen: str, handler: type[BaseHTTPRequestHandler], *, key: str) -> ThreadingHTTPServer:
    """Bind ``listen`` (host:port) and serve ``handler`` on a daemon thread; ConfigError
    naming ``key`` when the address cannot be bound."""
    host, _, port = listen.rpartition(":")
    try:
        server = ThreadingHTTPServer((host.strip("[]"), int(port)), handler)
    except OSError as exc:
        raise ConfigError(
            f"{key}: cannot listen on {listen} ({exc.strerror or exc}); "
            "pick a free port or an address of this machine"
        ) from exc
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    return server


def _hook_secret(env: str | None, *, key: str) -> str | None:
    """The webhook secret, read once at start; an empty one is refused (anyone can
    compute an HMAC with an empty key)."""
    if env is None:
        return None
    secret = read_secret(SecretRef(env=env), key=key)
    if not secret:
        raise ConfigError(
            f"{key}_env: environment variable {env} is empty; put the secret in it, or "
            f"remove {key}_env to accept unauthenticated hooks"
        )
    return secret


def _install_stop_signals(stop: threading.Event) -> dict[int, Any]:
    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("shutdown_requested", signal=signal.Signals(signum).name)
        stop.set()

    return {
        sig: signal.signal(sig, _on_signal)
        for sig in (signal.SIGTERM, signal.SIGINT)
        if threading.current_thread() is threading.main_thread()
    }


def _restore_signals(previous: dict[int, Any]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def run_daemon(settings: Settings, *, stop: threading.Event | None = None) -> int:
    """Run until SIGTERM/SIGINT (or ``stop`` is set); returns the exit code."""
    stop = stop or threading.Event()
    secret = _hook_secret(settings.http.webhook_secret_env, key="http.webhook_secret")
    state = DaemonState()
    elector = _elector(settings)
    engine = Engine.from_settings(
        settings,
        metrics=RegistryMetrics(state.registry),
        before_push=elector.check_may_write if elector is not None else None,
    )
    scheduler = BackgroundScheduler(timezone="UTC")
    notifier = Notifier.from_settings(settings, on_outcome=state.count_notification)
    events = CycleEvents.from_settings(settings)
    cycles = Cycles(
        engine,
        state,
        scheduler,
        settings.batch_window,
        gate=elector.may_write if elector is not None else None,
        on_result=lambda result, partial: notifier.notify_all(
            events.cycle(result, partial=partial)
        ),
    )
    election = None if elector is None else _election(elector, state, scheduler, cycles)
    if election is None:
        state.leader.set(1)

    try:
        server = _serve(settings.http.listen, _handler(state, cycles, secret), key="http.listen")
    except ConfigError:
        engine.close()
        _close_store(elector)
        notifier.close(0)
        raise

    scheduler.add_job(
        cycles.full,
        IntervalTrigger(seconds=settings.interval),
        id="cycle",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=None,
        next_run_time=datetime.now(UTC),
    )

    previous = _install_stop_signals(stop)
    log.info(
        "daemon_started",
        listen=settings.http.listen,
        interval_s=settings.interval,
        webhooks_authenticated=secret is not None,
        notifications=[n.kind for n in settings.notifications],
    )
    if secret is None:
        log.warning("webhooks_unauthenticated", fix="set http.webhook_secret_env")
    scheduler.start()
    if election is not None:
        election.start()
    try:
        stop.wait()
    finally:
        scheduler.shutdown(wait=True)
        if election is not None:
            election.stop()  # only now that no cycle runs: release the lease
            _close_store(elector)
        server.shutdown()
        server.server_close()
        engine.close()
        notifier.close()
        _restore_signals(previous)
        log.info("daemon_stopped")
    return 0


def _elector(settings: Settings) -> Elector | None:
    """The Lease candidate when ``leader_election`` is set (ConfigError: bad kubeconfig)."""
    le = settings.leader_election
    if le is None:
        return None
    return Elector(
        KubeLeaseStore.from_settings(le),
        le.identity or default_identity(),
        lease_duration=le.lease_duration,
        renew_deadline=le.renew_deadline,
        retry_period=le.retry_period,
    )


def _election(
    elector: Elector, state: DaemonState, scheduler: BackgroundScheduler, cycles: Cycles
) -> LeaderElection:
    """Wire the election into the daemon: a new leader runs a full cycle at once (hooks
    the old one was batching are gone with it), the gauge follows, and a replica is ready
    as soon as it has seen the Lease (a follower too, so rollouts do not stall)."""

    def started() -> None:
        state.leader.set(1)
        with contextlib.suppress(SchedulerNotRunningError):  # shutting down
            scheduler.add_job(cycles.full, id="cycle-elected", replace_existing=True)

    return LeaderElection(
        elector,
        on_started=started,
        on_stopped=lambda: state.leader.set(0),
        on_observed=state._mark_ready,
    )


def _close_store(elector: Elector | None) -> None:
    store = getattr(elector, "store", None)
    if isinstance(store, KubeLeaseStore):
        store.close()
