"""The daemon: run one cycle every ``interval`` and serve health endpoints.

APScheduler (3.x) owns the timing, with exactly one job that may never overlap itself
(``max_instances=1``, ``coalesce=True``): a cycle that runs long delays the next one
instead of starting a second one beside it. SIGTERM and SIGINT stop the scheduler after
the running cycle has finished, so a rollout of the daemon never cuts a commit in half.

``/healthz`` answers while the process lives; ``/readyz`` once a cycle has completed;
``/metrics`` exposes a few counters in the Prometheus text format.
"""

from __future__ import annotations

import signal
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType

import structlog
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)

from automator.config import Settings
from automator.engine import Engine
from automator.registry import RegistryMetrics

__all__ = ["DaemonState", "run_daemon"]

log = structlog.get_logger(__name__)


class DaemonState:
    """Readiness and cycle metrics, shared by the scheduler thread and the HTTP server.

    The metrics live in one explicit prometheus ``CollectorRegistry`` (never the library's
    global default), which the registry client also writes its request counters to.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self._lock = threading.Lock()
        self._ready = False
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

    @property
    def ready(self) -> bool:
        with self._lock:
            return self._ready

    def record(self, *, ok: bool, updates: int, failed: int, duration: float) -> None:
        self.cycles.inc()
        if not ok:
            self.failed_cycles.inc()
        self.updates.inc(updates)
        self.failed_workloads.set(failed)
        self.duration.set(duration)
        if ok:
            self.last_success.set_to_current_time()
        with self._lock:
            self._ready = True

    def metrics(self) -> bytes:
        return generate_latest(self.registry)


def _handler(state: DaemonState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/healthz":
                self._reply(200, "ok\n")
            elif self.path == "/readyz":
                ready = state.ready
                self._reply(200 if ready else 503, "ready\n" if ready else "no cycle yet\n")
            elif self.path == "/metrics":
                self._reply(200, state.metrics(), CONTENT_TYPE_LATEST)
            else:
                self._reply(404, "not found\n")

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


def run_daemon(settings: Settings, *, stop: threading.Event | None = None) -> int:
    """Run until SIGTERM/SIGINT (or ``stop`` is set); returns the exit code."""
    stop = stop or threading.Event()
    state = DaemonState()
    engine = Engine.from_settings(settings, metrics=RegistryMetrics(state.registry))

    def cycle() -> None:
        try:
            result = engine.run_once()
        except Exception:
            log.exception("cycle_crashed")
            state.record(ok=False, updates=0, failed=0, duration=0.0)
            return
        state.record(
            ok=result.ok,
            updates=len(result.changes),
            failed=len(result.failures),
            duration=result.duration,
        )

    host, _, port = settings.http.listen.rpartition(":")
    server = ThreadingHTTPServer((host.strip("[]"), int(port)), _handler(state))
    server.daemon_threads = True
    http_thread = threading.Thread(target=server.serve_forever, name="http", daemon=True)
    http_thread.start()

    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.add_job(
        cycle,
        IntervalTrigger(seconds=settings.interval),
        id="cycle",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=None,
        next_run_time=datetime.now(UTC),
    )

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("shutdown_requested", signal=signal.Signals(signum).name)
        stop.set()

    previous = {
        sig: signal.signal(sig, _on_signal)
        for sig in (signal.SIGTERM, signal.SIGINT)
        if threading.current_thread() is threading.main_thread()
    }
    log.info("daemon_started", listen=settings.http.listen, interval_s=settings.interval)
    scheduler.start()
    try:
        stop.wait()
    finally:
        scheduler.shutdown(wait=True)
        server.shutdown()
        server.server_close()
        engine.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        log.info("daemon_stopped")
    return 0
