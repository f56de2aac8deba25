"""Without the `temporal` extra, every command that needs Temporal says which extra to install
(one line, exit 1), and `pip install intento[temporal]` is what brings it: the extra names the
SDK, and nothing else a worker imports lies outside the core dependencies."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The interpreter with temporalio made unimportable, as on an install without the extra.
BLOCKED = """
import sys
class _NoTemporal:
    def find_spec(self, name, path=None, target=None):
        if name == "temporalio" or name.startswith("temporalio."):
            raise ModuleNotFoundError(f"No module named {name!r}")
sys.meta_path.insert(0, _NoTemporal())
sys.argv[0] = "intento"
from intento.cli import run
run()
"""


@pytest.mark.parametrize(
    "args",
    [
        ["worker", "examples/order_fulfilment"],
        ["run", "examples/order_fulfilment", "-i", "fulfil_order", "--engine", "temporal"],
        ["status", "some-run", "--engine", "temporal"],
        ["runs", "--engine", "temporal"],
        ["observe", "some-run", "--fact", "x", "--engine", "temporal"],
        ["cancel", "some-run", "--engine", "temporal"],
    ],
)
def test_a_command_needing_temporal_names_the_extra(args):
    r = subprocess.run([sys.executable, "-c", BLOCKED, *args], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 1, r
    assert r.stderr.strip() == "intento: this command needs the `temporal` extra (temporalio is not installed): pip install 'intento[temporal]'", r.stderr


def test_the_temporal_extra_brings_the_sdk():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extra = meta["project"]["optional-dependencies"]["temporal"]
    assert any(d.startswith("temporalio") for d in extra)
    # What the worker imports beyond the SDK (sealing secrets) is a core dependency.
    assert any(d.startswith("cryptography") for d in meta["project"]["dependencies"])
