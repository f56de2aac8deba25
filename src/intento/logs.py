"""Structured logs (stdlib `logging`): one line per run event and per HTTP request.

Input: records logged under the `intento` logger, with their fields in ``extra={"fields": {...}}``.
Output: lines on stderr, as text (`ts level logger message key=value ...`) or as one JSON object
per line (`--log-format json`: `ts`, `level`, `logger`, `message`, the fields, and `traceback`
when the record carries an exception).

Nothing secret is ever a field: run events are logged from the event log, which holds a keyed
hash of every `secret` given, and requests are logged by method, path, status and duration only.
The JSON formatter is a few lines written here: the standard library has none, and the format is
ours to keep stable.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

LOGGER = "intento"

#: Event fields worth a log line's room (never the context: that is in `run_started` only).
_EVENT_FIELDS = ("action", "provider", "attempt", "reason", "status", "error", "fact", "cost", "latency_ms")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            out["traceback"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        fields = " ".join(f"{k}={json.dumps(v, default=str) if not isinstance(v, (int, float)) else v}" for k, v in (getattr(record, "fields", None) or {}).items())
        line = f"{ts} {record.levelname.lower():7s} {record.name}: {record.getMessage()}" + (f" {fields}" if fields else "")
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def setup(fmt: str = "text", level: str = "info") -> None:
    """Send the `intento` logger's records to stderr in ``fmt`` (`text` or `json`)."""
    logger = logging.getLogger(LOGGER)
    for h in list(logger.handlers):
        if getattr(h, "_intento", False):
            logger.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler._intento = True  # type: ignore[attr-defined]
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    logger.addHandler(handler)
    logger.setLevel(getattr(logging, level.upper(), logging.INFO))
    logger.propagate = False


def run_event_logger():
    """An executor `progress` hook that logs one line per run event."""
    log = logging.getLogger(LOGGER + ".run")

    def hook(kind: str, st, data: dict) -> None:
        fields = {"run": st.run, "intent": st.intent, "event": kind, "seq": st.next_seq - 1}
        fields.update({k: data[k] for k in _EVENT_FIELDS if k in data and data[k] is not None})
        if kind in ("escalated", "cancelled", "giving_up"):
            fields["outcome"] = data.get("summary") or data.get("reason")
        log.info(kind, extra={"fields": fields})

    return hook
