import pytest
import torch
import torch.nn.functional as F

from rnnlm.config import MODEL_KINDS
from rnnlm.data import make_batch
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
        build_model(config("transformer"))
