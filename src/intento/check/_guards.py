"""Checker stage 5b: which given names each `when` guard reads, intent by intent.

Input: the `_Checker` state after the intents and policies are resolved. Output: diagnostics on
it. A guard that reads a name an intent does not declare cannot be decided for that intent's
requests, so the policy applies to all of them (it fails closed, `problem.policy_applies`):

* ``E037`` (error): no intent of the project declares the name, so it is a typo or a
  leftover, and the policy applies to every intent whatever the guard says;
* ``W103`` (warning), one per intent and policy: some intents declare the name and this one
  does not, so the policy always applies to this intent (a shared policy set may mean that);
* ``W102`` (warning): the project holds no intent, so nothing can be checked against the names.
"""

from __future__ import annotations

from intento.check._state import _Checker
from intento.syntax import ast


#: Intents named one by one per guard name in W103; the rest are counted in one more warning.
MAX_PAIRS_SHOWN = 5


def guard_refs(e: ast.Expr | None) -> list[ast.Ref]:
    """Every name a guard reads, first occurrence of each, in source order."""
    out: list[ast.Ref] = []
    seen: set[str] = set()
    for x in ast.leaves(e, ast.Ref):
        if x.name not in seen:
            seen.add(x.name)
            out.append(x)
    return out


def check_guards(c: _Checker) -> None:
    """Report the guards that cannot be decided for some intent (see the module docstring)."""
    all_given = {n for i in c.intents.values() for n in i.given}
    for p in c.policies.values():
        owner = f"policy `{p.name}`"
        for ref in guard_refs(p.when):
            name = ref.name
            if not c.intents:
                c.warn(
                    "W102",
                    f"no intent in the project declares `{name}`, so the `when` of {owner} cannot be checked",
                    ref.span,
                    help="check the policies together with the intents they govern",
                )
                continue
            if name not in all_given:
                c.error(
                    "E037",
                    f"no intent declares given `{name}`, read by the `when` of {owner}",
                    ref.span,
                    label="not a given name",
                    help=c.suggest(name, all_given, "declare it in the `given` of the intents the policy governs, or correct the name"),
                )
                continue
            missing = [i for i in c.intents.values() if name not in i.given]
            if len(missing) > MAX_PAIRS_SHOWN:
                # One line for the rest: a project of many intents and policies must not turn
                # into intents x policies warnings.
                rest = missing[MAX_PAIRS_SHOWN:]
                c.warn(
                    "W103",
                    f"{len(rest):,} more intents do not declare `{name}`, so {owner} always applies to them",
                    ref.span,
                    label="undecidable for these intents",
                    help=f"declare `{name}` in the `given` of those intents (`{rest[0].name}`, ...) if the guard should decide for them",
                )
                missing = missing[:MAX_PAIRS_SHOWN]
            for intent in missing:
                todo = f"declare `{name}` in the `given` of intent `{intent.name}` if the guard should decide for it"
                c.warn(
                    "W103",
                    f"intent `{intent.name}` does not declare `{name}`, so {owner} always applies to it",
                    ref.span,
                    label="undecidable for this intent",
                    help=c.suggest(name, intent.given, todo, "{} otherwise " + todo.replace("{", "{{").replace("}", "}}")),
                )
