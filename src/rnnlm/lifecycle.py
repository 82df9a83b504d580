"""Processes that end with their parent: stage scripts under `dvc repro`, and the seed workers.

Ctrl-C reaches every process of the terminal's foreground group, but a SIGKILL reaches only the
process it names. Without this, killing `dvc repro` (or a stage) with SIGKILL would leave the
stage (or its workers) training and later writing outputs that nobody waits for, while a second
`dvc repro` trains the same model beside it. Linux's PR_SET_PDEATHSIG has the kernel send the
child a signal when its parent dies.

DVC runs a stage's `cmd` through `$SHELL -c` (`/bin/sh` where SHELL is unset). bash `exec`s a
single command, so the stage's parent is `dvc` itself; dash (Debian's `/bin/sh`) forks instead and
waits, and a shell outlives its own parent. So where the parent is a shell, the stage also watches
the first ancestor that is not one (`dvc`) through a pidfd, and ends when that one does.
"""

import ctypes
import os
import select
import signal
import threading
import time

_PR_SET_PDEATHSIG = 1
SHELLS = frozenset({"sh", "dash", "bash", "zsh", "ksh", "mksh", "fish", "busybox"})


def _stat(pid):
    """(command name, parent pid) of ``pid`` from /proc, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    name = text[text.index("(") + 1 : text.rindex(")")]
    return name, int(text.rsplit(")", 1)[1].split()[1])


def first_non_shell_ancestor(pid):
    """The nearest ancestor of ``pid`` that is not a shell (None if the chain ends first)."""
    stat = _stat(pid)
    while stat is not None:
        parent = stat[1]
        if parent <= 1:
            return None
        stat = _stat(parent)
        if stat is not None and stat[0] not in SHELLS:
            return parent
    return None


def _wait_for_exit(pid):
    """Block until ``pid`` ends: a pidfd is readable then (Linux 5.3+); older kernels poll."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    except (AttributeError, OSError):
        while _stat(pid) is not None:
            time.sleep(0.5)
        return
    try:
        select.select([fd], [], [])
    finally:
        os.close(fd)


def _end_with(pid, sig):
    """Send ``sig`` to this process once ``pid`` ends (from a daemon thread)."""
    me = os.getpid()

    def watch():
        _wait_for_exit(pid)
        os.kill(me, sig)

    threading.Thread(target=watch, name=f"exit-with-{pid}", daemon=True).start()


def exit_with_parent(sig=signal.SIGKILL):
    """End this process with ``sig`` when its parent dies, or (behind a shell) the shell's caller.

    Call it first thing in a child process. If the parent already died before the call (the child
    was re-parented to init), exit at once, since the kernel will never send the signal then.
    No-op outside Linux.
    """
    parent = os.getppid()
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(sig))
    except (OSError, AttributeError):
        return  # not Linux (glibc): nothing to set up
    if os.getppid() != parent:
        os.kill(os.getpid(), sig)
    caller = first_non_shell_ancestor(os.getpid())
    if caller not in (None, parent):  # shells stand between, and a shell outlives its own parent
        _end_with(caller, sig)
