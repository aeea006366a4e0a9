"""`bootstrapper status`: where the run is, read from the state file without touching it.

Read-only on purpose: a status command run while the daemon works must not move or rewrite its state,
so an unreadable file is reported here and only the daemon sets it aside.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TextIO

import typer

from bootstrapper.commands._options import AsJson
from bootstrapper.errors import NoStateError, StateError
from bootstrapper.paths import Paths

if TYPE_CHECKING:
    from rich.console import Console

    from bootstrapper.engine.state import RunState

_STYLE = {"pending": "dim", "running": "cyan", "done": "green", "failed": "bold red", "skipped": "yellow"}


def status(
    as_json: AsJson = False,
    sandbox: Annotated[
        Path | None, typer.Option("--sandbox", help="Read the run of the simulated macOS under this folder.")
    ] = None,
) -> None:
    """Show where the bootstrap run is, from its state file. Exit 2 when there is none."""
    show_status(Paths(root=sandbox or Path("/")), as_json=as_json)


def show_status(paths: Paths, *, as_json: bool = False, out: TextIO | None = None) -> None:
    """Print the run's state as a table, or as JSON with `as_json` (the state document plus counts)."""
    from bootstrapper.engine.state import read_state

    path = paths.state_file
    try:
        state = read_state(path)
    except FileNotFoundError:
        raise NoStateError(
            f"no state file at {path}: no run has started here "
            f"(a finished run removes itself; its record is {paths.result_file})"
        ) from None
    except OSError as exc:
        raise StateError(f"cannot read the state file {path}: {exc.strerror}") from None
    except StateError as exc:
        raise StateError(f"the state file {path} is unreadable: {exc}") from None
    stream = out or sys.stdout
    if as_json:
        stream.write(json.dumps(status_document(state), indent=2, ensure_ascii=False) + "\n")
    else:
        from rich.console import Console

        render(state, Console(file=stream, highlight=False))


def status_document(state: RunState) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for step in state.steps.values():
        counts[step.status] = counts.get(step.status, 0) + 1
    return {**state.to_json(), "counts": counts}


def render(state: RunState, console: Console) -> None:
    from rich.table import Table
    from rich.text import Text

    from bootstrapper.progress.text import escape_markup, one_line

    result = state.result or ("in progress" if state.run_attempt else "not started")
    console.print(
        f"[bold]run[/] {escape_markup(state.run_id or '-')}  [bold]attempt[/] {state.run_attempt}  "
        f"[bold]phase[/] {escape_markup(state.phase or '-')}  [bold]result[/] {escape_markup(result)}"
    )
    console.print(f"[bold]manifest[/] {escape_markup(state.source or '-', 300)}")
    console.print(f"[bold]updated[/] {escape_markup(state.updated_at)}")
    table = Table(title_justify="left")
    for column in ("#", "Step", "Status", "Attempts", "Exit", "Time", "Reason"):
        table.add_column(column, overflow="fold")
    for n, step in enumerate(state.steps.values(), 1):
        duration = step.duration
        table.add_row(
            str(n),
            Text(one_line(step.name, 60)),
            Text(step.status, style=_STYLE.get(step.status, "")),
            str(step.attempts),
            "" if step.exit_code is None else str(step.exit_code),
            "" if duration is None else f"{duration:.1f} s",
            Text(one_line(step.reason, 100)),
        )
    console.print(table)
