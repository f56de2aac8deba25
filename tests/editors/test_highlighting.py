"""The shipped TextMate grammar (editors/vscode/syntaxes/intento.tmLanguage.json) highlights every
shipped `.intent` file as the language's own lexer reads it.

Each file is tokenised twice: by the TextMate grammar (`textmate_grammar`, on Oniguruma like VS
Code) and by lark's lexer with grammar/intento.lark, which says independently what every piece of
text is. Then, token by token: every keyword has its keyword scope, every string its string scope
(escapes and unknown escapes marked), every money and duration literal its number and its unit,
every number its number scope, every `//` comment its comment scope, every name a name scope and
no keyword scope, every operator and punctuation its scope; whitespace has none; nothing inside a
comment or a string looks like a keyword; and exactly the names that declarations declare have an
`entity.name.*` scope.
"""

from __future__ import annotations

import copy
import re

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from lark.exceptions import LexError

from tests.editors._support import (
    COMMENT,
    COMMENT_START,
    CURRENCY,
    DECLARED_NAME_SCOPE,
    DOT,
    DOTTED_NAME,
    DURATION,
    DURATION_UNIT,
    EDGE_CASES,
    ESCAPE,
    INVALID_ESCAPE,
    MONEY,
    NAME,
    NUMBER,
    PUNCTUATION_SCOPE,
    ROOT,
    SHIPPED,
    STRING,
    STRING_BEGIN,
    STRING_END,
    TYPE,
    is_keyword_token,
    is_keywordish,
    keyword_scope,
    lark_parser,
    lark_tokens,
    load_tm_grammar,
    make_tokenizer,
    position,
    shipped_tokenizer,
)

_KNOWN_ESCAPES = set('"\\nt')
_LITERAL = re.compile(r"(-?[0-9]+(?:\.[0-9]+)?)([ \t]*)([A-Za-z]+)")
_NAME_SCOPES = (NAME, DOTTED_NAME, "entity.name.", TYPE)


def check_tokens(text: str, scopes: list[tuple[str, ...]]) -> list[str]:
    """Every disagreement between the TextMate scopes of `text` and lark's tokens, one line each."""
    problems: list[str] = []

    def fail(offset: int, tok, message: str) -> None:
        problems.append(f"{position(text, offset)}: {tok.type} {str(tok)[:40]!r}: {message} (scopes {list(scopes[offset])})")

    def need(offset: int, tok, scope: str) -> None:
        if not any(s == scope or s.startswith(scope) for s in scopes[offset]):
            fail(offset, tok, f"{text[offset]!r} should have {scope}")

    for offset, s in enumerate(scopes):
        if not s or s[0] != "source.intento":
            problems.append(f"{position(text, offset)}: not inside source.intento: {list(s)}")

    for tok in lark_tokens(text):
        start, end = tok.start_pos, tok.end_pos
        chars = range(start, end)
        kind = tok.type
        if kind in ("STRING", "COMMENT"):
            outer = STRING if kind == "STRING" else COMMENT
            for i in chars:
                need(i, tok, outer)
                bad = [s for s in scopes[i] if is_keywordish(s) or s.startswith(("constant.numeric", "variable.", "support."))]
                if bad:
                    fail(i, tok, f"{text[i]!r} inside a {kind.lower()} has {bad}")
            if kind == "COMMENT":
                need(start, tok, COMMENT_START)
                need(start + 1, tok, COMMENT_START)
                for i in range(start + 2, end):
                    if COMMENT_START in scopes[i]:
                        fail(i, tok, "only `//` starts a comment")
            else:
                need(start, tok, STRING_BEGIN)
                need(end - 1, tok, STRING_END)
                escaped: dict[int, str] = {}
                for m in re.finditer(r"\\(.)", str(tok)[1:-1]):
                    at = start + 1 + m.start()
                    escaped[at] = escaped[at + 1] = ESCAPE if m.group(1) in _KNOWN_ESCAPES else INVALID_ESCAPE
                for i in range(start + 1, end - 1):
                    want = escaped.get(i)
                    has = {x for x in (ESCAPE, INVALID_ESCAPE) if x in scopes[i]}
                    if has != ({want} if want else set()):
                        fail(i, tok, f"{text[i]!r} should have {want or 'no escape scope'}")
        elif is_keyword_token(tok):
            for i in chars:
                need(i, tok, keyword_scope(str(tok)))
                bad = [s for s in scopes[i] if s.startswith(("variable.", "entity.", "string.", "comment."))]
                if bad:
                    fail(i, tok, f"a keyword with {bad}")
        elif kind == "IDENT":
            for i in chars:
                if not any(s.startswith(_NAME_SCOPES) for s in scopes[i]):
                    fail(i, tok, "a name should have a name scope")
                bad = [s for s in scopes[i] if is_keywordish(s) or s.startswith(("constant.", "string.", "comment."))]
                if bad:
                    fail(i, tok, f"a name with {bad}")
                if text[i] == "." and DOTTED_NAME in scopes[i] and DOT not in scopes[i]:
                    fail(i, tok, f"the dot of a dotted name should have {DOT}")
        elif kind in ("MONEY", "DURATION"):
            meta, unit = (MONEY, CURRENCY) if kind == "MONEY" else (DURATION, DURATION_UNIT)
            m = _LITERAL.fullmatch(str(tok))
            assert m, tok
            for i in chars:
                need(i, tok, meta)
            for i in range(start + m.start(1), start + m.end(1)):
                need(i, tok, NUMBER)
                if unit in scopes[i]:
                    fail(i, tok, f"the number of a {kind.lower()} has {unit}")
            for i in range(start + m.start(3), start + m.end(3)):
                need(i, tok, unit)
                if NUMBER in scopes[i]:
                    fail(i, tok, f"the unit of a {kind.lower()} has {NUMBER}")
            for i in range(start + m.start(2), start + m.end(2)):
                if NUMBER in scopes[i] or unit in scopes[i]:
                    fail(i, tok, "the space inside a money literal is neither number nor currency")
        elif kind == "NUMBER":
            for i in chars:
                need(i, tok, NUMBER)
                bad = [s for s in scopes[i] if s in (MONEY, DURATION, CURRENCY, DURATION_UNIT)]
                if bad:
                    fail(i, tok, f"a plain number with {bad}")
        elif kind in PUNCTUATION_SCOPE:
            for i in chars:
                need(i, tok, PUNCTUATION_SCOPE[kind])
        elif kind == "WS":
            for i in chars:
                if scopes[i] != ("source.intento",):
                    fail(i, tok, "whitespace between tokens should have no scope of its own")
        else:
            problems.append(f"{position(text, start)}: lark token {kind} {str(tok)!r} is not known to this test")
    return problems


def declared_names(text: str) -> dict[tuple[int, int], str]:
    """(start, end) of each name a declaration declares, found with lark's tokens: a `provider`,
    `action`, `intent` or `policy` outside every brace followed by a name, a `test` by a string."""
    found: dict[tuple[int, int], str] = {}
    significant = [t for t in lark_tokens(text) if t.type not in ("WS", "COMMENT")]
    depth = 0
    for tok, nxt in zip(significant, significant[1:] + [None]):
        if tok.type == "LBRACE":
            depth += 1
        elif tok.type == "RBRACE":
            depth -= 1
        elif (
            depth == 0
            and nxt is not None
            and str(tok) in DECLARED_NAME_SCOPE
            and nxt.type == ("STRING" if str(tok) == "test" else "IDENT")
        ):
            found[(nxt.start_pos, nxt.end_pos)] = DECLARED_NAME_SCOPE[str(tok)]
    return found


def check_declarations(text: str, scopes: list[tuple[str, ...]]) -> list[str]:
    problems: list[str] = []
    declared = declared_names(text)
    covered: set[int] = set()
    for (start, end), scope in declared.items():
        covered.update(range(start, end))
        for i in range(start, end):
            if scope not in scopes[i]:
                problems.append(f"{position(text, i)}: the declared name {text[start:end]!r} should have {scope} (scopes {list(scopes[i])})")
                break
    for i, s in enumerate(scopes):
        if i not in covered and any(x.startswith("entity.name.") for x in s):
            problems.append(f"{position(text, i)}: {text[i]!r} is not a declared name but has {list(s)}")
    return problems


def check_file_text(text: str, scopes) -> list[str]:
    return check_tokens(text, scopes) + check_declarations(text, scopes)


def _report(problems: list[str]) -> str:
    more = f"\n... and {len(problems) - 40} more" if len(problems) > 40 else ""
    return "\n".join(problems[:40]) + more


# ---- every shipped file ----------------------------------------------------------------------


def test_the_shipped_files_are_found():
    names = {p.relative_to(ROOT).as_posix() for p in SHIPPED}
    assert len(SHIPPED) >= 10, names
    assert "examples/order_fulfilment/actions.intent" in names
    assert any(n.startswith("policies/") for n in names)


@pytest.mark.parametrize("path", [*SHIPPED, EDGE_CASES], ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_shipped_file_is_highlighted_as_lark_reads_it(path):
    text = path.read_text(encoding="utf-8")
    problems = check_file_text(text, shipped_tokenizer()(text))
    assert not problems, f"{path.relative_to(ROOT)}:\n{_report(problems)}"


def test_the_edge_cases_are_valid_syntax():
    """fixtures/highlighting.intent parses (its one unknown escape is the checker's error E009,
    not a syntax error), and holds what it is there for."""
    text = EDGE_CASES.read_text(encoding="utf-8")
    lark_parser().parse(text)
    kinds = {t.type for t in lark_tokens(text)}
    assert {"MONEY", "DURATION", "NUMBER", "STRING", "COMMENT", "CMP", "PLUS", "STAR", "EQUAL"} <= kinds
    assert "\\u" in text and "provider_x" in text and "forbid provider provider_x" in text


# ---- concrete tokens --------------------------------------------------------------------------


def _tokens(text: str) -> list[tuple[str, str]]:
    """(text, innermost scope) of each run of characters with the same scopes, whitespace left out."""
    scopes = shipped_tokenizer()(text)
    runs: list[tuple[str, str]] = []
    prev = None
    for i, c in enumerate(text):
        if scopes[i] != prev:
            runs.append(["", scopes[i][-1]])
            prev = scopes[i]
        runs[-1][0] += c
    return [(t, s) for t, s in runs if t.strip()]


def test_concrete_tokens_of_a_provider_and_an_action():
    text = 'provider stripe { cost 4.50 USD; latency 50ms; tags ["pci", "a\\qb"] } // provider x\n' "action charge { requires order.ok and not_x }\n"
    assert _tokens(text) == [
        ("provider", "keyword.declaration.intento"),
        ("stripe", "entity.name.type.provider.intento"),
        ("{", "punctuation.section.block.begin.intento"),
        ("cost", NAME),
        ("4.50", NUMBER),
        ("USD", CURRENCY),
        (";", "punctuation.separator.semicolon.intento"),
        ("latency", NAME),
        ("50", NUMBER),
        ("ms", DURATION_UNIT),
        (";", "punctuation.separator.semicolon.intento"),
        ("tags", NAME),
        ("[", "punctuation.section.brackets.begin.intento"),
        ('"', STRING_BEGIN),
        ("pci", STRING),
        ('"', STRING_END),
        (",", "punctuation.separator.comma.intento"),
        ('"', STRING_BEGIN),
        ("a", STRING),
        ("\\q", INVALID_ESCAPE),
        ("b", STRING),
        ('"', STRING_END),
        ("]", "punctuation.section.brackets.end.intento"),
        ("}", "punctuation.section.block.end.intento"),
        ("//", COMMENT_START),
        (" provider x", COMMENT),
        ("action", "keyword.declaration.intento"),
        ("charge", "entity.name.function.action.intento"),
        ("{", "punctuation.section.block.begin.intento"),
        ("requires", "keyword.other.intento"),
        ("order", DOTTED_NAME),
        (".", DOT),
        ("ok", DOTTED_NAME),
        ("and", "keyword.operator.logical.intento"),
        ("not_x", NAME),
        ("}", "punctuation.section.block.end.intento"),
    ]


def test_concrete_tokens_of_references_that_look_like_declarations():
    # `forbid provider X`, `forbid action A` and `distinct provider for` declare nothing.
    assert _tokens("forbid provider stripe forbid action charge distinct provider for a") == [
        ("forbid", "keyword.other.intento"),
        ("provider", "keyword.declaration.intento"),
        ("stripe", NAME),
        ("forbid", "keyword.other.intento"),
        ("action", "keyword.declaration.intento"),
        ("charge", NAME),
        ("distinct", "keyword.other.intento"),
        ("provider", "keyword.declaration.intento"),
        ("for", "keyword.other.intento"),
        ("a", NAME),
    ]
    assert _tokens('test "t \\n" { expect cost <= -1 USD }') == [
        ("test", "keyword.declaration.intento"),
        ('"', STRING_BEGIN),
        ("t ", STRING),
        ("\\n", ESCAPE),
        ('"', STRING_END),
        ("{", "punctuation.section.block.begin.intento"),
        ("expect", "keyword.other.intento"),
        ("cost", NAME),
        ("<=", "keyword.operator.comparison.intento"),
        ("-1", NUMBER),
        ("USD", CURRENCY),
        ("}", "punctuation.section.block.end.intento"),
    ]
    scopes = shipped_tokenizer()('test "t" {}')
    assert all("entity.name.function.test.intento" in scopes[i] for i in range(5, 8))


# ---- random token sequences --------------------------------------------------------------------

_PIECES = [
    *"provider action intent policy test requires via given goal and or not in true false secret then for".split(),
    *"provider_x x_provider provider1 order.provider provider.x a.b.c _ USD ms m cost".split(),
    *"0 12 -3 0.997 1.5 4.50 -1 12USD 4\tEUR 4.50 USD 50ms 1.2s 5m 2h 1d 0.5ms".split(" "),
    '"eu"', '"a\\"b"', '"\\\\"', '"\\u"', '"// x"', '"provider"', "// provider 4 USD", '// "x"',
    *"{ } [ ] ( ) , ; : = * + == != <= >= < >".split(),
    ": string", ": money",
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(_PIECES), st.sampled_from(["", " ", " ", "\n", "\t"])), min_size=1, max_size=8))
def test_random_token_sequences_are_highlighted_as_lark_lexes_them(parts):
    text = "".join(piece + sep for piece, sep in parts)
    try:
        lark_tokens(text)
    except LexError:
        assume(False)
    problems = check_tokens(text, shipped_tokenizer()(text))
    assert not problems, f"{text!r}:\n{_report(problems)}"


# ---- the checks can fail ----------------------------------------------------------------------


def _mutated(grammar: dict, edit) -> dict:
    g = copy.deepcopy(grammar)
    edit(g["repository"])
    return g


def test_a_grammar_that_misses_a_keyword_fails_the_check():
    def drop_requires(repo):
        other = next(p for p in repo["keywords"]["patterns"] if p["name"] == "keyword.other.intento")
        other["match"] = other["match"].replace("requires|", "")

    text = (ROOT / "examples/order_fulfilment/actions.intent").read_text(encoding="utf-8")
    problems = check_file_text(text, make_tokenizer(_mutated(load_tm_grammar(), drop_requires))(text))
    assert problems and all("'requires'" in p for p in problems), problems[:5]


def test_a_grammar_whose_keywords_match_inside_names_fails_the_check():
    def no_word_boundaries(repo):
        for p in repo["keywords"]["patterns"]:
            p["match"] = re.sub(r"^\(\?<!\[[^]]*\]\)|\(\?!\[[^]]*\]\|[^)]*\)$", "", p["match"])

    text = EDGE_CASES.read_text(encoding="utf-8")
    problems = check_file_text(text, make_tokenizer(_mutated(load_tm_grammar(), no_word_boundaries))(text))
    assert any("provider_x" in p and "a name with" in p for p in problems), problems[:5]


def test_a_grammar_that_scopes_money_as_a_plain_number_fails_the_check():
    def no_money(repo):
        repo["literals"]["patterns"] = [p for p in repo["literals"]["patterns"] if p.get("name") != MONEY]

    text = (ROOT / "examples/order_fulfilment/actions.intent").read_text(encoding="utf-8")
    problems = check_file_text(text, make_tokenizer(_mutated(load_tm_grammar(), no_money))(text))
    assert any("MONEY" in p for p in problems), problems[:5]


def test_a_grammar_that_declares_every_name_after_provider_fails_the_check():
    def no_forbid_rule(repo):
        repo["declarations"]["patterns"] = [p for p in repo["declarations"]["patterns"] if "(forbid)" not in p["match"]]

    text = EDGE_CASES.read_text(encoding="utf-8")
    problems = check_file_text(text, make_tokenizer(_mutated(load_tm_grammar(), no_forbid_rule))(text))
    assert any("is not a declared name" in p for p in problems), problems[:5]
