from __future__ import annotations

import os
import socket
import sys

import pytest

from bootstrapper.ipc.peercred import executable_of, peer_credentials


def test_kernel_reports_our_own_credentials_over_a_socketpair() -> None:
    a, b = socket.socketpair(socket.AF_UNIX)
    with a, b:
        cred = peer_credentials(a)
    assert (cred.pid, cred.uid, cred.gid) == (os.getpid(), os.getuid(), os.getgid())


def test_a_socket_without_a_peer_has_no_credentials_to_trust() -> None:
    with socket.socket(socket.AF_INET) as s, pytest.raises(OSError, match="no peer credentials"):
        peer_credentials(s)


@pytest.mark.skipif(sys.platform != "linux", reason="/proc/<pid>/exe is Linux; macOS uses proc_pidpath")
def test_executable_of_names_the_running_interpreter() -> None:
    assert executable_of(os.getpid()) == os.path.realpath(sys.executable)


def test_executable_of_a_missing_process_is_none() -> None:
    assert executable_of(2**22 + 12345) is None
