"""A checker that reports everything: syntax error recovery, semantic checks on what parsed, and
lines and columns as editors count them (BOM, CRLF, lone CR, form feed, U+2028)."""

from __future__ import annotations

import random
import re
import shutil
from pathlib import Path

import pytest

from intento.check import check_paths, check_sources
from intento.diagnostics import MAX_DIAGNOSTICS, Source
from intento.syntax import parse, recover

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").rglob("*.intent")) + sorted((ROOT / "policies").rglob("*.intent"))

PROVIDERS = """provider stripe { region "EU" }
provider adyen { region "EU" }
"""

ACTIONS = """action charge {
  requires order_ok
  achieves paid
  via stripe { cost 1 USD latency 100ms reliability 0.99 }
}

action ship {
  requires paid
  achieves shipped
  via adyen { cost 3 USD latency 1s }
}
"""

INTENT = """intent deliver {
  goal shipped
  budget 10 USD
}
"""


def where(diags) -> list[tuple[str, int, int, str]]:
    return [(Path(d.span.source.name).name, d.span.line, d.span.column, d.code) for d in diags if d.span is not None]


def line_col(text: str, offset: int) -> tuple[int, int]:
    """Line and column as an editor counts them: lines end at LF, CRLF or a lone CR."""
    starts = [0] + [m.end() for m in re.finditer(r"\r\n|\r|\n", text)]
    line = max(i for i, s in enumerate(starts) if s <= offset)
    return line + 1, offset - starts[line] + 1


def test_every_syntax_error_of_a_file_is_reported(tmp_path: Path):
    (tmp_path / "a.intent").write_text(
        PROVIDERS
        + """action charge {
  achieves paid
  via stripe { cost = 1 USD }
}

action ship {
  requires paid and
  achieves shipped
  via adyen { cost 3 USD }
}

policy p {
  owner 12 USD USD
}
"""
    )
    r = check_paths([tmp_path])
    assert r.spec is None
    assert where(r.diagnostics) == [("a.intent", 5, 21, "E001"), ("a.intent", 10, 3, "E001"), ("a.intent", 15, 16, "E001")]
    unfinished = r.diagnostics[1]
    assert "the line before it is unfinished" in unfinished.message
    # Helps speak in words, never in token kinds.
    for d in r.diagnostics:
        assert not re.search(r"\b[A-Z]{4,}\b", d.help.replace("USD", "")), d.help


def test_semantic_checks_run_on_what_parsed_in_every_file(tmp_path: Path):
    (tmp_path / "providers.intent").write_text(PROVIDERS)
    (tmp_path / "actions.intent").write_text(ACTIONS.replace("via adyen", "via adyne"))
    (tmp_path / "broken.intent").write_text(INTENT + "\npolicy p {\n  forbid provider nosuch\n  owner\n}\n\nprovider late { region \"EU\" cost 1 }\n")
    r = check_paths([tmp_path])
    got = where(r.diagnostics)
    # The syntax error (the owner has no value), and the checks of the other files and of the
    # declarations of the broken file that parsed.
    assert ("broken.intent", 9, 1, "E001") in got
    assert ("actions.intent", 10, 7, "E012") in got  # unknown provider `adyne`, in another file
    assert any(d.message == "unknown provider `adyne`" and d.help == "did you mean `adyen`?" for d in r.diagnostics)
    # Nothing is reported inside the broken declaration beyond its syntax error.
    assert not any(f == "broken.intent" and line in (6, 7, 8) for f, line, _, _ in got)


def test_a_broken_declaration_does_not_make_its_name_look_undeclared(tmp_path: Path):
    (tmp_path / "providers.intent").write_text(PROVIDERS)
    broken = ACTIONS.replace("via stripe { cost 1 USD", "via stripe { cost 1 USD USD")
    (tmp_path / "actions.intent").write_text(broken)
    (tmp_path / "policy.intent").write_text(
        INTENT + '\npolicy p {\n  owner "risk"\n  forbid action charge\n  forbid provider nosuch\n}\n'
    )
    r = check_paths([tmp_path])
    messages = [d.message for d in r.diagnostics]
    assert [d.code for d in r.diagnostics if d.code.startswith("E00")] == ["E001"]
    # `charge` and the fact `paid` it achieves live in the broken declaration: no echo about them.
    assert not any("`charge`" in m or "`paid`" in m for m in messages), messages
    # A real error elsewhere is still found.
    assert "unknown provider `nosuch`" in messages


def test_two_errors_in_one_declaration(tmp_path: Path):
    src = PROVIDERS + """action charge {
  via stripe { cost 1 USD USD }
  requires order_ok
  achieves paid paid2
  via adyen { cost 2 USD }
}
"""
    (tmp_path / "a.intent").write_text(src)
    r = check_paths([tmp_path])
    assert where(r.diagnostics) == [("a.intent", 4, 31, "E001"), ("a.intent", 6, 17, "E001")]


def test_an_unclosed_brace_is_one_error_and_what_follows_is_checked(tmp_path: Path):
    (tmp_path / "a.intent").write_text(PROVIDERS + 'action charge {\n  achieves paid\n  via stripe { cost 1 USD }\n\nprovider third { region 1 USD }\n')
    r = check_paths([tmp_path])
    codes = [(d.span.line, d.code) for d in r.diagnostics]
    assert codes[0] == (3, "E003")
    assert r.diagnostics[0].message == "this `{` is never closed before the next declaration (line 7)"
    assert len([c for c in codes if c[1].startswith("E00")]) == 1
    # The provider after the broken action parsed, and was checked (a region is a string).
    assert any(line == 7 and not code.startswith("E00") for line, code in codes), codes


def test_a_file_that_parses_is_returned_whole():
    for path in EXAMPLES:
        src = Source(str(path), path.read_text())
        r = recover(src)
        f, diags = parse(src)
        assert diags == [] and r.diagnostics == [] and r.broken == ()
        assert r.file.decls == f.decls


def test_errors_are_counted_past_the_cap():
    text = "".join(f'provider p{i} {{ region = "x" }}\n' for i in range(MAX_DIAGNOSTICS + 30))
    r = recover(Source("many.intent", text))
    assert len(r.diagnostics) == MAX_DIAGNOSTICS
    assert r.diagnostics.total_errors == MAX_DIAGNOSTICS + 30
    assert [d.span.line for d in r.diagnostics] == list(range(1, MAX_DIAGNOSTICS + 1))


def _mutate(text: str, rng: random.Random) -> str:
    chars = list(text)
    for _ in range(rng.randint(1, 6)):
        i = rng.randrange(len(chars) + 1)
        op = rng.random()
        if op < 0.4 and chars:
            del chars[min(i, len(chars) - 1)]
        elif op < 0.8:
            chars.insert(i, rng.choice(['{', '}', '"', '=', ' USD', 'via', '\n', 'and', ',', '(', '1', 'action ']))
        elif chars:
            j = rng.randrange(len(chars))
            chars[min(i, len(chars) - 1)], chars[j] = chars[j], chars[min(i, len(chars) - 1)]
    return "".join(chars)


@pytest.mark.parametrize("seed", range(6))
def test_mutated_projects_never_crash_and_every_location_is_in_its_file(tmp_path: Path, seed: int):
    """Broken copies of the shipped examples: the checker answers with diagnostics placed inside
    their files (line and column as editors count them), never an exception."""
    rng = random.Random(seed)
    project = tmp_path / "p"
    shutil.copytree(ROOT / "examples" / "order_fulfilment", project)
    shutil.copytree(ROOT / "policies", project / "policies")
    files = sorted(project.rglob("*.intent"))
    for f in rng.sample(files, 3):
        f.write_text(_mutate(f.read_text(), rng))
    texts = {str(f): f.read_text() for f in files}
    r = check_paths([project])
    for d in r.diagnostics:
        if d.span is None:
            continue
        text = texts[d.span.source.name]
        assert 0 <= d.span.start <= d.span.end <= len(text)
        assert (d.span.line, d.span.column) == line_col(text, d.span.start)
        assert (d.span.end_line, d.span.end_column) == line_col(text, d.span.end)


LINE_BREAKS = {"lf": "\n", "crlf": "\r\n", "cr": "\r"}


@pytest.mark.parametrize("brk", LINE_BREAKS)
def test_locations_with_any_line_break(brk: str):
    nl = LINE_BREAKS[brk]
    text = nl.join(['provider p { region "EU" }', "action a {", "  achieves x", "  via q { cost 1 USD }", "}", ""])
    r = check_sources([Source("a.intent", text)])
    (d,) = r.diagnostics
    assert (d.code, d.span.line, d.span.column) == ("E012", 4, 7)
    assert text[d.span.start : d.span.end] == "q"
    assert "4 |   via q { cost 1 USD }" in d.render()


@pytest.mark.parametrize("brk", LINE_BREAKS)
def test_syntax_error_locations_with_any_line_break(brk: str):
    nl = LINE_BREAKS[brk]
    text = nl.join(['provider p { region "EU" }', "action a {", "  achieves x", "  via p { cost = 1 USD }", "}", "provider r { x = 1 }", ""])
    r = recover(Source("a.intent", text))
    assert [(d.span.line, d.span.column) for d in r.diagnostics] == [(4, 16), (6, 16)]


@pytest.mark.parametrize("odd", ["\f", "\u2028", "\u2029", "\x85", "\v"])
def test_odd_whitespace_stays_within_its_line(odd: str):
    """A form feed, U+2028, U+2029, NEL or a vertical tab is not a line break for editors: every
    location and snippet counts it as a character of its line."""
    text = f'provider p {{ region "E{odd}U" }}\n// a comment {odd} here\naction a {{ achieves x; via q {{ cost 1 USD }} }}\n'
    r = check_sources([Source("a.intent", text)])
    (d,) = r.diagnostics
    assert (d.span.line, d.span.column) == (3, 28) == line_col(text, d.span.start)
    rendered = d.render()
    assert "3 | action a { achieves x; via q" in rendered
    marker = rendered.splitlines()[3]
    assert marker.index("^") == rendered.splitlines()[2].index("q")


def test_a_form_feed_between_declarations_is_whitespace():
    text = 'provider p { region "EU" }\n\f\naction a { achieves x; via q { cost 1 USD } }\n'
    r = check_sources([Source("a.intent", text)])
    assert [(d.code, d.span.line, d.span.column) for d in r.diagnostics] == [("E012", 3, 28)]


def test_a_byte_order_mark_is_accepted(tmp_path: Path):
    f = tmp_path / "bom.intent"
    f.write_bytes(b"\xef\xbb\xbf" + b'provider p { region "EU" }\r\naction a { achieves x; via q { cost 1 USD } }\r\n')
    r = check_paths([f])
    assert [(d.code, d.span.line, d.span.column) for d in r.diagnostics] == [("E012", 2, 28)]
    f.write_bytes(b"\xef\xbb\xbf" + b'provider p { region "EU" }\r\naction a { achieves x; via p { cost 1 USD latency 1s } }\r\n')
    r = check_paths([f])
    assert r.ok, r.diagnostics


def test_a_comment_ends_at_a_lone_cr():
    """In a file whose lines end with a lone CR, a comment ends with its line, as editors show
    it (it used to run to the next LF, hiding every declaration after it)."""
    text = 'provider a { region "EU" }\r// a comment\rprovider b { region 1 }\raction x { achieves y; via b { cost "c" } }\r'
    r = check_sources([Source("cr.intent", text)])
    assert [(d.code, d.span.line, d.span.column) for d in r.diagnostics] == [("E018", 3, 21), ("E018", 4, 37)]


def test_a_string_ends_at_a_lone_cr():
    r = recover(Source("cr.intent", 'provider a { region "E\rU" }\r'))
    assert [(d.code, d.span.line, d.span.column, d.message) for d in r.diagnostics] == [("E002", 1, 21, "unterminated string")]


def test_declarations_before_a_stray_line_are_kept_and_checked():
    """A stray line after a whole declaration (`garbage here`) does not take that declaration
    down with it: it is checked, and only the stray line is the syntax error."""
    r = check_sources([Source("s.intent", 'provider stripe { region 1 }\ngarbage here\nprovider adyen { region "EU" }\n')])
    assert [(d.code, d.span.line, d.span.column) for d in r.diagnostics] == [("E018", 1, 26), ("E001", 2, 1)]
    rec = recover(Source("s.intent", 'provider stripe { region "EU" }\ngarbage here\n'))
    assert [d.name.name for d in rec.file.decls] == ["stripe"]
    assert "stripe" not in rec.broken_names and rec.broken == ((32, 45),)
