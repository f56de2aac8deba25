"""Planner back-ends behind one interface: `solve(problem, options) -> Solution`.

* `cpsat` (default): OR-Tools CP-SAT, staged objectives and a deterministic tie-break.
* `constraint`: python-constraint enumeration of every option assignment, evaluated exactly;
  for small models only, used to cross-check CP-SAT.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SolveOptions:
    """How hard and how reproducibly to search."""

    time_limit_s: float = 10.0
    num_workers: int = 1
    seed: int = 0
    #: When the whole request must be over, on `cpsat.clock()`'s scale: the main solve, the
    #: conflict search and every counterfactual share one budget (docs/planning.md "Time
    #: limit"). None: ``time_limit_s`` from the start of this solve.
    deadline: float | None = None


@dataclass
class Solution:
    """A back-end's answer: the chosen option per action and each step's start time."""

    status: str  # optimal | feasible | infeasible | unknown
    choice: dict[str, str] = field(default_factory=dict)
    starts: dict[str, int] = field(default_factory=dict)
    stats: dict = field(default_factory=dict)
    #: The soft `require F before A` statements the schedule does not wait for.
    skipped: frozenset[str] = frozenset()


class ModelTooLarge(Exception):
    """The exhaustive back-end refuses a model it could not enumerate in reasonable time."""


def rank_weight(n_actions: int, action_index: int, option_index: int) -> int:
    """The tie-break's weight for choosing option ``option_index`` of the action at position
    ``action_index`` among ``n_actions``: first-declared options and later actions weigh least,
    so the least total prefers leaving actions out and taking earlier-declared options."""
    return (option_index + 1) * (n_actions - action_index)
