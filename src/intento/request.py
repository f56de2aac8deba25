"""Requests: the observed `State` and the context (``given`` values) of a planning request.

Input: JSON text or Python values from a caller. Output: validated pydantic models and a typed
context, or located diagnostics (codes E101-E110) naming what is wrong and where; nothing that is
ill-typed reaches the planner.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from intento.diagnostics import Diagnostic, Severity, Source, Span, did_you_mean
from intento.spec import IntentSpec, Spec
from intento.values import MAX_NUMBER_DIGITS, Duration, Money, Value, duration_bound_error, money_bound_error, parse_duration, parse_money, parse_number


class ProviderState(BaseModel):
    """What is observed of one provider."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["up", "degraded", "down"] = Field("up", description="`down` options are never chosen")
    latency: str | int | None = Field(None, description='replaces every option\'s latency: "2s" or milliseconds')
    cost: str | int | Decimal | None = Field(None, description='replaces every option\'s cost: "0.50 USD" or a number')
    reliability: Decimal | str | None = Field(None, description="replaces every option's reliability, in (0, 1]")
    since: datetime | None = Field(None, description="when this status was first observed")
    busy: list[str | int] = Field(
        default_factory=list,
        description=(
            "slots of this provider's `capacity` held now by other work (other runs), each as the time until it is expected back "
            '("30s" or milliseconds): the plan\'s steps on the provider fit in the slots left, or wait for these'
        ),
    )


class State(BaseModel):
    """The observed state of the world a plan starts from (LANGUAGE.md "Observed state")."""

    model_config = ConfigDict(extra="forbid")

    facts: list[str] = Field(default_factory=list, description="facts observed true")
    providers: dict[str, ProviderState] = Field(default_factory=dict, description="observed provider health")
    at: datetime | None = Field(None, description="when the state was observed")


@dataclass(frozen=True)
class Override:
    """A degraded provider's attribute replacements, typed."""

    latency_ms: int | None = None
    cost: Decimal | None = None
    reliability: Decimal | None = None


@dataclass(frozen=True)
class ResolvedState:
    facts: frozenset[str]
    down: Mapping[str, datetime | None]
    overrides: Mapping[str, Override]
    at: datetime | None
    model: State
    #: Per provider, the slots of its capacity other work holds: the time until each is back (ms).
    busy: Mapping[str, tuple[int, ...]] = field(default_factory=lambda: MappingProxyType({}))


def _diag(code: str, message: str, source: Source | None, needle: str | None = None, help: str = "") -> Diagnostic:
    """A request diagnostic located at the object key ``needle`` of ``source`` (at its start if
    there is no such key). Where a value is wrong, the span is its key, never the value itself."""
    span = None
    if source is not None:
        quoted = f'"{needle}"' if needle else ""
        # The key (looked up in an index built once per source), else any occurrence of the name.
        pos = source.json_key(quoted) if needle else -1
        if needle and pos < 0:
            pos = source.text.find(quoted)
        span = Span.at_offset(source, max(pos, 0), max(pos, 0) + (len(quoted) if pos >= 0 else 0))
    return Diagnostic(code, Severity.error, message, span, help=help)


def load_json(text: str, name: str) -> tuple[Any, Source, list[Diagnostic]]:
    """Parse JSON text; a syntax error is located at its line and column. The source hides its
    values in every snippet (`Source.hide_values`): a request may hold `secret` givens, and which
    ones are secret is not known here (nor, for invalid JSON, which names the text holds)."""
    src = Source(name, text, hide_values=True)
    try:
        # Exact numbers: a JSON 0.1 is the decimal 0.1, never a binary float; an integer is read
        # as a decimal too (so 5,000 digits cost nothing to refuse later, E104/E108).
        return json.loads(text, parse_float=Decimal, parse_int=_json_int, object_pairs_hook=_json_object), src, []
    except _DuplicateKey as e:
        pos = max(src.text.find(json.dumps(e.key)), 0)
        return None, src, [Diagnostic("E101", Severity.error, f"invalid JSON: the key `{e.key}` appears twice", Span.at_offset(src, pos, pos + len(json.dumps(e.key))), help="give each name once")]
    except json.JSONDecodeError as e:
        span = Span.at_offset(src, e.pos, e.pos + 1)
        return None, src, [Diagnostic("E101", Severity.error, f"invalid JSON: {e.msg.lower()}", span, help="check the JSON syntax")]
    except RecursionError:
        return None, src, [Diagnostic("E101", Severity.error, "invalid JSON: nested too deeply", Span.whole_file(src))]


def _json_int(text: str) -> int | Decimal:
    # Python refuses to convert integers of over 4,300 digits (and would take quadratic time).
    return int(text) if len(text) <= 40 else Decimal(text)


class _DuplicateKey(ValueError):
    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def _json_object(pairs: list[tuple[str, Any]]) -> dict:
    """A JSON object whose keys are distinct: a name given twice would be read as its last value
    by one reader and its first by another."""
    out: dict = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateKey(k)
        out[k] = v
    return out


def resolve_state(spec: Spec, raw: Any, source: Source | None = None) -> tuple[ResolvedState | None, list[Diagnostic]]:
    """Validate an observed state against the project: known providers, typed overrides."""
    if isinstance(raw, State):
        model = raw
    else:
        try:
            model = State.model_validate(raw if raw is not None else {})
        except ValidationError as e:
            diags = []
            for err in e.errors()[:20]:
                loc = ".".join(str(x) for x in err["loc"])
                needle = str(err["loc"][-1]) if err["loc"] else None
                diags.append(_diag("E106", f"state `{loc}`: {err['msg'].lower()}", source, needle, help="see LANGUAGE.md \"Observed state\""))
            return None, diags
    diags: list[Diagnostic] = []
    down: dict[str, datetime | None] = {}
    overrides: dict[str, Override] = {}
    busy: dict[str, tuple[int, ...]] = {}
    for name, ps in model.providers.items():
        if name not in spec.providers:
            diags.append(_diag("E107", f"state names unknown provider `{name}`", source, name, help=did_you_mean(name, spec.providers)))
            continue
        if ps.busy:
            held, d = _busy(spec, name, ps, source)
            diags.extend(d)
            if held:
                busy[name] = held
        if ps.status == "down":
            down[name] = ps.since or model.at
            continue
        ov, d = _override(spec, name, ps, source)
        diags.extend(d)
        if ov is not None and ps.status == "degraded":
            overrides[name] = ov
        elif ov is not None and (ov.latency_ms or ov.cost is not None or ov.reliability is not None):
            diags.append(_diag("E108", f"provider `{name}` is `up`, so its attributes cannot be replaced", source, name, help='set `"status": "degraded"`'))
    if diags:
        return None, diags
    return ResolvedState(frozenset(model.facts), MappingProxyType(down), MappingProxyType(overrides), model.at, model, MappingProxyType(busy)), []


def _busy(spec: Spec, name: str, ps: ProviderState, source) -> tuple[tuple[int, ...], list[Diagnostic]]:
    """The slots of a provider's capacity held by other work, as ms until each is back."""
    cap = spec.providers[name].capacity
    if cap is None:
        return (), [_diag("E108", f"state: provider `{name}` has no `capacity`, so none of its slots can be busy", source, "busy",
                          help=f"declare `capacity N` on provider `{name}`, or leave out `busy`")]
    if len(ps.busy) > cap:
        return (), [_diag("E108", f"state: {len(ps.busy)} busy slots for provider `{name}`, whose capacity is {cap}", source, "busy",
                          help="list at most one entry per slot of the capacity")]
    held, diags = [], []
    for v in ps.busy:
        d = _duration_value(v)
        if d is None or d.ms < 1:
            diags.append(_diag("E108", f"state: a busy slot of `{name}` is not a duration of at least 1ms: `{v}`", source, "busy", help='write "30s" or a number of milliseconds'))
        elif duration_bound_error(d.ms) is not None:
            diags.append(_diag("E108", f"state: a busy slot of `{name}` {duration_bound_error(d.ms)}: `{v}`", source, "busy", help="use a duration of at most 10^13 ms"))
        else:
            held.append(d.ms)
    return tuple(sorted(held)), diags


def _override(spec: Spec, name: str, ps: ProviderState, source) -> tuple[Override | None, list[Diagnostic]]:
    diags = []
    latency = cost = rel = None
    if ps.latency is not None:
        latency = _duration_value(ps.latency)
        if latency is None or latency.ms < 1:
            diags.append(_diag("E108", f"state: latency of `{name}` is not a duration of at least 1ms: `{ps.latency}`", source, "latency", help='write "2s" or a number of milliseconds'))
        elif duration_bound_error(latency.ms) is not None:
            diags.append(_diag("E108", f"state: latency of `{name}` {duration_bound_error(latency.ms)}: `{ps.latency}`", source, "latency", help="use a duration of at most 10^13 ms"))
    if ps.cost is not None:
        m = _money_value(ps.cost, spec.currency)
        if m is None or m.amount < 0 or (spec.currency and m.currency != spec.currency):
            diags.append(_diag("E108", f"state: cost of `{name}` is not an amount of zero or more in {spec.currency or 'the project currency'}: `{ps.cost}`", source, "cost"))
        elif money_bound_error(m.amount) is not None:
            diags.append(_diag("E108", f"state: cost of `{name}` {money_bound_error(m.amount)}: `{ps.cost}`", source, "cost", help="the planner keeps money exact: at most 6 decimal places, below 10^9"))
        else:
            cost = m.amount
    if ps.reliability is not None:
        r = _decimal(ps.reliability)
        if r is None or not (0 < r <= 1):
            diags.append(_diag("E108", f"state: reliability of `{name}` must be above 0 and at most 1: `{ps.reliability}`", source, "reliability"))
        else:
            rel = r
    if diags:
        return None, diags
    return Override(latency.ms if latency else None, cost, rel), []


def _decimal(v: Any) -> Decimal | None:
    return None if isinstance(v, bool) else parse_number(str(v).strip())


def _duration_value(v: Any) -> Duration | None:
    """A duration: "2s" or milliseconds (a JSON integer, or a string of digits)."""
    if isinstance(v, bool):
        return None
    if isinstance(v, str) and v.strip().isdigit() and len(v.strip()) <= MAX_NUMBER_DIGITS:
        v = int(v.strip())
    if isinstance(v, int):
        return Duration(v) if 0 <= v < 10**MAX_NUMBER_DIGITS else None
    return parse_duration(str(v)) if isinstance(v, str) else None


def _money_value(v: Any, currency: str | None) -> Money | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, str):
        money = parse_money(v)
        if money is not None:
            return money
        # A plain number written as a string: an amount in the project currency.
        amount = parse_number(v.strip())
        return Money(amount, currency or "") if amount is not None else None
    if isinstance(v, (int, Decimal, float)):
        d = _decimal(v)
        return Money(d, currency or "") if d is not None else None
    return None


# ---- context ----------------------------------------------------------------------------------


def resolve_context(spec: Spec, intent: IntentSpec, raw: Any, source: Source | None = None) -> tuple[Mapping[str, Value] | None, list[Diagnostic]]:
    """Type every ``given`` value; missing, unknown and ill-typed values are errors."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        return None, [_diag("E104", "`given` must be a JSON object of name -> value", source)]
    diags: list[Diagnostic] = []
    ctx: dict[str, Value] = {}
    for name, param in intent.given.items():
        if name not in raw:
            diags.append(_diag("E103", f"missing given value `{name}` ({param.type})", source, help=f"intent `{intent.name}` needs every `given` value"))
            continue
        v = coerce_given(param.type, raw[name], spec.currency)
        if v is None:
            shown = "<secret>" if param.secret else _short(raw[name])
            if isinstance(raw[name], str) and not _encodable(raw[name]):
                what = f"given `{name}` is text with no UTF-8 form (a lone surrogate such as \\ud800), found `{shown}`"
                diags.append(_diag("E104", what, source, name, help="send the text as valid Unicode"))
            else:
                diags.append(_diag("E104", f"given `{name}` must be {_article(param.type)}, found `{shown}`", source, name, help=_example(param.type)))
        else:
            ctx[name] = v
    for name in raw:
        if name not in intent.given:
            diags.append(_diag("E105", f"intent `{intent.name}` has no given `{name}`", source, name, help=did_you_mean(name, intent.given) or "remove it"))
    if diags:
        return None, diags
    return MappingProxyType(ctx), []


def coerce_given(type_: str, v: Any, currency: str | None) -> Value | None:
    """A given value of the declared type, or None. Accepts what a caller writes (JSON values) and
    what intento itself writes into event logs, audit records and workflow payloads
    (`values.to_json`: a number as its exact decimal string), and already-typed values, so a
    value read back from any of them has the type it was given with."""
    if type_ == "string":
        return v if isinstance(v, str) and _encodable(v) else None
    if type_ == "bool":
        return v if isinstance(v, bool) else None
    if type_ == "number":
        if isinstance(v, str):
            # The canonical form in logs: an exact decimal such as "0.1" (never "1e5" or " 1").
            return parse_number(v) if _DECIMAL_TEXT.match(v) else None
        return _decimal(v) if isinstance(v, (int, Decimal, float)) and not isinstance(v, bool) else None
    if type_ == "money":
        if isinstance(v, Money):
            return v if not currency or v.currency == currency else None
        m = _money_value(v, currency)
        if m is None or (currency and m.currency != currency):
            return None
        return m
    if type_ == "duration":
        if isinstance(v, Duration):
            return v
        return _duration_value(v)
    return None


_DECIMAL_TEXT = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")


def _encodable(text: str) -> bool:
    """Text that has a UTF-8 form (no lone surrogate such as a JSON "\\ud800"): every log,
    record and answer intento writes is UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _short(v: Any) -> str:
    if isinstance(v, str):
        text = v.encode("utf-8", "backslashreplace").decode("utf-8")
    elif isinstance(v, Decimal):
        text = str(v)  # a JSON number read exactly
    else:
        text = json.dumps(v, default=str, ensure_ascii=True)
    return text if len(text) <= 40 else text[:37] + "..."


def _article(t: str) -> str:
    return {"money": "money", "bool": "a bool"}.get(t, f"a {t}" if t != "duration" else "a duration")


def _example(t: str) -> str:
    return {
        "string": 'e.g. "eu"',
        "number": "e.g. 12 or 0.5",
        "money": 'e.g. "120 USD" or 120',
        "duration": 'e.g. "2s" or 2000 (milliseconds)',
        "bool": "true or false",
    }[t]


def typed_context(spec: Spec, intent: str, context: Mapping[str, Any]) -> dict[str, Any]:
    """A run's context as JSON (as logs, audit records and workflow payloads hold it) back to
    typed values: `Decimal` for a number, `Money`, `Duration`, `bool`, `str` — what handlers
    receive. A value that does not read back as its declared type is passed on unchanged."""
    params = spec.intents[intent].given if intent in spec.intents else {}
    out: dict[str, Any] = {}
    for name, v in context.items():
        p = params.get(name)
        typed = coerce_given(p.type, v, spec.currency) if p is not None else None
        out[name] = v if typed is None else typed
    return out
