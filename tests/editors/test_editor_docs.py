"""docs/editors.md says what the shipped files do: its configurations for other editors are
well-formed and start `intento lsp` on `.intent` files, its Emacs mode knows every keyword, and
its table of scopes is the TextMate grammar's."""

from __future__ import annotations

import json
import re
import tomllib

from intento.syntax import KEYWORDS
from tests.editors._support import ROOT, load_tm_grammar

DOC = ROOT / "docs" / "editors.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", DOC.read_text(encoding="utf-8"), re.DOTALL | re.MULTILINE)


def test_the_helix_configuration():
    (block,) = _blocks("toml")
    config = tomllib.loads(block)
    assert config["language-server"]["intento"] == {"command": "intento", "args": ["lsp"]}
    (language,) = config["language"]
    assert language["name"] == "intento" and language["file-types"] == ["intent"]
    assert language["scope"] == load_tm_grammar()["scopeName"]
    assert language["language-servers"] == ["intento"]
    assert language["comment-tokens"] == "//"


def test_the_neovim_configurations():
    blocks = _blocks("lua")
    assert len(blocks) == 3
    assert "vim.filetype.add({ extension = { intent = 'intento' } })" in blocks[0]
    for block in blocks:
        assert "cmd = { 'intento', 'lsp' }" in block
        assert block.count("(") == block.count(")") and block.count("{") == block.count("}")
    assert "vim.lsp.enable('intento')" in blocks[0]
    assert "vim.lsp.start(" in blocks[1]
    assert "filetypes = { 'intento' }" in blocks[2]


def _elisp_code(block: str) -> str:
    """The block without its strings, comments and character literals."""
    return re.sub(r'"(?:[^"\\]|\\.)*"|;[^\n]*|\?\\?.', " ", block)


def test_the_emacs_mode():
    (block,) = _blocks("elisp")
    code = _elisp_code(block)
    assert code.count("(") == code.count(")")
    listed = re.search(r"\(defconst intento-keywords\s+'\((.*?)\)\)", block, re.DOTALL)
    assert listed and set(re.findall(r'"([a-z]+)"', listed.group(1))) == set(KEYWORDS)
    assert """'(intento-mode . ("intento" "lsp"))""" in block
    assert """'("\\\\.intent\\\\'" . intento-mode)""" in block


def test_the_vscode_settings_are_the_extensions():
    text = DOC.read_text(encoding="utf-8")
    props = json.loads((ROOT / "editors/vscode/package.json").read_text(encoding="utf-8"))["contributes"]["configuration"]["properties"]
    for key in re.findall(r"`(intento\.[a-z.]+)`", text):
        if key.startswith(("intento.server", "intento.trace")):
            assert key in props, key
    assert '(default `["lsp"]`' in text and props["intento.server.args"]["default"] == ["lsp"]


def test_the_scope_table_is_the_grammars():
    text = DOC.read_text(encoding="utf-8")
    table = text[text.index("## The TextMate grammar's scopes") :]
    documented = set(re.findall(r"`([a-z][a-z.-]*\.intento)`", table))
    grammar = set(re.findall(r'"name": "([^"]+)"', json.dumps(load_tm_grammar()["repository"])))
    assert documented == grammar | {"source.intento"}
