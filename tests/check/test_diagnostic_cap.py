"""Diagnostics stay exact under hostile text: past the cap of 100 the counts stay exact (text,
short and json), an error past the cap still fails the check, only the diagnostics shown pay for
a did-you-mean, and a snippet shows the right line, safely, with the underline in place."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import intento
import intento.diagnostics
from intento.check import check_paths, check_sources
from intento.cli import app
from intento.diagnostics import MAX_DIAGNOSTICS, IntentoError, Source

runner = CliRunner()
N = 2_345


def unknown_providers(n: int) -> str:
    """A project with exactly ``n`` errors: one unknown provider per action."""
    return "provider p {}\n" + "".join(f"action a{i} {{ achieves x{i}; via nope{i} {{ latency 1s }} }}\n" for i in range(n))


def bad_escapes(n: int) -> str:
    """A file with exactly ``n`` parse errors (E009), all in one string literal."""
    return 'provider p { region "' + "\\q" * n + '" }\n'


@pytest.fixture
def big(tmp_path: Path) -> Path:
    f = tmp_path / "big.intent"
    f.write_text(unknown_providers(N))
    return f


def test_result_counts_every_diagnostic_past_the_cap():
    result = check_sources([Source("big.intent", unknown_providers(N))])
    assert len(result.diagnostics) == MAX_DIAGNOSTICS
    assert (result.error_count, result.warning_count, result.truncated) == (N, 0, True)
    assert [d.span.line for d in result.diagnostics] == list(range(2, 102)), "the first 100, in source order"


def test_check_text_and_short_say_how_many_in_all(big: Path):
    r = runner.invoke(app, ["check", str(big)])
    assert r.exit_code == 1
    assert "failed: 2,345 errors, 0 warnings" in r.stderr
    assert "note: 2,245 more diagnostics not shown (at most 100 are reported)" in r.stderr
    r = runner.invoke(app, ["check", "--format", "short", str(big)])
    assert r.exit_code == 1
    assert r.stderr.count("error[E012]") == MAX_DIAGNOSTICS
    assert "note: 2,245 more diagnostics" in r.stderr and "failed: 2,345 errors" in r.stderr


def test_check_json_counts_and_marks_truncation(big: Path, tmp_path: Path):
    r = runner.invoke(app, ["check", "--format", "json", str(big)])
    body = json.loads(r.stdout)
    assert (body["ok"], body["errors"], body["warnings"]) == (False, N, 0)
    assert body["truncated"] is True and body["shown"] == len(body["diagnostics"]) == MAX_DIAGNOSTICS
    small = tmp_path / "small.intent"
    small.write_text(unknown_providers(3))
    body = json.loads(runner.invoke(app, ["check", "-f", "json", str(small)]).stdout)
    assert body["errors"] == 3 and "truncated" not in body


def test_parse_errors_past_the_cap_are_counted_across_files(tmp_path: Path):
    # A parse keeps only the first errors of a file; the others are counted, not built.
    for name in ("a.intent", "b.intent"):
        (tmp_path / name).write_text(bad_escapes(3_000))
    result = check_paths([tmp_path])
    assert (result.error_count, len(result.diagnostics)) == (6_000, MAX_DIAGNOSTICS)
    assert all(d.span.source.name.endswith("a.intent") for d in result.diagnostics)
    body = json.loads(runner.invoke(app, ["check", "-f", "json", str(tmp_path)]).stdout)
    assert body["errors"] == 6_000 and body["truncated"] is True


def test_unreadable_paths_add_to_the_count(tmp_path: Path):
    (tmp_path / "a.intent").write_text(bad_escapes(250))
    result = check_paths([tmp_path, tmp_path / "missing"])
    assert result.error_count == 251 and result.truncated
    assert result.diagnostics[0].code == "E010", "a path that cannot be read is reported first"


def test_fmt_says_how_many_more(tmp_path: Path):
    f = tmp_path / "x.intent"
    f.write_text(bad_escapes(700))
    r = runner.invoke(app, ["fmt", str(f)])
    assert r.exit_code == 1
    assert r.stderr.count("error[E009]") == MAX_DIAGNOSTICS
    assert "note: 600 more diagnostics not shown" in r.stderr


def test_load_error_counts_all(big: Path):
    with pytest.raises(IntentoError) as e:
        intento.load(big)
    assert str(e.value).endswith("(and 2,344 more)")
    assert len(e.value.diagnostics) == MAX_DIAGNOSTICS


def test_an_error_past_a_hundred_warnings_still_fails(tmp_path: Path):
    # 150 warnings (facts nothing achieves) come before the one error in the file. Before, the
    # cap kept the 100 first diagnostics, all warnings, and the project checked `ok`.
    text = "provider p {}\n" + "".join(f"action a{i} {{ requires f{i}; achieves g{i}; via p {{ latency 1s }} }}\n" for i in range(150))
    text += "action z { achieves h; via nowhere { latency 1s } }\n"
    result = check_sources([Source("x.intent", text)])
    assert not result.ok
    assert [d.code for d in result.diagnostics if d.is_error] == ["E012"], "an error is never dropped for a warning"
    assert (result.error_count, result.warning_count) == (1, 150)
    f = tmp_path / "x.intent"
    f.write_text(text)
    r = runner.invoke(app, ["check", str(f)])
    assert r.exit_code == 1 and "failed: 1 error, 150 warnings" in r.stderr and "unknown provider `nowhere`" in r.stderr


def test_warnings_past_the_cap_on_a_good_project(tmp_path: Path):
    f = tmp_path / "w.intent"
    f.write_text("provider p {}\n" + "".join(f"action a{i} {{ requires f{i}; achieves g{i}; via p {{ latency 1s }} }}\n" for i in range(150)))
    r = runner.invoke(app, ["check", str(f)])
    assert r.exit_code == 0
    assert "(150 warnings)" in r.stdout and "note: 50 more diagnostics not shown" in r.stderr


def test_only_the_diagnostics_shown_look_for_a_did_you_mean(monkeypatch):
    # 1,000 facts nothing achieves, each with 1,000 candidate names: one did-you-mean each was
    # 1,000 x 1,000 comparisons (a valid project of 3,000 actions took minutes to check).
    calls = []
    real = intento.diagnostics.difflib.get_close_matches
    monkeypatch.setattr(intento.diagnostics.difflib, "get_close_matches", lambda *a, **k: calls.append(1) or real(*a, **k))
    n = 1_000
    text = "provider p {}\n" + "".join(f"action a{i} {{ requires fact{i}x; achieves fact{i}; via p {{ latency 1s }} }}\n" for i in range(n))
    result = check_sources([Source("w.intent", text)])
    assert result.ok and result.warning_count == n
    assert len(calls) <= MAX_DIAGNOSTICS
    shown = result.diagnostics
    assert all(d.help for d in shown)
    assert isinstance(shown[0].help, str) and shown[0].help == "did you mean `fact0`?"


# ---- snippets of hostile text ------------------------------------------------------------------


def _snippet(text: str, name: str = "t.intent") -> tuple[str, str, str]:
    (d, *_) = check_sources([Source(name, text)]).diagnostics
    lines = d.render().splitlines()
    shown, marker = lines[2].split(" | ", 1)[1], lines[3].split(" | ", 1)[1]
    return lines[0], shown, marker


def test_lines_are_counted_at_newlines_only():
    # Before, a snippet split lines at form feeds and U+2028 too, and showed another line.
    head, shown, _ = _snippet("// a\u2028b\x0cc\nprovider p {}\naction a { achieves x; via q { latency 1s } }\n")
    assert head.startswith("t.intent:3:28:")
    assert shown == "action a { achieves x; via q { latency 1s } }"


def test_control_characters_are_neither_printed_nor_misaligning():
    head, shown, marker = _snippet('provider p {\t\tregion 5 "\x1b]0;pwned\x07\u202e" }\n')
    rendered = "\n".join((head, shown, marker))
    for c in "\t\x1b\x07\u202e":
        assert c not in rendered
    assert "\\x1b" in head and "\\u202e" in head, "the message shows them escaped"
    assert marker.index("^") == shown.index('"'), "one shown character for each character"


def test_wide_characters_keep_the_underline_in_place():
    _, shown, marker = _snippet('provider p { region "日本"; tags "pci" }\n')
    # Each of the two CJK characters takes two columns of a terminal.
    assert marker.index("^") == shown.index('"pci"') + 2


def test_a_long_line_is_cut_around_the_span():
    _, shown, marker = _snippet('provider p { region "' + "x" * 100_000 + '"; tags "pci" }\n')
    assert len(shown) < 400 and shown.startswith("…")
    assert shown[marker.index("^") :].startswith('"pci"')
