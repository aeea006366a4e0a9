"""A run_script's `env` (a step's secrets) crosses the socket intact, and a bad one is refused
without its value in the message."""

from __future__ import annotations

import pytest

from bootstrapper.errors import ProtocolError
from bootstrapper.ipc import protocol

ARGS = {"step_id": "userland[0]", "path": "/tmp/s.sh", "sha256": "a" * 64, "args": [], "timeout": 5.0}


def test_env_is_carried() -> None:
    op = protocol.make_op("run_script", {**ARGS, "env": {"API_TOKEN": "hunter22"}})
    assert isinstance(op, protocol.RunScript)
    assert op.env == {"API_TOKEN": "hunter22"}
    assert "hunter22" not in repr(op)


def test_no_env_is_an_empty_one() -> None:
    op = protocol.make_op("run_script", ARGS)
    assert isinstance(op, protocol.RunScript)
    assert op.env == {}


def test_a_bad_env_entry_is_refused_without_its_value() -> None:
    with pytest.raises(ProtocolError) as err:
        protocol.make_op("run_script", {**ARGS, "env": {"API_TOKEN": 12345678}})
    assert "12345678" not in str(err.value)
    assert "API_TOKEN" in str(err.value)
