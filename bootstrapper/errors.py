"""The exception tree and the exit codes it maps to.

Every error a user can cause or meet is a `BootstrapperError` with a one-line message that names the
input and how to fix it. The CLI is the single place that turns these into exit codes; anything else
that escapes is a bug, reported as "unexpected error" with the traceback in the log.
"""

from __future__ import annotations

import os
from enum import IntEnum
from typing import Any, ClassVar


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1
    USAGE = 2
    UNEXPECTED = 3
    INTERRUPTED = 130


class BootstrapperError(Exception):
    """Base of every expected failure; `str(err)` is the one line shown to the user."""

    exit_code: ExitCode = ExitCode.FAILED


# --- bad input: exit 2 -------------------------------------------------------------------------


class UsageError(BootstrapperError):
    """The command line, a file or a value given to us is wrong; fixing the input fixes it."""

    exit_code = ExitCode.USAGE


class ConfigError(UsageError):
    """A setting has a bad value; the message names the key, its source and what is expected."""


class ManifestError(UsageError):
    """A manifest is invalid. Carries every problem found, not just the first."""

    def __init__(self, problems: list[str], source: str = "", details: list[Any] | None = None) -> None:
        self.problems = problems
        self.source = source
        #: The same problems as positioned objects (manifest.model.Problem), and the warnings.
        self.details: list[Any] = details or []
        self.warnings: list[Any] = []
        head = problems[0] if problems else f"{source}: invalid manifest"
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(head + more)


class SignatureError(ManifestError):
    """A manifest's minisign signature is missing, malformed, untrusted, wrong, expired or rolled back."""

    def __init__(self, message: str, source: str = "") -> None:
        super().__init__([message], source)


class PackageError(UsageError):
    """A file is not a readable macOS flat package, or is hostile (traversal, bad checksum)."""


# --- the run failed: exit 1 --------------------------------------------------------------------


class RunError(BootstrapperError):
    """A bootstrap step or run failed; the message says which and why."""


class CommandError(RunError):
    """A subprocess failed; carries its argv, exit code and the tail of its output."""

    def __init__(self, argv: list[str], returncode: int | None, tail: str, reason: str = "") -> None:
        self.argv = argv
        self.returncode = returncode
        self.tail = tail
        what = reason or f"exited with {returncode}"
        last = tail.strip().splitlines()[-1] if tail.strip() else ""
        super().__init__(f"{argv[0]} {what}" + (f": {last}" if last else ""))


class FetchError(RunError):
    """A download failed. Subclasses say whether a retry can help."""

    #: A later attempt may get past it: the one fact every retry loop asks (see fetch/retry.py).
    retryable: ClassVar[bool] = False


class TransferError(FetchError):
    """The transfer failed (connection, timeout, 429/5xx): worth retrying."""

    retryable = True


class IntegrityError(FetchError):
    """The bytes are wrong (hash, size): the file is discarded."""


class HTTPStatusError(FetchError):
    """The server refused (4xx other than 408/425/429): retrying will not help."""


class UnsafePathError(RunError):
    """A path root must not act on (another user could change it), or could not be walked safely."""

    def __init__(self, path: os.PathLike[str] | str, why: str) -> None:
        self.path = os.fspath(path)
        self.why = why
        super().__init__(f"{self.path}: {why}")


class PlatformError(RunError):
    """An OS operation (installer, launchctl, pkgutil) failed."""


class IPCError(RunError):
    """The daemon-agent channel failed: no agent, a deadline passed, the peer went away."""


class ProtocolError(IPCError):
    """A peer sent a malformed, oversized or unexpected message."""


class LockedError(RunError):
    """Another daemon holds the state lock."""


# --- the daemon-agent channel (ipc/): subclasses of IPCError ----------------------------------


class NoAgentError(IPCError):
    """No agent checked in for a user within the deadline: the user may not be logged in."""


class AgentUnresponsiveError(IPCError):
    """An agent did not answer within a request's deadline; the daemon dropped it and carries on."""


class AgentDisconnectedError(IPCError):
    """The agent's connection closed before it answered (killed, replaced, or it broke protocol)."""


class NoUserError(IPCError):
    """Nobody logged in within `user_wait_timeout`."""


class DaemonAbsentError(IPCError):
    """Nothing is listening yet (the daemon has not started, or is restarting): try again later."""


class DaemonBusyError(DaemonAbsentError):
    """The daemon's queue of connections is full (busy, or flooded by another user): try again soon,
    since a slot frees as soon as the daemon accepts the next connection."""


class NotNeededError(IPCError):
    """The daemon has no work for this user's agent: it exits 0 and is not started again."""


class ImpostorError(IPCError):
    """The socket's owner is not the expected daemon uid; nothing was sent to it."""


class ScriptRefusedError(IPCError):
    """The script at the requested path is not the one the daemon verified, or is not safe to run."""


# --- download failures in detail: raised by bootstrapper/fetch (owned by the fetch package) ----------


class HashMismatchError(IntegrityError):
    """The bytes hash to something else (a captive portal's page, a changed file, a wrong manifest).

    Retryable: a captive portal's page is fetched again from zero, never kept."""

    retryable = True

    def __init__(self, message: str, expected: str, actual: str) -> None:
        super().__init__(message)
        self.expected = expected
        self.actual = actual


class SizeLimitError(IntegrityError):
    """More bytes arrived than the item's size or the cap allows; cut while streaming."""


class RetryableStatusError(TransferError):
    """408/425/429/5xx: the server may recover; carries its Retry-After in seconds, if any."""

    #: The statuses a later attempt may get past; every other 4xx is final.
    STATUSES: ClassVar[frozenset[int]] = frozenset({408, 425, 429}) | frozenset(range(500, 600))

    def __init__(self, message: str, status: int, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class SlowTransferError(TransferError):
    """Less than the minimum rate arrived during a whole window (a slow-loris server)."""


class ClientStatusError(HTTPStatusError):
    """A 4xx that retrying cannot fix (400/401/403/404/410...); carries the status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class UnsafeURLError(FetchError):
    """A URL or redirect we refuse: plain http, credentials inside it, a loop, too many hops."""


class CertificateError(FetchError):
    """The server's TLS certificate is not trusted; a retry will not help, a CA bundle may."""


class DiskFullError(FetchError):
    """Too little free space before, or ENOSPC during, a download; nothing partial is left in place."""


class StagingError(FetchError):
    """The staging folder is unsafe (a symlink, owned by someone else) or unusable."""


# --- engine state and progress: the state file, the lock and the sinks ------------------------------------


class StateError(RunError):
    """The state file cannot be read: truncated, not JSON, or written by an unknown version."""


class NoStateError(UsageError):
    """There is no state file to report on: no run has started under this root."""


# --- the OS seam (platform/): subclasses of PlatformError --------------------------------------


class InstallError(PlatformError):
    """`installer` (or the sandbox's install) failed; carries its exit code and failure reason."""

    def __init__(self, message: str, returncode: int | None, reason: str = "", tail: str = "") -> None:
        super().__init__(message)
        self.returncode = returncode
        self.reason = reason
        self.tail = tail


class LaunchdError(PlatformError):
    """A launchctl operation failed in a way that is not "already done"; carries the exit code."""

    def __init__(self, message: str, returncode: int | None, target: str = "") -> None:
        super().__init__(message)
        self.returncode = returncode
        self.target = target


class ServiceNotLoadedError(LaunchdError):
    """kickstart or print of a service launchd does not have loaded (exit 113, or 3 on older macOS)."""
