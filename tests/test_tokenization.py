"""Tokenization levels: BPE round trips and fitting, OOV characters, every level trains, fair bits/char."""

import math
import unicodedata

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnlm.checkpoint import load_checkpoint, save_checkpoint
from rnnlm.data import encode_split
from rnnlm.errors import UserError
from rnnlm.evaluation import evaluate_split
from rnnlm.models import ModelConfig, build_model
from rnnlm.report import tokenization_table
from rnnlm.sampling import generate
from rnnlm.text import normalize_news
from rnnlm import tokenization
from rnnlm.tokenization import compare_tokenizations
from rnnlm.vocab import SPECIALS, Vocabulary
from tests.configs import train_config, vocab_config

NEWS = [
    "the president said on tuesday that he would not stop the talks",
    "she's the first woman to lead the company since it was founded in 1902",
    "a new study finds that people who sleep more live longer",
    "the senate voted to pass the bill after a long debate",
    "at&t and verizon said their networks were back after the outage",
    "the president's plan would cut taxes for most families",
    "people around the world watched the launch on tuesday",
    "the company said it would hire more people next year",
] * 3
DEV = ["the senate said the plan would pass", "people watched the debate"]
TEST = ["the president watched the launch", "a zyxqv study finds nothing"]


@pytest.fixture(scope="module")
def bpe_vocab():
    return Vocabulary.build(NEWS, "bpe", vocab_size=500, min_freq=2)


def test_bpe_keeps_special_ids(bpe_vocab):
    assert bpe_vocab.tokens[:4] == list(SPECIALS)
    assert (bpe_vocab.pad_id, bpe_vocab.unk_id, bpe_vocab.bos_id, bpe_vocab.eos_id) == (0, 1, 2, 3)
    assert 260 < len(bpe_vocab) <= 500  # 4 specials + 256 bytes + some merges


@pytest.mark.parametrize("text", [
    "the president said on tuesday that he would not stop the talks",
    "don't stop at&t's 2024 plans",
    "zoë and josé in são paulo",          # letters never seen in training: bytes, not <unk>
    "a",
    "",
])
def test_bpe_round_trip_fixed_sentences(bpe_vocab, text):
    ids = bpe_vocab.encode(text)
    assert ids[0] == bpe_vocab.bos_id and ids[-1] == bpe_vocab.eos_id
    assert bpe_vocab.unk_id not in ids
    decoded = bpe_vocab.decode(ids)
    assert decoded == text
    assert "Ġ" not in decoded


def test_bpe_decodes_common_words_as_few_tokens(bpe_vocab):
    # merges happened: a frequent training word is far fewer tokens than bytes
    assert len(bpe_vocab.encode("the president")) - 2 < len("the president") // 2


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=60))
def test_bpe_round_trip_gives_normalized_text(bpe_vocab, raw):
    text, _ = normalize_news(raw)
    if text is None:
        return
    assert bpe_vocab.decode(bpe_vocab.encode(text)) == unicodedata.normalize("NFC", text)


def test_bpe_is_fit_on_training_items_only():
    test_only = "qjxw"
    vocab = Vocabulary.build(NEWS, "bpe", vocab_size=1000, min_freq=1)
    learnt = vocab.tokens[4 + 256:]  # every entry past the specials and the byte alphabet is a merge
    assert learnt and not any(piece in tok for tok in learnt for piece in ("qj", "jx", "xw"))
    merges = vocab.to_dict()["tokenizer"]["model"]["merges"]
    assert not any(set(m if isinstance(m, list) else m.split()) <= set(test_only) for m in merges)
    # while the same string, when in the training items, does become one token
    grown = Vocabulary.build(NEWS + [f"the {test_only} {test_only} {test_only}"] * 5, "bpe",
                             vocab_size=1000, min_freq=1)
    assert any(test_only in tok for tok in grown.tokens)


def test_bpe_vocabulary_saves_and_loads_with_its_tokenizer(tmp_path, bpe_vocab):
    bpe_vocab.save(tmp_path / "v.json")
    loaded = Vocabulary.load(tmp_path / "v.json")
    assert loaded == bpe_vocab
    assert loaded.encode(TEST[0]) == bpe_vocab.encode(TEST[0])
    payload = loaded.to_dict()
    payload["tokenizer"] = None
    with pytest.raises(UserError, match="must carry its 'tokenizer'"):
        Vocabulary.from_dict(payload)
    payload = loaded.to_dict()
    payload["tokens"] = payload["tokens"][:-1]
    with pytest.raises(UserError, match="tokens differ"):
        Vocabulary.from_dict(payload)


def test_bpe_checkpoint_samples_readable_text_on_its_own(tmp_path, bpe_vocab):
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind="gru", vocab_size=len(bpe_vocab), pad_id=0, embedding_size=8,
                                    hidden_size=8))
    save_checkpoint(tmp_path / "m.pt", model, bpe_vocab, {"epochs_done": 0})
    model, vocab, _ = load_checkpoint(tmp_path / "m.pt")   # the vocabulary and tokenizer come from the file
    texts = generate(model, vocab, 5, prompt="the president", max_tokens=10,
                     generator=torch.Generator().manual_seed(0))
    for text in texts:
        assert text.startswith("the president")
        assert "Ġ" not in text and not any(special in text for special in SPECIALS)


def test_oov_chars_count_the_characters_of_unknown_words():
    vocab = Vocabulary.build(["the cat sat", "the cat ran"], "word")
    assert vocab.unknown_chars(["the dog sat", "a cat"]) == len("dog") + len("a")
    chars = Vocabulary.build(["abc"], "char")
    assert chars.unknown_chars(["abxd"]) == 2
    assert Vocabulary.build(NEWS, "bpe", vocab_size=300).unknown_chars(TEST + ["zoë ☃"]) == 0


def test_config_accepts_bpe_and_checks_sizes():
    assert vocab_config("news", **{"level": "bpe", "vocab_size": 500}).vocab_size == 500
    with pytest.raises(UserError, match="vocab.news.vocab_size must be >= 260"):
        vocab_config("news", **{"level": "bpe", "vocab_size": 100})
    with pytest.raises(UserError, match="vocab.news.level must be one of char, word, bpe"):
        vocab_config("news", **{"level": "byte"})


def test_uniform_model_bits_per_char_is_log2_vocab_times_tokens_per_char(bpe_vocab):
    for vocab in (bpe_vocab, Vocabulary.build(NEWS, "word"), Vocabulary.build(NEWS, "char")):
        model = build_model(ModelConfig(kind="rnn", vocab_size=len(vocab), pad_id=0, embedding_size=4,
                                        hidden_size=4))
        with torch.no_grad():  # zero output layer: equal logits, so every token has probability 1/V
            for p in model.decoder.parameters():
                p.zero_()
        split = encode_split(vocab, TEST + DEV)
        result = evaluate_split(model, split, vocab.pad_id)
        tokens, chars = split.num_targets, int(split.chars.sum())
        assert result["tokens"] == tokens
        assert result["bits_per_char"] == pytest.approx(math.log2(len(vocab)) * tokens / chars, rel=1e-6)


def test_the_same_model_code_trains_at_every_level():
    items = {"train": NEWS, "dev": DEV, "test": TEST}
    configs = {level: vocab_config(level=level, vocab_size=300) for level in ("word", "bpe", "char")}
    cfg = train_config(embedding_size=8, hidden_size=8, batch_size=4, epochs=3, lr=0.01, seeds=[0], workers=1)
    results = compare_tokenizations(items, configs, "gru", cfg, seed=0, log=lambda *_: None, progress=False)
    assert list(results) == ["word", "bpe", "char"]
    for level, result in results.items():
        test = result["test"]
        assert math.isfinite(test["bits_per_char"]) and test["bits_per_char"] > 0
        assert test["chars"] == sum(len(t) + 1 for t in TEST)
        # a uniform guess scores log(V) nats per token; training must do better on seen text
        assert result["dev_loss"] < math.log(result["vocab_size"]), level
    word = results["word"]["test"]
    assert word["oov_char_share"] == pytest.approx(len("zyxqvnothing") / word["chars"])  # both OOV words, all letters
    assert results["bpe"]["test"]["oov_rate"] == results["bpe"]["test"]["oov_char_share"] == 0
    assert results["char"]["test"]["tokens_per_char"] == 1  # one token per character, the end counted as one
    assert results["word"]["test"]["tokens_per_char"] < results["bpe"]["test"]["tokens_per_char"] < 1

    table = tokenization_table("news", {"kind": "gru", "epochs": 2, "seed": 0, "levels": results})
    assert table.startswith("## news: tokenization")
    assert len([line for line in table.splitlines() if line.startswith("| ")]) == 4  # header + 3 levels
    best = min(results, key=lambda lv: results[lv]["test"]["bits_per_char"])
    assert f"**{best}** (best)" in table
    assert tokenization_table("news", {"levels": {}}) == ""  # the stage compared nothing: no table


def test_bpe_fit_is_deterministic():
    # the trainer counts pairs in hash maps seeded per build: equal inputs must still give equal merges
    first, second = (Vocabulary.build(NEWS, "bpe", vocab_size=400) for _ in range(2))
    assert first.to_dict() == second.to_dict()


def test_the_comparison_reports_the_dev_loss_of_the_epoch_it_tests(monkeypatch):
    """The tested weights are the best dev epoch's (train_model keeps them), not the last one's."""
    real_train_model = tokenization.train_model

    def train_then_worsen(*args, **kwargs):
        model, record = real_train_model(*args, **kwargs)
        record["history"].append({"epoch": 99, "train_loss": 0.0, "dev_loss": 1e9})  # a later, worse epoch
        return model, record

    monkeypatch.setattr(tokenization, "train_model", train_then_worsen)
    items = {"train": NEWS, "dev": DEV, "test": TEST}
    cfg = train_config(embedding_size=8, hidden_size=8, batch_size=4, epochs=2, lr=0.01, seeds=[0], workers=1)
    result = compare_tokenizations(items, {"char": vocab_config(level="char")}, "gru", cfg, seed=0,
                                   log=lambda *_: None, progress=False)["char"]
    assert result["best_epoch"] in (1, 2)
    assert result["dev_loss"] < math.log(result["vocab_size"])
