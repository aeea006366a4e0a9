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
        Path | None,
        typer.Option(
            "--sandbox", metavar="DIR", help="Read the run of the simulated macOS under this folder."
        ),
    ] = None,
) -> None:
    """Show where the bootstrap run is, or how it ended. Exit 2 when no run has started here."""
    show_status(Paths(root=sandbox or Path("/")), as_json=as_json)


def show_status(paths: Paths, *, as_json: bool = False, out: TextIO | None = None) -> None:
    """The run's state as a table (or JSON); after self-removal, the completion record it left."""
    from bootstrapper.engine.state import lock_holder, read_state

    path = paths.state_file
    stream = out or sys.stdout
    try:
        state = read_state(path)
    except FileNotFoundError:
        record = _completion_record(paths)
        if as_json:
            stream.write(
                json.dumps({"from": "completion record", **record}, indent=2, ensure_ascii=False) + "\n"
            )
        else:
            from rich.console import Console

            render_record(record, Console(file=stream, highlight=False))
        return
    except OSError as exc:
        raise StateError(f"cannot read the state file {path}: {exc.strerror}") from None
    except StateError as exc:
        raise StateError(f"the state file {path} is unreadable: {exc}") from None
    daemon = lock_holder(paths.lock_file)
    if as_json:
        doc = {**status_document(state), "daemon_pid": daemon, "interrupted": _interrupted(state, daemon)}
        stream.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    else:
        from rich.console import Console

        render(state, Console(file=stream, highlight=False), daemon=daemon)


def _interrupted(state: RunState, daemon: int | None) -> bool:
    """A run that started, has no result, and whose daemon is gone: it resumes at the daemon's next start."""
    return state.result is None and state.run_attempt > 0 and daemon is None


def _completion_record(paths: Paths) -> dict[str, Any]:
    try:
        data = paths.result_file.read_bytes()
    except FileNotFoundError:
        raise NoStateError(
            f"no state file at {paths.state_file} and no completion record at {paths.result_file}: "
            "no run has started here"
        ) from None
    except OSError as exc:
        raise StateError(f"cannot read the completion record {paths.result_file}: {exc.strerror}") from None
    try:
        record = json.loads(data)
    except ValueError:
        record = None
    if not isinstance(record, dict):
        raise StateError(
            f"the completion record {paths.result_file} is not a JSON object; look at it by hand"
        )
    return record


def render_record(record: dict[str, Any], console: Console) -> None:
    """A finished run, from the completion record that outlives self-removal."""
    from bootstrapper.text import one_line

    def field(key: str) -> str:
        value = record.get(key)
        return one_line("-" if value is None else str(value), 300, markup=True)

    failed = record.get("failed_steps") or []
    console.print(f"[bold]finished[/] {field('result')}  [bold]at[/] {field('finished')}")
    console.print(f"[bold]manifest[/] {field('manifest')}")
    console.print(f"[bold]started[/] {field('started')}  [bold]took[/] {field('duration_seconds')} s")
    if record.get("retrying"):
        console.print("the run failed and will be tried again at the daemon's next start")
    for name in failed if isinstance(failed, list) else []:
        console.print(f"[bold red]failed[/] {one_line(str(name), 200, markup=True)}")
    console.print("(from the completion record; the run removed its state when it ended)")


def status_document(state: RunState) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for step in state.steps.values():
        counts[step.status] = counts.get(step.status, 0) + 1
    return {**state.to_json(), "counts": counts}


def render(state: RunState, console: Console, *, daemon: int | None = None) -> None:
    from rich.table import Table
    from rich.text import Text

    from bootstrapper.text import one_line

    result: str
    if state.result:
        result = state.result
    elif not state.run_attempt:
        result = "not started"
    elif daemon is None:
        result = "interrupted (the daemon is not running; the run resumes when it starts again)"
    else:
        result = f"in progress (daemon pid {daemon})"
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
