"""Every item type, declared once: its manifest rules, its schema and what displays call it.

The loader, the JSON Schema, the plan, the scheduler and the progress displays read this table
instead of naming types. Adding a type is its name in `ItemType` and its `KindSpec` here, plus its
runner, the module `engine/kinds/<type>.py` (the engine finds it by the type's name). Pure data: the
engine is never imported from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from bootstrapper.manifest.model import Stage


class ItemType(StrEnum):
    """The manifest's `type`."""

    PACKAGE = "package"
    ROOTSCRIPT = "rootscript"
    USERSCRIPT = "userscript"
    ROOTFILE = "rootfile"
    USERFILE = "userfile"
    WAIT = "wait"


_ROOT_STAGES = frozenset({Stage.SETUPASSISTANT, Stage.USERLAND})
_USER_STAGES = frozenset({Stage.USERLAND})
_DOWNLOAD = frozenset({"url", "hash", "file"})


@dataclass(frozen=True)
class KindSpec:
    type: ItemType
    #: What the type is, in the schema and in messages that list types ("root scripts").
    doc: str
    plural: str
    #: The stages it may be listed in.
    stages: frozenset[Stage]
    #: The type-specific keys it takes (`fields.ITEM_FIELDS` says what giving one to another type means).
    keys: frozenset[str]
    #: The type-specific keys it cannot do without (but see `on_disk` for `url`).
    needs: frozenset[str] = frozenset()
    #: Runs as the logged-in user, through the agent, rather than as root.
    runs_as_user: bool = False
    #: Has an installer receipt: skipped when the receipt is current, so it needs `packageid` and
    #: `version` unless `required: true`.
    has_receipt: bool = False
    #: Its file is kept under INSTALL_DIR (root-owned, removed at the end), not where the admin likes.
    kept_in_install_dir: bool = False
    #: Mode the verified download is placed with.
    mode: int = 0o644
    #: A small file (a script) that is fetched on its own connection as soon as it is in the
    #: look-ahead window, never queued behind a large download.
    small: bool = False
    #: May name a file already on the Mac (put there by an earlier package) with `file` and `hash` and
    #: no `url`, as InstallApplications allows for root scripts: checked by hash, never downloaded.
    on_disk: bool = False
    #: The item's `timeout` when neither it nor the settings give one (None: the runner's own default).
    default_timeout: float | None = None
    #: What progress displays say while it runs ("Installing Munki"), and its one-word status in a list.
    verb: str = "Working on"
    status: str = ""

    @property
    def downloads(self) -> bool:
        return "url" in self.keys

    @property
    def status_text(self) -> str:
        return self.status or self.verb


def _script(
    kind: ItemType,
    doc: str,
    plural: str,
    stages: frozenset[Stage],
    *,
    mode: int,
    keys: frozenset[str] = frozenset(),
    on_disk: bool = False,
    runs_as_user: bool = False,
) -> KindSpec:
    """A script type: what every script shares (downloaded to our folder, small, run with arguments
    and secrets, perhaps in the background), plus what sets this one apart."""
    return KindSpec(
        kind,
        doc,
        plural,
        stages,
        _DOWNLOAD | {"donotwait", "arguments", "secrets"} | keys,
        needs=frozenset({"url", "hash"}),
        runs_as_user=runs_as_user,
        kept_in_install_dir=True,
        mode=mode,
        small=True,
        on_disk=on_disk,
        verb="Running",
    )


SPECS: dict[ItemType, KindSpec] = {
    spec.type: spec
    for spec in (
        KindSpec(
            ItemType.PACKAGE,
            "A flat package installed with `installer`, skipped when its receipt is current.",
            "packages",
            _ROOT_STAGES,
            _DOWNLOAD | {"packageid", "version", "team_id"},
            needs=frozenset({"url", "hash"}),
            has_receipt=True,
            kept_in_install_dir=True,
            mode=0o600,
            verb="Installing",
        ),
        _script(
            ItemType.ROOTSCRIPT,
            "A script run as root; in preflight, exit 0 means the Mac is already set up.",
            "root scripts",
            frozenset(Stage),
            mode=0o700,
            on_disk=True,
        ),
        _script(
            ItemType.USERSCRIPT,
            "A script run as the logged-in user, in that user's session.",
            "user scripts",
            _USER_STAGES,
            mode=0o755,
            runs_as_user=True,
            keys=frozenset({"secrets_to_user"}),
        ),
        KindSpec(
            ItemType.ROOTFILE,
            "A file placed at `file`, owned by root.",
            "root files",
            _ROOT_STAGES,
            _DOWNLOAD,
            needs=_DOWNLOAD,
            verb="Placing",
        ),
        KindSpec(
            ItemType.USERFILE,
            "A file placed at `file`, owned by the logged-in user.",
            "user files",
            _USER_STAGES,
            _DOWNLOAD,
            needs=_DOWNLOAD,
            runs_as_user=True,
            verb="Placing",
        ),
        KindSpec(
            ItemType.WAIT,
            "Wait until `path` exists (an app the MDM or VPP delivers), up to `timeout` seconds.",
            "wait items",
            _ROOT_STAGES,
            frozenset({"path"}),
            needs=frozenset({"path"}),
            default_timeout=900.0,
            verb="Waiting for",
            status="Waiting",
        ),
    )
}

#: Every key that only some types take.
TYPE_KEYS: frozenset[str] = frozenset().union(*(s.keys for s in SPECS.values()))


def spec_for(name: str) -> KindSpec | None:
    """The spec of a type named in an event or a state file (plain text there), or None."""
    try:
        return SPECS[ItemType(name)]
    except ValueError:
        return None
