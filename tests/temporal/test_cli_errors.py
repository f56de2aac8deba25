"""`intento worker` and `intento run --engine temporal` end every failing path with one
actionable line on stderr and a documented exit code (docs/executor.md, "Temporal"): 1 for an
unreachable Temporal or a bad address, 4 for a run cancelled or terminated while the command
waits on it. Never a traceback, never an abort of the Temporal native runtime at exit (which
happened about one time in four): set INTENTO_TEMPORAL_REPEAT=10 to run each path ten times."""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
import uuid

import pytest

temporalio = pytest.importorskip("temporalio")
from temporalio.client import Client  # noqa: E402

from intento.check import check_sources  # noqa: E402
from intento.diagnostics import Source  # noqa: E402
from intento.temporal import Activities, IntentRun, worker  # noqa: E402

from .conftest import INTENTO, free_port, until  # noqa: E402

REPEAT = int(os.environ.get("INTENTO_TEMPORAL_REPEAT", "1"))
PROJECT = """
provider bank { region "eu" }
provider psp { region "eu" }
action file_lands { external; achieves file.received; timeout 10m; via bank { latency 100ms } }
action post { requires file.received; achieves posted; via psp { cost 1 USD; latency 10ms } }
intent settle { goal posted; minimize cost }
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "settle.intent"
    path.write_text(PROJECT)
    return path


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([INTENTO, *args], capture_output=True, text=True, timeout=timeout)


def _one_clean_line(r: subprocess.CompletedProcess) -> str:
    """The command's stderr, checked to be one line of intento's own (no traceback, no abort)."""
    err = r.stderr.strip()
    assert r.returncode not in (-6, -11, 134, 139), f"aborted ({r.returncode}): {r.stderr}"
    assert "Traceback" not in err and "Fatal Python error" not in err, err
    assert err.startswith("intento: ") and "\n" not in err, err
    return err


def _commands(project, address: str, store) -> dict[str, list[str]]:
    return {
        "worker": ["worker", str(project), "--temporal", address, "--store", str(store)],
        "run": ["run", str(project), "-i", "settle", "--engine", "temporal", "--temporal", address],
    }


@pytest.mark.parametrize("attempt", range(REPEAT))
@pytest.mark.parametrize("command", ["worker", "run"])
def test_nothing_listening_is_exit_1_in_one_line(command, attempt, project, tmp_path):
    address = f"127.0.0.1:{free_port()}"  # free: nothing listens there
    r = _cli(*_commands(project, address, tmp_path / "w.db")[command])
    err = _one_clean_line(r)
    assert r.returncode == 1, r
    assert err.startswith(f"intento: cannot reach Temporal at {address}: connection refused") and "temporal server start-dev" in err


@pytest.mark.parametrize(("command", "address"), [("worker", "not an address"), ("run", "http://127.0.0.1:7233"), ("run", "127.0.0.1:99999")])
def test_a_bad_address_is_exit_1_in_one_line(command, address, project, tmp_path):
    r = _cli(*_commands(project, address, tmp_path / "w.db")[command])
    err = _one_clean_line(r)
    assert r.returncode == 1, (r.returncode, err)
    assert err.startswith("intento: `--temporal` ") and "e.g. `--temporal 127.0.0.1:7233`" in err, err


@pytest.mark.parametrize("attempt", range(REPEAT))
def test_a_run_cancelled_or_terminated_while_waited_on_is_exit_4_in_one_line(attempt, project, temporal_address):
    spec = check_sources([Source("settle.intent", PROJECT)]).spec
    queue = f"cli-{uuid.uuid4().hex[:8]}"
    keys = {how: f"{how}-{uuid.uuid4().hex[:8]}" for how in ("cancel", "terminate")}

    async def go():
        client = await Client.connect(temporal_address)
        async with worker(client, queue, Activities(spec)):
            procs = {
                how: subprocess.Popen([INTENTO, "run", str(project), "-i", "settle", "--engine", "temporal", "--temporal", temporal_address, "--task-queue", queue, "--key", key], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for how, key in keys.items()
            }
            try:
                for how, key in keys.items():
                    handle = client.get_workflow_handle(f"settle-{key}")  # the workflow id: intent and key

                    async def awaiting(handle=handle):
                        events = (await handle.query(IntentRun.status))["events"]
                        return any(e["type"] == "step_dispatched" and e["action"] == "file_lands" for e in events)

                    # The command is waiting on the run (it started it; the run awaits a fact).
                    await until(awaiting, f"run {key} to be started by the CLI and await its fact", timeout=60)
                    if how == "cancel":
                        await handle.cancel()
                    else:
                        await handle.terminate(reason="stopped by the operator")
                # Waited for off the event loop: the worker here must stay free to answer (the
                # command reads a cancelled run's outcome through a query).
                ended = {}
                for how, p in procs.items():
                    stdout, stderr = await asyncio.to_thread(p.communicate, timeout=60)
                    ended[how] = (p.returncode, stdout, stderr)
                return ended
            finally:
                for p in procs.values():
                    if p.poll() is None:
                        p.kill()

    out = asyncio.run(go())
    for how, (code, stdout, stderr) in out.items():
        if how == "terminate":
            _one_clean_line(subprocess.CompletedProcess([], code, stdout, stderr))  # one clean line, asserted inside
        assert code == 4, (how, code, stderr)
        assert stdout.startswith(f"run settle-{keys[how]} ")
    # A cancelled run has an outcome (it gave up: nothing to undo here) ...
    assert out["cancel"][2] == "" and "outcome: cancelled: the run was cancelled" in out["cancel"][1]
    # ... a terminated one has none.
    assert out["terminate"][2].strip() == f"intento: run settle-{keys['terminate']} was terminated (stopped by the operator); it has no outcome (`intento run` again starts it anew)"


def test_run_says_when_no_worker_polls_its_task_queue(temporal_address, tmp_path):
    # No worker on this queue: the run waits there, and `run` says so (then is interrupted here).
    import signal as _signal

    (tmp_path / "p.intent").write_text('provider p { region "eu" }\naction a { achieves x.done; via p { latency 10ms } }\nintent i { goal x.done }\n')
    queue = f"nobody-{uuid.uuid4().hex[:8]}"
    proc = subprocess.Popen([INTENTO, "run", str(tmp_path / "p.intent"), "-i", "i", "--engine", "temporal", "--temporal", temporal_address, "--task-queue", queue],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    noticed = threading.Event()

    def read() -> None:
        for line in proc.stderr:
            lines.append(line)
            if "no worker polls" in line:
                noticed.set()
        noticed.set()  # the process ended without it: the assertions below say so

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert noticed.wait(60), "no notice within 60 s"
    finally:
        proc.send_signal(_signal.SIGINT)
        proc.wait(timeout=60)
        reader.join(10)
    said = "".join(lines)
    assert f"no worker polls task queue `{queue}`" in said and f"--task-queue {queue}" in said, said
    assert proc.returncode == 130 and "Traceback" not in said
