"""Every name of a project and where it occurs: the table behind hover, go to definition, find
references, completion and symbols.

Input: the syntax trees of the project's files (what `parse_recovering` kept of each, so a file
with a syntax error still contributes the declarations that parsed). Output: an `Index`:
occurrences by file (sorted, found by offset), and definitions and occurrences by (kind, name).

Kinds: ``provider``, ``action``, ``intent``, ``policy``, ``test``, ``fact``, ``given`` and
``attribute``. A name's kind comes from where it stands, as the checker reads it: a name in a
`requires`, `goal` or `require` formula is a fact, in a `when` guard a given name, in a `where`
predicate an option attribute. Definitions:

* providers, actions, intents, policies, tests: their declaration's name;
* facts: each `achieves` that names the fact, then each test observation `fact f` (a fact that
  is true from the start); a fact nothing achieves has no definition;
* given names: the parameter in an intent's `given`. A given name in a test's `given { ... }` is
  that of the intent the test plans (``scope``); one in a `when` guard belongs to every intent
  that declares it (``scope`` None);
* attributes: each place that sets one (a provider's or an option's `name value`).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass, field

from intento.diagnostics import Span
from intento.syntax import ast

KINDS = ("provider", "action", "intent", "policy", "test", "fact", "given", "attribute")

#: Words of `expect infeasible because` that name no declaration.
BECAUSE_WORDS = ("goal", "budget", "deadline")

_TEST_NAME = re.compile(r'test(?:\s|//[^\n]*)*("(?:[^"\\\n]|\\.)*")')


@dataclass(frozen=True, slots=True)
class Occurrence:
    """A name written somewhere: ``text[start:end]`` of the file at ``uri``."""

    kind: str
    name: str
    uri: str
    start: int
    end: int
    is_def: bool
    #: Given names: the intent the name belongs to, when known (see the module docstring).
    scope: str | None = None
    #: Definitions: the node that defines the name (a declaration, a parameter, an `achieves`
    #: item, an attribute, an observation).
    node: object = field(default=None, compare=False)
    #: The declaration the occurrence is in.
    decl: object = field(default=None, compare=False)


@dataclass
class Decl:
    """A declaration and where it is (``name_start``/``name_end``: the name, or a test's string)."""

    kind: str
    name: str
    uri: str
    node: ast.Decl
    name_start: int
    name_end: int


class Index:
    def __init__(self) -> None:
        self.by_uri: dict[str, list[Occurrence]] = {}
        self._starts: dict[str, list[int]] = {}
        self.occurrences: dict[tuple[str, str], list[Occurrence]] = {}
        self.decls: dict[tuple[str, str], list[Decl]] = {}
        self.decls_by_uri: dict[str, list[Decl]] = {}
        #: The project's currency: that of its first money literal (in file order), if any.
        self.currency: str | None = None
        self._because: list[tuple[str, ast.Ident, ast.Decl]] = []

    # ---- building ---------------------------------------------------------------------------

    def add_file(self, uri: str, tree: ast.File) -> None:
        _Walker(self, uri).file(tree)

    def finish(self) -> Index:
        # `because` names a policy or a provider: decided once every declaration is known.
        for uri, ident, decl in self._because:
            kind = "provider" if ("provider", ident.name) in self.decls and ("policy", ident.name) not in self.decls else "policy"
            self._add(Occurrence(kind, ident.name, uri, ident.span.start, ident.span.end, False, None, None, decl))
        self._because.clear()
        for uri, occ in self.by_uri.items():
            occ.sort(key=lambda o: (o.start, -o.end))
            self._starts[uri] = [o.start for o in occ]
        return self

    def _add(self, occ: Occurrence) -> None:
        self.by_uri.setdefault(occ.uri, []).append(occ)
        self.occurrences.setdefault((occ.kind, occ.name), []).append(occ)

    # ---- queries ----------------------------------------------------------------------------

    def at(self, uri: str, offset: int) -> Occurrence | None:
        """The occurrence under ``offset`` (a cursor just after a name counts as on it)."""
        occ = self.by_uri.get(uri)
        if not occ:
            return None
        starts = self._starts[uri]
        i = bisect_right(starts, offset)
        best = None
        # Occurrences do not nest, but one may end where the next starts: prefer the one the
        # offset is inside, then one it ends.
        for o in occ[max(0, i - 3) : i]:
            if o.start <= offset < o.end:
                return o
            if o.end == offset:
                best = o
        return best

    def names(self, kind: str) -> list[str]:
        """Every name of ``kind`` that is declared (facts: achieved or read), in first-seen order."""
        seen: dict[str, None] = {}
        for (k, name) in self.occurrences:
            if k == kind:
                seen.setdefault(name, None)
        return list(seen)

    def set_attributes(self) -> list[str]:
        """Attribute names some provider or option sets (not those only read by predicates)."""
        return [name for (k, name), occ in self.occurrences.items() if k == "attribute" and any(o.is_def for o in occ)]

    def decl(self, kind: str, name: str) -> Decl | None:
        found = self.decls.get((kind, name))
        return found[0] if found else None

    def definitions(self, occ: Occurrence) -> list[Occurrence]:
        """Where the name of ``occ`` is defined (for a fact: achieved first, then observed)."""
        found = [o for o in self.occurrences.get((occ.kind, occ.name), ()) if o.is_def]
        if occ.kind == "given" and occ.scope is not None:
            scoped = [o for o in found if o.scope == occ.scope]
            found = scoped or found
        if occ.kind == "fact":
            found.sort(key=lambda o: not isinstance(o.node, ast.Achieves))
        return found

    def references(self, occ: Occurrence, include_definition: bool = True) -> list[Occurrence]:
        """Every occurrence of the name of ``occ``: for a given name of one intent, those of that
        intent and the `when` guards that read the name."""
        found = list(self.occurrences.get((occ.kind, occ.name), ()))
        if occ.kind == "given" and occ.scope is not None:
            found = [o for o in found if o.scope in (None, occ.scope)]
        if not include_definition:
            found = [o for o in found if not o.is_def]
        return found

    def given_params(self, name: str) -> list[tuple[str, ast.Param]]:
        """(intent, parameter) for every intent that declares given ``name``."""
        return [(o.scope, o.node) for o in self.occurrences.get(("given", name), ()) if o.is_def and o.scope is not None]

    def given_params_of(self, intent: str) -> list[tuple[str, ast.Param]]:
        """(name, parameter) of every given of ``intent``, in declaration order."""
        d = self.decl("intent", intent)
        if d is None:
            return []
        return [(p.name.name, p) for it in d.node.items if isinstance(it, ast.Given) for p in it.params]

    def tests_planning(self, intent: str) -> list[Decl]:
        """The tests whose `plan` names ``intent``, in project order."""
        out = []
        for d in self.all_decls("test"):
            step = plan_step(d.node)
            if step is not None and step.intent.name == intent:
                out.append(d)
        return out

    def all_decls(self, kind: str | None = None) -> list[Decl]:
        out = []
        for decls in self.decls_by_uri.values():
            out.extend(d for d in decls if kind is None or d.kind == kind)
        return out


def plan_step(test: ast.TestDecl) -> ast.PlanStep | None:
    return next((it for it in test.items if isinstance(it, ast.PlanStep)), None)


def refs_in(e: ast.Expr | None) -> list[ast.Ref]:
    """Every name an expression reads, in source order."""
    return ast.leaves(e, ast.Ref)


def literals_in(e: ast.Expr | None) -> list[ast.Literal]:
    """Every literal of an expression, in source order."""
    return ast.leaves(e, ast.Literal)


def test_name_span(test: ast.TestDecl) -> tuple[int, int]:
    """Offsets of a test's name string (quotes included), or of its `test` keyword."""
    span = test.span
    m = _TEST_NAME.match(span.source.text, span.start, span.end)
    if m:
        return m.start(1), m.end(1)
    return span.start, min(span.end, span.start + 4)


class _Walker:
    """One file's occurrences, added to an `Index`."""

    def __init__(self, index: Index, uri: str):
        self.index, self.uri = index, uri
        self.decl: ast.Decl | None = None

    def add(self, kind: str, name: str, span: Span | None, is_def: bool = False, scope: str | None = None, node: object = None) -> None:
        if span is None or not name:
            return
        self.index._add(Occurrence(kind, name, self.uri, span.start, span.end, is_def, scope, node, self.decl))

    def ident(self, kind: str, ident: ast.Ident | None, **kw) -> None:
        if ident is not None:
            self.add(kind, ident.name, ident.span, **kw)

    def money(self, lit: ast.Literal | None) -> None:
        from intento.values import Money

        if self.index.currency is None and lit is not None and isinstance(lit.value, Money):
            self.index.currency = lit.value.currency

    def file(self, tree: ast.File) -> None:
        for decl in tree.decls:
            self.decl = decl
            kind = ast.decl_kind(decl)
            if kind == "test":
                start, end = test_name_span(decl)
                d = Decl(kind, decl.name, self.uri, decl, start, end)
                self.index._add(Occurrence("test", decl.name, self.uri, start, end, True, None, decl, decl))
            else:
                d = Decl(kind, decl.name.name, self.uri, decl, decl.name.span.start, decl.name.span.end)
                self.ident(kind, decl.name, is_def=True, node=decl)
            self.index.decls.setdefault((kind, d.name), []).append(d)
            self.index.decls_by_uri.setdefault(self.uri, []).append(d)
            match decl:
                case ast.ProviderDecl():
                    self.attrs(decl.attrs)
                case ast.ActionDecl():
                    self.action(decl)
                case ast.IntentDecl():
                    self.intent(decl)
                case ast.PolicyDecl():
                    self.policy(decl)
                case ast.TestDecl():
                    self.test(decl)

    def attrs(self, attrs) -> None:
        for a in attrs or ():
            self.add("attribute", a.name.name, a.name.span, is_def=True, node=a)
            self.money(a.value)

    def facts(self, e: ast.Expr | None) -> None:
        for r in refs_in(e):
            self.add("fact", r.name, r.span)

    def predicate(self, e: ast.Expr | None) -> None:
        for r in refs_in(e):
            self.add("attribute", r.name, r.span)
        for lit in literals_in(e):
            self.money(lit)

    def actions(self, idents) -> None:
        for a in idents or ():
            self.ident("action", a)

    def action(self, decl: ast.ActionDecl) -> None:
        for it in decl.items:
            match it:
                case ast.Requires():
                    self.facts(it.expr)
                case ast.Achieves():
                    for f in it.facts:
                        self.ident("fact", f, is_def=True, node=it)
                case ast.Undo():
                    self.ident("action", it.action)
                case ast.Via():
                    self.ident("provider", it.provider)
                    self.attrs(it.attrs)

    def intent(self, decl: ast.IntentDecl) -> None:
        for it in decl.items:
            match it:
                case ast.Given():
                    for p in it.params:
                        self.ident("given", p.name, is_def=True, scope=decl.name.name, node=p)
                case ast.Goal():
                    self.facts(it.expr)
                case ast.Budget():
                    self.money(it.value)

    def policy(self, decl: ast.PolicyDecl) -> None:
        for it in decl.items:
            match it:
                case ast.When():
                    for r in refs_in(it.expr):
                        self.add("given", r.name, r.span)
                    for lit in literals_in(it.expr):
                        self.money(lit)
                case ast.ForbidVia():
                    self.actions(it.actions)
                    self.predicate(it.pred)
                case ast.ForbidProvider():
                    self.ident("provider", it.provider)
                case ast.ForbidAction():
                    self.ident("action", it.action)
                case ast.RequireFor():
                    self.predicate(it.pred)
                    self.actions(it.actions)
                case ast.RequireBefore():
                    self.facts(it.formula)
                    self.ident("action", it.action)
                case ast.RequireFact():
                    self.facts(it.formula)
                case ast.Limit():
                    self.money(it.value)
                case ast.LimitCount():
                    self.actions(it.actions)
                    self.predicate(it.pred)
                case ast.Distinct():
                    self.actions(it.actions)

    def test(self, decl: ast.TestDecl) -> None:
        for it in decl.items:
            match it:
                case ast.PlanStep():
                    self.ident("intent", it.intent)
                    for gv in it.given or ():
                        self.ident("given", gv.name, scope=it.intent.name)
                        self.money(gv.value)
                    for ob in it.observe or ():
                        if ob.subject.name == "fact" and ob.word.name not in ("up", "down", "degraded"):
                            self.ident("fact", ob.word, is_def=True, node=ob)
                        else:
                            self.ident("provider", ob.subject)
                case ast.ExpectInfeasible():
                    for n in it.because:
                        if n.name not in BECAUSE_WORDS and n.span is not None:
                            self.index._because.append((self.uri, n, decl))
                case ast.ExpectVia():
                    self.ident("provider", it.provider)
                    self.ident("action", it.action)
                case ast.ExpectNoVia():
                    self.actions(it.actions)
                    self.predicate(it.pred)
                case ast.ExpectStep():
                    self.ident("action", it.action)
                case ast.ExpectBroken():
                    self.ident("policy", it.policy)
                case ast.ExpectMetric():
                    self.money(it.value)
