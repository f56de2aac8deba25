"""Schemathesis against the committed OpenAPI spec: generated requests never get a 5xx, and
responses conform to their declared schemas. The app is the real one, run in-process (ASGI)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.specs.openapi.checks import response_schema_conformance  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402

import intento  # noqa: E402
from intento.execute import Scenario  # noqa: E402
from intento.service import create_app  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
_project = intento.load(ROOT / "examples" / "order_fulfilment", ROOT / "policies")
_app = create_app(_project.spec, Path(__import__("tempfile").mkdtemp()) / "st.db", scenario=Scenario(seed=1))
schema = schemathesis.openapi.from_dict(json.loads((ROOT / "docs" / "openapi.json").read_text()))
schema.app = _app


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_never_fails_on_generated_requests(case):
    response = case.call(app=_app)
    case.validate_response(response, checks=(not_a_server_error, response_schema_conformance))
