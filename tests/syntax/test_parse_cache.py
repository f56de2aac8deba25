"""The project cache of parsed files (intento._cache), and what a command that never solves
imports.

A second `parse` of a text is served from the cache (proved: an entry appears, and the parser is
made to fail on the second call) and is bound to the `Source` being read, whatever its name; a
damaged entry is ignored and overwritten; ``INTENTO_NO_CACHE=1`` writes nothing; a cache folder
that cannot exist costs nothing; a file with errors is never cached. And `intento check`, `runs`
and `status` run without ortools or pandas (PEP 562 names in `intento`), while `intento plan`
does import ortools (so the check can fail)."""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from intento import _cache
from intento.diagnostics import Source, Span
from intento.syntax import _parser, ast, parse

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "order_fulfilment"
TEXT = (EXAMPLE / "actions.intent").read_text(encoding="utf-8")
CORPUS = sorted(p for d in ("examples", "policies", "tests/fixtures", "tests/golden") if (ROOT / d).is_dir() for p in (ROOT / d).rglob("*.intent"))


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """A fresh, empty cache folder for this test (not yet created: the cache makes it)."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("INTENTO_CACHE_DIR", str(folder))
    monkeypatch.delenv("INTENTO_NO_CACHE", raising=False)
    return folder


def entries(folder: Path) -> list[Path]:
    """Parsed-file entries (the analysed grammar, kept under ``grammar/``, is not one)."""
    return sorted((folder / _cache.FORMAT).rglob("*.pickle")) if (folder / _cache.FORMAT).is_dir() else []


def leftovers(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.tmp")) if folder.is_dir() else []


class Calls:
    """`_parser._parse` counted (or made to fail): how we know whether a parse really ran."""

    def __init__(self, monkeypatch, fail: bool = False):
        self.n = 0
        self.fail = fail
        real = _parser._parse

        def counted(source):
            self.n += 1
            if self.fail:
                raise AssertionError(f"{source.name} was parsed, not read from the cache")
            return real(source)

        monkeypatch.setattr(_parser, "_parse", counted)


def spans(node, path: str = "file") -> list:
    """Every node of a parse with its type and span (as numbers, and the span's Source object)."""
    out = []
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        span = getattr(node, "span", None)
        pos = None if span is None else (span.start, span.end, span.line, span.column, span.end_line, span.end_column)
        out.append((path, type(node).__name__, pos, None if span is None else span.source))
        for f in dataclasses.fields(node):
            if f.name != "span":
                out.extend(spans(getattr(node, f.name), f"{path}.{f.name}"))
    elif isinstance(node, tuple):
        for i, item in enumerate(node):
            out.extend(spans(item, f"{path}[{i}]"))
    else:
        out.append((path, type(node).__module__ + "." + type(node).__qualname__, repr(node), None))
    return out


def assert_same_parse_of(got: ast.File, source: Source, expected: ast.File) -> None:
    """``got`` is ``expected`` (equal, the same spans and leaf types) with every span on ``source``."""
    assert got == expected
    assert got.comments == expected.comments
    g, e = spans(got), spans(expected)
    assert [r[:3] for r in g] == [r[:3] for r in e]
    sources = {id(r[3]) for r in g if r[3] is not None}
    assert sources == {id(source)}, {r[3].name for r in g if r[3] is not None}


def reference(text: str, name: str, monkeypatch) -> tuple[ast.File, Source]:
    """A parse of ``text`` with the cache off."""
    with monkeypatch.context() as m:
        m.setenv("INTENTO_NO_CACHE", "1")
        src = Source(name, text)
        file, diags = parse(src)
    assert diags == [], [d.one_line() for d in diags]
    return file, src


# ---- a second parse comes from the cache -------------------------------------------------------


def test_second_parse_is_read_from_the_cache_and_bound_to_the_new_source(cache, monkeypatch):
    first_src = Source("examples/a.intent", TEXT)
    first, diags = parse(first_src)
    assert diags == [] and first is not None
    [entry] = entries(cache)
    assert entry == _cache._entry(cache, TEXT)
    assert b"examples/a.intent" not in entry.read_bytes()  # an entry names no file

    Calls(monkeypatch, fail=True)
    second_src = Source("elsewhere/b.intent", TEXT)
    second, diags = parse(second_src)
    assert diags == []
    assert second is not first
    assert_same_parse_of(second, second_src, first)
    assert second.span.source is second_src and second.span == Span.whole_text(second_src)
    # The first parse is untouched: still bound to its own source.
    assert {id(r[3]) for r in spans(first) if r[3] is not None} == {id(first_src)}
    # And a third read, under the first name again, is bound to that new object.
    third_src = Source("examples/a.intent", TEXT)
    third, _ = parse(third_src)
    assert_same_parse_of(third, third_src, first)
    assert entries(cache) == [entry]


def test_cached_parse_equals_an_uncached_one_for_every_repository_file(cache, monkeypatch):
    texts = {str(p.relative_to(ROOT)): p.read_text(encoding="utf-8") for p in CORPUS}
    good = {}
    for name, text in texts.items():
        file, diags = parse(Source(name, text))
        if file is not None:
            good[name] = text
    assert len(good) >= 15
    assert len(entries(cache)) == len(set(good.values()))
    expected_of = {name: reference(text, name, monkeypatch)[0] for name, text in good.items()}
    calls = Calls(monkeypatch, fail=True)
    for name, text in good.items():
        expected = expected_of[name]
        src = Source("copy/" + name, text)
        got, diags = parse(src)
        assert diags == []
        assert_same_parse_of(got, src, expected)
    assert calls.n == 0


def test_a_different_layout_is_a_different_entry(cache, monkeypatch):
    """The key is the exact text: the same declarations laid out otherwise never get the other
    layout's spans."""
    a = 'provider p { region "eu" }\n'
    b = 'provider   p {\n  region "eu" }\n'
    fa, _ = parse(Source("a.intent", a))
    src = Source("b.intent", b)
    fb, _ = parse(src)
    assert fa == fb and len(entries(cache)) == 2
    expected, _ = reference(b, "b.intent", monkeypatch)
    assert_same_parse_of(fb, src, expected)
    Calls(monkeypatch, fail=True)
    again = Source("c.intent", b)
    assert_same_parse_of(parse(again)[0], again, expected)


def test_later_diagnostics_name_the_file_being_read(cache, monkeypatch):
    """A cached parse of a file with a checker error, read under another name: the checker's
    diagnostics (built from the cached spans) name and show the second file."""
    from intento.check import check_sources

    text = (ROOT / "tests/golden/diagnostics/07_unknown_action_undo.intent").read_text(encoding="utf-8")
    first = check_sources([Source("first.intent", text)])
    assert first.spec is None and entries(cache)
    Calls(monkeypatch, fail=True)
    second = check_sources([Source("second.intent", text)])
    assert [d.one_line().replace("second.intent", "first.intent") for d in second.diagnostics] == [d.one_line() for d in first.diagnostics]
    assert all(d.span.source.name == "second.intent" for d in second.diagnostics if d.span is not None)
    assert [d.render().replace("second.intent", "first.intent") for d in second.diagnostics] == [d.render() for d in first.diagnostics]


def test_concurrent_reads_are_each_bound_to_their_own_source(cache, monkeypatch):
    expected, _ = reference(TEXT, "ref.intent", monkeypatch)
    parse(Source("warm.intent", TEXT))
    Calls(monkeypatch, fail=True)
    barrier = threading.Barrier(8)

    def read(i):
        src = Source(f"t{i}.intent", TEXT)
        barrier.wait()
        got = [parse(src)[0] for _ in range(5)]
        return src, got

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(read, range(8)))
    for src, got in results:
        for file in got:
            assert_same_parse_of(file, src, expected)


# ---- damaged entries -----------------------------------------------------------------------------


def _damage(kind: str, good: bytes) -> bytes:
    if kind == "truncated":
        return good[: len(good) // 2]
    if kind == "one byte short":
        return good[:-1]
    if kind == "empty":
        return b""
    if kind == "garbage":
        return bytes(range(256)) * 4
    if kind == "flipped byte":
        mid = len(good) // 2
        return good[:mid] + bytes([good[mid] ^ 0xFF]) + good[mid + 1 :]
    if kind == "pickle of a dict":
        return pickle.dumps({"decls": (), "span": None})
    if kind == "pickle of an AST node that is not a File":
        return pickle.dumps(ast.Ident("x"))
    if kind == "pickle of None":
        return pickle.dumps(None)
    if kind == "pickle naming a missing module":
        return b"cno_such_mod\nX\n."  # GLOBAL no_such_mod.X, STOP
    raise AssertionError(kind)


DAMAGE = [
    "truncated",
    "one byte short",
    "empty",
    "garbage",
    "flipped byte",
    "pickle of a dict",
    "pickle of an AST node that is not a File",
    "pickle of None",
    "pickle naming a missing module",
]


@pytest.mark.parametrize("kind", DAMAGE)
def test_a_damaged_entry_is_ignored_and_replaced(cache, monkeypatch, kind):
    parse(Source("a.intent", TEXT))
    [entry] = entries(cache)
    good = entry.read_bytes()
    entry.write_bytes(_damage(kind, good))
    calls = Calls(monkeypatch)
    src = Source("b.intent", TEXT)
    got, diags = parse(src)
    assert diags == []
    assert calls.n == 1  # parsed again
    expected, _ = reference(TEXT, "ref.intent", monkeypatch)
    assert_same_parse_of(got, src, expected)
    # The entry was written again: the next read comes from the cache, whole.
    assert entry.read_bytes() == good
    calls.fail = True
    again = Source("c.intent", TEXT)
    assert_same_parse_of(parse(again)[0], again, expected)
    assert leftovers(cache) == []


def test_an_entry_that_is_a_directory_is_ignored(cache, monkeypatch):
    entry = _cache._entry(cache, TEXT)
    entry.mkdir(parents=True)
    expected, _ = reference(TEXT, "ref.intent", monkeypatch)
    calls = Calls(monkeypatch)
    for name in ("a.intent", "b.intent"):
        src = Source(name, TEXT)
        got, diags = parse(src)
        assert diags == []
        assert_same_parse_of(got, src, expected)
    assert calls.n == 2 and entry.is_dir()
    assert leftovers(cache) == []


def test_a_foreign_entry_holding_a_file_of_another_source_is_not_trusted(cache, monkeypatch):
    """An entry not written by the cache (here: a `File` pickled the generic way, its spans
    carrying the `Source` it was parsed from) must not hand out spans naming that other file:
    either it is rebound to the reading source or it is ignored."""
    first_src = Source("a.intent", TEXT)
    first, _ = parse(first_src)
    [entry] = entries(cache)
    entry.write_bytes(pickle.dumps(first))
    src = Source("b.intent", TEXT)
    got, diags = parse(src)
    assert diags == []
    assert_same_parse_of(got, src, first)


class _Planted:
    """What a planted entry may do when it is unpickled: here, create a file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_planted_entry_runs_no_code(cache, monkeypatch, tmp_path):
    """An entry is data: unpickling one must not call what it names (a cache folder may be
    shared, or restored from a CI cache another job wrote). Only the globals the cache itself
    writes (`_span`, `_node`, the AST classes, `Decimal`, `Money`, `Duration`) may be named."""
    parse(Source("a.intent", TEXT))
    [entry] = entries(cache)
    marker = tmp_path / "pwned"
    entry.write_bytes(pickle.dumps(_Planted(marker)))
    src = Source("b.intent", TEXT)
    got, diags = parse(src)
    assert diags == [] and got is not None
    assert not marker.exists(), "unpickling a cache entry called Path.touch"


# ---- no cache, or no place for one ---------------------------------------------------------------


@pytest.mark.parametrize("value", ["1", "yes", "true"])
def test_no_cache_writes_nothing_and_always_parses(cache, monkeypatch, value):
    monkeypatch.setenv("INTENTO_NO_CACHE", value)
    calls = Calls(monkeypatch)
    for name in ("a.intent", "b.intent", "a.intent"):
        file, diags = parse(Source(name, TEXT))
        assert diags == [] and file is not None
    assert calls.n == 3
    assert not cache.exists()


def test_no_cache_does_not_read_an_existing_entry(cache, monkeypatch):
    parse(Source("a.intent", TEXT))
    [entry] = entries(cache)
    monkeypatch.setenv("INTENTO_NO_CACHE", "1")
    calls = Calls(monkeypatch)
    parse(Source("b.intent", TEXT))
    assert calls.n == 1


@pytest.mark.parametrize("value", ["0", ""])
def test_no_cache_zero_or_empty_keeps_the_cache_on(cache, monkeypatch, value):
    monkeypatch.setenv("INTENTO_NO_CACHE", value)
    parse(Source("a.intent", TEXT))
    assert len(entries(cache)) == 1


def test_cache_dir_follows_xdg_when_not_set(tmp_path, monkeypatch):
    monkeypatch.delenv("INTENTO_CACHE_DIR", raising=False)
    monkeypatch.delenv("INTENTO_NO_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _cache.cache_dir() == tmp_path / "xdg" / "intento"
    parse(Source("a.intent", TEXT))
    assert len(entries(tmp_path / "xdg" / "intento")) == 1


@pytest.mark.parametrize("where", ["under a regular file", "a regular file", "a name too long"])
def test_an_impossible_cache_dir_still_parses(tmp_path, monkeypatch, where):
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    path = {"under a regular file": str(blocker / "cache"), "a regular file": str(blocker), "a name too long": str(tmp_path / ("x" * 300))}[where]
    monkeypatch.setenv("INTENTO_CACHE_DIR", path)
    monkeypatch.delenv("INTENTO_NO_CACHE", raising=False)
    expected, _ = reference(TEXT, "ref.intent", monkeypatch)
    calls = Calls(monkeypatch)
    for name in ("a.intent", "b.intent"):
        src = Source(name, TEXT)
        got, diags = parse(src)
        assert diags == []
        assert_same_parse_of(got, src, expected)
    assert calls.n == 2
    assert blocker.read_text() == "not a folder"


def test_a_failed_write_leaves_no_temporary_file(cache, monkeypatch):
    def refuse(*a, **k):
        raise PermissionError("read-only")

    monkeypatch.setattr(_cache.os, "replace", refuse)
    src = Source("a.intent", TEXT)
    got, diags = parse(src)
    assert diags == [] and got is not None
    assert entries(cache) == [] and leftovers(cache) == []


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes into a read-only folder")
def test_a_read_only_cache_dir_still_parses(cache, monkeypatch):
    cache.mkdir()
    cache.chmod(0o500)
    try:
        got, diags = parse(Source("a.intent", TEXT))
        assert diags == [] and got is not None
        assert entries(cache) == []
    finally:
        cache.chmod(0o700)


# ---- files with errors are never cached ----------------------------------------------------------

BROKEN = {
    "syntax error": "provider p { region = \"eu\" }\n",
    "unterminated string": 'provider p { region "eu }\n',
    "unexpected end": "action a { requires x and",
    "unknown escape (builder error)": 'provider p { region "\\q" }\n',
    "too many digits (builder error)": "provider p { n " + "9" * 40 + " }\n",
    "nested too deeply": "policy p { when " + "not " * 60 + "x }\n",
    "too large": "// " + "x" * (_parser.MAX_FILE_CHARS + 1),
}


@pytest.mark.parametrize("name", BROKEN)
def test_a_file_with_errors_is_not_cached(cache, monkeypatch, name):
    text = BROKEN[name]
    calls = Calls(monkeypatch)
    results = []
    for i in range(3):
        src = Source(f"f{i % 2}.intent", text)
        file, diags = parse(src)
        assert file is None and diags and all(d.is_error for d in diags)
        assert all(d.span is None or d.span.source is src for d in diags)
        results.append([d.render().replace(src.name, "F") for d in diags])
    assert results[0] == results[1] == results[2]
    assert calls.n == 3
    assert entries(cache) == []


def test_golden_files_with_parse_errors_give_their_diagnostics_every_time(cache, monkeypatch):
    broken = []
    for p in CORPUS:
        text = p.read_text(encoding="utf-8")
        first = parse(Source(p.name, text))
        if first[0] is None:
            broken.append(p)
            second = parse(Source(p.name, text))
            assert second[0] is None and list(second[1]) == list(first[1])
    assert broken, "no corpus file fails to parse"
    assert all(_cache._entry(cache, p.read_text(encoding="utf-8")).exists() is False for p in broken)


# ---- what the command line imports --------------------------------------------------------------

# Runs the typer app in this process (no console script), then reports what was imported.
PROBE = r"""
import json, sys
from intento.cli import app
try:
    code = app(sys.argv[1:], standalone_mode=False)
except SystemExit as e:
    code = e.code
print("\n@@" + json.dumps({"exit": code or 0, "modules": sorted(m for m in ("ortools", "pandas", "lark", "numpy") if m in sys.modules)}))
"""


def cli(*args, cache_dir: Path, no_cache: bool = False) -> dict:
    env = dict(os.environ, NO_COLOR="1", INTENTO_CACHE_DIR=str(cache_dir))
    env.pop("INTENTO_NO_CACHE", None)
    if no_cache:
        env["INTENTO_NO_CACHE"] = "1"
    proc = subprocess.run([sys.executable, "-c", PROBE, *map(str, args)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("@@")]
    assert proc.returncode == 0 and lines, f"exit {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    report = json.loads(lines[-1][2:])
    report["stdout"], report["stderr"] = proc.stdout, proc.stderr
    return report


CHECK = ("check", "examples/order_fulfilment", "policies")
REQUEST = EXAMPLE / "requests" / "eu_order.json"
PLAN = ("plan", "examples/order_fulfilment", "policies", "--intent", "fulfil_order", "--given", REQUEST)


def test_check_imports_neither_ortools_nor_pandas_and_a_warm_cache_not_even_lark(tmp_path):
    cold = cli(*CHECK, cache_dir=tmp_path / "c")
    assert cold["exit"] == 0, cold["stdout"] + cold["stderr"]
    assert "ortools" not in cold["modules"] and "pandas" not in cold["modules"], cold["modules"]
    assert "lark" in cold["modules"]  # a cold cache: every file is parsed
    assert entries(tmp_path / "c") and list((tmp_path / "c" / "grammar").glob("*.lark.pickle"))
    warm = cli(*CHECK, cache_dir=tmp_path / "c")
    assert warm["exit"] == 0 and warm["stdout"].replace("\n@@", "@@").split("@@")[0] == cold["stdout"].replace("\n@@", "@@").split("@@")[0]
    assert warm["modules"] == [], warm["modules"]  # every file from the cache: no lark, no solver


def test_check_with_no_cache_writes_no_cache_at_all(tmp_path):
    out = cli(*CHECK, cache_dir=tmp_path / "c", no_cache=True)
    assert out["exit"] == 0
    assert "ortools" not in out["modules"] and "pandas" not in out["modules"]
    assert not (tmp_path / "c").exists()  # neither parsed files nor the analysed grammar


def test_plan_imports_ortools_but_not_pandas(tmp_path):
    out = cli(*PLAN, cache_dir=tmp_path / "c")
    assert out["exit"] == 0, out["stdout"] + out["stderr"]
    assert "ortools" in out["modules"] and "numpy" in out["modules"]
    assert "pandas" not in out["modules"]  # intento.backends._ortools


@pytest.mark.parametrize("command", ["runs", "status"])
def test_runs_and_status_without_a_store_import_no_solver(tmp_path, command):
    out = cli(command, "--store", tmp_path / "fresh.db", cache_dir=tmp_path / "c")
    assert out["exit"] == 1 and "no store" in out["stderr"]
    assert "ortools" not in out["modules"] and "pandas" not in out["modules"], out["modules"]


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """An empty store, and a store holding one finished (simulated) run."""
    from intento.execute import Store

    folder = tmp_path_factory.mktemp("stores")
    empty = folder / "empty.db"
    Store(empty).close()
    full = folder / "full.db"
    scenario = next((EXAMPLE / "scenarios").glob("*.json"))
    env = dict(os.environ, NO_COLOR="1")
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "intento"), "run", "examples/order_fulfilment", "policies", "--intent", "fulfil_order",
         "--given", str(REQUEST), "--simulate", str(scenario), "--store", str(full), "-q"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {"empty": empty, "full": full}


@pytest.mark.parametrize("store", ["empty", "full"])
@pytest.mark.parametrize("command", [("runs",), ("runs", "--format", "json"), ("status",), ("status", "--format", "json")], ids=" ".join)
def test_runs_and_status_import_neither_ortools_nor_pandas(tmp_path, stores, store, command):
    out = cli(*command, "--store", stores[store], cache_dir=tmp_path / "c")
    assert out["exit"] == 0, out["stdout"] + out["stderr"]
    if store == "full":
        assert "fulfil_order" in out["stdout"]
    assert "ortools" not in out["modules"] and "pandas" not in out["modules"], out["modules"]


def test_cache_new_false_reads_the_cache_but_adds_nothing(cache: Path):
    """The language server parses a new text at every pause in typing: it adds none of them."""
    from intento.check import check_sources
    from intento.syntax import parse_recovering

    typed = Source("typed.intent", 'provider p { region "EU" }\n')
    assert parse(typed, cache_new=False)[0] is not None
    parse_recovering(Source("t2.intent", 'provider q { region "EU" }\n'), cache_new=False)
    assert check_sources([Source("t3.intent", 'provider r { region "EU" }\n')], cache_new=False).ok
    assert entries(cache) == []
    # An entry already there is still read.
    saved = Source("saved.intent", 'provider s { region "EU" }\n')
    first, _ = parse(saved)
    assert len(entries(cache)) == 1
    again, _ = parse(Source("saved.intent", saved.text), cache_new=False)
    assert again == first and len(entries(cache)) == 1
