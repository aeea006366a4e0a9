"""InstallApplications' bootstrap.json to the native YAML format, keeping what every item means.

The conversion works from the validated model (so it refuses what InstallApplications would choke
on) and writes each key only where it differs from the default. Two rewrites, both reported:
files under /Library/installapplications/ move under our install directory, and a package with
no packageid/version becomes `required: true` (InstallApplications installs those every time).
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

import yaml

from bootstrapper.manifest.kinds import SPECS
from bootstrapper.manifest.model import (
    AllOf,
    AnyOf,
    Arch,
    Condition,
    Format,
    Item,
    Loaded,
    Model,
    OSVersion,
    PathExists,
    Script,
    Settings,
    Stage,
)
from bootstrapper.paths import INSTALL_DIR

IA_INSTALL_DIR = PurePosixPath("/Library/installapplications")
SCHEMA_LINE = "# yaml-language-server: $schema=schema.json"


def native_path(path: PurePosixPath) -> PurePosixPath:
    """Where an InstallApplications file lives in our layout."""
    if path.is_relative_to(IA_INSTALL_DIR):
        return INSTALL_DIR / path.relative_to(IA_INSTALL_DIR)
    return path


def to_native(loaded: Loaded, raw_hashes: dict[str, str] | None = None) -> tuple[str, list[str]]:
    """Return the YAML text and the notes on what was rewritten."""
    manifest = loaded.manifest
    if manifest.format is not Format.IA:
        raise ValueError("convert takes an InstallApplications bootstrap.json")
    notes: list[str] = []
    defaults = Settings()
    doc: dict[str, Any] = {"format": 1}
    for stage in Stage:
        doc[stage.value] = [_item(i, defaults, notes, raw_hashes or {}) for i in manifest.stage(stage)]
    moved = [i for i in manifest.items if i.file is not None and native_path(i.file) != i.file]
    if moved:
        notes.insert(
            0,
            f"{len(moved)} file(s) moved from {IA_INSTALL_DIR}/ to {INSTALL_DIR}/; "
            "check scripts that refer to the old folder",
        )
    body = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=110, default_flow_style=False)
    header = (
        f"{SCHEMA_LINE}\n# Converted from {PurePosixPath(manifest.source).name} by `bootstrapper convert`.\n"
    )
    return header + body, notes


def _item(item: Item, defaults: Settings, notes: list[str], raw_hashes: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {"name": item.name, "type": item.type.value}
    if item.url is not None:
        out["url"] = item.url
    _hash(item, out, notes, raw_hashes)
    if item.file is not None:
        out["file"] = str(native_path(item.file))
    required = item.required
    if SPECS[item.type].has_receipt:
        if item.packageid is not None and item.version is not None:
            out["packageid"] = item.packageid
            out["version"] = item.version
        elif not required:
            required = True
            notes.append(
                f"{item.label}: no packageid/version, so it is installed every time: `required: true`"
            )
    changed = {
        "required": (required, False),
        "donotwait": (item.donotwait, False),
        "retries": (item.retries, defaults.retries),
        "retrywait": (item.retrywait, defaults.retrywait),
        "fail_policy": (item.fail_policy.value, defaults.fail_policy.value),
    }
    out.update({key: value for key, (value, default) in changed.items() if value != default})
    if item.skip_if is not None:
        out["skip_if"] = _condition(item.skip_if)
    if item.only_if is not None:
        out["only_if"] = _condition(item.only_if)
    return out


def _hash(item: Item, out: dict[str, Any], notes: list[str], raw_hashes: dict[str, str]) -> None:
    """The hash, or what InstallApplications had instead, noted so that the admin puts a real one in."""
    if item.hash is not None:
        out["hash"] = item.hash
    elif item.id in raw_hashes:
        out["hash"] = raw_hashes[item.id]
        notes.append(f"{item.label}: hash {raw_hashes[item.id]!r} is not a sha256; put the real one in")
    elif SPECS[item.type].downloads:
        out["hash"] = ""
        notes.append(f"{item.label}: has no hash; put the file's sha256 in")


def _condition(condition: Condition) -> Any:
    """A condition as the native format spells it; a lone architecture stays the plain word it was.

    The loader reads both formats' conditions into one model, so a mapping of tests (which
    `validate` accepts in a bootstrap.json too) converts as a mapping, and a list of them as a list.
    """
    if isinstance(condition, AllOf) and len(condition.predicates) == 1:
        pred = condition.predicates[0]
        if isinstance(pred, Arch):
            return "intel" if pred.arch == "x86_64" else "apple_silicon"
    if isinstance(condition, AnyOf):
        return [_tests(branch) for branch in condition.branches]
    return _tests(condition)


def _tests(condition: AllOf) -> dict[str, str]:
    out: dict[str, str] = {}
    for pred in condition.predicates:
        match pred:
            case Arch():
                out["arch"] = pred.arch
            case OSVersion():
                out["os_version"] = f"{pred.op} {pred.version}"
            case Model():
                out["model"] = pred.pattern
            case PathExists():
                out["path_exists"] = pred.path
            case Script():
                out["script"] = pred.source
    return out


def raw_hashes(data: bytes) -> dict[str, str]:
    """The `hash` texts as written, by item id: placeholders such as "sha256 hash" survive conversion."""
    from bootstrapper.manifest.source import parse

    root = parse(data).root.plain()
    found: dict[str, str] = {}
    if not isinstance(root, dict):
        return found
    for stage in Stage:
        entries = root.get(stage.value)
        if not isinstance(entries, list):
            continue
        for index, entry in enumerate(entries):
            if isinstance(entry, dict) and isinstance(entry.get("hash"), str):
                found[f"{stage.value}[{index}]"] = entry["hash"]
    return found
