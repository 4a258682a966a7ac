"""The newest ``Automator-Update`` line per field, read back from the checkout branch.

This is what lets a person's rollback win (DESIGN §5) without any state outside Git: the
engine compares what the automator last wrote into a field with what the tree says now.

The lines are taken from the whole message body, not only from git's trailer block:
a squash merge (GitHub, GitLab) concatenates the squashed messages, so the
``Automator-Update`` lines end up in the middle of the body, followed by
``Co-authored-by`` lines, where ``%(trailers)`` no longer sees them. Within one commit
the last line for a field wins (a squash lists its commits oldest first).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["UPDATES_FORMAT", "UpdateRecord", "parse_update", "parse_updates"]

# sha, committer date, raw body; ``git log -z`` ends every commit with one more NUL.
UPDATES_FORMAT = "%H%x00%cI%x00%B"
_FIELDS = 3


@dataclass(frozen=True)
class UpdateRecord:
    """One ``Automator-Update`` line: the automator wrote ``new`` into a field in ``commit``."""

    file: str
    workload: str
    """``Kind/namespace/name``, ``-`` for no namespace (``ImageField.ref``)."""
    container: str
    old: str
    new: str
    commit: str
    date: str
    """Committer date, ISO 8601, as git prints it."""

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.file, self.workload, self.container)


def parse_update(value: str) -> tuple[str, str, str, str, str] | None:
    """``<file> <kind>/<ns>/<name> <container> <old> -> <new>`` as its five parts.

    Parsed from the right: only the file path may contain spaces. None when malformed.
    """
    parts = value.strip().rsplit(" ", 5)
    if len(parts) != 6 or parts[4] != "->" or not parts[0] or not all(parts):
        return None
    file, workload, container, old, _, new = parts
    return file, workload, container, old, new


def parse_updates(output: str, key: str) -> dict[tuple[str, str, str], UpdateRecord]:
    """The newest record per field from ``git log -z --format=UPDATES_FORMAT`` output.

    ``output`` lists commits newest first; a field's first sighting is its newest.
    ``key`` is the trailer key, matched case-insensitively as git matches trailer keys.
    """
    fields = output.split("\0")
    if fields and fields[-1].strip() == "":
        fields.pop()
    if len(fields) % _FIELDS:
        raise ValueError(f"unexpected git log output: {len(fields)} fields")
    lines = re.compile(rf"^{re.escape(key)}:(.*)$", re.IGNORECASE | re.MULTILINE)
    newest: dict[tuple[str, str, str], UpdateRecord] = {}
    for i in range(0, len(fields), _FIELDS):
        sha, date, body = fields[i : i + _FIELDS]
        in_commit: dict[tuple[str, str, str], tuple[str, str, str, str, str]] = {}
        for value in lines.findall(body):
            parsed = parse_update(value)
            if parsed is not None:
                in_commit[parsed[0], parsed[1], parsed[2]] = parsed
        for field_key, parsed in in_commit.items():
            if field_key not in newest:
                newest[field_key] = UpdateRecord(*parsed, commit=sha.strip(), date=date)
    return newest
