"""The audit trail detects every edit, insertion, deletion, reordering; a torn tail is reported as
such; a signed checkpoint reveals truncation and rewrites; replay of an unchanged log is clean."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import intento
from intento.audit import AuditError, AuditLog, keygen, make_checkpoint, replay, verify

ROOT = Path(__file__).resolve().parents[2]
REQUESTS = [
    {"customer.region": "eu", "order.amount": "120 USD", "customer.email": "anna@example.com"},
    {"customer.region": "us", "order.amount": "1500 USD", "customer.email": "bob@example.com"},
    {"customer.region": "us", "order.amount": "80 USD", "customer.email": "carla@example.com"},
    {"customer.region": "eu", "order.amount": "40 USD", "customer.email": "dan@example.com"},
]


@pytest.fixture(scope="module")
def project():
    return intento.load(ROOT / "examples" / "order_fulfilment", ROOT / "policies")


@pytest.fixture(scope="module")
def pristine(project, tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("audit") / "log.jsonl"
    log = AuditLog(path)
    for i, request in enumerate(REQUESTS):
        state = {"providers": {"stripe": {"status": "down"}}} if i == 2 else {}
        plan = project.plan("fulfil_order", request, state)
        log.append(project.spec, "fulfil_order", request, state, plan)
    return path.read_bytes()


def _write(tmp_path: Path, data: bytes) -> Path:
    p = tmp_path / "log.jsonl"
    p.write_bytes(data)
    return p


def test_pristine_log_verifies(pristine, tmp_path):
    v = verify(_write(tmp_path, pristine))
    assert v.ok and v.records == 4


def test_secrets_are_never_written(pristine):
    assert b"anna@example.com" not in pristine and b"hmac-sha256:" in pristine


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_flipping_any_single_byte_is_detected(pristine, tmp_path, data):
    pos = data.draw(st.integers(0, len(pristine) - 2))  # the final newline is covered by the torn-tail test
    bit = data.draw(st.integers(0, 7))
    mutated = bytearray(pristine)
    mutated[pos] ^= 1 << bit
    v = verify(_write(tmp_path, bytes(mutated)))
    assert not v.ok
    assert v.first_bad_seq is not None


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")[:-1]


def _join(lines: list[bytes]) -> bytes:
    return b"\n".join(lines) + b"\n"


def test_deleting_duplicating_swapping_are_detected(pristine, tmp_path):
    lines = _lines(pristine)
    deleted = verify(_write(tmp_path, _join(lines[:1] + lines[2:])))
    assert (deleted.ok, deleted.problem, deleted.first_bad_seq) == (False, "chain", 3)
    duplicated = verify(_write(tmp_path, _join(lines[:2] + lines[1:])))
    assert (duplicated.ok, duplicated.first_bad_seq) == (False, 2)
    swapped = verify(_write(tmp_path, _join([lines[0], lines[2], lines[1], lines[3]])))
    assert (swapped.ok, swapped.first_bad_seq) == (False, 3)
    first_removed = verify(_write(tmp_path, _join(lines[1:])))
    assert (first_removed.ok, first_removed.first_bad_seq) == (False, 2)


def test_an_edited_field_with_a_recomputed_hash_still_breaks_the_chain(pristine, tmp_path):
    from intento.audit import canonical, record_hash

    lines = _lines(pristine)
    rec = json.loads(lines[1])
    rec["plan"]["cost"] = "0.01"
    rec["hash"] = record_hash(rec)
    lines[1] = canonical(rec)
    v = verify(_write(tmp_path, _join(lines)))
    assert (v.ok, v.problem, v.first_bad_seq) == (False, "chain", 3)


def test_torn_tail_is_not_tampering(pristine, tmp_path, project):
    torn = pristine + b'{"context":{"customer.region":"eu"'
    path = _write(tmp_path, torn)
    v = verify(path)
    assert (v.ok, v.problem, v.records) == (False, "torn_tail", 4)
    with pytest.raises(AuditError):
        AuditLog(path).append(project.spec, "fulfil_order", REQUESTS[0], {}, project.plan("fulfil_order", REQUESTS[0]))
    assert path.read_bytes() == torn  # nothing is lost or overwritten


def test_checkpoint_detects_truncation_and_rewrite(pristine, tmp_path, project):
    private, public = keygen()
    path = _write(tmp_path, pristine)
    cp = make_checkpoint(path, private)
    assert verify(path, cp, public).ok
    lines = _lines(pristine)
    # Truncation: the chain of the first 3 records is intact, only the checkpoint reveals it.
    path.write_bytes(_join(lines[:3]))
    assert verify(path).ok
    v = verify(path, cp, public)
    assert (v.ok, v.problem) == (False, "truncated")
    # Rewrite from record 3 on: a consistent new chain, again only the checkpoint reveals it.
    path.write_bytes(_join(lines[:2]))
    other = {"customer.region": "us", "order.amount": "99 USD", "customer.email": "x@example.com"}
    for _ in range(2):
        AuditLog(path).append(project.spec, "fulfil_order", other, {}, project.plan("fulfil_order", other))
    assert verify(path).ok
    v = verify(path, cp, public)
    assert (v.ok, v.problem, v.first_bad_seq) == (False, "rewritten", 4)
    # A forged checkpoint (or a different key) is refused.
    forged = dict(cp, seq=2)
    assert verify(_write(tmp_path, pristine), forged, public).problem == "signature"
    assert verify(_write(tmp_path, pristine), cp, keygen()[1]).problem == "signature"


def test_replay_of_an_unchanged_log_reports_nothing(pristine, tmp_path, project):
    results = replay(_write(tmp_path, pristine), project.spec)
    assert len(results) == 4 and all(r.same for r in results), [r.differences for r in results]


def test_replay_under_changed_policies_shows_the_difference(pristine, tmp_path, project):
    changed = intento.load(ROOT / "examples" / "order_fulfilment", ROOT / "policies" / "common", ROOT / "policies" / "payments")
    results = replay(_write(tmp_path, pristine), changed.spec)
    by_seq = {r.seq: r for r in results}
    # Without the soft green preference, US orders (records 2 and 3) ship with the cheaper
    # non-green carrier; EU orders keep their plan, and only their explanation changes (the policy
    # set that applied is different).
    for seq in (2, 3):
        assert any(d.startswith("ship_order: postnl -> ups") for d in by_seq[seq].differences), by_seq[seq]
    for seq in (1, 4):
        assert by_seq[seq].differences == ["the plan's explanation or statistics differ"]
