"""The training loop: seeded, resumable at epoch boundaries, with a progress bar and loss curves.

A run keeps the weights of its epoch with the lowest dev loss ("best model, not last model"): the
finished checkpoint holds those, and ``early_stopping_patience`` ends a run that stopped improving.

A stream split (one long text, ``EncodedSplit.stream``) trains through the same loop on dense chunks
of B parallel streams with the state carried from chunk to chunk (``rnnlm.streams``), and its dev loss
is the stream evaluation of ``rnnlm.stream_scoring`` (through ``evaluate_split``).
"""

import math
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import NamedTuple, Optional

import numpy as np
import torch
from tqdm import tqdm

from .averaging import WeightAverage, steps_before_averaging
from .batches import epoch_batches
from .checkpoint import read_checkpoint, save_checkpoint
from .curves import RunLog
from .data import batch_indices
from .devices import autocast, check_precision, resolve_device, to_device
from .errors import UserError
from .evaluation import evaluate_split
from .lifecycle import exit_with_parent
from .models import ModelConfig, build_model, model_class, token_losses
from .schedules import make_schedule, steps_per_epoch
from .seeding import seed_everything
from .speed import split_timings
from .streams import CarriedState, epoch_chunks, epoch_plan, scaled_lr


class TrainingDiverged(UserError):
    """The loss became NaN or infinite."""


def epoch_rng(seed, epoch):
    """Batch order of one epoch, from (seed, epoch) alone: a resumed run sees the same batches."""
    return np.random.default_rng([seed, epoch])


def make_optimizer(cfg, parameters):
    # The fused kernels update all parameters in one pass: a third less time per step here.
    if cfg.optimizer == "adam":
        return torch.optim.Adam(parameters, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(parameters, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    return torch.optim.SGD(parameters, lr=cfg.lr, weight_decay=cfg.weight_decay)


def split_loss(model, split, pad_id):
    """The mean loss per token of ``split``, as training picks its best epoch by: the evaluation
    pass without accuracy, so an adaptive softmax scores the targets alone."""
    return evaluate_split(model, split, pad_id, accuracy=False)["loss"]


def output_for(cfg, vocab_size):
    """``(output, adaptive_cutoffs)`` of a model over ``vocab_size`` tokens.

    Cut-offs are token counts chosen for one vocabulary; the same params may meet a smaller one
    (``-S vocab.news.level=bpe`` or ``char``). Cut-offs that do not leave a tail cluster are
    dropped, and with none left the adaptive softmax would be a plain one: the full output is used.
    """
    if cfg.output != "adaptive":
        return cfg.output, None
    cutoffs = [c for c in cfg.adaptive_cutoffs if c < vocab_size - 1]
    return ("adaptive", cutoffs) if cutoffs else ("full", None)


def positions_for(kind, cfg, vocab):
    """The ``max_len`` of a model: ``cfg.max_len``, except for a kind with a fixed context (the Transformer)
    trained on a stream, which gets ``min(max_len, bptt)``.

    On a stream such a kind carries nothing from chunk to chunk, so it trains on chunks of ``bptt``
    tokens, each read from position 0: ``bptt`` is the whole context it ever learns (nanoGPT's
    ``block_size``; its CPU recipe for shakespeare_char, which ours follows, uses 64). Positions past it
    would never get a gradient, yet scoring (the sliding window of ``rnnlm.stream_scoring``) and sampling
    (``rnnlm.sampling.ModelStepper``) read ``context_limit`` = ``max_len`` tokens: they would feed the
    untrained rows of the position table. Giving the model only the positions it trains makes training,
    scoring and sampling use one context, with no new field: the checkpoint's config (``max_len``) says it,
    so every reader of the file (evaluate, score, sample, the mixture, export) follows, and older checkpoints
    load as they are. Training on ``max_len`` chunks instead would cost more per token (attention grows
    with the chunk) and override the recipe's ``bptt``. Items (and the kinds that carry their state) keep
    ``cfg.max_len`` unchanged: a bptt larger than max_len stays refused (``check_stream_training``).
    """
    if vocab.stream and model_class(kind).context_limit is not None:  # None: a kind that reads any length
        return min(cfg.max_len, cfg.bptt)
    return cfg.max_len


def model_config_for(kind, cfg, vocab):
    output, cutoffs = output_for(cfg, len(vocab))
    return ModelConfig(
        kind=kind,
        vocab_size=len(vocab),
        pad_id=vocab.pad_id,
        embedding_size=cfg.embedding_size,
        hidden_size=cfg.hidden_size,
        layers=cfg.layers,
        dropout=cfg.dropout,
        tie_weights=cfg.tie_weights,
        dropout_mode=cfg.dropout_mode,
        output=output,
        adaptive_cutoffs=cutoffs,
        embedding_dropout=cfg.embedding_dropout,
        weight_drop=cfg.weight_drop,
        activation_reg=cfg.activation_reg,
        temporal_reg=cfg.temporal_reg,
        context=cfg.context,
        bos_id=vocab.bos_id,
        heads=cfg.heads,
        ff_size=cfg.ff_size,
        max_len=positions_for(kind, cfg, vocab),
    )


def stream_plan(split, cfg, seed, epoch, model, processes=1):
    """The chunks of one epoch over a stream split (``rnnlm.streams.epoch_plan``), from (seed, epoch) alone:
    ``processes x batch_size`` rows, the data-parallel processes' together (each reads its own share)."""
    return epoch_plan(split.num_targets, cfg.batch_size * processes, cfg.bptt, epoch_rng(seed, epoch),
                      cfg.variable_bptt, model.context_limit)


def check_stream_training(cfg, model):
    """The rules of training on a stream that depend on the kind: a user error naming the key."""
    limit = model.context_limit
    if limit is not None and cfg.bptt > limit:
        raise UserError(f"params: train bptt ({cfg.bptt}) must be <= max_len ({limit}) for the "
                        f"{model.config.kind}, which reads at most max_len tokens at once (set it in its overrides)")


def _resumable_state(path, run_id):
    """The interrupted run's checkpoint at ``path`` if it belongs to the same run, else None."""
    if not Path(path).is_file():
        return None
    try:
        payload = read_checkpoint(path)
    except UserError:
        return None  # unreadable or foreign: start afresh rather than trust it
    training = payload["training"]
    if training.get("run_id") != run_id or training.get("complete") or "best_model" not in payload:
        return None
    return payload


def train_model(kind, cfg, vocab, splits, seed, checkpoint_path, log=print, progress=True, bar_position=0,
                shard=None, live_dir=None, resume_path=None):
    """Train one model and write its checkpoint; return the model and the training record (plain data).

    After every epoch the resume state (weights, optimizer, scheduler and RNG state, the best
    weights so far) is rewritten atomically at ``resume_path`` (default: the checkpoint itself), so
    with ``cfg.resume`` an interrupted run continues from its last finished epoch and ends with the
    same weights as an uninterrupted one on CPU. The pipeline keeps that file outside the stage's
    outputs: DVC deletes declared outputs before a stage runs, and an output that persisted would
    switch its run-cache off. The finished checkpoint, and the returned model, hold the weights of
    the epoch with the lowest dev loss, and a training record without timings, so the same run
    writes the same bytes (the returned record has the seconds and tokens/s, for ``rnnlm.speed``);
    a separate resume file is removed once the run is complete.
    With ``shard`` (``rnnlm.distributed``) this process trains together with the others of its
    group, and only the main one writes. With ``live_dir`` the epochs are logged there with dvclive
    (``rnnlm.curves``).
    """
    device = resolve_device(cfg.device)
    seed_everything(seed, device)  # before any CUDA work: sets CUBLAS_WORKSPACE_CONFIG (rnnlm.seeding)
    check_precision(cfg.precision, device)
    train, dev = splits["train"], splits["dev"]
    for name, split in (("train", train), ("dev", dev)):
        if len(split) == 0:
            raise UserError(f"cannot train {kind}: the {name} split has no items; rebuild the splits (`dvc repro`) "
                            "from at least the number of rows the split stage names")
    model_config = model_config_for(kind, cfg, vocab)
    model = build_model(model_config).to(device)  # on the CPU, .to() changes nothing
    model.set_target_counts(train.target_counts(len(vocab)))  # an adaptive softmax ranks its ids by them
    optimizer = make_optimizer(cfg, model.parameters())
    # Data-parallel processes step once per global batch: ``nproc × batch_size`` items, or stream rows.
    processes = 1 if shard is None else shard.world_size
    if train.stream:  # an epoch's steps are its chunks, which its plan draws
        check_stream_training(cfg, model)
        epoch_steps = [len(stream_plan(train, cfg, seed, e, model, processes).lengths)
                       for e in range(1, cfg.epochs + 1)]
    else:
        epoch_steps = [steps_per_epoch(len(train), cfg.batch_size * processes)] * cfg.epochs
    schedule = make_schedule(cfg, optimizer, epoch_steps[0], total_steps=sum(epoch_steps))
    start_averaging = steps_before_averaging(cfg, sum(epoch_steps))
    average = None if start_averaging is None else WeightAverage(model, start_averaging)
    # Identifies "the same run": every setting that shapes the weights, and the data sizes.
    run_id = {"kind": kind, "seed": seed, "config": vars(cfg) | {"resume": None},
              "vocab_size": len(vocab), "train_tokens": int(train.tokens.size)}
    record = {"run_id": run_id, "seed": seed, "epochs_done": 0, "history": [],
              "train_seconds": 0.0, "train_tokens": 0, "complete": False, "best_epoch": None, "best_dev_loss": None}
    best_weights = None
    writes = shard is None or shard.is_main  # data-parallel: the main process alone writes

    resume_path = checkpoint_path if resume_path is None else resume_path
    resumed = _resumable_state(resume_path, run_id) if cfg.resume else None
    if resumed is not None:
        model.load_state_dict(resumed["model"])
        optimizer.load_state_dict(resumed["optimizer"])
        schedule.load_state_dict(resumed["scheduler"])
        torch.set_rng_state(resumed["rng_state"])
        best_weights = resumed["best_model"]
        if average is not None:
            average.load_state_dict(resumed["average"])
        record = resumed["training"]
        log(f"resuming {kind} seed {seed} from {resume_path} after epoch {record['epochs_done']}")
    curves = RunLog(live_dir, record["history"]) if live_dir is not None and writes else None

    for epoch in range(record["epochs_done"] + 1, cfg.epochs + 1):
        train_loss, seconds, tokens = train_epoch(model, optimizer, train, vocab.pad_id, cfg, seed, epoch,
                                                  desc=f"{kind} seed {seed} epoch {epoch}/{cfg.epochs}",
                                                  progress=progress, bar_position=bar_position,
                                                  schedule=schedule, shard=shard, average=average,
                                                  steps_before=sum(epoch_steps[:epoch - 1]))
        # With averaging under way, the epoch's candidate weights are the average's.
        candidate = model if average is None else average.evaluated_model()
        dev_loss = split_loss(candidate, dev, vocab.pad_id)
        schedule.after_epoch(dev_loss)
        record["history"].append({"epoch": epoch, "train_loss": train_loss, "dev_loss": dev_loss})
        if curves is not None:
            curves.epoch(record["history"][-1])
        record["train_seconds"] += seconds
        record["train_tokens"] += tokens
        record["tokens_per_s"] = record["train_tokens"] / record["train_seconds"]
        record["epochs_done"] = epoch
        if record["best_dev_loss"] is None or dev_loss < record["best_dev_loss"]:
            record["best_epoch"], record["best_dev_loss"] = epoch, dev_loss
            best_weights = {k: v.detach().clone() for k, v in candidate.state_dict().items()}
        patience = cfg.early_stopping_patience
        stop = patience is not None and epoch - record["best_epoch"] >= patience
        record["complete"] = epoch == cfg.epochs or stop
        log(f"{kind} seed {seed} epoch {epoch}: train loss {train_loss:.4f}, dev loss {dev_loss:.4f}, "
            f"{tokens / seconds:,.0f} tokens/s")
        if writes and not record["complete"]:
            resume_state = {"scheduler": schedule.state_dict(), "best_model": best_weights}
            if average is not None:
                resume_state["average"] = average.state_dict()
            save_checkpoint(resume_path, model, vocab, record, optimizer=optimizer, rng_state=torch.get_rng_state(),
                            resume_state=resume_state)
        if stop:
            log(f"{kind} seed {seed}: early stop, no better dev loss for {patience} epoch(s)")
            break
    # Later stages use the best epoch's weights, not the last epoch's.
    model.load_state_dict(best_weights)
    if writes:
        save_checkpoint(checkpoint_path, model, vocab, split_timings(record)[0])  # seconds vary from run to run
        if Path(resume_path) != Path(checkpoint_path):
            Path(resume_path).unlink(missing_ok=True)
    if curves is not None:
        curves.close()
    log(f"{kind} seed {seed}: keeping epoch {record['best_epoch']} (dev loss {record['best_dev_loss']:.4f})")
    return model, record


def run_cost(kind, cfg, vocab):
    """A rough estimate of one run's training time, to start the longest runs first (only the
    order in which runs start depends on it)."""
    return cfg.epochs * model_class(kind).macs_per_token(model_config_for(kind, cfg, vocab))


class Run(NamedTuple):
    """One model to train: its kind, settings and seed, where its checkpoint goes, where its dvclive
    log goes (None: no log) and where its per-epoch resume state goes (None: the checkpoint)."""

    kind: str
    cfg: object
    seed: int
    checkpoint: Path
    live_dir: Optional[Path] = None
    resume: Optional[Path] = None


def _train_one(job):
    """Worker of ``train_runs``: one run, with its share of the CPU threads."""
    run, vocab, splits, threads, bar_position = job
    if threads:
        torch.set_num_threads(threads)
    _, record = train_model(run.kind, run.cfg, vocab, splits, run.seed, run.checkpoint, bar_position=bar_position,
                            live_dir=run.live_dir, resume_path=run.resume)
    return record


def train_runs(runs, vocab, splits, workers=1, log=print, shard=None):
    """Train every ``Run`` (or tuple of its fields); return their records, in order.

    With ``workers > 1`` runs train in parallel processes with one thread each (cores / workers):
    the small models of this project keep one core busy far better than two, and each run is
    still deterministic, since it does not depend on the others. All kinds and seeds of a corpus
    share one pool, longest first, so the cores stay busy until the last run ends, and each
    worker starts torch once. With ``shard`` (data-parallel, see ``rnnlm.distributed``) the
    processes of the group train each run together, one after another.
    """
    runs = [Run(*run) for run in runs]
    if shard is not None:
        return [train_model(run.kind, run.cfg, vocab, splits, run.seed, run.checkpoint, log=log,
                            progress=shard.is_main, shard=shard, live_dir=run.live_dir, resume_path=run.resume)[1]
                for run in runs]
    workers = min(workers, len(runs))
    if workers <= 1:
        return [_train_one((run, vocab, splits, None, 0)) for run in runs]
    threads = max(1, (os.cpu_count() or 1) // workers)
    log(f"training {len(runs)} runs in {workers} processes, {threads} thread(s) each")
    order = sorted(range(len(runs)), key=lambda i: -run_cost(runs[i].kind, runs[i].cfg, vocab))  # stable: ties keep order
    jobs = [(runs[i], vocab, splits, threads, n % workers) for n, i in enumerate(order)]
    # spawn, not fork: forking a process whose torch thread pools already started can deadlock.
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=exit_with_parent) as pool:
        records = dict(zip(order, pool.map(_train_one, jobs)))
    return [records[i] for i in range(len(runs))]


def train_epoch(model, optimizer, split, pad_id, cfg, seed, epoch, desc="train", progress=True, bar_position=0,
                schedule=None, shard=None, average=None, steps_before=0):
    """One pass over ``split``; returns (token-weighted mean loss, seconds, tokens).

    ``average`` (``rnnlm.averaging``) takes in the weights after every step; ``steps_before``
    counts the run's steps before this epoch, so it knows when averaging begins.

    The progress bar (loss and tokens/s) shows on a terminal only: in logs (CI, nohup) the
    one line per epoch that ``train_model`` prints says the same without the noise.
    """
    model.train()
    device = next(model.parameters()).device
    parameters = [p for p in model.parameters() if p.requires_grad]
    lr_scales = None  # per step: variable-length stream chunks scale the learning rate (rnnlm.streams)
    processes = 1 if shard is None else shard.world_size
    if split.stream:  # one long text: dense chunks of B streams, the state carried from chunk to chunk
        plan = stream_plan(split, cfg, seed, epoch, model, processes)
        batches, score = epoch_chunks(split, plan, cfg.batch_size * processes), CarriedState()
        if shard is not None:  # data-parallel: this process's rows of every chunk, its own carried state
            batches, score = shard.local_rows(batches), shard.carried_state()
        lr_scales = plan.lr_scales(cfg.bptt) if cfg.variable_bptt else None
    else:
        order = batch_indices(split.lengths, cfg.batch_size * processes, epoch_rng(seed, epoch), cfg.bucket)
        if shard is not None:  # data-parallel: this process's part of every global batch
            order = shard.local_batches(order)
        # Every batch of the epoch padded up front, in one go: the loop below is only model work.
        batches = epoch_batches(split, order, pad_id, cfg.max_len)
        score = token_losses if shard is None else shard.token_losses  # through DDP: backward syncs gradients
    total_nll, total_tokens = 0.0, 0
    start = time.perf_counter()
    bar = tqdm(batches, desc=desc, unit="batch", disable=None if progress else True, leave=False,
               mininterval=1.0, position=bar_position)
    for step, (x, y, tokens) in enumerate(bar, start=1):
        x, y = to_device((x, y), device)
        with scaled_lr(optimizer, 1.0 if lr_scales is None else lr_scales[step - 1]):
            loss = train_step(model, optimizer, parameters, x, y, pad_id, cfg.grad_clip, cfg.precision, score)
        value = loss.item()  # the one host sync of a step
        if not math.isfinite(value):
            raise TrainingDiverged(
                f"training diverged: loss is {value} at epoch {epoch}, batch {step}; "
                f"try a lower learning rate (train lr={cfg.lr}) or gradient clipping (train grad_clip)"
            )
        if schedule is not None:
            schedule.after_batch()  # cosine and onecycle move the rate every step
        if average is not None:
            average.after_step(steps_before + step)
        total_nll += value * tokens
        total_tokens += tokens
        if step % 50 == 0:
            elapsed = time.perf_counter() - start
            bar.set_postfix(loss=f"{total_nll / total_tokens:.4f}", tok_s=f"{total_tokens / elapsed:,.0f}")
    if shard is not None:
        total_nll, total_tokens = shard.sum_over_ranks(total_nll, total_tokens)
    return total_nll / total_tokens, time.perf_counter() - start, total_tokens


def train_step(model, optimizer, parameters, x, y, pad_id, grad_clip=None, precision="fp32", score=token_losses):
    """One optimisation step on one batch; returns the batch's mean loss (a 0-d tensor, not synced).

    The model's ``activation_penalty`` (AR/TAR, when set) joins the loss that is minimized, but
    not the loss that is returned: curves and dev losses stay comparable nats per token.

    ``parameters`` is the list the optimizer updates, made once per epoch rather than per step;
    ``score`` gives the per-token losses (``models.token_losses``, or a data-parallel shard's).
    """
    with autocast(x.device, precision):
        nll, _, _ = score(model, x, y, pad_id, with_logits=False)
    loss = nll.float().mean()  # mean over real tokens: padding was never scored
    penalty = model.activation_penalty  # AR/TAR of this forward pass, or None
    optimizer.zero_grad(set_to_none=True)
    (loss if penalty is None else loss + penalty).backward()
    if grad_clip is not None:
        # Plain tanh RNNs can have exploding gradients; capping the norm keeps one bad batch
        # from throwing the weights far off. foreach: one fused pass over all gradients.
        torch.nn.utils.clip_grad_norm_(parameters, grad_clip, foreach=True)
    optimizer.step()
    return loss.detach()
