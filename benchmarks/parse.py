"""Parsing cost: CPU time and peak memory per megabyte of `.intent` text, by the shape of the text.

    python -m benchmarks.parse [--sizes 100000 400000] [--check]     # 990000: the largest file allowed

Shapes: a valid project dense in tokens and spans, and the hostile ones (one long string literal,
a string of escapes, one long dotted name, a list of one-character numbers, bad escapes, each a
diagnostic). CPU time is the best of two parses; peak memory is measured in a third parse with
tracemalloc (which slows it down, so it is not timed), not counting the text itself. ``--check``
also times `check_sources` on the valid project. Prints a Markdown table; nothing is asserted
(tests/syntax/test_parse_cost.py asserts the ratios) and it is not part of ``python -m benchmarks``.
"""

from __future__ import annotations

import argparse
import platform
import time
import tracemalloc

from intento.check import check_sources
from intento.diagnostics import Source
from intento.syntax import MAX_FILE_CHARS, parse


def project(n: int) -> str:
    """A valid project of about ``n`` characters: providers, actions with options, policies."""
    parts, size, i = [], 0, 0
    while size < n:
        block = (
            f'provider p{i} {{ region "eu"; tags ["a", "b"] }}\n'
            f"action a{i} {{\n  requires f{i} and (g{i} or h{i})\n  achieves k{i}\n  timeout 5s\n"
            f"  via p{i} {{ cost 0.10 USD; latency 40ms; reliability 0.99 }}\n}}\n"
            f'policy q{i} "title {i}" {{\n  soft 3\n  forbid via [a{i}] where region != "us" and cost > 1 USD\n}}\n'
        )
        if size + len(block) > n:
            break
        parts.append(block)
        size += len(block)
        i += 1
    return "".join(parts)


SHAPES = {
    "valid project": project,
    "one long string": lambda n: 'provider p { region "' + "x" * (n - 30) + '" }\n',
    "string of escapes": lambda n: 'provider p { region "' + "\\n" * ((n - 30) // 2) + '" }\n',
    "one long dotted name": lambda n: "provider " + "a." * ((n - 20) // 2) + "a {}\n",
    "list of numbers": lambda n: "provider p { tags [" + "1," * ((n - 30) // 2) + "1] }\n",
    "bad escapes (errors)": lambda n: 'provider p { region "' + "\\q" * ((n - 30) // 2) + '" }\n',
}


def measure(text: str) -> dict:
    src = Source("bench.intent", text)
    cpu = float("inf")
    for _ in range(2):
        t = time.process_time()
        f, diags = parse(src)
        cpu = min(cpu, time.process_time() - t)
    del f
    tracemalloc.start()
    try:
        parse(Source("bench.intent", text))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    total = getattr(diags, "total", len(diags))
    return {"chars": len(text), "cpu_s": cpu, "peak_bytes": peak, "result": f"{total:,} errors" if total else "ok"}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 400_000], help=f"characters per file (at most {MAX_FILE_CHARS:,})")
    ap.add_argument("--check", action="store_true", help="also time check_sources on the valid project")
    args = ap.parse_args(argv)
    parse(Source("warm.intent", "provider p {}"))  # build the grammar outside the measure
    print(f"parse cost ({platform.processor() or platform.machine()}, Python {platform.python_version()})\n")
    print("| shape | characters | result | parse CPU s | CPU s per MB | peak MB | peak bytes per character |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for name, make in SHAPES.items():
        for n in args.sizes:
            r = measure(make(min(n, MAX_FILE_CHARS)))
            mb = r["chars"] / 1e6
            print(
                f"| {name} | {r['chars']:,} | {r['result']} | {r['cpu_s']:.2f} | {r['cpu_s'] / mb:.2f} | "
                f"{r['peak_bytes'] / 1e6:.1f} | {r['peak_bytes'] / r['chars']:.0f} |",
                flush=True,
            )
    if args.check:
        print("\n| check_sources, valid project | characters | CPU s | CPU s per MB |")
        print("|---|---:|---:|---:|")
        for n in args.sizes:
            text = project(min(n, MAX_FILE_CHARS))
            t = time.process_time()
            check_sources([Source("bench.intent", text)])
            cpu = time.process_time() - t
            print(f"| | {len(text):,} | {cpu:.2f} | {cpu / (len(text) / 1e6):.2f} |", flush=True)


if __name__ == "__main__":
    main()
