"""`bootstrapper status`: where the run is, read from the state file without touching it.

Read-only on purpose: a status command run while the daemon works must not move or rewrite its state,
so an unreadable file is reported here and only the daemon sets it aside.
"""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text

from bootstrapper.engine.state import RunState, read_state
from bootstrapper.errors import NoStateError, StateError
from bootstrapper.paths import Paths
from bootstrapper.text import one_line

_STYLE = {"pending": "dim", "running": "cyan", "done": "green", "failed": "bold red", "skipped": "yellow"}


def show_status(paths: Paths, *, as_json: bool = False, out: TextIO | None = None) -> None:
    """Print the run's state as a table, or as JSON with `as_json` (the state document plus counts)."""
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
        render(state, Console(file=stream, highlight=False))


def status_document(state: RunState) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for step in state.steps.values():
        counts[step.status] = counts.get(step.status, 0) + 1
    return {**state.to_json(), "counts": counts}


def render(state: RunState, console: Console) -> None:
    result = state.result or ("in progress" if state.run_attempt else "not started")
    run, phase = one_line(state.run_id or "-", markup=True), one_line(state.phase or "-", markup=True)
    console.print(
        f"[bold]run[/] {run}  [bold]attempt[/] {state.run_attempt}  "
        f"[bold]phase[/] {phase}  [bold]result[/] {one_line(result, markup=True)}"
    )
    console.print(f"[bold]manifest[/] {one_line(state.source or '-', 300, markup=True)}")
    console.print(f"[bold]updated[/] {one_line(state.updated_at, markup=True)}")
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
