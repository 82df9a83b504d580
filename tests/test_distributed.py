"""Data-parallel training: 2 CPU processes (gloo) through the real train stage, on a toy corpus."""

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from rnnlm.checkpoint import read_checkpoint
from rnnlm.curves import read_corpus_curves
from rnnlm.data import encode_split, save_encoded
from rnnlm.distributed import Shard
from rnnlm.streams import StreamChunks, StreamPlan
from rnnlm.vocab import Vocabulary
from tests.configs import PLAIN_TRAIN, params_section

ROOT = Path(__file__).resolve().parents[1]
STAGE = ROOT / "stages" / "train.py"

# 41 training items: with global batches of 8 the last holds 1 item, so rank 1 has a stand-in step.
NAMES = ["emma", "olivia", "ava", "isabella", "sophia", "mia", "amelia", "harper", "evelyn", "abigail",
         "emily", "ella", "elizabeth", "camila", "luna", "sofia", "avery", "mila", "aria", "scarlett",
         "penelope", "layla", "chloe", "victoria", "madison", "eleanor", "grace", "nora", "riley", "zoey",
         "hannah", "hazel", "lily", "ellie", "violet", "lillian", "zoe", "stella", "aurora", "natalie",
         "emilia", "everly", "leah", "aubrey", "willow"]


@pytest.fixture
def project(tmp_path):
    """A folder with the train stage's inputs and a params.yaml (SGD, no clipping: scale errors show)."""
    vocab = Vocabulary.build(NAMES, "char")
    vocab.save(tmp_path / "vocab.json")
    save_encoded(tmp_path / "encoded.npz", {"train": encode_split(vocab, NAMES[:41]),
                                           "dev": encode_split(vocab, NAMES[41:]),
                                           "test": encode_split(vocab, NAMES[41:])})
    return tmp_path


def stage_args(project, out, **train):
    """The train stage's arguments, its params.yaml written with ``train`` changed (SGD, no clipping)."""
    params = {"corpora": {"names": "names.txt"}, "kinds": {"names": ["gru"]}, "train": {"names": params_section("train") | PLAIN_TRAIN | dict(embedding_size=8, hidden_size=8, optimizer="sgd", lr=0.5, grad_clip=None,
                                      epochs=2, seeds=[0], workers=1) | train}}
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    return [str(STAGE), "--corpus", "names", "--vocab", "vocab.json", "--encoded", "encoded.npz", "--models-dir", out,
            "--live-dir", f"{out}-live", "--curves", f"{out}-curves.csv", "--progress", f"{out}-training.json",
            "--speed", f"{out}-speed.json"]


def run_stage(project, out, env=None, **train):
    return subprocess.run([sys.executable, *stage_args(project, out, **train)], cwd=project, capture_output=True,
                          text=True, timeout=300, env=os.environ | (env or {}))


def weights(path):
    return read_checkpoint(path)["model"]


def test_two_processes_with_batch_b_equal_one_process_with_batch_2b(project):
    two = run_stage(project, "two", nproc=2, batch_size=4)
    assert two.returncode == 0, two.stderr
    assert "training in 2 data-parallel processes" in two.stdout
    one = run_stage(project, "one", nproc=1, batch_size=8)
    assert one.returncode == 0, one.stderr
    small = run_stage(project, "small", nproc=1, batch_size=4)
    assert small.returncode == 0, small.stderr

    a, b, c = (weights(project / name / "gru.pt") for name in ("two", "one", "small"))
    for name in b:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6)
    # the comparison can tell batch sizes apart: batch 4 in one process ends elsewhere
    assert any(not torch.allclose(c[name], b[name], atol=1e-3) for name in b)
    # the loss curve is the whole epoch's, summed over both processes
    curves = [np.array(read_corpus_curves(project / f"{name}-curves.csv")["gru"]) for name in ("two", "one")]
    np.testing.assert_allclose(curves[0], curves[1], rtol=1e-5)
    record = read_checkpoint(project / "one" / "gru.pt")["training"]
    assert read_checkpoint(project / "two" / "gru.pt")["training"]["train_tokens"] == record["train_tokens"]


# Loaded by every Python process of the run (PYTHONPATH): rank 1 fails at its second step, as FAULT says.
FAULT_IN_RANK_1 = textwrap.dedent("""
    import os, signal
    if os.environ.get("RANK") == "1":
        from rnnlm import distributed
        from rnnlm.errors import UserError
        step = distributed.Shard.token_losses
        calls = []
        def failing_step(self, *args, **kwargs):
            calls.append(1)
            if len(calls) == 2 and os.environ["FAULT"] == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            if len(calls) == 2:
                raise UserError("no space left on device (a stand-in for any error a user can fix)")
            return step(self, *args, **kwargs)
        distributed.Shard.token_losses = failing_step
""")


def run_with_fault(project, fault):
    hooks = project / "hooks"
    hooks.mkdir(exist_ok=True)
    (hooks / "sitecustomize.py").write_text(FAULT_IN_RANK_1)
    return run_stage(project, "out", env={"PYTHONPATH": str(hooks), "FAULT": fault}, nproc=2, batch_size=4)


def test_a_killed_process_fails_the_stage_in_one_line_leaving_no_output(project):
    result = run_with_fault(project, "kill")
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: training process 1 of 2 failed: killed by SIGKILL; "
                                     "the other processes were stopped"), result.stderr
    out = project / "out"
    # killed in the first epoch: no checkpoint, no curve, and no temporary file half-written
    leftovers = sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) if out.exists() else []
    assert leftovers in ([], ["gru.seeds"]), leftovers


def test_a_user_error_in_a_process_is_reported_with_its_own_message(project):
    result = run_with_fault(project, "error")
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: training process 1 of 2 failed: no space left on device (a stand-in "
                                     "for any error a user can fix); the other processes were stopped")


def test_each_process_takes_a_disjoint_part_of_every_global_batch():
    batches = [np.arange(0, 8), np.arange(8, 16), np.arange(16, 19), np.arange(19, 20)]
    shards = [Shard(rank, 3) for rank in range(3)]
    parts = [shard.local_batches(batches) for shard in shards]
    for step, batch in enumerate(batches[:3]):
        assert sorted(np.concatenate([p[step] for p in parts])) == list(batch)
    # one item for three processes: two of them stand in, with that item, at weight 0
    assert [p[3].tolist() for p in parts] == [[19], [19], [19]]
    assert [s._standins for s in shards] == [[False] * 4, [False] * 3 + [True], [False] * 3 + [True]]


def test_each_process_reads_its_own_contiguous_rows_of_every_stream_chunk():
    chunks = StreamChunks(np.arange(40), StreamPlan(offset=1, columns=6, lengths=[3, 2, 1]), batch_size=6)
    parts = [Shard(rank, 3).local_rows(chunks) for rank in range(3)]
    for step, (cx, cy, _) in enumerate(chunks):
        assert torch.equal(torch.cat([p[step][0] for p in parts]), cx)   # rows 0-1, 2-3, 4-5: in order
        assert torch.equal(torch.cat([p[step][1] for p in parts]), cy)
        assert [p[step][2] for p in parts] == [2 * cx.shape[1]] * 3
    assert parts[1][0][0].tolist() == [[13, 14, 15], [19, 20, 21]]   # rows 2 and 3 start 1 + 2 * 6 and 1 + 3 * 6 in


@pytest.fixture
def stream_project(tmp_path):
    """The train stage's inputs for a stream (a small play, char level)."""
    from tests.test_streams import play, stream_splits

    vocab, splits, _ = stream_splits(play(30))
    vocab.save(tmp_path / "vocab.json")
    save_encoded(tmp_path / "encoded.npz", splits)
    return tmp_path


# Loaded by every Python process of the run (PYTHONPATH): rank 0 stops as its second epoch starts, after
# writing the first one's resume state; torchrun then stops rank 1.
STOP_AFTER_EPOCH_1 = textwrap.dedent("""
    import os
    if os.environ.get("RANK") == "0":
        from rnnlm import training
        from rnnlm.errors import UserError
        epoch = training.train_epoch
        calls = []
        def stopping(*args, **kwargs):
            calls.append(1)
            if len(calls) == 2:
                raise UserError("stopped after epoch 1 (a stand-in for an interruption)")
            return epoch(*args, **kwargs)
        training.train_epoch = stopping
""")


def test_a_stream_in_two_processes_of_b_rows_equals_one_process_of_2b_and_resumes(stream_project):
    """Each process reads its contiguous share of the rows (rnnlm.distributed.Shard.local_rows) with its own
    carried state; the seeded epoch plans (offsets, variable chunk lengths) are the same in every process."""
    stream = dict(bptt=8, variable_bptt=True, epochs=2, resume=True)
    two = run_stage(stream_project, "two", nproc=2, batch_size=2, **stream)
    assert two.returncode == 0, two.stderr
    one = run_stage(stream_project, "one", nproc=1, batch_size=4, **stream)
    assert one.returncode == 0, one.stderr
    small = run_stage(stream_project, "small", nproc=1, batch_size=2, **stream)
    assert small.returncode == 0, small.stderr
    a, b, c = (weights(stream_project / name / "gru.pt") for name in ("two", "one", "small"))
    for name in b:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6)
    assert any(not torch.allclose(c[name], b[name], atol=1e-3) for name in b)   # rows per step tell apart
    curves = [np.array(read_corpus_curves(stream_project / f"{name}-curves.csv")["gru"]) for name in ("two", "one")]
    np.testing.assert_allclose(curves[0], curves[1], rtol=1e-5)   # per epoch: train and dev loss
    record = read_checkpoint(stream_project / "one" / "gru.pt")["training"]
    assert read_checkpoint(stream_project / "two" / "gru.pt")["training"]["train_tokens"] == record["train_tokens"]

    # stopped after its first epoch, then run again: it resumes there and ends as the uninterrupted run
    hooks = stream_project / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(STOP_AFTER_EPOCH_1)
    stopped = run_stage(stream_project, "resumed", env={"PYTHONPATH": str(hooks)}, nproc=2, batch_size=2, **stream)
    assert stopped.returncode == 2 and "stopped after epoch 1" in stopped.stderr, stopped.stderr
    resumed = run_stage(stream_project, "resumed", nproc=2, batch_size=2, **stream)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming gru seed 0" in resumed.stdout and "after epoch 1" in resumed.stdout, resumed.stdout
    d = weights(stream_project / "resumed" / "gru.pt")
    for name in a:
        torch.testing.assert_close(d[name], a[name], rtol=1e-6, atol=1e-7)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_two_agents(project, out, **train):
    """The train stage under two torchrun agents, "nodes" of one process each, joined by a c10d rendezvous
    on loopback: docs/scale.md's multi-machine command with this machine's address for node-a's."""
    args = stage_args(project, out, **train)
    agent = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
             "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{free_port()}", "--rdzv-id", out,
             "--local-addr", "127.0.0.1", *args]
    agents = [subprocess.Popen(agent, cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
              for _ in range(2)]
    done = [agent.communicate(timeout=300) for agent in agents]
    for process, (_, err) in zip(agents, done):
        assert process.returncode == 0, err


@pytest.mark.parametrize("corpus", ["items", "stream"])
def test_two_nodes_on_loopback_train_as_two_processes_on_one(corpus, request):
    """Two agents (two "machines" of one process each) train an item corpus and a stream to the weights
    that nproc: 2 on one machine gives (which is one process of twice the batch: the tests above)."""
    folder = request.getfixturevalue("project" if corpus == "items" else "stream_project")
    train = dict(batch_size=2, epochs=1) | (dict(bptt=8, variable_bptt=True) if corpus == "stream" else {})
    run_two_agents(folder, "nodes", nproc=1, **train)   # the stage joins torchrun's group, whatever nproc says
    one_node = run_stage(folder, "one-node", nproc=2, **train)
    assert one_node.returncode == 0, one_node.stderr
    a, b = weights(folder / "nodes" / "gru.pt"), weights(folder / "one-node" / "gru.pt")
    for name in b:
        torch.testing.assert_close(a[name], b[name], rtol=1e-6, atol=1e-7)
