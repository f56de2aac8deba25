"""The checker: parsed files to a checked `Spec`.

Input: paths (files, or folders read recursively for ``*.intent``) or `Source`s. Output: a `Spec`
and every diagnostic of the project, sorted by position. The work is a table of named stages
(`STAGES`), each timed, each adding diagnostics; a later stage reads what earlier ones resolved.
"""

from __future__ import annotations

import re
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
from intento.syntax import ast, recover

__all__ = [
    "Result",
    "STAGES",
    "check_paths",
    "check_loaded",
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
    return check_loaded(sources, load_diags)


def check_loaded(sources: list[Source], load_diags: list[Diagnostic]) -> Result:
    """`check_sources` of what `load_sources` read, its diagnostics (unreadable files) included."""
    if load_diags and not sources:
        return Result(None, sorted_capped(load_diags))
    spec, diags, timings = _check(sources)
    if load_diags:
        everything = DiagnosticList(load_diags)
        everything.merge(diags)
        return Result(None, sorted_capped(everything), timings)
    return Result(spec, sorted_capped(diags), timings)


def check_sources(sources: list[Source], *, cache_new: bool = True) -> Result:
    """The check of ``sources``; ``cache_new=False`` adds no parse to the project cache (see
    `intento.syntax.parse`)."""
    spec, diags, timings = _check(sources, cache_new)
    return Result(spec, sorted_capped(diags), timings)


def _check(sources: list[Source], cache_new: bool = True) -> tuple[Spec | None, list[Diagnostic], dict[str, float]]:
    """Every stage over ``sources``: the Spec (None when there is an error) and every diagnostic
    found, not yet capped (the cap is applied once, where the result is made)."""
    with paused_gc():  # the stages build many objects and free few: see intento._gc
        return _check_stages(sources, cache_new)


def _check_stages(sources: list[Source], cache_new: bool = True) -> tuple[Spec | None, list[Diagnostic], dict[str, float]]:
    files: list[ast.File] = []
    diags = DiagnosticList()  # a parse keeps only its first errors, and counts the rest
    broken: dict[str, tuple[tuple[int, int], ...]] = {}
    broken_names: set[str] = set()
    broken_words: set[str] = set()
    t0 = time.perf_counter()
    for src in sources:
        r = recover(src, cache_new=cache_new)  # every declaration that parses, and every syntax error
        diags.merge(r.diagnostics)
        files.append(r.file)
        if r.broken:
            broken[src.name] = r.broken
            broken_names |= r.broken_names
            broken_words |= r.broken_words
    timings = {"parse": time.perf_counter() - t0}
    if diags and not any(f.decls for f in files):
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
    if diags:
        # A syntax error: the declarations that parsed were checked too. What the checker says
        # inside a broken part may only echo the break, and so may an error about a name that
        # part declares (it looks undeclared) or a warning about one it mentions (it looks
        # unused): those are left out until the file parses.
        diags.merge([d for d in checker.diags if not _echo(d, broken, broken_names if d.is_error else broken_words)])
        return None, diags, timings
    # Decided on every diagnostic, not the capped ones: an error past the cap still fails.
    if any(d.is_error for d in checker.diags):
        return None, checker.diags, timings
    return checker.build(), checker.diags, timings


_QUOTED = re.compile(r"`([^`]+)`")


def _echo(d: Diagnostic, broken: dict[str, tuple[tuple[int, int], ...]], names: set[str]) -> bool:
    """Whether a checker's diagnostic may be an echo of a syntax error (see `_check_stages`)."""
    if d.span is not None:
        for a, b in broken.get(d.span.source.name, ()):
            if a <= d.span.start < b:
                return True
    return any(q in names or q.split(".")[0] in names for q in _QUOTED.findall(d.message))


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
