"""Shared by the two script kinds: the default timeout and how a script's output is summed up."""

from __future__ import annotations

from bootstrapper.engine.kinds.base import Outcome
from bootstrapper.text import one_line

#: A script with no `timeout` of its own may run this long.
DEFAULT_SCRIPT_TIMEOUT = 3600.0
#: A failed step's `output_tail` (console summary, result.json, webhook): its last lines, this many
#: at most, and at most this many characters: enough to see why, small enough for every report.
TAIL_LINES = 20
TAIL_CHARS = 4096
#: Characters of one output line shown in the log or a tail; a longer line is cut.
LINE_CHARS = 2000


def tail_line(tail: str) -> str:
    """The last non-empty line of a script's output: what a one-line reason shows."""
    lines = [line for line in tail.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


def why_line(stdout: str, stderr: str) -> str:
    """A failed script's one-line reason: the last line of stderr, else of stdout."""
    return tail_line(stderr) or tail_line(stdout)


def shown_lines(text: str) -> list[str]:
    """Output as lines a person may be shown: each made one printable line (escape codes and other
    controls shown, never obeyed), blank ones dropped."""
    return [line for line in (one_line(raw, LINE_CHARS) for raw in text.splitlines()) if line]


def output_tail(stdout: str, stderr: str) -> str:
    """The end of what a failed step printed: stderr's last lines, else stdout's (see TAIL_LINES)."""
    lines = shown_lines(stderr) or shown_lines(stdout)
    kept: list[str] = []
    size = 0
    for line in reversed(lines[-TAIL_LINES:]):
        if kept and size + len(line) + 1 > TAIL_CHARS:
            break
        kept.append(line[-TAIL_CHARS:])
        size += len(line) + 1
    return "\n".join(reversed(kept))


def script_outcome(stdout: str, stderr: str, code: int | None, problem: str = "") -> Outcome:
    """How a script that ran is reported, wherever it ran: done with its last line, or failed with
    `problem` (else its exit code) and the last line it printed; both streams kept either way."""
    if not problem and code == 0:
        return Outcome.done(tail_line(stdout), 0, stdout=stdout, stderr=stderr)
    why = why_line(stdout, stderr)
    return Outcome.failed(
        f"{problem or f'exited with {code}'}: {why}".rstrip(": "), code, stdout=stdout, stderr=stderr
    )
