"""Frames and messages of the daemon-agent channel: pure (bytes in, objects out; no I/O).

A frame is a 4-byte big-endian length and one UTF-8 JSON object. Both ends are hostile to each other
until proven otherwise, so every field of every message is type-checked here, unknown keys and
duplicate keys are refused, and sizes are capped before anything is allocated. Any problem is a
`ProtocolError` whose message says what was wrong; nothing else escapes `decode`.
"""

from __future__ import annotations

import json
import math
import re
import struct
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Final, TypeVar

from bootstrapper.errors import ProtocolError
from bootstrapper.hashing import is_sha256

_T = TypeVar("_T")

#: Protocol versions this build speaks; the hello offers them, the daemon picks the highest in common.
SUPPORTED_VERSIONS: Final = (1,)
HEADER_SIZE: Final = 4
#: The default cap on a frame's payload; a header announcing more is refused before reading it.
MAX_FRAME: Final = 1 << 20
#: Replies carry at most this much of each of a script's streams: its tail (256 KiB) and a cut note.
#: Both together may still not fit a frame: the agent cuts them further to fit (`agent._fitted`).
MAX_OUTPUT: Final = 257 * 1024
_MAX_TEXT: Final = 4096
_MAX_ARGS: Final = 1024
_ENV_NAME: Final = re.compile(r"[A-Z_][A-Z0-9_]{0,63}")
_MAX_VERSIONS: Final = 16
_MAX_ID: Final = 2**53
_HEADER = struct.Struct(">I")


# --- operations (what a request asks the agent to do) -----------------------------------------


@dataclass(frozen=True, slots=True)
class _ScriptOp:
    """Run the file at `path` (whose content must hash to `sha256`) with `args`, killed after `timeout`."""

    step_id: str
    path: str
    sha256: str
    args: tuple[str, ...] = ()
    timeout: float = 600.0
    #: Extra environment (the step's secrets): only for this script, never logged or echoed back.
    env: Mapping[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True)
class RunScript(_ScriptOp):
    """Run a script and answer when it ends, with its outcome."""

    name: ClassVar[str] = "run_script"


@dataclass(frozen=True, slots=True)
class StartScript(_ScriptOp):
    """Like `RunScript`, but answered as soon as the script runs: its end comes later, as an `Exited`
    message, so a `donotwait` script does not hold the agent's one request slot. Its `env` is always
    empty today: the daemon gives secrets only to scripts it waits for."""

    name: ClassVar[str] = "start_script"


@dataclass(frozen=True, slots=True)
class PingOp:
    """A no-op request: proves the agent serves requests (heartbeats only prove it reads frames)."""

    name: ClassVar[str] = "ping"


@dataclass(frozen=True, slots=True)
class ShutdownOp:
    """Ask the agent to reply and exit cleanly (the daemon is done, or is removing itself)."""

    name: ClassVar[str] = "shutdown"


Op = RunScript | StartScript | PingOp | ShutdownOp


# --- messages -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hello:
    """Agent → daemon, first frame: the versions it speaks. Its pid is informative only."""

    versions: tuple[int, ...]
    agent_version: str
    pid: int


@dataclass(frozen=True, slots=True)
class Welcome:
    version: int
    daemon_version: str


@dataclass(frozen=True, slots=True)
class Refuse:
    """Either side, last frame before closing: why the other side was refused."""

    reason: str


#: How a daemon's refusal starts when this user has nothing to do (another user's session, say): the
#: agent exits 0 for good, and its LaunchAgent (`KeepAlive: {SuccessfulExit: false}`) stays down.
NOT_NEEDED = "not needed"


def not_needed(uid: int) -> Refuse:
    return Refuse(f"{NOT_NEEDED}: uid {uid} may not check in (the user steps are another user's)")


@dataclass(frozen=True, slots=True)
class Request:
    """Daemon → agent. `deadline` is in seconds from receipt: the two processes share no clock."""

    id: int
    op: Op
    deadline: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Ended:
    """How a script (or an op) ended, as a `Response` and an `Exited` both tell it: `ok` is false
    when it failed or was refused, `error` then says why; `output` is its stdout, `stderr` its
    stderr (each its tail). Given by keyword, after the message's own key."""

    ok: bool
    exit_code: int | None = None
    duration: float = 0.0
    output: str = ""
    error: str | None = None
    stderr: str = ""


def ended_fields(ended: Ended) -> dict[str, Any]:
    """The `Ended` part of a message, by name: to re-tell a `Response` as an `Exited`, or to encode."""
    return {f.name: getattr(ended, f.name) for f in fields(Ended)}


@dataclass(frozen=True, slots=True)
class Response(Ended):
    """Agent → daemon: the answer to the request with this `id`."""

    id: int


@dataclass(frozen=True, slots=True)
class Ping:
    """A heartbeat: answered by a `Pong` with the same id, even while a request runs."""

    id: int


@dataclass(frozen=True, slots=True)
class Pong:
    id: int


@dataclass(frozen=True, slots=True)
class Exited(Ended):
    """Agent → daemon, unasked: the script started in the background for `step_id` ended."""

    step_id: str


Message = Hello | Welcome | Refuse | Request | Response | Ping | Pong | Exited


# --- frames -------------------------------------------------------------------------------------


def encode(message: Message, max_size: int = MAX_FRAME) -> bytes:
    """The frame (header + payload) for `message`; a message over the cap is a bug of ours, refused."""
    payload = json.dumps(
        _to_wire(message), separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")
    if len(payload) > max_size:
        raise ProtocolError(
            f"{_type_of(message)} message of {len(payload)} bytes exceeds the {max_size}-byte cap"
        )
    return _HEADER.pack(len(payload)) + payload


def frame_length(header: bytes, max_size: int = MAX_FRAME) -> int:
    """The payload length a header announces, refused above the cap (before any byte is buffered)."""
    if len(header) != HEADER_SIZE:
        raise ProtocolError(f"a frame header is {HEADER_SIZE} bytes, got {len(header)}")
    (length,) = _HEADER.unpack(header)
    if length > max_size:
        raise ProtocolError(f"frame of {length} bytes exceeds the {max_size}-byte cap")
    if length == 0:
        raise ProtocolError("empty frame")
    return int(length)


def decode(payload: bytes) -> Message:
    """Parse one frame's payload into a message, checking every field."""
    try:
        text = payload.decode("utf-8")
        obj = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"frame is not UTF-8: {exc.reason} at byte {exc.start}") from exc
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"frame is not JSON: {exc.msg} at character {exc.pos}") from exc
    except RecursionError as exc:
        raise ProtocolError("frame is nested too deeply") from exc
    if not isinstance(obj, dict):
        raise ProtocolError(f"a message is a JSON object, got {_json_kind(obj)}")
    kind = obj.get("type")
    parse = _PARSERS.get(kind) if isinstance(kind, str) else None
    if parse is None:
        raise ProtocolError(f"unknown message type {_show(kind)}; expected one of {', '.join(_PARSERS)}")
    return _complete(parse, _Fields(obj, str(kind)))


def negotiate(offered: Sequence[int], supported: Collection[int] = SUPPORTED_VERSIONS) -> int | None:
    """The highest protocol version both sides speak, or None."""
    common = set(offered) & set(supported)
    return max(common) if common else None


def make_op(op: str, args: Mapping[str, Any]) -> Op:
    """Build an op from its wire name and arguments, checked exactly as a received one would be."""
    parse = _OPS.get(op)
    if parse is None:
        raise ProtocolError(f"unknown op {_show(op)}; expected one of {', '.join(_OPS)}")
    return _complete(parse, _Fields(dict(args), f"{op} args", implicit=()))


# --- wire form ------------------------------------------------------------------------------------


def _type_of(message: Message) -> str:
    return _TYPES[type(message)]


def _to_wire(message: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"type": _type_of(message)}
    match message:
        case Hello():
            out |= {"versions": list(message.versions), "agent_version": message.agent_version}
            out["pid"] = message.pid
        case Welcome():
            out |= {"version": message.version, "daemon_version": message.daemon_version}
        case Refuse():
            out["reason"] = message.reason
        case Request():
            out |= {"id": message.id, "op": message.op.name, "args": _op_args(message.op)}
            out["deadline"] = message.deadline
        case Response() | Exited():
            out |= {"id": message.id} if isinstance(message, Response) else {"step_id": message.step_id}
            out |= ended_fields(message)
        case Ping() | Pong():
            out["id"] = message.id
    return out


def _op_args(op: Op) -> dict[str, Any]:
    if isinstance(op, _ScriptOp):
        return {
            "step_id": op.step_id,
            "path": op.path,
            "sha256": op.sha256,
            "args": list(op.args),
            "timeout": op.timeout,
            **({"env": dict(op.env)} if op.env else {}),
        }
    return {}


class _Fields:
    """One received JSON object, read field by field; whatever is left over at the end is refused."""

    def __init__(self, obj: dict[str, Any], where: str, *, implicit: Collection[str] = ("type",)) -> None:
        self._obj = obj
        self._where = where
        self._seen = set(implicit)

    def _get(self, key: str) -> Any:
        self._seen.add(key)
        if key not in self._obj:
            raise ProtocolError(f"{self._where}: missing field {key!r}")
        return self._obj[key]

    def _bad(self, key: str, expected: str, value: object) -> ProtocolError:
        return ProtocolError(f"{self._where}.{key}: expected {expected}, got {_show(value)}")

    def integer(self, key: str, lo: int = 0, hi: int = _MAX_ID) -> int:
        value = self._get(key)
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise self._bad(key, f"an integer in [{lo}, {hi}]", value)
        return value

    def optional_integer(self, key: str) -> int | None:
        if self._obj.get(key, 0) is None:
            self._seen.add(key)
            return None
        return self.integer(key, -(2**31), 2**31)

    def number(self, key: str, *, positive: bool = False) -> float:
        value = self._get(key)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise self._bad(key, "a finite number", value)
        if value < 0 or (positive and value == 0):
            raise self._bad(key, "a positive number" if positive else "a number >= 0", value)
        return float(value)

    def boolean(self, key: str) -> bool:
        value = self._get(key)
        if not isinstance(value, bool):
            raise self._bad(key, "true or false", value)
        return value

    def text(self, key: str, limit: int = _MAX_TEXT, *, nonempty: bool = False) -> str:
        value = self._get(key)
        if not isinstance(value, str) or len(value) > limit or (nonempty and not value):
            raise self._bad(
                key, f"a {'non-empty ' if nonempty else ''}string of at most {limit} characters", value
            )
        return value

    def optional_text(self, key: str) -> str | None:
        if self._obj.get(key, "") is None:
            self._seen.add(key)
            return None
        return self.text(key)

    def optional_output(self, key: str) -> str:
        """A stream of output added after version 1 shipped: an agent that does not send it sent none."""
        if key not in self._obj:
            return ""
        return self.text(key, MAX_OUTPUT)

    def texts(self, key: str) -> tuple[str, ...]:
        value = self._get(key)
        if not isinstance(value, list) or len(value) > _MAX_ARGS:
            raise self._bad(key, f"a list of at most {_MAX_ARGS} strings", value)
        for i, item in enumerate(value):
            if not isinstance(item, str) or len(item) > _MAX_TEXT or "\0" in item:
                raise self._bad(f"{key}[{i}]", "a string without NUL", item)
        return tuple(value)

    def optional_env(self, key: str) -> dict[str, str]:
        """Variable names to values; a bad value is refused without showing it (it is a secret)."""
        if key not in self._obj:
            return {}
        value = self._get(key)
        if not isinstance(value, dict) or len(value) > _MAX_ARGS:
            raise ProtocolError(f"{self._where}.{key}: expected an object of at most {_MAX_ARGS} strings")
        for name, text in value.items():
            if not _ENV_NAME.fullmatch(name) or not isinstance(text, str) or "\0" in text:
                raise ProtocolError(
                    f"{self._where}.{key}: expected NAME: string without NUL, got a bad entry {_show(name)}"
                )
        return dict(value)

    def versions(self, key: str) -> tuple[int, ...]:
        value = self._get(key)
        if (
            not isinstance(value, list)
            or not 0 < len(value) <= _MAX_VERSIONS
            or not all(isinstance(v, int) and not isinstance(v, bool) and 0 < v < 2**16 for v in value)
        ):
            raise self._bad(key, f"a list of 1 to {_MAX_VERSIONS} protocol versions", value)
        return tuple(value)

    def obj(self, key: str) -> _Fields:
        value = self._get(key)
        if not isinstance(value, dict):
            raise self._bad(key, "an object", value)
        return _Fields(value, f"{self._where}.{key}", implicit=())

    def done(self) -> None:
        extra = sorted(set(self._obj) - self._seen)
        if extra:
            raise ProtocolError(f"{self._where}: unknown field {extra[0]!r}")


def _complete(parse: Callable[[_Fields], _T], given: _Fields) -> _T:
    """Parse, then refuse whatever field the parser did not read: every message and op, one rule."""
    parsed = parse(given)
    given.done()
    return parsed


def _hello(f: _Fields) -> Hello:
    return Hello(f.versions("versions"), f.text("agent_version", 64), f.integer("pid", 1, 2**31))


def _welcome(f: _Fields) -> Welcome:
    return Welcome(f.integer("version", 1, 2**16), f.text("daemon_version", 64))


def _refuse(f: _Fields) -> Refuse:
    return Refuse(f.text("reason"))


def _request(f: _Fields) -> Request:
    request_id = f.integer("id")
    op_name = f.text("op", 64)
    parse_op = _OPS.get(op_name)
    if parse_op is None:
        raise ProtocolError(f"request: unknown op {op_name!r}; expected one of {', '.join(_OPS)}")
    op = _complete(parse_op, f.obj("args"))
    return Request(request_id, op, f.number("deadline", positive=True))


def _outcome(f: _Fields) -> dict[str, Any]:
    """The fields of `Ended`, which a `Response` and an `Exited` share."""
    return {
        "ok": f.boolean("ok"),
        "exit_code": f.optional_integer("exit_code"),
        "duration": f.number("duration"),
        "output": f.text("output", MAX_OUTPUT),
        "error": f.optional_text("error"),
        "stderr": f.optional_output("stderr"),
    }


def _response(f: _Fields) -> Response:
    return Response(id=f.integer("id"), **_outcome(f))


def _ping(f: _Fields) -> Ping:
    return Ping(f.integer("id"))


def _pong(f: _Fields) -> Pong:
    return Pong(f.integer("id"))


def _exited(f: _Fields) -> Exited:
    return Exited(step_id=f.text("step_id", 256, nonempty=True), **_outcome(f))


def _start_script(f: _Fields) -> StartScript:
    run = _run_script(f)
    return StartScript(run.step_id, run.path, run.sha256, run.args, run.timeout)


def _run_script(f: _Fields) -> RunScript:
    step_id = f.text("step_id", 256, nonempty=True)
    path = f.text("path", nonempty=True)
    if not path.startswith("/") or "\0" in path:
        raise ProtocolError(f"run_script.path: expected an absolute path without NUL, got {_show(path)}")
    sha256 = f.text("sha256", 64)
    if not is_sha256(sha256):
        raise ProtocolError(f"run_script.sha256: expected 64 lowercase hex digits, got {_show(sha256)}")
    return RunScript(
        step_id, path, sha256, f.texts("args"), f.number("timeout", positive=True), f.optional_env("env")
    )


def _no_args(op: Op) -> Callable[[_Fields], Op]:
    return lambda _f: op


_PARSERS: dict[str, Callable[[_Fields], Message]] = {
    "hello": _hello,
    "welcome": _welcome,
    "refuse": _refuse,
    "request": _request,
    "response": _response,
    "ping": _ping,
    "pong": _pong,
    "exited": _exited,
}
_TYPES: dict[type, str] = {
    Hello: "hello",
    Welcome: "welcome",
    Refuse: "refuse",
    Request: "request",
    Response: "response",
    Ping: "ping",
    Pong: "pong",
    Exited: "exited",
}
_OPS: dict[str, Callable[[_Fields], Op]] = {
    "run_script": _run_script,
    "start_script": _start_script,
    "ping": _no_args(PingOp()),
    "shutdown": _no_args(ShutdownOp()),
}


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ProtocolError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _no_constants(name: str) -> None:
    raise ProtocolError(f"{name} is not valid JSON")


def _json_kind(value: object) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


def _show(value: object) -> str:
    """A short, safe rendering of untrusted input for an error message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
