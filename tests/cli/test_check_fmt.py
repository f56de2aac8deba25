"""`intento check` and `intento fmt`: exit codes, output formats, in-place rewriting."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from intento.cli import app

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args))


def test_examples_and_policies_check_clean():
    for example, policies in [
        ("order_fulfilment", "policies"),
        ("insurance_quote", "policies/common"),
        ("settlement", "policies/common"),
    ]:
        r = run("check", str(ROOT / "examples" / example), str(ROOT / policies))
        assert r.exit_code == 0, r.output + r.stderr
        assert r.stdout.startswith("ok:")
        assert "warning" not in r.stderr


def test_check_fails_with_located_error(tmp_path: Path):
    bad = tmp_path / "bad.intent"
    bad.write_text('provider p { region "eu" }\naction a { achieves x; via q { latency 1s } }\n')
    r = run("check", str(bad))
    assert r.exit_code == 1
    assert f"{bad}:2:28: error[E012]: unknown provider `q`" in r.stderr
    assert "2 | action a" in r.stderr and "^" in r.stderr


def test_check_json_is_the_diagnostic_model(tmp_path: Path):
    bad = tmp_path / "bad.intent"
    bad.write_text("intent i { deadline 1h }\n")
    r = run("check", "--format", "json", str(bad))
    assert r.exit_code == 1
    body = json.loads(r.stdout)
    assert body["ok"] is False and body["errors"] == 1
    (d,) = body["diagnostics"]
    assert d["code"] == "E017" and d["severity"] == "error"
    assert (d["file"], d["line"], d["column"]) == (str(bad), 1, 8)
    assert d["help"]


def test_check_json_ok(tmp_path: Path):
    good = tmp_path / "g.intent"
    good.write_text("provider p {}\naction a { achieves x; via p { latency 1s } }\nintent i { goal x }\n")
    r = run("check", "-f", "json", str(good))
    assert r.exit_code == 0 and json.loads(r.stdout) == {"ok": True, "errors": 0, "warnings": 0, "diagnostics": []}


def test_check_short_format_and_missing_path(tmp_path: Path):
    r = run("check", "--format", "short", str(tmp_path / "nope"))
    assert r.exit_code == 1
    assert "error[E010]: cannot read" in r.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    r = run("check", str(empty))
    assert r.exit_code == 1 and "no `.intent` files" in r.stderr


def test_check_rejects_non_utf8(tmp_path: Path):
    f = tmp_path / "bin.intent"
    f.write_bytes(b"provider p {}\n\xff\xfe")
    r = run("check", str(f))
    assert r.exit_code == 1 and "2:1: error[E010]: file is not valid UTF-8 text" in r.stderr


def test_fmt_check_diff_and_rewrite(tmp_path: Path):
    f = tmp_path / "x.intent"
    original = 'provider   p{region "eu";tags["a"]}   // keep me\n'
    f.write_text(original)
    r = run("fmt", "--check", str(f))
    assert r.exit_code == 1 and "would reformat" in r.stdout
    assert f.read_text() == original
    r = run("fmt", "--diff", str(f))
    assert r.exit_code == 1 and '+  region "eu"' in r.stdout
    assert f.read_text() == original
    r = run("fmt", str(f))
    assert r.exit_code == 0
    assert f.read_text() == 'provider p {\n  region "eu"\n  tags ["a"]\n} // keep me\n'
    r = run("fmt", "--check", str(f))
    assert r.exit_code == 0 and "already formatted" in r.stdout


def test_fmt_refuses_broken_files_and_leaves_them_alone(tmp_path: Path):
    f = tmp_path / "x.intent"
    f.write_text("provider p {\n")
    r = run("fmt", str(f))
    assert r.exit_code == 1 and "E003" in r.stderr
    assert f.read_text() == "provider p {\n"


def test_examples_are_formatted():
    r = run("fmt", "--check", str(ROOT / "examples"), str(ROOT / "policies"))
    assert r.exit_code == 0, r.stdout


@pytest.mark.parametrize("command", [["serve"], ["worker"], [], ["check"], ["fmt"], ["plan"], ["explain"], ["test"], ["run"], ["resume"], ["status"], ["runs"], ["observe"], ["audit"], ["audit", "verify"], ["policy", "diff"], ["schema"]])
def test_help_on_every_command(command):
    r = run(*command, "--help")
    assert r.exit_code == 0 and "Usage" in r.output


def test_every_registered_command_has_help_text():
    for cmd in app.registered_commands:
        assert (cmd.help or (cmd.callback and cmd.callback.__doc__)), cmd.name


def test_console_script_version_and_no_traceback(tmp_path: Path):
    exe = Path(sys.executable).parent / "intento"
    out = subprocess.run([str(exe), "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("intento ")
    weird = tmp_path / "w.intent"
    weird.write_bytes(b"\x00\x01policy {{{{ ((( \"")
    out = subprocess.run([str(exe), "check", str(weird)], capture_output=True, text=True)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr and "error[" in out.stderr
