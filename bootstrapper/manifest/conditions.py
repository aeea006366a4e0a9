"""Decide `skip_if` / `only_if` from facts: pure code, the I/O comes in through a probe."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Protocol

from bootstrapper.manifest import version as versions
from bootstrapper.manifest.facts import Facts
from bootstrapper.manifest.model import (
    AllOf,
    AnyOf,
    Arch,
    Condition,
    Item,
    Manifest,
    Model,
    OSVersion,
    PathExists,
    Predicate,
    Script,
)


class Probe(Protocol):
    """Answers what facts cannot: None means "unknown here" (a dry run on another machine)."""

    def path_exists(self, path: str) -> bool | None: ...

    def script_succeeds(self, source: str) -> bool | None: ...


class NoProbe:
    """For plans made away from the Mac: paths and scripts are decided at run time."""

    def path_exists(self, path: str) -> bool | None:
        return None

    def script_succeeds(self, source: str) -> bool | None:
        return None


@dataclass(frozen=True)
class Decision:
    #: True/False, or None when it can only be decided on the Mac itself.
    holds: bool | None
    reason: str


@dataclass(frozen=True)
class ItemDecision:
    skip: bool | None
    reason: str


_OPS = {
    ">=": lambda c: c >= 0,
    ">": lambda c: c > 0,
    "<=": lambda c: c <= 0,
    "<": lambda c: c < 0,
    "==": lambda c: c == 0,
    "!=": lambda c: c != 0,
}


def evaluate(condition: Condition, facts: Facts, probe: Probe) -> Decision:
    if isinstance(condition, AllOf):
        return _all(condition, facts, probe)
    decisions = [_all(branch, facts, probe) for branch in condition.branches]
    for d in decisions:
        if d.holds:
            return d
    if any(d.holds is None for d in decisions):
        return Decision(None, " or ".join(d.reason for d in decisions))
    return Decision(False, " and ".join(d.reason for d in decisions))


def _all(condition: AllOf, facts: Facts, probe: Probe) -> Decision:
    decisions = [_predicate(p, facts, probe) for p in condition.predicates]
    for d in decisions:
        if d.holds is False:
            return d
    reason = ", ".join(d.reason for d in decisions)
    if any(d.holds is None for d in decisions):
        return Decision(None, reason)
    return Decision(True, reason)


def _predicate(pred: Predicate, facts: Facts, probe: Probe) -> Decision:
    if isinstance(pred, Arch):
        holds = facts.arch == pred.arch
        return Decision(holds, f"arch is {facts.arch}" + ("" if holds else f", not {pred.arch}"))
    if isinstance(pred, OSVersion):
        holds = _OPS[pred.op](versions.compare(facts.os_version, pred.version))
        verb = "is" if holds else "is not"
        return Decision(holds, f"macOS {facts.os_version} {verb} {pred.op} {pred.version}")
    if isinstance(pred, Model):
        holds = fnmatch.fnmatchcase(facts.model, pred.pattern)
        return Decision(
            holds, f"model {facts.model} {'matches' if holds else 'does not match'} {pred.pattern}"
        )
    if isinstance(pred, PathExists):
        exists = probe.path_exists(pred.path)
        if exists is None:
            return Decision(None, f"whether {pred.path} exists is decided on the Mac")
        return Decision(exists, f"{pred.path} {'exists' if exists else 'does not exist'}")
    assert isinstance(pred, Script)
    ok = probe.script_succeeds(pred.source)
    if ok is None:
        return Decision(None, "the condition script runs on the Mac")
    return Decision(ok, f"the condition script {'succeeded' if ok else 'failed'}")


def condition_scripts(manifest: Manifest) -> list[str]:
    """Every inline condition script, in manifest order: the daemon runs them once, up front."""
    found: list[str] = []
    for item in manifest.items:
        for condition in (item.skip_if, item.only_if):
            branches: tuple[AllOf, ...] = ()
            if isinstance(condition, AnyOf):
                branches = condition.branches
            elif isinstance(condition, AllOf):
                branches = (condition,)
            for branch in branches:
                found += [p.source for p in branch.predicates if isinstance(p, Script)]
    return found


def decide(item: Item, facts: Facts, probe: Probe) -> ItemDecision:
    """Whether to skip `item`: skip_if holding, or only_if not holding, skips it."""
    if item.skip_if is not None:
        d = evaluate(item.skip_if, facts, probe)
        if d.holds is None:
            return ItemDecision(None, f"skip_if: {d.reason}")
        if d.holds:
            return ItemDecision(True, f"skip_if: {d.reason}")
    if item.only_if is not None:
        d = evaluate(item.only_if, facts, probe)
        if d.holds is None:
            return ItemDecision(None, f"only_if: {d.reason}")
        if not d.holds:
            return ItemDecision(True, f"only_if: {d.reason}")
    return ItemDecision(False, "")
