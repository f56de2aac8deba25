"""The audit trail: every planning decision as a hash-chained, versioned record.

Input: decisions (project, request, plan). Output: `AuditRecordV1` lines appended to a JSON Lines
file, and the checks over such a file: `verify` (chain, sequence, torn tail, optionally against a
signed checkpoint), `checkpoint` (Ed25519 signature over the head), `replay` (re-solve each
decision from its recorded inputs and compare).

A record's ``hash`` is SHA-256 over the canonical JSON of the record without ``hash`` (keys
sorted, no whitespace, UTF-8); ``prev`` is the previous record's hash (64 zeros for the first).
Editing, inserting, deleting or reordering records breaks the chain at the first affected record.
A chain alone cannot reveal a truncated tail or a consistent rewrite from record k on: a signed
checkpoint of the head, stored elsewhere, does (docs/audit.md).
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Callable, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from intento import __version__
from intento.errors import OperationalError
from intento.plan import Plan
from intento.spec import Spec
from intento.values import to_json
from intento.versions import policy_set_hash

GENESIS = "0" * 64


class Sources(BaseModel):
    model_config = ConfigDict(extra="forbid")
    project: str = Field(description="SHA-256 over the sorted SHA-256 of every source file's text: the project version, whatever path the files were given by")
    policy_set: str = Field(description="SHA-256 over the policies that applied, each with its full source text")
    policies: list[str] = Field(description="the policies that applied to this decision")
    files: dict[str, str] = Field(description="each source file's SHA-256")
    label: str | None = Field(default=None, description="the human label of the run's policy version (`policy rollout --label`, `INTENTO_VERSION_LABEL`), when it has one; absent otherwise")


class AuditRecordV1(BaseModel):
    """One decision. Field order is irrelevant to the hash (keys are sorted)."""

    model_config = ConfigDict(extra="forbid")

    version: Literal["audit/v1"] = "audit/v1"
    seq: int = Field(description="1 for the first record, then +1")
    time: str = Field(description="when the decision was recorded (UTC, ISO 8601)")
    kind: Literal["plan", "replan", "cancel"] = Field(
        "plan", description="a first plan, a re-plan after an observation, or a run's cancellation (who asked and why: `cancelled`; no plan)"
    )
    run: str | None = Field(None, description="the run this decision belongs to, if any")
    reason: str | None = Field(None, description="why a re-plan happened")
    decision: str | None = Field(None, description="a run's decisions: `RUN/plan-N`, the N-th plan of the run (also in its `planned` event)")
    inputs: dict[str, Any] | None = Field(
        None,
        description=(
            "a run's decisions: everything else the plan was decided from (deadline_ms and budget left, options excluded and why, "
            "steps done, running and forced, the previous plan as a hint, the run's clock `at`, the time limit and back-end), "
            "so `intento audit replay` re-solves exactly the same request"
        ),
    )
    intent: str
    context: dict[str, Any] = Field(description="the given values; secret ones replaced by a keyed hash")
    state: dict[str, Any] = Field(description="the observed state the plan started from")
    sources: Sources
    plan: dict[str, Any] | None = Field(None, description="the Plan (plan/v1), explanation and solver statistics included; none for a cancellation")
    cancelled: dict[str, Any] | None = Field(
        None, description="a cancellation: `by` (who asked), `reason`, `at` (ms since the run started), `plan` (the decision it stopped, `RUN/plan-N`)"
    )
    intento: str = Field(description="the intento version that decided")
    prev: str = Field(description="the previous record's hash (64 zeros for the first)")
    hash: str = Field(description="SHA-256 of the canonical JSON of this record without `hash`")


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8")


def record_hash(body: dict[str, Any]) -> str:
    return hashlib.sha256(canonical({k: v for k, v in body.items() if k != "hash"})).hexdigest()


def sources_of(spec: Spec, applied: list[str], label: str | None = None) -> Sources:
    files = {s.name: hashlib.sha256(s.text.encode()).hexdigest() for s in sorted(spec.sources, key=lambda s: s.name)}
    return Sources(project=spec.fingerprint, policy_set=policy_set_hash(spec, applied), policies=sorted(applied), files=files, label=label)


def existing_secret_key(log: Path) -> bytes:
    """`secret_key` as it stands, never creating it: ``INTENTO_SECRET_KEY``, else the key file
    beside the log, else b"" (none yet)."""
    env = os.environ.get("INTENTO_SECRET_KEY")
    if env:
        return env.encode()
    key_file = log.with_name(log.name + ".key")
    return key_file.read_text().strip().encode() if key_file.is_file() else b""


def secret_key(log: Path) -> bytes:
    """The key of the keyed hash that stands in for secret values: ``INTENTO_SECRET_KEY``, else a
    key file beside the log (created once, mode 0600)."""
    key = existing_secret_key(log)
    if key:
        return key
    key_file = log.with_name(log.name + ".key")
    if not key_file.exists():
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    return key_file.read_text().strip().encode()


def redact(spec: Spec, intent: str, context: dict[str, Any], key: bytes) -> dict[str, Any]:
    out = {}
    params = spec.intents[intent].given
    for name, v in context.items():
        if name in params and params[name].secret:
            out[name] = "hmac-sha256:" + hmac.new(key, str(v).encode(), hashlib.sha256).hexdigest()
        else:
            out[name] = v
    return out


class AuditError(OperationalError):
    pass


class AuditLog:
    """An append-only JSON Lines audit log; appends are locked, flushed and fsynced."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def append(self, spec: Spec, intent: str, context: dict[str, Any], state: dict[str, Any] | None, plan: Plan, **fields: Any) -> AuditRecordV1:
        """Record a decision at once: `draft` (same keyword fields) then `write`."""
        return self.write(self.draft(spec, intent, context, state, plan, **fields))

    def draft(
        self,
        spec: Spec,
        intent: str,
        context: dict[str, Any],
        state: dict[str, Any] | None,
        plan: Plan,
        *,
        kind: str = "plan",
        run: str | None = None,
        reason: str | None = None,
        now: datetime | None = None,
        inputs: dict[str, Any] | None = None,
        decision: str | None = None,
        label: str | None = None,
    ) -> dict[str, Any]:
        """A record without its place in the chain (`seq`, `prev`, `hash`): what `write` appends.
        The executor commits the draft with the event it records (a transactional outbox), so a
        crash between the two loses neither."""
        key = secret_key(self.path)
        body = {
            "version": "audit/v1",
            "time": (now or datetime.now(timezone.utc)).isoformat().replace("+00:00", "Z"),
            "kind": kind,
            "run": run,
            "reason": reason,
            "intent": intent,
            "context": to_json(redact(spec, intent, context or {}, key)),
            "state": to_json(state or {}),
            "sources": sources_of(spec, plan.explanation.applied_policies, label).model_dump(exclude_none=True),
            "plan": plan.model_dump(mode="json"),
            "intento": __version__,
        }
        if inputs is not None:
            body["inputs"] = to_json(inputs)
        if decision is not None:
            body["decision"] = decision
        return body

    def draft_cancel(
        self, spec: Spec, intent: str, context: dict[str, Any], state: dict[str, Any] | None, *, run: str, decision: str, cancelled: dict[str, Any],
        now: datetime | None = None,
    ) -> dict[str, Any]:
        """A run's cancellation as a record of the chain, as `draft` drafts a plan: who asked, why,
        and which plan it stopped. Nothing to re-solve: `replay` passes over it."""
        key = secret_key(self.path)
        return {
            "version": "audit/v1",
            "time": (now or datetime.now(timezone.utc)).isoformat().replace("+00:00", "Z"),
            "kind": "cancel",
            "run": run,
            "reason": f"cancelled by {cancelled.get('by')}: {cancelled.get('reason')}",
            "intent": intent,
            "context": to_json(redact(spec, intent, context or {}, key)),
            "state": to_json(state or {}),
            "sources": sources_of(spec, []).model_dump(),
            "cancelled": to_json(cancelled),
            "decision": decision,
            "intento": __version__,
        }

    def write(self, draft: dict[str, Any]) -> AuditRecordV1:
        """Append a drafted record at the head of the chain (locked, flushed, fsynced)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "r+b") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                last, torn = _last_line(fh)
                if torn:
                    raise AuditError(
                        f"{self.path}: the last line is torn (a crash during a write); run `intento audit verify` and repair it before appending"
                    )
                prev, seq = GENESIS, 0
                if last is not None:
                    try:
                        head = json.loads(last)
                        prev, seq = head["hash"], int(head["seq"])
                    except (ValueError, KeyError, TypeError) as e:
                        raise AuditError(f"{self.path}: the last record is not readable ({e}); run `intento audit verify`") from None
                body = dict(draft, seq=seq + 1, prev=prev)
                body.pop("hash", None)
                body["hash"] = record_hash(body)
                record = AuditRecordV1.model_validate(body)
                fh.seek(0, os.SEEK_END)
                fh.write(canonical(body) + b"\n")
                fh.flush()
                os.fsync(fh.fileno())
                return record
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def has_decision(self, decision: str) -> bool:
        """Whether a record of this decision is in the log (read from the end: it is recent)."""
        if not self.path.exists():
            return False
        needle = json.dumps(decision).encode()
        with open(self.path, "rb") as fh:
            for line in _lines_backwards(fh):
                if needle in line:
                    try:
                        if json.loads(line).get("decision") == decision:
                            return True
                    except ValueError:
                        continue
        return False


_CHUNK = 1 << 16


def _lines_backwards(fh):
    """The file's complete lines, last first, reading from the end in chunks."""
    fh.seek(0, os.SEEK_END)
    pos = fh.tell()
    rest = b""
    while pos > 0:
        step = min(_CHUNK, pos)
        pos -= step
        fh.seek(pos)
        rest = fh.read(step) + rest
        parts = rest.split(b"\n")
        rest = parts[0]
        for ln in reversed(parts[1:]):
            if ln.strip():
                yield ln
    if rest.strip():
        yield rest


def _last_line(fh) -> tuple[bytes | None, bool]:
    """The last complete line of the file and whether a torn (unterminated) line follows it;
    reads only the end of the file, so appending costs the same at any log size."""
    fh.seek(0, os.SEEK_END)
    size = fh.tell()
    if size == 0:
        return None, False
    fh.seek(size - 1)
    torn = fh.read(1) != b"\n"
    if torn:
        return None, True
    for ln in _lines_backwards(fh):
        return ln, False
    return None, False


def _split_torn(data: bytes) -> tuple[list[bytes], bytes]:
    """Complete lines, and the bytes after the last newline (a torn tail when non-empty)."""
    if not data:
        return [], b""
    lines = data.split(b"\n")
    return [ln for ln in lines[:-1] if ln.strip()], lines[-1]


# ---- verification ----------------------------------------------------------------------------


@dataclass
class Verdict:
    ok: bool
    records: int
    problem: str | None = None  # edited | chain | sequence | torn_tail | truncated | rewritten | signature | malformed
    first_bad_seq: int | None = None
    message: str = ""
    head: tuple[int, str] | None = None
    details: list[str] = field(default_factory=list)


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict:
    """A JSON object, refusing a key written twice: two readers could disagree on its value, so
    a record holding one is not a record (its hash covers only one reading)."""
    out: dict = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"the key `{k}` appears twice")
        out[k] = v
    return out


def _parse_record(line: bytes) -> dict:
    rec = json.loads(line, object_pairs_hook=_no_duplicate_keys)
    if not isinstance(rec, dict):
        raise ValueError("not an object")
    return rec


def read_records(path: Path) -> tuple[list[dict], bytes, list[tuple[int, str]]]:
    data = path.read_bytes()
    lines, torn = _split_torn(data)
    records, bad = [], []
    for i, ln in enumerate(lines, start=1):
        try:
            records.append(_parse_record(ln))
        except (ValueError, UnicodeError, RecursionError) as e:
            bad.append((i, "nested too deeply" if isinstance(e, RecursionError) else str(e)))
            records.append({"__malformed__": i})
    return records, torn, bad


def _hash_or_none(rec: dict) -> str | None:
    try:
        return record_hash(rec)
    except (ValueError, TypeError, RecursionError):  # text no canonical form has (a lone surrogate)
        return None


def verify(path: str | Path, checkpoint: dict | None = None, public_key_pem: bytes | None = None) -> Verdict:
    path = Path(path)
    if not path.exists():
        return Verdict(False, 0, "malformed", None, f"{path}: no such log")
    try:
        records, torn, bad = read_records(path)
    except OSError as e:
        return Verdict(False, 0, "malformed", None, f"{path}: cannot be read: {e.strerror or e}")
    why = dict(bad)
    prev, expected_seq = GENESIS, 1
    for i, rec in enumerate(records, start=1):
        if "__malformed__" in rec:
            return Verdict(False, i - 1, "malformed", expected_seq, f"line {i} is not a JSON record ({why.get(i, 'unreadable')}): the log was edited")
        seq = rec.get("seq")
        shown = seq if isinstance(seq, int) and not isinstance(seq, bool) else expected_seq
        h = _hash_or_none(rec)
        if h is None or rec.get("hash") != h:
            # Nothing in an edited record can be trusted, its `seq` included: name its place.
            return Verdict(False, i - 1, "edited", expected_seq, f"record {expected_seq} does not match its hash: it was edited")
        if rec.get("prev") != prev:
            return Verdict(
                False, i - 1, "chain", shown, f"record {shown} does not follow record {expected_seq - 1}: a record was inserted, deleted or moved before it"
            )
        if seq != expected_seq or isinstance(seq, bool):
            return Verdict(False, i - 1, "sequence", shown, f"record {seq!r} stands where record {expected_seq} should")
        prev, expected_seq = rec["hash"], expected_seq + 1
    n = len(records)
    head = (n, prev)
    if checkpoint is not None:
        if public_key_pem is None:
            return Verdict(False, n, "signature", None, "a checkpoint needs the public key to be checked", head)
        problem = check_checkpoint(checkpoint, public_key_pem)
        if problem:
            return Verdict(False, n, "signature", None, problem, head)
        cseq, chash = checkpoint.get("seq"), checkpoint.get("hash")
        if not isinstance(cseq, int) or isinstance(cseq, bool) or cseq < 0 or not isinstance(chash, str):
            return Verdict(False, n, "signature", None, "the checkpoint's `seq` or `hash` is not a record number and a hash", head)
        if n < cseq:
            # Records the checkpoint vouches for are gone: that is a truncation, even when the
            # log now also ends in a torn line (which alone would be an interrupted write).
            torn_note = f"; the last line is also torn ({len(torn)} bytes)" if torn.strip() else ""
            return Verdict(False, n, "truncated", n + 1, f"the log ends at record {n} but the checkpoint covers {cseq}: records were removed from the end{torn_note}", head)
        recorded = records[cseq - 1]["hash"] if cseq > 0 else GENESIS
        if recorded != chash:
            return Verdict(False, n, "rewritten", cseq, f"record {cseq} differs from the checkpointed one: the log was rewritten", head)
    if torn.strip():
        return Verdict(False, n, "torn_tail", n + 1, f"the last line is torn ({len(torn)} bytes): a write was interrupted; the {n} complete records verify", head)
    return Verdict(True, n, None, None, f"{n} records verify" + (f"; consistent with the checkpoint at record {checkpoint['seq']}" if checkpoint else ""), head)


# ---- checkpoints (Ed25519) -------------------------------------------------------------------


def keygen() -> tuple[bytes, bytes]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public


def _payload(cp: dict) -> bytes:
    return canonical({k: cp[k] for k in ("version", "log", "seq", "hash", "time")})


def make_checkpoint(path: str | Path, private_key_pem: bytes, now: datetime | None = None) -> dict:
    from cryptography.hazmat.primitives import serialization

    v = verify(path)
    if not v.ok:
        raise AuditError(f"refusing to checkpoint a log that does not verify: {v.message}")
    seq, h = v.head or (0, GENESIS)
    cp = {
        "version": "checkpoint/v1",
        "log": Path(path).name,
        "seq": seq,
        "hash": h,
        "time": (now or datetime.now(timezone.utc)).isoformat().replace("+00:00", "Z"),
    }
    key = serialization.load_pem_private_key(private_key_pem, password=None)
    cp["signature"] = base64.b64encode(key.sign(_payload(cp))).decode()
    return cp


def check_checkpoint(cp: dict, public_key_pem: bytes) -> str | None:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_pem_public_key(public_key_pem)
        key.verify(base64.b64decode(cp["signature"]), _payload(cp))
    except (InvalidSignature, KeyError, ValueError, TypeError):
        return "the checkpoint's signature does not verify with this public key: the checkpoint is forged or altered"
    return None


# ---- replay ----------------------------------------------------------------------------------


@dataclass
class ReplayResult:
    seq: int
    same: bool
    replayable: bool
    differences: list[str]


def _steps(plan: dict) -> dict[str, str]:
    return {s["action"]: s["provider"] for s in plan.get("steps", [])}


def replay(path: str | Path, spec: Spec, time_limit_s: float = 10.0, spec_for: Callable[[str], Spec | None] | None = None) -> list[ReplayResult]:
    """Re-solve every recorded decision from its recorded inputs with ``spec``: the request, and
    for a run's decisions everything else it was decided from (`AuditRecordV1.inputs`).
    ``spec_for``: the version a record names (its `sources.project`) -> the Spec of its exact
    texts (a store's kept versions), used instead of ``spec`` when it gives one."""
    from intento.diagnostics import IntentoError
    from intento.solve import plan_problem, prepare

    results = []
    records, _, _ = read_records(Path(path))
    default = spec
    for rec in records:
        if "__malformed__" in rec:
            continue
        spec = default
        if spec_for is not None and isinstance(rec.get("sources"), dict) and isinstance(rec["sources"].get("project"), str):
            spec = spec_for(rec["sources"]["project"]) or default
        seq, intent = rec.get("seq"), rec.get("intent")
        if rec.get("kind") == "cancel":
            continue  # a cancellation: nothing was solved, so nothing is re-solved
        if not isinstance(intent, str) or not isinstance(rec.get("context") or {}, dict) or not isinstance(rec.get("inputs") or {}, dict):
            results.append(ReplayResult(seq, False, False, ["not a decision record intento can read"]))
            continue
        if intent not in spec.intents:
            results.append(ReplayResult(seq, False, False, [f"intent `{intent}` no longer exists"]))
            continue
        given, unreadable = given_for_replay(spec, intent, rec.get("context") or {})
        if unreadable:
            results.append(ReplayResult(seq, False, False, [unreadable]))
            continue
        inputs = rec.get("inputs") or {}
        old = rec.get("plan") or {}
        level = (old.get("explanation") or {}).get("level", "basic")
        try:
            extra = {}
            if inputs:
                extra = {
                    "deadline_ms": inputs.get("deadline_ms"),
                    "budget": Decimal(inputs["budget"]) if inputs.get("budget") is not None else None,
                    "excluded": {(a, p): why for a, p, why in inputs.get("excluded", [])},
                    "done": inputs.get("done") or {},
                }
            from intento.learn import used as learned_used
            from intento.plan import LearnedFigure

            problem = prepare(spec, intent, given, rec.get("state"), **extra, learned=inputs.get("learned"))
            if inputs and not inputs.get("unforced"):
                force, hint = inputs.get("force") or None, inputs.get("hint") or None
            else:
                force, hint = None, None
            replanned = plan_problem(problem, time_limit_s=inputs.get("time_limit_s", time_limit_s), explain=level, force=force, hint=hint,
                                     backend=inputs.get("backend", "cpsat"))
            if replanned.explanation is not None:
                replanned.explanation.figures = [LearnedFigure(**f) for f in learned_used(inputs.get("learned"), replanned)]
                replanned.explanation.switches = _switches_again(spec, intent, given, inputs, old, replanned)
            new = replanned.model_dump(mode="json")
        except IntentoError as e:
            results.append(ReplayResult(seq, False, False, [d.message for d in e.diagnostics]))
            continue
        except (KeyError, TypeError, ValueError, ArithmeticError) as e:
            results.append(ReplayResult(seq, False, False, [f"record {seq} has inputs intento cannot read: {e}"]))
            continue
        diffs = []
        if new["status"] != old.get("status"):
            diffs.append(f"status {old.get('status')} -> {new['status']}")
        a, b = _steps(old), _steps(new)
        for action in sorted(set(a) | set(b)):
            if a.get(action) != b.get(action):
                diffs.append(f"{action}: {a.get(action, 'not in plan')} -> {b.get(action, 'not in plan')}")
        for key in ("cost", "latency_ms"):
            if old.get(key) != new.get(key):
                diffs.append(f"{key} {old.get(key)} -> {new.get(key)}")
        if not diffs and _comparable(old, (rec.get("sources") or {}).get("files") or {}) != _comparable(new, _file_hashes(spec)):
            diffs.append("the plan's explanation or statistics differ")
        results.append(ReplayResult(seq, not diffs, True, diffs))
    return results


def _switches_again(spec: Spec, intent: str, given: dict, inputs: dict, old: dict, new) -> list:
    """The recorded decision's switch times measured again from its inputs: each awaited
    action's route around it re-solved (`executor.route_around`), so a replay checks them too."""
    from intento.execute.executor import route_around, switch_moment
    from intento.plan import SwitchTime

    out = []
    planned = {(s.action, s.provider) for s in new.steps}
    for w in (old.get("explanation") or {}).get("switches") or []:
        if not inputs or inputs.get("deadline_ms") is None:
            continue
        route = route_around(spec, intent, given, inputs, w["action"], w["provider"], inputs.get("backend", "cpsat"), inputs.get("time_limit_s", 10.0))
        if route is None:
            continue
        at = switch_moment(inputs["at"] + inputs["deadline_ms"], route.latency_ms, inputs.get("switch_margin"))
        out.append(SwitchTime(action=w["action"], provider=w["provider"], at_ms=at, then=[f"{s.action} via {s.provider}" for s in route.steps if (s.action, s.provider) not in planned]))
    return out


def given_for_replay(spec: Spec, intent: str, context: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """A recorded context as given values to plan again: a secret's keyed hash stands in for its
    value, which only matters where a `when` guard reads it (then the decision cannot be
    replayed: the reason is returned); elsewhere a placeholder of its type plans the same."""
    from intento.evaluate import reads

    params = spec.intents[intent].given
    given = dict(context)
    for name, v in context.items():
        p = params.get(name)
        if p is None or not p.secret or not (isinstance(v, str) and v.startswith("hmac-sha256:")):
            continue
        guards = sorted(q.name for q in spec.policies.values() if q.when is not None and name in reads(q.when))
        if guards:
            return given, f"a `when` guard ({', '.join(guards)}) reads secret given `{name}`, whose value the log does not keep"
        given[name] = _PLACEHOLDER.get(p.type, v) if p.type != "money" else f"0 {spec.currency or 'USD'}"
    return given, None


_PLACEHOLDER = {"string": "secret", "number": "0", "duration": 0, "bool": False}


def _file_hashes(spec: Spec) -> dict[str, str]:
    return {s.name: hashlib.sha256(s.text.encode()).hexdigest() for s in spec.sources}


_LOCATION = re.compile(r"^(.*):([0-9]+):([0-9]+)$")


def _comparable(plan: dict, files: dict[str, str]) -> dict:
    """A plan without what may vary run to run (wall-clock and search counters), with every
    `file:line:col` location naming the file by its content hash, so the same sources named by
    another path compare equal."""
    out = json.loads(json.dumps(plan))
    for k in ("wall_ms", "build_ms", "branches", "conflicts", "time_limit_s"):
        out.get("solver", {}).pop(k, None)

    def walk(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: (_relocate(v, files) if k == "location" and isinstance(v, str) else walk(v)) for k, v in x.items()}
        if isinstance(x, list):
            return [walk(v) for v in x]
        return x

    return walk(out)


def _relocate(location: str, files: dict[str, str]) -> str:
    m = _LOCATION.match(location)
    if not m or m.group(1) not in files:
        return location
    return f"{files[m.group(1)]}:{m.group(2)}:{m.group(3)}"
