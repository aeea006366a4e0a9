"""`bootstrapper validate`: check manifests before shipping them; `--deep` downloads every item too."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bootstrapper.commands._options import AllowHttp, PublicKeys, count
from bootstrapper.errors import ManifestError, SignatureError, UsageError

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from bootstrapper.engine.deep import ItemCheck
    from bootstrapper.engine.source import Trust
    from bootstrapper.fetch import FetchOptions
    from bootstrapper.manifest.model import Loaded, Manifest, Problem
    from bootstrapper.manifest.signature import Verified


def validate(
    manifests: Annotated[
        list[str],
        typer.Argument(
            metavar="MANIFEST...",
            help="Manifest files or https URLs; - reads standard input.",
            show_default=False,
        ),
    ],
    output_format: Annotated[
        str,
        typer.Option(
            "--format", "-f", metavar="FORMAT", help="text, json, or github (annotations for GitHub Actions)."
        ),
    ] = "text",
    allow_http: AllowHttp = False,
    deep: Annotated[
        bool,
        typer.Option(
            "--deep",
            help="Also download every item; check size, sha256, package id, version. Exit 2 on a mismatch.",
        ),
    ] = False,
    public_keys: PublicKeys = None,
) -> None:
    """Check manifests and report every problem with its line:column. Exit 0 valid, 2 invalid.

    With a public key (--public-key or manifest_public_keys), each manifest's .minisig is checked first.
    With --deep, exit 1 when an item could not be downloaded (the network, not the manifest).
    """
    if output_format not in ("text", "json", "github"):
        raise UsageError(f"--format {output_format!r}: expected text, json or github")
    from bootstrapper.engine.source import command_trust

    trust = command_trust(public_keys)
    raise typer.Exit(check(manifests, output_format, allow_http, deep=deep, trust=trust))


def check(
    refs: Sequence[str], fmt: str, allow_http: bool, *, deep: bool = False, trust: Trust | None = None
) -> int:
    """Check every manifest (and with `deep` every item), print one verdict each; the worst exit code."""
    from bootstrapper.engine.source import Source, read_checked
    from bootstrapper.manifest.load import STDIN, load_stdin
    from bootstrapper.manifest.model import Problem

    results: list[dict[str, Any]] = []
    for ref in refs:
        try:
            if ref == "-":
                if trust is not None and trust.required:
                    raise UsageError("-: standard input has no .minisig beside it; give the manifest file")
                source = Source(load_stdin(allow_http=allow_http), b"", None)
            else:
                source = read_checked(ref, allow_http=allow_http, trust=trust)
        except SignatureError as exc:
            # One line, not positioned: the signature covers the whole file.
            message = str(exc).removeprefix(f"{ref}: ")
            results.append(_result(ref, None, [Problem(ref, 0, 0, message)], []))
            continue
        except ManifestError as exc:
            results.append(_result(STDIN if ref == "-" else ref, None, exc.details, exc.warnings))
            continue
        loaded = source.loaded
        result = _result(STDIN if ref == "-" else ref, loaded, [], list(loaded.warnings))
        result["signature"] = _signature_doc(source.verified)
        if deep:
            from bootstrapper.engine.network import command_options

            options = command_options(allow_http, None if ref == "-" else ref)
            checks = deep_checks(loaded.manifest, options, fmt)
            result["deep"] = [_check_doc(c) for c in checks]
            result["_checks"] = checks
        results.append(result)
    if fmt == "json":
        doc = {"manifests": [{k: v for k, v in r.items() if not k.startswith("_")} for r in results]}
        typer.echo(json.dumps(doc, indent=2, ensure_ascii=False))
    elif fmt == "github":
        for r in results:
            for level in ("error", "warning"):
                for p in r[f"{level}s"]:
                    typer.echo(_github(level, r["source"], p))
            for c in r.get("_checks", []):
                for problem in (*c.mismatches, *c.errors):
                    where = {"line": c.item.line, "col": 1}
                    typer.echo(
                        _github("error", r["source"], {**where, "message": f"{c.item.label}: {problem}"})
                    )
    else:
        for r in results:
            for p in r["errors"]:
                typer.echo(f"error: {_text(r['source'], p)}")
            for p in r["warnings"]:
                typer.echo(f"warning: {_text(r['source'], p)}")
            if "_checks" in r:
                _print_deep(r["_loaded"].manifest, r["_checks"])
            if r["valid"]:
                typer.echo(_signature_note(r["source"], r["signature"]))
            typer.echo(_verdict(r))
    return max(_code(r) for r in results)


def _signature_doc(verified: Verified | None) -> dict[str, Any] | None:
    if verified is None:
        return None
    from bootstrapper.manifest.signature import format_expires

    expires = None if verified.expires is None else format_expires(verified.expires)
    return {"key_id": verified.key_id, "serial": verified.serial, "expires": expires}


def _signature_note(source: str, signature: dict[str, Any] | None) -> str:
    """Whether the signature was checked: an unsigned manifest passes, but the admin should know."""
    if signature is None:
        return (
            f"note: {source}: unsigned (no --public-key or manifest_public_keys, so no signature was "
            "checked); see docs/signing.md"
        )
    serial = "no serial" if signature["serial"] is None else f"serial {signature['serial']}"
    expires = f"expires {signature['expires']}" if signature["expires"] else "no expiry"
    return f"note: {source}: signed by key {signature['key_id']} ({serial}, {expires})"


def _code(r: dict[str, Any]) -> int:
    if not r["valid"] or any(c["mismatches"] for c in r.get("deep", [])):
        return 2
    return 1 if any(c["errors"] for c in r.get("deep", [])) else 0


def _verdict(r: dict[str, Any]) -> str:
    """The one line that ends each manifest's report."""
    n_err, n_warn = len(r["errors"]), len(r["warnings"])
    if not r["valid"]:
        return f"{r['source']}: invalid ({count(n_err, 'error')}, {count(n_warn, 'warning')})"
    head = f"{r['source']}: {{}} ({count(r['items'], 'item')}, {count(n_warn, 'warning')}"
    if "deep" not in r:
        return head.format("valid") + ")"
    checked = r["deep"]
    wrong = sum(1 for c in checked if c["mismatches"])
    unreachable = sum(1 for c in checked if c["errors"] and not c["mismatches"])
    if wrong:
        return head.format("invalid") + f"; {count(wrong, 'item')} not as the manifest says)"
    if unreachable:
        return head.format("not fully checked") + f"; {count(unreachable, 'item')} could not be downloaded)"
    return head.format("valid") + f"; {count(len(checked), 'download')} checked)"


def _check_doc(c: ItemCheck) -> dict[str, Any]:
    return {
        "id": c.item.id,
        "name": c.item.name,
        "size": c.size,
        "sha256": c.sha256,
        "ok": c.ok,
        "mismatches": c.mismatches,
        "errors": c.errors,
        "notes": c.notes,
    }


def _result(
    ref: str, loaded: Loaded | None, errors: list[Problem], warnings: list[Problem]
) -> dict[str, Any]:
    from dataclasses import asdict

    return {
        "source": ref,
        "valid": loaded is not None,
        "format": loaded.manifest.format.value if loaded else None,
        "items": len(loaded.manifest.items) if loaded else 0,
        "errors": [asdict(p) for p in errors],
        "warnings": [asdict(p) for p in warnings],
        "signature": None,
        "_loaded": loaded,
    }


def _text(source: str, p: dict[str, Any]) -> str:
    from bootstrapper.manifest.model import Problem

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


# --- --deep: a table per manifest ---------------------------------------------------------------


def deep_checks(manifest: Manifest, options: FetchOptions, fmt: str = "text") -> list[ItemCheck]:
    """Download every item of `manifest` into a temporary folder (with bars in a terminal) and check it."""
    import asyncio
    import tempfile

    from rich.console import Console

    with tempfile.TemporaryDirectory(prefix="bootstrapper-deep-") as tmp:
        if fmt == "text":
            return asyncio.run(_with_bars(manifest, options, Path(tmp), Console(stderr=True)))
        from bootstrapper.engine.deep import check_items

        return asyncio.run(check_items(manifest, options, Path(tmp)))


def deep_validate(
    manifests: Sequence[Manifest], options: FetchOptions, console: Console | None = None
) -> int:
    """Check every item of every manifest; a table each. 0 all good, 2 any mismatch, 1 network."""
    worst = 0
    for manifest in manifests:
        checks = deep_checks(manifest, options)
        _print_deep(manifest, checks, console)
        if any(c.mismatches for c in checks):
            worst = 2
        elif any(c.errors for c in checks):
            worst = max(worst, 1)
    return worst


def _print_deep(manifest: Manifest, checks: list[ItemCheck], console: Console | None = None) -> None:
    from rich.console import Console
    from rich.markup import escape

    out = console or Console()
    out.print(_table(manifest, checks))
    for c in checks:
        for note in c.notes:
            out.print(f"note: {escape(c.item.label)}: {escape(note)}")
        if c.sha256 and c.sha256 != c.item.hash:
            out.print(f"{escape(c.item.label)}: paste this hash: [bold]{c.sha256}[/bold]")


async def _with_bars(
    manifest: Manifest, options: FetchOptions, workdir: Path, out: Console
) -> list[ItemCheck]:
    from rich.markup import escape
    from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn, TransferSpeedColumn

    from bootstrapper.engine.deep import check_items
    from bootstrapper.fetch import FetchEvent
    from bootstrapper.fetch import events as fe

    labels = {i.id: i.label for i in manifest.items}
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=out, transient=True) as bars:
        tasks: dict[str, TaskID] = {}

        def on_event(event: FetchEvent) -> None:
            if isinstance(event, fe.Started):
                tasks[event.key] = bars.add_task(escape(labels.get(event.key, event.key)), total=event.total)
            elif isinstance(event, fe.Progress) and event.key in tasks:
                bars.update(tasks[event.key], completed=event.done, total=event.total)
            elif isinstance(event, fe.Finished | fe.Failed) and event.key in tasks:
                bars.remove_task(tasks.pop(event.key))

        return await check_items(manifest, options, workdir, on_event)


def _table(manifest: Manifest, checks: list[ItemCheck]) -> Table:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(manifest.source), title_justify="left")
    for column in ("item", "type", "size", "sha256", "result"):
        table.add_column(column, overflow="fold")
    for c in checks:
        if c.ok:
            result = "[green]ok[/green]" + "".join(f"\n{escape(n)}" for n in c.notes)
        else:
            color = "red" if c.mismatches else "yellow"
            result = "\n".join(f"[{color}]{escape(m)}[/{color}]" for m in (*c.mismatches, *c.errors))
        table.add_row(
            escape(c.item.label),
            c.item.type.value,
            "" if c.size is None else str(c.size),
            (c.sha256 or "")[:12],
            result,
        )
    if not checks:
        table.add_row("(no items to download)", "", "", "", "")
    return table
