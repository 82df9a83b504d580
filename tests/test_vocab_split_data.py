import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from rnnlm.batches import make_batch
from rnnlm.data import batch_indices, encode_split, load_encoded, save_encoded
from rnnlm.errors import UserError
from rnnlm.split import minimum_rows, split_indices, split_rows, split_sizes
from rnnlm.vocab import BOS, EOS, PAD, UNK, Vocabulary
from tests.conftest import TOY_NAMES
from tests.configs import params_section, split_config

ROOT = Path(__file__).resolve().parents[1]


def test_vocab_round_trip(tmp_path, toy_vocab):
    toy_vocab.save(tmp_path / "v.json")
    loaded = Vocabulary.load(tmp_path / "v.json")
    assert loaded == toy_vocab
    assert loaded.tokens[:4] == [PAD, UNK, BOS, EOS]
    ids = loaded.encode("emma")
    assert ids[0] == loaded.bos_id and ids[-1] == loaded.eos_id
    assert loaded.decode(ids) == "emma"


def test_vocab_is_fit_on_given_items_only():
    vocab = Vocabulary.build(["ab", "abb"], "char")
    assert vocab.tokens[4:] == ["b", "a"]  # by frequency
    assert vocab.encode("abz")[1:-1] == [vocab.index["a"], vocab.index["b"], vocab.unk_id]


def test_word_vocab_limits_and_unknowns():
    items = ["the cat sat", "the dog sat", "the cat ran"]
    vocab = Vocabulary.build(items, "word", max_size=6, min_freq=2)
    assert vocab.tokens[4:] == ["the", "cat"]  # "sat" ties with "cat" but loses on lexical order
    assert vocab.encode("the bird")[1:-1] == [vocab.index["the"], vocab.unk_id]
    assert Vocabulary.build(items, "word", min_freq=2).tokens[4:] == ["the", "cat", "sat"]


def test_word_decode_reattaches_apostrophes():
    vocab = Vocabulary.build(["don't stop the president's car"], "word")
    assert vocab.decode(vocab.encode("don't stop the president's car")) == "don't stop the president's car"


@pytest.mark.parametrize("payload, message", [
    ({"tokens": ["a"]}, "unsupported vocabulary format"),
    ({"format_version": 1, "level": "char", "tokens": ["a", "b"]}, "special tokens"),
    ({"format_version": 1, "level": "char", "tokens": [PAD, UNK, BOS, EOS, "a", "a"]}, "duplicate"),
    ({"format_version": 1, "level": "byte", "tokens": [PAD, UNK, BOS, EOS]}, "level"),
    ({"format_version": 1, "level": "char", "tokens": [PAD, UNK, BOS, EOS, 3]}, "non-empty string"),
    ([1, 2], "not a vocabulary"),
])
def test_bad_vocab_files_are_rejected(tmp_path, payload, message):
    path = tmp_path / "v.json"
    path.write_text(json.dumps(payload))
    with pytest.raises(UserError, match=message):
        Vocabulary.load(path)


def test_seed_split_matches_global_random_shuffle():
    items = [f"n{i}" for i in range(1000)]
    expected = list(items)
    random.seed(123)
    random.shuffle(expected)
    rows = [{"text": t} for t in items]
    splits = split_rows(rows, split_config())
    assert [r["text"] for r in splits["train"]] == expected[:800]
    assert [r["text"] for r in splits["dev"]] == expected[800:900]
    assert [r["text"] for r in splits["test"]] == expected[900:]


def test_split_is_deterministic_and_disjoint():
    rows = [{"text": f"item{i}", "category": "ab"[i % 2] if i % 17 else "rare"} for i in range(500)]
    for cfg in (split_config(), split_config(stratify=True)):
        a, b = split_rows(rows, cfg), split_rows(rows, cfg)
        assert a == b
        texts = [{r["text"] for r in a[name]} for name in ("train", "dev", "test")]
        assert not (texts[0] & texts[1] or texts[0] & texts[2] or texts[1] & texts[2])
        assert sum(map(len, texts)) == len(rows)


def test_stratified_split_keeps_category_mix():
    rows = [{"text": str(i), "category": "big" if i % 5 else "small"} for i in range(1000)]
    splits = split_rows(rows, split_config(stratify=True))
    for name, size in (("train", 800), ("dev", 100), ("test", 100)):
        assert len(splits[name]) == size
        assert sum(r["category"] == "small" for r in splits[name]) == size // 5


def test_stratify_needs_categories():
    with pytest.raises(UserError, match="category"):
        split_rows([{"text": str(i)} for i in range(10)], split_config(stratify=True))


def test_encoded_round_trip_is_byte_identical(tmp_path, toy_vocab):
    splits = {name: encode_split(toy_vocab, TOY_NAMES) for name in ("train", "dev", "test")}
    save_encoded(tmp_path / "a.npz", splits)
    save_encoded(tmp_path / "b.npz", splits)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    loaded = load_encoded(tmp_path / "a.npz")
    assert list(loaded["dev"].item(2)) == toy_vocab.encode(TOY_NAMES[2])
    assert loaded["dev"].chars.tolist() == [len(n) + 1 for n in TOY_NAMES]
    assert loaded["dev"].num_targets == sum(len(n) + 1 for n in TOY_NAMES)


def test_batches_pad_per_batch_and_cover_every_item(toy_vocab):
    split = encode_split(toy_vocab, TOY_NAMES)
    batches = batch_indices(split.lengths, 4, np.random.default_rng(0), bucket=True)
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(TOY_NAMES)))
    for idx in batches:
        x, y = make_batch(split, idx, toy_vocab.pad_id)
        assert x.shape[1] == max(len(TOY_NAMES[i]) + 1 for i in idx)
        assert int((y != toy_vocab.pad_id).sum()) == sum(len(TOY_NAMES[i]) + 1 for i in idx)
        for row, i in enumerate(idx):
            seq = toy_vocab.encode(TOY_NAMES[i])
            n = len(seq) - 1
            assert x[row, :n].tolist() == seq[:-1] and y[row, :n].tolist() == seq[1:]
            assert (y[row, n:] == toy_vocab.pad_id).all()


@pytest.mark.parametrize("fractions, minimum", [((0.8, 0.1, 0.1), 6), ((0.7, 0.2, 0.1), 4),
                                                ((0.98, 0.01, 0.01), 51), ((0.5, 0.25, 0.25), 3)])
@pytest.mark.parametrize("stratify", [False, True])
def test_the_minimum_rows_leave_no_split_empty_and_one_fewer_does(fractions, minimum, stratify):
    """The minimum is computed from the fractions: every count from it on gives three non-empty splits of
    the sizes ``split_sizes`` says, and one row fewer is refused in one line that names it."""
    cfg = split_config(train=fractions[0], dev=fractions[1], test=fractions[2], stratify=stratify)
    assert minimum_rows(cfg) == minimum
    for n in range(minimum, minimum + 120):
        parts = split_indices(n, ["a" if i % 3 else "b" for i in range(n)] if stratify else [None] * n, cfg)
        assert {name: len(idx) for name, idx in parts.items()} == split_sizes(n, cfg)
        assert min(map(len, parts.values())) >= 1
    for n in (minimum - 1, 1, 0):
        with pytest.raises(UserError, match=f"need at least {minimum} rows") as err:
            split_indices(n, ["a"] * n, cfg)
        assert len(str(err.value).splitlines()) == 1 and f"{n} rows leave the" in str(err.value)


def test_empty_splits_reaching_evaluation_or_training_are_user_errors(toy_vocab, toy_splits, tmp_path):
    from rnnlm.evaluation import evaluate_split
    from rnnlm.results import summarize
    from rnnlm.models import ModelConfig, build_model
    from rnnlm.training import train_model
    from tests.configs import train_config

    empty = encode_split(toy_vocab, [])
    model = build_model(ModelConfig("gru", len(toy_vocab), toy_vocab.pad_id, 8, 8))
    with pytest.raises(UserError, match="no items to score"):
        evaluate_split(model, empty, toy_vocab.pad_id)
    with pytest.raises(UserError, match="no items to score"):
        summarize(0.0, 0, 0, 0)
    cfg = train_config(embedding_size=8, hidden_size=8, batch_size=4, epochs=1, workers=1)
    for name in ("train", "dev"):
        with pytest.raises(UserError, match=f"the {name} split has no items"):
            train_model("gru", cfg, toy_vocab, toy_splits | {name: empty}, 0, tmp_path / "m.pt", progress=False)
    assert not (tmp_path / "m.pt").exists()


@pytest.mark.parametrize("stratify", [False, True])
def test_the_split_stage_refuses_too_few_rows_in_one_line(tmp_path, stratify):
    """The stage itself, on a toy corpus of 5 rows (6 are the minimum at 80/10/10): one line, exit 2,
    nothing written; 6 rows make three non-empty splits."""
    section = {"seed": 123, "train": 0.8, "dev": 0.1, "test": 0.1, "stratify": stratify}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"split": {"toy": section},  # the stage reads these too
                                                          "ingest": {"toy": params_section("ingest")},
                                                          "vocab": {"toy": params_section("vocab")}}))
    for rows, expected in ((5, None), (6, {"train": 4, "dev": 1, "test": 1})):
        lines = [json.dumps({"text": name, "category": "ab"[i % 2]}) for i, name in enumerate(TOY_NAMES[:rows])]
        (tmp_path / "rows.jsonl").write_text("\n".join(lines) + "\n")
        out = tmp_path / f"out{rows}"
        done = subprocess.run([sys.executable, str(ROOT / "stages" / "split.py"), "--corpus", "toy",
                               "--rows", "rows.jsonl", "--out-dir", str(out)], cwd=tmp_path, capture_output=True,
                              text=True)
        if expected is None:
            assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
            assert done.stderr.splitlines() == [
                "error: 5 rows leave the dev split empty: the split's fractions (train 0.8, dev 0.1, test 0.1"
                f"{', stratified' if stratify else ''}) need at least 6 rows"]
            assert not out.exists()
        else:
            assert done.returncode == 0, done.stderr
            assert json.loads((out / "report.json").read_text())["items"] == expected
            assert all((out / f"{name}.txt").read_text().strip() for name in expected)
