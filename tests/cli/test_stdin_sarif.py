"""`check` and `fmt` read standard input (`-`, `--stdin-filename`); `check --format sarif`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

GOOD = 'provider p { region "EU" }\naction a { achieves x; via p { cost 1 USD latency 1s } }\nintent i { goal x }\n'
UNFORMATTED = 'provider p {region "EU"}\naction a { achieves x; via p { cost 1 USD latency 1s } }\nintent i { goal x }\n'


def intento(*args: str, stdin: bytes = b"", cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "intento", *args], input=stdin, capture_output=True, cwd=cwd, timeout=120)


def test_check_reads_standard_input_under_its_given_name(tmp_path: Path):
    r = intento("check", "-", "--stdin-filename", "proj/a.intent", "-f", "short", stdin=b'provider p { region "EU" }\r\naction a { achieves x; via q { cost 1 USD } }\r\n')
    assert r.returncode == 1
    assert r.stderr.decode().splitlines()[0] == "proj/a.intent:2:28: error[E012]: unknown provider `q`"
    r = intento("check", "-", stdin=GOOD.encode())
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().startswith("ok: 1 file")


def test_standard_input_replaces_its_file_in_the_project(tmp_path: Path):
    (tmp_path / "providers.intent").write_text('provider p { region "EU" }\n')
    edited = tmp_path / "actions.intent"
    edited.write_text("action a { achieves x; via p { cost 1 USD latency 1s } }\nintent i { goal x }\n")
    # The unsaved buffer misspells the provider: the file on disk is not read, the buffer is.
    buffer = b"action a { achieves x; via pp { cost 1 USD latency 1s } }\nintent i { goal x }\n"
    r = intento("check", str(tmp_path), "-", "--stdin-filename", str(edited), "-f", "json", stdin=buffer)
    assert r.returncode == 1
    body = json.loads(r.stdout)
    assert [(d["file"], d["line"], d["column"], d["code"]) for d in body["diagnostics"]] == [(str(edited), 1, 28, "E012")]
    # Without `-`, the file on disk is checked.
    assert intento("check", str(tmp_path)).returncode == 0


def test_stdin_usage_errors_exit_2():
    r = intento("check", "-", "-", stdin=GOOD.encode())
    assert r.returncode == 2 and "once" in r.stderr.decode()
    r = intento("check", str(ROOT / "examples" / "order_fulfilment"), "--stdin-filename", "x.intent")
    assert r.returncode == 2 and "`-`" in r.stderr.decode()
    r = intento("fmt", "-", str(ROOT / "policies"), stdin=GOOD.encode())
    assert r.returncode == 2


def test_stdin_that_is_not_text_is_a_located_error():
    r = intento("check", "-", "--stdin-filename", "b.intent", stdin=b"provider p { region \"\xff\" }\n")
    assert r.returncode == 1
    assert "b.intent:1:22: error[E010]: file is not valid UTF-8 text" in r.stderr.decode()


def test_fmt_formats_standard_input_to_standard_output(tmp_path: Path):
    r = intento("fmt", "-", stdin=UNFORMATTED.encode())
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert out.startswith('provider p {\n  region "EU"\n}\n')
    # The output is formatted: formatting it again changes nothing.
    again = intento("fmt", "-", "--check", stdin=r.stdout)
    assert again.returncode == 0 and again.stdout == b""
    assert intento("fmt", "-", "--check", "--stdin-filename", "u.intent", stdin=UNFORMATTED.encode()).returncode == 1
    diff = intento("fmt", "-", "--diff", "--stdin-filename", "u.intent", stdin=UNFORMATTED.encode())
    assert diff.returncode == 1 and b"--- a/u.intent" in diff.stdout and b'+  region "EU"' in diff.stdout


def test_fmt_of_broken_standard_input_prints_nothing_to_stdout():
    """An editor replaces its buffer with what fmt prints: on an error that must be nothing."""
    r = intento("fmt", "-", "--stdin-filename", "x.intent", stdin=b"provider p { region = 1 }\n")
    assert r.returncode == 1
    assert r.stdout == b""
    assert "x.intent:1:21: error[E001]" in r.stderr.decode()


def test_fmt_keeps_a_byte_order_mark(tmp_path: Path):
    f = tmp_path / "bom.intent"
    f.write_bytes(b"\xef\xbb\xbf" + UNFORMATTED.encode())
    r = intento("fmt", str(f))
    assert r.returncode == 0, r.stderr
    data = f.read_bytes()
    assert data.startswith(b"\xef\xbb\xbfprovider p {\n  region \"EU\"\n}\n")
    assert intento("fmt", "--check", str(f)).returncode == 0


def test_fmt_diff_cuts_lines_at_line_feeds_only(tmp_path: Path):
    f = tmp_path / "ff.intent"
    f.write_text('provider p {region "E\u2028U"}\n// a \f comment\n', encoding="utf-8")
    r = intento("fmt", "--diff", str(f))
    assert r.returncode == 1
    lines = r.stdout.decode().split("\n")
    assert '-provider p {region "E\u2028U"}' in lines
    assert "+  region \"E\u2028U\"" in lines


def test_check_sarif(tmp_path: Path):
    (tmp_path / "src").mkdir()
    bad = tmp_path / "src" / "a.intent"
    bad.write_text('provider p { region "EU" }\naction a { achieves x; via q { cost 1 USD } }\npolicy z { owner = 1 }\nintent i { goal y }\n')
    r = intento("check", "src", "--format", "sarif", cwd=tmp_path)
    assert r.returncode == 1
    log = json.loads(r.stdout)
    assert log["version"] == "2.1.0" and log["$schema"].endswith("sarif-2.1.0.json")
    (run,) = log["runs"]
    assert run["tool"]["driver"]["name"] == "intento"
    assert run["columnKind"] == "unicodeCodePoints"
    assert run["originalUriBaseIds"]["%SRCROOT%"]["uri"] == tmp_path.resolve().as_uri() + "/"
    results = run["results"]
    got = {(x["ruleId"], x["level"], x["locations"][0]["physicalLocation"]["region"]["startLine"], x["locations"][0]["physicalLocation"]["region"]["startColumn"]) for x in results}
    assert ("E012", "error", 2, 28) in got  # unknown provider, checked although line 3 has a syntax error
    assert ("E001", "error", 3, 18) in got
    for x in results:
        loc = x["locations"][0]["physicalLocation"]
        assert loc["artifactLocation"] == {"uri": "src/a.intent", "uriBaseId": "%SRCROOT%"}
        region = loc["region"]
        assert region["endLine"] >= region["startLine"] and region["endColumn"] > 0
        assert x["message"]["text"]
    assert {rule["id"] for rule in run["tool"]["driver"]["rules"]} == {x["ruleId"] for x in results}
    ok = intento("check", str(ROOT / "examples" / "order_fulfilment"), str(ROOT / "policies"), "-f", "sarif")
    assert ok.returncode == 0 and json.loads(ok.stdout)["runs"][0]["results"] == []
