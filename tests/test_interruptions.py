"""Killing a stage at any moment never leaves a truncated output behind."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from rnnlm.checkpoint import read_checkpoint
from rnnlm.io import atomic_write, write_json

ROOT = Path(__file__).resolve().parents[1]

# A training run on a toy corpus that rewrites its checkpoint every (short) epoch.
TRAIN_SCRIPT = textwrap.dedent("""
    import sys
    from rnnlm.data import encode_split
    from rnnlm.errors import exit_on_user_error
    from rnnlm.training import train_model
    from rnnlm.vocab import Vocabulary
    from tests.configs import train_config  # the subprocess starts in the repository root

    names = ["emma", "olivia", "ava", "isabella", "sophia", "mia", "amelia", "harper"] * 30
    vocab = Vocabulary.build(names, "char")
    splits = {s: encode_split(vocab, names) for s in ("train", "dev", "test")}
    cfg = train_config(embedding_size=16, hidden_size=16, batch_size=8, epochs=1000, workers=1, resume=True,
                      scheduler="cosine", warmup=0.01)
    exit_on_user_error(train_model)("gru", cfg, vocab, splits, 0, sys.argv[1], progress=False)
""")


def default_sigint():
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_training(tmp_path):
    path = tmp_path / "run.pt"
    # A shell's background job inherits SIGINT ignored, and Python keeps it so: restore the default.
    proc = subprocess.Popen([sys.executable, "-c", TRAIN_SCRIPT, str(path)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    deadline = time.time() + 60
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, "training never wrote a checkpoint"
        time.sleep(0.05)
    return proc, path


@pytest.mark.parametrize("delay", [0.0, 0.13, 0.29, 0.41])
def test_sigkill_never_leaves_a_truncated_checkpoint(tmp_path, delay):
    proc, path = start_training(tmp_path)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    payload = read_checkpoint(path)  # raises if the file were truncated or corrupt
    assert payload["training"]["epochs_done"] >= 1
    assert not payload["training"]["complete"] and "optimizer" in payload
    assert payload["scheduler"]["last_epoch"] > 0 and "best_model" in payload  # everything a resume needs


def test_sigint_exits_cleanly_and_the_run_resumes(tmp_path):
    proc, path = start_training(tmp_path)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "Traceback" not in stderr and stderr.strip().endswith("interrupted")
    done = read_checkpoint(path)["training"]["epochs_done"]
    proc, _ = start_training(tmp_path)  # the same run again, with resume on
    deadline = time.time() + 60
    while read_checkpoint(path)["training"]["epochs_done"] <= done:  # wait for an epoch past it
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, _ = proc.communicate(timeout=60)
    assert f"after epoch {done}" in stdout
    assert read_checkpoint(path)["training"]["epochs_done"] > done


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
