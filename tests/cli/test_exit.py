"""How an `intento` process ends (`intento.cli._exit`): without the interpreter's teardown, but with
everything an ordinary exit does for the outside world: output flushed, `atexit` functions run,
the exit code kept, other threads waited for."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "order_fulfilment"
PLAN = ["plan", str(EXAMPLE), str(ROOT / "policies"), "--intent", "fulfil_order", "--given", str(EXAMPLE / "requests" / "eu_order.json")]

# The console script's entry point, with an `atexit` function and a logging file handler
# registered first, as a library or a plugin might; `extra` is run before the command.
PROBE = r"""
import atexit, logging, sys, threading
marker, log_file, extra = sys.argv[1], sys.argv[2], sys.argv[3]
atexit.register(lambda: open(marker, "w").write("ran"))
handler = logging.FileHandler(log_file)
logging.getLogger("probe").addHandler(handler)
logging.getLogger("probe").warning("logged before the command")
if extra == "thread":
    def late():  # still alive when the command is over: it ends once the main thread has
        threading.main_thread().join()
        open(marker + ".thread", "w").write("finished")
    threading.Thread(target=late).start()
sys.argv = ["intento", *sys.argv[4:]]
from intento.cli import entry_point
entry_point()
"""


def probe(tmp_path: Path, *args: str, extra: str = "-", slow: bool = False) -> tuple[subprocess.CompletedProcess, Path]:
    env = dict(os.environ, NO_COLOR="1", INTENTO_CACHE_DIR=str(tmp_path / "cache"))
    env.pop("INTENTO_SLOW_EXIT", None)
    env.pop("PYTHONUNBUFFERED", None)  # stdout to a pipe is then block-buffered: what is left in it must be flushed
    if slow:
        env["INTENTO_SLOW_EXIT"] = "1"
    marker = tmp_path / "atexit"
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(marker), str(tmp_path / "log"), extra, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    return proc, marker


@pytest.mark.parametrize("slow", [False, True], ids=["quick exit", "INTENTO_SLOW_EXIT"])
def test_a_plan_ends_with_its_whole_output_its_atexit_functions_and_its_logs(tmp_path, slow):
    proc, marker = probe(tmp_path, *PLAN, "--format", "json", slow=slow)
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)  # the whole document, though stdout is a pipe (block-buffered)
    assert plan["status"] == "optimal" and plan["steps"]
    assert marker.read_text() == "ran"
    assert (tmp_path / "log").read_text() == "logged before the command\n"


def test_both_exits_print_the_same(tmp_path):
    quick, _ = probe(tmp_path, *PLAN)
    slow, _ = probe(tmp_path, *PLAN, slow=True)
    assert quick.returncode == slow.returncode == 0
    assert quick.stdout == slow.stdout and "fulfil_order" in quick.stdout


@pytest.mark.parametrize(
    "args, code, says",
    [
        (["plan", "no-such-project"], 2, "--intent"),  # typer's usage error
        (["check", "no-such-project"], 1, "no-such-project"),
        (["status", "--store", "missing.db"], 1, "no store"),
    ],
)
def test_failures_keep_their_exit_code_and_their_message(tmp_path, args, code, says):
    args = [a.replace("missing.db", str(tmp_path / "missing.db")) for a in args]
    proc, marker = probe(tmp_path, *args)
    assert proc.returncode == code, proc.stdout + proc.stderr
    if says:
        assert says in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert marker.read_text() == "ran"


def test_another_live_thread_is_waited_for(tmp_path):
    proc, marker = probe(tmp_path, *PLAN, extra="thread")
    assert proc.returncode == 0, proc.stderr
    assert Path(str(marker) + ".thread").read_text() == "finished"
    assert marker.read_text() == "ran"


def test_a_closed_output_pipe_gets_no_traceback(tmp_path):
    """`intento plan | head -0`: the reader is gone before anything is written."""
    env = dict(os.environ, NO_COLOR="1", INTENTO_CACHE_DIR=str(tmp_path / "cache"))
    read, write = os.pipe()
    os.close(read)
    try:
        proc = subprocess.run([str(Path(sys.executable).with_name("intento")), *PLAN], cwd=ROOT, env=env, stdout=write, stderr=subprocess.PIPE, text=True, timeout=300)
    finally:
        os.close(write)
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    assert proc.returncode == 1  # click's answer to a closed output, as with an ordinary exit
