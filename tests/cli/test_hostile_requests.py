"""Malformed `--given` input is a located exit-1 error, never an internal error or a silent
exit 0, and a value that might be a secret is never echoed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXE = str(Path(sys.executable).parent / "intento")
PROJECT = [str(ROOT / "examples" / "order_fulfilment"), str(ROOT / "policies")]
SECRET = "hidden.mail@example.com"


def plan(given: str):
    return subprocess.run([EXE, "plan", *PROJECT, "-i", "fulfil_order", "--given", given], capture_output=True, text=True, env=dict(os.environ, NO_COLOR="1"), timeout=120)


def ok(email: str = SECRET, amount: str = '"80 USD"', region: str = '"us"') -> str:
    return f'{{"customer.region": {region}, "order.amount": {amount}, "customer.email": "{email}"}}'


@pytest.mark.parametrize(
    "given, code, said",
    [
        (ok(region="1.5"), "E104", "must be a string, found `1.5`"),
        (ok(region='"\\ud800"'), "E104", "no UTF-8 form"),
        (ok(amount="9" * 5000), "E104", "must be money"),
        (ok(amount="1e400"), "E104", "must be money"),
        (ok()[:-1] + f', "customer.email": "{SECRET}"}}', "E101", "appears twice"),
        (f'["{SECRET}"]', "E101", "neither inline JSON nor a readable file"),
    ],
)
def test_malformed_given_is_located_and_exit_1(given, code, said):
    r = plan(given)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert f"[{code}]" in r.stderr and said in r.stderr, r.stderr
    assert "internal error" not in r.stderr and "Traceback" not in r.stderr
    assert SECRET not in r.stdout + r.stderr


def test_a_given_file_that_is_not_utf8_is_located(tmp_path):
    f = tmp_path / "bad.json"
    f.write_bytes(ok().replace('"us"', '"u\xff"').encode("latin-1"))
    r = plan(str(f))
    assert r.returncode == 1 and "[E101]" in r.stderr and "not valid UTF-8 (line 1, column 23" in r.stderr, r.stderr
