"""A scripted run shared by the sink tests: what a scheduler would emit for a small manifest."""

from __future__ import annotations

from bootstrapper.engine.events import (
    DownloadProgress,
    Event,
    InstallProgress,
    Message,
    PhaseStarted,
    PlannedStep,
    RunFinished,
    RunStarted,
    StepFinished,
    StepOutput,
    StepRetrying,
    StepStarted,
)

HOSTILE = "[bold red]Evil[/], Inc: \x1b]0;pwned\x07\nCommand: RestartNow:"
#: How every sink shows it: one line, the escape and the bell visible as text, markup as text.
SHOWN = "[bold red]Evil[/], Inc: \\x1b]0;pwned\\x07 Command: RestartNow:"

STEPS = (
    PlannedStep("preflight[0]", "Preflight check", "rootscript", "preflight", "done"),
    PlannedStep("setupassistant[0]", "Chrome", "package", "setupassistant"),
    PlannedStep("userland[0]", HOSTILE, "userscript", "userland"),
    PlannedStep("userland[1]", "Skipped on Intel", "package", "userland", "skipped", "arch is arm64"),
)

SCRIPT: list[Event] = [
    RunStarted("run-1", "https://user:pw@mdm.example.com/m.yaml?token=abc", 4, 2, STEPS),
    PhaseStarted("setupassistant"),
    StepStarted("setupassistant[0]", "Chrome", "package", "setupassistant"),
    DownloadProgress("setupassistant[0]", 0, 1000),
    DownloadProgress("setupassistant[0]", 550, 1000),
    DownloadProgress("setupassistant[0]", 560, 1000),
    DownloadProgress("setupassistant[0]", 1000, 1000),
    InstallProgress("setupassistant[0]", 40.0, "Running package scripts"),
    StepFinished("setupassistant[0]", "done", "", 0, 3.25),
    PhaseStarted("userland"),
    StepStarted("userland[0]", HOSTILE, "userscript", "userland"),
    StepRetrying("userland[0]", 2, "agent went away"),
    StepOutput("userland[0]", "stdout", "working\n\x1b[31mred\x1b[0m\n"),
    StepOutput("userland[0]", "stderr", "boom, badly\n"),
    StepFinished("userland[0]", "failed", "exited with 3: boom, badly", 3, 1.0, "boom, badly"),
    Message("warning", "something odd"),
    RunFinished("failed", ("userland[0]",), 7.5, {"userland[0]": "boom, badly"}),
]
