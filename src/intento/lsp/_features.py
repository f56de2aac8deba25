"""The language features over a parsed project, as LSP values.

Input: a `Model` (files and `Index`), a file key and an offset; or intento `Diagnostic`s.
Output: lsprotocol values: diagnostics, locations, symbols, text edits, code actions, code
lenses. Positions are computed from character offsets with each file's `LineIndex`, in the
negotiated position encoding. No pygls here: `_server` sends what these functions return.
"""

from __future__ import annotations

import re

from lsprotocol import types as lsp

from intento.diagnostics import Diagnostic, Severity, Source
from intento.lsp._index import Decl, Index, Occurrence
from intento.lsp._project import Model
from intento.lsp._text import LineIndex, uses_crlf
from intento.syntax import ast, format_file, parse
from intento.syntax._format import _policy_item

#: The did-you-mean of a diagnostic's help (`intento.diagnostics.did_you_mean`).
DID_YOU_MEAN = re.compile(r"did you mean `([^`\n]+)`\?")
#: A name as the grammar reads it (dotted for facts and given names).
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
#: Most workspace symbols returned for one query.
MAX_WORKSPACE_SYMBOLS = 1_000

RUN_TEST = "intento.runTest"
PLAN_INTENT = "intento.planIntent"

_SYMBOL_KIND = {
    "provider": lsp.SymbolKind.Module,
    "action": lsp.SymbolKind.Function,
    "intent": lsp.SymbolKind.Interface,
    "policy": lsp.SymbolKind.Event,
    "test": lsp.SymbolKind.Method,
}


# ---- diagnostics ---------------------------------------------------------------------------------


def to_lsp_diagnostic(d: Diagnostic, lines: LineIndex, encoding: str) -> lsp.Diagnostic:
    """An intento diagnostic at its place: the help follows the message on a line of its own;
    a did-you-mean becomes ``data`` (``fix``: the name suggested, ``name``: the name written),
    which the quick fix reads."""
    start, end = (d.span.start, d.span.end) if d.span is not None else (0, 0)
    message = d.message + (f"\nhelp: {d.help}" if d.help else "")
    data = None
    m = DID_YOU_MEAN.search(d.help or "")
    written = lines.text[start:end]
    if m and NAME.fullmatch(written) and NAME.fullmatch(m.group(1)) and m.group(1) != written:
        data = {"fix": m.group(1), "name": written}
    return lsp.Diagnostic(
        range=lines.range(start, end, encoding),
        severity=lsp.DiagnosticSeverity.Error if d.severity is Severity.error else lsp.DiagnosticSeverity.Warning,
        code=d.code,
        source="intento",
        message=message,
        data=data,
    )


# ---- navigation ----------------------------------------------------------------------------------


def location(model: Model, occ: Occurrence | Decl, client_uri, encoding: str) -> lsp.Location | None:
    fm = model.files.get(occ.uri)
    if fm is None:
        return None
    start, end = (occ.start, occ.end) if isinstance(occ, Occurrence) else (occ.name_start, occ.name_end)
    return lsp.Location(uri=client_uri(occ.uri), range=fm.lines.range(start, end, encoding))


def definitions(model: Model, occ: Occurrence, client_uri, encoding: str) -> list[lsp.Location]:
    return [loc for o in model.index.definitions(occ) if (loc := location(model, o, client_uri, encoding))]


def references(model: Model, occ: Occurrence, include_declaration: bool, client_uri, encoding: str) -> list[lsp.Location]:
    found = model.index.references(occ, include_declaration)
    return [loc for o in found if (loc := location(model, o, client_uri, encoding))]


# ---- symbols -------------------------------------------------------------------------------------


def _span_range(lines: LineIndex, node, encoding: str) -> lsp.Range | None:
    span = getattr(node, "span", None)
    return None if span is None else lines.range(span.start, span.end, encoding)


def _child(name: str, kind: lsp.SymbolKind, lines: LineIndex, node, name_node, encoding: str, detail: str | None = None) -> lsp.DocumentSymbol | None:
    rng = _span_range(lines, node, encoding)
    sel = _span_range(lines, name_node, encoding) or rng
    if rng is None or not name.strip():
        return None
    return lsp.DocumentSymbol(name=name, kind=kind, range=rng, selection_range=sel, detail=detail)


def _children(d: Decl, lines: LineIndex, encoding: str) -> list[lsp.DocumentSymbol]:
    node = d.node
    out: list[lsp.DocumentSymbol | None] = []
    match node:
        case ast.ProviderDecl():
            out = [_child(a.name.name, lsp.SymbolKind.Property, lines, a, a.name, encoding) for a in node.attrs]
        case ast.ActionDecl():
            out = [_child(f"via {v.provider.name}", lsp.SymbolKind.Field, lines, v, v.provider, encoding, "option") for v in node.items if isinstance(v, ast.Via)]
        case ast.IntentDecl():
            out = [
                _child(p.name.name, lsp.SymbolKind.Variable, lines, p, p.name, encoding, p.type.name)
                for g in node.items
                if isinstance(g, ast.Given)
                for p in g.params
            ]
        case ast.PolicyDecl():
            out = [
                _child(_policy_item(st), lsp.SymbolKind.Property, lines, st, None, encoding, "statement")
                for st in node.items
                if not isinstance(st, (ast.Owner, ast.When, ast.Soft))
            ]
    return [c for c in out if c is not None]


def document_symbols(index: Index, key: str, lines: LineIndex, encoding: str) -> list[lsp.DocumentSymbol]:
    out = []
    for d in index.decls_by_uri.get(key, ()):
        span = d.node.span
        if span is None:
            continue
        rng = lines.range(span.start, span.end, encoding)
        sel = lines.range(d.name_start, d.name_end, encoding)
        detail = d.node.title if isinstance(d.node, ast.PolicyDecl) and d.node.title else d.kind
        out.append(
            lsp.DocumentSymbol(name=d.name or "?", kind=_SYMBOL_KIND[d.kind], range=rng, selection_range=sel, detail=detail, children=_children(d, lines, encoding) or None)
        )
    return out


def matches(query: str, name: str) -> bool:
    """Whether ``query``'s characters appear in ``name`` in order, ignoring case (the usual
    fuzzy filter of workspace symbols); an empty query matches everything."""
    it = iter(name.lower())
    return all(c in it for c in query.lower() if not c.isspace())


def workspace_symbols(model: Model, query: str, client_uri, encoding: str) -> list[lsp.WorkspaceSymbol]:
    out = []
    for d in model.index.all_decls():
        if not matches(query, d.name):
            continue
        loc = location(model, d, client_uri, encoding)
        if loc is None:
            continue
        out.append(lsp.WorkspaceSymbol(name=d.name, kind=_SYMBOL_KIND[d.kind], location=loc, container_name=model.files[d.uri].file.name))
        if len(out) >= MAX_WORKSPACE_SYMBOLS:
            break
    return out


# ---- formatting ----------------------------------------------------------------------------------


def format_document(name: str, text: str, encoding: str) -> list[lsp.TextEdit]:
    """The whole document in the canonical layout (`intento fmt`), as one edit; no edit when the
    text does not parse (formatting never loses text) or is formatted already. Lines keep their
    ``\\r\\n`` ends if the document uses them."""
    source = Source(name, text)
    tree, diags = parse(source, cache_new=False)
    if tree is None or any(d.is_error for d in diags):
        return []
    new = format_file(tree, source)
    if uses_crlf(text):
        new = new.replace("\n", "\r\n")
    if new == text:
        return []
    lines = LineIndex.of(text)
    return [lsp.TextEdit(range=lines.range(0, len(text), encoding), new_text=new)]


# ---- code actions and lenses ---------------------------------------------------------------------


def quick_fixes(uri: str, lines: LineIndex, diagnostics: list[lsp.Diagnostic], encoding: str) -> list[lsp.CodeAction]:
    """A quick fix for each diagnostic of intento that suggests a name: the name written (exactly
    the diagnostic's range, checked against the document's text now) replaced by the one
    suggested."""
    out = []
    for d in diagnostics:
        if d.source not in (None, "intento"):
            continue
        data = d.data if isinstance(d.data, dict) else {}
        fix = data.get("fix")
        if not isinstance(fix, str):
            m = DID_YOU_MEAN.search(d.message or "")
            fix = m.group(1) if m else None
        if not fix or not NAME.fullmatch(fix):
            continue
        start, end = lines.offset(d.range.start, encoding), lines.offset(d.range.end, encoding)
        written = lines.text[start:end]
        if not NAME.fullmatch(written) or written == fix or (isinstance(data.get("name"), str) and data["name"] != written):
            continue
        out.append(
            lsp.CodeAction(
                title=f"Change `{written}` to `{fix}`",
                kind=lsp.CodeActionKind.QuickFix,
                diagnostics=[d],
                is_preferred=True,
                edit=lsp.WorkspaceEdit(changes={uri: [lsp.TextEdit(range=lines.range(start, end, encoding), new_text=fix)]}),
            )
        )
    return out


def code_lenses(index: Index, key: str, uri: str, lines: LineIndex, encoding: str) -> list[lsp.CodeLens]:
    """``run test`` on each test; on each intent, one ``plan with the givens of test '...'`` per
    test (anywhere in the project) that plans it."""
    out = []
    for d in index.decls_by_uri.get(key, ()):
        rng = lines.range(d.name_start, d.name_end, encoding)
        if d.kind == "test":
            out.append(lsp.CodeLens(range=rng, command=lsp.Command(title="run test", command=RUN_TEST, arguments=[uri, d.name])))
        elif d.kind == "intent":
            for t in index.tests_planning(d.name):
                title = f"plan with the givens of test '{t.name}'"
                out.append(lsp.CodeLens(range=rng, command=lsp.Command(title=title, command=PLAN_INTENT, arguments=[uri, d.name, t.name])))
    return out
