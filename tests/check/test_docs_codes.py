"""docs/language.md documents every diagnostic code the code base can emit."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_emitted_code_is_documented():
    emitted = set()
    for f in (ROOT / "src" / "intento").rglob("*.py"):
        emitted |= set(re.findall(r'"([EW]\d{3})"', f.read_text()))
    docs = "\n".join(p.read_text() for p in (ROOT / "docs").glob("*.md"))
    documented = set(re.findall(r"^\| ([EW]\d{3}) \|", docs, re.M))
    assert emitted, "no codes found: the pattern is stale"
    assert emitted - documented == set()
