"""What the command line says when Temporal is not there or a run ends without an outcome.

Input: a `--temporal` address, or an exception from the Temporal client. Output: one line for a
user (what went wrong, what to do), never a traceback (docs/executor.md, "Temporal").
"""

from __future__ import annotations

from datetime import timedelta

#: How long connecting may take before the address is reported unreachable.
CONNECT_TIMEOUT = timedelta(seconds=10)
START_DEV = "start one with `temporal server start-dev`, or pass `--temporal HOST:PORT`"


def address_problem(address: str) -> str | None:
    """Why ``address`` is not a Temporal frontend address (``HOST:PORT``), or None."""
    example = "e.g. `--temporal 127.0.0.1:7233`"
    if "://" in address:
        return f"`--temporal` is HOST:PORT without a scheme, {example}"
    host, sep, port = address.rpartition(":")
    if not sep or not host or any(c.isspace() for c in address):
        return f"`--temporal` is HOST:PORT, {example}"
    if not port.isdigit() or not 0 < int(port) < 65536:
        return f"`--temporal` has no valid port (1-65535) in `{address}`, {example}"
    return None


def connect_problem(err: BaseException) -> str:
    """The reason a connection failed, in a few words."""
    text = str(err)
    for needle, says in (
        ("Connection refused", "connection refused"),
        ("ConnectionRefused", "connection refused"),
        ("Timeout expired", "no answer in time (is it a Temporal frontend?)"),
        ("TimeoutExpired", "no answer in time (is it a Temporal frontend?)"),
        ("dns error", "unknown host"),
        ("failed to lookup address", "unknown host"),
        ("No route to host", "no route to host"),
    ):
        if needle in text:
            return says
    first = text.strip().splitlines()[0] if text.strip() else type(err).__name__
    return first if len(first) <= 200 else first[:197] + "..."


def ended_without_outcome(err: BaseException) -> str | None:
    """How a workflow ended without a result (cancelled, terminated, timed out, failed), or None
    when ``err`` is not a workflow's end."""
    from temporalio.client import WorkflowFailureError
    from temporalio.exceptions import CancelledError, TerminatedError
    from temporalio.exceptions import TimeoutError as TemporalTimeout

    if not isinstance(err, WorkflowFailureError):
        return None
    cause = err.cause
    match cause:
        case CancelledError():
            return "was cancelled"
        case TerminatedError():
            return "was terminated" + (f" ({cause.message})" if cause.message and cause.message != "Workflow execution terminated" else "")
        case TemporalTimeout():
            return "timed out on Temporal (its workflow execution timeout)"
    chain, c = [], cause
    while c is not None and len(chain) < 3:
        chain.append(str(getattr(c, "message", None) or c))
        c = getattr(c, "cause", None)
    return "failed: " + ": ".join(x for x in chain if x) if chain else "failed"
