"""`intento init`: a new project that passes `check`, `test`, `fmt --check` and `plan` at once, and
that never overwrites anything: a refusal writes nothing at all."""

from __future__ import annotations

import errno
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from intento import scaffold
from intento.scaffold import ScaffoldError, init_project
from intento.syntax import KEYWORDS

EXE = str(Path(sys.executable).parent / "intento")
FILES = {
    "providers.intent",
    "actions.intent",
    "intents.intent",
    "policies.intent",
    "tests.intent",
    "requests/example.json",
    "README.md",
}


def intento_cli(*args, cwd=None):
    return subprocess.run([EXE, *map(str, args)], check=False, capture_output=True, text=True, env=dict(os.environ, NO_COLOR="1"), cwd=cwd, timeout=120)


def no_crash(r) -> None:
    text = r.stdout + r.stderr
    assert "Traceback" not in text and "internal error" not in text, text


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every file and folder under root: its bytes (None for a folder)."""
    return {
        str(p.relative_to(root)): (None if p.is_dir() else p.read_bytes())
        for p in sorted(root.rglob("*"))
    }


def next_steps(stdout: str) -> list[list[str]]:
    """The commands `intento init` printed after `next:`, split as a shell would."""
    _, sep, tail = stdout.partition("\nnext:\n")
    assert sep, stdout
    return [shlex.split(line) for line in tail.splitlines() if line.strip()]


def run_next_steps(stdout: str, cwd: Path, intent: str) -> dict[str, subprocess.CompletedProcess]:
    """Run each printed command with the real CLI; all four must be there and exit 0."""
    steps = next_steps(stdout)
    assert [s[:2] for s in steps] == [["intento", "check"], ["intento", "test"], ["intento", "fmt"], ["intento", "plan"]], steps
    assert steps[2][2] == "--check"
    assert steps[3][steps[3].index("--intent") + 1] == intent
    results = {}
    for argv in steps:
        r = intento_cli(*argv[1:], cwd=cwd)
        no_crash(r)
        assert r.returncode == 0, (argv, r.stdout, r.stderr)
        results[argv[1]] = r
    return results


@pytest.mark.parametrize("name", [None, "onboard_customer"])
def test_a_fresh_project_passes_check_test_fmt_and_plan(tmp_path: Path, name):
    r = intento_cli("init", "shop", *(["--name", name] if name else []), cwd=tmp_path)
    no_crash(r)
    assert r.returncode == 0, r.stderr
    intent = name or "shop"
    project = tmp_path / "shop"
    assert {str(p.relative_to(project)) for p in project.rglob("*") if p.is_file()} == FILES
    for f in FILES:
        assert f"created {Path('shop') / f}\n" in r.stdout
    assert f"intent {intent} {{" in (project / "intents.intent").read_text()
    assert f"# {intent}" in (project / "README.md").read_text()
    json.loads((project / "requests" / "example.json").read_text())

    results = run_next_steps(r.stdout, tmp_path, intent)
    assert results["check"].stdout.startswith("ok: 5 files, 2 providers, 2 actions, 1 intents, 1 policies, 3 tests")
    assert results["check"].stderr == ""  # not even a warning
    assert "3 passed, 0 failed" in results["test"].stdout and "FAIL" not in results["test"].stdout
    assert "5 files already formatted" in results["fmt"].stdout
    assert f"intent {intent}: optimal" in results["plan"].stdout


def test_the_plan_follows_the_policy(tmp_path: Path):
    """The example request is an EU customer: the policy forbids the cheaper us_cloud. A US customer
    gets us_cloud, so it is the policy, not the prices, that picks eu_cloud."""
    assert init_project(tmp_path / "p").intent == "p"
    project = tmp_path / "p"
    request = project / "requests" / "example.json"
    assert json.loads(request.read_text())["customer.region"] == "eu"

    text = intento_cli("plan", project, "--intent", "p", "--given", request)
    assert text.returncode == 0, text.stderr
    assert "eu_cloud" in text.stdout and "forbidden by eu_data_stays_in_eu" in text.stdout

    eu = intento_cli("plan", project, "--intent", "p", "--given", request, "--format", "json")
    assert eu.returncode == 0, eu.stderr
    steps = json.loads(eu.stdout)["steps"]
    assert [(s["action"], s["provider"]) for s in steps] == [("register_customer", "eu_cloud"), ("send_welcome", "eu_cloud")]

    us_given = json.dumps({"customer.region": "us", "customer.email": "bob@example.com"})
    us = intento_cli("plan", project, "--intent", "p", "--given", us_given, "--format", "json")
    assert us.returncode == 0, us.stderr
    assert {s["provider"] for s in json.loads(us.stdout)["steps"]} == {"us_cloud"}

    down = intento_cli("plan", project, "--intent", "p", "--given", request, "--state", '{"providers": {"eu_cloud": {"status": "down"}}}')
    assert down.returncode == 3, down.stdout + down.stderr  # infeasible: no compliant provider left


def test_the_project_reads_as_intended(tmp_path: Path):
    """Through the checker: two providers, an action with options through both, an intent with every
    item, a policy with an owner and a title, and three tests; no diagnostic at all."""
    from intento.check import check_paths

    init_project(tmp_path, "welcome")
    result = check_paths([tmp_path])
    assert result.ok and list(result.diagnostics) == []
    spec = result.spec
    assert set(spec.providers) == {"us_cloud", "eu_cloud"}
    assert set(spec.intents) == {"welcome"}
    (policy,) = spec.policies.values()
    assert policy.owner == "privacy@example.com" and policy.title
    assert len(spec.tests) == 3


def test_a_second_init_changes_nothing(tmp_path: Path):
    first = intento_cli("init", "proj", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    (tmp_path / "proj" / "intents.intent").write_text("// edited by hand\n")
    before = snapshot(tmp_path)
    second = intento_cli("init", "proj", "--name", "other", cwd=tmp_path)
    no_crash(second)
    assert second.returncode == 1
    assert second.stderr.startswith("error: not creating a project in `proj`")
    for f in FILES:
        assert f"`{Path('proj') / f}`" in second.stderr
    assert "Nothing was written" in second.stderr
    assert "created" not in second.stdout
    assert snapshot(tmp_path) == before


def test_one_existing_file_is_enough_to_refuse(tmp_path: Path):
    project = tmp_path / "proj"
    (project / "requests").mkdir(parents=True)
    (project / "tests.intent").write_text("my own tests\n")
    before = snapshot(tmp_path)
    r = intento_cli("init", project)
    no_crash(r)
    assert r.returncode == 1
    assert f"it would overwrite `{project / 'tests.intent'}`" in r.stderr
    assert "providers.intent" not in r.stderr  # only what is in the way is named
    assert snapshot(tmp_path) == before  # nothing written, not even the files that were free


def test_a_file_where_a_folder_goes_is_refused(tmp_path: Path):
    (tmp_path / "requests").write_text("not a folder\n")
    before = snapshot(tmp_path)
    with pytest.raises(ScaffoldError, match="should be a folder"):
        init_project(tmp_path)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    "bad, says",
    [
        ("plan", "is a keyword"),
        ("intent", "is a keyword"),
        ("1abc", "cannot start with a digit"),
        ("a-b", "is not a valid intent name"),
        ("a.b", "cannot be dotted"),
        ("café", "is not a valid intent name"),
        ("", "--name is empty"),
        ("send_welcome", "already a name in the new project"),
    ],
)
def test_a_bad_name_is_refused_and_nothing_is_written(tmp_path: Path, bad, says):
    r = intento_cli("init", "proj", "--name", bad, cwd=tmp_path)
    no_crash(r)
    assert r.returncode == 1
    assert r.stderr.startswith("error: ") and says in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1  # one clear line
    assert r.stdout == ""
    assert list(tmp_path.iterdir()) == []  # not even the folder


def test_every_keyword_is_refused_as_a_name(tmp_path: Path):
    for word in KEYWORDS:
        with pytest.raises(ScaffoldError, match="keyword"):
            init_project(tmp_path / "p", word)
    assert list(tmp_path.iterdir()) == []


def test_a_file_as_the_folder_is_refused(tmp_path: Path):
    target = tmp_path / "notes.txt"
    target.write_text("keep me\n")
    r = intento_cli("init", target)
    no_crash(r)
    assert r.returncode == 1
    assert r.stderr == f"error: `{target}` exists and is not a folder\n"
    assert target.read_text() == "keep me\n"
    assert snapshot(tmp_path) == {"notes.txt": b"keep me\n"}


def test_a_folder_that_cannot_be_made_gives_the_system_reason(tmp_path: Path):
    (tmp_path / "file").write_text("x")
    r = intento_cli("init", tmp_path / "file" / "proj")
    no_crash(r)
    assert r.returncode == 1
    assert r.stderr.startswith(f"error: cannot create `{tmp_path / 'file' / 'proj'}`: ")
    assert os.strerror(errno.ENOTDIR) in r.stderr
    assert snapshot(tmp_path) == {"file": b"x"}


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root may write to a read-only folder")
def test_an_unwritable_folder_gives_the_system_reason(tmp_path: Path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        r = intento_cli("init", locked)
        no_crash(r)
        assert r.returncode == 1
        assert os.strerror(errno.EACCES) in r.stderr
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o755)


def test_a_refused_write_gives_the_system_reason(tmp_path: Path, monkeypatch):
    """What a read-only folder gives a user who is not root (who may write anywhere)."""

    def denied(path, *a, **k):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

    monkeypatch.setattr(scaffold.os, "open", denied)
    with pytest.raises(ScaffoldError) as e:
        init_project(tmp_path / "new")
    assert str(e.value) == f"cannot create `{tmp_path / 'new' / 'providers.intent'}`: {os.strerror(errno.EACCES)}. Nothing was left behind"
    assert list(tmp_path.iterdir()) == []  # the folder it made is removed again


def test_a_failure_part_way_leaves_nothing_behind(tmp_path: Path, monkeypatch):
    real_link = os.link
    calls = []

    def link(src, dst, *a, **k):
        calls.append(dst)
        if len(calls) == 4:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_link(src, dst, *a, **k)

    monkeypatch.setattr(scaffold.os, "link", link)
    with pytest.raises(ScaffoldError, match=os.strerror(errno.ENOSPC)) as e:
        init_project(tmp_path / "a" / "b")
    assert "policies.intent" in str(e.value) and "Nothing was left behind" in str(e.value)
    assert len(calls) == 4
    assert list(tmp_path.iterdir()) == []  # the files, their temporary files and the folders made are gone


def test_without_hard_links_the_files_are_still_written(tmp_path: Path, monkeypatch):
    def no_link(src, dst, *a, **k):
        raise OSError(errno.EPERM, os.strerror(errno.EPERM))

    monkeypatch.setattr(scaffold.os, "link", no_link)
    made = init_project(tmp_path / "p")
    assert {str(p.relative_to(tmp_path / "p")) for p in made.files} == FILES
    assert {str(p.relative_to(tmp_path / "p")) for p in (tmp_path / "p").rglob("*") if p.is_file()} == FILES  # no temporary files left
    assert "intent p {" in (tmp_path / "p" / "intents.intent").read_text()


def test_a_file_that_appears_meanwhile_is_not_replaced(tmp_path: Path, monkeypatch):
    real_link = os.link

    def link(src, dst, *a, **k):
        if Path(dst).name == "intents.intent":
            Path(dst).write_text("someone else's\n")
        return real_link(src, dst, *a, **k)

    monkeypatch.setattr(scaffold.os, "link", link)
    with pytest.raises(ScaffoldError, match="appeared while the project was being written"):
        init_project(tmp_path)
    assert snapshot(tmp_path) == {"intents.intent": b"someone else's\n"}


@pytest.mark.parametrize(
    "folder, intent",
    [
        ("My Shop-2 (eu)", "my_shop_2_eu"),
        ("order-fulfilment", "order_fulfilment"),
        ("2024 plan", "intent_2024_plan"),
        ("Test", "test_intent"),
        ("---", scaffold.FALLBACK_NAME),
    ],
)
def test_a_folder_name_gives_a_valid_intent_name(tmp_path: Path, folder, intent):
    r = intento_cli("init", "--", folder, cwd=tmp_path)
    no_crash(r)
    assert r.returncode == 0, r.stderr
    assert f"intent {intent} {{" in (tmp_path / folder / "intents.intent").read_text()
    if folder == "My Shop-2 (eu)":  # the printed commands quote the path
        assert f"  intento check '{folder}'\n" in r.stdout
        run_next_steps(r.stdout, tmp_path, intent)


def test_init_without_a_folder_uses_the_current_one(tmp_path: Path):
    here = tmp_path / "welcome-flow"
    here.mkdir()
    r = intento_cli("init", cwd=here)
    assert r.returncode == 0, r.stderr
    assert next_steps(r.stdout)[0] == ["intento", "check", "."]
    run_next_steps(r.stdout, here, "welcome_flow")


def test_default_names():
    for folder, name in [("/", scaffold.FALLBACK_NAME), ("日本", scaffold.FALLBACK_NAME), ("Café", "cafe"), ("a.b", "a_b"), ("provider", "provider_intent")]:
        assert scaffold.default_name(Path(folder)) == name
    assert scaffold.default_name(Path("/tmp/x/..")) == "tmp"


def test_next_steps_are_the_four_commands_with_real_paths(tmp_path: Path):
    made = init_project(tmp_path / "-odd name", "welcome")
    assert made.next_steps == [
        f"intento check '{tmp_path}/-odd name'",
        f"intento test '{tmp_path}/-odd name'",
        f"intento fmt --check '{tmp_path}/-odd name'",
        f"intento plan '{tmp_path}/-odd name' --intent welcome --given '{tmp_path}/-odd name/requests/example.json'",
    ]
    assert scaffold.next_steps(Path("-x"), "i")[0] == "intento check ./-x"  # never read as an option


def test_init_help():
    r = intento_cli("init", "--help")
    assert r.returncode == 0, r.stderr
    assert "--name" in r.stdout and "Usage" in r.stdout and "init" in r.stdout
