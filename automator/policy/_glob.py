"""Glob patterns for tags: ``glob:PATTERN`` policies and the ``ignore-tags`` list.

Semantics are Go's ``path/filepath.Match`` (what Argo CD Image Updater uses for
``ignore-tags``) without the special meaning of ``/``, which a tag cannot contain anyway:
``*`` matches any run of characters, ``?`` exactly one, ``[abc]``, ``[a-z]`` and ``[!a-z]``
(or ``[^a-z]``) one from a class, and ``\\`` escapes the next character. The pattern must
match the whole tag. Flux v1 (``ryanuber/go-glob``) knows only ``*``; every Flux pattern
without ``?``, ``[`` or ``\\`` means the same here. Where Go silently treats a malformed
pattern as matching nothing, we reject it when the policy is built.
"""

from __future__ import annotations

import re

from automator.errors import PolicyError

__all__ = ["compile_glob"]

_FIX = (
    "Fix: use '*' for any characters, '?' for one, '[0-9]' or '[!a-z]' for one of a class, "
    "and '\\' before a character to match it literally."
)


def compile_glob(pattern: str, what: str = "glob") -> re.Pattern[str]:
    """A regex that ``fullmatch``es exactly the tags ``pattern`` matches.

    ``what`` names the pattern in error messages (``glob``, ``ignore glob``).
    """
    if not pattern:
        raise PolicyError(f"{what} is empty. {_FIX}")
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        elif char == "\\":
            if i + 1 == len(pattern):
                raise PolicyError(f"{what} {pattern!r} ends with a lone '\\'. {_FIX}")
            i += 1
            out.append(re.escape(pattern[i]))
        elif char == "[":
            regex, i = _char_class(pattern, i, what)
            out.append(regex)
            continue
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def _char_class(pattern: str, start: int, what: str) -> tuple[str, int]:
    """Translate the class opening at ``start``; return its regex and the index after it."""
    i = start + 1
    negate = i < len(pattern) and pattern[i] in "!^"
    i += negate
    members: list[str] = []
    while True:
        if i == len(pattern):
            raise PolicyError(
                f"{what} {pattern!r} has a '[' at position {start} that is never closed. {_FIX}"
            )
        if pattern[i] == "]":
            break
        low, i = _class_char(pattern, i, start, what)
        if pattern.startswith("-", i) and not pattern.startswith("-]", i):
            high, i = _class_char(pattern, i + 1, start, what)
            if high < low:
                raise PolicyError(
                    f"{what} {pattern!r} has the reversed range '{low}-{high}'. "
                    f"Fix: write it low to high, '{high}-{low}'."
                )
            members.append(f"{re.escape(low)}-{re.escape(high)}")
        else:
            members.append(re.escape(low))
    if not members:
        raise PolicyError(f"{what} {pattern!r} has an empty class at position {start}. {_FIX}")
    return f"[{'^' if negate else ''}{''.join(members)}]", i + 1


def _class_char(pattern: str, i: int, start: int, what: str) -> tuple[str, int]:
    if i == len(pattern):
        raise PolicyError(
            f"{what} {pattern!r} has a '[' at position {start} that is never closed. {_FIX}"
        )
    char = pattern[i]
    if char == "\\":
        if i + 1 == len(pattern):
            raise PolicyError(f"{what} {pattern!r} ends with a lone '\\'. {_FIX}")
        return pattern[i + 1], i + 2
    if char == "-":
        raise PolicyError(
            f"{what} {pattern!r} has a '-' at position {i} that starts no range. "
            "Fix: write a range as 'a-z', or '\\-' for a literal dash."
        )
    return char, i + 1
