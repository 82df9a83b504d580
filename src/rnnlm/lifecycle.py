"""Processes that end with their parent: stage scripts under `dvc repro`, and the seed workers.

Ctrl-C reaches every process of the terminal's foreground group, but a SIGKILL reaches only the
process it names. Without this, killing `dvc repro` (or a stage) with SIGKILL would leave the
stage (or its workers) training and later writing outputs that nobody waits for, while a second
`dvc repro` trains the same model beside it. Linux's PR_SET_PDEATHSIG has the kernel send the
child a signal when its parent dies. DVC runs a stage's `cmd` through a shell (`/bin/sh -c`), and
the shell `exec`s a simple command, so the stage's parent is the `dvc` process itself; where a
shell stays in between, its own death ends the stage the same way.
"""

import ctypes
import os
import signal

_PR_SET_PDEATHSIG = 1


def exit_with_parent(sig=signal.SIGKILL):
    """Have Linux send ``sig`` to this process when its parent dies (no-op elsewhere).

    Call it first thing in a child process. If the parent already died before the call (the child
    was re-parented to init), exit at once, since the kernel will never send the signal then.
    """
    parent = os.getppid()
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(sig))
    except (OSError, AttributeError):
        return  # not Linux (glibc): nothing to set up
    if os.getppid() != parent:
        os.kill(os.getpid(), sig)
