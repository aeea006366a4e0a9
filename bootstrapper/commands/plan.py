"""`bootstrapper plan`: the steps a Mac would run, in order, and what would be skipped and why."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from bootstrapper.commands._options import AllowHttp, PublicKeys
from bootstrapper.errors import UsageError

if TYPE_CHECKING:
    from bootstrapper.engine.plan import Step
    from bootstrapper.manifest.facts import Facts
    from bootstrapper.manifest.model import Loaded


def plan(
    manifest: Annotated[
        str, typer.Argument(metavar="MANIFEST", help="A manifest file or https URL.", show_default=False)
    ],
    arch: Annotated[
        str | None, typer.Option(metavar="ARCH", help="Rehearse a Mac of this architecture: arm64 or x86_64.")
    ] = None,
    os_version: Annotated[
        str | None, typer.Option("--os-version", metavar="VERSION", help="Rehearse this macOS version.")
    ] = None,
    model: Annotated[
        str | None, typer.Option(metavar="MODEL", help="Rehearse this model identifier, e.g. Mac15,3.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
    allow_http: AllowHttp = False,
    public_keys: PublicKeys = None,
) -> None:
    """Show the steps a Mac would run, in order, and what would be skipped and why."""
    if arch is not None and arch not in ("arm64", "x86_64"):
        raise UsageError(f"--arch {arch!r}: expected arm64 or x86_64")
    from dataclasses import asdict

    from bootstrapper.engine.plan import plan as make_plan
    from bootstrapper.engine.source import command_trust, read_manifest
    from bootstrapper.fetch.redact import redact_url

    facts, simulated = host_facts(arch, os_version, model)
    loaded = read_manifest(manifest, allow_http=allow_http, trust=command_trust(public_keys))
    steps = make_plan(loaded.manifest, facts)
    if as_json:
        doc = {
            "manifest": manifest,
            "facts": asdict(facts),
            "steps": [
                {
                    "id": s.id,
                    "name": s.item.name,
                    "type": s.item.type.value,
                    "stage": s.item.stage.value,
                    "action": action(s),
                    "reason": reason(s),
                    "url": None if s.item.url is None else redact_url(s.item.url),
                    "file": None if s.item.file is None else str(s.item.file),
                    "hash": s.item.hash,
                }
                for s in steps
            ],
            "final_action": loaded.manifest.final_action.value,
        }
        typer.echo(json.dumps(doc, indent=2, ensure_ascii=False))
        return
    note = " (stand-ins; set --arch, --os-version and --model to rehearse a given Mac)" if simulated else ""
    render_plan(loaded, steps, facts, note)


def host_facts(arch: str | None, os_version: str | None, model: str | None) -> tuple[Facts, bool]:
    """Facts for a plan made on the admin's machine; True when any of them is a stand-in."""
    import platform as host

    from bootstrapper.manifest.facts import DEFAULT_OS_VERSION, Facts

    machine = host.machine().lower()
    here_arch = {"aarch64": "arm64", "arm64": "arm64", "x86_64": "x86_64", "amd64": "x86_64"}.get(
        machine, machine
    )
    mac_version = host.mac_ver()[0]
    facts = Facts(
        arch=arch or here_arch,
        os_version=os_version or mac_version or DEFAULT_OS_VERSION,
        model=model or "Mac",
    )
    simulated = not (arch and os_version and model) and not mac_version
    return facts, simulated


def render_plan(loaded: Loaded, steps: list[Step], facts: Facts, note: str = "") -> None:
    """The plan as a table: for `plan` and for `run --dry-run`."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(highlight=False)
    for w in loaded.warnings:
        console.print(f"[yellow]warning:[/] {escape(str(w))}", soft_wrap=True)
    console.print(
        f"Plan for arch {facts.arch}, macOS {facts.os_version}, model {escape(facts.model)}{note}",
        soft_wrap=True,
    )
    table = Table(show_lines=False)
    table.add_column("#", justify="right")
    table.add_column("step", no_wrap=True)
    table.add_column("name")
    table.add_column("type", no_wrap=True)
    table.add_column("action", no_wrap=True)
    table.add_column("why")
    styles = {"run": "green", "skip": "dim", "decided on the Mac": "yellow", "refused": "bold red"}
    for n, s in enumerate(steps, 1):
        what = action(s)
        table.add_row(
            str(n),
            s.id,
            escape(s.item.name),
            s.item.type.value + (" (background)" if s.item.donotwait else ""),
            f"[{styles[what]}]{what}[/]",
            escape(reason(s)),
        )
    console.print(table)
    runs = sum(1 for s in steps if action(s) == "run")
    refused = sum(1 for s in steps if action(s) == "refused")
    console.print(
        f"{runs} of {len(steps)} steps run"
        + (f", {refused} refused" if refused else "")
        + f"; then: {loaded.manifest.final_action.value}, on failure: {loaded.manifest.on_failure.value}"
    )


def action(step: Step) -> str:
    """What the Mac would do with a step: run, skip, refused, or decided on the Mac."""
    if step.skip is True:
        return "skip"
    if _refusal(step) is not None:
        return "refused"
    return "decided on the Mac" if step.skip is None else "run"


def reason(step: Step) -> str:
    if step.skip is True:
        return step.reason
    return _refusal(step) or step.reason or _on_disk(step)


def _on_disk(step: Step) -> str:
    """What a step with no `url` runs: the file an earlier package left, checked before it runs."""
    from bootstrapper.manifest.kinds import SPECS

    item = step.item
    if not SPECS[item.type].downloads or item.url is not None:
        return ""
    return f"already on disk at {item.file}: its sha256 is checked before it runs; never downloaded"


def _refusal(step: Step) -> str | None:
    """Why the run would refuse the step outright; the rule the engine applies before any download."""
    from bootstrapper.manifest.kinds import SPECS

    if SPECS[step.item.type].downloads and step.item.hash is None:
        return "no sha256 hash in the manifest (missing or a placeholder): the run refuses unverified files"
    return None
