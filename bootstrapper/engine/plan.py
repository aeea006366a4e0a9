"""Turn a manifest into the ordered steps for one Mac: pure, so `plan`, `run --dry-run` and the
scheduler all agree on what will happen and why.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bootstrapper.manifest import version as versions
from bootstrapper.manifest.conditions import NoProbe, Probe, decide
from bootstrapper.manifest.facts import Facts
from bootstrapper.manifest.kinds import SPECS
from bootstrapper.manifest.model import Item, Manifest


@dataclass(frozen=True)
class Step:
    item: Item
    #: True: skipped; False: runs; None: decided on the Mac (a path or script condition).
    skip: bool | None
    reason: str = ""

    @property
    def id(self) -> str:
        return self.item.id


def plan(
    manifest: Manifest,
    facts: Facts,
    probe: Probe | None = None,
    receipts: Mapping[str, str] | None = None,
    done: frozenset[str] = frozenset(),
) -> list[Step]:
    """Every item in manifest order with its decision.

    `receipts` maps installed package ids to their versions; `done` holds the ids of the steps
    that finished in an earlier run (after a crash or reboot) and are not repeated.
    """
    probe = probe or NoProbe()
    receipts = receipts or {}
    return [
        Step(item, True, "done in an earlier run")
        if item.id in done
        else decide_step(item, facts, probe, receipts)
        for item in manifest.items
    ]


def decide_step(item: Item, facts: Facts, probe: Probe, receipts: Mapping[str, str]) -> Step:
    """One item's decision: its conditions, then its receipt. The scheduler asks again when the step
    is reached, so an earlier step's work (a path it made, a package it installed) counts."""
    decision = decide(item, facts, probe)
    if decision.skip is not False:
        return Step(item, decision.skip, decision.reason)
    installed = _installed(item, receipts)
    if installed is not None:
        return Step(item, True, installed)
    return Step(item, False, "")


def _installed(item: Item, receipts: Mapping[str, str]) -> str | None:
    """Why an item with a receipt (a package) need not be installed, or None."""
    if not SPECS[item.type].has_receipt or item.required or item.packageid is None or item.version is None:
        return None
    have = receipts.get(item.packageid)
    if have is None or versions.compare(have, item.version) < 0:
        return None
    return f"installed: {item.packageid} {have} ≥ {item.version}"
