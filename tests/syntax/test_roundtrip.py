"""Hypothesis: random well-formed projects round-trip through the formatter, which is idempotent;
and random or mutated input never raises anything but the project's diagnostics."""

from __future__ import annotations

import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from intento.check import check_sources
from intento.diagnostics import Diagnostic, Source
from intento.syntax import KEYWORDS, format_file, parse

# ---- a generator of well-formed source text, with random layout and comments ----------------

_first = st.sampled_from(string.ascii_letters + "_")
_rest = st.text(string.ascii_letters + string.digits + "_", max_size=6)
# A name of three capitals right after a number reads as its currency (`0 AAA` is money), so
# the generator, which may separate attributes by a space alone, leaves such names out.
simple = st.builds(lambda a, b: a + b, _first, _rest).filter(lambda s: s not in KEYWORDS and not (len(s) == 3 and s.isupper() and s.isalpha()))
dotted = st.lists(simple, min_size=1, max_size=3).map(".".join)

sp = st.sampled_from([" ", "  ", "\n", " \n  ", "\t"])
sep = st.sampled_from([" ", "; ", "\n", " ;\n", ";;"])
comment = st.sampled_from(["", " // note", " // a { tricky } \"comment\""])

number = st.one_of(st.integers(-999, 9999).map(str), st.decimals(0, 1000, places=3).map(lambda d: format(d, "f")))
money = st.builds(lambda n: f"{n} USD", st.decimals(0, 500, places=2).map(lambda d: format(d, "f")))
duration = st.builds(lambda n, u: f"{n}{u}", st.integers(1, 999), st.sampled_from(["ms", "s", "m", "h", "d"]))
strlit = st.text(string.ascii_letters + " -_{}/\\\"", max_size=8).map(lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"')
scalar = st.one_of(number, money, duration, strlit, st.sampled_from(["true", "false"]))
listlit = st.lists(st.one_of(strlit, number), max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]")
value = st.one_of(scalar, listlit)


@st.composite
def fact_formula(draw, depth=0):
    if depth > 2 or draw(st.booleans()):
        return draw(dotted)
    op = draw(st.sampled_from([" and ", " or "]))
    parts = draw(st.lists(fact_formula(depth + 1), min_size=2, max_size=3))
    text = op.join(parts)
    return f"({text})" if draw(st.booleans()) else text


@st.composite
def predicate(draw, depth=0):
    if depth > 2 or draw(st.booleans()):
        kind = draw(st.integers(0, 2))
        if kind == 0:
            return f"{draw(simple)} {draw(st.sampled_from(['==', '!=', '<', '<=', '>', '>=']))} {draw(scalar)}"
        if kind == 1:
            return f"{draw(strlit)} in {draw(simple)}"
        return f"provider in {draw(listlit)}"
    if draw(st.booleans()):
        return "not " + ("(" + draw(predicate(depth + 1)) + ")")
    op = draw(st.sampled_from([" and ", " or "]))
    return "(" + op.join(draw(st.lists(predicate(depth + 1), min_size=2, max_size=3))) + ")"


def attrs(draw):
    items = draw(st.lists(st.builds(lambda n, v: f"{n} {v}", simple, value), max_size=3))
    return "{" + draw(sep) + draw(sep).join(items) + draw(sep) + "}"


@st.composite
def declaration(draw):
    kind = draw(st.integers(0, 4))
    name = draw(simple)
    c = draw(comment)
    if kind == 0:
        return f"provider {name} {attrs(draw)}{c}"
    if kind == 1:
        items = []
        if draw(st.booleans()):
            items.append(f"requires {draw(fact_formula())}")
        items.append("achieves " + ", ".join(draw(st.lists(dotted, min_size=1, max_size=2))))
        for _ in range(draw(st.integers(0, 2))):
            items.append(f"via {draw(simple)} {attrs(draw)}")
        items += draw(st.lists(st.sampled_from(["external", "idempotent", "timeout 30s", "undo other"]), max_size=2))
        return f"action {name} {{{c}\n  " + draw(sep).join(items) + "\n}"
    if kind == 2:
        items = [f"goal {draw(fact_formula())}"]
        if draw(st.booleans()):
            items.append("given " + ", ".join(f"{draw(dotted)}: {draw(st.sampled_from(['string', 'money', 'number']))}" for _ in range(2)))
        items.append(draw(st.sampled_from(["", "deadline 2h", "budget 5 USD", "minimize cost then latency", "minimize 2 * cost + 0.5 * latency + risk"])))
        return f"intent {name} {{ " + draw(sep).join(i for i in items if i) + " }"
    if kind == 3:
        stmts = draw(
            st.lists(
                st.one_of(
                    predicate().map(lambda p: f"forbid via where {p}"),
                    st.builds(lambda p, a: f"require {p} for {a}", predicate(), simple),
                    st.builds(lambda f, a: f"require {f} before {a}", fact_formula(), simple),
                    fact_formula().map(lambda f: f"require {f}"),
                    st.builds(lambda a, b: f"distinct provider for {a}, {b}", simple, simple),
                    st.sampled_from(["limit cost <= 4 USD", "limit latency < 90m", "limit reliability >= 0.9"]),
                    predicate().map(lambda p: f"limit count(via where {p}) >= 1"),
                    simple.map(lambda p: f"forbid provider {p}"),
                ),
                min_size=1,
                max_size=3,
            )
        )
        head = draw(st.sampled_from(["", ' "A title"']))
        soft = draw(st.sampled_from(["", "soft 5; "]))
        return f"policy {name}{head} {{ {soft}" + draw(sep).join(stmts) + " }"
    expects = draw(
        st.lists(
            st.sampled_from(
                ["expect feasible", "expect infeasible because a, b", "expect via p for a", "expect no step a", "expect cost <= 3 USD", "expect broken s"]
            ),
            min_size=1,
            max_size=3,
        )
    )
    return f'test "{name}" {{ plan {draw(simple)} given {{ a.b = 1, c = "x" }} observe {{ p down, fact f.g }}\n' + "\n".join(expects) + " }"


project = st.lists(declaration(), min_size=1, max_size=5).map(lambda ds: "\n\n".join(ds) + "\n")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(project)
def test_format_round_trips_and_is_idempotent(text):
    src = Source("gen.intent", text)
    tree, diags = parse(src)
    assert diags == [], f"generator produced invalid text:\n{text}\n" + "\n".join(d.render() for d in diags)
    once = format_file(tree, src)
    tree2, diags2 = parse(Source("gen.intent", once))
    assert diags2 == [], once
    assert tree2 == tree
    twice = format_file(tree2, Source("gen.intent", once))
    assert twice == once
    # Comments are kept: every comment of the input is in the output.
    assert [c for _, c in tree.comments] == [c for _, c in tree2.comments]


# ---- fuzzing: nothing but diagnostics --------------------------------------------------------

SEED = """provider stripe { region "us"; tags ["pci"] }
action charge { requires order.ok and (a.b or c); achieves paid; via stripe { cost 0.35 USD; latency 800ms; reliability 0.995 } }
intent i { given order.region: string; goal paid; deadline 2h; budget 5 USD; minimize 2 * cost + latency }
policy p "t" { when order.region == "eu"; forbid via where region != "eu" or not ("pci" in tags) }
test "x" { plan i given { order.region = "eu" } observe { stripe down } expect infeasible because p }
"""


def _only_diagnostics(text: str) -> None:
    result = check_sources([Source("fuzz.intent", text)])
    assert all(isinstance(d, Diagnostic) for d in result.diagnostics)
    for d in result.diagnostics:
        d.render()
        d.to_model()
    if result.spec is None:
        assert any(d.is_error for d in result.diagnostics)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_input_yields_only_diagnostics(data):
    text = SEED
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(text)))
        op = data.draw(st.integers(0, 2))
        if op == 0:
            text = text[:pos] + text[pos + data.draw(st.integers(1, 8)) :]
        elif op == 1:
            text = text[:pos] + data.draw(st.text(max_size=6)) + text[pos:]
        else:
            chunk = data.draw(st.sampled_from(["{", "}", "(", ")", '"', "//", "and", "not", "via", "1e9", "-", "0.0.1", "\x00", "é", "9" * 40]))
            text = text[:pos] + chunk + text[pos:]
    _only_diagnostics(text)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_yield_only_diagnostics(blob):
    _only_diagnostics(blob.decode("utf-8", errors="replace"))


def test_hostile_sizes_are_bounded():
    for text in ["(" * 100_000, "not " * 20_000 + "a", "[" * 5000 + "]" * 5000, "provider p { x " + "9" * 100_000 + " }"]:
        _only_diagnostics(f"policy p {{ when {text} forbid action a }}")
    _only_diagnostics("provider p {}\n" * 200_000)
