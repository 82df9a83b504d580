"""Learning-rate schedules: the curve each scheduler draws, step by step and epoch by epoch."""

import math

import pytest
import torch

from rnnlm.schedules import make_schedule, steps_per_epoch
from tests.configs import train_config

LR = 0.01


def lr_curve(steps_per_epoch_, **cfg):
    """The learning rate used at every optimizer step of a run (before the scheduler moves it)."""
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=LR, momentum=0.9)
    schedule = make_schedule(train_config(lr=LR, **cfg), optimizer, steps_per_epoch_)
    lrs = []
    for _ in range(cfg["epochs"]):
        for _ in range(steps_per_epoch_):
            lrs.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            schedule.after_batch()
        schedule.after_epoch(1.0)  # a dev loss: ignored by the per-step schedules
    return lrs


def test_steps_per_epoch_counts_the_last_short_batch():
    assert steps_per_epoch(32, 16) == 2 and steps_per_epoch(33, 16) == 3


def test_none_keeps_the_rate():
    assert lr_curve(10, scheduler="none", epochs=3) == [LR] * 30


def test_onecycle_rises_to_lr_then_falls_far_below():
    lrs = lr_curve(10, scheduler="onecycle", epochs=10)  # 100 steps, default warm-up 0.3
    peak = max(range(len(lrs)), key=lrs.__getitem__)
    assert lrs[peak] == pytest.approx(LR)
    assert 28 <= peak <= 30                                    # 30% of the run rises to the peak
    assert lrs[0] == pytest.approx(LR / 25)                   # torch's div_factor
    assert all(a < b for a, b in zip(lrs[:peak], lrs[1:peak + 1]))
    assert all(a > b for a, b in zip(lrs[peak:-1], lrs[peak + 1:]))
    assert lrs[-1] < LR / 1000
    # warm-up is configurable: 10% of the steps
    assert max(range(100), key=lr_curve(10, scheduler="onecycle", epochs=10, warmup=0.1).__getitem__) in (9, 10)


def test_cosine_warms_up_linearly_then_follows_a_half_cosine():
    lrs = lr_curve(10, scheduler="cosine", epochs=10, warmup=0.1)  # 10 warm-up steps of 100
    # a straight line from lr / 10 (1 / warm-up steps) at step 0 to lr at step 10
    assert lrs[:11] == pytest.approx([LR * (0.1 + 0.9 * k / 10) for k in range(11)])
    assert all(a >= b for a, b in zip(lrs[10:-1], lrs[11:]))
    # after the warm-up, step s of the remaining 90 uses lr * (1 + cos(pi * s / 90)) / 2
    for s in (0, 30, 45, 89):
        assert lrs[10 + s] == pytest.approx(LR * (1 + math.cos(math.pi * s / 90)) / 2)
    # no warm-up: the cosine starts at lr
    plain = lr_curve(10, scheduler="cosine", epochs=2)
    assert plain[0] == LR and plain[10] == pytest.approx(LR / 2) and plain[-1] < LR / 100


def test_plateau_cuts_the_rate_only_after_dev_loss_stalls():
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=LR)
    schedule = make_schedule(train_config(lr=LR, scheduler="plateau", plateau_factor=0.25, plateau_patience=1),
                             optimizer, 10)
    lrs = []
    for dev_loss in [3.0, 2.0, 2.5, 2.4, 1.0, 1.5, 1.6]:
        for _ in range(10):
            schedule.after_batch()  # per-step calls leave the plateau schedule alone
        schedule.after_epoch(dev_loss)
        lrs.append(optimizer.param_groups[0]["lr"])
    # improving, improving, 1 stalled epoch (patience 1: wait), 2 stalled: cut to a quarter,
    # improving, stalled, stalled: cut again
    assert lrs == pytest.approx([LR, LR, LR, LR / 4, LR / 4, LR / 4, LR / 16])
