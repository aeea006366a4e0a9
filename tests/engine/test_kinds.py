"""Every item type in the table has a runner, found by the type's name, behind the one Protocol."""

from __future__ import annotations

import importlib

from bootstrapper.engine.kinds import RUNNERS
from bootstrapper.engine.kinds.base import ItemRunner
from bootstrapper.manifest.kinds import SPECS


def test_every_type_has_a_runner_from_the_module_named_after_it() -> None:
    assert set(RUNNERS) == set(SPECS)
    for item_type, runner in RUNNERS.items():
        assert isinstance(runner, ItemRunner)
        module = importlib.import_module(f"bootstrapper.engine.kinds.{item_type.value}")
        assert runner is module.RUNNER
