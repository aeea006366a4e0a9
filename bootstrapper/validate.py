"""`validate`, `plan` and `convert`: what an admin runs on any machine before shipping a manifest."""

from __future__ import annotations

import json
import platform as _host
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from bootstrapper.errors import ManifestError, UsageError
from bootstrapper.manifest.facts import Facts
from bootstrapper.manifest.load import load_bytes, load_file
from bootstrapper.manifest.model import Loaded, Problem

if TYPE_CHECKING:
    from bootstrapper.engine.plan import Step
    from bootstrapper.fetch import FetchOptions

#: How long `validate URL` keeps trying to fetch the manifest.
FETCH_DEADLINE = 30.0


async def load_manifest(ref: str, options: FetchOptions, deadline: float) -> Loaded:
    """A manifest from a path or a URL (relative item URLs resolve against it); a URL is retried
    until `deadline` seconds from now. The one reader behind `validate`, `plan`, `run` and the daemon.
    """
    if "://" not in ref:
        return load_file(Path(ref), allow_http=options.allow_http, display=ref)
    if ref.startswith("http://") and not options.allow_http:
        raise UsageError(f"{ref}: http:// is refused; use https://, or pass --allow-http for a lab")
    from bootstrapper.fetch import fetch_manifest, redact_url

    data = await fetch_manifest(ref, options, deadline=deadline)
    return load_bytes(data, redact_url(ref), location=ref, local=False, allow_http=options.allow_http)


def read_manifest(ref: str, *, allow_http: bool = False) -> Loaded:
    """`load_manifest` for the one-shot commands (httpx is imported only for a URL)."""
    if "://" not in ref:
        return load_file(Path(ref), allow_http=allow_http, display=ref)
    import asyncio

    from bootstrapper.fetch import FetchOptions

    return asyncio.run(load_manifest(ref, FetchOptions(allow_http=allow_http), FETCH_DEADLINE))


# --- validate ----------------------------------------------------------------------------------


def validate(refs: Sequence[str], fmt: str, allow_http: bool) -> int:
    """Check every manifest, print every problem; exit 0 when all are valid, 2 otherwise."""
    results: list[dict[str, Any]] = []
    for ref in refs:
        try:
            loaded = read_manifest(ref, allow_http=allow_http)
        except ManifestError as exc:
            results.append(_result(ref, None, exc.details, exc.warnings))
        else:
            results.append(_result(ref, loaded, [], list(loaded.warnings)))
    if fmt == "json":
        typer.echo(json.dumps({"manifests": results}, indent=2, ensure_ascii=False))
    elif fmt == "github":
        for r in results:
            for level in ("error", "warning"):
                for p in r[f"{level}s"]:
                    typer.echo(_github(level, r["source"], p))
    else:
        for r in results:
            for p in r["errors"]:
                typer.echo(f"error: {_text(r['source'], p)}")
            for p in r["warnings"]:
                typer.echo(f"warning: {_text(r['source'], p)}")
            n_err, n_warn = len(r["errors"]), len(r["warnings"])
            if r["valid"]:
                typer.echo(
                    f"{r['source']}: valid ({_count(r['items'], 'item')}, {_count(n_warn, 'warning')})"
                )
            else:
                typer.echo(f"{r['source']}: invalid ({_count(n_err, 'error')}, {_count(n_warn, 'warning')})")
    return 0 if all(r["valid"] for r in results) else 2


def _result(
    ref: str, loaded: Loaded | None, errors: list[Problem], warnings: list[Problem]
) -> dict[str, Any]:
    return {
        "source": ref,
        "valid": loaded is not None,
        "format": loaded.manifest.format.value if loaded else None,
        "items": len(loaded.manifest.items) if loaded else 0,
        "errors": [asdict(p) for p in errors],
        "warnings": [asdict(p) for p in warnings],
    }


def _text(source: str, p: dict[str, Any]) -> str:
    return str(Problem(source, p["line"], p["col"], p["message"]))


def _github(level: str, source: str, p: dict[str, Any]) -> str:
    """A GitHub Actions workflow command; data and properties escaped as the runner expects."""

    def data(text: str) -> str:
        return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")

    def prop(text: str) -> str:
        return data(text).replace(":", "%3A").replace(",", "%2C")

    where = f"file={prop(source)}"
    if p["line"]:
        where += f",line={p['line']},col={p['col']}"
    return f"::{level} {where}::{data(p['message'])}"


def _count(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


# --- plan --------------------------------------------------------------------------------------


def host_facts(arch: str | None, os_version: str | None, model: str | None) -> tuple[Facts, bool]:
    """Facts for a plan made on the admin's machine; True when any of them is a stand-in."""
    machine = _host.machine().lower()
    here_arch = {"aarch64": "arm64", "arm64": "arm64", "x86_64": "x86_64", "amd64": "x86_64"}.get(
        machine, machine
    )
    mac_version = _host.mac_ver()[0]
    facts = Facts(
        arch=arch or here_arch,
        os_version=os_version or mac_version or "15.0",
        model=model or "Mac",
    )
    simulated = not (arch and os_version and model) and not mac_version
    return facts, simulated


def show_plan(ref: str, facts: Facts, simulated: bool, as_json: bool, allow_http: bool) -> int:
    from bootstrapper.engine.plan import plan

    loaded = read_manifest(ref, allow_http=allow_http)
    steps = plan(loaded.manifest, facts)
    if as_json:
        doc = {
            "manifest": ref,
            "facts": asdict(facts),
            "steps": [
                {
                    "id": s.id,
                    "name": s.item.name,
                    "type": s.item.kind.value,
                    "action": _action(s.skip),
                    "reason": s.reason,
                }
                for s in steps
            ],
            "final_action": loaded.manifest.final_action.value,
        }
        typer.echo(json.dumps(doc, indent=2, ensure_ascii=False))
        return 0
    note = " (stand-ins; set --arch, --os-version and --model to rehearse a given Mac)" if simulated else ""
    render_plan(loaded, steps, facts, note)
    return 0


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
    styles = {"run": "green", "skip": "dim", "decided on the Mac": "yellow"}
    for n, s in enumerate(steps, 1):
        action = _action(s.skip)
        table.add_row(
            str(n),
            s.id,
            escape(s.item.name),
            s.item.kind.value + (" (background)" if s.item.donotwait else ""),
            f"[{styles[action]}]{action}[/]",
            escape(s.reason),
        )
    console.print(table)
    runs = sum(1 for s in steps if s.skip is False)
    console.print(
        f"{runs} of {len(steps)} steps run; then: {loaded.manifest.final_action.value}, "
        f"on failure: {loaded.manifest.on_failure.value}"
    )


def _action(skip: bool | None) -> str:
    return "decided on the Mac" if skip is None else ("skip" if skip else "run")


# --- convert -----------------------------------------------------------------------------------


def convert(ref: str, output: Path | None, force: bool) -> int:
    from bootstrapper.manifest.convert import raw_hashes, to_native
    from bootstrapper.manifest.model import Format

    loaded = read_manifest(ref, allow_http=True)
    if loaded.manifest.format is not Format.IA:
        raise UsageError(
            f"{ref}: already in the native format; convert takes an InstallApplications bootstrap.json"
        )
    text, notes = to_native(loaded, raw_hashes(Path(ref).read_bytes()))
    try:
        load_bytes(text.encode(), str(output or "converted"), local=True, allow_http=True)
        still_invalid: list[str] = []
    except ManifestError as exc:
        still_invalid = exc.problems
    if output is None:
        typer.echo(text, nl=False)
    else:
        if output.exists() and not force:
            raise UsageError(f"{output}: already exists; pass --force to replace it")
        from bootstrapper.atomic import write_atomic

        write_atomic(output, text.encode(), mode=0o644)
        typer.echo(f"wrote {output}", err=True)
    for note in notes:
        typer.echo(f"note: {note}", err=True)
    if still_invalid:
        count = _count(len(still_invalid), "problem")
        typer.echo(f"warning: the converted manifest has {count} to fix:", err=True)
        for line in still_invalid:
            typer.echo(f"  {line}", err=True)
    return 0
