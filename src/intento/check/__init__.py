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
from intento.diagnostics import Diagnostic, Source, sorted_capped
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
        return [d for d in self.diagnostics if d.is_error]

    @property
    def ok(self) -> bool:
        return self.spec is not None


def check_paths(paths: Iterable[str | Path]) -> Result:
    sources, diags = load_sources(paths)
    if diags and not sources:
        return Result(None, sorted_capped(diags))
    result = check_sources(sources)
    if diags:
        result = Result(None, sorted_capped(diags + result.diagnostics), result.timings)
    return result


def check_sources(sources: list[Source]) -> Result:
    files: list[ast.File] = []
    diags: list[Diagnostic] = []
    t0 = time.perf_counter()
    for src in sources:
        f, d = parse(src)
        diags.extend(d)
        if f is not None:
            files.append(f)
    timings = {"parse": time.perf_counter() - t0}
    if diags:
        return Result(None, sorted_capped(diags), timings)
    checker = _Checker(sources, files)
    for name, stage in STAGES:
        t = time.perf_counter()
        stage(checker)
        timings[name] = time.perf_counter() - t
        if checker.fatal:
            break
    all_diags = sorted_capped(checker.diags)
    if any(d.is_error for d in all_diags):
        return Result(None, all_diags, timings)
    return Result(checker.build(), all_diags, timings)


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
