"""The nesting limit (docs/language.md "Limits"): 50 levels, counting every `(` (redundant ones
too), `not`, `and`/`or`, comparison and `[`, in every place an expression or a list can stand.
Past it: one located E005, never a RecursionError or a traceback, however deep the input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from intento.check import check_sources
from intento.diagnostics import Source
from intento.syntax import MAX_NESTING, parse

EXE = str(Path(sys.executable).parent / "intento")
HEAD = "provider p { region \"eu\"; tags [\"pci\"] }\naction a { achieves x; via p { latency 1s } }\nintent i { given r: string; goal x }\n"


def wrap(inner: str, n: int) -> str:
    return "(" * n + inner + ")" * n


#: Where a parenthesised expression can stand, as (name, source for a given expression).
PLACES = {
    "goal": lambda e: f"intent j {{ goal {e} }}",
    "requires": lambda e: f"action b {{ requires {e}; achieves y; via p {{ latency 1s }} }}",
    "when guard": lambda e: f"policy g {{ when {e}; forbid action a }}",
    "forbid via predicate": lambda e: f"policy g {{ forbid via where {e} }}",
    "require for predicate": lambda e: f"policy g {{ require {e} for a }}",
    "count predicate": lambda e: f"policy g {{ limit count(via where {e}) >= 1 }}",
    "require before formula": lambda e: f"policy g {{ require {e} before a }}",
    "expect no via predicate": lambda e: f'test "t" {{ plan i given {{ r = "eu" }} expect no via where {e} }}',
}
INNER = {"goal": "x", "requires": "x", "when guard": 'r == "eu"', "forbid via predicate": 'region != "eu"',
         "require for predicate": '"pci" in tags', "count predicate": 'region == "eu"', "require before formula": "x",
         "expect no via predicate": 'region != "eu"'}


def diagnostics(text: str):
    return check_sources([Source("deep.intent", text)]).diagnostics


@pytest.mark.parametrize("place", PLACES)
def test_fifty_parentheses_are_accepted_and_fifty_one_are_e005_at_the_51st(place):
    inner = INNER[place]
    # A comparison is itself a level, so it leaves room for one parenthesis fewer.
    room = MAX_NESTING - (1 if any(op in inner for op in ("==", "!=", " in ")) else 0)
    ok = HEAD + PLACES[place](wrap(inner, room)) + "\n"
    assert [d for d in diagnostics(ok) if d.is_error] == []
    bad = HEAD + PLACES[place](wrap(inner, room + 1)) + "\n"
    [d] = diagnostics(bad)
    assert d.code == "E005" and d.message == f"expression is nested too deeply (more than {MAX_NESTING} levels)"
    assert d.help
    # Located at the 51st level: the `(` (or the comparison) that 50 parentheses enclose.
    assert d.span.line == 4 and bad[: d.span.start].count("(") - PLACES[place]("").count("(") == MAX_NESTING


@pytest.mark.parametrize("place", PLACES)
def test_five_thousand_redundant_parentheses_are_e005_not_accepted(place):
    [d] = diagnostics(HEAD + PLACES[place](wrap(INNER[place], 5_000)) + "\n")
    assert d.code == "E005" and d.span.line == 4


def test_parentheses_count_together_with_not_and_or():
    guard = "not " * 25 + wrap('r == "eu" or r == "us"', 25)
    # 25 `not` + 25 `(` + `or` + a comparison = 52 levels
    [d] = diagnostics(HEAD + f"policy g {{ when {guard}; forbid action a }}\n")
    assert d.code == "E005"
    lighter = "not " * 24 + wrap('r == "eu" or r == "us"', 24)
    assert [d for d in diagnostics(HEAD + f"policy g {{ when {lighter}; forbid action a }}\n") if d.is_error] == []


def test_nested_lists_count_too():
    [d] = diagnostics("provider z { tags " + "[" * 51 + '"x"' + "]" * 51 + " }\n")
    assert d.code == "E005"


def test_a_hundred_thousand_parentheses_are_one_diagnostic_not_a_recursion_error():
    text = HEAD + "intent j { goal " + wrap("x", 100_000) + " }\n"
    f, diags = parse(Source("deep.intent", text))
    assert f is None and [d.code for d in diags] == ["E005"]
    assert diags[0].span.line == 4 and diags[0].span.column == len("intent j { goal ") + MAX_NESTING + 1


def test_the_cli_reports_a_hundred_thousand_parentheses_in_a_guard_as_e005(tmp_path: Path):
    f = tmp_path / "deep.intent"
    f.write_text(HEAD + "policy g { when " + wrap('r == "eu"', 100_000) + "; forbid action a }\n")
    r = subprocess.run([EXE, "check", str(f), "--format", "short"], capture_output=True, text=True, env=dict(os.environ, NO_COLOR="1"))
    assert r.returncode == 1
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr and "RecursionError" not in r.stdout + r.stderr
    assert "error[E005]: expression is nested too deeply (more than 50 levels)" in r.stdout + r.stderr


def test_an_unclosed_flood_of_parentheses_is_a_syntax_error_not_a_crash():
    f, diags = parse(Source("open.intent", "intent j { goal " + "(" * 100_000 + "x }\n"))
    assert f is None and len(diags) == 1 and diags[0].code.startswith("E00")
