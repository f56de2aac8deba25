"""What the console's rollout pages read and check: a policy set typed into a form, its
diagnostics, what each rollout mode would do with an impact report, and the store's rollout
history with the versions its runs are on.

Input: a form's fields (``name-N`` / ``text-N`` pairs, a label, a mode, a name), the checked
project of the service, a store. Output: plain dicts and lists the templates draw. The impact and
the rollout themselves are `execute.rollout.impact` and `execute.rollout.rollout`, called by
`_routes.py` exactly as `POST /v1/policy/impact` and `POST /v1/policy/rollout` call them.
"""

from __future__ import annotations

import datetime
import os
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from intento.execute.rollout import MODES, outcome

#: At most this many files in a policy set (as `POST /v1/policy/impact` takes).
MAX_FILES = 200
#: At most this many characters of policy text in all: the form's body (and its confirmation's,
#: which carries the texts again) must stay under the service's request limit (1 MB by default).
MAX_CHARS = 200_000
#: Longest file name, label, and name of who rolls out (as the API's `label` and `by`).
MAX_NAME = 200
#: How long each solve of an impact may take (seconds), as the API's default.
TIME_LIMIT_S = 10.0
MODE_HELP = {
    "new-runs": "only runs started from now on use the new set; unfinished runs stay on their version",
    "migrate": "every unfinished run switches at its next decision point; a run whose remaining work has no plan under the new set escalates, with the conflict",
    "migrate-if-feasible": "as migrate, except that a run whose remaining work would have no plan stays on its version (it records policy_kept)",
}
_SLOT = re.compile(r"^(name|text)-(\d{1,6})$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _norm(text: str) -> str:
    """Form text as a file holds it: browsers send a textarea's line ends as CRLF."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def read_form(form: dict[str, str]) -> dict[str, Any]:
    """The policy-set form: ``slots`` (each ``{"name", "text"}``, in the order of their numbers;
    blank ones dropped), ``label``, ``by``, ``mode``, and ``too_many`` when a slot is numbered
    past `MAX_FILES`."""
    found: dict[int, dict[str, str]] = {}
    too_many = False
    for key, value in form.items():
        m = _SLOT.match(key)
        if not m:
            continue
        i = int(m.group(2))
        if i >= MAX_FILES:
            too_many = True
            continue
        found.setdefault(i, {"name": "", "text": ""})[m.group(1)] = value
    slots = []
    for i in sorted(found):
        name, text = found[i]["name"].strip(), _norm(found[i]["text"])
        if name or text.strip():
            slots.append({"name": name, "text": text})
    return {"slots": slots, "label": (form.get("label") or "").strip(), "by": (form.get("by") or "").strip(),
            "mode": (form.get("mode") or "").strip(), "too_many": too_many}


def problems_of(f: dict[str, Any], need_mode: bool = False) -> tuple[list[str], int]:
    """What is wrong with a read form, in words, and the HTTP status to answer with (200: none)."""
    problems: list[str] = []
    status = 422
    slots = f["slots"]
    if f["too_many"] or len(slots) > MAX_FILES:
        problems.append(f"a policy set has at most {MAX_FILES} files here; give a larger one to `intento policy impact` (the command line)")
    if not any(s["text"].strip() for s in slots):
        problems.append("the policy set is empty: paste the text of at least one `.intent` file of policies, and give it a file name")
    seen: set[str] = set()
    for n, s in enumerate(slots, 1):
        if not s["name"]:
            problems.append(f"file {n} has no name: give it one (diagnostics name the file, e.g. `payments.intent`)")
        elif len(s["name"]) > MAX_NAME or _CONTROL.search(s["name"]):
            problems.append(f"file {n}'s name must be one line of at most {MAX_NAME} characters")
        elif s["name"] in seen:
            problems.append(f"two files are named `{s['name']}`: give each file its own name")
        else:
            seen.add(s["name"])
        if s["name"] and not s["text"].strip():
            problems.append(f"file `{s['name'][:MAX_NAME]}` is empty: paste its text, or clear its name to leave it out")
    total = sum(len(s["text"]) for s in slots)
    if total > MAX_CHARS:
        problems.append(f"the policy set is {total:,} characters; the console takes at most {MAX_CHARS:,} "
                        "(use `intento policy impact` and `intento policy rollout` for a larger one)")
        status = 413
    if len(f["label"]) > MAX_NAME or _CONTROL.search(f["label"]):
        problems.append(f"the label must be one line of at most {MAX_NAME} characters")
    if len(f["by"]) > MAX_NAME or _CONTROL.search(f["by"]):
        problems.append(f"your name must be one line of at most {MAX_NAME} characters")
    if need_mode and f["mode"] not in MODES:
        problems.append(f"unknown mode `{f['mode'][:50]}`: choose one of {', '.join(MODES)}" if f["mode"] else f"choose a mode: one of {', '.join(MODES)}")
    return problems, (status if problems else 200)


def check_set(spec, slots: list[dict]) -> tuple[list[dict] | None, Any, list[dict]]:
    """(the policy set, this project with it, []) when the set checks: it holds only policies and
    tests (`versions.policy_set_of`) and checks with the service's project (`with_policy_set`,
    the project new runs would start on); else (None, None, its diagnostics, located)."""
    from intento.diagnostics import IntentoError, Source
    from intento.versions import policy_set_of, with_policy_set

    try:
        policies = policy_set_of([Source(s["name"], s["text"]) for s in slots])
        return policies, with_policy_set(spec, policies), []
    except IntentoError as e:
        return None, None, [diagnostic(d) for d in e.diagnostics]
    except RecursionError:
        return None, None, [{"where": "", "code": "", "severity": "error", "message": "the policy set is nested too deeply to read",
                             "help": "", "text": "error: the policy set is nested too deeply to read"}]


def diagnostic(d) -> dict:
    """A diagnostic for the page: where (file:line:col), code, message, help, and the
    compiler-style text with the source line underlined."""
    return {"where": d.span.location if d.span else "", "code": d.code, "severity": d.severity.value, "message": d.message,
            "help": d.help or "", "text": d.render()}


def project_slots(spec) -> list[dict]:
    """This project's policies as a policy set to start from: each file that declares only
    policies and tests whole (so its lines keep their numbers), and for a file that declares
    more, the text of each of its policies."""
    mixed = {x.span.source.name for group in (spec.providers, spec.actions, spec.intents) for x in group.values() if x.span}
    by_file: dict[str, list] = {}
    for p in spec.policies.values():
        by_file.setdefault(p.span.source.name, []).append(p)
    # Named as the project names them, less the folder they all share.
    dirs = [os.path.dirname(s.name) for s in spec.sources]
    try:
        common = os.path.commonpath(dirs) if dirs and all(dirs) else ""
    except ValueError:  # absolute and relative paths mixed
        common = ""

    def short(name: str) -> str:
        rel = os.path.relpath(name, common) if common else name
        return rel if len(rel) <= MAX_NAME else os.path.basename(name)[-MAX_NAME:]

    out = []
    for s in spec.sources:
        if s.name not in by_file:
            continue
        if s.name not in mixed:
            out.append({"name": short(s.name), "text": s.text})
        else:
            texts = [s.text[p.span.start : p.span.end] for p in sorted(by_file[s.name], key=lambda p: p.span.start)]
            out.append({"name": short(s.name).removesuffix(".intent") + "-policies.intent", "text": "\n\n".join(texts) + "\n"})
    return out


def mode_outcomes(report: dict) -> dict[str, dict[str, int]]:
    """What each mode would make of an impact report, as `execute.rollout.rollout` decides it:
    per mode, how many runs would migrate, stay and escalate."""
    out = {}
    for mode in MODES:
        counts = {"migrates": 0, "stays": 0, "escalates": 0}
        for r in report["runs"]:
            counts[outcome(mode, r["impact"])] += 1
        out[mode] = counts
    return out


def when(ms: int | None) -> str:
    """A wall-clock time (ms since the epoch) in UTC."""
    if ms is None:
        return "-"
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def signed(value: Any) -> str:
    """A decimal delta with its sign: ``+1``, ``-0.5``, ``0``."""
    try:
        d = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return str(value)
    text = format(d.normalize(), "f") if d != 0 else "0"
    return text if d <= 0 else "+" + text


def versions_in_use(store) -> dict[str | None, dict[str, int]]:
    """How many runs are on each version now (their `run_started` version, or the `to` of their
    latest `policy_migrated`, as `state.fold` reads them), and how many of those are unfinished;
    runs whose version is not recorded count under None."""
    from intento.execute.store import TERMINAL

    marks = ",".join("?" * len(TERMINAL))
    rows = store.db.execute(f"""
        SELECT x.v, COUNT(*), SUM(CASE WHEN r.status IN ({marks}) THEN 0 ELSE 1 END) FROM (
          SELECT e.run AS run, CASE WHEN json_valid(e.data) THEN
            CASE e.type WHEN 'policy_migrated' THEN json_extract(e.data, '$.to')
                        ELSE COALESCE(json_extract(e.data, '$.version'), json_extract(e.data, '$.project')) END END AS v
          FROM events e JOIN (SELECT run, MAX(seq) AS s FROM events WHERE type IN ('run_started', 'policy_migrated') GROUP BY run) m
            ON m.run = e.run AND m.s = e.seq) x
        JOIN runs r ON r.id = x.run GROUP BY x.v""", TERMINAL).fetchall()
    return {(v if isinstance(v, str) and v else None): {"runs": n, "unfinished": u or 0} for v, n, u in rows}


def history(store, spec) -> dict:
    """The rollouts (oldest first; each with its outcome counts and the versions its runs were to
    move to) and every kept version with the runs on it; ``new_runs``: the version new runs
    started through this service start on (this project with the last rollout's set)."""
    from intento.diagnostics import IntentoError
    from intento.versions import version_of, with_policy_set

    rollouts = []
    for r in store.rollouts():
        runs = (r["report"] or {}).get("runs") or []
        outcomes = {k: sum(1 for x in runs if x.get("outcome") == k) for k in ("migrates", "stays", "escalates")}
        rollouts.append(r | {"when": when(r["at"]), "outcomes": outcomes, "runs": len(runs),
                             "new_versions": sorted({x["new_version"] for x in runs if x.get("new_version")})})
    use = versions_in_use(store)
    versions = []
    for v in store.versions():
        u = use.get(v["version"], {"runs": 0, "unfinished": 0})
        versions.append(v | u)
    kept = {v["version"] for v in versions}
    unkept = [{"version": v, **u} for v, u in use.items() if v not in kept]
    new_runs = None
    if rollouts:
        last = store.rollout(rollouts[-1]["seq"])
        try:
            new_runs = version_of(with_policy_set(spec, last["policies"]), last["label"]) | {"rollout": last["seq"]}
        except IntentoError:
            new_runs = None
    else:
        new_runs = version_of(spec, os.environ.get("INTENTO_VERSION_LABEL") or None) | {"rollout": None}  # as `Executor` labels it
    return {"rollouts": rollouts, "versions": versions, "unkept": unkept, "new_runs": new_runs}


def rollout_effects(store, seq: int) -> dict[str, dict]:
    """What each run did about rollout ``seq`` so far: its `policy_migrated` or `policy_kept`
    event's data (with ``type``), by run."""
    rows = store.db.execute("""SELECT run, type, data FROM events WHERE type IN ('policy_migrated', 'policy_kept')
                               AND json_valid(data) AND json_extract(data, '$.rollout') = ? ORDER BY run, seq""", (seq,)).fetchall()
    import json

    out: dict[str, dict] = {}
    for run, typ, data in rows:
        out[run] = json.loads(data) | {"type": typ}
    return out
