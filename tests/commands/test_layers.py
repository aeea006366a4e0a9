"""The layers point down: only `cli.py` imports `commands/`, and the core modules stay pure."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "bootstrapper"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_only_the_cli_imports_commands() -> None:
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if "commands" not in path.relative_to(PACKAGE).parts
        and path.name != "cli.py"
        and any(name.startswith("bootstrapper.commands") for name in _imports(path))
    ]
    assert offenders == []


def test_the_core_imports_no_io_layer() -> None:
    core = [
        *(PACKAGE / "manifest").glob("*.py"),
        PACKAGE / "engine" / "plan.py",
        PACKAGE / "ipc" / "protocol.py",
    ]
    io_layers = ("bootstrapper.fetch", "bootstrapper.platform", "bootstrapper.engine.run", "httpx", "typer")
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(n for n in _imports(path) if n.startswith(io_layers))
        for path in core
    }
    assert {k: v for k, v in offenders.items() if v} == {}
