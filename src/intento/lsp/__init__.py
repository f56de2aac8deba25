"""The language server of `.intent` files (`intento lsp`; docs/editors.md).

Input: LSP over stdin/stdout. Output: diagnostics of the whole project as the checker reports
them, hover, go to definition, find references, completion, document and workspace symbols,
formatting, did-you-mean quick fixes, and code lenses that run a policy test or plan an intent.

Modules, in the direction data flows: `_text` (offsets and LSP positions), `_project` (open
documents over the files on disk, parsed and checked), `_index` (every name and where it
occurs), `_hover`, `_complete`, `_features` and `_commands` (the features, as LSP values), and
`_server` (the pygls wiring: the only module that imports pygls).

Importing this package imports neither pygls nor the checker: `serve` does. It fails at once,
with `ModuleNotFoundError`, when the ``lsp`` extra (pygls, lsprotocol) is not installed, so the
command can say what to install.
"""

from __future__ import annotations

import importlib.util

__all__ = ["serve"]

for _module in ("pygls", "lsprotocol"):
    if importlib.util.find_spec(_module) is None:
        raise ModuleNotFoundError(f"No module named {_module!r}", name=_module)


def serve() -> None:
    """Run the language server on stdin/stdout until the client says `exit`."""
    import sys

    from intento.lsp._server import build_server

    server = build_server()
    # The protocol owns stdout: anything else printed (a warning, a stray print) goes to stderr.
    stdout = sys.stdout.buffer
    sys.stdout = sys.stderr
    server.start_io(sys.stdin.buffer, stdout)
    # LSP: `exit` without `shutdown` first (or the client gone) ends with code 1.
    if not getattr(server.protocol, "_shutdown", False):
        raise SystemExit(1)
