"""What the command line says when Temporal is not there or a run ends without an outcome.

Input: a `--temporal` address, or an exception from the Temporal client. Output: one line for a
user (what went wrong, what to do), never a traceback (docs/executor.md, "Temporal").
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

#: How long connecting may take before the address is reported unreachable.
CONNECT_TIMEOUT = timedelta(seconds=10)
START_DEV = "start one with `temporal server start-dev`, or pass `--temporal HOST:PORT`"


#: Where a client connects when neither `--temporal` nor ``TEMPORAL_ADDRESS`` says.
DEFAULT_ADDRESS = "127.0.0.1:7233"


@dataclass(frozen=True)
class Connection:
    """How to reach a Temporal cluster: each field from its command-line option, else from
    Temporal's standard environment variables (``TEMPORAL_ADDRESS``, ``TEMPORAL_NAMESPACE``,
    ``TEMPORAL_API_KEY``, ``TEMPORAL_TLS``, ``TEMPORAL_TLS_CLIENT_CERT_PATH``,
    ``TEMPORAL_TLS_CLIENT_KEY_PATH``, ``TEMPORAL_TLS_SERVER_CA_CERT_PATH``,
    ``TEMPORAL_TLS_SERVER_NAME``) or a profile of Temporal's config file (``TEMPORAL_PROFILE``,
    ``TEMPORAL_CONFIG_FILE``), read by the SDK's own `temporalio.envconfig`."""

    address: str | None = None
    namespace: str | None = None
    api_key: str | None = None
    tls: bool | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None
    tls_server_name: str | None = None

    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `Client.connect`; `ValueError` says what is wrong with them."""
        from temporalio.envconfig import ClientConfig

        env = dict(os.environ)
        for var, value in (
            ("TEMPORAL_ADDRESS", self.address),
            ("TEMPORAL_NAMESPACE", self.namespace),
            ("TEMPORAL_API_KEY", self.api_key),
            ("TEMPORAL_TLS_CLIENT_CERT_PATH", self.tls_cert),
            ("TEMPORAL_TLS_CLIENT_KEY_PATH", self.tls_key),
            ("TEMPORAL_TLS_SERVER_CA_CERT_PATH", self.tls_ca),
            ("TEMPORAL_TLS_SERVER_NAME", self.tls_server_name),
        ):
            if value is not None:
                env[var] = str(value)
        if self.tls is not None:
            env["TEMPORAL_TLS"] = "true" if self.tls else "false"
        for var in ("TEMPORAL_TLS_CLIENT_CERT_PATH", "TEMPORAL_TLS_CLIENT_KEY_PATH", "TEMPORAL_TLS_SERVER_CA_CERT_PATH"):
            if env.get(var) and not Path(env[var]).is_file():
                raise ValueError(f"{_flag(var)} names no readable file: `{env[var]}`")
        if bool(env.get("TEMPORAL_TLS_CLIENT_CERT_PATH")) != bool(env.get("TEMPORAL_TLS_CLIENT_KEY_PATH")):
            raise ValueError("a TLS client certificate needs its key, and a key its certificate (`--tls-cert` with `--tls-key`)")
        try:
            kwargs = dict(ClientConfig.load_client_connect_config(override_env_vars=env))
        except Exception as e:  # a config file or variable the SDK cannot read
            raise ValueError(f"Temporal's client configuration cannot be read: {e}") from None
        kwargs.setdefault("target_host", DEFAULT_ADDRESS)
        problem = address_problem(kwargs["target_host"])
        if problem:
            raise ValueError(problem)
        return kwargs

    def where(self) -> str:
        """The address and namespace, for messages."""
        try:
            k = self.connect_kwargs()
        except ValueError:
            return self.address or DEFAULT_ADDRESS
        return k["target_host"] + (f" (namespace {k['namespace']})" if k.get("namespace", "default") != "default" else "")


def _flag(var: str) -> str:
    return {
        "TEMPORAL_TLS_CLIENT_CERT_PATH": "`--tls-cert` (TEMPORAL_TLS_CLIENT_CERT_PATH)",
        "TEMPORAL_TLS_CLIENT_KEY_PATH": "`--tls-key` (TEMPORAL_TLS_CLIENT_KEY_PATH)",
        "TEMPORAL_TLS_SERVER_CA_CERT_PATH": "`--tls-ca` (TEMPORAL_TLS_SERVER_CA_CERT_PATH)",
    }[var]


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
