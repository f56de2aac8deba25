"""Hover: what a name means, in Markdown, from the syntax trees (so it works while the project
still has errors, when the checker gives no `Spec`).

Input: an `Index` and the `Occurrence` under the cursor. Output: Markdown text, or None.

* provider: its attributes, its capacity, the actions with an option through it;
* action: requires / achieves / timeout / undo / flags and a table of its options with cost,
  latency and reliability, each option's value or the provider's it falls back to, or the
  default (cost 0, reliability 1);
* policy: its title, owner, hard or soft, `when`, statements, and the intents it applies to,
  decided as the planner decides (`problem.policy_applies`): no `when` means every intent; a
  `when` that reads only names an intent declares is decided per request; one that reads a name
  the intent does not declare cannot be decided, so the policy always applies to that intent;
* intent: its items, the policies that apply to it (same rule), the tests that plan it;
* given name: its type (and `secret`), and which intents declare it;
* fact: what achieves it, what needs it, which tests observe it;
* attribute: its type if fixed, and where it is set;
* test: the intent it plans and what it expects.
"""

from __future__ import annotations

from intento.lsp._index import Index, Occurrence, plan_step, refs_in
from intento.spec import GIVEN_TYPES
from intento.syntax import ast
from intento.syntax._format import _intent_item, _policy_item, _test_item, expr
from intento.values import render_value

#: Attributes with a meaning fixed by the language, and their types.
FIXED_ATTRS = {
    "provider": "string: the option's provider (set by intento, cannot be set by hand)",
    "cost": "money: the option's cost (default 0)",
    "latency": "duration: the option's latency (required, at least 1ms)",
    "reliability": "number in (0, 1]: the option's probability of success (default 1)",
    "region": "string",
    "tags": "list of strings",
    "capacity": "whole number ≥ 1: steps running at once on the provider (providers only)",
    "learn": "bool: whether runs that learn plan this option with its observed figures",
    "observed_latency": "duration: learned by the engine (runs with `--learn`)",
    "observed_reliability": "number: learned by the engine (runs with `--learn`)",
    "observed_steps": "number: learned by the engine (runs with `--learn`)",
}

#: At most this many rows in a list or table of a hover.
MAX_ROWS = 20


def hover(index: Index, occ: Occurrence) -> str | None:
    match occ.kind:
        case "provider":
            return provider_hover(index, occ.name)
        case "action":
            return action_hover(index, occ.name)
        case "policy":
            return policy_hover(index, occ.name)
        case "intent":
            return intent_hover(index, occ.name)
        case "given":
            return given_hover(index, occ)
        case "fact":
            return fact_hover(index, occ.name)
        case "attribute":
            return attribute_hover(index, occ.name)
        case "test":
            return test_hover(index, occ.name)
    return None


def _code(text: str) -> str:
    """Inline code that survives backticks in the text."""
    fence = "``" if "`" in text else "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _names(names, more_word: str = "more") -> str:
    names = list(names)
    shown = ", ".join(_code(n) for n in names[:MAX_ROWS])
    if len(names) > MAX_ROWS:
        shown += f", and {len(names) - MAX_ROWS:,} {more_word}"
    return shown


def _missing(kind: str, name: str) -> str:
    return f"**{kind}** {_code(name)}: not declared in the project"


def _users(index: Index, kind: str, name: str, user_kind: type) -> list[str]:
    """Names of the declarations of type ``user_kind`` that mention ``(kind, name)``."""
    seen: dict[str, None] = {}
    for o in index.occurrences.get((kind, name), ()):
        if isinstance(o.decl, user_kind) and not o.is_def:
            seen.setdefault(o.decl.name.name if hasattr(o.decl.name, "name") else o.decl.name, None)
    return list(seen)


# ---- providers and actions -----------------------------------------------------------------------


def provider_hover(index: Index, name: str) -> str:
    d = index.decl("provider", name)
    if d is None:
        return _missing("provider", name)
    decl: ast.ProviderDecl = d.node
    out = [f"**provider** {_code(name)}", ""]
    attrs = [a for a in decl.attrs if a.name.name != "capacity"]
    if attrs:
        out += ["| attribute | value |", "|---|---|"]
        out += [f"| {_cell(a.name.name)} | {_cell(render_value(a.value.value))} |" for a in attrs[:MAX_ROWS]]
        out.append("")
    cap = next((a for a in decl.attrs if a.name.name == "capacity"), None)
    if cap is not None:
        out.append(f"capacity: **{render_value(cap.value.value)}** steps at once (across everything planned together)")
    else:
        out.append("capacity: no bound")
    users = _users(index, "provider", name, ast.ActionDecl)
    if users:
        out += ["", f"options through it: {_names(users)}"]
    return "\n".join(out)


def _attr_of(attrs, name: str):
    return next((a.value.value for a in attrs or () if a.name.name == name), None)


def action_hover(index: Index, name: str) -> str:
    d = index.decl("action", name)
    if d is None:
        return _missing("action", name)
    decl: ast.ActionDecl = d.node
    out = [f"**action** {_code(name)}", ""]
    facts: list[str] = []
    for it in decl.items:
        match it:
            case ast.Requires():
                facts.append(f"- requires {_code(expr(it.expr))}")
            case ast.Achieves():
                facts.append(f"- achieves {_names(f.name for f in it.facts)}")
            case ast.Timeout():
                facts.append(f"- timeout {render_value(it.value.value)}")
            case ast.Undo():
                facts.append(f"- undo {_code(it.action.name)} (its compensating action)")
            case ast.Flag():
                facts.append(f"- {it.word}")
    undone_by = [o.decl.name.name for o in index.occurrences.get(("action", name), ()) if isinstance(o.decl, ast.ActionDecl) and not o.is_def]
    if undone_by:
        facts.append(f"- compensation of {_names(undone_by)}: run only when a run gives up, never chosen by the planner")
    out += facts
    vias = [it for it in decl.items if isinstance(it, ast.Via)]
    if not vias:
        out += ["", "no options (`via`)"]
        return "\n".join(out)
    currency = index.currency or ""
    out += ["", "| option | cost | latency | reliability |", "|---|---|---|---|"]
    for via in vias[:MAX_ROWS]:
        pdecl = index.decl("provider", via.provider.name)
        pattrs = pdecl.node.attrs if pdecl is not None else ()
        cells = []
        for attr, default in (("cost", f"0 {currency}".strip()), ("latency", None), ("reliability", "1")):
            own = _attr_of(via.attrs, attr)
            inherited = _attr_of(pattrs, attr)
            if own is not None:
                cells.append(render_value(own))
            elif inherited is not None:
                cells.append(f"{render_value(inherited)} (provider)")
            elif default is not None:
                cells.append(f"{default} (default)")
            else:
                cells.append("missing")
        out.append(f"| via {_cell(via.provider.name)} | " + " | ".join(_cell(c) for c in cells) + " |")
    if len(vias) > MAX_ROWS:
        out.append(f"\n… and {len(vias) - MAX_ROWS:,} more options")
    others = sorted({a.name.name for via in vias for a in via.attrs} - {"cost", "latency", "reliability"})
    if others:
        out += ["", f"other option attributes: {_names(others)}"]
    return "\n".join(out)


# ---- intents and policies ------------------------------------------------------------------------


def _given_names(decl: ast.IntentDecl) -> set[str]:
    return {p.name.name for it in decl.items if isinstance(it, ast.Given) for p in it.params}


def _when(decl: ast.PolicyDecl) -> ast.Expr | None:
    return next((it.expr for it in decl.items if isinstance(it, ast.When)), None)


def applies_to(policy: ast.PolicyDecl, intent: ast.IntentDecl) -> tuple[bool, str]:
    """Whether ``policy`` applies to ``intent`` whatever the request says (True), or only when
    its guard holds (False), and why: the rule of `problem.policy_applies`, made static."""
    when = _when(policy)
    if when is None:
        return True, "always (no `when`)"
    reads = {r.name for r in refs_in(when)}
    missing = sorted(reads - _given_names(intent))
    if missing:
        return True, f"always: the intent does not declare {_names(missing)}, so the `when` cannot be decided (it fails closed)"
    return False, f"when {_code(expr(when))} holds for the request (decided per request)"


def policy_hover(index: Index, name: str) -> str:
    d = index.decl("policy", name)
    if d is None:
        return _missing("policy", name)
    decl: ast.PolicyDecl = d.node
    soft = next((it for it in decl.items if isinstance(it, ast.Soft)), None)
    kind = f"soft (penalty {render_value(soft.value.value)} per broken statement)" if soft else "hard"
    out = [f"**policy** {_code(name)} · {kind}", ""]
    if decl.title:
        out += [f"> {decl.title}", ""]
    owner = next((it for it in decl.items if isinstance(it, ast.Owner)), None)
    out.append(f"owner: {render_value(owner.value.value) if owner else 'none'}")
    when = _when(decl)
    if when is not None:
        out.append(f"when: {_code(expr(when))}")
    statements = [it for it in decl.items if not isinstance(it, (ast.Owner, ast.When, ast.Soft))]
    if statements:
        out += ["", "statements:"]
        out += [f"- {_code(_policy_item(st))}" for st in statements[:MAX_ROWS]]
    intents = index.all_decls("intent")
    out += ["", "applies to:"]
    if not intents:
        out.append("- every intent (the project declares none yet)" if when is None else "- no intent is declared: the `when` cannot be checked yet")
    elif when is None:
        out.append(f"- every intent (no `when`): {_names(i.name for i in intents)}")
    else:
        for i in intents[:MAX_ROWS]:
            out.append(f"- {_code(i.name)}: {applies_to(decl, i.node)[1]}")
        if len(intents) > MAX_ROWS:
            out.append(f"- … and {len(intents) - MAX_ROWS:,} more intents")
    return "\n".join(out)


def intent_hover(index: Index, name: str) -> str:
    d = index.decl("intent", name)
    if d is None:
        return _missing("intent", name)
    decl: ast.IntentDecl = d.node
    out = [f"**intent** {_code(name)}", ""]
    out += [f"- {_code(_intent_item(it))}" for it in decl.items]
    if not any(isinstance(it, ast.Minimize) for it in decl.items):
        out.append("- `minimize cost then latency` (the default)")
    policies = index.all_decls("policy")
    if policies:
        out += ["", "policies:"]
        for p in policies[:MAX_ROWS]:
            out.append(f"- {_code(p.name)}: {applies_to(p.node, decl)[1]}")
        if len(policies) > MAX_ROWS:
            out.append(f"- … and {len(policies) - MAX_ROWS:,} more")
    tests = index.tests_planning(name)
    if tests:
        out += ["", f"tests that plan it: {_names(t.name for t in tests)}"]
    return "\n".join(out)


def _param_text(p: ast.Param) -> str:
    return f"{p.name.name}: {p.type.name}" + (" secret" if p.secret else "")


def given_hover(index: Index, occ: Occurrence) -> str:
    params = index.given_params(occ.name)
    if occ.scope is not None:
        params = [(i, p) for i, p in params if i == occ.scope]
    if not params:
        where = f"intent {_code(occ.scope)}" if occ.scope else "no intent"
        return f"**given** {_code(occ.name)}: {where} declares it"
    out = []
    for intent, p in params[:MAX_ROWS]:
        kind = p.type.name if p.type.name in GIVEN_TYPES else f"{p.type.name} (unknown type)"
        out.append(f"**given** {_code(occ.name)}: **{kind}**" + (" · secret (never shown)" if p.secret else "") + f" — in intent {_code(intent)}")
    if occ.scope is None and not occ.is_def:
        declaring = {i for i, _ in params}
        others = [d.name for d in index.all_decls("intent") if d.name not in declaring]
        if others:
            out.append(f"not declared by {_names(others)}: for them the `when` cannot be decided, so the policy always applies")
    return "\n\n".join(out)


def fact_hover(index: Index, name: str) -> str:
    achieved, needed, observed = [], [], []
    for o in index.occurrences.get(("fact", name), ()):
        decl = o.decl
        if o.is_def and isinstance(o.node, ast.Achieves):
            achieved.append(decl.name.name)
        elif o.is_def or isinstance(decl, ast.TestDecl):  # `observe { fact f }`
            observed.append(decl.name)
        else:
            needed.append(f"{ast.decl_kind(decl)} {decl.name.name}")
    out = [f"**fact** {_code(name)}", ""]
    out.append(f"achieved by: {_names(dict.fromkeys(achieved))}" if achieved else "achieved by: no action (only an observation can make it true)")
    if needed:
        out.append(f"\nneeded by: {', '.join(dict.fromkeys(needed))}")
    if observed:
        out.append(f"\nobserved true in tests: {', '.join(render_value(t) for t in dict.fromkeys(observed))}")
    return "\n".join(out)


def attribute_hover(index: Index, name: str) -> str:
    out = [f"**attribute** {_code(name)}" + (f": {FIXED_ATTRS[name]}" if name in FIXED_ATTRS else " (free-form)")]
    sets = []
    for o in index.occurrences.get(("attribute", name), ()):
        if not o.is_def:
            continue
        value = render_value(o.node.value.value)
        if isinstance(o.decl, ast.ProviderDecl):
            sets.append(f"- provider {_code(o.decl.name.name)}: {_code(value)}")
        elif isinstance(o.decl, ast.ActionDecl):
            sets.append(f"- an option of {_code(o.decl.name.name)}: {_code(value)}")
    if sets:
        out += ["", "set by:"] + sets[:MAX_ROWS]
        if len(sets) > MAX_ROWS:
            out.append(f"- … and {len(sets) - MAX_ROWS:,} more")
    elif name not in FIXED_ATTRS:
        out += ["", "no provider or option sets it: an option without it has no value for it"]
    return "\n".join(out)


def test_hover(index: Index, name: str) -> str:
    d = index.decl("test", name)
    if d is None:
        return f"**test** {_code(render_value(name))}"
    out = [f"**test** {render_value(name)}", ""]
    step = plan_step(d.node)
    out.append(f"plans {_code(step.intent.name)}" if step else "no `plan`")
    out += [f"- {_code(_test_item(it))}" for it in d.node.items if not isinstance(it, ast.PlanStep)][:MAX_ROWS]
    return "\n".join(out)
