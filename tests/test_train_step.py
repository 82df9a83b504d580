"""The fast training step computes what the plain one did: same batches, same losses, same weights."""

import copy

import numpy as np
import pytest
import torch

from rnnlm.batches import epoch_batches, make_batch
from rnnlm.data import batch_indices
from rnnlm.kinds import MODEL_KINDS
from rnnlm.models import build_model, token_losses
from rnnlm.training import epoch_rng, make_optimizer, model_config_for, train_epoch, train_step
from tests.configs import train_config


def reference_step(model, optimizer, x, y, pad_id, grad_clip):
    """The straightforward step, as training.py wrote it before the speed work."""
    nll, _, _ = token_losses(model, x, y, pad_id)
    loss = nll.mean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return loss.item(), nll.numel()


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_fast_step_gives_the_reference_losses_and_weights(kind, toy_vocab, toy_splits):
    # a large lr makes clipping bite, so the foreach clipping is checked too
    # no dropout and plain adam: the reference step below has neither a mask nor weight decay
    cfg = train_config(embedding_size=8, hidden_size=8, batch_size=3, lr=0.05, grad_clip=0.5, max_len=6, dropout=0.0,
                       optimizer="adam", weight_decay=0.0)
    torch.manual_seed(0)
    fast = build_model(model_config_for(kind, cfg, toy_vocab))
    ref = copy.deepcopy(fast)
    fast_opt, ref_opt = make_optimizer(cfg, fast.parameters()), make_optimizer(cfg, ref.parameters())
    split, pad = toy_splits["train"], toy_vocab.pad_id
    order = batch_indices(split.lengths, cfg.batch_size, epoch_rng(0, 1))
    batches = epoch_batches(split, order, pad, cfg.max_len)
    assert len(batches) == len(order)
    params = list(fast.parameters())
    for indices, (x, y, tokens) in zip(order, batches):
        rx, ry = make_batch(split, indices, pad, cfg.max_len)
        assert torch.equal(x, rx) and torch.equal(y, ry)  # the same batches, built up front
        ref_loss, ref_tokens = reference_step(ref, ref_opt, rx, ry, pad, cfg.grad_clip)
        loss = train_step(fast, fast_opt, params, x, y, pad, cfg.grad_clip).item()
        assert tokens == ref_tokens
        assert loss == pytest.approx(ref_loss, abs=1e-5)
    for (name, a), b in zip(fast.state_dict().items(), ref.state_dict().values()):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5, msg=name)


def test_train_epoch_mean_loss_matches_the_reference_loop(toy_vocab, toy_splits):
    cfg = train_config(embedding_size=8, hidden_size=8, batch_size=4, grad_clip=5.0, max_len=64, dropout=0.0,
                       optimizer="adam", weight_decay=0.0, lr=1e-3)
    torch.manual_seed(0)
    model = build_model(model_config_for("rnn_scratch", cfg, toy_vocab))
    ref = copy.deepcopy(model)
    ref_opt = make_optimizer(cfg, ref.parameters())
    split, pad = toy_splits["train"], toy_vocab.pad_id
    total, tokens = 0.0, 0
    for indices in batch_indices(split.lengths, cfg.batch_size, epoch_rng(7, 2)):
        loss, n = reference_step(ref, ref_opt, *make_batch(split, indices, pad, cfg.max_len), pad, cfg.grad_clip)
        total, tokens = total + loss * n, tokens + n
    loss, _, got_tokens = train_epoch(model, make_optimizer(cfg, model.parameters()), split, pad, cfg, 7, 2,
                                      progress=False)
    assert got_tokens == tokens == split.num_targets
    assert loss == pytest.approx(total / tokens, abs=1e-5)


def test_epoch_batches_count_tokens_after_truncation(toy_vocab, toy_splits):
    split, pad = toy_splits["train"], toy_vocab.pad_id
    for max_len in (None, 3):
        for x, y, tokens in epoch_batches(split, [np.arange(len(split))], pad, max_len):
            assert tokens == int((y != pad).sum())
