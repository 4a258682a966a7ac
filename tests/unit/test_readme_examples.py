"""The README's worked policy examples are true: each offline one is run through the policy."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from automator.policy import parse_policy

README = Path(__file__).resolve().parents[2] / "README.md"
# | ... | `SPEC` on `t1, t2, ...` → `selected` ... |
_ROW = re.compile(r"`(?P<spec>[^`]+)` on `(?P<tags>[^`(]+)` → `(?P<selected>[^`]+)`")


def _examples() -> list[tuple[str, list[str], str]]:
    found = []
    for match in _ROW.finditer(README.read_text(encoding="utf-8")):
        tags = [t.strip() for t in match["tags"].split(",")]
        found.append((match["spec"], tags, match["selected"]))
    return found


def test_the_readme_has_a_worked_example_for_each_offline_strategy() -> None:
    specs = {spec.split(":")[0] for spec, _, _ in _examples()}
    assert {"semver", "alphabetical", "numerical"} <= specs


@pytest.mark.parametrize(("spec", "tags", "selected"), _examples())
def test_a_readme_example_selects_what_the_readme_says(
    spec: str, tags: list[str], selected: str
) -> None:
    assert parse_policy(spec).select(tags).selected == selected
