"""`skip_if` / `only_if`: read them from the manifest, and decide them from facts.

Pure code: the I/O (does a path exist, does a script succeed) comes in through a probe.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from bootstrapper.manifest import fields as F
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
from bootstrapper.manifest.report import Context, choices, describe, show, suggest
from bootstrapper.manifest.source import Node

_OS_VERSION = re.compile(r"\s*(>=|<=|==|!=|>|<)\s*(\d+(?:\.\d+)*)\s*")


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
    return _DECIDERS[type(pred)](pred, facts, probe)


def _arch(pred: Arch, facts: Facts, probe: Probe) -> Decision:
    holds = facts.arch == pred.arch
    return Decision(holds, f"arch is {facts.arch}" + ("" if holds else f", not {pred.arch}"))


def _os_version(pred: OSVersion, facts: Facts, probe: Probe) -> Decision:
    holds = _OPS[pred.op](versions.compare(facts.os_version, pred.version))
    verb = "is" if holds else "is not"
    return Decision(holds, f"macOS {facts.os_version} {verb} {pred.op} {pred.version}")


def _model(pred: Model, facts: Facts, probe: Probe) -> Decision:
    holds = fnmatch.fnmatchcase(facts.model, pred.pattern)
    return Decision(holds, f"model {facts.model} {'matches' if holds else 'does not match'} {pred.pattern}")


def _path_exists(pred: PathExists, facts: Facts, probe: Probe) -> Decision:
    exists = probe.path_exists(pred.path)
    if exists is None:
        return Decision(None, f"whether {pred.path} exists is decided on the Mac")
    return Decision(exists, f"{pred.path} {'exists' if exists else 'does not exist'}")


def _script(pred: Script, facts: Facts, probe: Probe) -> Decision:
    ok = probe.script_succeeds(pred.source)
    if ok is None:
        return Decision(None, "the condition script runs on the Mac")
    return Decision(ok, f"the condition script {'succeeded' if ok else 'failed'}")


_DECIDERS: dict[type, Callable[[Any, Facts, Probe], Decision]] = {
    Arch: _arch,
    OSVersion: _os_version,
    Model: _model,
    PathExists: _path_exists,
    Script: _script,
}


def condition_scripts(manifest: Manifest) -> list[str]:
    """Every inline condition script, in manifest order."""
    return [source for item in manifest.items for source in item_condition_scripts(item)]


def item_condition_scripts(item: Item) -> list[str]:
    """The inline condition scripts of one item: run when its step is reached, not before."""
    found: list[str] = []
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


# --- reading conditions from the manifest ------------------------------------------------------


def parse(node: Node, crumb: str, ctx: Context) -> Condition | None:
    """A word (InstallApplications' `intel`…), a mapping of tests that must all hold, or a list of
    such mappings of which one must hold; reports what does not fit and returns None for it."""
    value = node.value
    if isinstance(value, str):
        arch = F.ARCH_WORDS.get(value.strip().lower())
        if arch is None:
            ctx.strict(
                node,
                crumb,
                f"{show(value)} is not a known condition; the words are {choices(list(F.ARCH_WORDS))}"
                + ("" if ctx.native else " (ignored, as InstallApplications does)"),
            )
            return None
        return AllOf((Arch(arch),))
    if node.is_map:
        return _all_of(node, crumb, ctx)
    if node.is_seq and node.value:
        branches = [_all_of(b, f"{crumb}[{i}]", ctx) for i, b in enumerate(node.value)]
        if any(b is None for b in branches):
            return None
        return AnyOf(tuple(b for b in branches if b is not None))
    ctx.report.error(
        node,
        crumb,
        f"expected a word such as 'intel', a mapping of tests, or a list of them, got {describe(node)}",
    )
    return None


def _all_of(node: Node, crumb: str, ctx: Context) -> AllOf | None:
    if not node.is_map or not node.value:
        ctx.report.error(
            node, crumb, f"expected a mapping of tests ({', '.join(F.CONDITION_KEYS)}), got {describe(node)}"
        )
        return None
    predicates: list[Predicate] = []
    ok = True
    for key, vnode in node.value.items():
        pred = _parse_test(key, vnode, node.keys[key], f"{crumb} → {key}", ctx)
        if pred is None:
            ok = False
        else:
            predicates.append(pred)
    return AllOf(tuple(predicates)) if ok else None


def _parse_test(key: str, node: Node, key_node: Node, crumb: str, ctx: Context) -> Predicate | None:
    reader = _READERS.get(key)
    if reader is None:
        ctx.report.field_error(
            key_node,
            crumb,
            f"not a condition test; expected one of {choices(list(F.CONDITION_KEYS))}"
            + suggest(key, list(F.CONDITION_KEYS)),
        )
        return None
    value = node.value
    if not isinstance(value, str) or not value.strip():
        ctx.report.field_error(node, crumb, f"expected a text, got {describe(node)}")
        return None
    found = reader(value)
    if isinstance(found, str):
        ctx.report.field_error(node, crumb, found)
        return None
    return found


def _read_arch(value: str) -> Predicate | str:
    arch = F.ARCH_WORDS.get(value.strip().lower())
    return Arch(arch) if arch else f"{show(value)} is not an architecture; expected arm64 or x86_64"


def _read_os_version(value: str) -> Predicate | str:
    match = _OS_VERSION.fullmatch(value)
    if match is None:
        return f"expected a comparison such as '>= 14.0', got {show(value)}"
    return OSVersion(match.group(1), match.group(2))


def _read_path_exists(value: str) -> Predicate | str:
    return PathExists(value) if value.startswith("/") else f"expected an absolute path, got {show(value)}"


#: Each condition test and how its text is read: a predicate, or what is wrong with the text.
_READERS: dict[str, Callable[[str], Predicate | str]] = {
    "arch": _read_arch,
    "os_version": _read_os_version,
    "model": lambda value: Model(value.strip()),
    "path_exists": _read_path_exists,
    "script": Script,
}
