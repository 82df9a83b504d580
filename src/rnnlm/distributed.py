"""Data-parallel training with torch.distributed: one model, several processes, one global batch.

With ``train.<corpus>.nproc > 1`` the train stage starts itself again under ``torchrun``
(``relaunch``); every process then joins one process group (``process_group``) and trains the same
seed at the same time. DistributedDataParallel keeps the copies of the model equal: after each
backward pass it sums the processes' gradients, so every process takes the same optimizer step.

How a step is split. Every process draws the same batch order from ``(seed, epoch)``
(``training.epoch_rng``) with batches of ``nproc x batch_size`` items; process ``r`` takes the
``r``-th part of each such global batch (``Shard.local_batches``). The project's loss is the mean
over the real tokens of a batch, so the gradient of the global batch is

    grad( sum_all nll / N ) = sum_r (n_r / N) * grad( mean_r nll )

with ``n_r`` the tokens of process ``r`` and ``N = sum_r n_r``. Each process keeps its ordinary
per-batch mean loss; a DDP communication hook weighs its gradient by its token share
``n_r / N`` (one tiny all-reduce of the counts per step) and sums over the processes. The weights
therefore follow those of one process with batch ``nproc x batch_size``, up to float rounding.
A global batch with fewer items than processes (the last one, sometimes) leaves some processes
without data: they run their step on a stand-in item with weight 0, because DDP needs every
process in every gradient exchange.

Only rank 0 writes checkpoints, curves and logs (``Shard.is_main``). Every process evaluates the
dev split itself: the models are equal, so the numbers are too, and no process waits for another.

Threads: each process gets ``cores // processes per machine`` threads. Backend: gloo for CPU
tensors, NCCL for CUDA tensors when CUDA is present.
"""

import contextlib
import ctypes
import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from .errors import UserError
from .models import stream_losses, token_losses
from .streams import CarriedState

__all__ = ["Shard", "launched", "process_group", "relaunch", "threads_per_process"]


def launched():
    """True inside a process that torchrun started (it sets WORLD_SIZE for every worker)."""
    return "WORLD_SIZE" in os.environ


def threads_per_process(processes):
    return max(1, (os.cpu_count() or 1) // processes)


class Shard:
    """This process's part of data-parallel training: its slice of every batch, and its gradient share."""

    def __init__(self, rank, world_size):
        self.rank = rank
        self.world_size = world_size
        self._ddp = None            # the DDP wrapper of the model being trained
        self._standins = []         # per step of the epoch: True where this process has no items
        self._step = 0
        self._standin_tokens = 0    # tokens of stand-in steps: scored, but not part of the epoch
        self._share = 1.0           # this step's n_r / N, read by the communication hook

    @property
    def is_main(self):
        """Rank 0 alone writes files and prints."""
        return self.rank == 0

    def local_batches(self, global_batches):
        """This process's part of each global batch (``np.array_split``: parts differ by one item at most)."""
        parts = [np.array_split(batch, self.world_size)[self.rank] for batch in global_batches]
        self._standins = [len(part) == 0 for part in parts]
        self._step, self._standin_tokens = 0, 0
        return [batch[:1] if len(part) == 0 else part for part, batch in zip(parts, global_batches)]

    def local_rows(self, chunks):
        """This process's rows of each stream chunk of all processes' ``nproc x B`` rows (``streams.StreamChunks``):
        the ``rank``-th contiguous share, so each process reads its own streams from chunk to chunk."""
        self._standins, self._step, self._standin_tokens = [], 0, 0   # every process has rows in every chunk
        rows = chunks.batch_size // self.world_size
        return chunks.share(slice(self.rank * rows, (self.rank + 1) * rows))

    def carried_state(self):
        """``streams.CarriedState`` for this process's rows, scored through DDP (``_CarriedThroughDDP``)."""
        return _CarriedThroughDDP(self)

    def _wrapped(self, model, scored):
        """The DDP wrapper of ``model``, made anew for a new model from ``scored`` (a class: it wraps the model
        with its loss), and only then: a wrapper module per step would be garbage on every step."""
        if self._ddp is None or self._ddp.module.model is not model:
            # A new model (the next seed): DDP broadcasts rank 0's weights and sets up its buckets.
            self._ddp = DistributedDataParallel(scored(model))
            self._ddp.register_comm_hook(self, _token_weighted_sum)
        return self._ddp

    def token_losses(self, model, x, y, pad_id, with_logits=False):
        """``models.token_losses`` for this process's batch, through DDP so that backward syncs gradients.

        Training only: the targets' losses, never the logits (``with_logits`` must stay False).
        """
        nll = self._wrapped(model, _Scored)(x, y, pad_id)  # (n_r,)
        standin = self._standins[self._step] if self._step < len(self._standins) else False
        self._step += 1
        counts = torch.tensor([0.0 if standin else float(nll.numel())], dtype=torch.float64)
        dist.all_reduce(counts)
        self._share = 0.0 if standin else nll.numel() / counts.item()
        if standin:
            # zero loss, still through every weight: the gradient exchange needs all of them
            self._standin_tokens += nll.numel()
            nll = nll * 0.0
        return nll, None, None

    def sum_over_ranks(self, total_nll, total_tokens):
        """The epoch's loss sum and token count over all processes (stand-in items left out)."""
        totals = torch.tensor([total_nll, total_tokens - self._standin_tokens], dtype=torch.float64)
        dist.all_reduce(totals)
        return totals[0].item(), int(totals[1].item())


class _Scored(torch.nn.Module):
    """The model with the loss in its forward: DDP prepares its gradient sync in ``forward``."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x, y, pad_id):
        nll, _, _ = token_losses(self.model, x, y, pad_id, with_logits=False)
        return nll


class _CarriedThroughDDP(CarriedState):
    """``streams.CarriedState`` of one process's rows, through DDP so that backward syncs gradients. Every
    process scores as many tokens per chunk (its B rows x the chunk's length): each gradient weighs 1 / nproc."""

    def __init__(self, shard):
        super().__init__()
        self.shard = shard

    def __call__(self, model, x, y, pad_id, with_logits=False):
        ddp = self.shard._wrapped(model, _StreamScored)
        self.shard._share = 1.0 / self.shard.world_size
        nll, hidden = ddp(x, y, self.hidden)
        self.hidden = model.carry(hidden)
        return nll, None, y.reshape(-1)


class _StreamScored(torch.nn.Module):
    """A stream model with its loss in its forward, from a carried state (``models.stream_losses``)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x, y, hidden):
        return stream_losses(self.model, x, y, hidden)


def _token_weighted_sum(shard, bucket):
    """DDP communication hook: sum of the gradients weighted by token share (the default averages)."""
    grads = bucket.buffer()
    grads.mul_(shard._share)
    return dist.all_reduce(grads, async_op=True).get_future().then(lambda fut: fut.value()[0])


@contextlib.contextmanager
def process_group():
    """Join torchrun's process group and yield this process's ``Shard``; yield None outside torchrun."""
    if not launched() or int(os.environ["WORLD_SIZE"]) == 1:
        yield None
        return
    torch.set_num_threads(threads_per_process(int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))
    # Collectives go by the tensors' device: gloo for CPU tensors, NCCL for CUDA ones.
    backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend)
    try:
        yield Shard(dist.get_rank(), dist.get_world_size())
    finally:
        dist.destroy_process_group()


def _exit_with_parent():
    """Have Linux kill torchrun when the stage dies, so no orphan keeps training and writing."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG


def relaunch(nproc, argv):
    """Run the script ``argv[0]`` with ``argv[1:]`` in ``nproc`` processes under torchrun, on this machine.

    Rank 0 prints to the console as usual; the others' output goes to torchrun's log folder (a
    temporary one). If a process fails, torchrun stops the rest and this raises a ``UserError``
    naming the process that failed first and its own error line (or the signal that killed it).
    """
    script = str(Path(argv[0]).resolve())
    threads = threads_per_process(nproc)
    with tempfile.TemporaryDirectory(prefix="rnnlm-torchrun-") as logs:
        # -r: rank 0 keeps its stdout on the console (its stderr is kept to find its error line),
        # the other ranks write both streams to files only.
        redirects = ",".join(["0:2"] + [f"{rank}:3" for rank in range(1, nproc)])
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
               f"--log-dir={logs}", f"--redirects={redirects}", script, *argv[1:]]
        env = os.environ | {"OMP_NUM_THREADS": str(threads)}
        print(f"training in {nproc} data-parallel processes, {threads} thread(s) each", flush=True)
        result = subprocess.run(cmd, stderr=subprocess.PIPE, text=True, env=env, preexec_fn=_exit_with_parent)
        own_stderr = _rank_log(logs, 0)
        if result.returncode == 0:
            sys.stderr.write(own_stderr)  # rank 0's warnings, if any
            return
        raise UserError(_failure_message(result.stderr, logs, nproc))


def _rank_log(logs, rank):
    found = sorted(Path(logs).glob(f"*/attempt_*/{rank}/stderr.log"))
    return found[-1].read_text(encoding="utf-8", errors="replace") if found else ""


def _failure_message(launcher_stderr, logs, nproc):
    """One line: which process failed first (torchrun's "Root Cause") and why, in its own words if it said."""
    cause = launcher_stderr.split("Root Cause", 1)[-1]
    rank = re.search(r"rank\s*:\s*(\d+)", cause)
    code = re.search(r"exitcode\s*:\s*(-?\d+)", cause)
    if rank is None:  # torchrun itself failed (no process started): its last line says why
        lines = [line for line in launcher_stderr.splitlines() if line.strip()]
        return f"torchrun failed: {lines[-1] if lines else 'no message'}"
    rank, code = int(rank.group(1)), int(code.group(1)) if code else None
    own = [line.removeprefix(f"[rank{rank}]:").strip() for line in _rank_log(logs, rank).splitlines()]
    said = [line.removeprefix("error:").strip() for line in own if line.startswith("error:")]
    if not said and own and any(line.startswith("Traceback") for line in own):
        said = [next(line for line in reversed(own) if line)]  # the exception's last line
    if said:
        why = said[-1]
    elif code is not None and code < 0:
        why = f"killed by {signal.Signals(-code).name}"
    else:
        why = f"exited with code {code}"
    return f"training process {rank} of {nproc} failed: {why}; the other processes were stopped"
