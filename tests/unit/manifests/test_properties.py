"""Property: whatever decorates a manifest, an edit changes exactly the image's characters."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from automator.manifests import Change, apply, scan

_NAME = st.from_regex(r"[a-z0-9]{1,8}(/[a-z0-9]{1,8}){0,2}", fullmatch=True)
_TAG = st.from_regex(r"[a-zA-Z0-9][a-zA-Z0-9._-]{0,12}", fullmatch=True)
_COMMENT = st.text(
    alphabet=st.characters(
        whitelist_categories=("L", "N", "P", "S", "Zs"),
        blacklist_characters="\x85\u2028\u2029\ufeff",
    )
    | st.just("\t"),
    max_size=16,
)
# Tabs only inside comments: ruamel (0.19) refuses a tab anywhere else, even where YAML 1.2
# allows one; such files are reported as unparseable by the scan, never edited.
_BLANKS = st.sampled_from(["", " ", "  ", "   "])


@st.composite
def _manifests(draw: st.DrawFn) -> tuple[bytes, bytes, str, str]:
    """A Deployment with random comments, blanks, quoting, newlines, BOM and final newline,
    rendered twice: with the old image and with the new one."""
    name = draw(_NAME)
    old, new = f"{name}:{draw(_TAG)}", f"{name}:{draw(_TAG)}"
    quote = draw(st.sampled_from(["", "'", '"']))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    indent = " " * draw(st.sampled_from([2, 4]))

    def deco() -> str:
        """Optional trailing blanks and comment for the end of a line."""
        comment = draw(st.none() | _COMMENT)
        return draw(_BLANKS) + ("" if comment is None else f" #{comment}")

    def extra() -> list[str]:
        """Optional blank or comment-only lines."""
        return [
            draw(_BLANKS) + ("#" + draw(_COMMENT) if draw(st.booleans()) else "")
            for _ in range(draw(st.integers(0, 2)))
        ]

    lines = [
        "apiVersion: apps/v1" + deco(),
        *extra(),
        "kind: Deployment" + deco(),
        "metadata:" + deco(),
        f"{indent}name: web" + deco(),
        f"{indent}annotations:" + deco(),
        *extra(),
        f'{indent * 2}automator.gitops.io/automated: "true"' + deco(),
        f"{indent * 2}automator.gitops.io/policy: semver:^1" + deco(),
        "spec:" + deco(),
        f"{indent}template:" + deco(),
        f"{indent * 2}spec:" + deco(),
        f"{indent * 3}containers:" + deco(),
        *extra(),
        f"{indent * 3}- name: app" + deco(),
        f"{indent * 3}  image: {quote}{{image}}{quote}" + deco(),
        *extra(),
    ]
    text = newline.join(lines) + (newline if draw(st.booleans()) else "")
    bom = b"\xef\xbb\xbf" if draw(st.booleans()) else b""
    before = bom + text.replace("{image}", old).encode()
    after = bom + text.replace("{image}", new).encode()
    return before, after, old, new


@settings(max_examples=150, deadline=None)
@given(_manifests())
def test_an_edit_changes_exactly_the_image_characters_whatever_the_decorations(
    case: tuple[bytes, bytes, str, str],
) -> None:
    before, after, old, new = case
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        (root / "d.yaml").write_bytes(before)

        (field,) = scan(root).fields
        result = apply(root, [Change(field, new)])

        assert field.image == old
        assert result.errors == ()
        assert (root / "d.yaml").read_bytes() == after
