"""`audit verify` judges strictly and never crashes: a record with a duplicate JSON key is not a
record, hostile lines are named, and a checkpoint's missing records are a truncation even when
the log also ends in a torn line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import intento
from intento.audit import AuditLog, canonical, keygen, make_checkpoint, record_hash, verify

ROOT = Path(__file__).resolve().parents[2]
GIVEN = {"customer.region": "eu", "order.amount": "120 USD", "customer.email": "anna@example.com"}


@pytest.fixture(scope="module")
def log_bytes(tmp_path_factory) -> bytes:
    project = intento.load(ROOT / "examples" / "order_fulfilment", ROOT / "policies")
    path = tmp_path_factory.mktemp("hostile") / "log.jsonl"
    log = AuditLog(path)
    for _ in range(3):
        log.append(project.spec, "fulfil_order", GIVEN, {}, project.plan("fulfil_order", GIVEN))
    return path.read_bytes()


def _write(tmp_path: Path, data: bytes) -> Path:
    p = tmp_path / "log.jsonl"
    p.write_bytes(data)
    return p


def test_a_duplicate_key_makes_a_record_malformed(log_bytes, tmp_path):
    lines = log_bytes.splitlines(keepends=True)
    rec = json.loads(lines[1])
    # The same record with `intent` written twice: one JSON reader sees the first value, another
    # the last, and the hash (computed over the last) would still match.
    text = canonical(rec).decode()
    dup = text.replace('"intent":', '"intent":"something_else","intent":', 1)
    assert json.loads(dup)["hash"] == record_hash(json.loads(dup))  # the hash alone misses it
    v = verify(_write(tmp_path, lines[0] + dup.encode() + b"\n" + lines[2]))
    assert not v.ok and v.problem == "malformed" and v.first_bad_seq == 2 and "appears twice" in v.message


@pytest.mark.parametrize(
    "line",
    [
        b"[" * 100_000 + b"]" * 100_000,  # nested too deeply for a recursive reader
        b'{"seq": 1, "hash": "\\ud800", "prev": "x"}',  # a lone surrogate: no canonical UTF-8 form
        b'{"seq": [1], "hash": 5, "prev": null}',
        b'{"seq": true, "hash": "h", "prev": "0"}',
        b"\xff\xfe not utf-8",
        b'"just a string"',
        b"{}",
    ],
)
def test_hostile_lines_are_named_never_crashed_on(log_bytes, tmp_path, line):
    lines = log_bytes.splitlines(keepends=True)
    v = verify(_write(tmp_path, lines[0] + line + b"\n" + lines[1]))
    assert not v.ok and v.problem in ("malformed", "edited", "chain", "sequence")
    assert v.records == 1 and v.first_bad_seq == 2


def test_a_truncation_is_not_called_a_torn_tail(log_bytes, tmp_path):
    private, public = keygen()
    full = _write(tmp_path, log_bytes)
    cp = make_checkpoint(full, private)
    lines = log_bytes.splitlines(keepends=True)
    # the last record removed and half of the second written back: records are missing
    cut = _write(tmp_path, lines[0] + lines[1][: len(lines[1]) // 2])
    v = verify(cut, cp, public)
    assert not v.ok and v.problem == "truncated" and "torn" in v.message and "covers 3" in v.message
    # without a checkpoint the same file can only be judged an interrupted write
    assert verify(cut).problem == "torn_tail"
