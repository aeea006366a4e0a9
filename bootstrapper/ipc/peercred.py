"""Who is at the other end of a Unix socket, according to the kernel (never according to the peer).

Linux: `SO_PEERCRED` (pid, uid, gid, taken at connect/listen time). macOS: `LOCAL_PEERCRED`
(a `struct xucred`) and `LOCAL_PEERPID`, whose values CPython does not export, so they are hard-coded
from `<sys/un.h>`; the peer's executable comes from `proc_pidpath` in libproc. The macOS half cannot
run on the Linux CI: it is kept small, and each constant is documented with its header.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import socket
import struct
import sys
from dataclasses import dataclass
from typing import Protocol

#: <sys/un.h>: `#define SOL_LOCAL 0`, `#define LOCAL_PEERCRED 0x001`, `#define LOCAL_PEERPID 0x002`.
_SOL_LOCAL = 0
_LOCAL_PEERCRED = 0x001
_LOCAL_PEERPID = 0x002
#: <sys/ucred.h>: struct xucred { u_int cr_version; uid_t cr_uid; short cr_ngroups; gid_t cr_groups[16]; }
_XUCRED = struct.Struct("=IIh2x16I")
_XUCRED_VERSION = 0
#: <sys/proc_info.h>: PROC_PIDPATHINFO_MAXSIZE = 4 * MAXPATHLEN.
_PROC_PIDPATHINFO_MAXSIZE = 4096
#: <sys/socket.h> on Linux: struct ucred { pid_t pid; uid_t uid; gid_t gid; }
_UCRED = struct.Struct("=iII")
#: What Linux reports for a socket without a peer: (uid_t)-1, which must never match a real uid.
_NO_UID = 2**32 - 1


class _Sockopt(Protocol):
    """A real socket or asyncio's `TransportSocket`: both answer getsockopt."""

    def getsockopt(self, level: int, optname: int, buflen: int, /) -> bytes: ...


@dataclass(frozen=True, slots=True)
class PeerCred:
    pid: int | None
    uid: int
    gid: int


def peer_credentials(sock: _Sockopt) -> PeerCred:
    """The connected peer's credentials; `OSError` when the platform cannot tell (then refuse it)."""
    if sys.platform == "darwin":
        raw = sock.getsockopt(_SOL_LOCAL, _LOCAL_PEERCRED, _XUCRED.size)
        version, uid, ngroups, *groups = _XUCRED.unpack(raw[: _XUCRED.size])
        if version != _XUCRED_VERSION or ngroups < 1:
            raise OSError(f"unexpected xucred (version {version}, {ngroups} groups)")
        (pid,) = struct.unpack("=i", sock.getsockopt(_SOL_LOCAL, _LOCAL_PEERPID, 4)[:4])
        return PeerCred(pid=pid or None, uid=uid, gid=groups[0])
    so_peercred = getattr(socket, "SO_PEERCRED", None)
    if so_peercred is None:
        raise OSError(f"peer credentials are not supported on {sys.platform}")
    pid, uid, gid = _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, so_peercred, _UCRED.size))
    if uid == _NO_UID:
        raise OSError("the socket has no peer credentials (not a connected Unix socket)")
    return PeerCred(pid=pid or None, uid=uid, gid=gid)


def executable_of(pid: int) -> str | None:
    """The executable a process runs (macOS `proc_pidpath`, Linux `/proc/<pid>/exe`), or None.

    Used to check that the peer is the installed agent. A pid can be reused after its process exits,
    so this narrows who may check in; the uid from the kernel remains the authentication.
    """
    if sys.platform == "darwin":
        return _proc_pidpath(pid)
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None


def _proc_pidpath(pid: int) -> str | None:
    name = ctypes.util.find_library("proc") or "/usr/lib/libproc.dylib"
    try:
        libproc = ctypes.CDLL(name, use_errno=True)
    except OSError:
        return None
    buf = ctypes.create_string_buffer(_PROC_PIDPATHINFO_MAXSIZE)
    size = libproc.proc_pidpath(ctypes.c_int(pid), buf, ctypes.c_uint32(_PROC_PIDPATHINFO_MAXSIZE))
    if size <= 0:
        return None
    return os.fsdecode(buf.raw[:size])
