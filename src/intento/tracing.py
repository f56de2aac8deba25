"""OpenTelemetry traces (the optional `otel` extra): a span per run, with a span per plan and per
step inside it.

Input: run events, through an executor `progress` hook (`Tracer.hook`). Output: spans sent to an
OpenTelemetry span processor: `intento serve --otel FILE` writes them, one JSON object per line,
to FILE (`FileExporter`); an embedding program may pass its own `TracerProvider`.

Spans carry the times of the events themselves. A run's span starts when this process first
drives it (its `run_started` time, or the moment it adopted the run after a restart) and ends at
its outcome; a step's span runs from its `step_dispatched` to its outcome; a plan's span is the
`planned` event, with the plan's status, cost, latency and reason. A simulated run's virtual
times are laid out from the wall-clock moment this process started driving it (attribute
`intento.clock` = `virtual`). Attributes are names, statuses, costs and reasons only: never a
given value, so never a secret.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any, Callable

_OUTCOMES = {"step_succeeded": "succeeded", "step_failed": "failed", "step_timed_out": "timed_out"}
_ENDS = ("succeeded", "escalated", "cancelled", "failed")


def compose(*hooks: Callable | None) -> Callable | None:
    """One `progress` hook that calls each given hook in turn."""
    live = [h for h in hooks if h is not None]
    if not live:
        return None
    if len(live) == 1:
        return live[0]

    def hook(kind: str, st, data: dict) -> None:
        for h in live:
            h(kind, st, data)

    return hook


class FileExporter:
    """A span exporter that appends each finished span as one JSON line to a file."""

    def __init__(self, path: str | Path):
        from opentelemetry.sdk.trace.export import SpanExportResult

        self.path = Path(path)
        self._ok = SpanExportResult.SUCCESS
        self._lock = threading.Lock()

    def export(self, spans) -> Any:
        with self._lock, open(self.path, "a") as fh:
            for span in spans:
                fh.write(json.dumps(json.loads(span.to_json()), separators=(",", ":")) + "\n")
        return self._ok

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def file_provider(path: str | Path):
    """A `TracerProvider` that writes every span to ``path`` as it ends."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "intento"}))
    provider.add_span_processor(SimpleSpanProcessor(FileExporter(path)))
    return provider


class Tracer:
    """Turns run events into spans (`hook` is an executor `progress` hook)."""

    def __init__(self, provider):
        self.tracer = provider.get_tracer("intento")
        self._runs: dict[str, tuple[Any, int, int]] = {}  # run -> (span, the run clock's origin, wall ns at that origin)
        self._steps: dict[tuple[str, str, int], Any] = {}
        self._lock = threading.Lock()

    def _ns(self, run: str, at: int) -> int:
        _, origin, wall = self._runs[run]
        return wall + (at - origin) * 1_000_000

    def _run_span(self, st, virtual: bool):
        if st.run not in self._runs:
            from opentelemetry import trace

            wall = time.time_ns() if virtual else st.last_at * 1_000_000
            origin = st.last_at
            attrs = {"intento.run": st.run, "intento.intent": st.intent, "intento.clock": "virtual" if virtual else "wall"}
            start = wall if st.next_seq <= 2 else time.time_ns()
            span = self.tracer.start_span(f"run {st.intent}", start_time=start, attributes=attrs, kind=trace.SpanKind.INTERNAL)
            self._runs[st.run] = (span, origin, wall)
        return self._runs[st.run][0]

    def hook(self, kind: str, st, data: dict) -> None:
        from opentelemetry import trace

        with self._lock:
            virtual = st.clock == "virtual"
            run_span = self._run_span(st, virtual)
            ctx = trace.set_span_in_context(run_span)
            now = self._ns(st.run, st.last_at)
            if kind == "planned":
                attrs = {"intento.run": st.run, "intento.plan": st.plans, "intento.status": str(data.get("status")), "intento.reason": str(data.get("reason"))}
                if data.get("cost") is not None:
                    attrs["intento.cost"] = str(data["cost"])
                if data.get("latency_ms") is not None:
                    attrs["intento.latency_ms"] = int(data["latency_ms"])
                span = self.tracer.start_span(f"plan #{st.plans}", context=ctx, start_time=now, attributes=attrs)
                span.end(end_time=now)
            elif kind == "step_dispatched":
                attrs = {"intento.run": st.run, "intento.action": data["action"], "intento.provider": data["provider"], "intento.attempt": int(data.get("attempt", 1))}
                if data.get("compensation_for"):
                    attrs["intento.compensation_for"] = data["compensation_for"]
                name = f"{'undo' if data.get('compensation_for') else 'step'} {data['action']} via {data['provider']}"
                self._steps[(st.run, data["action"], int(data.get("attempt", 1)))] = self.tracer.start_span(name, context=ctx, start_time=now, attributes=attrs)
            elif kind in _OUTCOMES or kind == "wait_dropped":
                span = self._steps.pop((st.run, data.get("action"), int(data.get("attempt", 1) or 1)), None)
                if span is not None:
                    span.set_attribute("intento.outcome", _OUTCOMES.get(kind, "dropped"))
                    if kind != "step_succeeded":
                        span.set_status(trace.Status(trace.StatusCode.ERROR, str(data.get("error") or data.get("reason") or kind)))
                    span.end(end_time=now)
            elif kind in _ENDS:
                run_span.set_attribute("intento.outcome", kind)
                if kind != "succeeded":
                    run_span.set_status(trace.Status(trace.StatusCode.ERROR, str(data.get("summary") or data.get("reason") or kind)))
                for key in [k for k in self._steps if k[0] == st.run]:
                    self._steps.pop(key).end(end_time=now)
                run_span.end(end_time=now)
                del self._runs[st.run]
