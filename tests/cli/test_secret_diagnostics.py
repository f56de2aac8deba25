"""Secrets stay secret in diagnostics: a `secret` given's value never appears in a rendering of
bad request input (CLI text, the embedding API, the HTTP API), whatever the mistake (E101, E103,
E104, E105); the location (line, column) and the given's name still do (docs/language.md
"Diagnostics of request input")."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import intento
from intento.cli import app
from intento.request import load_json
from intento.service import create_app
from intento.solve import plan as solve_plan

ROOT = Path(__file__).resolve().parents[2]
ORDERS = [str(ROOT / "examples" / "order_fulfilment"), str(ROOT / "policies")]
SECRET = "alice.secret-mailbox@example.com"
#: Pieces of the secret that must not show either (a cut or a shifted window of it).
PIECES = ("alice", "secret-mailbox", "mailbox@", "example.com")
runner = CliRunner()

#: case -> the --given text (one line), the code, and the text the diagnostic must point at
#: (its line is 1, its column where that text starts).
CASES = {
    # the secret given has the wrong type: the value is shown as <secret>, the snippet hides it
    "E104 secret of the wrong type": ('{"customer.region": "eu", "order.amount": "120 USD", "customer.email": ["' + SECRET + '"]}', "E104", '"customer.email"'),
    # another given is wrong: its snippet line holds the secret
    "E104 beside a secret": ('{"customer.region": 7, "order.amount": "120 USD", "customer.email": "' + SECRET + '"}', "E104", '"customer.region"'),
    # an unknown given on the same line as the secret
    "E105 beside a secret": ('{"customer.region": "eu", "order.amount": "120 USD", "customer.email": "' + SECRET + '", "extra": 1}', "E105", '"extra"'),
    # invalid JSON: which names are secret is not known yet
    "E101 invalid JSON": ('{"customer.email": "' + SECRET + '" "customer.region": "eu"}', "E101", '"customer.region"'),
    "E101 unterminated string": ('{"customer.region": "eu", "customer.email": "' + SECRET, "E101", '"' + SECRET),
    # a missing given: the snippet is the first line, which holds the secret
    "E103 missing beside a secret": ('{"customer.email": "' + SECRET + '", "customer.region": "eu"}', "E103", "{"),
}


def _column(given: str, at: str) -> int:
    return given.index(at) + 1


def _assert_hidden(text: str) -> None:
    for piece in (SECRET, *PIECES):
        assert piece not in text, f"`{piece}` leaked:\n{text}"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.split()[0] + "-" + "_".join(c.split()[1:]))
def test_cli_plan_never_prints_a_secret(case):
    given, code, at = CASES[case]
    r = runner.invoke(app, ["plan", *ORDERS, "-i", "fulfil_order", "--given", given])
    assert r.exit_code == 1, r.output
    out = r.stdout + r.stderr
    _assert_hidden(out)
    assert f"--given:1:{_column(given, at)}: error[{code}]" in out, out
    assert "Traceback" not in out


def test_cli_points_at_the_name_of_a_secret_given_and_hides_its_value():
    given = CASES["E104 secret of the wrong type"][0]
    r = runner.invoke(app, ["plan", *ORDERS, "-i", "fulfil_order", "--given", given])
    lines = r.stderr.splitlines()
    snippet, marker = lines[2], lines[3]
    assert "given `customer.email` must be a string, found `<secret>`" in lines[0]
    assert snippet == '1 | {"customer.region": "***", "order.amount": "***", "customer.email": ["***"]}'
    # The underline is under the name, in the line as shown (values hidden, columns moved).
    start = marker.index("^")
    assert snippet[start:].startswith('"customer.email"') and marker.count("^") == len('"customer.email"')


def test_a_given_file_over_several_lines(tmp_path: Path):
    g = tmp_path / "given.json"
    g.write_text('{\n  "customer.region": "eu",\n  "order.amount": "120 USD",\n  "customer.email": "' + SECRET + '", "extra": 1\n}\n')
    r = runner.invoke(app, ["plan", *ORDERS, "-i", "fulfil_order", "--given", str(g)])
    assert r.exit_code == 1
    _assert_hidden(r.stdout + r.stderr)
    assert f"{g}:4:{len(SECRET) + 25}: error[E105]" in r.stderr
    assert '4 |   "customer.email": "***", "extra": ***' in r.stderr
    g.write_text('{\n  "customer.region":\n    "eu", "customer.email": "' + SECRET + '" "x": 1\n}\n')
    r = runner.invoke(app, ["plan", *ORDERS, "-i", "fulfil_order", "--given", str(g)])
    assert r.exit_code == 1 and f"{g}:3:{len(SECRET) + 32}: error[E101]" in r.stderr
    assert '3 |     "***", "customer.email": "***" "***": ***' in r.stderr, "keys are known across lines"
    _assert_hidden(r.stdout + r.stderr)


def test_explain_and_run_share_the_rule():
    given = CASES["E105 beside a secret"][0]
    r = runner.invoke(app, ["explain", *ORDERS, "-i", "fulfil_order", "--given", given])
    assert r.exit_code == 1 and "error[E105]" in r.stderr
    _assert_hidden(r.stdout + r.stderr)


def test_secret_numbers_and_bools_are_hidden_too(tmp_path: Path):
    (tmp_path / "p.intent").write_text(
        "provider p {}\naction a { achieves x; via p { latency 1s } }\n"
        "intent i { given pin: number secret, admin: bool secret, region: string; goal x }\n"
    )
    r = runner.invoke(app, ["plan", str(tmp_path), "-i", "i", "--given", '{"pin": 98765, "admin": true, "region": 4}'])
    assert r.exit_code == 1 and "error[E104]" in r.stderr
    assert "98765" not in r.stderr and "true" not in r.stderr.split("\n", 1)[1]


def test_embedding_api_diagnostics_hold_no_secret():
    project = intento.load(*ORDERS)
    for given, code, _ in CASES.values():
        if code == "E101":
            continue  # the embedding API takes values, not JSON text
        with pytest.raises(intento.RequestError) as e:
            project.plan("fulfil_order", json.loads(given))
        _assert_hidden(str(e.value))
        for d in e.value.diagnostics:
            _assert_hidden(d.render() + d.one_line() + json.dumps(d.to_model().model_dump()))
        assert code in {d.code for d in e.value.diagnostics}


def test_embedding_api_with_a_json_source_hides_values():
    project = intento.load(*ORDERS)
    for given, code, at in CASES.values():
        data, src, diags = load_json(given, "request.json")
        if not diags:
            with pytest.raises(intento.IntentoError) as e:
                solve_plan(project.spec, "fulfil_order", data, given_source=src)
            diags = e.value.diagnostics
        for d in diags:
            _assert_hidden(d.render())
        assert any(d.code == code and (d.span.line, d.span.column) == (1, _column(given, at)) for d in diags), diags


def _post(asgi_app, path: str, body: bytes) -> tuple[int, str]:
    """One request straight to the ASGI app (no server, no HTTP client library)."""
    sent: list[dict] = []
    request = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive():
        return request.pop() if request else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
    }  # fmt: skip
    asyncio.run(asgi_app(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body").decode()


def test_http_api_diagnostics_hold_no_secret(tmp_path: Path):
    project = intento.load(*ORDERS)
    asgi_app = create_app(project.spec, tmp_path / "o.db")
    for given, code, _ in CASES.values():
        if code == "E101":
            continue  # a request body that is not JSON is refused by its schema, before any diagnostic
        status, text = _post(asgi_app, "/v1/plan", json.dumps({"intent": "fulfil_order", "given": json.loads(given)}).encode())
        assert status == 422, text
        _assert_hidden(text)
        assert code in text
