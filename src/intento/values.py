"""Typed values of the language: money, durations, numbers, strings, booleans and lists.

Input: literal text (from the parser) or JSON values (from requests). Output: immutable Python
values that compare exactly. Money is a `Decimal` with a currency (never a float); a duration is an
integer number of milliseconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

#: Most digits a number literal may have (LANGUAGE.md "Limits"); keeps Decimal/int conversions cheap.
MAX_NUMBER_DIGITS = 30

#: Bounds that keep every amount and duration exact in the planner's integer (int64) model
#: (docs/language.md "Limits"). Money is planned in units of 10^-6 at the finest, so an amount of
#: at most `MAX_MONEY_PLACES` decimal places and below `MAX_MONEY` is an integer below 10^15; a
#: duration is planned in milliseconds. Sums over a whole project are checked per request
#: (problem.py, `check_magnitudes`).
MAX_MONEY_PLACES = 6
MAX_MONEY = Decimal(10) ** 9
MAX_DURATION_MS = 10**13

_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h|d)\s*$")
_MONEY = re.compile(r"^\s*(-?[0-9]+(?:\.[0-9]+)?)[ \t]*([A-Z]{3})\s*$")


@dataclass(frozen=True, slots=True)
class Money:
    """An exact amount in one currency (ISO 4217 style code, e.g. ``USD``)."""

    amount: Decimal
    currency: str

    def __str__(self) -> str:
        return f"{format_decimal(self.amount)} {self.currency}"


@dataclass(frozen=True, slots=True)
class Duration:
    """A duration in whole milliseconds; ``text`` is how it was written (for formatting)."""

    ms: int
    text: str = ""

    def __str__(self) -> str:
        return self.text or format_ms(self.ms)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Duration) and other.ms == self.ms

    def __hash__(self) -> int:
        return hash(("Duration", self.ms))


Value = str | Decimal | Money | Duration | bool | tuple


def format_decimal(d: Decimal) -> str:
    """A decimal without exponent notation, keeping its written precision."""
    return format(d, "f")


def format_ms(ms: int) -> str:
    """A short duration literal that reads back as the same number of milliseconds."""
    for unit in ("d", "h", "m", "s"):
        size = _UNIT_MS[unit]
        if ms and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def parse_duration(text: str) -> Duration | None:
    """``"1.2s"`` -> Duration(1200); ``None`` when the text is not a duration or not whole ms."""
    m = _DURATION.match(text)
    if not m or sum(map(str.isdigit, m.group(1))) > MAX_NUMBER_DIGITS:  # digits, not `-` and `.`
        return None
    ms = Decimal(m.group(1)) * _UNIT_MS[m.group(2)]
    if ms != ms.to_integral_value():
        return None
    return Duration(int(ms), text.strip())


def parse_money(text: str) -> Money | None:
    m = _MONEY.match(text)
    if not m or sum(map(str.isdigit, m.group(1))) > MAX_NUMBER_DIGITS:  # digits, not `-` and `.`
        return None
    return Money(Decimal(m.group(1)), m.group(2))


def parse_number(text: str) -> Decimal | None:
    if len(text) > MAX_NUMBER_DIGITS + 2:
        return None
    try:
        d = Decimal(text)
    except InvalidOperation:
        return None
    return d if d.is_finite() and written_digits(d) <= MAX_NUMBER_DIGITS else None


def written_digits(d: Decimal) -> int:
    """How many digits ``d`` has written out without an exponent (``1E+40``: 41; ``1E-5``: 6),
    computed from its exponent, so an enormous exponent costs nothing to judge."""
    sign, digits, exponent = d.as_tuple()
    if not isinstance(exponent, int):
        return 10**9  # not finite
    whole = max(len(digits) + exponent, 1)
    return whole + max(-exponent, 0)


def money_bound_error(amount: Decimal) -> str | None:
    """Why an amount cannot be planned exactly (too many decimal places, too large), or None."""
    sign, digits, exponent = amount.as_tuple()
    if not isinstance(exponent, int):
        return "is not a finite amount"
    if -exponent > MAX_MONEY_PLACES:
        return f"has more than {MAX_MONEY_PLACES} decimal places"
    if abs(amount) >= MAX_MONEY:
        return "is 10^9 or more in absolute value"
    return None


def number_bound_error(value: Decimal) -> str | None:
    """Why an objective weight or a `soft` penalty cannot be planned exactly, or None: the same
    bounds as money (at most 6 decimal places, below 10^9), since the planner scales both to
    integers beside money, latency and risk."""
    return money_bound_error(value)


#: The help line of a weight or penalty out of `number_bound_error`'s bounds.
NUMBER_BOUND_HELP = "the planner keeps weights and penalties exact: at most 6 decimal places, below 10^9"


def duration_bound_error(ms: int) -> str | None:
    """Why a duration cannot be planned exactly (longer than `MAX_DURATION_MS`), or None."""
    return "is longer than 10^13 ms (about 317 years)" if ms > MAX_DURATION_MS else None


def type_name(v: object) -> str:
    """The language's name for the type of a value, for messages."""
    match v:
        case bool():
            return "bool"
        case Money():
            return "money"
        case Duration():
            return "duration"
        case Decimal() | int():
            return "number"
        case str():
            return "string"
        case tuple() | list():
            return "list"
        case None:
            return "nothing"
    return type(v).__name__


def render_value(v: object) -> str:
    """A value as a literal of the language."""
    match v:
        case bool():
            return "true" if v else "false"
        case Money() | Duration():
            return str(v)
        case Decimal():
            return format_decimal(v)
        case int():
            return str(v)
        case str():
            return quote(v)
        case tuple() | list():
            return "[" + ", ".join(render_value(x) for x in v) + "]"
    return str(v)


def quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t") + '"'


def to_json(v: object) -> object:
    """A language value as the JSON a request would carry: money as "4.50 USD", durations in ms,
    numbers as exact decimal strings; dicts and lists converted item by item."""
    match v:
        case Money():
            return f"{format_decimal(v.amount)} {v.currency}"
        case Duration():
            return v.ms
        case bool():
            return v
        case Decimal():
            return format_decimal(v)
        case dict():
            return {k: to_json(x) for k, x in v.items()}
        case list() | tuple():
            return [to_json(x) for x in v]
    return v


def duration_text(ms: int | None) -> str:
    """A duration for people: `1h 5m`, `800ms`, `-` for none."""
    if ms is None:
        return "-"
    if ms < 1000:
        return f"{ms}ms"
    parts, rest = [], ms
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    if rest:
        parts.append(f"{rest}ms")
    return " ".join(parts)
