"""The `intento` command line (typer + rich).

Input: command-line arguments and the files they name. Output: text or JSON on stdout,
diagnostics on stderr, and an exit code (0 ok, 1 bad input or failed check, 3 infeasible).
No input, however malformed, produces a Python traceback: an unexpected internal error is reported
in one line (set ``INTENTO_DEBUG=1`` to see the traceback).
"""

from __future__ import annotations

import difflib
import contextlib
import json
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional

import typer

from intento import __version__

if TYPE_CHECKING:
    from intento.diagnostics import Diagnostic

# The checker, the diagnostics' models and the parser are imported by the commands that use them
# (below, through these names), not here: `intento status` and `runs` never need them.


def check_paths(*a, **k):
    from intento.check import check_paths as f

    return f(*a, **k)


def load_sources(*a, **k):
    from intento.check import load_sources as f

    return f(*a, **k)


def did_you_mean(*a, **k):
    from intento.diagnostics import did_you_mean as f

    return f(*a, **k)


def sorted_capped(*a, **k):
    from intento.diagnostics import sorted_capped as f

    return f(*a, **k)


def _diagnostic(*a, **k):
    from intento.diagnostics import Diagnostic, Severity

    return Diagnostic(a[0], Severity.error, *a[1:], **k)

app = typer.Typer(
    name="intento",
    help="Intent-driven orchestration: say what must be achieved and within which rules; intento works out how.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class _Stream:
    """Where the CLI writes its text: plain ``print`` (no wrapping, no markup, no emoji codes),
    and rich only for a styled line (coloured diagnostics on a terminal), imported then: rich's
    console costs about 40 ms of every command's start (docs/benchmarks.md, "Start-up")."""

    def __init__(self, stderr: bool = False) -> None:
        self._stderr = stderr
        self._rich = None

    def print(self, text: str, *, style: str | None = None) -> None:
        if style is None:
            print(text, file=sys.stderr if self._stderr else sys.stdout, flush=True)
            return
        if self._rich is None:
            from rich.console import Console

            self._rich = Console(stderr=self._stderr, highlight=False, soft_wrap=True)
        self._rich.print(text, style=style, markup=False)


err = _Stream(stderr=True)
out = _Stream()

_MAX_QUESTIONS_HELP = (
    "With a full explanation: at most this many counterfactual solves (alternatives in step order, then unused actions, "
    "then policy prices); the explanation then says it is partial (`truncated_reason: max_questions`)."
)
_SWITCH_MARGIN_HELP = (
    "How much room a switch time leaves besides the other route, as a share of that route's latency (default 0.2): "
    "an awaited external step is given up on at the deadline less the route around it and this share of it. "
    "1.0 leaves room for the route twice (a failure and a retry): fewer deadlines missed, more fallbacks paid for."
)
_POLICIES_HELP = (
    "A policy set (a file or folder of policies) that replaces the project's policies, as `intento policy rollout` "
    "does: the version is the project's with this set. Start the new workers, new runs and `intento policy "
    "impact/rollout --engine temporal` with the same project and set so that they agree on it."
)
# The policy commands' options for `--engine temporal`.
_ENGINE_POLICY_HELP = "embedded (the store's runs) or temporal (the runs on Temporal; TLS and API keys from TEMPORAL_* variables)."
_PROJECT_HELP = ("With --engine temporal: the project as its current workers load it (repeatable); the runs' remaining work "
                 "is judged under it and under it with the new set.")
_CURRENT_POLICIES_HELP = "With --engine temporal: the policy set the current workers were started with (`intento worker --policies`), if any."
_POLICY_QUEUE_HELP = "With --engine temporal: only runs on this task queue (default: every intento run of the namespace)."

# Options shared by the commands that talk to Temporal (`worker`, and `--engine temporal`).
_TEMPORAL_HELP = "The Temporal frontend, HOST:PORT (default: TEMPORAL_ADDRESS, else 127.0.0.1:7233)."
_NAMESPACE_HELP = "The namespace (default: TEMPORAL_NAMESPACE, else `default`)."
_API_KEY_HELP = "An API key (default: TEMPORAL_API_KEY); it turns TLS on."
_TLS_CERT_HELP = "A TLS client certificate, PEM (default: TEMPORAL_TLS_CLIENT_CERT_PATH)."
_TLS_KEY_HELP = "The TLS client certificate's key, PEM (default: TEMPORAL_TLS_CLIENT_KEY_PATH)."
_TLS_CA_HELP = "The CA certificate that signed the server's, PEM (default: TEMPORAL_TLS_SERVER_CA_CERT_PATH)."


class DiagFormat(str, Enum):
    text = "text"
    short = "short"
    json = "json"


class CheckFormat(str, Enum):
    text = "text"
    short = "short"
    json = "json"
    sarif = "sarif"


_STDIN_FILENAME_HELP = "The path standard input (`-`) stands for: diagnostics name it, and the file of that path in the project is replaced by it (an editor's unsaved buffer)."


def _sources(paths: list[Path], stdin_filename: Optional[str]):
    """The sources of ``paths``, where `-` is standard input (named ``stdin_filename``, which it
    replaces in the project when that file is among the paths). Bad usage exits 2."""
    from intento.check._load import decode_source

    rest = [p for p in paths if str(p) != "-"]
    stdin = len(paths) - len(rest)
    if stdin > 1:
        print("error: `-` (standard input) may be given once", file=sys.stderr)
        raise typer.Exit(2)
    if stdin_filename is not None and not stdin:
        print("error: `--stdin-filename` names standard input: give `-` among the paths too", file=sys.stderr)
        raise typer.Exit(2)
    sources, diags = load_sources(rest) if rest else ([], [])
    if stdin:
        name = stdin_filename or "<stdin>"
        src, bad = decode_source(name, sys.stdin.buffer.read())
        if bad is not None:
            diags.append(bad)
        else:
            if stdin_filename is not None:
                target = Path(stdin_filename).resolve()
                sources = [s for s in sources if Path(s.name).resolve() != target]
            sources.append(src)
    return sources, diags


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
    """Diagnostics to stderr, in the chosen form (JSON goes to stdout with the result); at most
    100 of them, then a note of how many more were found."""
    from intento.diagnostics import MAX_DIAGNOSTICS, DiagnosticList

    if not isinstance(diags, DiagnosticList) and len(diags) > MAX_DIAGNOSTICS:
        diags = sorted_capped(diags)  # e.g. a request naming thousands of unknown `given`s
    color = sys.stderr.isatty() and "NO_COLOR" not in os.environ
    for d in diags:
        text = d.one_line() if fmt is DiagFormat.short else d.render()
        if color:
            head, _, rest = text.partition("\n")
            style = "bold red" if d.is_error else "bold yellow"
            err.print(head, style=style)
            if rest:
                err.print(rest)
        else:
            print(text, file=sys.stderr)
        if fmt is DiagFormat.text:
            print(file=sys.stderr)
    omitted = getattr(diags, "omitted", 0)
    if omitted:
        print(f"note: {omitted:,} more diagnostic{'s' * (omitted != 1)} not shown (at most {len(diags):,} are reported)", file=sys.stderr)


def _summary(diags: list[Diagnostic]) -> tuple[int, int]:
    """(errors, warnings) found, those past the cap of 100 included."""
    from intento.diagnostics import tally

    return tally(diags)


@app.command()
def check(
    paths: List[Path] = typer.Argument(..., help="`.intent` files or folders (read recursively) that form one project; `-` reads one file from standard input."),
    format: CheckFormat = typer.Option(CheckFormat.text, "--format", "-f", help="text (with source snippets), short (one line each), json, or sarif (SARIF 2.1.0, for code scanning)."),
    stdin_filename: Optional[str] = typer.Option(None, "--stdin-filename", help=_STDIN_FILENAME_HELP),
) -> None:
    """Check a project: syntax, names, types and units; every syntax error of every file, and the declarations that
    parse are checked even when others do not. Exit 0 when there are no errors (warnings allowed), 1 otherwise, 2 on
    bad usage."""
    from intento.check import check_loaded

    result = check_loaded(*_sources(paths, stdin_filename))
    errors, warnings = _summary(result.diagnostics)
    if format is CheckFormat.sarif:
        from intento.sarif import sarif_log

        print(json.dumps(sarif_log(result.diagnostics, Path.cwd()), indent=2))
    elif format is CheckFormat.json:
        body = {
            "ok": result.ok,
            "errors": errors,
            "warnings": warnings,
            "diagnostics": [d.to_model().model_dump() for d in result.diagnostics],
        }
        if result.truncated:
            body |= {"truncated": True, "shown": len(result.diagnostics)}
        print(json.dumps(body, indent=2))
    else:
        print_diagnostics(result.diagnostics, DiagFormat(format.value))
        if result.spec is not None:
            s = result.spec
            n = len(s.sources)
            print(
                f"ok: {n} file{'s' * (n != 1)}, {len(s.providers)} providers, {len(s.actions)} actions, "
                f"{len(s.intents)} intents, {len(s.policies)} policies, {len(s.tests)} tests"
                + (f" ({warnings:,} warning{'s' * (warnings != 1)})" if warnings else "")
            )
        else:
            print(f"failed: {errors:,} error{'s' * (errors != 1)}, {warnings:,} warning{'s' * (warnings != 1)}", file=sys.stderr)
    raise typer.Exit(0 if result.ok else 1)


@app.command()
def fmt(
    paths: List[Path] = typer.Argument(..., help="`.intent` files or folders to format; `-` alone formats standard input to standard output."),
    check_only: bool = typer.Option(False, "--check", help="Change nothing; exit 1 if any file is not formatted."),
    diff: bool = typer.Option(False, "--diff", help="Change nothing; print what would change as a unified diff."),
    stdin_filename: Optional[str] = typer.Option(None, "--stdin-filename", help="The path standard input (`-`) stands for, in diagnostics."),
) -> None:
    """Rewrite `.intent` files in the canonical layout, keeping comments. A file with an error is left as it is (its
    diagnostics shown, exit 1): fmt never changes what a file says. Exit 2 on bad usage."""
    from intento.diagnostics import DiagnosticList
    from intento.syntax import format_file, parse
    from intento.syntax._format import FormatError

    if any(str(p) == "-" for p in paths) and len(paths) > 1:
        print("error: `-` (standard input) is formatted alone: give no other path", file=sys.stderr)
        raise typer.Exit(2)
    sources, load_diags = _sources(paths, stdin_filename)
    diags = DiagnosticList(load_diags)
    if str(paths[0]) == "-":
        _fmt_stdin(sources, diags, check_only, diff)
        return
    changed: list[str] = []
    refused = False
    for src in sources:
        f, d = parse(src)
        if f is None:
            diags.merge(d)  # counts the errors a parse found past the cap
            continue
        try:
            new = format_file(f, src)
        except FormatError as e:  # the formatted text would not say the same: the file stays
            print(f"error: {e}", file=sys.stderr)
            refused = True
            continue
        if new == src.text:
            continue
        changed.append(src.name)
        if diff:
            sys.stdout.writelines(
                difflib.unified_diff(_diff_lines(src.text), _diff_lines(new), f"a/{src.name}", f"b/{src.name}")
            )
        elif check_only:
            print(f"would reformat {src.name}")
        else:
            path = Path(src.name)
            with contextlib.suppress(OSError), path.open("rb") as fh:
                if fh.read(3) == b"\xef\xbb\xbf":
                    new = "\ufeff" + new  # the byte order mark stays
            _atomic_write(path, new)
            print(f"formatted {src.name}")
    if diags or refused:
        if diags:
            print_diagnostics(sorted_capped(diags))
        raise typer.Exit(1)
    if check_only or diff:
        if not changed and not diff:
            print(f"{len(sources)} file{'s' * (len(sources) != 1)} already formatted")
        raise typer.Exit(1 if changed else 0)
    if not changed:
        print(f"{len(sources)} file{'s' * (len(sources) != 1)} already formatted")


@app.command()
def init(
    directory: Path = typer.Argument(Path("."), help="Where to create the project (made if missing; files already there are never overwritten)."),
    name: Optional[str] = typer.Option(None, "--name", help="The intent's name (a name like `fulfil_order`); by default one derived from the folder's name."),
) -> None:
    """Create a small project that passes `check`, `test` and `plan` at once: providers, an action, an intent, a
    policy with an owner, a policy test and a request. Exit 1 (changing nothing) if any of its files exists."""
    from intento.scaffold import ScaffoldError, init_project

    try:
        made = init_project(directory, name)
    except ScaffoldError as e:
        print(f"error: {e}", file=sys.stderr)
        raise typer.Exit(1)
    for p in made.files:
        print(f"created {p}")
    print()
    print("next:")
    for line in made.next_steps:
        print(f"  {line}")


@app.command()
def lsp() -> None:
    """Start the language server on standard input and output (for editors: see docs/editors.md)."""
    try:
        from intento.lsp import serve
    except ImportError as e:  # pygls is the `lsp` extra
        print(f"error: the language server needs the `lsp` extra ({e.name} is not installed): pip install 'intento[lsp]'", file=sys.stderr)
        raise typer.Exit(1)
    serve()


def _diff_lines(text: str) -> list[str]:
    """Lines for a unified diff: cut after each LF only (`str.splitlines` would also cut at a form
    feed or U+2028, which are characters within a line of a source)."""
    lines = text.split("\n")
    return [ln + "\n" for ln in lines[:-1]] + ([lines[-1]] if lines[-1] else [])


def _fmt_stdin(sources, diags, check_only: bool, diff: bool) -> None:
    """`fmt -`: the formatted text on stdout; nothing on stdout (and exit 1) when it has an error."""
    from intento.syntax import format_file, parse

    if diags:
        print_diagnostics(sorted_capped(diags))
        raise typer.Exit(1)
    src = sources[0]
    f, d = parse(src)
    if f is None:
        print_diagnostics(d)
        raise typer.Exit(1)
    from intento.syntax._format import FormatError

    try:
        new = format_file(f, src)
    except FormatError as e:
        print(f"error: {e}", file=sys.stderr)
        raise typer.Exit(1)
    if diff:
        sys.stdout.writelines(difflib.unified_diff(_diff_lines(src.text), _diff_lines(new), f"a/{src.name}", f"b/{src.name}"))
    elif check_only:
        if new != src.text:
            print(f"would reformat {src.name}", file=sys.stderr)
    else:
        sys.stdout.write(new)
    raise typer.Exit(1 if (check_only or diff) and new != src.text else 0)


class PlanFormat(str, Enum):
    text = "text"
    json = "json"
    mermaid = "mermaid"


class BackendName(str, Enum):
    cpsat = "cpsat"
    constraint = "constraint"


class ExplainName(str, Enum):
    none = "none"
    basic = "basic"
    full = "full"


def _json_input(value: str | None, what: str):
    """``--given`` / ``--state``: inline JSON (starting with `{`) or a path to a JSON file."""
    from intento.request import load_json

    if value is None:
        return None, None
    if value.lstrip().startswith("{"):
        data, src, diags = load_json(value, f"--{what}")
    else:
        path = Path(value)
        if not path.is_file():
            # The value is not echoed: it may be a mistyped request holding a secret.
            raise _BadInput([_diagnostic("E101", f"`--{what}` is neither inline JSON nor a readable file ({len(value)} characters given; inline JSON starts with `{{`)", None, help='pass a JSON object like \'{"a": 1}\' or a path to one')])
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            good = raw[: e.start].decode("utf-8", errors="replace")
            line, col = good.count("\n") + 1, len(good) - (good.rfind("\n") + 1) + 1
            raise _BadInput([_diagnostic("E101", f"`--{what}` file `{path}` is not valid UTF-8 (line {line}, column {col}, byte {e.start})", None, help="save the file as UTF-8")])
        data, src, diags = load_json(text, str(path))
    if diags:
        raise _BadInput(diags)
    return data, src


class _BadInput(Exception):
    def __init__(self, diags):
        self.diags = diags


@contextmanager
def _bad_input_exits():
    """Bad request input ends the command with its located diagnostics and exit code 1."""
    from intento.diagnostics import IntentoError

    try:
        yield
    except _BadInput as e:
        print_diagnostics(e.diags)
        raise typer.Exit(1)
    except IntentoError as e:
        print_diagnostics(e.diagnostics)
        raise typer.Exit(1)


def _request(spec, intent: str, given: str | None, state: str | None):
    """``--given`` / ``--state`` read and validated: (problem, given data, state data)."""
    from intento.solve import prepare

    given_data, given_src = _json_input(given, "given")
    state_data, state_src = _json_input(state, "state")
    problem = prepare(spec, intent, given_data, state_data, given_source=given_src, state_source=state_src)
    return problem, given_data, state_data


def _load_spec(paths: list[Path]):
    result = check_paths(paths)
    if result.spec is None:
        print_diagnostics(result.diagnostics)
        raise typer.Exit(1)
    return result.spec


@app.command()
def plan(
    paths: List[Path] = typer.Argument(..., help="The project: `.intent` files or folders."),
    intent: str = typer.Option(..., "--intent", "-i", help="The intent to plan."),
    given: Optional[str] = typer.Option(None, "--given", "-g", help="The `given` values: inline JSON or a JSON file. Money as \"120 USD\" or a number, durations as \"2s\" or ms."),
    state: Optional[str] = typer.Option(None, "--state", "-s", help="The observed state: inline JSON or a JSON file (facts, providers, at)."),
    format: PlanFormat = typer.Option(PlanFormat.text, "--format", "-f", help="text (timeline and why), json (the Plan model) or mermaid (a Gantt chart)."),
    backend: BackendName = typer.Option(BackendName.cpsat, "--backend", help="cpsat (default) or constraint (exhaustive, small models)."),
    time_limit: float = typer.Option(10.0, "--time-limit", help="Seconds the solver may take; past it the best plan so far is returned as `feasible`.", min=0.001),
    workers: int = typer.Option(1, "--workers", help="CP-SAT worker threads.", min=1, max=64),
    explain: ExplainName = typer.Option(ExplainName.basic, "--explain", help="none; basic (forbidden/unavailable/too-slow alternatives, minimal conflict when infeasible); full (adds counterfactuals for every alternative and the price of each hard policy)."),
    verify: bool = typer.Option(False, "--verify", help="Also solve with the other back-end and fail (exit 5) if the optima differ."),
    timings: bool = typer.Option(False, "--timings", help="Include wall-clock and search counters in the output (makes it vary between runs)."),
    audit: Optional[Path] = typer.Option(None, "--audit", help="Append this decision to a hash-chained audit log (JSON Lines)."),
    work_limit: Optional[float] = typer.Option(
        None, "--work-limit", min=0.001,
        help="A budget of solver work for the whole request, in CP-SAT's deterministic time units (about a second of search each): an answer cut by it is the same on a busy machine as on an idle one. Besides --time-limit.",
    ),
    max_questions: Optional[int] = typer.Option(None, "--max-questions", min=0, max=100_000, help=_MAX_QUESTIONS_HELP),
) -> None:
    """Plan an intent: the optimal steps, providers and schedule. Exit 0 with a plan, 3 when infeasible, 4 when no plan was found in time, 1 on bad input."""
    from intento.solve import plan_problem

    spec = _load_spec(paths)
    with _bad_input_exits():
        problem, _, _ = _request(spec, intent, given, state)
        result = plan_problem(problem, backend=backend.value, time_limit_s=time_limit, num_workers=workers, explain=explain.value, include_timings=timings, work_limit=work_limit,
                              max_questions=max_questions)
        other = None
        if verify:
            other_backend = "constraint" if backend is BackendName.cpsat else "cpsat"
            other = plan_problem(problem, backend=other_backend, time_limit_s=time_limit, num_workers=workers, explain="none")
    if audit is not None:
        from intento.audit import AuditError, AuditLog

        try:
            AuditLog(audit).append(spec, intent, dict(problem.context), problem.state.model.model_dump(mode="json", exclude_none=True), result)
        except (AuditError, OSError) as e:
            print(f"intento: cannot write the audit record: {e}", file=sys.stderr)
            raise typer.Exit(1)
    if format is PlanFormat.json:
        print(result.to_json())
    elif format is PlanFormat.mermaid:
        from intento.render import plan_mermaid

        print(plan_mermaid(result))
    else:
        from intento.render import plan_text

        out.print(plan_text(result))
    if other is not None:
        from intento.render import same_optimum

        ok, detail = same_optimum(result, other)
        sys.stdout.flush()
        print(("verified: " if ok else "VERIFICATION FAILED: ") + detail, file=sys.stderr)
        if not ok:
            raise typer.Exit(5)
    raise typer.Exit({"optimal": 0, "feasible": 0, "infeasible": 3, "unknown": 4}[result.status])


@app.command("test")
def test_command(
    paths: List[Path] = typer.Argument(..., help="The project: `.intent` files or folders (its `test` blocks are run)."),
    junit_xml: Optional[Path] = typer.Option(None, "--junit-xml", help="Also write the results as JUnit XML to this file."),
    filter: Optional[str] = typer.Option(None, "--filter", "-k", help="Run only tests whose name contains this text."),
    time_limit: float = typer.Option(10.0, "--time-limit", help="Solver time limit per test, in seconds.", min=0.001),
) -> None:
    """Run the project's policy tests (`test` blocks). Exit 0 when all pass, 1 otherwise."""
    from intento.policytest import junit_xml as to_junit
    from intento.policytest import run_tests

    spec = _load_spec(paths)
    results = run_tests(spec, filter, time_limit)
    for r in results:
        mark = "PASS" if r.passed else ("ERROR" if r.error else "FAIL")
        print(f"{mark:5} {r.name}  ({r.location}, {r.seconds * 1000:.0f} ms)")
        if r.error:
            print(f"      {r.error}")
        for f in r.failures:
            print(f"      expected {f}")
        if not r.passed and r.plan_summary:
            print(f"      plan: {r.plan_summary}")
    passed = sum(r.passed for r in results)
    failed = len(results) - passed
    if junit_xml is not None:
        _atomic_write(junit_xml, to_junit(results))
    print(f"\n{passed} passed, {failed} failed" if results else "\nno tests found")
    raise typer.Exit(0 if failed == 0 else 1)


class ExplainFormat(str, Enum):
    text = "text"
    json = "json"
    markdown = "markdown"


@app.command()
def explain(
    paths: List[Path] = typer.Argument(..., help="The project: `.intent` files or folders."),
    intent: str = typer.Option(..., "--intent", "-i", help="The intent to plan and explain."),
    given: Optional[str] = typer.Option(None, "--given", "-g", help="The `given` values: inline JSON or a JSON file."),
    state: Optional[str] = typer.Option(None, "--state", "-s", help="The observed state: inline JSON or a JSON file."),
    format: ExplainFormat = typer.Option(ExplainFormat.text, "--format", "-f", help="text, json (the Explanation model) or markdown (a report a reviewer can file)."),
    level: ExplainName = typer.Option(ExplainName.full, "--level", help="basic or full (counterfactuals and policy prices)."),
    time_limit: float = typer.Option(10.0, "--time-limit", help="Seconds per solve.", min=0.001),
    work_limit: Optional[float] = typer.Option(
        None, "--work-limit", min=0.001,
        help="A budget of solver work for the whole request, in CP-SAT's deterministic time units (about a second of search each): an answer cut by it is the same on a busy machine as on an idle one. Besides --time-limit.",
    ),
    max_questions: Optional[int] = typer.Option(None, "--max-questions", min=0, max=100_000, help=_MAX_QUESTIONS_HELP),
    why_not: Optional[List[str]] = typer.Option(
        None,
        "--why-not",
        help=(
            "Why not this? `ACTION via PROVIDER`, `use ACTION` or `no ACTION`; repeat it for one combined demand. "
            "Adds the plan under the demand and its delta, or the minimal conflict that forbids it. "
            "The exit code stays the base plan's: 0 even when no plan meets the demand."
        ),
    ),
) -> None:
    """Plan and explain why: every alternative and why it lost, what each policy costs, or why no plan exists."""
    from intento.render import explanation_markdown, plan_text
    from intento.solve import plan_problem

    spec = _load_spec(paths)
    with _bad_input_exits():
        problem, given_data, state_data = _request(spec, intent, given, state)
        questions = _why_not_questions(problem, why_not)
        result = plan_problem(problem, time_limit_s=time_limit, explain=level.value, work_limit=work_limit, max_questions=max_questions)
    if questions is not None:
        _explain_why_not(problem, result, questions, format, spec, given_data, state_data, time_limit)
    if format is ExplainFormat.json:
        print(result.explanation.model_dump_json(indent=2))
    elif format is ExplainFormat.markdown:
        print(explanation_markdown(result, spec, given_data, state_data), end="")
    else:
        out.print(plan_text(result))
    raise typer.Exit({"optimal": 0, "feasible": 0, "infeasible": 3, "unknown": 4}[result.status])


def _why_not_questions(problem, texts: Optional[List[str]]):
    """`--why-not` parsed and checked against the request (None when not given); a bad
    question raises located diagnostics, before anything is solved."""
    from intento.whynot import parse_questions

    return parse_questions(problem, list(texts)) if texts else None


def _explain_why_not(problem, result, questions, format, spec, given_data, state_data, time_limit: float) -> None:
    """`explain --why-not`: the base plan as without it, then the answer to the demand (JSON:
    the `WhyNot` model, the base plan inside it). Exits with the base plan's code."""
    from intento.render import explanation_markdown, plan_text
    from intento.whynot import answer, why_not_markdown, why_not_text

    with _bad_input_exits():
        w = answer(problem, result, questions, time_limit_s=time_limit)
    if format is ExplainFormat.json:
        print(w.model_dump_json(indent=2))
    elif format is ExplainFormat.markdown:
        print(explanation_markdown(result, spec, given_data, state_data) + "\n" + why_not_markdown(w), end="")
    else:
        out.print(plan_text(result) + "\n\n" + why_not_text(w))
    raise typer.Exit({"optimal": 0, "feasible": 0, "infeasible": 3, "unknown": 4}[result.status])


def _world(spec, simulate: Optional[Path], handlers: Optional[str]):
    """The `--simulate` scenario and the `--handlers` registry, validated (exit 1 if invalid)."""
    from intento.execute import Scenario
    from intento.execute.handlers import load as load_handlers

    scenario = registry = None
    if handlers:
        try:
            registry = load_handlers(handlers)
        except (ImportError, AttributeError, TypeError) as e:
            print(f"intento: cannot load handlers `{handlers}`: {e}", file=sys.stderr)
            raise typer.Exit(1)
    if simulate is not None:
        try:
            scenario = Scenario.model_validate_json(simulate.read_text())
        except (OSError, ValueError) as e:
            print(f"intento: invalid scenario `{simulate}`: {e}", file=sys.stderr)
            raise typer.Exit(1)
        unknown = sorted(set(scenario.providers) - set(spec.providers))
        if unknown:
            print(f"intento: scenario `{simulate}` names unknown providers: {', '.join(unknown)}", file=sys.stderr)
            raise typer.Exit(1)
    return scenario, registry


def _learning(learn: bool, providers: Optional[List[str]], quantile: float, min_samples: int):
    """`--learn` and its options, as the executor's `Learning` (None without `--learn`)."""
    from intento.learn import Learning

    if not learn:
        if providers:
            print("intento: --learn-provider needs --learn", file=sys.stderr)
            raise typer.Exit(1)
        return None
    return Learning(providers=list(providers) if providers else None, quantile=quantile, min_samples=min_samples)


def _check_learning(spec, learning) -> None:
    """Exit 1 on a `--learn-provider` the project does not declare, with a did-you-mean."""
    unknown = [p for p in (learning.providers or []) if p not in spec.providers] if learning is not None else []
    if unknown:
        print(f"intento: --learn-provider: unknown provider `{unknown[0]}`" + (f"; {did_you_mean(unknown[0], spec.providers)}" if did_you_mean(unknown[0], spec.providers) else ""), file=sys.stderr)
        raise typer.Exit(1)


def _checked_learning(spec, learn: bool, providers, quantile: float, min_samples: int):
    learning = _learning(learn, providers, quantile, min_samples)
    _check_learning(spec, learning)
    return learning


_LEARN_HELP = "Plan with the figures observed in the store (docs/executor.md, \"Learned figures\"): each option's latency quantile once it has enough successful steps, its success rate with the declared reliability as the prior."


def _executor(paths, store_path: Path, simulate: Optional[Path], handlers: Optional[str], journal: Optional[Path], time_limit: float, start: int = 0, progress=None, learning=None,
              switch_margin: Optional[float] = None):
    from intento.audit import AuditLog, secret_key
    from intento.execute import Executor, RealEnvironment, SimEnvironment, Store

    spec = _load_spec(paths)
    scenario, registry = _world(spec, simulate, handlers)
    try:
        store = Store(store_path)
    except Exception as e:
        print(f"intento: cannot open the store `{store_path}`: {e}", file=sys.stderr)
        raise typer.Exit(1)
    if scenario is not None:
        # The simulation goes on from the store's virtual clock: a restart never goes back in time.
        env = SimEnvironment(scenario, start=max(start, store.virtual_now()), journal=journal)
    else:
        if registry is None:
            print("intento: `intento run` needs `--simulate SCENARIO.json` or `--handlers module:object`", file=sys.stderr)
            raise typer.Exit(1)
        env = RealEnvironment(registry)
    audit_path = store_path.with_name(store_path.name + ".audit.jsonl")
    key = secret_key(audit_path)
    _check_learning(spec, learning)
    ex = Executor(spec, store, env, registry, AuditLog(audit_path), time_limit_s=time_limit, secret_key=key, progress=progress, learning=learning, switch_margin=switch_margin)
    return ex, store, spec


def _switch_text(data: dict, st) -> str:
    """" until 6h 7m, then fetch_file_manually via ops_desk": a dispatched step's switch time."""
    from intento.execute.report import switch_phrase

    return "" if data.get("switch_at") is None else " " + switch_phrase(data["switch_at"], data.get("switch_to"), st)


def _live(quiet: bool, many: bool = False):
    """Live progress, one line per event; with ``many`` (runs driven side by side) each line
    names its run."""
    if quiet:
        return None

    def show(kind: str, st, data: dict) -> None:
        at = st.last_at - st.started_at
        from intento.render import _dur

        text = {
            "planned": lambda: f"plan #{st.plans}: {data.get('status')}, cost {data.get('cost')}" + (f" ({'; '.join(data['changes'])})" if data.get("changes") and st.plans > 1 else "") + f" because {data.get('reason')}",
            "step_dispatched": lambda: f"start {data['action']} via {data['provider']}" + ((" (awaiting its external fact" + _switch_text(data, st) + ")") if data.get("external") else f" (attempt {data['attempt']})"),
            "step_switched": lambda: f"SWITCH away from {data['action']} via {data['provider']}: {data.get('reason')} (still awaited; a late result is recorded)",
            "step_succeeded": lambda: f"done  {data['action']} via {data['provider']}" + (" (reconciled)" if data.get("reconciled") else ""),
            "step_failed": lambda: f"FAIL  {data['action']} via {data['provider']}: {data.get('error')}",
            "step_timed_out": lambda: f"TIMEOUT {data['action']} via {data['provider']}",
            "observation": lambda: f"observed {data.get('fact') or (str(data.get('provider')) + ' ' + str(data.get('status')))}",
            "needs_reconciliation": lambda: f"?     {data['action']} was in flight at a crash: reconciling",
            "giving_up": lambda: f"GIVING UP: {data.get('summary') or data.get('reason')}",
            "compensating": lambda: f"undo  {data['for']} with {data['action']} via {data['provider']}",
            "compensated": lambda: f"undone {data['for']}",
            "escalated": lambda: "ESCALATED",
            "cancelled": lambda: f"CANCELLED: {data.get('reason')}",
            "wait_dropped": lambda: f"dropped the wait for {data['action']}: {data.get('reason')}",
            "holding": lambda: f"holding: {data.get('reason')}",
            "succeeded": lambda: "SUCCEEDED: the goal holds",
        }.get(kind)
        if text:
            who = f"{st.run} " if many else ""
            out.print(f"{who}[{_dur(at):>14}] {text()}")

    return show


@app.command("run")
def run_command(
    paths: List[Path] = typer.Argument(..., help="The project: `.intent` files or folders."),
    intent: str = typer.Option(..., "--intent", "-i", help="The intent to achieve."),
    given: Optional[str] = typer.Option(None, "--given", "-g", help="The `given` values: inline JSON or a JSON file."),
    state: Optional[str] = typer.Option(None, "--state", "-s", help="The observed state to start from: inline JSON or a JSON file."),
    store: Path = typer.Option(Path("intento.db"), "--store", help="The SQLite store (created if missing)."),
    simulate: Optional[Path] = typer.Option(None, "--simulate", help="Run against simulated providers described by this scenario (virtual clock)."),
    handlers: Optional[str] = typer.Option(None, "--handlers", help="Real handlers: `module:registry` or `module`."),
    key: Optional[str] = typer.Option(None, "--key", help="Idempotency key of the run (default: derived from the request); the same key resumes the same run."),
    journal: Optional[Path] = typer.Option(None, "--journal", help="Simulation: where simulated providers record their effects (default: STORE.journal.jsonl)."),
    time_limit: float = typer.Option(10.0, "--time-limit", help="Solver time limit per (re-)plan, in seconds.", min=0.001),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No live progress; only the final status."),
    engine: str = typer.Option("embedded", "--engine", help="embedded (SQLite store, this process) or temporal (a workflow on a Temporal cluster; needs `intento worker`)."),
    temporal: Optional[str] = typer.Option(None, "--temporal", help=_TEMPORAL_HELP),
    namespace: Optional[str] = typer.Option(None, "--namespace", help=_NAMESPACE_HELP),
    api_key: Optional[str] = typer.Option(None, "--api-key", help=_API_KEY_HELP),
    tls_cert: Optional[Path] = typer.Option(None, "--tls-cert", help=_TLS_CERT_HELP),
    tls_key: Optional[Path] = typer.Option(None, "--tls-key", help=_TLS_KEY_HELP),
    tls_ca: Optional[Path] = typer.Option(None, "--tls-ca", help=_TLS_CA_HELP),
    task_queue: str = typer.Option("intento", "--task-queue", help="With --engine temporal: the workers' task queue."),
    policies: Optional[Path] = typer.Option(None, "--policies", help="With --engine temporal: " + _POLICIES_HELP),
    switch_margin: Optional[float] = typer.Option(None, "--switch-margin", help=_SWITCH_MARGIN_HELP, min=0.0, max=10.0),
    learn: bool = typer.Option(False, "--learn", help=_LEARN_HELP + " Embedded engine only."),
    learn_provider: Optional[List[str]] = typer.Option(None, "--learn-provider", help="With --learn: only these providers' figures (repeatable; default: every provider)."),
    learn_quantile: float = typer.Option(0.9, "--learn-quantile", help="With --learn: the latency quantile planned with.", min=0.01, max=1.0),
    learn_min_samples: int = typer.Option(20, "--learn-min-samples", help="With --learn: successful steps of an option before its observed latency is used.", min=1),
) -> None:
    """Achieve an intent: plan, run the steps, observe, re-plan, compensate and escalate if needed.
    Running the same command again resumes the same run. Exit 0 when the goal holds, 3 when the run escalated, 4 when
    it was cancelled (`intento cancel`), 1 on bad input, a store that cannot be used, or a `--key` already used for another
    request; with `--engine temporal` also 1 when Temporal is unreachable, 4 when the run was cancelled or its workflow
    ended without an outcome (terminated, timed out, failed), 130 when interrupted. On Temporal the run's workflow id is
    INTENT-KEY (INTENT-<hash of the request> without --key); a request whose run already ended is answered with its outcome."""
    if engine == "temporal":
        _run_on_temporal(paths, intent, given, state, key, _connection(temporal, namespace, api_key, tls_cert, tls_key, tls_ca), task_queue, store, quiet, policies, switch_margin)
    elif engine != "embedded":
        print("intento: --engine is `embedded` or `temporal`", file=sys.stderr)
        raise typer.Exit(1)
    if policies is not None:
        print("intento: --policies is for --engine temporal; on the embedded engine roll a policy set out on the store: `intento policy rollout POLICIES --store STORE`", file=sys.stderr)
        raise typer.Exit(1)
    learning = _learning(learn, learn_provider, learn_quantile, learn_min_samples)
    ex, st_store, spec = _executor(paths, store, simulate, handlers, journal or store.with_name(store.name + ".journal.jsonl") if simulate else None, time_limit, progress=_live(quiet), learning=learning,
                                   switch_margin=switch_margin)
    with _bad_input_exits():
        given_data, _ = _json_input(given, "given")
        state_data, _ = _json_input(state, "state")
        run_id = ex.start(intent, given_data, state_data, key)
    out.print(f"run {run_id} ({intent}), store {store}")
    from intento.execute.executor import RunBusy

    try:
        final = ex.drive(run_id)
    except RunBusy as e:
        print(f"intento: {e}", file=sys.stderr)
        ex.env.close()
        raise typer.Exit(1)
    _print_status(st_store, run_id, spec)
    ex.env.close()
    raise typer.Exit(0 if final.status == "succeeded" else 4 if final.status == "cancelled" else 3)


@app.command("worker")
def worker_command(
    paths: List[Path] = typer.Argument(..., help="The project the worker plans and runs."),
    temporal: Optional[str] = typer.Option(None, "--temporal", help=_TEMPORAL_HELP),
    namespace: Optional[str] = typer.Option(None, "--namespace", help=_NAMESPACE_HELP),
    api_key: Optional[str] = typer.Option(None, "--api-key", help=_API_KEY_HELP),
    tls_cert: Optional[Path] = typer.Option(None, "--tls-cert", help=_TLS_CERT_HELP),
    tls_key: Optional[Path] = typer.Option(None, "--tls-key", help=_TLS_KEY_HELP),
    tls_ca: Optional[Path] = typer.Option(None, "--tls-ca", help=_TLS_CA_HELP),
    task_queue: str = typer.Option("intento", "--task-queue", help="The task queue to poll."),
    store: Path = typer.Option(Path("intento.db"), "--store", help="Where the audit log goes (STORE.audit.jsonl); its key file (or INTENTO_SECRET_KEY) opens the runs' sealed secrets."),
    simulate: Optional[Path] = typer.Option(None, "--simulate", help="Run steps against this simulation scenario."),
    handlers: Optional[str] = typer.Option(None, "--handlers", help="Real handlers: `module:registry` or `module`."),
    concurrency: int = typer.Option(8, "--concurrency", help="Activities (plans and steps) run at once by this worker.", min=1, max=1024),
    shutdown_grace: float = typer.Option(30.0, "--shutdown-grace", help="On SIGTERM/SIGINT, seconds steps in flight get to finish before they are abandoned.", min=0, max=86_400),
    build_id: Optional[str] = typer.Option(None, "--build-id", help="The worker's build id (default: intento- and the project's fingerprint)."),
    policies: Optional[Path] = typer.Option(None, "--policies", help=_POLICIES_HELP),
    learn: bool = typer.Option(False, "--learn", help=_LEARN_HELP + " The worker keeps the steps it runs as samples in --store and plans with what that store observed."),
    learn_provider: Optional[List[str]] = typer.Option(None, "--learn-provider", help="With --learn: only these providers' figures (repeatable)."),
    learn_quantile: float = typer.Option(0.9, "--learn-quantile", help="With --learn: the latency quantile planned with.", min=0.01, max=1.0),
    learn_min_samples: int = typer.Option(20, "--learn-min-samples", help="With --learn: successful steps of an option before its observed latency is used.", min=1),
) -> None:
    """Run a Temporal worker for intento runs: each run a workflow, planning and steps as activities.
    Stops on SIGINT or SIGTERM (exit 0), letting steps in flight finish within --shutdown-grace; exit 1 when Temporal cannot
    be reached or the worker fails, or the `temporal` extra is not installed."""
    import asyncio
    import signal

    _need_extra("temporal", "temporalio")
    conn = _connection(temporal, namespace, api_key, tls_cert, tls_key, tls_ca)

    try:
        spec = _project_spec(paths, policies)
        scenario, registry = _world(spec, simulate, handlers)
        learning = _checked_learning(spec, learn, learn_provider, learn_quantile, learn_min_samples)
        samples = _open_store(store, create=True) if learning is not None else None
    except typer.Exit as e:
        _exit_now(e.exit_code)

    async def serve() -> None:
        from intento.audit import AuditLog
        from intento.temporal import Activities, worker

        client = await _temporal_client(conn)
        acts = Activities(spec, scenario=scenario, registry=registry, audit=AuditLog(store.with_name(store.name + ".audit.jsonl")), learning=learning, samples=samples)
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        w = worker(client, task_queue, acts, concurrency, graceful_shutdown_s=shutdown_grace, build_id=build_id)
        running = asyncio.ensure_future(w.run())
        from intento.temporal._workflow import version_queue

        print(f"intento worker on {conn.where()}, task queue {task_queue}, version {spec.fingerprint} (its plans: {version_queue(task_queue, spec.fingerprint)})", flush=True)
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if running.done():
            running.result()  # the worker stopped by itself: its error
            return
        # Steps still running get the grace period; past it they are abandoned, and their
        # workflows see them lost and reconcile them.
        await w.shutdown()
        await asyncio.gather(running, return_exceptions=True)  # stopped on purpose: its end is no error

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:  # before the signal handlers were in place
        _exit_now(130)
    except Exception as e:
        from intento.temporal._client import connect_problem

        cause = e.__cause__ or e
        print(f"intento: the worker on {conn.where()}, task queue `{task_queue}`, stopped: {connect_problem(cause)}", file=sys.stderr)
        _exit_now(1)
    _exit_now(0)


def _project_spec(paths: List[Path], policies: Optional[Path]):
    """The project at ``paths``, with its policies replaced by the set at ``policies`` when given
    (`versions.with_policy_set`): the version workers, runs and rollouts on Temporal agree on."""
    spec = _load_spec(paths)
    if policies is None:
        return spec
    from intento.diagnostics import IntentoError
    from intento.versions import with_policy_set

    try:
        return with_policy_set(spec, _policy_set_or_exit(policies))
    except IntentoError as e:
        print_diagnostics(e.diagnostics)
        raise typer.Exit(1)


def _connection(address=None, namespace=None, api_key=None, tls_cert=None, tls_key=None, tls_ca=None):
    from intento.temporal._client import Connection

    return Connection(address=address, namespace=namespace, api_key=api_key, tls_cert=tls_cert, tls_key=tls_key, tls_ca=tls_ca)


async def _temporal_client(conn):
    """A connected Temporal client; a bad address, bad TLS files or an unreachable cluster exit 1 with one line."""
    import asyncio

    from temporalio.client import Client

    from intento.temporal._client import CONNECT_TIMEOUT, START_DEV, connect_problem

    try:
        kwargs = conn.connect_kwargs()
    except ValueError as e:
        print(f"intento: {e}", file=sys.stderr)
        _exit_now(1)
    address = kwargs["target_host"]
    try:
        return await asyncio.wait_for(Client.connect(**kwargs, connect_timeout=CONNECT_TIMEOUT), CONNECT_TIMEOUT.total_seconds())
    except asyncio.TimeoutError:
        print(f"intento: cannot reach Temporal at {address}: no answer within {CONNECT_TIMEOUT.total_seconds():g}s (is it a Temporal frontend?); {START_DEV}", file=sys.stderr)
        _exit_now(1)
    except Exception as e:
        print(f"intento: cannot reach Temporal at {address}: {connect_problem(e)}; {START_DEV}", file=sys.stderr)
        _exit_now(1)


def _run_on_temporal(paths, intent, given, state, key, conn, task_queue: str, store: Path, quiet: bool, policies: Path | None = None, switch_margin: float | None = None) -> None:
    """`intento run --engine temporal`: start (or join) the run's workflow, show its progress and
    wait for its outcome. A request whose run already ended is answered with that outcome, never
    run again. Never returns: every exit goes through `_exit_now` (0 succeeded, 3 escalated, 4
    cancelled or ended without an outcome, 1 bad input or Temporal unreachable, 130 interrupted)."""
    _need_extra("temporal", "temporalio")
    import asyncio

    from intento.errors import OperationalError

    try:
        spec = _project_spec(paths, policies)
        from intento.audit import secret_key
        from intento.temporal import run_request
        from intento.temporal._client import ended_without_outcome
        from intento.temporal._commands import workflow_id

        with _bad_input_exits():
            given_data, _ = _json_input(given, "given")
            state_data, _ = _json_input(state, "state")
            ispec = spec.intents.get(intent)
            # The key that seals secret givens: INTENTO_SECRET_KEY, else the key file beside the
            # audit log of --store (the one `intento worker --store` opens them with).
            sealing = secret_key(store.with_name(store.name + ".audit.jsonl")) if ispec and any(p.secret for p in ispec.given.values()) else None
            req = run_request(spec, intent, given_data, state_data, secret_key=sealing)
            if switch_margin is not None:
                req["switch_margin"] = switch_margin  # the workflow's switch times use it
    except typer.Exit as e:
        _exit_now(e.exit_code)
    except (OperationalError, OSError) as e:
        print(f"intento: {e}", file=sys.stderr)
        _exit_now(1)
    wid = workflow_id(intent, key, req)
    where = conn.where()
    printed = [0]  # how many of the run's events the live progress has printed
    async def go() -> dict:
        from temporalio.client import WorkflowFailureError
        from temporalio.service import RPCError

        from intento.temporal._client import connect_problem
        from intento.temporal._commands import outcome, start_or_join

        client = await _temporal_client(conn)
        try:
            handle, how = await start_or_join(client, req, wid, task_queue)
        except RPCError as e:
            print(f"intento: Temporal at {where} did not start run {wid}: {connect_problem(e)}", file=sys.stderr)
            _exit_now(1)
        said = {"started": "", "joined": " (already running: joined)", "ended": " (already ended: its outcome)"}[how]
        print(f"run {wid} ({intent}) on Temporal {where}, task queue {task_queue}{said}", flush=True)
        shown = asyncio.ensure_future(_temporal_progress(handle, quiet, printed))
        watched = asyncio.ensure_future(_notice_no_worker(client, task_queue, where, printed))
        try:
            return await outcome(handle)
        except WorkflowFailureError as e:
            print(f"intento: run {wid} {ended_without_outcome(e)}; it has no outcome (`intento run` again starts it anew)", file=sys.stderr)
            _exit_now(4)
        except RPCError as e:
            print(f"intento: lost Temporal at {where} while waiting for run {wid}: {connect_problem(e)}; the run goes on there: the same command waits for it again", file=sys.stderr)
            _exit_now(1)
        finally:
            shown.cancel()
            watched.cancel()

    try:
        result = asyncio.run(go())
    except KeyboardInterrupt:
        print(f"intento: interrupted; run {wid} goes on on Temporal: the same command waits for it again", file=sys.stderr)
        _exit_now(130)
    except Exception as e:  # a bug: one line, as `run()` reports it, but through a safe exit
        if os.environ.get("INTENTO_DEBUG"):
            import traceback

            traceback.print_exc()
        print(f"intento: internal error: {type(e).__name__}: {e} (set INTENTO_DEBUG=1 for details; please report it)", file=sys.stderr)
        _exit_now(70)
    if not quiet:
        for e in result.get("events", [])[printed[0]:]:
            _print_temporal_event(e)
    for u in result.get("undo_failed") or []:
        print(f"undo failed: {u['action']} (for {u['for']}): {u['error']}")
    print(f"outcome: {result['status']}" + (f": {result['summary']}" if result.get("summary") else ""))
    _exit_now({"succeeded": 0, "cancelled": 4}.get(result["status"], 3))


def _engine(engine: str) -> str:
    if engine not in ("embedded", "temporal"):
        print("intento: --engine is `embedded` or `temporal`", file=sys.stderr)
        raise typer.Exit(1)
    if engine == "temporal":
        _need_extra("temporal", "temporalio")
    return engine


def _temporal_command(conn, what: str, **kw) -> None:
    """`status`, `runs`, `observe` and `cancel` with `--engine temporal`. Never returns: exit 0
    done, 1 unknown run, refused observation or Temporal unreachable, 4 cancellation asked but
    the run has not ended within --wait."""
    import asyncio

    async def go() -> int:
        from temporalio.client import WorkflowFailureError, WorkflowUpdateFailedError
        from temporalio.service import RPCError, RPCStatusCode

        from intento.temporal._client import connect_problem

        client = await _temporal_client(conn)
        try:
            return await _TEMPORAL_COMMANDS[what](client, **kw)
        except WorkflowFailureError as e:
            from intento.temporal._client import ended_without_outcome

            print(f"intento: run {kw.get('run_id')} {ended_without_outcome(e)}; it has no outcome", file=sys.stderr)
            return 4
        except WorkflowUpdateFailedError as e:
            print(f"intento: observation refused by run {kw['run_id']}: {getattr(e.cause, 'message', None) or e.cause or e}", file=sys.stderr)
            return 1
        except RPCError as e:
            if e.status == RPCStatusCode.NOT_FOUND:
                print(f"intento: no run `{kw.get('run_id')}` on Temporal {conn.where()}" + (": " + e.message if "workflow" not in e.message.lower() else ""), file=sys.stderr)
            else:
                print(f"intento: Temporal at {conn.where()}: {connect_problem(e)}", file=sys.stderr)
            return 1

    try:
        code = asyncio.run(go())
    except KeyboardInterrupt:
        _exit_now(130)
    except Exception as e:  # a bug: one line, through a safe exit
        if os.environ.get("INTENTO_DEBUG"):
            import traceback

            traceback.print_exc()
        print(f"intento: internal error: {type(e).__name__}: {e} (set INTENTO_DEBUG=1 for details; please report it)", file=sys.stderr)
        _exit_now(70)
    _exit_now(code)


async def _t_status(client, run_id: str | None, as_json: bool) -> int:
    from intento.temporal._commands import list_runs, view

    if run_id is None:
        newest = await list_runs(client, None, None, 1)
        if not newest:
            print("[]" if as_json else "no runs")
            return 0
        run_id = newest[0]["run"]
    v = await view(client, run_id)
    if as_json:
        print(json.dumps(v, indent=2, default=str))
        return 0
    print(f"run {v['run']} ({v.get('intent')}) on Temporal: {v.get('status')} (execution {v.get('temporal_status')}, task queue {v.get('task_queue')})")
    from intento.versions import short

    if v.get("version"):
        print(f"  version: {short(v['version'])}" + (f" (policy set {short(v['policy_set'])})" if v.get("policy_set") else ""))
    for m in v.get("migrations") or []:
        print(f"  migrated at {m.get('at')} ms: {short(m.get('from'))} -> {short(m.get('to'), m.get('label') or None)}" + (f" by {m['by']}" if m.get("by") else "") + (f" ({m['reason']})" if m.get("reason") else ""))
    if v.get("done"):
        print("  done: " + ", ".join(f"{a} via {p}" for a, p in v["done"].items()))
    for key, label in (("running", "running"), ("awaiting", "waiting for the facts of")):
        if v.get(key):
            print(f"  {label}: " + ", ".join(v[key]))
    if (v.get("slots") or {}).get("waiting"):
        # capacity slots other runs hold (the provider's `intento.capacity` semaphore workflow)
        print("  waiting for a slot: " + ", ".join(f"{a} via {p}" for a, p in sorted(v["slots"]["waiting"].items())))
    if v.get("cost") is not None:
        print(f"  cost so far: {v['cost']}")
    for u in v.get("undo_failed") or []:
        print(f"  undo failed: {u['action']} (for {u['for']}): {u['error']}")
    o = v.get("outcome") or {}
    if o.get("summary"):
        print(f"  outcome: {o['status']}: {o['summary']}")
    if v.get("query_error"):
        print(f"  (no worker answered its status query: {v['query_error']})")
    for e in v.get("last_events", []):
        _print_temporal_event(e)
    return 0


async def _t_runs(client, status: str | None, intent: str | None, limit: int, as_json: bool) -> int:
    from intento.temporal._commands import list_runs, waits

    rows = await list_runs(client, status, intent, limit)
    groups = waits(rows)
    if as_json:
        print(json.dumps({"total": len(rows), "runs": rows, "waits": groups}, indent=2, default=str))
        return 0
    if not rows:
        print("no runs")
    for g in groups:
        print(f"{g['count']} run{'' if g['count'] == 1 else 's'} {g['waits_on']}")
    if groups:
        print()
    for r in rows:
        where = f"  {r['waits_on']}" if r.get("waits_on") else ""
        print(f"{r['run']:<40} {r.get('intent') or '?':<20} {r.get('status') or '?':<12} cost {r.get('cost') or '-':<8} started {r.get('started_at')}{where}")
    return 0


async def _t_observe(client, run_id: str, data: dict) -> int:
    from intento.temporal._workflow import IntentRun

    await client.get_workflow_handle(run_id).execute_update(IntentRun.observe, data)
    print(f"observation queued for run {run_id}")
    return 0


async def _t_cancel(client, run_id: str, reason: str, wait: float, as_json: bool) -> int:
    import asyncio

    from temporalio.client import WorkflowExecutionStatus

    from intento.temporal._commands import outcome

    handle = client.get_workflow_handle(run_id)
    desc = await handle.describe()
    if desc.status != WorkflowExecutionStatus.RUNNING:
        print(f"intento: run {run_id} has already finished ({desc.status.name.lower()}); there is nothing to cancel", file=sys.stderr)
        return 1
    # Who asks and why first (the run's audit record names them), then Temporal's own cancel.
    await handle.signal("cancel_reason", {"reason": reason, "by": _who("intento cancel")})
    await handle.cancel(reason=reason)
    try:
        got = await asyncio.wait_for(outcome(handle), wait) if wait > 0 else None
    except asyncio.TimeoutError:
        got = None
    if got is None:
        print(json.dumps({"run": run_id, "status": "cancelling"}) if as_json else f"cancellation of run {run_id} requested; steps in flight are awaited, then completed ones undone")
        return 4
    if as_json:
        print(json.dumps({k: v for k, v in got.items() if k != "events"}, indent=2, default=str))
    else:
        for u in got.get("undo_failed") or []:
            print(f"undo failed: {u['action']} (for {u['for']}): {u['error']}")
        print(f"run {run_id}: {got['status']}" + (f" (undone: {', '.join(got['compensated'])})" if got.get("compensated") else ""))
    return 0 if got["status"] == "cancelled" else 1


# (`_t_policy` is defined further down, with the policy commands: looked up when called.)
_TEMPORAL_COMMANDS = {"status": _t_status, "runs": _t_runs, "observe": _t_observe, "cancel": _t_cancel, "policy": lambda client, **kw: _t_policy(client, **kw)}


def _print_temporal_event(e: dict) -> None:
    detail = " ".join(f"{k}={v}" for k, v in e.items() if k not in ("type", "at"))
    print(f"[{e['at']:>8} ms] {e['type']} {detail}", flush=True)


#: How long `run --engine temporal` waits for its run's first event before it looks whether any
#: worker polls the task queue (seconds).
NO_WORKER_NOTICE_S = 3.0


async def _notice_no_worker(client, task_queue: str, where: str, printed: list[int]) -> None:
    """Say so on stderr, once, when the run has shown nothing after `NO_WORKER_NOTICE_S` and no
    worker polls its task queue (Temporal's own poller list): the run waits there until one does."""
    import asyncio

    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

    await asyncio.sleep(NO_WORKER_NOTICE_S)
    if printed[0]:
        return
    try:
        got = await client.workflow_service.describe_task_queue(DescribeTaskQueueRequest(
            namespace=client.namespace, task_queue=TaskQueue(name=task_queue), task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW))
    except Exception:  # noqa: BLE001 - a notice only: nothing is said when Temporal cannot tell
        return
    if not got.pollers:
        print(f"intento: no worker polls task queue `{task_queue}` on {where}; the run waits there until one does: "
              f"start one with `intento worker PROJECT --task-queue {task_queue}`", file=sys.stderr, flush=True)


async def _temporal_progress(handle, quiet: bool, printed: list[int]) -> None:
    """Live progress of a Temporal run: its new events, read through the `status` query about
    twice a second (a query costs no history event); ``printed[0]`` counts those printed."""
    import asyncio

    from intento.temporal._workflow import IntentRun

    if quiet:
        return
    while True:
        try:
            events = (await handle.query(IntentRun.status))["events"]
        except Exception:  # not started by a worker yet, or ended: the outcome shows the rest
            events = []
        for e in events[printed[0]:]:
            _print_temporal_event(e)
        printed[0] = max(printed[0], len(events))
        await asyncio.sleep(0.5)


def _exit_now(code: int) -> None:
    """Exit without interpreter teardown. The Temporal client's native runtime keeps threads of
    its own that can abort the process while Python finalises ("PyGILState_Release ... must be
    current", temporalio/sdk-python#300), turning an exit code into SIGABRT (134) or SIGSEGV
    (139). Every exit of `intento worker` and `intento run --engine temporal` comes here once
    Temporal may have been touched: the outcome is already on Temporal and printed, and nothing
    is left to clean up."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


@app.command()
def resume(
    paths: List[Path] = typer.Argument(..., help="The project the runs were started with."),
    store: Path = typer.Option(Path("intento.db"), "--store", help="The SQLite store."),
    simulate: Optional[Path] = typer.Option(None, "--simulate", help="The scenario the runs were simulated with."),
    handlers: Optional[str] = typer.Option(None, "--handlers", help="Real handlers: `module:registry` or `module`."),
    journal: Optional[Path] = typer.Option(None, "--journal", help="Simulation: the providers' effect journal (default: STORE.journal.jsonl)."),
    time_limit: float = typer.Option(10.0, "--time-limit", help="Solver time limit per (re-)plan.", min=0.001),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No live progress."),
    switch_margin: Optional[float] = typer.Option(None, "--switch-margin", help=_SWITCH_MARGIN_HELP, min=0.0, max=10.0),
    learn: bool = typer.Option(False, "--learn", help=_LEARN_HELP),
    learn_provider: Optional[List[str]] = typer.Option(None, "--learn-provider", help="With --learn: only these providers' figures (repeatable)."),
) -> None:
    """Drive every unfinished run in the store, all at once, until each has finished or only waits (for an external
    fact, a timer, a hold: nothing in flight); a waiting run is driven on by the next `resume` or by `intento serve`.
    Runs another live engine drives are left to it. Exit 0 when no run it drove escalated, 3 when any did."""
    from intento.execute import Store
    from intento.execute.store import TERMINAL
    from intento.execute.world import World

    spec = _load_spec(paths)
    scenario, registry = _world(spec, simulate, handlers)
    if scenario is None and registry is None:
        print("intento: `intento resume` needs `--simulate SCENARIO.json` or `--handlers module:object`", file=sys.stderr)
        raise typer.Exit(1)
    learning = _checked_learning(spec, learn, learn_provider, 0.9, 20)
    st_store = _open_store(store)
    world = World(spec, store, scenario=scenario, registry=registry, journal=(journal or store.with_name(store.name + ".journal.jsonl")) if scenario is not None else None,
                  time_limit_s=time_limit, progress=_live(quiet, many=True), learning=learning, switch_margin=switch_margin)
    engine = world.engine(Store(store))
    engine.run(until_idle=True)
    world.close()
    ids = engine.adopted
    for rid in ids:
        _print_status(st_store, rid, spec)
    waiting = [rid for rid in ids if (st_store.run(rid) or {}).get("status") not in TERMINAL]
    print(f"resumed {len(ids)} run{'s' * (len(ids) != 1)}" + (f"; {len(waiting)} waiting" if waiting else ""))
    bad = [rid for rid in ids if (st_store.run(rid) or {}).get("status") in ("escalated", "failed")]
    raise typer.Exit(3 if bad else 0)


def _print_status(store, run_id: str, spec=None) -> None:
    from intento.execute.report import store_status

    out.print(store_status(store, run_id, spec))


class ReadFormat(str, Enum):
    text = "text"
    json = "json"


def _open_store(store: Path, create: bool = False):
    """An existing store (or, with ``create``, one made when missing), or exit 1 saying why not
    (never a traceback)."""
    from intento.execute import Store

    if not create and not store.is_file():
        print(f"intento: no store at `{store}`", file=sys.stderr)
        raise typer.Exit(1)
    try:
        return Store(store)
    except Exception as e:
        print(f"intento: cannot open the store `{store}`: {e}", file=sys.stderr)
        raise typer.Exit(1)


@app.command()
def status(
    run_id: Optional[str] = typer.Argument(None, help="A run id (default: the most recent run)."),
    store: Path = typer.Option(Path("intento.db"), "--store", help="The SQLite store."),
    project: Optional[List[Path]] = typer.Option(None, "--project", help="The project, to say which facts a waiting step needs."),
    format: ReadFormat = typer.Option(ReadFormat.text, "--format", "-f", help="text, or json (the run's view: status, deadline left, at risk, stalled, driven, what it waits for)."),
    follow: bool = typer.Option(False, "--follow", help="Then follow the run live, a line per event (with --format json: each event as a JSON line), until it ends or Ctrl-C."),
    engine: str = typer.Option("embedded", "--engine", help="embedded (the SQLite store) or temporal (read and act through Temporal; TLS and API keys from TEMPORAL_* variables)."),
    temporal: Optional[str] = typer.Option(None, "--temporal", help=_TEMPORAL_HELP),
    namespace: Optional[str] = typer.Option(None, "--namespace", help=_NAMESPACE_HELP),
) -> None:
    """Did the work finish, and if not, where did it stall? Steps done/running/waiting, deadline left, latest plan and why,
    and whether a process is driving the run. Times are measured against now (the store's virtual clock for simulated runs)."""
    from intento.execute.report import store_status

    if _engine(engine) == "temporal":
        _temporal_command(_connection(temporal, namespace), "status", run_id=run_id, as_json=format is ReadFormat.json)
    s = _open_store(store)
    runs = s.runs()
    if not runs and run_id is None:
        print("[]" if format is ReadFormat.json else "no runs")
        raise typer.Exit(0)
    rid = run_id or runs[-1]["id"]
    if s.run(rid) is None:
        print(f"intento: no run `{rid}` in `{store}`", file=sys.stderr)
        raise typer.Exit(1)
    if follow:
        _follow(s, rid, format is ReadFormat.json)
        raise typer.Exit(0)
    if format is ReadFormat.json:
        print(json.dumps(store_status(s, rid, as_json=True), indent=2, default=str))
        raise typer.Exit(0)
    spec = _load_spec(project) if project else None
    _print_status(s, rid, spec)


def _follow(store, run_id: str, as_json: bool) -> None:
    """Print a run's events as they are recorded (every event so far first), until it ends."""
    from intento.execute.state import RunState, apply
    from intento.execute.store import TERMINAL

    show = _live(False)
    st = RunState()
    after = 0
    try:
        while True:
            for e in store.events_after(run_id, after):
                after = e["seq"]
                apply(st, e)
                if as_json:
                    print(json.dumps(e, sort_keys=True, default=str), flush=True)
                else:
                    show(e["type"], st, e["data"])
            if st.status in TERMINAL:
                break
            time.sleep(0.2)
    except KeyboardInterrupt:
        raise typer.Exit(130)
    if not as_json:
        _print_status(store, run_id)


class ListStatus(str, Enum):
    running = "running"
    holding = "holding"
    giving_up = "giving_up"
    succeeded = "succeeded"
    escalated = "escalated"
    cancelled = "cancelled"
    failed = "failed"


@app.command()
def runs(
    store: Path = typer.Option(Path("intento.db"), "--store", help="The SQLite store."),
    status_: Optional[ListStatus] = typer.Option(None, "--status", help="Only runs in this state (`holding`: running with no plan until a cool-down ends or an outcome arrives; a run waiting for a fact or a timer is `running`)."),
    intent: Optional[str] = typer.Option(None, "--intent", help="Only runs of this intent."),
    stalled: bool = typer.Option(False, "--stalled", help="Only stalled runs (not driven, or behind their plan)."),
    limit: int = typer.Option(100, "--limit", help="At most this many runs.", min=1, max=100_000),
    format: ReadFormat = typer.Option(ReadFormat.text, "--format", "-f", help="text, or json ({total, runs: [run views], waits: [{waits_on, count, runs}], next_offset})."),
    engine: str = typer.Option("embedded", "--engine", help="embedded (the SQLite store) or temporal (read and act through Temporal; TLS and API keys from TEMPORAL_* variables)."),
    temporal: Optional[str] = typer.Option(None, "--temporal", help=_TEMPORAL_HELP),
    namespace: Optional[str] = typer.Option(None, "--namespace", help=_NAMESPACE_HELP),
) -> None:
    """List runs: escalated and giving up first, then runs nobody drives or stalled, then at risk, then the rest; then how
    many unfinished runs wait where ("40 runs waiting for settlement.received")."""
    from intento.execute.report import list_runs, runs_table

    if _engine(engine) == "temporal":
        _temporal_command(_connection(temporal, namespace), "runs", status=status_.value if status_ else None, intent=intent, limit=limit, as_json=format is ReadFormat.json)
    s = _open_store(store)
    page = list_runs(s, status=status_.value if status_ else None, intent=intent, stalled=True if stalled else None, limit=limit)
    if format is ReadFormat.json:
        print(json.dumps(page, indent=2, default=str))
        raise typer.Exit(0)
    for line in runs_table(s, page["runs"]) or ["no runs"]:
        print(line)
    if page["total"] > len(page["runs"]):
        print(f"... {page['total'] - len(page['runs'])} more (--limit)")
    for w in page["waits"]:
        print(f"{w['count']} run{'s' * (w['count'] != 1)} {w['waits_on']}")


@app.command()
def observe(
    run_id: str = typer.Argument(..., help="The run the observation is for."),
    fact: Optional[str] = typer.Option(None, "--fact", help="A fact observed true (e.g. an external system's)."),
    provider: Optional[str] = typer.Option(None, "--provider", help="A provider whose status was observed."),
    status_: Optional[str] = typer.Option(None, "--status", help="up, degraded or down (with --provider)."),
    latency: Optional[str] = typer.Option(None, "--latency", help="With --status degraded: the observed latency, e.g. 2s."),
    store: Path = typer.Option(Path("intento.db"), "--store", help="The SQLite store."),
    project: Optional[List[Path]] = typer.Option(None, "--project", help="The run's project (repeatable), to refuse providers and facts it does not name."),
    engine: str = typer.Option("embedded", "--engine", help="embedded (the SQLite store) or temporal (read and act through Temporal; TLS and API keys from TEMPORAL_* variables)."),
    temporal: Optional[str] = typer.Option(None, "--temporal", help=_TEMPORAL_HELP),
    namespace: Optional[str] = typer.Option(None, "--namespace", help=_NAMESPACE_HELP),
) -> None:
    """Tell a run what was observed: a fact, or a provider's status. Its executor re-plans.
    Refused (exit 1): an unknown status, a finished run, and with --project an unknown provider or a fact no action achieves."""
    from intento.execute import post
    from intento.execute.observe import validate_observation

    if _engine(engine) == "temporal":
        data = _observation(fact, provider, status_, latency)
        _temporal_command(_connection(temporal, namespace), "observe", run_id=run_id, data=data)
    s = _open_store(store)
    row = s.run(run_id)
    if row is None:
        print(f"intento: no run `{run_id}` in `{store}`", file=sys.stderr)
        raise typer.Exit(1)
    data = _observation(fact, provider, status_, latency)
    spec = _load_spec(project) if project else None
    problem = validate_observation(data, row, spec)
    if problem is not None:
        print(f"intento: {problem.one_line()}", file=sys.stderr)
        raise typer.Exit(1)
    post(s, run_id, data | {"source": "intento observe"})
    print(f"observation queued for run {run_id}")


def _observation(fact: str | None, provider: str | None, status: str | None, latency: str | None) -> dict:
    """`intento observe`'s options as an observation (`--latency` in ms); a latency that is not a
    duration exits 1."""
    from intento.values import parse_duration

    data: dict = {k: v for k, v in (("fact", fact), ("provider", provider), ("status", status)) if v is not None}
    if latency is not None:
        d = parse_duration(latency)
        if d is None:
            print(f"intento: `--latency` must be a duration like 2s, not `{latency}`", file=sys.stderr)
            raise typer.Exit(1)
        data["latency"] = d.ms
    return data


def _need_extra(extra: str, *modules: str) -> None:
    """Exit 1 with one line naming the extra when a module it installs is missing."""
    import importlib.util

    def absent(module: str) -> bool:
        try:
            return importlib.util.find_spec(module) is None
        except (ImportError, ValueError):  # a broken or blocked install counts as missing
            return True

    missing = [m for m in modules if absent(m)]
    if missing:
        print(f"intento: this command needs the `{extra}` extra ({', '.join(missing)} is not installed): pip install 'intento[{extra}]'", file=sys.stderr)
        raise typer.Exit(1)


def _who(via: str) -> str:
    import getpass

    try:
        user = getpass.getuser()
    except Exception:
        user = "unknown"
    return f"{user} ({via})"


@app.command()
def cancel(
    run_id: str = typer.Argument(..., help="The run to cancel."),
    store: Path = typer.Option(Path("intento.db"), "--store", help="The SQLite store."),
    reason: str = typer.Option("no reason given", "--reason", help="Why (recorded in the run's log, its outcome and the audit log)."),
    wait: float = typer.Option(60.0, "--wait", help="Seconds to wait for the run to end cancelled (0: only queue the request).", min=0, max=86_400),
    format: ReadFormat = typer.Option(ReadFormat.text, "--format", "-f", help="text, or json (the run's view once it ended, or as it is when --wait ran out)."),
    engine: str = typer.Option("embedded", "--engine", help="embedded (the SQLite store) or temporal (read and act through Temporal; TLS and API keys from TEMPORAL_* variables)."),
    temporal: Optional[str] = typer.Option(None, "--temporal", help=_TEMPORAL_HELP),
    namespace: Optional[str] = typer.Option(None, "--namespace", help=_NAMESPACE_HELP),
) -> None:
    """Cancel a run: its waits are dropped at once, steps in flight are awaited (or reconciled), completed steps are
    compensated in reverse order, and it ends `cancelled` with the reason and who asked. The engine driving the run
    (`intento serve`, `intento resume`, `intento run`) carries it out; a run nobody drives now is cancelled as soon as
    one does. Exit 0 when the run ended cancelled, 4 when the request is queued but the run has not ended within
    --wait, 1 for an unknown or finished run."""
    from intento.execute import post
    from intento.execute.report import store_status
    from intento.execute.store import TERMINAL, driver_alive

    if len(reason) > 1000:
        print("intento: --reason is at most 1,000 characters", file=sys.stderr)
        raise typer.Exit(1)
    if _engine(engine) == "temporal":
        _temporal_command(_connection(temporal, namespace), "cancel", run_id=run_id, reason=reason, wait=wait, as_json=format is ReadFormat.json)
    s = _open_store(store)
    row = s.run(run_id)
    if row is None:
        print(f"intento: no run `{run_id}` in `{store}`", file=sys.stderr)
        raise typer.Exit(1)
    if row["status"] in TERMINAL:
        print(f"intento: run {run_id} has already finished ({row['status']}); there is nothing to cancel", file=sys.stderr)
        raise typer.Exit(1)
    post(s, run_id, {"cancel": {"reason": reason, "by": _who("intento cancel")}, "source": "intento cancel"})
    end = time.monotonic() + wait
    while time.monotonic() < end and (s.run(run_id) or {}).get("status") not in TERMINAL:
        time.sleep(0.1)
    final = (s.run(run_id) or {}).get("status")
    if format is ReadFormat.json:
        print(json.dumps(store_status(s, run_id, as_json=True), indent=2, default=str))
    elif final == "cancelled":
        _print_status(s, run_id)
    elif final in TERMINAL:
        print(f"intento: run {run_id} ended {final} before the cancellation took effect", file=sys.stderr)
        raise typer.Exit(1)
    else:
        driven = driver_alive(s.driver(run_id))
        print(f"cancellation of run {run_id} queued; " + ("its engine has not finished it yet (steps in flight are awaited, then completed ones undone)" if driven else
              "no engine drives the run now: it is cancelled as soon as one does (`intento serve` or `intento resume`)"))
        raise typer.Exit(4)
    raise typer.Exit(0 if final == "cancelled" else 1 if final in TERMINAL else 4)


@app.command()
def serve(
    paths: List[Path] = typer.Argument(..., help="The project to serve."),
    store: Path = typer.Option(Path("intento.db"), "--store", help="The SQLite store for runs (and STORE.audit.jsonl)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8080, "--port", help="Port to listen on.", min=0, max=65535),
    simulate: Optional[Path] = typer.Option(None, "--simulate", help="Run steps of API-started runs against this simulation scenario."),
    handlers: Optional[str] = typer.Option(None, "--handlers", help="Real handlers for API-started runs: `module:registry` or `module`."),
    client_timeout: float = typer.Option(10.0, "--client-timeout", help="Seconds a client has to send a request's headers, and again its body, before it is cut off.", min=0.1, max=3600),
    no_auth: bool = typer.Option(False, "--no-auth", help="Serve without authentication, on purpose (a loud warning says so either way when INTENTO_TOKEN is not set)."),
    workers: int = typer.Option(16, "--workers", help="Handler threads: how many steps may run at once across all runs (a waiting run needs none).", min=1, max=1024),
    shutdown_grace: float = typer.Option(10.0, "--shutdown-grace", help="On SIGTERM/SIGINT, seconds requests in flight get to finish (streams of events end at once).", min=0, max=86_400),
    log_format: str = typer.Option("text", "--log-format", help="Logs on stderr, a line per run event and per request: text or json."),
    otel: Optional[Path] = typer.Option(None, "--otel", help="OpenTelemetry traces (the `otel` extra): write a span per run, plan and step to this file, a JSON object per line."),
    switch_margin: Optional[float] = typer.Option(None, "--switch-margin", help=_SWITCH_MARGIN_HELP, min=0.0, max=10.0),
    learn: bool = typer.Option(False, "--learn", help=_LEARN_HELP + " For every run the engine drives."),
    learn_provider: Optional[List[str]] = typer.Option(None, "--learn-provider", help="With --learn: only these providers' figures (repeatable)."),
    learn_quantile: float = typer.Option(0.9, "--learn-quantile", help="With --learn: the latency quantile planned with.", min=0.01, max=1.0),
    learn_min_samples: int = typer.Option(20, "--learn-min-samples", help="With --learn: successful steps of an option before its observed latency is used.", min=1),
) -> None:
    """Serve the project over HTTP and drive every unfinished run of the store (the engine; docs/executor.md "The engine"):
    /v1/plan, /v1/explain, /v1/check, /v1/runs (start, list, inspect, events, observe, cancel), /v1/audit, /healthz, /livez,
    /readyz, /metrics (docs/api.md). Set INTENTO_TOKEN to require `Authorization: Bearer <token>`; without it the service
    warns that it serves without authentication. Stops on SIGINT/SIGTERM. Exit 1 on bad input (an empty INTENTO_TOKEN, both
    a token and --no-auth, an unreadable store, a missing `server` extra)."""
    if log_format not in ("text", "json"):
        print("intento: --log-format is `text` or `json`", file=sys.stderr)
        raise typer.Exit(1)
    token = os.environ.get("INTENTO_TOKEN")
    if token is not None and not token.strip():
        print("intento: INTENTO_TOKEN is set but empty, which would turn authentication off; set a token, or unset it and pass --no-auth", file=sys.stderr)
        raise typer.Exit(1)
    if token is not None and no_auth:
        print("intento: both INTENTO_TOKEN and --no-auth are given; choose one", file=sys.stderr)
        raise typer.Exit(1)
    _need_extra("server", "fastapi", "uvicorn", "prometheus_client")
    import uvicorn

    from intento.logs import setup
    from intento.service import create_app

    setup(log_format)
    provider = None
    if otel is not None:
        _need_extra("otel", "opentelemetry.sdk")
        from intento.tracing import file_provider

        provider = file_provider(otel)
    spec = _load_spec(paths)
    scenario, registry = _world(spec, simulate, handlers)
    learning = _checked_learning(spec, learn, learn_provider, learn_quantile, learn_min_samples)
    if token is None:
        how = "(--no-auth)" if no_auth else "(no INTENTO_TOKEN is set; pass --no-auth to say so)"
        print(f"intento: WARNING: serving on {host}:{port} WITHOUT AUTHENTICATION {how}: anyone who can reach it may plan, start runs and read the audit log", file=sys.stderr)
    try:
        app_ = create_app(spec, store, scenario=scenario, registry=registry, token=token if token is not None else "", client_timeout_s=client_timeout, workers=workers, tracer_provider=provider, learning=learning,
                          switch_margin=switch_margin)
    except Exception as e:
        from intento.errors import OperationalError

        if not isinstance(e, OperationalError):
            raise
        print(f"intento: {e}", file=sys.stderr)
        raise typer.Exit(1)
    from intento.service._protocol import bounded_protocol

    # A slow client is cut off: headers within --client-timeout (a connection-level timer), the
    # body within it too (BoundedBody), an idle keep-alive connection after 5 s.
    # On SIGTERM/SIGINT the streams of events (`/v1/runs/{id}/events`, the console's live
    # updates) end at once (`app.state.stopping`), so open browser tabs never hold the shutdown;
    # other requests get --shutdown-grace to finish.
    class _Server(uvicorn.Server):
        def handle_exit(self, sig, frame) -> None:
            app_.state.stopping.set()
            super().handle_exit(sig, frame)

    _Server(uvicorn.Config(app_, host=host, port=port, log_level="warning", timeout_keep_alive=5, http=bounded_protocol(client_timeout),
                           timeout_graceful_shutdown=shutdown_grace)).run()


audit_app = typer.Typer(help="The tamper-evident audit trail: verify, checkpoint, show, replay.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


@audit_app.command("keygen")
def audit_keygen(out: Path = typer.Option(..., "--out", help="Path prefix: writes PREFIX.key (private, mode 0600) and PREFIX.pub.")) -> None:
    """Make an Ed25519 key pair for signing checkpoints. The folder must exist; no key is overwritten."""
    from intento.audit import keygen

    key_path, pub_path = out.with_name(out.name + ".key"), out.with_name(out.name + ".pub")
    folder = key_path.parent
    if not folder.is_dir():
        print(f"intento: cannot write the key pair: folder `{folder}` does not exist; create it first", file=sys.stderr)
        raise typer.Exit(1)
    for existing in (key_path, pub_path):
        if existing.exists() or existing.is_symlink():
            print(f"intento: `{existing}` exists; refusing to overwrite a key (choose another --out)", file=sys.stderr)
            raise typer.Exit(1)
    private, public = keygen()
    written: list[Path] = []
    try:
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        written.append(key_path)
        with os.fdopen(fd, "wb") as fh:
            fh.write(private)
        fd = os.open(pub_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        written.append(pub_path)
        with os.fdopen(fd, "wb") as fh:
            fh.write(public)
    except OSError as e:
        for path in written:  # never leave half a key pair behind
            path.unlink(missing_ok=True)
        print(f"intento: cannot write the key pair in `{folder}`: {e.strerror or e}", file=sys.stderr)
        raise typer.Exit(1)
    print(f"wrote {key_path} (keep it secret) and {pub_path}")


@audit_app.command("checkpoint")
def audit_checkpoint(
    log: Path = typer.Argument(..., help="The audit log."),
    key: Path = typer.Option(..., "--key", help="The Ed25519 private key (PEM)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Where to write the checkpoint (default: stdout). Store it away from the log."),
) -> None:
    """Sign the log's head (sequence number and hash), so truncation and rewrites can be detected later.
    Refused (exit 1, nothing written): a missing or unverifiable log, a key that is not an Ed25519 private key, a missing --out folder."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from intento.audit import AuditError, make_checkpoint

    def fail(message: str) -> None:
        print(f"intento: {message}", file=sys.stderr)
        raise typer.Exit(1)

    if not log.is_file():
        fail(f"no audit log at `{log}`" if not log.exists() else f"`{log}` is not a file")
    if out is not None and not out.parent.is_dir():
        fail(f"cannot write the checkpoint: folder `{out.parent}` does not exist; create it first")
    if not key.is_file():
        fail(f"no key file at `{key}`" if not key.exists() else f"`{key}` is not a file")
    try:
        pem = key.read_bytes()
    except OSError as e:
        fail(f"cannot read the key `{key}`: {e.strerror or e}")
    try:
        private = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        private = None
    if not isinstance(private, Ed25519PrivateKey):
        fail(f"`{key}` is not an unencrypted Ed25519 private key in PEM; make one with `intento audit keygen`")
    try:
        cp = make_checkpoint(log, pem)
    except AuditError as e:
        fail(str(e))
    except OSError as e:
        fail(f"cannot read the log `{log}`: {e.strerror or e}")
    text = json.dumps(cp, indent=2) + "\n"
    if out:
        try:
            _atomic_write(out, text)
        except OSError as e:
            fail(f"cannot write the checkpoint `{out}`: {e.strerror or e}")
        print(f"checkpoint of record {cp['seq']} written to {out}")
    else:
        print(text, end="")


@audit_app.command("verify")
def audit_verify(
    log: Path = typer.Argument(..., help="The audit log."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="A signed checkpoint to check the log against."),
    pubkey: Optional[Path] = typer.Option(None, "--pubkey", help="The public key the checkpoint was signed with."),
) -> None:
    """Recompute the chain; report the first bad record. Exit 0 when the log verifies, 1 otherwise."""
    from intento.audit import verify

    try:
        cp = json.loads(checkpoint.read_text()) if checkpoint else None
        key = pubkey.read_bytes() if pubkey else None
    except (OSError, ValueError) as e:
        print(f"intento: cannot read the checkpoint or key: {e}", file=sys.stderr)
        raise typer.Exit(1)
    v = verify(log, cp, key)
    if v.ok:
        print(f"ok: {v.message}")
        raise typer.Exit(0)
    where = f" (first bad record: {v.first_bad_seq})" if v.first_bad_seq is not None else ""
    print(f"FAILED [{v.problem}]{where}: {v.message}", file=sys.stderr)
    raise typer.Exit(1)


@audit_app.command("show")
def audit_show(
    log: Path = typer.Argument(..., help="The audit log."),
    seq: Optional[int] = typer.Option(None, "--seq", help="Show this record in full: inputs, plan and why."),
) -> None:
    """Human-readable history: what was decided, why, under which policy set."""
    from intento.audit import read_records
    from intento.plan import Plan
    from intento.render import plan_text

    if not log.exists():
        print(f"intento: no such log: {log}", file=sys.stderr)
        raise typer.Exit(1)
    records, torn, _ = read_records(log)
    for rec in records:
        if "__malformed__" in rec:
            print(f"line {rec['__malformed__']}: not a record")
            continue
        if seq is not None and rec.get("seq") != seq:
            continue
        if rec.get("kind") == "cancel":
            c = rec.get("cancelled") or {}
            print(f"#{rec.get('seq')} {rec.get('time')} cancel {rec.get('intent')}: run {rec.get('run')} cancelled by {c.get('by')}: {c.get('reason')}"
                  + (f" (stopping {c['plan']})" if c.get("plan") else "") + f" [project {rec.get('sources', {}).get('project', '')[:12]}]")
            if seq is not None:
                print(f"    context: {json.dumps(rec.get('context'))}")
                print(f"    state: {json.dumps(rec.get('state'))}")
            continue
        plan = rec.get("plan") or {}
        steps = ", ".join(f"{s['action']} via {s['provider']}" for s in plan.get("steps", []))
        policy_set = rec.get("sources", {}).get("policy_set", "")[:12]
        print(f"#{rec.get('seq')} {rec.get('time')} {rec.get('kind')} {rec.get('intent')}: {plan.get('status')}"
              + (f", cost {plan.get('cost')} {plan.get('currency')}, latency {plan.get('latency_ms')}ms" if plan.get("cost") is not None else "")
              + f" [policy set {policy_set}, project {rec.get('sources', {}).get('project', '')[:12]}"
              + (f", version {rec['sources']['label']}" if isinstance(rec.get("sources"), dict) and rec["sources"].get("label") else "") + "]")
        if seq is None:
            if steps:
                print(f"    {steps}")
            continue
        print(f"    context: {json.dumps(rec.get('context'))}")
        print(f"    state: {json.dumps(rec.get('state'))}")
        print(f"    policies applied: {', '.join(rec.get('sources', {}).get('policies', []))}")
        print("    " + plan_text(Plan.model_validate(plan)).replace("\n", "\n    "))
    if torn.strip():
        print(f"(the last line is torn: {len(torn)} bytes of an interrupted write)")


@audit_app.command("replay")
def audit_replay(
    log: Path = typer.Argument(..., help="The audit log."),
    project: List[Path] = typer.Argument(..., help="The project to re-solve with (the same sources, or changed ones)."),
    store: Optional[Path] = typer.Option(None, "--store", help="Re-solve each decision against the exact texts of the version that made it, kept in this store (the project is used for a version it does not keep)."),
    policies: Optional[Path] = typer.Option(None, "--policies", help="The project's policies replaced by this set, as the Temporal worker that wrote the log was started (`intento worker --policies`)."),
) -> None:
    """Re-solve every recorded decision; report those that come out differently. Exit 1 if any does."""
    from intento.audit import read_records, replay

    spec = _project_spec(project, policies)
    spec_for = None
    if store is not None:
        from intento.diagnostics import IntentoError
        from intento.versions import spec_from_kept

        kept_store = _open_store(store)
        cache: dict = {}

        def spec_for(version: str):
            if version not in cache:
                kept = kept_store.version(version)
                try:
                    cache[version] = spec_from_kept(kept["sources"]) if kept else None
                except IntentoError:
                    cache[version] = None
            return cache[version]
    if not log.is_file():
        print(f"intento: no audit log at `{log}`", file=sys.stderr)
        raise typer.Exit(1)
    try:
        records, torn, bad = read_records(log)
    except OSError as e:
        print(f"intento: cannot read `{log}`: {e.strerror or e}", file=sys.stderr)
        raise typer.Exit(1)
    readable = [r for r in records if "__malformed__" not in r and isinstance(r.get("seq"), int) and isinstance(r.get("intent"), str) and r.get("kind") != "cancel"]
    if not readable:
        what = "is empty" if not records and not torn.strip() else "holds no audit record"
        print(f"intento: `{log}` {what}: nothing to replay", file=sys.stderr)
        raise typer.Exit(1)
    for line, problem in bad:
        print(f"line {line}: not a record ({problem}); skipped", file=sys.stderr)
    fingerprints = {(r.get("sources") or {}).get("project") for r in readable}
    results = replay(log, spec, spec_for=spec_for)
    changed = [r for r in results if not r.same]
    for r in results:
        if not r.same:
            note = "" if r.replayable else " (a `when` guard reads a secret, whose value the log does not keep)"
            print(f"#{r.seq} differs{note}: " + "; ".join(r.differences))
    same_sources = fingerprints == {spec.fingerprint} or (spec_for is not None and all(spec_for(f) is not None for f in fingerprints if f))
    print(f"{len(results) - len(changed)} of {len(results)} decisions replay identically" + (" (same sources)" if same_sources else " (sources changed)"))
    raise typer.Exit(1 if changed else 0)


policy_app = typer.Typer(help="Work on policy sets: see a change's effect before it ships.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")


def _load_cases(path: Path) -> list[dict]:
    """Cases: a JSON list of {intent, given, state}, or an audit log whose records are replayed.

    Every line of a log becomes a case, so nothing is skipped silently: a line that is not a
    decision record is a case with an ``error`` (it cannot be planned); a torn last line (an
    interrupted write, never a decision) is a case with a ``note``. Unknown keys of a record
    (`run`, `reason`, `inputs`, ...) are ignored: the request is its intent, context and state."""
    from decimal import Decimal

    text = path.read_text(encoding="utf-8", errors="replace")
    if text.lstrip().startswith("["):
        data = json.loads(text, parse_float=Decimal)
        cases = []
        for i, item in enumerate(data, start=1):
            if not isinstance(item, dict) or not isinstance(item.get("intent"), str):
                cases.append({"label": f"case {i}", "error": "not an object with an `intent` name"})
                continue
            label = item.get("label") or item.get("name") or f"case {i}"
            cases.append({"label": str(label), "intent": item["intent"], "given": item.get("given"), "state": item.get("state")})
        return cases
    if text.strip() and not text.lstrip().startswith("{"):
        raise ValueError("cases must be a JSON list of {intent, given, state}, or an audit log (JSON Lines)")
    from intento.audit import read_records

    recs, torn, bad = read_records(path)
    why_bad = dict(bad)
    cases = []
    for line, r in enumerate(recs, start=1):
        if "__malformed__" in r:
            cases.append({"label": f"line {line}", "error": f"not a JSON record ({why_bad.get(line, 'unreadable')})"})
            continue
        seq = r.get("seq")
        label = f"record {seq}" if isinstance(seq, int) and not isinstance(seq, bool) else f"line {line}"
        if r.get("kind") == "cancel":
            continue  # a run's cancellation: no request was planned there
        if r.get("kind") == "replan" and isinstance(r.get("run"), str):
            label += f", a re-plan of run {r['run']}"
        context, state = r.get("context", {}), r.get("state") or {}
        if not isinstance(r.get("intent"), str) or not isinstance(context, dict) or not isinstance(state, dict):
            cases.append({"label": label, "error": "not a decision record (it needs `intent`, `context` and `state`)"})
            continue
        cases.append({"label": label, "intent": r["intent"], "given": context, "state": state, "from_log": True})
    if torn.strip():
        cases.append({"label": f"line {len(recs) + 1}", "note": f"the last line is torn ({len(torn)} bytes of an interrupted write, never a decision): skipped"})
    return cases


def _compare_cases(old_spec, new_spec, items: list[dict]) -> tuple[int, int, int, int]:
    """Plan every case under both Specs and print a line per case: unchanged, or how it changes
    (status, providers, cost, latency, why the new set finds no plan). Returns (changed, failed, planned, no longer feasible)."""
    from decimal import Decimal

    from intento.audit import given_for_replay
    from intento.diagnostics import IntentoError
    from intento.execute.executor import step_moves
    from intento.solve import plan as make_plan

    def given_for(spec, case) -> tuple[dict | None, str | None]:
        """A logged secret keeps only its keyed hash: a placeholder of its type plans the same,
        unless a `when` guard reads it (then the case cannot be planned faithfully)."""
        given = case.get("given")
        if not isinstance(given, dict) or case["intent"] not in spec.intents:
            return given, None
        return given_for_replay(spec, case["intent"], given)

    changed = failed = planned = lost = 0
    for case in items:
        label = case["label"]
        if "note" in case:
            print(f"{label}: {case['note']}")
            continue
        problem = case.get("error")
        if problem is None:
            (given_a, why_a), (given_b, why_b) = given_for(old_spec, case), given_for(new_spec, case)
            problem = why_a or why_b
        if problem is None:
            try:
                a = make_plan(old_spec, case["intent"], given_a, case.get("state"))
                b = make_plan(new_spec, case["intent"], given_b, case.get("state"))
            except IntentoError as e:
                problem = "; ".join(d.message for d in e.diagnostics[:3]) + (f" (and {len(e.diagnostics) - 3} more)" if len(e.diagnostics) > 3 else "")
        if problem is not None:
            failed += 1
            print(f"{label}: cannot plan: {problem}")
            continue
        planned += 1
        lost += a.feasible and not b.feasible
        diffs = []
        if a.status != b.status:
            diffs.append(f"{a.status} -> {b.status}")
        diffs += step_moves({s.action: s.provider for s in a.steps}, {s.action: s.provider for s in b.steps})
        if a.feasible and b.feasible:
            dc = Decimal(b.cost) - Decimal(a.cost)
            dl = b.latency_ms - a.latency_ms
            if dc:
                diffs.append(f"cost {'+' if dc > 0 else ''}{format(dc.normalize(), 'f')} {b.currency}")
            if dl:
                diffs.append(f"latency {'+' if dl > 0 else ''}{dl}ms")
        if not b.feasible and b.explanation.summary and (a.feasible or a.explanation.summary != b.explanation.summary):
            # why the new set finds no plan; the same reason under both sets is no change
            diffs.append(b.explanation.summary)
        if diffs:
            changed += 1
            print(f"{label} ({case['intent']}): " + "; ".join(diffs))
        else:
            print(f"{label} ({case['intent']}): unchanged")
    return changed, failed, planned, lost


@policy_app.command("diff")
def policy_diff(
    old: Path = typer.Argument(..., help="The current policy set: a file or folder of `.intent` policies."),
    new: Path = typer.Argument(..., help="The proposed policy set."),
    cases: Path = typer.Option(..., "--cases", help="Requests to compare: a JSON list of {intent, given, state}, or an audit log (.jsonl)."),
    with_: List[Path] = typer.Option(..., "--with", help="The rest of the project (providers, actions, intents); repeatable."),
    fail_on_change: bool = typer.Option(False, "--fail-on-change", help="Exit 1 when any plan changes, any case cannot be planned, or there is no case (for CI gates)."),
) -> None:
    """Which plans change between two policy sets, and how (status, providers, cost, latency)."""
    old_spec = _load_spec([*with_, old])
    new_spec = _load_spec([*with_, new])
    try:
        items = _load_cases(cases)
    except (OSError, ValueError, RecursionError) as e:
        print(f"intento: cannot read the cases `{cases}`: {getattr(e, 'strerror', None) or e}", file=sys.stderr)
        raise typer.Exit(1)

    changed, failed, planned, _ = _compare_cases(old_spec, new_spec, items)
    total = planned + failed
    print(f"\n{changed} of {planned} plans change" + (f"; {failed} of {total} cases cannot be planned" if failed else ""))
    if total == 0:
        print(f"intento: `{cases}` holds no case to compare", file=sys.stderr)
    raise typer.Exit(1 if fail_on_change and (changed or failed or total == 0) else 0)


def _policy_set_or_exit(path: Path) -> list[dict]:
    from intento.diagnostics import IntentoError
    from intento.versions import load_policy_set

    try:
        return load_policy_set(path)
    except IntentoError as e:
        print_diagnostics(e.diagnostics)
        raise typer.Exit(1)


@policy_app.command("impact")
def policy_impact(
    new: Path = typer.Argument(..., help="The proposed policy set: a file or folder of `.intent` policies (and their tests)."),
    store: Path = typer.Option(Path("intento.db"), "--store", help="The SQLite store whose unfinished runs are judged."),
    format: ReadFormat = typer.Option(ReadFormat.text, "--format", "-f", help="text, or json (the whole report)."),
    time_limit: float = typer.Option(10.0, "--time-limit", help="Seconds per solve.", min=0.01),
    cases: Optional[Path] = typer.Option(None, "--cases", help="Also judge new runs: requests (a JSON list of {intent, given, state}, or an audit log such as STORE.audit.jsonl) planned under the project of the store's latest version with its policies and with the new set, as `intento policy diff` does."),
    engine: str = typer.Option("embedded", "--engine", help=_ENGINE_POLICY_HELP),
    project: Optional[List[Path]] = typer.Option(None, "--project", help=_PROJECT_HELP),
    current_policies: Optional[Path] = typer.Option(None, "--current-policies", help=_CURRENT_POLICIES_HELP),
    temporal: Optional[str] = typer.Option(None, "--temporal", help=_TEMPORAL_HELP),
    namespace: Optional[str] = typer.Option(None, "--namespace", help=_NAMESPACE_HELP),
    task_queue: Optional[str] = typer.Option(None, "--task-queue", help=_POLICY_QUEUE_HELP),
) -> None:
    """What the policy set would do to every unfinished run: its remaining plan under its own version and under the new
    set (unchanged, changed with the cost and latency deltas and the steps that move, or infeasible with the minimal
    conflict). Exit 1 when any run would have no plan, or cannot be judged (for CI); 0 otherwise. With --engine temporal:
    the unfinished runs on Temporal, judged under --project (as the current workers load it) and under it with the new set."""
    from intento.execute.rollout import describe, impact

    if _engine(engine) == "temporal":
        if cases is not None:
            print("intento: --cases judges new runs under a store's kept version; with --engine temporal, judge them with "
                  "`intento policy diff OLD NEW --with PROJECT... --cases CASES`", file=sys.stderr)
            raise typer.Exit(1)
        _policy_on_temporal(new, project, current_policies, _connection(temporal, namespace), task_queue, None, None, None, store, time_limit, format is ReadFormat.json)
    policies = _policy_set_or_exit(new)
    st = _open_store(store)
    try:
        report = impact(st, policies, time_limit_s=time_limit)
    finally:
        st.close()
    if format is ReadFormat.json:
        if cases is not None:
            with contextlib.redirect_stdout(sys.stderr):  # each case's line, beside the JSON
                report["cases"] = _impact_on_cases(store, policies, cases)
        print(json.dumps(report, indent=2, default=str))
    else:
        for row in report["runs"]:
            print(describe(row))
        print("\n" + _impact_counts(report))
        if cases is not None:
            report["cases"] = _impact_on_cases(store, policies, cases)
    broken = (report.get("cases") or {}).get("breaks", 0)
    raise typer.Exit(1 if report["breaks"] or broken else 0)


def _impact_counts(report: dict) -> str:
    """The last line of an impact report (either engine's)."""
    c = report["counts"]
    return (f"{len(report['runs'])} unfinished runs: {c['unchanged']} unchanged, {c['changed']} changed, {c['infeasible']} no longer feasible"
            + (f", {c['unknown']} cannot be judged" if c["unknown"] else ""))


def _impact_on_cases(store: Path, policies: list[dict], cases: Path) -> dict:
    """`policy impact --cases`, for new runs: each case under the project of the store's latest
    version with its own policies and with the new set (printed a line per case, as `policy diff`).
    ``breaks``: cases that cannot be planned or would be feasible no longer."""
    from intento.diagnostics import IntentoError
    from intento.versions import spec_from_kept, with_policy_set

    st = _open_store(store)
    try:
        latest = st.versions()
        kept = st.version(latest[-1]["version"]) if latest else None
    finally:
        st.close()
    if kept is None:
        print(f"intento: `{store}` keeps no version to judge new runs by (no run has started on it)", file=sys.stderr)
        return {"error": "no version kept", "breaks": 1}
    try:
        old_spec = spec_from_kept(kept["sources"])
        new_spec = with_policy_set(old_spec, policies)
        items = _load_cases(cases)
    except IntentoError as e:
        print_diagnostics(e.diagnostics)
        return {"error": "; ".join(d.message for d in e.diagnostics[:3]), "breaks": 1}
    except (OSError, ValueError, RecursionError) as e:
        print(f"intento: cannot read the cases `{cases}`: {getattr(e, 'strerror', None) or e}", file=sys.stderr)
        return {"error": f"cannot read the cases: {getattr(e, 'strerror', None) or e}", "breaks": 1}
    print(f"\nnew runs (cases from {cases}, on the project of version {kept['version'][:12]}):")
    changed, failed, planned, lost = _compare_cases(old_spec, new_spec, items)
    print(f"\n{changed} of {planned} plans change" + (f", {lost} no longer feasible" if lost else "") + (f"; {failed} cases cannot be planned" if failed else ""))
    return {"version": kept["version"], "planned": planned, "changed": changed, "no_longer_feasible": lost, "cannot_plan": failed, "breaks": lost + failed}


class RolloutMode(str, Enum):
    new_runs = "new-runs"
    migrate = "migrate"
    migrate_if_feasible = "migrate-if-feasible"


@policy_app.command("rollout")
def policy_rollout(
    new: Path = typer.Argument(..., help="The policy set to roll out: a file or folder of `.intent` policies. A rollback is a rollout of the previous set."),
    store: Path = typer.Option(Path("intento.db"), "--store", help="The SQLite store."),
    mode: RolloutMode = typer.Option(..., "--mode", help="new-runs: only runs started from now on; migrate: every unfinished run switches at its next decision point (those with no plan escalate); migrate-if-feasible: those with no plan stay on their version."),
    label: Optional[str] = typer.Option(None, "--label", help="A name for the version (shown beside its hash)."),
    by: Optional[str] = typer.Option(None, "--by", help="Who rolls it out (recorded)."),
    format: ReadFormat = typer.Option(ReadFormat.text, "--format", "-f", help="text, or json."),
    time_limit: float = typer.Option(10.0, "--time-limit", help="Seconds per solve of the impact.", min=0.01),
    engine: str = typer.Option("embedded", "--engine", help=_ENGINE_POLICY_HELP),
    project: Optional[List[Path]] = typer.Option(None, "--project", help=_PROJECT_HELP),
    current_policies: Optional[Path] = typer.Option(None, "--current-policies", help=_CURRENT_POLICIES_HELP),
    temporal: Optional[str] = typer.Option(None, "--temporal", help=_TEMPORAL_HELP),
    namespace: Optional[str] = typer.Option(None, "--namespace", help=_NAMESPACE_HELP),
    task_queue: Optional[str] = typer.Option(None, "--task-queue", help=_POLICY_QUEUE_HELP),
) -> None:
    """Roll a policy set out on a store: new runs start on it, and unfinished runs migrate as the mode says, each at its
    next decision point (at once in a running engine; when resumed otherwise), recording `policy_migrated` or
    `policy_kept`. Prints what each run will do. Exit 0 once recorded, 1 on bad input. With --engine temporal: the runs
    on Temporal migrate to the version of --project with this set (start its workers with `intento worker --policies`),
    through the runs' `migrate` update; exit 0 once every migration was sent."""
    from intento.execute.rollout import describe, rollout

    if _engine(engine) == "temporal":
        _policy_on_temporal(new, project, current_policies, _connection(temporal, namespace), task_queue, mode.value, label, by or os.environ.get("USER"), store, time_limit, format is ReadFormat.json)
    policies = _policy_set_or_exit(new)
    st = _open_store(store)
    try:
        seq, report = rollout(st, policies, mode.value, label, by or os.environ.get("USER"), time_limit)
    finally:
        st.close()
    if format is ReadFormat.json:
        print(json.dumps({"rollout": seq, "mode": mode.value, "label": label} | report, indent=2, default=str))
        return
    print(f"rollout {seq} recorded ({mode.value}{', ' + label if label else ''}): new runs start on this policy set")
    for row in report["runs"]:
        print(f"{row['outcome']:<9} {describe(row)}")


def _policy_on_temporal(new: Path, project, current_policies, conn, task_queue, mode, label, by, store: Path, time_limit: float, as_json: bool) -> None:
    """`policy impact` (``mode`` None) and `policy rollout` with `--engine temporal`. Never
    returns: impact exits 1 when a run would break (as on the embedded engine); rollout 0 once
    every migration was sent; 1 on bad input or Temporal unreachable."""
    if not project:
        print("intento: with --engine temporal, name the project as its current workers load it: --project PATH (repeatable)", file=sys.stderr)
        raise typer.Exit(1)
    if task_queue is not None and (not task_queue.strip() or any(c in task_queue for c in "'\"\\")):
        print(f"intento: --task-queue {task_queue!r}: a task queue name has no quotes or backslashes", file=sys.stderr)
        raise typer.Exit(1)
    current = _project_spec(project, current_policies)
    newer = _project_spec(project, new)
    from intento.audit import existing_secret_key

    # The key that opens the runs' sealed secret givens, as the workers find it (never made here).
    key = existing_secret_key(store.with_name(store.name + ".audit.jsonl"))
    _temporal_command(conn, "policy", current=current, new=newer, mode=mode, label=label, by=by, task_queue=task_queue, time_limit=time_limit, secret_key=key, as_json=as_json)


async def _t_policy(client, current, new, mode, label, by, task_queue, time_limit, secret_key, as_json) -> int:
    from intento.execute.rollout import describe
    from intento.temporal._rollout import impact_runs, rollout_runs
    from intento.versions import short

    if mode is None:
        got = await impact_runs(client, current, new, secret_key=secret_key, task_queue=task_queue, time_limit_s=time_limit)
    else:
        got = await rollout_runs(client, current, new, mode, secret_key=secret_key, label=label, by=by, task_queue=task_queue, time_limit_s=time_limit)
    head = {"engine": "temporal", "current_version": current.fingerprint, "new_version": new.fingerprint, "label": label} | ({"mode": mode} if mode else {})
    if as_json:
        print(json.dumps(head | got, indent=2, default=str))
    else:
        if mode is not None:
            then = ("no run migrates" if mode == "new-runs" else
                    "migrations sent to the runs below marked migrates or escalates, each switching at its next decision point on the new version's workers")
            print(f"rollout ({mode}{', ' + label if label else ''}) from {short(current.fingerprint)} to {short(new.fingerprint, label)}: "
                  f"new runs go to it when started with the same project and --policies; {then}")
        for row in got["runs"]:
            print((f"{row['outcome']:<9} " if mode is not None else "") + describe(row) + (f" (refused: {row['refused']})" if row.get("refused") else ""))
        print("\n" + _impact_counts(got))
    if mode is None:
        return 1 if got["breaks"] else 0
    return 0


@policy_app.command("rollouts")
def policy_rollouts(
    store: Path = typer.Option(Path("intento.db"), "--store", help="The SQLite store."),
    format: ReadFormat = typer.Option(ReadFormat.text, "--format", "-f", help="text, or json."),
) -> None:
    """Every policy rollout of a store, oldest first, with what it said each run would do. Exit 1 on a missing store."""
    st = _open_store(store)
    try:
        rows = st.rollouts()
        versions = st.versions()
    finally:
        st.close()
    if format is ReadFormat.json:
        print(json.dumps({"rollouts": rows, "versions": versions}, indent=2, default=str))
        return
    if not rows:
        print("no policy rollout on this store: runs start on the sources their engine was started with")
    for r in rows:
        outcomes = [x.get("outcome") for x in r["report"].get("runs", [])]
        print(f"#{r['seq']} {_when(r['at'])} {r['mode']}{' ' + r['label'] if r['label'] else ''} (policy set {r['policy_set'][:12]}, by {r['by'] or '-'}): "
              + ", ".join(f"{outcomes.count(k)} {k}" for k in ("migrates", "stays", "escalates")))


def _when(ms: int) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


class SchemaName(str, Enum):
    plan = "plan"
    state = "state"
    diagnostic = "diagnostic"


@app.command()
def providers(
    paths: List[Path] = typer.Argument(..., help="The project the runs were started with."),
    store: Path = typer.Option(Path("intento.db"), "--store", help="The SQLite store whose runs' steps are read."),
    format: ReadFormat = typer.Option(ReadFormat.text, "--format", "-f", help="text, or json (a row per option: declared, observed and the figures `--learn` would plan with)."),
    learn_quantile: float = typer.Option(0.9, "--learn-quantile", help="The latency quantile shown as learned.", min=0.01, max=1.0),
    learn_min_samples: int = typer.Option(20, "--learn-min-samples", help="Successful steps before an observed latency is used.", min=1),
) -> None:
    """Declared against observed, per provider and action: steps seen, success rate, failures and timeouts, the
    median and the quantile of the latency, and the figures `intento run --learn` would plan with. Exit 1 on a
    missing store."""
    from intento.learn import Learning, figures, quantile

    spec = _load_spec(paths)
    st = _open_store(store)
    try:
        stats = st.step_stats()
    finally:
        st.close()
    learned = figures(spec, stats, Learning(quantile=learn_quantile, min_samples=learn_min_samples))
    rows = []
    for a in spec.actions.values():
        for o in a.options:
            s = stats.get((a.name, o.provider))
            lat = sorted(s["latencies"]) if s else []
            q = lambda f: quantile(lat, f) if lat else None  # noqa: E731
            rows.append({
                "provider": o.provider, "action": a.name,
                "declared": {"latency_ms": o.latency_ms, "reliability": str(o.reliability)},
                "observed": None if not s else {"steps": s["total"], "succeeded": s["succeeded"], "failed": s["failed"], "timed_out": s["timed_out"],
                                                 "success_rate": round(s["succeeded"] / s["total"], 4), "p50_ms": q(0.5), f"p{round(learn_quantile * 100)}_ms": q(learn_quantile)},
                "learned": learned.get(f"{a.name}|{o.provider}"),
            })
    if format is ReadFormat.json:
        print(json.dumps({"store": str(store), "rows": rows}, indent=2))
        return
    from intento.render import _dur

    for r in sorted(rows, key=lambda r: (r["provider"], r["action"])):
        d, ob = r["declared"], r["observed"]
        line = f"{r['provider']:<14} {r['action']:<22} declared {_dur(d['latency_ms']):>9} r {d['reliability']:<7}"
        if ob is None:
            line += "  not observed"
        else:
            pk = next(k for k in ob if k.startswith("p") and k != "p50_ms")
            line += (f"  observed {ob['steps']} steps, {ob['success_rate']:.1%} ok ({ob['failed']} failed, {ob['timed_out']} timed out)"
                     + (f", p50 {_dur(ob['p50_ms'])}, {pk[:-3]} {_dur(ob[pk])}" if ob["p50_ms"] is not None else ""))
        print(line)


@app.command()
def schema(name: SchemaName = typer.Argument(..., help="plan, state or diagnostic.")) -> None:
    """Print the JSON schema of a model intento reads or writes (also committed under docs/schema/)."""
    from intento.diagnostics import DiagnosticModel
    from intento.plan import Plan
    from intento.request import State

    model = {"plan": Plan, "state": State, "diagnostic": DiagnosticModel}[name.value]
    print(json.dumps(model.model_json_schema(), indent=2, sort_keys=True))


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


def entry_point() -> None:
    """The console script's entry point (`intento`, `python -m intento`): `run`, then a quick
    exit (`_exit`). It never returns."""
    try:
        run()
    except SystemExit as e:
        _exit(e.code)
    _exit(0)


def _exit(code: object) -> None:
    """End the process once the command is over, without the interpreter's teardown of every
    module it imported (about a tenth of a second for a process that planned: the solver's and
    pydantic's modules; docs/benchmarks.md, "Start-up").

    What an ordinary exit does for the outside world still happens: the functions registered
    with `atexit` run (logging's and tracing's flushes, `weakref.finalize` clean-ups), then the
    standard streams are flushed. Only the freeing of memory the process is about to give back
    is skipped. When any other thread is alive (a server's, a worker's), or with
    ``INTENTO_SLOW_EXIT=1``, the process exits as usual, waiting for those threads."""
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)  # what the interpreter does with `sys.exit("message")`
        code = 1
    import threading

    if threading.active_count() > 1 or os.environ.get("INTENTO_SLOW_EXIT", "") not in ("", "0"):
        sys.exit(code)
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`intento runs | head -1`) or stream
            pass
    os._exit(code)


def run() -> None:
    """typer's app with a last-resort guard against tracebacks; ends with `SystemExit`."""
    try:
        app()
    except SystemExit:
        raise
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as e:  # pragma: no cover - a bug; keep the user's terminal clean
        from intento.errors import OperationalError

        if isinstance(e, OperationalError):
            # A store or audit log that cannot be read or written (a full disk, a read-only or
            # corrupted file), named with the cause; nothing already recorded is lost.
            print(f"intento: {e}", file=sys.stderr)
            sys.exit(1)
        if os.environ.get("INTENTO_DEBUG"):
            raise
        print(f"intento: internal error: {type(e).__name__}: {e} (set INTENTO_DEBUG=1 for details; please report it)", file=sys.stderr)
        sys.exit(70)


if __name__ == "__main__":  # pragma: no cover
    entry_point()
