"""Golden tests of rendered diagnostics: one `.intent` file per mistake, its rendering beside it.

Regenerate after an intended change with ``INTENTO_UPDATE_GOLDEN=1 pytest tests/check``, then
read the diff: every expected file is reviewed text, not a snapshot taken on trust.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from intento.check import check_sources
from intento.diagnostics import Source

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "diagnostics"
CASES = sorted(GOLDEN.glob("*.intent"))


def render(path: Path) -> str:
    src = Source(path.name, path.read_text(encoding="utf-8"))
    result = check_sources([src])
    return "\n\n".join(d.render() for d in result.diagnostics) + "\n"


def test_there_are_enough_distinct_mistakes():
    codes = set()
    for case in CASES:
        src = Source(case.name, case.read_text(encoding="utf-8"))
        codes |= {(d.code, d.message.split("`")[0]) for d in check_sources([src]).diagnostics}
    assert len(CASES) >= 25
    assert len(codes) >= 25


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_rendering_matches_golden(case: Path):
    want_path = case.with_suffix(".txt")
    got = render(case)
    if os.environ.get("INTENTO_UPDATE_GOLDEN") or not want_path.exists():
        want_path.write_text(got, encoding="utf-8")
    assert got == want_path.read_text(encoding="utf-8")
    assert got.strip(), "every golden case must produce at least one diagnostic"
