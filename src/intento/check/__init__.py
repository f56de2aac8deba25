"""The checker: parsed files to a checked `Spec`.

Input: paths (files, or folders read recursively for ``*.intent``) or `Source`s. Output: a `Spec`
and every diagnostic of the project, sorted by position. The work is a table of named stages
(`STAGES`), each timed, each adding diagnostics; a later stage reads what earlier ones resolved.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from intento._gc import paused_gc
from intento.check._declarations import (
    check_fact_formula,
    check_predicate,
    collect_declarations,
    fact_names,
    resolve_actions,
    resolve_intents,
    resolve_policies,
    resolve_providers,
)
from intento.check._guards import check_guards
from intento.check._load import MAX_FILES, load_sources, read_source
from intento.check._state import MAX_DECLARATIONS, _Checker
from intento.check._tests import check_facts, resolve_tests
from intento.diagnostics import Diagnostic, DiagnosticList, Source, sorted_capped, tally
from intento.spec import Spec
from intento.syntax import ast, parse

__all__ = [
    "Result",
    "STAGES",
    "check_paths",
    "check_sources",
    "load_sources",
    "read_source",
    "check_fact_formula",
    "check_predicate",
    "fact_names",
    "MAX_DECLARATIONS",
    "MAX_FILES",
]

# ---------------------------------------------------------------------------------------------
# The checker


@dataclass
class Result:
    """What `check` returns: the Spec (None when there are errors) and every diagnostic."""

    spec: Spec | None
    diagnostics: list[Diagnostic]
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def errors(self) -> list[Diagnostic]:
        """The errors shown (a `DiagnosticList`: its ``total_errors`` counts those past the cap too)."""
        if isinstance(self.diagnostics, DiagnosticList):
            return self.diagnostics.errors()
        return [d for d in self.diagnostics if d.is_error]

    @property
    def error_count(self) -> int:
        """Errors found, also those past the cap of `MAX_DIAGNOSTICS`."""
        return tally(self.diagnostics)[0]

    @property
    def warning_count(self) -> int:
        """Warnings found, also those past the cap of `MAX_DIAGNOSTICS`."""
        return tally(self.diagnostics)[1]

    @property
    def truncated(self) -> bool:
        """Whether more diagnostics were found than `diagnostics` holds."""
        return sum(tally(self.diagnostics)) > len(self.diagnostics)

    @property
    def ok(self) -> bool:
        return self.spec is not None


def check_paths(paths: Iterable[str | Path]) -> Result:
    sources, load_diags = load_sources(paths)
    if load_diags and not sources:
        return Result(None, sorted_capped(load_diags))
    spec, diags, timings = _check(sources)
    if load_diags:
        everything = DiagnosticList(load_diags)
        everything.merge(diags)
        return Result(None, sorted_capped(everything), timings)
    return Result(spec, sorted_capped(diags), timings)


def check_sources(sources: list[Source]) -> Result:
    spec, diags, timings = _check(sources)
    return Result(spec, sorted_capped(diags), timings)


def _check(sources: list[Source]) -> tuple[Spec | None, list[Diagnostic], dict[str, float]]:
    """Every stage over ``sources``: the Spec (None when there is an error) and every diagnostic
    found, not yet capped (the cap is applied once, where the result is made)."""
    with paused_gc():  # the stages build many objects and free few: see intento._gc
        return _check_stages(sources)


def _check_stages(sources: list[Source]) -> tuple[Spec | None, list[Diagnostic], dict[str, float]]:
    files: list[ast.File] = []
    diags = DiagnosticList()  # a parse keeps only its first errors, and counts the rest
    t0 = time.perf_counter()
    for src in sources:
        f, d = parse(src)
        diags.merge(d)
        if f is not None:
            files.append(f)
    timings = {"parse": time.perf_counter() - t0}
    if diags:
        return None, diags, timings
    checker = _Checker(sources, files)
    for name, stage in STAGES:
        t = time.perf_counter()
        stage(checker)
        timings[name] = time.perf_counter() - t
        if checker.fatal:
            break
    t = time.perf_counter()
    checker.resolve_hints()  # INVARIANT: after this, every help is a str
    timings["resolve_hints"] = time.perf_counter() - t
    # Decided on every diagnostic, not the capped ones: an error past the cap still fails.
    if any(d.is_error for d in checker.diags):
        return None, checker.diags, timings
    return checker.build(), checker.diags, timings


STAGES: list[tuple[str, Callable[[_Checker], None]]] = [
    ("collect_declarations", collect_declarations),
    ("resolve_providers", resolve_providers),
    ("resolve_actions", resolve_actions),
    ("resolve_intents", resolve_intents),
    ("resolve_policies", resolve_policies),
    ("check_guards", check_guards),
    ("check_facts", check_facts),
    ("resolve_tests", resolve_tests),
]
