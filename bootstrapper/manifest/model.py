"""The manifest model: frozen values that the loader builds and everything else reads.

One model serves both spellings (native YAML and InstallApplications' bootstrap.json); the loader
is the only place that knows about spellings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bootstrapper.manifest.kinds import ItemType


class Stage(StrEnum):
    PREFLIGHT = "preflight"
    SETUPASSISTANT = "setupassistant"
    USERLAND = "userland"


class FailPolicy(StrEnum):
    #: Any failure of this item is reported and the run goes on.
    FAILABLE = "failable"
    #: Download/verification failures stop the run; a failing script or install does not.
    FAILABLE_EXECUTION = "failable_execution"
    #: Any failure stops the run.
    FAILURE_IS_NOT_AN_OPTION = "failure_is_not_an_option"


class OnFailure(StrEnum):
    #: Keep the daemon installed and exit non-zero so launchd runs it again (bounded attempts).
    RETRY = "retry"
    #: Remove everything anyway.
    CLEANUP = "cleanup"


class FinalAction(StrEnum):
    NONE = "none"
    REBOOT = "reboot"
    LOGOUT = "logout"


class Format(StrEnum):
    NATIVE = "native"
    IA = "installapplications"


# --- conditions --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Arch:
    arch: str  # "arm64" | "x86_64"


@dataclass(frozen=True)
class OSVersion:
    op: str  # one of >= > <= < == !=
    version: str


@dataclass(frozen=True)
class Model:
    pattern: str  # fnmatch glob over the model identifier


@dataclass(frozen=True)
class PathExists:
    path: str


@dataclass(frozen=True)
class Script:
    """An inline shell script run with /bin/sh on the Mac; exit 0 means the condition holds."""

    source: str


Predicate = Arch | OSVersion | Model | PathExists | Script


@dataclass(frozen=True)
class AllOf:
    """Every predicate holds (a mapping in the manifest)."""

    predicates: tuple[Predicate, ...]


@dataclass(frozen=True)
class AnyOf:
    """At least one branch holds (a list of mappings in the manifest)."""

    branches: tuple[AllOf, ...]


Condition = AllOf | AnyOf


# --- items and the manifest --------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    stage: Stage
    #: Position in its stage as written, so ids and breadcrumbs match the source.
    index: int
    name: str
    type: ItemType
    url: str | None = None
    hash: str | None = None
    file: PurePosixPath | None = None
    size: int | None = None
    packageid: str | None = None
    version: str | None = None
    #: Install even when a receipt with this version or newer exists.
    required: bool = False
    donotwait: bool = False
    retries: int = 3
    retrywait: float = 5.0
    fail_policy: FailPolicy = FailPolicy.FAILABLE_EXECUTION
    timeout: float | None = None
    skip_if: Condition | None = None
    only_if: Condition | None = None
    arguments: tuple[str, ...] = ()
    #: For `wait` items: the path whose appearance ends the wait.
    path: str | None = None
    #: For packages: the Developer ID Installer team that must have signed it.
    team_id: str | None = None
    #: For scripts: names of `script_secrets` settings passed to the script's environment.
    secrets: tuple[str, ...] = ()
    #: Line in the source, for messages.
    line: int = 0

    @property
    def id(self) -> str:
        return f"{self.stage}[{self.index}]"

    @property
    def label(self) -> str:
        return f'{self.id} "{self.name}"'


@dataclass(frozen=True)
class Settings:
    """Defaults that a native manifest can set for all of its items."""

    allow_http: bool = False
    retries: int = 3
    retrywait: float = 5.0
    timeout: float | None = None
    fail_policy: FailPolicy = FailPolicy.FAILABLE_EXECUTION


@dataclass(frozen=True)
class Manifest:
    source: str
    format: Format
    items: tuple[Item, ...]
    settings: Settings = field(default_factory=Settings)
    on_failure: OnFailure = OnFailure.RETRY
    final_action: FinalAction = FinalAction.NONE

    def stage(self, stage: Stage) -> tuple[Item, ...]:
        return tuple(i for i in self.items if i.stage is stage)


@dataclass(frozen=True)
class Problem:
    """One error or warning, positioned in the source (line and col are 1-based; 0 = unknown)."""

    source: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}:{self.col}" if self.line else self.source
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class Loaded:
    """A manifest plus the warnings that did not stop it from loading."""

    manifest: Manifest
    warnings: tuple[Problem, ...] = ()
