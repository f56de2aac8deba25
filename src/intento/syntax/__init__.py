"""Syntax: `.intent` text to AST (the only package that imports lark).

Input: `Source` objects (name + text). Output: `ast.File` values or located `Diagnostic`s.
"""

from intento.syntax import ast
from intento.syntax._parser import KEYWORDS, MAX_FILE_CHARS, MAX_NESTING, parse, scan_comments

__all__ = ["ast", "parse", "scan_comments", "KEYWORDS", "MAX_FILE_CHARS", "MAX_NESTING"]

from intento.syntax._format import format_file  # noqa: E402

__all__.append("format_file")
