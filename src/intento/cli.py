"""The `intento` command line (typer + rich).

Input: command-line arguments and the files they name. Output: text or JSON on stdout,
diagnostics on stderr, and an exit code (0 ok, 1 bad input or failed check, 3 infeasible).
No input, however malformed, produces a Python traceback: an unexpected internal error is reported
in one line (set ``INTENTO_DEBUG=1`` to see the traceback).
"""

from __future__ import annotations

import difflib
import json
import os
import sys
import tempfile
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

from intento import __version__
from intento.check import check_paths, load_sources
from intento.diagnostics import Diagnostic, sorted_capped
from intento.syntax import format_file, parse

app = typer.Typer(
    name="intento",
    help="Intent-driven orchestration: say what must be achieved and within which rules; intento works out how.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)


class DiagFormat(str, Enum):
    text = "text"
    short = "short"
    json = "json"


def _version(value: bool) -> None:
    if value:
        print(f"intento {__version__}")
        raise typer.Exit(0)


@app.callback()
def main(
    version: Optional[bool] = typer.Option(None, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """intento: intent-driven orchestration."""


def print_diagnostics(diags: list[Diagnostic], fmt: DiagFormat = DiagFormat.text) -> None:
    """Diagnostics to stderr, in the chosen form (JSON goes to stdout with the result)."""
    color = sys.stderr.isatty() and "NO_COLOR" not in os.environ
    for d in diags:
        text = d.one_line() if fmt is DiagFormat.short else d.render()
        if color:
            head, _, rest = text.partition("\n")
            style = "bold red" if d.is_error else "bold yellow"
            err.print(head, style=style, markup=False)
            if rest:
                err.print(rest, markup=False)
        else:
            print(text, file=sys.stderr)
        if fmt is DiagFormat.text:
            print(file=sys.stderr)


def _summary(diags: list[Diagnostic]) -> tuple[int, int]:
    return sum(d.is_error for d in diags), sum(not d.is_error for d in diags)


@app.command()
def check(
    paths: List[Path] = typer.Argument(..., help="`.intent` files or folders (read recursively) that form one project."),
    format: DiagFormat = typer.Option(DiagFormat.text, "--format", "-f", help="text (with source snippets), short (one line each) or json."),
) -> None:
    """Check a project: syntax, names, types and units. Exit 0 when there are no errors (warnings allowed), 1 otherwise."""
    result = check_paths(paths)
    errors, warnings = _summary(result.diagnostics)
    if format is DiagFormat.json:
        body = {
            "ok": result.ok,
            "errors": errors,
            "warnings": warnings,
            "diagnostics": [d.to_model().model_dump() for d in result.diagnostics],
        }
        print(json.dumps(body, indent=2))
    else:
        print_diagnostics(result.diagnostics, format)
        if result.spec is not None:
            s = result.spec
            n = len(s.sources)
            print(
                f"ok: {n} file{'s' * (n != 1)}, {len(s.providers)} providers, {len(s.actions)} actions, "
                f"{len(s.intents)} intents, {len(s.policies)} policies, {len(s.tests)} tests"
                + (f" ({warnings} warning{'s' * (warnings != 1)})" if warnings else "")
            )
        else:
            print(f"failed: {errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)}", file=sys.stderr)
    raise typer.Exit(0 if result.ok else 1)


@app.command()
def fmt(
    paths: List[Path] = typer.Argument(..., help="`.intent` files or folders to format."),
    check_only: bool = typer.Option(False, "--check", help="Change nothing; exit 1 if any file is not formatted."),
    diff: bool = typer.Option(False, "--diff", help="Change nothing; print what would change as a unified diff."),
) -> None:
    """Rewrite `.intent` files in the canonical layout, keeping comments."""
    sources, diags = load_sources(paths)
    changed: list[str] = []
    for src in sources:
        f, d = parse(src)
        if f is None:
            diags.extend(d)
            continue
        new = format_file(f, src)
        if new == src.text:
            continue
        changed.append(src.name)
        if diff:
            sys.stdout.writelines(
                difflib.unified_diff(src.text.splitlines(True), new.splitlines(True), f"a/{src.name}", f"b/{src.name}")
            )
        elif check_only:
            print(f"would reformat {src.name}")
        else:
            _atomic_write(Path(src.name), new)
            print(f"formatted {src.name}")
    if diags:
        print_diagnostics(sorted_capped(diags))
        raise typer.Exit(1)
    if check_only or diff:
        if not changed and not diff:
            print(f"{len(sources)} file{'s' * (len(sources) != 1)} already formatted")
        raise typer.Exit(1 if changed else 0)
    if not changed:
        print(f"{len(sources)} file{'s' * (len(sources) != 1)} already formatted")


def _atomic_write(path: Path, text: str) -> None:
    """Write via a temporary file and a rename, so a crash never leaves half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def run() -> None:
    """Console-script entry point: typer's app with a last-resort guard against tracebacks."""
    try:
        app()
    except SystemExit:
        raise
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as e:  # pragma: no cover - a bug; keep the user's terminal clean
        if os.environ.get("INTENTO_DEBUG"):
            raise
        print(f"intento: internal error: {type(e).__name__}: {e} (set INTENTO_DEBUG=1 for details; please report it)", file=sys.stderr)
        sys.exit(70)


if __name__ == "__main__":  # pragma: no cover
    run()
