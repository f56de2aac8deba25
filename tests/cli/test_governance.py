"""Governance fails closed (issue 12): a `when` guard that cannot be decided never switches its
policy off, `intento check` says where a guard cannot be decided, `intento policy diff` reads
every audit log intento writes and fails its gate on what it cannot plan, and the audit tools
(`audit keygen`, `audit checkpoint`) answer bad paths and keys with one clear line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

import intento
from intento.check import check_paths
from intento.problem import policy_applies
from intento.values import Duration, Money
from tests.planner import validator

ROOT = Path(__file__).resolve().parents[2]
EXE = str(Path(sys.executable).parent / "intento")
GOV = ROOT / "tests" / "fixtures" / "governance"
ORDERS = ROOT / "examples" / "order_fulfilment"


def intento_cli(*args, env=None, cwd=None):
    e = dict(os.environ, NO_COLOR="1")
    e.update(env or {})
    return subprocess.run([EXE, *map(str, args)], capture_output=True, text=True, env=e, cwd=cwd)


def no_crash(r) -> None:
    text = r.stdout + r.stderr
    assert "Traceback" not in text and "internal error" not in text, text


SHARED = """
provider us_host { region "us" }
provider eu_host { region "eu" }
action store { achieves stored; via us_host { cost 1 USD; latency 1s }; via eu_host { cost 2 USD; latency 1s } }
intent ingest { given dataset.region: string; goal stored }
intent backup { given job.id: string; goal stored }
policy gdpr { when dataset.region == "eu"; forbid via where region != "eu" }
"""


# ---- intento check -------------------------------------------------------------------------------


def test_a_typo_in_a_guard_fails_the_check_with_a_located_did_you_mean(tmp_path: Path):
    (tmp_path / "p.intent").write_text(SHARED.replace('when dataset.region == "eu"', 'when dataset.regoin == "eu"'))
    r = intento_cli("check", tmp_path)
    no_crash(r)
    assert r.returncode == 1
    out = r.stdout + r.stderr
    assert "p.intent:7:20: error[E037]: no intent declares given `dataset.regoin`, read by the `when` of policy `gdpr`" in out
    assert "help: did you mean `dataset.region`?" in out


def test_an_intent_without_the_guarded_name_is_a_warning_naming_the_pair(tmp_path: Path):
    (tmp_path / "p.intent").write_text(SHARED)
    r = intento_cli("check", tmp_path, "--format", "short")
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout + r.stderr
    assert "p.intent:7:20: warning[W103]: intent `backup` does not declare `dataset.region`, so policy `gdpr` always applies to it" in out
    assert "intent `ingest`" not in out


@pytest.mark.parametrize(
    "paths",
    [["examples/order_fulfilment", "policies"], ["examples/insurance_quote", "policies/common"], ["examples/settlement", "policies/common"]],
)
def test_the_shipped_examples_still_check_without_guard_diagnostics(paths):
    result = check_paths([ROOT / p for p in paths])
    assert result.ok, [d.render() for d in result.errors]
    assert not [d for d in result.diagnostics if d.code in ("E037", "W102", "W103")]


# ---- evaluation: an undecidable guard applies ------------------------------------------------------


@pytest.mark.parametrize("backend", ["cpsat", "constraint"])
def test_a_policy_applies_to_an_intent_that_does_not_declare_what_its_guard_reads(tmp_path: Path, backend):
    (tmp_path / "p.intent").write_text(SHARED)
    project = intento.load(tmp_path)
    backup = project.plan("backup", given={"job.id": "nightly"}, backend=backend)
    assert [(s.action, s.provider) for s in backup.steps] == [("store", "eu_host")]
    assert "gdpr" in backup.explanation.applied_policies
    # The guard still decides for the intent that declares the name.
    us = project.plan("ingest", given={"dataset.region": "us"}, backend=backend)
    assert [(s.action, s.provider) for s in us.steps] == [("store", "us_host")] and "gdpr" not in us.explanation.applied_policies
    # The independent validator holds the same rule: the cheaper US plan breaks `gdpr` for `backup`.
    spec = project.spec
    assert validator.check_plan(spec, "backup", {"job.id": "nightly"}, {}, backup.model_dump(mode="json")) == []
    us_plan = us.model_dump(mode="json")
    assert validator.check_plan(spec, "backup", {"job.id": "nightly"}, {}, us_plan) != []


GUARDS = """
provider q {}
action a { achieves x; via q { latency 1s } }
intent i { given r: string, amt: money, n: number, flag: bool, wait: duration; goal x }
policy by_region { when r == "eu"; forbid provider q }
policy by_amount { when amt > 1000 USD; forbid provider q }
policy by_flag { when flag; forbid provider q }
policy by_both { when r == "eu" and n > 3; forbid provider q }
policy by_not { when not (n > 3); forbid provider q }
policy by_list { when r in ["eu", "uk"]; forbid provider q }
policy by_wait { when wait >= 2s; forbid provider q }
"""
FULL = {"r": "us", "amt": Money(Decimal(5), "USD"), "n": Decimal(1), "flag": False, "wait": Duration(1000)}


@pytest.mark.parametrize(
    "note,context,want",
    [
        ("every guard decided false", FULL, {"by_not"}),
        ("decided true", FULL | {"r": "eu", "n": Decimal(4), "flag": True}, {"by_region", "by_both", "by_flag", "by_list"}),
        ("a missing value applies, even under `not`", {k: v for k, v in FULL.items() if k != "n"}, {"by_both", "by_not"}),
        ("a missing value applies, even when the rest of an `and` is false", {k: v for k, v in FULL.items() if k != "n"} | {"r": "us"}, {"by_both", "by_not"}),
        ("money of another currency applies", FULL | {"amt": Money(Decimal(5), "EUR")}, {"by_amount", "by_not"}),
        ("a number where money is compared applies", FULL | {"amt": Decimal(5)}, {"by_amount", "by_not"}),
        ("a bare name that is not a bool applies", FULL | {"flag": "no"}, {"by_flag", "by_not"}),
        ("a string where a list item is compared applies", FULL | {"r": 7}, {"by_region", "by_both", "by_list", "by_not"}),
        ("a number where a duration is compared applies", FULL | {"wait": 1000}, {"by_wait", "by_not"}),
        ("None is missing", FULL | {"r": None}, {"by_region", "by_both", "by_list", "by_not"}),
    ],
)
def test_a_guard_that_cannot_be_decided_fails_closed_in_the_planner_and_the_validator(tmp_path: Path, note, context, want):
    (tmp_path / "g.intent").write_text(GUARDS)
    spec = check_paths([tmp_path]).spec
    intent = spec.intents["i"]
    got = {p.name for p in spec.policies.values() if policy_applies(p, intent, context)}
    assert got == want, note
    assert {p.name for p in spec.policies.values() if validator.applies(p, intent, context)} == want, note


# ---- intento policy diff -----------------------------------------------------------------------


def _diff(old: Path, new: Path, with_: Path, cases: Path, *extra):
    return intento_cli("policy", "diff", old, new, "--with", with_, "--cases", cases, *extra)


GIVEN = {"dataset.region": "eu", "dataset.rows": 0.5, "owner.email": "a@example.com", "owner.score": 0.9,
         "owner.limit": "10 USD", "owner.window": "2s", "owner.vip": True}


@pytest.fixture(scope="module")
def secret_log(tmp_path_factory) -> Path:
    """An audit log written by `intento plan --audit`: every secret given (of each type) hashed."""
    log = tmp_path_factory.mktemp("log") / "decisions.jsonl"
    for region in ("eu", "us"):
        r = intento_cli("plan", GOV / "project", GOV / "policies_old", "-i", "ingest", "-g", json.dumps(GIVEN | {"dataset.region": region}), "--audit", log)
        assert r.returncode == 0, r.stdout + r.stderr
    records = [json.loads(line) for line in log.read_text().splitlines()]
    for name in ("owner.email", "owner.score", "owner.limit", "owner.window", "owner.vip"):
        assert all(rec["context"][name].startswith("hmac-sha256:") for rec in records)
    return log


def test_a_log_with_hashed_secrets_of_every_type_plans_when_no_guard_reads_them(secret_log: Path):
    r = _diff(GOV / "policies_old", GOV / "policies_old", GOV / "project", secret_log, "--fail-on-change")
    no_crash(r)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "record 1 (ingest): unchanged" in r.stdout and "record 2 (ingest): unchanged" in r.stdout
    assert "cannot plan" not in r.stdout and "0 of 2 plans change" in r.stdout


def test_a_case_whose_guard_reads_a_hashed_secret_cannot_be_planned_and_fails_the_gate(secret_log: Path):
    r = _diff(GOV / "policies_old", GOV / "policies_new", GOV / "project", secret_log, "--fail-on-change")
    no_crash(r)
    assert r.returncode == 1
    assert "record 1: cannot plan: a `when` guard (risky_owners) reads secret given `owner.score`, whose value the log does not keep" in r.stdout
    assert "2 of 2 cases cannot be planned" in r.stdout
    assert "a@example.com" not in r.stdout + r.stderr


def test_fail_on_change_fails_when_a_case_cannot_be_planned(tmp_path: Path):
    cases = tmp_path / "cases.json"
    cases.write_text(json.dumps([
        {"intent": "ingest", "given": GIVEN},
        {"intent": "ingset", "given": GIVEN},
        {"intent": "ingest", "given": GIVEN | {"dataset.rows": "many"}},
        ["not", "a", "case"],
    ]))
    r = _diff(GOV / "policies_old", GOV / "policies_old", GOV / "project", cases, "--fail-on-change")
    no_crash(r)
    assert r.returncode == 1
    assert "case 1 (ingest): unchanged" in r.stdout
    assert "case 2: cannot plan: unknown intent `ingset`" in r.stdout
    assert "case 3: cannot plan: given `dataset.rows` must be a number" in r.stdout
    assert "case 4: cannot plan: not an object with an `intent` name" in r.stdout
    assert "0 of 1 plans change; 3 of 4 cases cannot be planned" in r.stdout
    # Without the gate it is a report: exit 0.
    assert _diff(GOV / "policies_old", GOV / "policies_old", GOV / "project", cases).returncode == 0


@pytest.fixture(scope="module")
def run_log(tmp_path_factory) -> Path:
    """The audit log the executor writes for a run: a plan, then re-plans with `run`, `reason`, `inputs`."""
    db = tmp_path_factory.mktemp("run") / "o.db"
    r = intento_cli("run", ORDERS, ROOT / "policies", "-i", "fulfil_order", "-g", ORDERS / "requests" / "us_order.json",
                    "--simulate", ORDERS / "scenarios" / "stripe_outage.json", "--store", db, "-q")
    assert r.returncode == 0, r.stdout + r.stderr
    log = db.with_name(db.name + ".audit.jsonl")
    kinds = [json.loads(line)["kind"] for line in log.read_text().splitlines()]
    assert kinds[0] == "plan" and "replan" in kinds
    return log


def test_a_run_log_with_re_plans_is_read_and_compared(run_log: Path):
    r = _diff(ROOT / "policies", ROOT / "policies", ORDERS, run_log, "--fail-on-change")
    no_crash(r)
    assert r.returncode == 0, r.stdout + r.stderr
    n = len(run_log.read_text().splitlines())
    assert f"0 of {n} plans change" in r.stdout and "a re-plan of run run-" in r.stdout


def test_unknown_keys_a_torn_tail_and_malformed_lines_are_reported_not_fatal(run_log: Path, tmp_path: Path):
    lines = run_log.read_text().splitlines()
    first = json.loads(lines[0])
    first["inputs"] = (first.get("inputs") or {}) | {"a_key_from_the_future": {"x": 1}}
    first["another_new_field"] = [1, 2]
    log = tmp_path / "damaged.jsonl"
    log.write_text("\n".join([json.dumps(first), *lines[1:], "this is not json", '{"seq": 99, "kind": "plan"}']) + '\n{"seq": 100, "intent": "fulf')
    r = _diff(ROOT / "policies", ROOT / "policies", ORDERS, log, "--fail-on-change")
    no_crash(r)
    n = len(lines)
    assert "record 1 (fulfil_order): unchanged" in r.stdout
    assert f"line {n + 1}: cannot plan: not a JSON record" in r.stdout
    assert "record 99: cannot plan: not a decision record (it needs `intent`, `context` and `state`)" in r.stdout
    assert f"line {n + 3}: the last line is torn" in r.stdout
    assert r.returncode == 1  # two lines could not be compared: the gate does not pass them silently
    # A torn tail alone (a crash mid-write) is not a failure: it was never a decision.
    torn_only = tmp_path / "torn.jsonl"
    torn_only.write_text("\n".join(lines) + '\n{"seq": 100, "intent": "fulf')
    r = _diff(ROOT / "policies", ROOT / "policies", ORDERS, torn_only, "--fail-on-change")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "the last line is torn" in r.stdout


def test_an_empty_log_fails_the_gate(tmp_path: Path):
    log = tmp_path / "empty.jsonl"
    log.write_text("")
    r = _diff(ROOT / "policies", ROOT / "policies", ORDERS, log, "--fail-on-change")
    no_crash(r)
    assert r.returncode == 1 and "holds no case to compare" in r.stderr


# ---- intento audit keygen / checkpoint -------------------------------------------------------------


def test_keygen_into_a_missing_folder_is_one_clear_line(tmp_path: Path):
    r = intento_cli("audit", "keygen", "--out", tmp_path / "nowhere" / "signer")
    no_crash(r)
    assert r.returncode == 1
    assert r.stderr.strip() == f"intento: cannot write the key pair: folder `{tmp_path / 'nowhere'}` does not exist; create it first"
    assert not (tmp_path / "nowhere").exists()


def test_keygen_refuses_to_overwrite_either_half_of_a_pair(tmp_path: Path):
    (tmp_path / "signer.pub").write_text("someone else's public key")
    r = intento_cli("audit", "keygen", "--out", tmp_path / "signer")
    assert r.returncode == 1 and "refusing to overwrite a key" in r.stderr
    assert not (tmp_path / "signer.key").exists() and (tmp_path / "signer.pub").read_text() == "someone else's public key"


@pytest.fixture(scope="module")
def signed(tmp_path_factory, secret_log: Path) -> dict:
    d = tmp_path_factory.mktemp("keys")
    r = intento_cli("audit", "keygen", "--out", d / "signer")
    assert r.returncode == 0, r.stderr
    assert (d / "signer.key").stat().st_mode & 0o777 == 0o600
    return {"dir": d, "key": d / "signer.key", "pub": d / "signer.pub", "log": secret_log}


def test_checkpoint_into_a_missing_folder_is_one_clear_line(signed, tmp_path: Path):
    out = tmp_path / "nowhere" / "cp.json"
    r = intento_cli("audit", "checkpoint", signed["log"], "--key", signed["key"], "--out", out)
    no_crash(r)
    assert r.returncode == 1
    assert r.stderr.strip() == f"intento: cannot write the checkpoint: folder `{out.parent}` does not exist; create it first"
    ok = intento_cli("audit", "checkpoint", signed["log"], "--key", signed["key"], "--out", tmp_path / "cp.json")
    assert ok.returncode == 0, ok.stderr
    v = intento_cli("audit", "verify", signed["log"], "--checkpoint", tmp_path / "cp.json", "--pubkey", signed["pub"])
    assert v.returncode == 0, v.stderr


@pytest.mark.parametrize("what", ["garbage", "public key", "rsa key", "encrypted key", "missing", "folder", "empty"])
def test_checkpoint_with_a_key_that_is_not_an_ed25519_private_key(signed, tmp_path: Path, what):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    key = tmp_path / "k.pem"
    if what == "garbage":
        key.write_bytes(b"\x00\xffnot a key at all\n")
    elif what == "public key":
        key.write_bytes(signed["pub"].read_bytes())
    elif what == "rsa key":
        k = rsa.generate_private_key(public_exponent=65537, key_size=1024)
        key.write_bytes(k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    elif what == "encrypted key":
        k = ed25519.Ed25519PrivateKey.generate()
        key.write_bytes(k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"pw")))
    elif what == "folder":
        key.mkdir()
    elif what == "empty":
        key.write_bytes(b"")
    r = intento_cli("audit", "checkpoint", signed["log"], "--key", key)
    no_crash(r)
    assert r.returncode == 1 and r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("intento: ")
    assert f"`{key}`" in r.stderr


def test_checkpoint_of_a_missing_log_and_of_a_log_that_does_not_verify(signed, tmp_path: Path):
    r = intento_cli("audit", "checkpoint", tmp_path / "missing.jsonl", "--key", signed["key"])
    no_crash(r)
    assert r.returncode == 1 and r.stderr.strip() == f"intento: no audit log at `{tmp_path / 'missing.jsonl'}`"
    lines = signed["log"].read_text().splitlines()
    edited = json.loads(lines[0]) | {"intent": "something_else"}
    bad = tmp_path / "edited.jsonl"
    bad.write_text("\n".join([json.dumps(edited), *lines[1:]]) + "\n")
    r = intento_cli("audit", "checkpoint", bad, "--key", signed["key"], "--out", tmp_path / "cp.json")
    no_crash(r)
    assert r.returncode == 1 and "refusing to checkpoint a log that does not verify" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "cp.json").exists()
