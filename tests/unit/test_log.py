"""Log set-up: one JSON object per line, whoever logs."""

from __future__ import annotations

import io
import json
import logging

import structlog

from automator.log import configure_logging


def test_library_warnings_are_rendered_as_json_lines_with_urls_redacted() -> None:
    out = io.StringIO()
    configure_logging("json", stream=out)
    configure_logging("json", stream=out)  # idempotent: a second call must not double lines
    try:
        structlog.get_logger("t").info("ours", n=1)
        logging.getLogger("apscheduler.scheduler").warning(
            "Execution of job %s skipped: see https://bot:hunter2@git.example/x", "cycle"
        )
        logging.getLogger("httpx").info("not shown: below warning")
    finally:
        configure_logging("console")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines[0]["event"] == "ours"
    foreign = lines[1:]
    assert len(foreign) == 1
    assert foreign[0]["logger"] == "apscheduler.scheduler"
    assert foreign[0]["level"] == "warning"
    assert "Execution of job cycle skipped" in foreign[0]["event"]
    assert "hunter2" not in out.getvalue()
