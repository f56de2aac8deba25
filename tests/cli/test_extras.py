"""Packaging: planning imports neither the server nor Temporal; a command whose extra is missing
says which extra to install, in one line, exit 1; `python -m intento` is the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _py(code: str):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_planning_pulls_neither_the_server_nor_temporal():
    out = _py(
        "import sys, intento\n"
        "p = intento.load('examples/order_fulfilment', 'policies')\n"
        "p.plan('fulfil_order', {'customer.region': 'us', 'order.amount': '80 USD', 'customer.email': 'a@b'})\n"
        "import intento.execute\n"
        "print(sorted(m for m in ('fastapi', 'uvicorn', 'starlette', 'temporalio', 'prometheus_client') if m in sys.modules))"
    )
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr


def test_a_missing_extra_is_one_line_naming_it():
    for blocked, argv, extra in (
        ("uvicorn", ["serve", "examples/order_fulfilment", "--no-auth"], "server"),
        ("temporalio", ["worker", "examples/order_fulfilment"], "temporal"),
    ):
        out = _py(f"import sys; sys.modules[{blocked!r}] = None; sys.argv = ['intento', *{argv!r}]\nfrom intento.cli import run; run()")
        assert out.returncode == 1, out.stderr
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and f"pip install 'intento[{extra}]'" in lines[0] and "Traceback" not in out.stderr


def test_python_dash_m_intento_is_the_cli():
    out = subprocess.run([sys.executable, "-m", "intento", "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("intento ")
