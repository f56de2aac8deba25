"""What the editor tests share: the shipped TextMate grammar, run by `textmate_grammar` (a Python
tokenizer for TextMate grammars, on Oniguruma like VS Code's), and the lark grammar's own lexer,
which says independently what each piece of a file is.

`scopes(text)` gives, for each character of the text, the scopes the TextMate grammar gives it
(outermost first, `source.intento` always first); `lark_tokens(text)` gives lark's tokens, the
ignored ones (whitespace, comments) included.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VSCODE = ROOT / "editors" / "vscode"
TM_GRAMMAR = VSCODE / "syntaxes" / "intento.tmLanguage.json"
LARK_GRAMMAR = ROOT / "grammar" / "intento.lark"
FIXTURES = Path(__file__).resolve().parent / "fixtures"

#: Every `.intent` file shipped with intento, and the edge cases of fixtures/.
SHIPPED = sorted([*ROOT.glob("examples/**/*.intent"), *ROOT.glob("policies/**/*.intent")])
EDGE_CASES = FIXTURES / "highlighting.intent"

# ---- the scopes the grammar promises (editors/vscode/README.md, docs/editors.md) ---------------

DECLARATION_KEYWORDS = ("provider", "action", "intent", "policy", "test")
LOGICAL_KEYWORDS = ("and", "or", "not", "in")
BOOLEANS = ("true", "false")

#: The scope every keyword gets, by category (any other keyword: `keyword.other.intento`).
KEYWORD_SCOPE = {
    **{w: "keyword.declaration.intento" for w in DECLARATION_KEYWORDS},
    **{w: "keyword.operator.logical.intento" for w in LOGICAL_KEYWORDS},
    **{w: "constant.language.boolean.intento" for w in BOOLEANS},
}
OTHER_KEYWORD_SCOPE = "keyword.other.intento"

#: The scope of the name each declaration keyword declares.
DECLARED_NAME_SCOPE = {
    "provider": "entity.name.type.provider.intento",
    "action": "entity.name.function.action.intento",
    "intent": "entity.name.function.intent.intento",
    "policy": "entity.name.type.policy.intento",
    "test": "entity.name.function.test.intento",
}

NUMBER = "constant.numeric.decimal.intento"
MONEY = "meta.money.intento"
CURRENCY = "keyword.other.unit.currency.intento"
DURATION = "meta.duration.intento"
DURATION_UNIT = "keyword.other.unit.duration.intento"
STRING = "string.quoted.double.intento"
STRING_BEGIN = "punctuation.definition.string.begin.intento"
STRING_END = "punctuation.definition.string.end.intento"
ESCAPE = "constant.character.escape.intento"
INVALID_ESCAPE = "invalid.illegal.escape.intento"
COMMENT = "comment.line.double-slash.intento"
COMMENT_START = "punctuation.definition.comment.intento"
NAME = "variable.other.intento"
DOTTED_NAME = "variable.other.dotted.intento"
DOT = "punctuation.accessor.dot.intento"
TYPE = "support.type.primitive.intento"

#: lark's punctuation and operator terminals, and their scopes.
PUNCTUATION_SCOPE = {
    "LBRACE": "punctuation.section.block.begin.intento",
    "RBRACE": "punctuation.section.block.end.intento",
    "LSQB": "punctuation.section.brackets.begin.intento",
    "RSQB": "punctuation.section.brackets.end.intento",
    "LPAR": "punctuation.section.parens.begin.intento",
    "RPAR": "punctuation.section.parens.end.intento",
    "COMMA": "punctuation.separator.comma.intento",
    "SEMICOLON": "punctuation.separator.semicolon.intento",
    "COLON": "punctuation.separator.colon.intento",
    "CMP": "keyword.operator.comparison.intento",
    "EQUAL": "keyword.operator.assignment.intento",
    "STAR": "keyword.operator.arithmetic.intento",
    "PLUS": "keyword.operator.arithmetic.intento",
}


def keyword_scope(word: str) -> str:
    return KEYWORD_SCOPE.get(word, OTHER_KEYWORD_SCOPE)


def is_keywordish(scope: str) -> bool:
    """A scope that marks a keyword or an operator (the units of money and durations aside)."""
    return (scope.startswith("keyword.") and not scope.startswith("keyword.other.unit.")) or scope.startswith("constant.language.")


# ---- lark ------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def lark_parser():
    import lark

    return lark.Lark.open(str(LARK_GRAMMAR), parser="lalr", lexer="basic")


def lark_keywords() -> set[str]:
    """The keywords of the lark grammar: its literals that are words (`"provider"`, `"and"`, ...)."""
    from lark.lexer import PatternStr

    return {t.pattern.value for t in lark_parser().terminals if isinstance(t.pattern, PatternStr) and re.fullmatch(r"[A-Za-z_]\w*", t.pattern.value)}


def lark_terminal_regex(name: str) -> str:
    return lark_parser().get_terminal(name).pattern.to_regexp()


def is_keyword_token(tok) -> bool:
    from lark.lexer import PatternStr

    pattern = lark_parser().get_terminal(tok.type).pattern
    return isinstance(pattern, PatternStr) and pattern.value.isalpha()


def lark_tokens(text: str) -> list:
    """lark's tokens for the whole text, whitespace and comments included (lark.exceptions.LexError
    if it does not lex)."""
    return list(lark_parser().lex(text, dont_ignore=True))


# ---- the TextMate grammar -------------------------------------------------------------------


def load_tm_grammar() -> dict:
    return json.loads(TM_GRAMMAR.read_text(encoding="utf-8"))


def _language_parser_class():
    # textmate_grammar makes a folder `.textmate_cache` in the working directory when it is first
    # imported: import it from a scratch folder, not from the checkout.
    if "textmate_grammar.utils.cache" not in sys.modules:
        here, scratch = os.getcwd(), tempfile.mkdtemp(prefix="textmate-cache-")
        os.chdir(scratch)
        try:
            import textmate_grammar.utils.cache  # noqa: F401
        finally:
            os.chdir(here)
            shutil.rmtree(scratch, ignore_errors=True)  # only its shelve cache would use it: not used here
    from textmate_grammar.parsers.base import LanguageParser

    # It logs a warning for every stretch of text a pattern skips while looking for a match.
    logging.getLogger("textmate_grammar").setLevel(logging.ERROR)
    return LanguageParser


def make_tokenizer(grammar: dict) -> Callable[[str], list[tuple[str, ...]]]:
    """`scopes(text)`: the scopes of each character of `text` under `grammar`."""
    parser = _language_parser_class()(grammar)

    def scopes(text: str) -> list[tuple[str, ...]]:
        assert "\r" not in text, "the tokenizer counts \\r\\n as one character"
        line_starts = [0]
        for i, c in enumerate(text):
            if c == "\n":
                line_starts.append(i + 1)
        out: list[tuple[str, ...]] = [("source.intento",)] * len(text)
        if not text:
            return out
        # textmate_grammar 0.6 fails (IndexError) on a text whose last line ends in whitespace
        # without a newline: give it the newline (a file's last line usually has one anyway).
        element = parser.parse_string(text if text.endswith("\n") else text + "\n")
        if element is None:  # nothing matched at all
            return out
        for (line, col), content, keys in element.flatten():
            start = line_starts[line] + col
            for i in range(start, min(start + len(content), len(text))):
                out[i] = tuple(keys)
        return out

    return scopes


@lru_cache(maxsize=1)
def shipped_tokenizer() -> Callable[[str], list[tuple[str, ...]]]:
    return make_tokenizer(load_tm_grammar())


def position(text: str, offset: int) -> str:
    line = text.count("\n", 0, offset) + 1
    col = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return f"{line}:{col}"
