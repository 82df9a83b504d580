"""Adaptive softmax output (a normalized distribution through the usual contract) and device selection."""

import pytest
import torch

from rnnlm.checkpoint import _on_cpu, load_checkpoint
from rnnlm.data import encode_split, make_batch
from rnnlm.devices import autocast, check_precision, resolve_device
from rnnlm.errors import UserError
from rnnlm.evaluation import evaluate_split
from rnnlm.models import ModelConfig, build_model, token_losses
from rnnlm.sampling import generate
from rnnlm.training import output_for, train_model
from rnnlm.vocab import Vocabulary
from tests.configs import replaced, train_config

WORDS = [f"w{i}" for i in range(40)]
TEXTS = [" ".join(WORDS[(i * k) % 40] for k in range(1, 2 + i % 7)) for i in range(60)]


@pytest.fixture
def word_data():
    vocab = Vocabulary.build(TEXTS, "word")
    return vocab, {name: encode_split(vocab, TEXTS[s]) for name, s in
                   (("train", slice(0, 40)), ("dev", slice(40, 50)), ("test", slice(50, 60)))}


def adaptive_model(vocab, **kw):
    torch.manual_seed(0)
    # hidden 16: the second tail cluster's projection is 16 // 4**2 = 1 wide, not empty
    return build_model(ModelConfig("gru", len(vocab), vocab.pad_id, 8, 16, output="adaptive",
                                   adaptive_cutoffs=[6, 20], **kw))


def test_adaptive_output_is_a_normalized_distribution(word_data):
    vocab, splits = word_data
    model = adaptive_model(vocab).eval()
    x, y = make_batch(splits["train"], [0, 1, 2, 3], vocab.pad_id)
    logits, _ = model(x)
    assert logits.shape == (*x.shape, len(vocab))
    torch.testing.assert_close(logits.exp().sum(-1), torch.ones(x.shape), atol=1e-5, rtol=0)
    # the training path (target log-probs alone) and the full distribution agree
    nll_full, sel_logits, targets = token_losses(model, x, y, vocab.pad_id)
    nll_fast, none, same_targets = token_losses(model, x, y, vocab.pad_id, with_logits=False)
    assert none is None and torch.equal(targets, same_targets)
    torch.testing.assert_close(nll_fast, nll_full, atol=1e-5, rtol=0)
    torch.testing.assert_close(nll_full, -sel_logits.gather(1, targets[:, None]).squeeze(1), atol=1e-5, rtol=0)


def test_adaptive_model_trains_evaluates_samples_and_reloads(word_data, tmp_path):
    vocab, splits = word_data
    cfg = train_config(embedding_size=8, hidden_size=16, batch_size=8, epochs=2, workers=1, output="adaptive",
                      adaptive_cutoffs=[6, 20])
    model, record = train_model("gru", cfg, vocab, splits, 0, tmp_path / "m.pt", progress=False)
    assert record["history"][-1]["train_loss"] < record["history"][0]["train_loss"] + 1.0
    result = evaluate_split(model, splits["dev"], vocab.pad_id)
    assert 0 <= result["accuracy"] <= 1 and result["loss"] > 0
    loaded, _, _ = load_checkpoint(tmp_path / "m.pt")
    assert evaluate_split(loaded, splits["dev"], vocab.pad_id) == result
    texts = generate(loaded, vocab, 3, temperature=1.0, top_k=5, max_tokens=5,
                     generator=torch.Generator().manual_seed(0))
    assert len(texts) == 3 and all(tok in vocab.index for t in texts for tok in t.split())


def test_adaptive_settings_are_checked(word_data):
    vocab, _ = word_data
    with pytest.raises(UserError, match="adaptive_cutoffs"):
        build_model(ModelConfig("gru", len(vocab), vocab.pad_id, 8, 8, output="adaptive",
                                adaptive_cutoffs=[6, len(vocab)]))
    with pytest.raises(UserError, match="adaptive_cutoffs"):
        train_config("news", **{"output": "adaptive", "adaptive_cutoffs": [10, 5]})
    with pytest.raises(UserError, match="output"):
        train_config("news", **{"output": "hierarchical"})


@pytest.mark.parametrize("output, hidden", [("adaptive", 16), ("adaptive", 8), ("full", 16)])
def test_tied_outputs_read_the_embedding_and_stay_normalized(word_data, output, hidden):
    """Tied: the output's word vectors are the embedding's rows (the adaptive head's shortlist), through
    a projection when the state is wider than the embedding; the distribution still sums to 1."""
    vocab, _ = word_data
    torch.manual_seed(0)
    model = build_model(ModelConfig("gru", len(vocab), vocab.pad_id, 8, hidden, output=output, tie_weights=True,
                                    adaptive_cutoffs=[6] if output == "adaptive" else None)).eval()
    shared = [p for p in model.decoder.parameters() if p is model.embedding.weight]
    assert len(shared) == 1  # the output holds the embedding matrix itself, not a copy
    x = torch.tensor([[vocab.bos_id, 5, 6, 7]])
    logits, _ = model(x)
    torch.testing.assert_close(torch.logsumexp(torch.log_softmax(logits, -1), -1), torch.zeros(1, 4))
    # the output gradient reaches the embedding rows the output reads (a shortlist word: id 5 < 6)
    model.train()
    with torch.no_grad():
        states, _ = model.features(x)
    model.decoder(states.detach())[0, -1, 5].backward()
    assert model.embedding.weight.grad[5].abs().sum() > 0


@pytest.mark.parametrize("cuda, mps, expected", [(True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")])
def test_auto_picks_an_accelerator_when_present(monkeypatch, cuda, mps, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu").type == "cpu"  # an explicit cpu ignores the accelerator


def test_absent_devices_and_cpu_bf16_are_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(UserError, match="no CUDA GPU"):
        resolve_device("cuda")
    with pytest.raises(UserError, match="MPS"):
        resolve_device("mps")
    with pytest.raises(UserError, match="bf16 needs a CUDA device"):
        check_precision("bf16", torch.device("cpu"))
    with pytest.raises(UserError, match="bf16 autocast needs a CUDA device"):
        train_config("names", **{"precision": "bf16"})
    with pytest.raises(UserError, match="device"):
        train_config("names", **{"device": "tpu"})
    # auto resolving to the CPU with bf16 is caught when training starts
    cfg = train_config(device="auto", precision="bf16", workers=1)
    with pytest.raises(UserError, match="bf16 needs a CUDA device"):
        train_model("gru", cfg, None, None, 0, "unused.pt", progress=False)


def test_cpu_path_is_unchanged(toy_vocab, toy_splits, tmp_path):
    """device: cpu and fp32 add nothing: no autocast, no copies, checkpoints' tensors untouched."""
    with autocast(torch.device("cpu"), "fp32"):
        assert not torch.is_autocast_enabled("cpu")
    state = build_model(ModelConfig("gru", len(toy_vocab), toy_vocab.pad_id, 8, 8)).state_dict()
    moved = _on_cpu(state)
    assert all(moved[k] is v for k, v in state.items()) and moved._metadata == state._metadata
    cfg = train_config(embedding_size=8, hidden_size=8, batch_size=4, epochs=1, workers=1)
    a, rec_a = train_model("gru", cfg, toy_vocab, toy_splits, 0, tmp_path / "a.pt", progress=False)
    if torch.cuda.is_available() or torch.backends.mps.is_available():
        return  # auto would pick the accelerator: the comparison below is for CPU-only machines
    b, rec_b = train_model("gru", replaced(cfg, device="auto"), toy_vocab, toy_splits, 0,
                           tmp_path / "b.pt", progress=False)
    assert rec_a["history"] == rec_b["history"]


def test_adaptive_target_log_probs_match_torch_and_survive_a_lone_cluster_row():
    from rnnlm.models import AdaptiveOutput
    torch.manual_seed(0)
    out = AdaptiveOutput(16, 50, [6, 20])
    states, targets = torch.randn(64, 16), torch.randint(0, 50, (64,))
    torch.testing.assert_close(out.target_log_probs(states, targets), out.adaptive(states, targets).output)
    # one target alone in the first tail cluster: the case torch's own forward gets wrong on CUDA
    lone = torch.tensor([1, 2, 7, 3])
    torch.testing.assert_close(out.target_log_probs(states[:4], lone),
                               out(states[:4]).gather(1, lone[:, None]).squeeze(1), atol=1e-6, rtol=0)


def test_cutoffs_past_a_smaller_vocabulary_are_dropped():
    """The news params meet a 48-symbol char or a 4,000-piece bpe vocabulary: no error, a fitting output."""
    cfg = train_config(output="adaptive", adaptive_cutoffs=[1000, 4000])
    assert output_for(cfg, 8399) == ("adaptive", [1000, 4000])
    assert output_for(cfg, 4000) == ("adaptive", [1000])       # 4000 would leave no tail cluster
    assert output_for(cfg, 48) == ("full", None)               # nothing left: a plain softmax
    assert output_for(train_config(output="full"), 8399) == ("full", None)
