import pytest
import torch
import torch.nn.functional as F

from rnnlm.batches import make_batch
from rnnlm.kinds import MODEL_KINDS
from rnnlm.models import ModelConfig, ScratchRNN, build_model, token_losses


def config(kind, **kw):
    return ModelConfig(kind=kind, vocab_size=12, pad_id=0, embedding_size=6, hidden_size=6, **kw)


def test_scratch_cell_matches_torch_rnn_with_copied_weights():
    torch.manual_seed(0)
    ours = ScratchRNN(5, 7, num_layers=2)
    ref = torch.nn.RNN(5, 7, num_layers=2, batch_first=True)
    with torch.no_grad():
        for layer, cell in enumerate(ours.cells):
            getattr(ref, f"weight_ih_l{layer}").copy_(cell.W_x.weight)
            getattr(ref, f"bias_ih_l{layer}").copy_(cell.W_x.bias)
            getattr(ref, f"weight_hh_l{layer}").copy_(cell.W_h.weight)
            getattr(ref, f"bias_hh_l{layer}").copy_(cell.W_h.bias)
    x, h0 = torch.randn(3, 9, 5), torch.randn(2, 3, 7)
    out, h = ours(x, h0)
    ref_out, ref_h = ref(x, h0)
    torch.testing.assert_close(out, ref_out, atol=1e-6, rtol=0)
    torch.testing.assert_close(h, ref_h, atol=1e-6, rtol=0)
    # the single-step cell API agrees with the sequence loop
    torch.testing.assert_close(ours.cells[0](x[:, 0], h0[0]), torch.tanh(x[:, 0] @ ref.weight_ih_l0.T + ref.bias_ih_l0
                                                                          + h0[0] @ ref.weight_hh_l0.T + ref.bias_hh_l0))


@pytest.mark.parametrize("kind", MODEL_KINDS)
@pytest.mark.parametrize("layers", [1, 2])
def test_every_kind_one_batch_padding_is_masked(kind, layers, toy_vocab, toy_splits):
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind=kind, vocab_size=len(toy_vocab), pad_id=toy_vocab.pad_id,
                                    embedding_size=8, hidden_size=8, layers=layers))
    model.eval()
    split = toy_splits["train"]
    x, y = make_batch(split, [0, 1, 2, 3], toy_vocab.pad_id)
    logits, hidden = model(x)
    assert logits.shape == (4, x.shape[1], len(toy_vocab))
    nll, sel_logits, targets = token_losses(model, x, y, toy_vocab.pad_id)
    assert nll.numel() == int((y != toy_vocab.pad_id).sum())
    # identical to the full-logits loss with ignore_index: padding contributes nothing
    ref = F.cross_entropy(logits.reshape(-1, len(toy_vocab)), y.reshape(-1), ignore_index=toy_vocab.pad_id,
                          reduction="sum")
    torch.testing.assert_close(nll.sum(), ref)
    # more padding (a longer item in the batch) leaves the other items' losses unchanged
    alone = torch.cat([token_losses(model, *make_batch(split, [i], toy_vocab.pad_id), toy_vocab.pad_id)[0]
                       for i in [0, 1, 2, 3]])
    torch.testing.assert_close(torch.sort(alone).values, torch.sort(nll).values, atol=1e-5, rtol=1e-5)
    # gradients flow and the padding embedding gets none
    model.train()
    token_losses(model, x, y, toy_vocab.pad_id)[0].mean().backward()
    assert model.embedding.weight.grad[toy_vocab.pad_id].abs().sum() == 0
    assert all(p.grad is not None for p in model.parameters())


def test_tied_weights_share_one_tensor():
    model = build_model(config("gru", tie_weights=True))
    assert model.decoder.weight is model.embedding.weight
    untied = build_model(config("gru"))
    assert untied.num_parameters() - model.num_parameters() == 12 * 6


def test_unknown_kind_is_a_user_error():
    from rnnlm.errors import UserError
    with pytest.raises(UserError, match="unknown model kind"):
        build_model(config("bilstm"))


def test_locked_dropout_mask_is_the_same_at_every_time_step():
    from rnnlm.models import LockedDropout

    torch.manual_seed(0)
    drop = LockedDropout(0.5)
    out = drop(torch.ones(8, 20, 16))                      # (B, T, H)
    assert torch.equal(out, out[:, :1].expand_as(out))     # constant over time
    assert set(out.unique().tolist()) == {0.0, 2.0}        # kept units scaled by 1 / (1 - p)
    assert not torch.equal(out[0], out[1])                 # a new mask per sequence
    assert 0.3 < (out == 0).float().mean() < 0.7
    drop.eval()
    x = torch.randn(2, 5, 3)
    assert torch.equal(drop(x), x)
    # standard dropout, for contrast, draws a new mask at every position
    std = torch.nn.Dropout(0.5)(torch.ones(8, 20, 16))
    assert not torch.equal(std, std[:, :1].expand_as(std))


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_locked_mode_masks_embeddings_between_layers_and_outputs_constantly_over_time(kind):
    """With the input the same at every step, locked dropout keeps each dropped unit dropped for all steps."""
    torch.manual_seed(0)
    model = build_model(config(kind, layers=2, dropout=0.5, dropout_mode="locked"))
    model.train()
    x = torch.full((4, 7), 3)
    embedded = model.drop(model.embedding(x))
    assert torch.equal(embedded, embedded[:, :1].expand_as(embedded))
    states, _ = model.features(x)
    dropped = states == 0                                  # a dropped output unit is 0 at every step
    assert dropped.any() and torch.equal(dropped, dropped[:, :1].expand_as(dropped))
    model.eval()
    torch.testing.assert_close(model(x)[0], model(x)[0])   # no dropout at evaluation


@pytest.mark.parametrize("kind", ["rnn", "gru", "lstm"])
def test_locked_multi_layer_stack_equals_the_fused_kernel_without_dropout(kind):
    """The layer-by-layer stack behind locked dropout computes what torch's multi-layer kernel does."""
    torch.manual_seed(0)
    fused = build_model(config(kind, layers=2, dropout=0.3)).eval()
    locked = build_model(config(kind, layers=2, dropout=0.3, dropout_mode="locked")).eval()
    with torch.no_grad():
        for name, value in fused.state_dict().items():
            if name.startswith("rnn."):  # rnn.weight_ih_l1 -> rnn.layers.1.weight_ih_l0
                stem, layer = name[len("rnn."):].rsplit("_l", 1)
                locked.state_dict()[f"rnn.layers.{layer}.{stem}_l0"].copy_(value)
            else:
                locked.state_dict()[name].copy_(value)
    x = torch.randint(1, 12, (3, 9))
    h0 = torch.randn(2, 3, 6)
    hidden = (h0, torch.randn(2, 3, 6)) if kind == "lstm" else h0
    out, h = fused(x, hidden)
    ref_out, ref_h = locked(x, hidden)
    torch.testing.assert_close(out, ref_out, atol=1e-6, rtol=0)
    torch.testing.assert_close(h, ref_h, atol=1e-6, rtol=0)
