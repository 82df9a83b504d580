"""A stage ends with `dvc repro`: killing dvc with SIGKILL must not leave the stage running."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

# Like every stage script: set up first, then work, then write the output.
STAGE = '''
import os, sys, time
from rnnlm.lifecycle import exit_with_parent

exit_with_parent()
with open("stage.pid", "w") as f:
    f.write(str(os.getpid()))
time.sleep(float(sys.argv[1]))
with open("out.txt", "w") as f:
    f.write("written after the sleep")
'''

DVC_YAML = """stages:
  slow:
    cmd: {python} stage.py 6
    deps: [stage.py]
    outs: [out.txt]
"""


def alive(pid):
    """True while ``pid`` runs (a zombie, dead but not yet reaped by init, counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:  # gone: no such file, or ESRCH when it ends between open() and read()
        return False


def parent_of(pid):
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


# DVC runs `$SHELL -c cmd` (`/bin/sh` where SHELL is unset). bash execs a single command, so the
# stage is dvc's own child; dash (Debian's /bin/sh) forks and waits, so a shell stays in between.
SHELLS = sorted({os.path.realpath(shell) for shell in ("/bin/sh", "/bin/dash", "/bin/bash")
                 if os.path.exists(shell)})


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux only")
@pytest.mark.parametrize("shell", SHELLS)
def test_killing_dvc_repro_ends_the_stage_and_nothing_is_written(tmp_path, shell):
    (tmp_path / "stage.py").write_text(STAGE)
    (tmp_path / "dvc.yaml").write_text(DVC_YAML.format(python=sys.executable))
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"]):
        subprocess.run(cmd, cwd=tmp_path, check=True)
    env = dict(os.environ, DVC_NO_ANALYTICS="1", SHELL=shell)
    dvc = subprocess.Popen(["dvc", "repro"], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    pid_file = tmp_path / "stage.pid"
    deadline = time.monotonic() + 120  # dvc starts slowly on a loaded machine
    while not pid_file.is_file() or not pid_file.read_text():
        assert dvc.poll() is None and time.monotonic() < deadline, "the stage never started"
        time.sleep(0.1)
    stage = int(pid_file.read_text())
    between = [] if parent_of(stage) == dvc.pid else [parent_of(stage)]
    assert not between or parent_of(between[0]) == dvc.pid, "the stage is neither dvc's child nor its shell's"
    dvc.send_signal(signal.SIGKILL)
    dvc.wait()
    for _ in range(50):
        if not alive(stage) and not any(map(alive, between)):
            break
        time.sleep(0.1)
    assert not alive(stage), "the stage outlived dvc"
    assert not any(map(alive, between)), "the shell between dvc and the stage outlived dvc"
    time.sleep(7)  # past the stage's sleep: had it survived, out.txt would be there now
    assert not (tmp_path / "out.txt").exists()
