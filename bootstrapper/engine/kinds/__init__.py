"""The item kinds, one module each behind the `ItemKind` Protocol, registered here by kind."""

from __future__ import annotations

from bootstrapper.engine.kinds.base import ItemKind
from bootstrapper.engine.kinds.package import Package
from bootstrapper.engine.kinds.rootfile import RootFile
from bootstrapper.engine.kinds.rootscript import RootScript
from bootstrapper.engine.kinds.userfile import UserFile
from bootstrapper.engine.kinds.userscript import UserScript
from bootstrapper.engine.kinds.wait import Wait
from bootstrapper.manifest.model import Kind

KINDS: dict[Kind, ItemKind] = {
    runner.kind: runner for runner in (Package(), RootScript(), UserScript(), RootFile(), UserFile(), Wait())
}
