"""The TextMate grammar (editors/vscode/syntaxes/intento.tmLanguage.json) is checked against the
lark grammar (grammar/intento.lark): the same keywords, and number, money and duration patterns
that accept exactly what lark's NUMBER, MONEY and DURATION terminals accept.

The TextMate grammar is written by hand; when the lark grammar gains a keyword or changes a
literal, these tests say what to change in it.
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources

import onigurumacffi
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intento.syntax import KEYWORDS
from tests.editors._support import (
    BOOLEANS,
    CURRENCY,
    DECLARATION_KEYWORDS,
    DURATION,
    DURATION_UNIT,
    LARK_GRAMMAR,
    LOGICAL_KEYWORDS,
    MONEY,
    NUMBER,
    OTHER_KEYWORD_SCOPE,
    is_keywordish,
    keyword_scope,
    lark_keywords,
    lark_terminal_regex,
    load_tm_grammar,
    shipped_tokenizer,
)

#: A word that is one alternative of a group in a regex: `provider` in `(?:provider|action)`.
_ALTERNATIVE = re.compile(r"(?<=[(:|])([a-z]+)(?=[|)])")
#: Words the grammar may spell out that are not keywords: the types of `given`, duration units.
_NOT_KEYWORDS = {"string", "number", "money", "duration", "bool", "ms", "s", "m", "h", "d"}


def _rules(node):
    """Every rule (a dict with a regex) of the grammar, wherever it is nested."""
    if isinstance(node, dict):
        if any(k in node for k in ("match", "begin", "end")):
            yield node
        for value in node.values():
            yield from _rules(value)
    elif isinstance(node, list):
        for value in node:
            yield from _rules(value)


def _regexes(rule) -> list[str]:
    return [rule[k] for k in ("match", "begin", "end") if k in rule]


def _keyword_words(grammar) -> dict[str, set[str]]:
    """The words of every rule that scopes a match as a keyword, by scope."""
    words: dict[str, set[str]] = {}
    for rule in _rules(grammar):
        if "match" in rule and is_keywordish(rule.get("name", "")):
            words.setdefault(rule["name"], set()).update(_ALTERNATIVE.findall(rule["match"]))
    return {scope: found for scope, found in words.items() if found}


def _literal_regex(grammar, name: str) -> str:
    (rule,) = [r for r in grammar["repository"]["literals"]["patterns"] if r.get("name") == name]
    return rule["match"]


# ---- the grammar file itself -----------------------------------------------------------------


def test_the_lark_grammar_read_here_is_the_one_intento_parses_with():
    packaged = resources.files("intento.syntax").joinpath("intento.lark").read_text(encoding="utf-8")
    assert LARK_GRAMMAR.read_text(encoding="utf-8") == packaged


def test_the_grammar_is_well_formed():
    grammar = load_tm_grammar()
    assert grammar["scopeName"] == "source.intento"
    assert grammar["fileTypes"] == ["intent"]
    repository = grammar["repository"]
    text = json.dumps(grammar["patterns"]) + json.dumps(repository)
    includes = re.findall(r'"include": "#([^"]+)"', text)
    assert includes and set(includes) <= set(repository), set(includes) - set(repository)
    assert set(repository) <= set(includes), "a repository entry nothing includes"
    scopes = set(re.findall(r'"(?:name|contentName)": "([^"]+)"', text))
    assert all(s.endswith(".intento") for s in scopes), sorted(s for s in scopes if not s.endswith(".intento"))
    for rule in _rules(grammar):
        for regex in _regexes(rule):
            onigurumacffi.compile(regex)  # VS Code's regex engine is Oniguruma too


# ---- keywords --------------------------------------------------------------------------------


def test_the_keywords_are_the_lark_grammars():
    tm = set().union(*_keyword_words(load_tm_grammar()).values())
    assert lark_keywords() == set(KEYWORDS), "intento.syntax.KEYWORDS and grammar/intento.lark disagree"
    assert tm == lark_keywords(), f"missing from the TextMate grammar: {sorted(lark_keywords() - tm)}; not keywords: {sorted(tm - lark_keywords())}"


def test_each_keyword_has_one_scope_and_its_category():
    by_scope = _keyword_words(load_tm_grammar())
    assert by_scope == {
        "keyword.declaration.intento": set(DECLARATION_KEYWORDS),
        "keyword.operator.logical.intento": set(LOGICAL_KEYWORDS),
        "constant.language.boolean.intento": set(BOOLEANS),
        OTHER_KEYWORD_SCOPE: set(KEYWORDS) - set(DECLARATION_KEYWORDS) - set(LOGICAL_KEYWORDS) - set(BOOLEANS),
    }


def test_no_other_rule_spells_out_a_word_that_is_not_a_keyword():
    keywords = lark_keywords()
    for rule in _rules(load_tm_grammar()):
        for regex in _regexes(rule):
            words = set(_ALTERNATIVE.findall(regex))
            assert words <= keywords | _NOT_KEYWORDS, (regex, words - keywords - _NOT_KEYWORDS)


def test_a_declared_name_is_never_a_keyword():
    """`provider NAME` declares NAME only when NAME is no keyword (`distinct provider for`): each
    declaration rule's lookahead lists every keyword."""
    rules = [r for r in load_tm_grammar()["repository"]["declarations"]["patterns"] if "(?!(?:" in r["match"]]
    assert len(rules) == 4  # provider, action, intent, policy (a test is named by a string)
    for rule in rules:
        excluded = re.search(r"\(\?!\(\?:([a-z|]+)\)", rule["match"])
        assert excluded and set(excluded.group(1).split("|")) == set(KEYWORDS), rule["match"]


@pytest.mark.parametrize("word", sorted(KEYWORDS))
def test_a_keyword_is_a_keyword_only_as_a_whole_word(word):
    scopes = shipped_tokenizer()
    assert all(keyword_scope(word) in s for s in scopes(word)), scopes(word)
    # The lark lexer reads each of these as one name (IDENT): no keyword in them.
    for name in (f"{word}_x", f"x_{word}", f"_{word}", f"{word}1", f"{word}.x", f"x.{word}", f"a.{word}.b", word.upper(), word.title()):
        got = scopes(name)
        assert not any(is_keywordish(x) for s in got for x in s), (name, got)
        assert all(any(x.startswith("variable.other.") for x in s) for s in got), (name, got)


# ---- numbers, money, durations ---------------------------------------------------------------

_SAMPLES = [
    "0", "12", "-3", "0.997", "1.5", "-1.25", "007", "1.", ".5", "1.2.3", "--1", "-", "1e3", "12a", "1_000",
    "4 USD", "4.50 USD", "-1 USD", "12USD", "4\tEUR", "4  \t EUR", "4 usd", "4 US", "4 USDX", "4 USD1", "4 U_D", "-4.5EUR",
    "50ms", "1.2s", "5m", "2h", "1d", "0.5ms", "-5m", "5 m", "5ms5", "5mm", "5H", "5sec", "1.d", "10d_", "1w",
    "USD", "ms", "x1", "",
]  # fmt: skip

_LITERALS = [("MONEY", MONEY), ("DURATION", DURATION), ("NUMBER", NUMBER)]


def _lark_accepts(terminal: str, s: str) -> bool:
    return re.fullmatch(lark_terminal_regex(terminal), s) is not None


@cache
def _tm_pattern(scope: str):
    return onigurumacffi.compile(f"(?:{_literal_regex(load_tm_grammar(), scope)})\\z")


def _tm_accepts(scope: str, s: str) -> bool:
    return _tm_pattern(scope).match(s) is not None


@pytest.mark.parametrize(("terminal", "scope"), _LITERALS)
def test_the_literal_patterns_accept_what_the_lark_terminals_accept(terminal, scope):
    accepted = [s for s in _SAMPLES if _lark_accepts(terminal, s)]
    assert accepted, "the samples should hold some literals of each kind"
    assert [s for s in _SAMPLES if _tm_accepts(scope, s)] == accepted


@pytest.mark.parametrize(("terminal", "scope"), _LITERALS)
@settings(max_examples=300, deadline=None)
@given(s=st.text(alphabet="0123456789.-  \tmshdwUSDEURxyz_", max_size=12))
def test_the_literal_patterns_agree_with_lark_on_random_strings(terminal, scope, s):
    assert _tm_accepts(scope, s) == _lark_accepts(terminal, s), s


@pytest.mark.parametrize(("terminal", "scope"), _LITERALS)
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_every_literal_lark_accepts_the_textmate_grammar_accepts(terminal, scope, data):
    # Strings drawn from lark's own regex (its trailing lookahead left out: nothing follows here).
    regex = re.sub(r"\(\?!\[A-Za-z0-9_\]\)$", "", lark_terminal_regex(terminal))
    s = data.draw(st.from_regex(regex, fullmatch=True))
    assert _lark_accepts(terminal, s)
    assert _tm_accepts(scope, s), s


def test_literals_are_scoped_number_and_unit():
    scopes = shipped_tokenizer()
    got = scopes("4.50 USD")
    assert [NUMBER in s for s in got] == [True] * 4 + [False] * 4
    assert [CURRENCY in s for s in got] == [False] * 5 + [True] * 3
    got = scopes("1.2s")
    assert [NUMBER in s for s in got] == [True, True, True, False]
    assert [DURATION_UNIT in s for s in got] == [False, False, False, True]
    got = scopes("50ms")
    assert [DURATION_UNIT in s for s in got] == [False, False, True, True]
    assert all(NUMBER in s and MONEY not in s and DURATION not in s for s in scopes("-0.25"))
