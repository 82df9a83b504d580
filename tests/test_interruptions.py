"""Killing a stage at any moment never leaves a truncated output behind.

The kills land where they matter, deterministically: the training process is stopped *inside*
``rnnlm.io.atomic_write`` while it rewrites its checkpoint (half of the new checkpoint's bytes in the
temporary file, or all of them with the rename still to come). There it tells the test through a
pipe and waits; the test kills it then. No sleep decides when a kill lands.
"""

import json
import os
import select
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from rnnlm.checkpoint import read_checkpoint
from rnnlm.errors import UserError
from rnnlm.io import atomic_write, remove_stale_temporaries, write_json

ROOT = Path(__file__).resolve().parents[1]

# A training run on a toy corpus that rewrites its checkpoint every (short) epoch. Arguments: the
# checkpoint, the pipe to signal on, where to stop (``content``: half the new checkpoint written into
# atomic_write's temporary file; ``rename``: all of it, before the rename), and at which checkpoint
# write of this run (1: the first).
TRAIN_SCRIPT = textwrap.dedent("""
    import io, os, signal, sys
    import torch
    from rnnlm.data import encode_split
    from rnnlm.errors import exit_on_user_error
    from rnnlm.training import train_model
    from rnnlm.vocab import Vocabulary
    from tests.configs import train_config  # the subprocess starts in the repository root

    path, pipe, point, stop_at = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    writes = 0

    def stop_here():
        os.write(pipe, b"!")  # the test kills this process now
        while True:
            signal.pause()

    real_save, real_replace = torch.save, os.replace

    def save(obj, f, *args, **kwargs):  # inside atomic_write: f is its temporary file
        global writes
        writes += 1
        if point != "content" or writes != stop_at:
            return real_save(obj, f, *args, **kwargs)
        buffer = io.BytesIO()
        real_save(obj, buffer, *args, **kwargs)
        data = buffer.getvalue()
        f.write(data[: len(data) // 2])
        f.flush()
        stop_here()

    def replace(src, dst):  # atomic_write's last step: the temporary file over the checkpoint
        if point == "rename" and os.path.abspath(dst) == os.path.abspath(path) and writes == stop_at:
            stop_here()
        return real_replace(src, dst)

    torch.save, os.replace = save, replace
    names = ["emma", "olivia", "ava", "isabella", "sophia", "mia", "amelia", "harper"] * 30
    vocab = Vocabulary.build(names, "char")
    splits = {s: encode_split(vocab, names) for s in ("train", "dev", "test")}
    cfg = train_config(embedding_size=16, hidden_size=16, batch_size=8, epochs=1000, workers=1, resume=True,
                      scheduler="cosine", warmup=0.01)
    exit_on_user_error(train_model)("gru", cfg, vocab, splits, 0, path, progress=False)
""")


def default_sigint():
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def train_until(folder, point, write):
    """Start the toy training run (resuming from ``folder``/run.pt if it can) and return ``(process, path)``
    once it stands at ``point`` of its ``write``-th checkpoint write."""
    path = folder / "run.pt"
    read, write_end = os.pipe()
    # A shell's background job inherits SIGINT ignored, and Python keeps it so: restore the default.
    proc = subprocess.Popen([sys.executable, "-u", "-c", TRAIN_SCRIPT, str(path), str(write_end), point, str(write)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_sigint, pass_fds=(write_end,))
    os.close(write_end)  # the child's copy is the only one left: its exit reads as end of file
    try:
        ready, _, _ = select.select([read], [], [], 120)  # a deadline for a broken run, not a synchronization
        signalled = os.read(read, 1) if ready else b""
    finally:
        os.close(read)
    if signalled != b"!":
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"training never reached {point} of checkpoint write {write}: {out}{err}")
    return proc, path


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name != "run.pt")


@pytest.mark.parametrize("point", ["content", "rename"])
def test_sigkill_inside_atomic_write_leaves_the_previous_checkpoint_whole(tmp_path, point):
    proc, path = train_until(tmp_path, point, write=2)  # epoch 1's checkpoint is on disk, epoch 2's being written
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    payload = read_checkpoint(path)  # raises if the file were truncated or corrupt
    assert payload["training"]["epochs_done"] == 1  # the previous checkpoint, untouched
    assert not payload["training"]["complete"] and "optimizer" in payload
    assert payload["scheduler"]["last_epoch"] > 0 and "best_model" in payload  # everything a resume needs
    # what the killed write leaves is atomic_write's hidden temporary file, never a file by the checkpoint's name
    (temporary,) = leftovers(tmp_path)
    assert temporary.startswith(".run.pt.") and temporary.endswith(".tmp")
    if point == "content":  # half a checkpoint: unreadable, which is why it never takes the checkpoint's name
        with pytest.raises(UserError, match="not a readable checkpoint"):
            read_checkpoint(tmp_path / temporary)
    else:  # the whole new checkpoint, never renamed
        assert read_checkpoint(tmp_path / temporary)["training"]["epochs_done"] == 2
    remove_stale_temporaries(tmp_path)  # what the train stage does before it starts again
    assert leftovers(tmp_path) == []


def test_sigint_inside_atomic_write_exits_cleanly_and_the_run_resumes(tmp_path):
    proc, path = train_until(tmp_path, "rename", write=2)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "Traceback" not in stderr and stderr.strip().endswith("interrupted")
    assert read_checkpoint(path)["training"]["epochs_done"] == 1 and leftovers(tmp_path) == []  # cleaned up
    # the same run again, with resume on: it continues after epoch 1, and its second write is epoch 3's
    proc, _ = train_until(tmp_path, "rename", write=2)
    proc.send_signal(signal.SIGINT)
    stdout, _ = proc.communicate(timeout=60)
    assert "after epoch 1" in stdout
    assert read_checkpoint(path)["training"]["epochs_done"] == 2


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "metrics.json"
    write_json(path, {"loss": 1.0})
    with pytest.raises(RuntimeError):
        with atomic_write(path) as f:
            f.write('{"loss": ')
            raise RuntimeError("killed mid-write")
    assert json.loads(path.read_text()) == {"loss": 1.0}
    assert os.listdir(tmp_path) == ["metrics.json"]  # no temporary file left behind


PARALLEL_SCRIPT = textwrap.dedent("""
    import sys
    from pathlib import Path
    from rnnlm.data import encode_split
    from rnnlm.training import train_runs
    from rnnlm.vocab import Vocabulary
    from tests.configs import train_config  # the subprocess starts in the repository root

    names = ["emma", "olivia", "ava", "isabella", "sophia", "mia", "amelia", "harper"] * 30
    vocab = Vocabulary.build(names, "char")
    splits = {s: encode_split(vocab, names) for s in ("train", "dev", "test")}
    cfg = train_config(embedding_size=16, hidden_size=16, batch_size=8, epochs=1000, seeds=[0, 1], workers=2)
    train_runs([("gru", cfg, s, Path(sys.argv[1]) / f"seed{s}.pt", None) for s in cfg.seeds], vocab, splits, workers=2)
""")


def test_killing_the_stage_stops_its_training_workers(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", PARALLEL_SCRIPT, str(tmp_path)], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while not all((tmp_path / f"seed{s}.pt").exists() for s in (0, 1)):
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(1.0)
    stamps = {s: (tmp_path / f"seed{s}.pt").stat().st_mtime_ns for s in (0, 1)}
    time.sleep(2.0)  # an orphaned worker would rewrite its checkpoint every few tenths of a second
    assert {s: (tmp_path / f"seed{s}.pt").stat().st_mtime_ns for s in (0, 1)} == stamps
