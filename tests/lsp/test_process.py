"""The server as a process: `intento --help` never imports pygls, and the exit code follows LSP
(0 after `shutdown` then `exit`, 1 for `exit` alone)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.lsp.helpers import SERVER


def test_the_cli_and_the_package_import_no_pygls():
    code = (
        "import sys\n"
        "sys.argv = ['intento', '--help']\n"
        "import intento.lsp\n"
        "from intento.cli import run\n"
        "try:\n"
        "    run()\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in ('pygls', 'lsprotocol') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert "lsp" in out.stdout  # the command is listed
    assert out.stdout.strip().splitlines()[-1] == "[]"


def frame(message: dict) -> bytes:
    body = json.dumps(message).encode()
    return f"Content-Length: {len(body)}\r\n\r\n".encode() + body


@pytest.mark.parametrize("shutdown, code", [(True, 0), (False, 1)])
def test_exit_code_follows_the_protocol(tmp_path, shutdown, code):
    messages = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"processId": None, "rootUri": tmp_path.as_uri(), "capabilities": {}}},
        {"jsonrpc": "2.0", "method": "initialized", "params": {}},
        # Not JSON-RPC at all, then a request for a method nobody serves: answered, not fatal.
        {"jsonrpc": "2.0", "id": 2, "method": "textDocument/hover", "params": {"textDocument": {"uri": "file:///x.intent"}, "position": {"line": -1, "character": "a"}}},
        {"jsonrpc": "2.0", "id": 3, "method": "intento/nothing", "params": {}},
    ]
    if shutdown:
        messages.append({"jsonrpc": "2.0", "id": 4, "method": "shutdown"})
    messages.append({"jsonrpc": "2.0", "method": "exit"})
    data = b"".join(frame(m) for m in messages[:2]) + b"Content-Length: 5\r\n\r\n{oops" + b"".join(frame(m) for m in messages[2:])
    out = subprocess.run(SERVER, input=data, capture_output=True, timeout=60, check=False)
    assert out.returncode == code, out.stderr.decode(errors="replace")[-2000:]
    replies = out.stdout.decode()
    assert '"id": 1' in replies or '"id":1' in replies  # initialize answered
    if shutdown:
        assert '"id": 4' in replies or '"id":4' in replies
