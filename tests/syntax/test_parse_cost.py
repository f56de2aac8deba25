"""Parsing costs a small, constant amount per character: memory and work grow linearly with the
input, whatever its shape (docs/language.md "Limits").

Asserted as ratios measured in the same run, never as wall-clock limits: peak memory per input
character (tracemalloc), how many characters of the source text are scanned again (a per-span
rescan is quadratic over a file with many spans), and CPU time of 4x the input against 1x.
"""

from __future__ import annotations

import time
import tracemalloc

import pytest

from intento.diagnostics import Source
from intento.syntax import parse

#: The shapes a hostile (or just large) file can take, as a generator of about `n` characters.
SHAPES = {
    "one long string literal": lambda n: 'provider p { region "' + "x" * n + '" }\n',
    "a string of escapes": lambda n: 'provider p { region "' + "\\n" * (n // 2) + '" }\n',
    "one long dotted name": lambda n: "provider " + "a." * (n // 2) + "a {}\n",
    "one long comment": lambda n: "// " + "x" * n + "\nprovider p {}\n",
    "many lines": lambda n: "\n" * n + "provider p {}\n",
}


def _peak_bytes_per_char(text: str) -> float:
    parse(Source("warm.intent", "provider p {}"))  # the grammar is built once, outside the measure
    tracemalloc.start()
    try:
        f, diags = parse(Source("big.intent", text))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert f is not None and diags == []
    return peak / len(text)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: s.replace(" ", "_"))
def test_memory_per_character_is_small_and_does_not_grow(shape):
    # The text itself is not counted (it exists before the parse); a few bytes per character
    # hold the literal's value, its comment, or the line table. Before: ~490 bytes per character
    # for a long string (the regex engine kept a backtracking point per character).
    small = _peak_bytes_per_char(SHAPES[shape](50_000))
    large = _peak_bytes_per_char(SHAPES[shape](200_000))
    assert small < 50 and large < 50, (small, large)
    assert large < 1.5 * small + 5, (small, large)


class _CountingText(str):
    """A source text that counts the characters its own scanning methods go over."""

    scanned = 0

    def _note(self, start=0, end=None) -> None:
        end = len(self) if end is None else min(end, len(self))
        type(self).scanned += max(0, end - (start or 0))

    def count(self, sub, start=None, end=None):
        self._note(start, end)
        return super().count(sub, start, end)

    def find(self, sub, start=None, end=None):
        self._note(start, end)
        return super().find(sub, start, end)

    def rfind(self, sub, start=None, end=None):
        self._note(start, end)
        return super().rfind(sub, start, end)

    def splitlines(self, keepends=False):
        self._note()
        return super().splitlines(keepends)

    def split(self, sep=None, maxsplit=-1):
        self._note()
        return super().split(sep, maxsplit)


def _rescanned(n_lines: int) -> int:
    # A line per provider, each with a bad escape: every error has a span, and is rendered.
    text = _CountingText("".join(f'provider p{i} {{ region "\\q" }}\n' for i in range(n_lines)))
    _CountingText.scanned = 0
    f, diags = parse(Source("escapes.intent", text))
    assert f is None and {d.code for d in diags} == {"E009"}
    for d in diags:
        d.render()
    return _CountingText.scanned


def test_spans_and_snippets_do_not_rescan_the_text():
    # Before: each span counted the newlines from the start of the text, and each snippet split
    # the whole text into lines: 16x the scanning for 4x the lines.
    small, large = _rescanned(1_000), _rescanned(4_000)
    assert large <= 6 * max(small, 50_000), (small, large)


def _cpu(text: str) -> float:
    best = float("inf")
    for _ in range(3):
        t = time.process_time()
        parse(Source("t.intent", text))
        best = min(best, time.process_time() - t)
    return best


def _project(n: int) -> str:
    """A valid project of about ``n`` characters, dense in tokens and spans."""
    parts, size, i = [], 0, 0
    while size < n:
        block = (
            f'provider p{i} {{ region "eu"; tags ["a", "b"] }}\n'
            f"action a{i} {{\n  requires f{i} and (g{i} or h{i})\n  achieves k{i}\n"
            f"  via p{i} {{ cost 0.10 USD; latency 40ms; reliability 0.99 }}\n}}\n"
            f'policy q{i} "title" {{ forbid via [a{i}] where region != "us" and cost > 1 USD }}\n'
        )
        parts.append(block)
        size += len(block)
        i += 1
    return "".join(parts)


def test_parse_time_grows_linearly():
    parse(Source("warm.intent", "provider p {}"))
    small, large = _project(20_000), _project(80_000)
    ratio = _cpu(large) / _cpu(small)
    # 4x the input; a generous bound (CPU time on a shared machine), well below quadratic (16x).
    assert ratio < 9, ratio


def test_a_large_parse_and_check_run_no_garbage_collection_and_leave_it_on():
    # A parse allocates a tree and frees nothing; before, the cyclic collector walked the growing
    # heap again and again (about half the CPU time of a 1 MB parse). Counted, not timed: at most
    # one collection each, when the collector comes back on at the end.
    import gc
    import threading

    from intento.check import check_sources
    from intento.syntax import _parser

    text = _project(100_000)
    collections: list[int] = []

    def count(phase, info):
        if phase == "start":
            collections.append(info["generation"])

    def counted(fn, *args) -> int:
        before = len(collections)
        fn(*args)
        return len(collections) - before

    assert gc.isenabled()
    gc.callbacks.append(count)
    try:
        unpaused = counted(_parser._parse, Source("big.intent", text))  # the parse without the pause
        during_parse = counted(parse, Source("big.intent", text))
        during_check = counted(check_sources, [Source("big.intent", text)])
        # Concurrent callers share the pause; the last one out turns the collector back on.
        threads = [threading.Thread(target=parse, args=(Source(f"t{i}.intent", text),)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        gc.callbacks.remove(count)
    assert unpaused > 20, unpaused
    assert during_parse <= 2 and during_check <= 2, (during_parse, during_check)
    assert gc.isenabled()
