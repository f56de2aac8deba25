"""Policy-set versions: what judged a run's decisions, and a project with another policy set.

Input: a checked `Spec` (its sources), and for a rollout a policy set (`.intent` files of
policies). Output: a version's identity (`version_of`: the project's fingerprint, the policy
set's hash and a label), the texts kept in the store for it (`kept_sources`), the Spec those
texts check to again (`spec_from_kept`), and the Spec of a project whose policies are replaced by
another set (`with_policy_set`). The executor pins each run to a version (docs/executor.md,
"Policy versions"); `intento policy impact` and `intento policy rollout` use these to judge the
remaining work of runs in flight under a new set.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from typing import TYPE_CHECKING

from intento.diagnostics import Diagnostic, IntentoError, Severity, Source

if TYPE_CHECKING:
    from intento.spec import Spec


def policy_text(spec: Spec, name: str) -> str:
    """A policy's declaration as written."""
    p = spec.policies[name]
    return p.span.source.text[p.span.start : p.span.end]


def policy_set_hash(spec: Spec, names: Iterable[str] | None = None) -> str:
    """SHA-256 over the name and text of every policy (or of ``names``: those that applied to a
    decision), in name order: the same policies give the same hash however their files are laid
    out."""
    return texts_hash({"name": n, "text": policy_text(spec, n)} for n in (spec.policies if names is None else names))


def texts_hash(texts: Iterable[dict]) -> str:
    """SHA-256 over ``[{"name", "text"}]`` in name order: a policy set's files, a kept version's."""
    h = hashlib.sha256()
    for t in sorted(texts, key=lambda t: t["name"]):
        h.update(t["name"].encode() + b"\0" + t["text"].encode() + b"\0")
    return h.hexdigest()


def version_of(spec: Spec, label: str | None = None) -> dict:
    """``{"version": project fingerprint, "policy_set": hash, "label": label}``: the version a run
    records when it starts, and each of its decisions."""
    return {"version": spec.fingerprint, "policy_set": policy_set_hash(spec), "label": label}


def short(version: str | None, label: str | None = None) -> str:
    """How a version is named to people: its label and the first 12 digits of its hash."""
    if not version:
        return "unrecorded"
    return f"{label} ({version[:12]})" if label else version[:12]


def kept_sources(spec: Spec) -> list[dict]:
    """The texts of a version, as the store keeps them: ``[{"name", "text"}]``."""
    return [{"name": s.name, "text": s.text} for s in spec.sources]


#: Specs checked again from kept texts, by a hash of those texts (an engine adopts many runs of
#: the same few versions; each is checked once per process). Specs are immutable.
_KEPT: dict[str, Spec] = {}
_KEPT_MAX = 64


def spec_from_kept(sources: list[dict]) -> Spec:
    """Check a kept version's texts again (raises `IntentoError` if they no longer check: the
    language changed under them)."""
    from intento.check import check_sources

    key = texts_hash(sources)
    spec = _KEPT.get(key)
    if spec is not None:
        return spec
    result = check_sources([Source(s["name"], s["text"]) for s in sources])
    if result.spec is None:
        raise IntentoError(result.errors or result.diagnostics)
    if len(_KEPT) >= _KEPT_MAX:
        _KEPT.pop(next(iter(_KEPT)))
    _KEPT[key] = result.spec
    return result.spec


def load_policy_set(path: str | Path) -> list[dict]:
    """The `.intent` files of a policy set (a file or a folder), as ``[{"name", "text"}]``.
    Raises `IntentoError` (located) when a file cannot be read, or holds anything but policies
    and tests (`policy_set_of`)."""
    from intento.check._load import load_sources

    sources, diags = load_sources([path])
    if diags:
        raise IntentoError(diags)
    if not sources:
        raise IntentoError([Diagnostic("E130", Severity.error, f"`{path}` holds no `.intent` file", None, help="give a policy file, or a folder of them")])
    return policy_set_of(sources)


def policy_set_of(sources: list[Source]) -> list[dict]:
    """Sources as a policy set; raises `IntentoError` (located: E130, or the parse errors) when one
    holds anything but policies and tests: a policy set replaces a project's policies, not its
    providers, actions or intents."""
    from intento.syntax import parse
    from intento.syntax.ast import decl_kind

    if not sources:
        raise IntentoError([Diagnostic("E130", Severity.error, "the policy set holds no file", None, help="give at least one `.intent` file of policies")])
    errors = []
    for s in sources:
        tree, pdiags = parse(s)
        if tree is None:
            errors.extend(pdiags)
            continue
        for d in tree.decls:
            kind = decl_kind(d)
            if kind not in ("policy", "test"):
                errors.append(Diagnostic("E130", Severity.error, f"a policy set holds only policies (and their tests); `{s.name}` declares a{'n' if kind[0] in 'aei' else ''} {kind}",
                                         d.span, help="give only the policy files; the rest of the project comes from each run's own version"))
                break
    if errors:
        raise IntentoError(errors)
    return [{"name": s.name, "text": s.text} for s in sources]


@dataclass(frozen=True)
class _Cut:
    start: int
    end: int


def policy_changes(old: Spec, new: Spec) -> dict[str, list[str]]:
    """The policies a move from ``old`` to ``new`` adds, removes and changes (by their text)."""
    return {
        "added": sorted(set(new.policies) - set(old.policies)),
        "removed": sorted(set(old.policies) - set(new.policies)),
        "changed": sorted(n for n in set(new.policies) & set(old.policies) if policy_text(new, n) != policy_text(old, n)),
    }


def changes_phrase(changes: dict) -> str:
    """``added a, b; changed c``: what `policy_changes` found, as a migration's reason says it."""
    return "; ".join(f"{k} {', '.join(changes[k])}" for k in ("added", "removed", "changed") if changes.get(k))


def with_policy_set(base: Spec, policies: list[dict]) -> Spec:
    """``base`` with its policies (and tests, which a running project does not use) replaced by
    ``policies``: files that declared only those are left out, mixed files keep everything else
    (the cut declarations are blanked, so lines keep their numbers). Raises `IntentoError` when
    the result does not check (a new policy names an action the project lacks)."""
    from intento.check import check_sources

    cuts: dict[str, list[_Cut]] = {}
    for p in base.policies.values():
        cuts.setdefault(p.span.source.name, []).append(_Cut(p.span.start, p.span.end))
    for t in base.tests:
        cuts.setdefault(t.span.source.name, []).append(_Cut(t.span.start, t.span.end))
    keeps = _declaring_more(base)
    out: list[Source] = []
    for s in base.sources:
        if s.name not in cuts:
            out.append(s)
            continue
        if s.name not in keeps:
            continue  # only policies and tests: replaced whole
        text = s.text
        for c in sorted(cuts[s.name], key=lambda c: -c.start):
            text = text[: c.start] + "".join(ch if ch == "\n" else " " for ch in text[c.start : c.end]) + text[c.end :]
        out.append(Source(s.name, text))
    names = {s.name for s in out}
    for p in policies:
        name = p["name"] if p["name"] not in names else p["name"] + " (policy set)"
        out.append(Source(name, p["text"]))
    result = check_sources(out)
    if result.spec is None:
        raise IntentoError(result.errors or result.diagnostics)
    return result.spec


def _declaring_more(spec: Spec) -> set[str]:
    """The source files that declare anything besides policies and tests."""
    out = {p.span.source.name for p in spec.providers.values()}
    out |= {a.span.source.name for a in spec.actions.values()}
    out |= {i.span.source.name for i in spec.intents.values()}
    return out
