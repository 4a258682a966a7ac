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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType

import structlog
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from automator.config import Settings
from automator.engine import Engine

__all__ = ["DaemonState", "run_daemon"]

log = structlog.get_logger(__name__)


@dataclass
class DaemonState:
    """Counters shared by the scheduler thread and the HTTP server (under one lock)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    cycles: int = 0
    failed_cycles: int = 0
    updates: int = 0
    last_duration: float = 0.0
    last_success: float = 0.0
    ready: bool = False

    def record(self, *, ok: bool, updates: int, duration: float) -> None:
        with self.lock:
            self.cycles += 1
            self.failed_cycles += 0 if ok else 1
            self.updates += updates
            self.last_duration = duration
            if ok:
                self.last_success = datetime.now(UTC).timestamp()
            self.ready = True

    def metrics(self) -> str:
        with self.lock:
            rows = [
                ("automator_cycles_total", "counter", "Automation cycles run.", self.cycles),
                (
                    "automator_cycle_failures_total",
                    "counter",
                    "Cycles with failed workloads.",
                    self.failed_cycles,
                ),
                (
                    "automator_image_updates_total",
                    "counter",
                    "Image values rewritten and pushed.",
                    self.updates,
                ),
                (
                    "automator_last_cycle_duration_seconds",
                    "gauge",
                    "Duration of the last cycle.",
                    self.last_duration,
                ),
                (
                    "automator_last_success_timestamp_seconds",
                    "gauge",
                    "Unix time of the last cycle without failures.",
                    self.last_success,
                ),
            ]
        lines: list[str] = []
        for name, kind, help_text, value in rows:
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name} {value}"]
        return "\n".join(lines) + "\n"


def _handler(state: DaemonState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/healthz":
                self._reply(200, "ok\n")
            elif self.path == "/readyz":
                with state.lock:
                    ready = state.ready
                self._reply(200 if ready else 503, "ready\n" if ready else "no cycle yet\n")
            elif self.path == "/metrics":
                self._reply(200, state.metrics(), "text/plain; version=0.0.4")
            else:
                self._reply(404, "not found\n")

        def _reply(self, code: int, body: str, ctype: str = "text/plain") -> None:
            data = body.encode()
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
    engine = Engine.from_settings(settings)

    def cycle() -> None:
        try:
            result = engine.run_once()
        except Exception:
            log.exception("cycle_crashed")
            state.record(ok=False, updates=0, duration=0.0)
            return
        state.record(ok=result.ok, updates=len(result.changes), duration=result.duration)

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
