"""Read commits back from ``git log``: the audit trail behind ``automator history``.

Git itself parses the trailers (``%(trailers:only,unfold)``), so what we read back is
exactly what ``git log --format=%(trailers)`` or ``git interpret-trailers --parse`` shows
to a human; we only split ``Key: value`` lines. Values may contain spaces, colons and
``->`` (the ``Automator-Update`` trailer does), keys cannot contain ``:``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

__all__ = ["LOG_FIELDS", "LOG_FORMAT", "CommitInfo", "parse_log", "parse_trailers"]

# One NUL between fields; ``git log -z`` ends every commit with one more NUL. NUL cannot
# occur in names, dates or (git-made) messages, so the split is unambiguous.
LOG_FORMAT = "%H%x00%an%x00%ae%x00%aI%x00%(trailers:only,unfold)%x00%B"
LOG_FIELDS = 6


@dataclass(frozen=True)
class CommitInfo:
    """One commit as ``history`` shows it."""

    sha: str
    author_name: str
    author_email: str
    date: datetime
    message: str
    trailers: tuple[tuple[str, str], ...]
    """Parsed git trailers ``(key, value)``, in the order they appear."""


def parse_trailers(text: str) -> tuple[tuple[str, str], ...]:
    """``Key: value`` lines (as printed by ``%(trailers:only,unfold)``) as pairs."""
    pairs: list[tuple[str, str]] = []
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() and " " not in key.strip():
            pairs.append((key.strip(), value.strip()))
    return tuple(pairs)


def parse_log(output: str) -> list[CommitInfo]:
    """Commits from ``git log -z --format=LOG_FORMAT`` output, in output order."""
    fields = output.split("\0")
    if fields and fields[-1].strip() == "":
        fields.pop()
    if len(fields) % LOG_FIELDS:
        raise ValueError(f"unexpected git log output: {len(fields)} fields")
    commits = []
    for i in range(0, len(fields), LOG_FIELDS):
        sha, name, email, date, trailers, message = fields[i : i + LOG_FIELDS]
        commits.append(
            CommitInfo(
                sha=sha.strip(),
                author_name=name,
                author_email=email,
                date=datetime.fromisoformat(date),
                message=message.rstrip("\n"),
                trailers=parse_trailers(trailers),
            )
        )
    return commits
