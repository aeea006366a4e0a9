from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bootstrapper.errors import ProtocolError
from bootstrapper.ipc import protocol
from bootstrapper.ipc.protocol import (
    Hello,
    Ping,
    PingOp,
    Pong,
    Refuse,
    Request,
    Response,
    RunScript,
    ShutdownOp,
    Welcome,
)

SHA = "a" * 64
GOOD: dict[str, dict[str, Any]] = {
    "hello": {"type": "hello", "versions": [1], "agent_version": "1.0", "pid": 42},
    "request": {
        "type": "request",
        "id": 7,
        "op": "run_script",
        "args": {"step_id": "dock", "path": "/s.sh", "sha256": SHA, "args": ["-v"], "timeout": 5},
        "deadline": 15.0,
    },
    "response": {
        "type": "response",
        "id": 7,
        "ok": False,
        "exit_code": -9,
        "duration": 0.5,
        "output": "x",
        "error": None,
    },
}


def _payload(frame: bytes) -> bytes:
    assert protocol.frame_length(frame[:4]) == len(frame) - 4
    return frame[4:]


@pytest.mark.parametrize(
    "message",
    [
        Hello((1, 2), "0.1.0", 123),
        Welcome(1, "0.1.0"),
        Refuse("uid 501 may not check in"),
        Request(1, RunScript("dock", "/Library/x/dock.sh", SHA, ("a", "b c"), 30.0), 40.0),
        Request(2, PingOp(), 1.0),
        Request(3, ShutdownOp(), 5.0),
        Response(1, ok=True, exit_code=0, duration=0.25, output="héllo\n"),
        Response(2, ok=False, error="sha256 mismatch"),
        Ping(9),
        Pong(9),
        Request(4, protocol.StartScript("bg", "/Library/x/bg.sh", SHA, (), 60.0), 10.0),
        protocol.Exited("bg", ok=False, exit_code=7, duration=2.5, output="tail\n", error="exited with 7"),
        Response(
            3, ok=False, exit_code=2, duration=0.5, output="out\n", error="x exited with 2", stderr="err\n"
        ),
        protocol.Exited(
            "bg", ok=False, exit_code=7, duration=2.5, output="tail\n", error="exited with 7", stderr="why\n"
        ),
    ],
)
def test_every_message_survives_a_round_trip(message: protocol.Message) -> None:
    assert protocol.decode(_payload(protocol.encode(message))) == message


def test_a_reply_without_stderr_reads_as_no_stderr() -> None:
    """An agent from before the streams were kept apart sends no `stderr`: still understood."""
    payload = b'{"type":"response","id":1,"ok":true,"exit_code":0,"duration":0.1,"output":"hi","error":null}'
    assert protocol.decode(payload) == Response(1, ok=True, exit_code=0, duration=0.1, output="hi")


@pytest.mark.parametrize("length", [2**31, 2**32 - 1, protocol.MAX_FRAME + 1])
def test_frame_length_over_the_cap_is_refused_before_reading(length: int) -> None:
    with pytest.raises(ProtocolError, match="exceeds the 1048576-byte cap"):
        protocol.frame_length(length.to_bytes(4, "big"))


def test_a_smaller_cap_is_enforced_on_both_ends() -> None:
    big = Response(1, ok=True, output="x" * 2000)
    with pytest.raises(ProtocolError, match="exceeds the 1000-byte cap"):
        protocol.encode(big, max_size=1000)
    with pytest.raises(ProtocolError, match="exceeds"):
        protocol.frame_length(protocol.encode(big)[:4], max_size=1000)


def test_empty_frame_is_refused() -> None:
    with pytest.raises(ProtocolError, match="empty frame"):
        protocol.frame_length(b"\0\0\0\0")


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (b"\xff\xfe garbage", "not UTF-8"),
        (b"GET / HTTP/1.1", "not JSON"),
        (b"[1, 2]", "JSON object, got an array"),
        (b'"hello"', "JSON object, got a string"),
        (b"{}", "unknown message type None"),
        (b'{"type": "exec"}', "unknown message type 'exec'"),
        (b'{"type": "ping", "id": 1, "id": 2}', "duplicate key 'id'"),
        (
            b'{"type": "response", "id": 1, "ok": true, "exit_code": 0, "duration": NaN, "output": "", "error": null}',
            "NaN is not valid JSON",
        ),
        (b'{"type": "ping", "id": Infinity}', "Infinity is not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ],
)
def test_garbage_is_a_protocol_error(payload: bytes, error: str) -> None:
    with pytest.raises(ProtocolError, match=error):
        protocol.decode(payload)


def _with(kind: str, path: tuple[str, ...], value: Any) -> bytes:
    obj = json.loads(json.dumps(GOOD[kind]))
    target = obj
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return json.dumps(obj).encode()


_DELETE = object()


@pytest.mark.parametrize(
    ("kind", "path", "value", "error"),
    [
        ("hello", ("versions",), "1", r"hello\.versions: expected a list"),
        ("hello", ("versions",), [], r"hello\.versions: expected a list of 1 to 16"),
        ("hello", ("versions",), [True], r"hello\.versions"),
        ("hello", ("pid",), "42", r"hello\.pid: expected an integer"),
        ("hello", ("pid",), True, r"hello\.pid: expected an integer"),
        ("hello", ("pid",), 0, r"hello\.pid: expected an integer in \[1, "),
        ("hello", ("agent_version",), 1.0, r"hello\.agent_version: expected a string"),
        ("hello", ("agent_version",), "x" * 65, r"hello\.agent_version: expected a string of at most 64"),
        ("hello", ("pid",), _DELETE, r"hello: missing field 'pid'"),
        ("hello", ("uid",), 0, r"hello: unknown field 'uid'"),
        ("request", ("id",), -1, r"request\.id: expected an integer in \[0, "),
        ("request", ("id",), 1.5, r"request\.id"),
        ("request", ("op",), "rm_rf", r"unknown op 'rm_rf'"),
        ("request", ("op",), ["run_script"], r"request\.op: expected a string"),
        ("request", ("deadline",), 0, r"request\.deadline: expected a positive number"),
        ("request", ("deadline",), "soon", r"request\.deadline: expected a finite number"),
        ("request", ("args",), [], r"request\.args: expected an object"),
        ("request", ("args", "sha256"), "A" * 64, r"run_script\.sha256: expected 64 lowercase hex"),
        ("request", ("args", "sha256"), "a" * 63, r"run_script\.sha256"),
        ("request", ("args", "path"), "relative.sh", r"run_script\.path: expected an absolute path"),
        ("request", ("args", "path"), "/a\u0000b", r"run_script\.path"),
        ("request", ("args", "path"), "", r"request\.args\.path: expected a non-empty string"),
        ("request", ("args", "args"), ["ok", 3], r"request\.args\.args\[1\]: expected a string"),
        ("request", ("args", "args"), "-v", r"request\.args\.args: expected a list"),
        ("request", ("args", "timeout"), -1, r"request\.args\.timeout: expected a positive number"),
        ("request", ("args", "step_id"), None, r"request\.args\.step_id"),
        ("request", ("args", "shell"), True, r"request\.args: unknown field 'shell'"),
        ("response", ("ok",), "yes", r"response\.ok: expected true or false"),
        ("response", ("ok",), 1, r"response\.ok: expected true or false"),
        ("response", ("exit_code",), 1.5, r"response\.exit_code"),
        ("response", ("exit_code",), "0", r"response\.exit_code"),
        ("response", ("duration",), -0.1, r"response\.duration: expected a number >= 0"),
        ("response", ("output",), None, r"response\.output: expected a string"),
        ("response", ("output",), "x" * (protocol.MAX_OUTPUT + 1), r"response\.output"),
        ("response", ("error",), 3, r"response\.error: expected a string"),
    ],
)
def test_wellformed_json_with_wrong_types_is_refused(
    kind: str, path: tuple[str, ...], value: Any, error: str
) -> None:
    protocol.decode(json.dumps(GOOD[kind]).encode())  # the base message itself is fine
    with pytest.raises(ProtocolError, match=error):
        protocol.decode(_with(kind, path, value))


def test_overflowing_number_is_refused() -> None:
    raw = json.dumps(GOOD["request"]).replace('"deadline": 15.0', '"deadline": 1e400').encode()
    with pytest.raises(ProtocolError, match=r"request\.deadline: expected a finite number"):
        protocol.decode(raw)


def test_ops_without_arguments_refuse_arguments() -> None:
    raw = {"type": "request", "id": 1, "op": "shutdown", "args": {"now": True}, "deadline": 1}
    with pytest.raises(ProtocolError, match="unknown field 'now'"):
        protocol.decode(json.dumps(raw).encode())


def test_make_op_checks_like_the_wire_does() -> None:
    assert protocol.make_op("ping", {}) == PingOp()
    with pytest.raises(ProtocolError, match="unknown op 'format_disk'"):
        protocol.make_op("format_disk", {})
    with pytest.raises(ProtocolError, match="sha256"):
        protocol.make_op(
            "run_script", {"step_id": "s", "path": "/x", "sha256": "no", "args": [], "timeout": 1}
        )


@pytest.mark.parametrize(("offered", "expected"), [((1,), 1), ((1, 2, 3), 1), ((2, 3), None)])
def test_negotiation_picks_the_highest_common_version(offered: tuple[int, ...], expected: int | None) -> None:
    assert protocol.negotiate(offered) == expected
    assert protocol.negotiate(offered, supported=(1, 2)) == max({1, 2} & set(offered), default=None)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=512))
def test_arbitrary_bytes_raise_only_protocol_errors(payload: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        protocol.decode(payload)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(["hello", "welcome", "refuse", "request", "response", "ping", "pong"]),
    st.dictionaries(
        st.sampled_from(["versions", "agent_version", "pid", "id", "op", "args", "deadline", "ok", "reason"]),
        _json,
    ),
)
def test_arbitrary_json_objects_raise_only_protocol_errors(kind: str, fields: dict[str, Any]) -> None:
    with contextlib.suppress(ProtocolError):
        protocol.decode(json.dumps({"type": kind, **fields}).encode())
