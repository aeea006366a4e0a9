"""`bootstrapper pkg info` and `pkg files`: package facts as text or JSON, payload paths.

Every string comes from an untrusted file, so control characters are escaped before they reach
a terminal (a name with an ANSI escape must not repaint the screen).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bootstrapper.commands._options import App, AsJson
from bootstrapper.text import one_line

if TYPE_CHECKING:
    from bootstrapper.flatpkg.package import PackageFacts

app = App(help="Read macOS flat packages (.pkg): facts, signatures, payload files.")

#: Untrusted text as shown: the one rule of `bootstrapper.text`, never cut.
safe = functools.partial(one_line, limit=None)


def facts_json(facts: PackageFacts) -> dict[str, Any]:
    data = dataclasses.asdict(facts)
    data["signer"] = facts.signer
    data["team"] = facts.team
    data["component_ids"] = list(facts.component_ids)
    data["has_payload"] = facts.has_payload
    return data


def facts_text(facts: PackageFacts) -> str:
    lines = [
        f"file:          {safe(facts.path)}",
        f"size:          {facts.size} bytes, sha256 {facts.sha256}",
        f"kind:          {'product archive' if facts.kind == 'product' else 'component package'}",
        f"signed:        {'yes, by ' + safe(facts.signer) if facts.signed else 'no'}",
    ]
    if facts.team:
        lines.append(f"team:          {safe(facts.team)} (use as team_id; the chain is checked at install)")
    for sig in facts.signatures:
        check = {True: ", matches the leaf key", False: ", DOES NOT match the leaf key", None: ""}
        names = " / ".join(safe(c.common_name) for c in sig.certificates) or "no certificates"
        lines.append(f"  <{sig.element}> {safe(sig.style)}{check[sig.matches_leaf_key]}: {names}")
    lines.append(f"created:       {safe(facts.creation_time or '-')}")
    d = facts.distribution
    if d is not None:
        lines += [
            f"title:         {safe(d.title or '-')}",
            f"product:       {safe(d.product_id or '-')} {safe(d.product_version or '')}".rstrip(),
            f"architectures: {', '.join(map(safe, d.host_architectures)) or 'any'}",
            f"minimum macOS: {safe(d.minimum_os or '-')}",
        ]
        for ref in d.pkg_refs:
            kb = f", {ref.install_kbytes} KB" if ref.install_kbytes is not None else ""
            lines.append(f"  pkg-ref {safe(ref.id)} {safe(ref.version or '?')}{kb} → {safe(ref.path or '-')}")
        for ref_id in facts.dangling_pkg_refs:
            lines.append(f"  warning: pkg-ref {safe(ref_id)} names a component that is not in the archive")
    for comp in facts.components:
        info = comp.info
        head = f"component {safe(comp.name)}" if comp.name else "component"
        scripts = ", ".join(safe(p) for p in info.scripts) or "none"
        lines += [
            f"{head}:",
            f"  identifier:       {safe(info.identifier)}",
            f"  version:          {safe(info.version)}",
            f"  install-location: {safe(info.install_location or '/ (not stated)')}",
            f"  auth:             {safe(info.auth or '-')}",
            f"  postinstall:      {safe(info.postinstall_action)}",
            f"  payload:          {safe(comp.payload_format)}, {info.number_of_files} files, "
            f"{info.install_kbytes} KB",
            f"  scripts:          {scripts}",
            f"  generator:        {safe(info.generator_version or '-')}",
        ]
    return "\n".join(lines)


def payload_files(path: Path) -> Iterator[str]:
    """Every payload path, like `pkgutil --payload-files`; several components are told apart.

    A path the installer refuses (absolute, or climbing out with `..`) is listed with that said.
    """
    from bootstrapper.flatpkg.extract import outside_root
    from bootstrapper.flatpkg.package import FlatPackage

    with FlatPackage(path) as pkg:
        several = len(pkg.components) > 1
        for comp in pkg.components:
            if not comp.has_payload:
                continue
            if several:
                yield f"# {safe(comp.name)} ({safe(comp.info.identifier)})"
            with pkg.open_payload(comp) as reader:
                for entry in reader:
                    flag = "  (refused: outside the install root)" if outside_root(entry.name) else ""
                    yield safe(entry.name) + flag


@app.command("info")
def info(
    file: Annotated[
        Path, typer.Argument(metavar="PKG", help="The .pkg file (component or product archive).")
    ],
    as_json: AsJson = False,
) -> None:
    """Show a package's identifiers, versions, install location, scripts and signature."""
    import json

    from bootstrapper.flatpkg import read_package

    facts = read_package(file)
    typer.echo(json.dumps(facts_json(facts), indent=2) if as_json else facts_text(facts))


@app.command("files")
def files(file: Annotated[Path, typer.Argument(metavar="PKG", help="The .pkg file.")]) -> None:
    """List the paths a package's payload installs (like `pkgutil --payload-files`)."""
    for line in payload_files(file):
        typer.echo(line)
