"""The VS Code extension (editors/vscode/): its manifest and language configuration are valid and
name files that exist, and extension.js starts `intento lsp` as the settings say and stops it.

extension.js is run under Node.js with stand-ins for VS Code's modules (extension_harness.js);
that test is skipped where there is no `node`.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.editors._support import SHIPPED, TM_GRAMMAR, VSCODE, load_tm_grammar

HARNESS = Path(__file__).resolve().parent / "extension_harness.js"


def _manifest() -> dict:
    return json.loads((VSCODE / "package.json").read_text(encoding="utf-8"))


def _language_configuration() -> dict:
    return json.loads((VSCODE / "language-configuration.json").read_text(encoding="utf-8"))


def _file(relative: str) -> Path:
    assert relative.startswith("./"), f"VS Code resolves {relative!r} against the extension's folder: write it ./..."
    return VSCODE / relative[2:]


# ---- package.json -----------------------------------------------------------------------------


def test_the_manifest_declares_the_language_and_its_grammar():
    m = _manifest()
    assert m["name"] == "intento" and m["publisher"] and re.fullmatch(r"\d+\.\d+\.\d+", m["version"])
    assert m["engines"]["vscode"].startswith("^")
    (language,) = m["contributes"]["languages"]
    assert language["id"] == "intento"
    assert language["extensions"] == [".intent"]
    assert "Intento" in language["aliases"]
    assert _file(language["configuration"]).is_file()
    (grammar,) = m["contributes"]["grammars"]
    assert grammar["language"] == "intento"
    assert _file(grammar["path"]).resolve() == TM_GRAMMAR.resolve()
    assert grammar["scopeName"] == load_tm_grammar()["scopeName"] == "source.intento"


def test_the_manifest_starts_the_client_on_intento_files():
    m = _manifest()
    assert m["activationEvents"] == ["onLanguage:intento"]
    assert _file(m["main"]).is_file() and m["main"] == "./extension.js"
    assert "vscode-languageclient" in m["dependencies"]
    # The client is loaded from `vscode-languageclient/node`, which VS Code's engine must support.
    assert m["dependencies"]["vscode-languageclient"].startswith("^9.")
    assert m["engines"]["vscode"] == "^1.82.0"  # what vscode-languageclient 9 asks for


def test_the_manifest_declares_the_settings_and_commands_extension_js_uses():
    m = _manifest()
    props = m["contributes"]["configuration"]["properties"]
    assert props["intento.server.path"]["type"] == "string"
    assert props["intento.server.path"]["default"] == "intento"
    assert props["intento.server.args"]["type"] == "array"
    assert props["intento.server.args"]["default"] == ["lsp"]
    assert props["intento.trace.server"]["enum"] == ["off", "messages", "verbose"]
    source = (VSCODE / "extension.js").read_text(encoding="utf-8")
    for key in ("intento.server.path", "intento.server.args"):
        assert f"'{key.removeprefix('intento.')}'" in source, key
    for command in m["contributes"]["commands"]:
        assert f"'{command['command']}'" in source, command


# ---- language-configuration.json --------------------------------------------------------------


def test_the_language_configuration():
    c = _language_configuration()
    assert c["comments"] == {"lineComment": "//"}
    assert c["brackets"] == [["{", "}"], ["[", "]"], ["(", ")"]]
    closing = {p["open"]: p["close"] for p in c["autoClosingPairs"]}
    assert closing == {"{": "}", "[": "]", "(": ")", '"': '"'}
    assert ["\"", "\""] in c["surroundingPairs"] and ["{", "}"] in c["surroundingPairs"]


@pytest.mark.parametrize(
    ("line", "indents"),
    [
        ("provider stripe {", True),
        ("  via adyen {  // a comment", True),
        ('policy p "title {" {', True),
        ("  tags [", True),
        ("provider stripe { region \"us\" }", False),
        ('  region "{"', False),
        ("  // a comment {", False),
        ("  via stripe { cost 0.35 USD; latency 800ms }", False),
    ],
)
def test_indentation_grows_after_an_open_brace(line, indents):
    pattern = re.compile(_language_configuration()["indentationRules"]["increaseIndentPattern"])
    assert bool(pattern.search(line)) is indents


@pytest.mark.parametrize(("line", "dedents"), [("}", True), ("  }", True), ("  ]", True), ("  } // end", True), ("  via x {}", False)])
def test_indentation_shrinks_at_a_closing_brace(line, dedents):
    pattern = re.compile(_language_configuration()["indentationRules"]["decreaseIndentPattern"])
    assert bool(pattern.search(line)) is dedents


def test_the_indentation_rules_follow_the_shipped_files():
    """In every shipped file (formatted by `intento fmt`), a line indents the next one exactly when
    the increase pattern matches it, and a line is dedented when the decrease pattern matches."""
    rules = _language_configuration()["indentationRules"]
    increase, decrease = re.compile(rules["increaseIndentPattern"]), re.compile(rules["decreaseIndentPattern"])
    for path in SHIPPED:
        lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip() and not ln.strip().startswith("//")]
        width = [len(ln) - len(ln.lstrip(" ")) for ln in lines]
        for i in range(len(lines) - 1):
            opens = width[i + 1] > width[i]
            if opens and width[i + 1] - width[i] == 2:  # `plan ...` continued by `observe`: 4 spaces
                assert increase.search(lines[i]), f"{path}: {lines[i]!r}"
            if not opens:
                assert not increase.search(lines[i]), f"{path}: {lines[i]!r}"
            if width[i + 1] < width[i]:
                assert decrease.search(lines[i + 1]), f"{path}: {lines[i + 1]!r}"


# ---- extension.js -----------------------------------------------------------------------------


def _run_extension(settings: dict, *flags: str) -> dict:
    node = shutil.which("node")
    if node is None:
        pytest.skip("no node on PATH")
    done = subprocess.run(
        [node, str(HARNESS), str(VSCODE / "extension.js"), json.dumps(settings), *flags],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_extension_js_starts_intento_lsp_and_stops_it():
    run = _run_extension({})
    assert run["exports"] == ["activate", "deactivate"]
    assert run["commands"] == ["intento.restartServer"]
    assert run["subscriptions"] == 2 and run["errors"] == []
    first = run["clients"][0]
    assert first["id"] == "intento"
    # `intento lsp` over stdio: no `transport`, so vscode-languageclient adds no `--stdio`.
    assert first["serverOptions"] == {"command": "intento", "args": ["lsp"]}
    assert {"scheme": "file", "language": "intento"} in first["documentSelector"]
    assert first["watched"] == "**/*.intent"
    assert run["events"] == [
        "new 0", "start 0", "activated",
        "stop 0", "new 1", "start 1", "changed intento.server.path",  # a server setting: restarted
        "changed editor.fontSize",  # any other setting: nothing
        "stop 1", "new 2", "start 2", "restart command",
        "stop 2", "deactivated",
    ]  # fmt: skip


def test_extension_js_uses_the_configured_server_command():
    run = _run_extension({"intento.server.path": "/opt/venv/bin/python", "intento.server.args": ["-m", "intento", "lsp"]})
    assert run["clients"][0]["serverOptions"] == {"command": "/opt/venv/bin/python", "args": ["-m", "intento", "lsp"]}


def test_extension_js_says_when_the_server_cannot_start():
    run = _run_extension({}, "fail-start")
    assert run["errors"] and "intento lsp" in run["errors"][0] and "intento.server.path" in run["errors"][0]
    # Nothing left running to stop: deactivate stops no client that never started.
    assert run["events"][-2:] == ["restart command", "deactivated"]
