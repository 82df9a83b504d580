"""The contract every kind honours, and what the fixed-window and Transformer kinds add.

Causality, stepping with ``hidden`` against one full pass, the state as plain tensors; the mlp's
window is exactly ``context`` tokens; the Transformer's key/value cache, its windows over long
inputs; the AWD-LSTM regularizers (weight drop, embedding dropout, AR/TAR).
"""

import pytest
import torch

from rnnlm.errors import UserError
from rnnlm.kinds import MODEL_KINDS
from rnnlm.models import ModelConfig, build_model, token_losses

V, PAD, BOS = 20, 0, 2


def config(kind, **kw):
    settings = dict(kind=kind, vocab_size=V, pad_id=PAD, embedding_size=8, hidden_size=8, layers=2, context=3,
                    heads=2, ff_size=16, max_len=24)
    return ModelConfig(**(settings | kw))


def model_of(kind, seed=0, **kw):
    torch.manual_seed(seed)
    return build_model(config(kind, **kw)).eval()


def items(B=3, T=10, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(4, V, (B, T), generator=g)
    x[:, 0] = BOS
    return x


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_a_later_token_changes_no_earlier_logit(kind):
    model, x = model_of(kind), items()
    t = 5
    changed = x.clone()
    changed[:, t + 1] = (changed[:, t + 1] + 1 - 4) % (V - 4) + 4
    with torch.no_grad():
        a, _ = model(x)
        b, _ = model(changed)
    torch.testing.assert_close(a[:, : t + 1], b[:, : t + 1], atol=0, rtol=0)
    assert not torch.allclose(a[:, t + 1], b[:, t + 1])  # and the changed position itself is read


@pytest.mark.parametrize("kind", MODEL_KINDS)
@pytest.mark.parametrize("pieces", [[1] * 10, [4, 1, 5], [3, 7]])
def test_stepping_with_hidden_equals_one_full_pass(kind, pieces):
    """A sampler's calls (a prompt, then one token at a time) give the logits of one full pass."""
    model, x = model_of(kind), items()
    with torch.no_grad():
        full, _ = model(x)
        steps, hidden, at = [], None, 0
        for n in pieces:
            logits, hidden = model(x[:, at : at + n], hidden)
            steps.append(logits)
            at += n
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_the_state_as_tensors_round_trips_and_starts_like_none(kind):
    model, x = model_of(kind), items()
    with torch.no_grad():
        fresh, hidden = model(x[:, :4])
        started, _ = model(x[:, :4], model.state_from_tensors(model.initial_state(x.shape[0])))
        tensors = model.state_tensors(hidden)
        assert len(tensors) == len(model.state_names) and all(isinstance(t, torch.Tensor) for t in tensors)
        a, _ = model(x[:, 4:], hidden)
        b, _ = model(x[:, 4:], model.state_from_tensors(tensors))
    torch.testing.assert_close(started, fresh, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(a, b, atol=0, rtol=0)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_the_mlp_window_is_exactly_context_tokens(k):
    model, x = model_of("mlp", context=k), items(T=12)
    t = 9
    with torch.no_grad():
        base, _ = model(x)
        inside, outside = x.clone(), x.clone()
        inside[:, t - k + 1] = (inside[:, t - k + 1] + 1 - 4) % (V - 4) + 4   # the oldest token in the window
        outside[:, t - k] = (outside[:, t - k] + 1 - 4) % (V - 4) + 4         # the one just before it
        assert not torch.allclose(model(inside)[0][:, t], base[:, t])
        torch.testing.assert_close(model(outside)[0][:, t], base[:, t], atol=0, rtol=0)


def test_the_mlp_pads_an_item_start_with_bos_not_the_previous_item():
    model = model_of("mlp", context=4)
    x = items(B=1, T=6)
    with torch.no_grad():
        alone, _ = model(x)
        # the same item after another one, with the window started afresh (hidden=None): identical
        _, after_other = model(items(B=1, T=6, seed=7))
        fresh, _ = model(x, None)
        padded = torch.cat([torch.full((1, 3), BOS), x], dim=1)   # three explicit <s> before the item
        explicit, _ = model(padded)
    torch.testing.assert_close(fresh, alone)
    torch.testing.assert_close(explicit[:, 3:], alone, atol=1e-6, rtol=1e-6)
    assert after_other.shape == (1, 4)


def test_the_transformer_cache_grows_by_the_tokens_given():
    model, x = model_of("transformer", layers=3, heads=2), items(B=2, T=7)
    with torch.no_grad():
        _, (keys, values) = model(x[:, :5])
        assert keys.shape == values.shape == (3, 2, 2, 5, 4)   # (layers, B, heads, P, width / heads)
        _, (keys, _) = model(x[:, 5:], (keys, values))
    assert keys.shape[3] == 7


def test_a_long_input_is_read_in_windows_of_max_len():
    model, x = model_of("transformer", max_len=8), items(B=2, T=21)
    with torch.no_grad():
        long, _ = model(x)
        torch.testing.assert_close(long[:, :8], model(x[:, :8])[0], atol=1e-6, rtol=1e-6)
        # position 20 sees the window of 8 tokens ending at it (windows end 12, 16, 20, 21; 21 - 8 = 13)
        torch.testing.assert_close(long[:, 20], model(x[:, 13:21])[0][:, -1], atol=1e-6, rtol=1e-6)
        with pytest.raises(UserError, match="at most 8 tokens"):
            _, hidden = model(x[:, :6])
            model(x[:, 6:9], hidden)


@pytest.mark.parametrize("kind", ["rnn_scratch", "rnn", "gru", "lstm"])
@pytest.mark.parametrize("mode", ["standard", "locked"])
def test_weight_drop_changes_training_passes_only(kind, mode):
    plain, dropped = model_of(kind, dropout_mode=mode), model_of(kind, weight_drop=0.5, dropout_mode=mode)
    dropped.load_state_dict(plain.state_dict())
    x = items()
    with torch.no_grad():
        torch.testing.assert_close(dropped(x)[0], plain(x)[0], atol=0, rtol=0)   # evaluation: no drop
    dropped.train()
    torch.manual_seed(3)
    logits, _ = dropped(x)
    assert not torch.allclose(logits, plain(x)[0])
    logits.sum().backward()
    # the gradient reaches the hidden-to-hidden weights through the dropped copy
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in dropped.parameters() if p.dim() > 1)


def test_embedding_dropout_drops_whole_token_types():
    model = model_of("gru", embedding_dropout=0.5, dropout=0.0)
    model.train()
    torch.manual_seed(0)
    x = torch.tensor([[5, 5, 6, 6, 5, 6, 7, 7]])
    embedded = model.embed(x)[0]
    for token in (5, 6, 7):
        rows = embedded[x[0] == token]
        assert torch.equal(rows, rows[:1].expand_as(rows))   # every occurrence alike: kept or dropped
    model.eval()
    torch.testing.assert_close(model.embed(x), model.embedding(x))


@pytest.mark.parametrize("kind", ["rnn_scratch", "rnn", "gru", "lstm"])
@pytest.mark.parametrize("mode", ["standard", "locked"])
def test_ar_and_tar_are_the_formulas_on_real_positions(kind, mode):
    """AR on the dropped-out outputs, TAR on the raw ones (AWD-LSTM, and the module's docstring). Dropout is
    on, so the two differ: a penalty that took them the other way round would not match."""
    model = model_of(kind, activation_reg=2.0, temporal_reg=1.0, dropout=0.5, dropout_mode=mode, layers=2)
    captured = {}
    model.rnn.register_forward_hook(lambda module, args, output: captured.update(outputs=output[0]))
    model.train()
    x = items(B=2, T=6)
    x[1, 4:] = PAD
    torch.manual_seed(0)
    dropped, _ = model.features(x)                                      # (B, T, H): what the decoder reads
    raw = captured["outputs"]                                           # (B, T, H): the top layer's own outputs
    real = x != PAD
    both = real[:, 1:] & real[:, :-1]

    def penalty(ar_on, tar_on):
        return 2.0 * ar_on[real].pow(2).mean() + 1.0 * (tar_on[:, 1:] - tar_on[:, :-1])[both].pow(2).mean()

    assert not torch.allclose(dropped, raw)                             # dropout is really on
    torch.testing.assert_close(model.activation_penalty, penalty(dropped, raw))
    for swapped in (penalty(raw, dropped), penalty(raw, raw), penalty(dropped, dropped)):
        assert not torch.allclose(model.activation_penalty, swapped)
    model.eval()
    model.features(x)
    assert model.activation_penalty is None


def test_every_kind_trains_a_step_with_its_loss(toy_vocab, toy_splits):
    from rnnlm.batches import make_batch
    for kind in MODEL_KINDS:
        torch.manual_seed(0)
        model = build_model(config(kind, vocab_size=len(toy_vocab), pad_id=toy_vocab.pad_id, bos_id=toy_vocab.bos_id))
        x, y = make_batch(toy_splits["train"], [0, 1, 2], toy_vocab.pad_id)
        nll, _, targets = token_losses(model, x, y, toy_vocab.pad_id, with_logits=False)
        nll.mean().backward()
        assert nll.numel() == targets.numel() > 0
        assert all(p.grad is not None for p in model.parameters())
