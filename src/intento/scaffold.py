"""`intento init`: a new project that passes `check`, `test` and `plan` at once.

Input: a folder (made if missing) and, optionally, the intent's name. Output: a few files in that
folder (providers, actions, an intent, a policy with an owner, policy tests, a request and a
README) and the commands to try next, as a `Scaffold`; or a `ScaffoldError` with one clear line.

Nothing is ever overwritten: when any file the project would create already exists, nothing is
written at all. Each file is written to a temporary file and then linked into place, which fails
rather than replaces a file that appeared meanwhile; when a write fails part-way, the files and
folders made so far are removed again.

The templates are in the canonical layout of `intento fmt`, so `intento fmt --check` passes too.
The domain is deliberately small and generic: a customer is registered and welcomed, through one
of two cloud regions, and a data-residency policy decides which region an EU customer gets.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shlex
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

__all__ = ["FALLBACK_NAME", "Scaffold", "ScaffoldError", "default_name", "init_project", "validate_name"]

#: The intent's name when the folder's name gives nothing usable (`intento init /`, `intento init ---`).
FALLBACK_NAME = "my_intent"

# A name as the language defines it (docs/language.md, "Lexical rules"): an ASCII letter or `_`,
# then letters, digits and `_`. Intents may not be dotted.
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# The other names the scaffold declares. The checker keeps a namespace per kind of declaration,
# but docs/language.md calls names global: the intent never takes one of these, for clarity.
PROVIDERS = ("us_cloud", "eu_cloud")
ACTIONS = ("register_customer", "send_welcome")
POLICY = "eu_data_stays_in_eu"
_TAKEN = frozenset(PROVIDERS + ACTIONS + (POLICY,))


class ScaffoldError(Exception):
    """The project cannot be created; the message says why (and nothing was written)."""


@dataclass(frozen=True)
class Scaffold:
    """What `init_project` made."""

    directory: Path
    intent: str
    #: The files created, in the order written, as paths under `directory` (as it was given).
    files: list[Path] = field(default_factory=list)
    #: Shell commands to try next (`intento check DIR`, ...), with the real paths, quoted.
    next_steps: list[str] = field(default_factory=list)


def _keywords() -> frozenset[str]:
    from intento.syntax import KEYWORDS

    return KEYWORDS


def validate_name(name: str) -> str:
    """`name` if it can name the intent, else a `ScaffoldError` saying what is wrong with it."""
    shown = name.encode("unicode_escape").decode("ascii")  # a control character never reaches the terminal
    if not name:
        raise ScaffoldError("--name is empty: give the intent a name like `onboard_customer`")
    if not _NAME.fullmatch(name):
        if "." in name and all(_NAME.fullmatch(p) for p in name.split(".")):
            why = "an intent's name cannot be dotted"
        elif name[0].isdigit():
            why = "a name cannot start with a digit"
        else:
            why = "a name is an ASCII letter or `_`, then letters, digits and `_`"
        raise ScaffoldError(f"`{shown}` is not a valid intent name: {why} (e.g. `onboard_customer`)")
    if name in _keywords():
        raise ScaffoldError(f"`{name}` is a keyword of the language and cannot be a name: try `{name}_intent`")
    if name in _TAKEN:
        raise ScaffoldError(f"`{name}` is already a name in the new project (its providers, actions and policy are {', '.join(sorted(_TAKEN))}): choose another")
    return name


def default_name(directory: Path) -> str:
    """A valid intent name derived from the folder's name: `My Shop-2` gives `my_shop_2`, `2024 plan`
    gives `intent_2024_plan`, `test` gives `test_intent`; `FALLBACK_NAME` when nothing is left."""
    base = Path(os.path.abspath(directory)).name
    ascii_only = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode("ascii")
    name = re.sub(r"[^A-Za-z0-9]+", "_", ascii_only).strip("_").lower()
    if not name:
        return FALLBACK_NAME
    if name[0].isdigit():
        name = f"intent_{name}"
    if name in _keywords() or name in _TAKEN:
        name = f"{name}_intent"
    return name


# --- templates (in the canonical layout of `intento fmt`) --------------------------------------

_PROVIDERS = """\
// Who can do the work. A provider fails or degrades as a whole: when one is down, the planner
// routes around it. Attributes are free-form; policies read them (`region`, `tags`).

// Cheaper, but it keeps data in the US.
provider us_cloud {
  region "us"
  tags ["email", "storage"]
  capacity 100
}

// Keeps data in the EU, at a slightly higher price.
provider eu_cloud {
  region "eu"
  tags ["email", "storage", "gdpr"]
  capacity 40
}
"""

_ACTIONS = """\
// The steps that can be taken, and through which providers (`via`). Which steps run, in which
// order and through which provider is the planner's choice: nothing here says "first X, then Y".
action register_customer {
  achieves customer.registered
  idempotent
  timeout 5s
  via us_cloud { cost 0.010 USD; latency 120ms; reliability 0.999 }
  via eu_cloud { cost 0.012 USD; latency 150ms; reliability 0.999 }
}

action send_welcome {
  requires customer.registered
  achieves customer.welcomed
  idempotent
  timeout 1m
  via us_cloud { cost 0.002 USD; latency 2s; reliability 0.995 }
  via eu_cloud { cost 0.003 USD; latency 3s; reliability 0.998 }
}
"""

_INTENTS = Template("""\
// What must be achieved, not how: the planner finds the cheapest plan (then the fastest) that
// reaches the goal within the deadline and the budget, and obeys every policy.
intent $intent {
  given customer.region: string, customer.email: string secret
  goal customer.registered and customer.welcomed
  deadline 1m
  budget 0.50 USD
  minimize cost then latency
}
""")

_POLICIES = """\
// The rules every plan obeys, each owned by whoever answers for it. Without this one, the
// cheaper us_cloud would serve every customer.
policy eu_data_stays_in_eu "EU customer data stays with EU-region providers" {
  owner "privacy@example.com"
  when customer.region == "eu"
  forbid via where region != "eu"
}
"""

_TESTS = Template("""\
// Policy tests: `intento test` plans each request and checks what the plan must be.
test "EU customers are served in the EU" {
  plan $intent given { customer.region = "eu", customer.email = "ana@example.com" }
  expect feasible
  expect via eu_cloud for register_customer
  expect via eu_cloud for send_welcome
  expect no via where region != "eu"
}

test "US customers get the cheapest route" {
  plan $intent given { customer.region = "us", customer.email = "bob@example.com" }
  expect via us_cloud for register_customer
  expect via us_cloud for send_welcome
  expect cost <= 0.05 USD
}

test "with eu_cloud down, no plan may serve an EU customer" {
  plan $intent given { customer.region = "eu", customer.email = "cho@example.com" } observe { eu_cloud down }
  expect infeasible because eu_data_stays_in_eu
}
""")

_REQUEST = """\
{"customer.region": "eu", "customer.email": "ana@example.com"}
"""

_README = Template("""\
# $intent

A project of intento, made by `intento init`: say what must be achieved
and within which rules; intento works out how.

| file | what it declares |
|---|---|
| `providers.intent` | the providers that can do the work: `us_cloud` and `eu_cloud`, with their `region` and `tags` |
| `actions.intent` | the steps: `register_customer`, then `send_welcome`, each through either provider (`via`), with cost, latency and reliability |
| `intents.intent` | the intent `$intent`: its `given` values, `goal`, `deadline`, `budget` and what to `minimize` |
| `policies.intent` | the policy `eu_data_stays_in_eu`, owned by privacy@example.com: EU customers are served only by EU-region providers |
| `tests.intent` | policy tests: what the plan must be for an EU and a US customer, and when eu_cloud is down |
| `requests/example.json` | the `given` values of one request (an EU customer) |

Try it, from this folder:

```
intento check .                  # syntax, names, types and units
intento test .                   # run the policy tests
intento fmt --check .            # the files are in the canonical layout (`intento fmt .` rewrites them)
intento plan . --intent $intent --given requests/example.json
```

The plan sends both steps through `eu_cloud`: the policy forbids the cheaper `us_cloud` for an EU
customer. Change `"eu"` to `"us"` in `requests/example.json` and plan again to see the difference;
add `--state '{"providers": {"eu_cloud": {"status": "down"}}}'` to see why no plan is left.

Next, declare your own providers, actions and rules: the language is described in intento's
`docs/language.md`, and `intento plan --help` lists the other ways to plan (JSON, a Gantt chart).
""")


def _files(intent: str) -> list[tuple[Path, str]]:
    """(path relative to the project's folder, text), in the order they are written."""
    return [
        (Path("providers.intent"), _PROVIDERS),
        (Path("actions.intent"), _ACTIONS),
        (Path("intents.intent"), _INTENTS.substitute(intent=intent)),
        (Path("policies.intent"), _POLICIES),
        (Path("tests.intent"), _TESTS.substitute(intent=intent)),
        (Path("requests") / "example.json", _REQUEST),
        (Path("README.md"), _README.substitute(intent=intent)),
    ]


def _reason(e: OSError) -> str:
    return e.strerror or (errno.errorcode.get(e.errno or 0) if e.errno else None) or str(e) or type(e).__name__


def _shown(path: Path) -> str:
    return str(path).encode("unicode_escape").decode("ascii") if not str(path).isprintable() else str(path)


def _write_new(target: Path, text: str) -> None:
    """Write `text` to `target`, which must not exist, atomically where the file system allows.

    The text goes to a temporary file in the same folder, which is then hard-linked to `target`:
    the link fails (`FileExistsError`) rather than replace a file made meanwhile, and a reader
    never sees half a file. Where hard links are not supported, the file is created exclusively
    (`O_EXCL`) and written in place."""
    data = text.encode("utf-8")
    tmp = target.parent / f".{target.name}.{secrets.token_hex(6)}.tmp"
    linked = False
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # 0o666 less the umask, as any new file
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, target)
            linked = True
        except FileExistsError:
            raise
        except OSError as e:
            if e.errno not in _NO_LINKS:
                raise
    finally:
        tmp.unlink(missing_ok=True)
    if linked:
        return
    # No hard links here (some network and FUSE file systems): create exclusively instead.
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        target.unlink(missing_ok=True)
        raise


_NO_LINKS = frozenset({errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK, errno.ENOSYS})


def _missing_dirs(directory: Path) -> list[Path]:
    """The folders `directory` needs that do not exist yet, outermost first."""
    missing: list[Path] = []
    p = directory
    while not os.path.lexists(p):
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    return missing[::-1]


def _make_dir(path: Path) -> bool:
    """Make a folder; False when it is there already (made meanwhile, say), which is fine."""
    try:
        os.mkdir(path)
        return True
    except FileExistsError:
        if path.is_dir():
            return False
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(path)) from None


def init_project(directory: Path, name: str | None = None) -> Scaffold:
    """Create a new project in `directory` (made, with its parents, if missing).

    `name` names the intent; by default it is derived from the folder's name (`default_name`).
    Raises `ScaffoldError`, having written nothing, when the name is not valid, when `directory`
    is not a folder, when any of the files exists already, or when a file cannot be written (the
    message gives the system's reason; what was written by then is removed again)."""
    directory = Path(directory)
    intent = validate_name(name) if name is not None else default_name(directory)

    if os.path.lexists(directory) and not directory.is_dir():
        raise ScaffoldError(f"`{_shown(directory)}` exists and is not a folder")

    files = _files(intent)
    taken = [directory / rel for rel, _ in files if os.path.lexists(directory / rel)]
    subdirs = sorted({rel.parent for rel, _ in files if rel.parent != Path(".")})
    not_dirs = [directory / d for d in subdirs if os.path.lexists(directory / d) and not (directory / d).is_dir()]
    if taken or not_dirs:
        parts = []
        if taken:
            parts.append(f"it would overwrite {', '.join(f'`{_shown(p)}`' for p in taken)}")
        if not_dirs:
            parts.append(f"{', '.join(f'`{_shown(p)}`' for p in not_dirs)} should be a folder")
        them = "it" if len(taken) + len(not_dirs) == 1 else "them"
        raise ScaffoldError(
            f"not creating a project in `{_shown(directory)}`: {'; '.join(parts)}. Nothing was written; "
            f"move {them} away or choose another folder"
        )

    made_dirs: list[Path] = []
    written: list[Path] = []
    current = directory
    try:
        for d in [*_missing_dirs(directory), *(directory / sub for sub in subdirs)]:
            current = d
            if _make_dir(d):
                made_dirs.append(d)
        for rel, text in files:
            current = directory / rel
            _write_new(current, text)
            written.append(current)
    except FileExistsError:
        _roll_back(written, made_dirs)
        raise ScaffoldError(
            f"`{_shown(current)}` appeared while the project was being written: nothing was left behind; move it away and try again"
        ) from None
    except OSError as e:
        _roll_back(written, made_dirs)
        raise ScaffoldError(f"cannot create `{_shown(current)}`: {_reason(e)}. Nothing was left behind") from None
    except BaseException:
        _roll_back(written, made_dirs)
        raise

    return Scaffold(directory=directory, intent=intent, files=written, next_steps=next_steps(directory, intent))


def _roll_back(written: list[Path], made_dirs: list[Path]) -> None:
    for p in reversed(written):
        try:
            p.unlink()
        except OSError:
            pass
    for d in reversed(made_dirs):
        try:
            d.rmdir()  # only if empty: never removes what someone else put there
        except OSError:
            pass


def _arg(path: Path) -> str:
    """A path as a command-line argument: one starting with `-` would be read as an option."""
    text = str(path)
    return f"./{text}" if text.startswith("-") else text


def next_steps(directory: Path, intent: str) -> list[str]:
    """The commands that exercise a new project, with its real paths, quoted for a POSIX shell."""
    d = shlex.quote(_arg(directory))
    request = shlex.quote(_arg(directory / "requests" / "example.json"))
    return [
        f"intento check {d}",
        f"intento test {d}",
        f"intento fmt --check {d}",
        f"intento plan {d} --intent {intent} --given {request}",
    ]
