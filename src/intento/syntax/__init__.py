"""Syntax: `.intent` text to AST and back (the only package that imports lark).

Input: `Source` objects (name + text). Output: `ast.File` values or located `Diagnostic`s; and
`format_file`, the AST (with its comments) back to canonical text.
"""

from intento.syntax import ast
from intento.syntax._format import FormatError, format_file
from intento.syntax._parser import KEYWORDS, MAX_FILE_CHARS, MAX_NESTING, Recovered, parse, parse_recovering, recover, scan_comments

__all__ = ["ast", "FormatError", "parse", "parse_recovering", "recover", "Recovered", "format_file", "scan_comments", "KEYWORDS", "MAX_FILE_CHARS", "MAX_NESTING"]
