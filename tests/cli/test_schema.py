"""The committed JSON schemas (docs/schema/) match the models: a change to a model that crosses a
boundary is a visible change to a reviewed file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from intento.cli import app

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["plan", "state", "diagnostic"])
def test_committed_schema_matches_model(name):
    r = CliRunner().invoke(app, ["schema", name])
    assert r.exit_code == 0
    assert json.loads(r.stdout) == json.loads((ROOT / "docs" / "schema" / f"{name}.json").read_text())
