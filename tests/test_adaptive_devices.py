"""Adaptive softmax output (a normalized distribution through the usual contract) and device selection."""

from collections import Counter

import pytest
import torch

from rnnlm.checkpoint import _on_cpu, load_checkpoint, save_checkpoint
from rnnlm.batches import make_batch
from rnnlm.data import encode_split
from rnnlm.devices import autocast, check_precision, resolve_device
from rnnlm.errors import UserError
from rnnlm.evaluation import evaluate_split
from rnnlm.models import ModelConfig, build_model, token_losses
from rnnlm.models.base import TiedTail
from rnnlm.sampling import generate
from rnnlm.seeding import seed_everything
from rnnlm.training import model_config_for, output_for, train_model
from rnnlm.vocab import Vocabulary
from tests.configs import PLAIN_TRAIN, replaced, train_config

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


def argmax_accuracy_by_hand(model, split):
    """Next-token accuracy of ``model`` on ``split``, one item at a time, no batching or padding."""
    hits = targets = 0
    with torch.no_grad():
        for i in range(len(split)):
            item = torch.from_numpy(split.item(i)).long()
            logits, _ = model(item[None, :-1])
            hits += int((logits[0].argmax(-1) == item[1:]).sum())
            targets += len(item) - 1
    return hits / targets


def test_adaptive_model_trains_evaluates_samples_and_reloads(word_data, tmp_path):
    vocab, splits = word_data
    cfg = train_config(embedding_size=8, hidden_size=16, batch_size=8, epochs=4, lr=0.01, workers=1,
                       output="adaptive", adaptive_cutoffs=[6, 20])
    seed_everything(0)  # the untrained model: the weights training starts from
    untrained = build_model(model_config_for("gru", cfg, vocab)).eval()
    untrained.set_target_counts(splits["train"].target_counts(len(vocab)))
    before = evaluate_split(untrained, splits["dev"], vocab.pad_id)["loss"]
    model, record = train_model("gru", cfg, vocab, splits, 0, tmp_path / "m.pt", progress=False)
    result = evaluate_split(model, splits["dev"], vocab.pad_id)
    # measured: 4.058 untrained, 3.722 after 4 epochs; a run whose steps changed nothing stays at 4.058
    assert result["loss"] < before - 0.25, (before, record["history"])
    assert result["loss"] == pytest.approx(record["best_dev_loss"], rel=1e-6)  # training's dev loss, the targets' path
    assert result["accuracy"] == argmax_accuracy_by_hand(model, splits["dev"])
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
    # untied, hidden 8 and two clusters: the second's projection would be 8 // 4**2 = 0 wide
    with pytest.raises(UserError, match="hidden_size 8 is too small for 2 adaptive_cutoffs.*>= 16"):
        build_model(ModelConfig("gru", len(vocab), vocab.pad_id, 8, 8, output="adaptive", adaptive_cutoffs=[6, 20]))
    # hidden 16: one dimension (tied, hidden 8 is fine: tied clusters project to the embedding, tested below)
    model = build_model(ModelConfig("gru", len(vocab), vocab.pad_id, 8, 16, output="adaptive", adaptive_cutoffs=[6, 20]))
    assert all(param.numel() for param in model.parameters())


@pytest.mark.parametrize("output, hidden", [("adaptive", 16), ("adaptive", 8), ("full", 16)])
def test_tied_outputs_read_the_embedding_and_stay_normalized(word_data, output, hidden):
    """Tied: the output's word vectors are the embedding's rows (the adaptive softmax's head shortlist and
    its tail clusters), through a projection when the state is wider than the embedding (always, for a
    tail cluster); the distribution still sums to 1."""
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
    if output == "adaptive":  # a tail word too (id 10: rank 10, past the cut-off 6), every cluster tied
        model.zero_grad()
        model.decoder(states.detach())[0, -1, 10].backward()
        assert model.embedding.weight.grad[10].abs().sum() > 0
        tails = model.decoder.adaptive.tail
        assert all(isinstance(tail, TiedTail) and tail.embedding_weight is model.embedding.weight for tail in tails)
        # the tails read the rows of the ids the ranking puts in them, and follow a new ranking
        counts = torch.arange(len(vocab)).flip(0)   # the highest ids the most frequent
        model.set_target_counts(counts)
        order = torch.sort(-counts, stable=True).indices
        assert torch.equal(tails[0].ids, order[6:]) and torch.equal(model.decoder.adaptive.head.ids, order[:6])
        torch.testing.assert_close(torch.logsumexp(model.decoder(states), -1), torch.zeros(1, 4))


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


def accelerators(monkeypatch, present):
    """This machine as one with (``present``) or without CUDA and MPS, whatever it really has."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: present)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: present)


def test_cpu_path_is_unchanged(toy_vocab, toy_splits, tmp_path, monkeypatch):
    """device: cpu and fp32 add nothing: no autocast, no copies, checkpoints' tensors untouched. An explicit
    cpu trains on the CPU even beside an accelerator, and auto on a machine without one is the same run.
    (The accelerators are declared present or absent, so every machine runs every line.)"""
    with autocast(torch.device("cpu"), "fp32"):
        assert not torch.is_autocast_enabled("cpu")
    state = build_model(ModelConfig("gru", len(toy_vocab), toy_vocab.pad_id, 8, 8)).state_dict()
    moved = _on_cpu(state)
    assert all(moved[k] is v for k, v in state.items()) and moved._metadata == state._metadata
    cfg = train_config(embedding_size=8, hidden_size=8, batch_size=4, epochs=1, workers=1, device="cpu")
    accelerators(monkeypatch, present=True)
    a, rec_a = train_model("gru", cfg, toy_vocab, toy_splits, 0, tmp_path / "a.pt", progress=False)
    assert all(p.device.type == "cpu" for p in a.parameters())
    accelerators(monkeypatch, present=False)
    b, rec_b = train_model("gru", replaced(cfg, device="auto"), toy_vocab, toy_splits, 0,
                           tmp_path / "b.pt", progress=False)
    assert rec_a["history"] == rec_b["history"]
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_adaptive_target_log_probs_match_torch_and_survive_a_lone_cluster_row():
    from rnnlm.models import AdaptiveOutput
    torch.manual_seed(0)
    out = AdaptiveOutput(16, 50, [6, 20])
    out.rank_by_counts(torch.randint(0, 5, (50,)))  # ids ranked otherwise than in id order, ties by id
    states, targets = torch.randn(64, 16), torch.randint(0, 50, (64,))
    # torch's own layer places the tokens by rank
    torch.testing.assert_close(out.target_log_probs(states, targets), out.adaptive(states, out.rank[targets]).output)
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


SENTENCES = ["the cat sat on the mat", "the dog sat on the log", "a cat and a dog", "the cat ate the rat",
             "a rat sat", "don't feed the cat"] * 3


@pytest.fixture
def bpe_data():
    """A BPE vocabulary: specials, the 256 bytes, then 30 merges ("Ġthe", "Ġcat", ...): ids not by frequency."""
    vocab = Vocabulary.build(SENTENCES, "bpe", vocab_size=290)
    return vocab, {name: encode_split(vocab, SENTENCES) for name in ("train", "dev", "test")}


def hand_ranked(vocab, items):
    """Ids by how often they are targets of ``items`` (every token after <s>), ties by id: counted by hand."""
    counts = Counter(token for item in items for token in vocab.encode(item)[1:])
    return sorted(range(len(vocab)), key=lambda i: (-counts[i], i))


@pytest.mark.parametrize("tie_weights", [False, True])
def test_adaptive_head_holds_the_most_frequent_training_targets_whatever_their_ids(bpe_data, tmp_path, tie_weights):
    """BPE ids are in tokenizer order (bytes first): the head must hold the most frequent training targets
    (merges such as "Ġthe", and </s>), not the specials and byte symbols of the first ids; the checkpoint
    keeps the ranking, and the full distribution still sums to 1 and equals the targets' own path."""
    vocab, splits = bpe_data
    cfg = train_config(embedding_size=16, hidden_size=16, batch_size=8, epochs=1, workers=1, output="adaptive",
                       adaptive_cutoffs=[8, 100], tie_weights=tie_weights, **PLAIN_TRAIN)
    model, _ = train_model("gru", cfg, vocab, splits, 0, tmp_path / "m.pt", progress=False)
    ranked = hand_ranked(vocab, SENTENCES)
    head = model.decoder.order[:8].tolist()
    assert head == ranked[:8]
    assert [vocab.tokens[i] for i in head[:3]] == ["Ġthe", "</s>", "Ġcat"]
    assert not set(head) & set(range(4 + 256)) - {vocab.eos_id}  # no byte symbol, no <pad>, <unk>, <s>
    assert model.decoder.rank[vocab.pad_id] >= 8 and model.decoder.rank[vocab.bos_id] >= 8  # never targets
    if tie_weights:  # the head's word rows are the embedding rows of those ids
        assert model.decoder.adaptive.head.ids.tolist() == ranked[:8]
        states = torch.randn(3, 16)
        torch.testing.assert_close(model.decoder.adaptive.head(states)[:, :8],
                                   model.decoder.adaptive.head.project(states) @ model.embedding.weight[ranked[:8]].T)

    loaded, _, payload = load_checkpoint(tmp_path / "m.pt")
    assert torch.equal(payload["model"]["decoder.rank"], model.decoder.rank)
    assert loaded.decoder.order[:8].tolist() == ranked[:8]
    assert evaluate_split(loaded, splits["dev"], vocab.pad_id) == evaluate_split(model, splits["dev"], vocab.pad_id)
    x, y = make_batch(splits["dev"], list(range(6)), vocab.pad_id)
    logits, _ = loaded(x)
    torch.testing.assert_close(logits.exp().sum(-1), torch.ones(x.shape), atol=1e-5, rtol=0)
    nll_full, full_logits, targets = token_losses(loaded, x, y, vocab.pad_id)
    nll_fast, _, _ = token_losses(loaded, x, y, vocab.pad_id, with_logits=False)
    torch.testing.assert_close(nll_fast, nll_full, atol=1e-5, rtol=0)
    torch.testing.assert_close(nll_full, -full_logits.gather(1, targets[:, None]).squeeze(1), atol=1e-5, rtol=0)


def test_a_checkpoint_without_ranks_loads_with_rank_equal_to_id_and_a_bad_ranking_is_refused(word_data, tmp_path):
    vocab, _ = word_data
    model = adaptive_model(vocab)
    model.set_target_counts(torch.arange(len(vocab)))  # the last id the most frequent: the reverse of the ids
    assert model.decoder.order.tolist() == list(range(len(vocab)))[::-1]
    old = {k: v for k, v in model.state_dict().items() if k != "decoder.rank"}  # as saved before ranks existed
    again = adaptive_model(vocab)
    again.load_state_dict(old)
    assert torch.equal(again.decoder.rank, torch.arange(len(vocab)))
    bad = model.state_dict() | {"decoder.rank": torch.zeros(len(vocab), dtype=torch.long)}
    save_checkpoint(tmp_path / "bad.pt", model, vocab, {})
    payload = torch.load(tmp_path / "bad.pt", weights_only=True)
    torch.save(payload | {"model": bad}, tmp_path / "bad.pt")
    with pytest.raises(UserError, match="rank is not a permutation"):
        load_checkpoint(tmp_path / "bad.pt")
