"""Learning-rate schedules: how the optimizer's rate moves during a run (``train.<corpus>.scheduler``).

- ``none``: the rate stays at ``lr`` (the seed notebook's setting).
- ``plateau``: after each epoch, if the dev loss has not improved for ``plateau_patience`` epochs,
  multiply the rate by ``plateau_factor`` (pytorch/examples' word_language_model divides it by 4
  as soon as validation loss stalls: factor 0.25, patience 0).
- ``cosine``: per batch, a linear warm-up over the first ``warmup`` fraction of all steps, then a
  half cosine from ``lr`` down to 0 at the last step.
- ``onecycle``: per batch, torch's one-cycle policy: up from ``lr / 25`` to a peak of ``lr`` over
  the first ``warmup`` fraction of steps, then a cosine down to ``lr / 25e4``.

All are torch.optim.lr_scheduler classes; their ``state_dict`` is plain data, so a resumable
checkpoint stores it and a resumed run continues the curve exactly where it stopped.
"""

import math

from torch.optim import lr_scheduler

PER_BATCH = ("cosine", "onecycle")
# torch's OneCycleLR default: 30% of the run rising to the peak
ONECYCLE_WARMUP = 0.3


def steps_per_epoch(items, batch_size):
    """Optimizer steps in one epoch: ``data.batch_indices`` makes ceil(items / batch_size) batches."""
    return math.ceil(items / batch_size)


class Schedule:
    """One run's schedule: ``after_batch()`` after each optimizer step, ``after_epoch(dev_loss)`` after each epoch.

    Only the hook the chosen scheduler uses does anything, so the training loop calls both
    unconditionally and needs no branch per scheduler.
    """

    def __init__(self, name, scheduler=None):
        self.name = name
        self.scheduler = scheduler

    def after_batch(self):
        if self.name in PER_BATCH:
            self.scheduler.step()

    def after_epoch(self, dev_loss):
        if self.name == "plateau":
            self.scheduler.step(dev_loss)

    def state_dict(self):
        return None if self.scheduler is None else self.scheduler.state_dict()

    def load_state_dict(self, state):
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state)


def make_schedule(cfg, optimizer, steps_per_epoch, total_steps=None):
    """The ``Schedule`` that ``cfg`` (a TrainConfig) asks for, driving ``optimizer``; ``total_steps``
    (default: ``steps_per_epoch`` times the epochs) where epochs differ in steps (a stream's chunks)."""
    total = steps_per_epoch * cfg.epochs if total_steps is None else total_steps
    if cfg.scheduler == "plateau":
        return Schedule("plateau", lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=cfg.plateau_factor, patience=cfg.plateau_patience))
    if cfg.scheduler == "onecycle":
        warmup = ONECYCLE_WARMUP if cfg.warmup is None else cfg.warmup
        return Schedule("onecycle", lr_scheduler.OneCycleLR(
            optimizer, max_lr=cfg.lr, total_steps=total, pct_start=warmup))
    if cfg.scheduler == "cosine":
        warmup_steps = round((cfg.warmup or 0.0) * total)
        cosine = lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total - warmup_steps))
        if warmup_steps == 0:
            return Schedule("cosine", cosine)
        # from lr / warmup_steps up to lr in a straight line, then hand over to the cosine
        warm = lr_scheduler.LinearLR(optimizer, start_factor=1 / warmup_steps, total_iters=warmup_steps)
        return Schedule("cosine", lr_scheduler.SequentialLR(optimizer, [warm, cosine], milestones=[warmup_steps]))
    return Schedule("none")
