"""The data stages stream their work: the streamed outputs must equal the in-memory results."""

import json
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from rnnlm.data import encode_split, load_encoded
from rnnlm.ingest import ingest
from rnnlm.text import Normalization
from rnnlm.io import iter_lines, read_jsonl_at, scan_jsonl
from rnnlm.split import split_rows
from rnnlm.vocab import Vocabulary
from tests.conftest import TOY_NAMES
from tests.configs import ingest_config, params_section, split_config

STAGES = Path(__file__).resolve().parents[1] / "stages"
NEWS_WORDS = ["the", "president", "said", "don't", "vote", "at&t", "city", "new", "plan", "rain"]


@pytest.mark.parametrize("text", [
    "", "\n", "a", "a\nb", "a\nb\n", "a\r\nb\r\n\r\n", "a\rb\r", "x\u2028y\x85z\x0cw\n", "\n\nlast",
    "long line " * 50 + "\r\n" + "end",
])
@pytest.mark.parametrize("block", [1, 2, 3, 1 << 20])
def test_iter_lines_matches_splitlines_at_any_block_size(tmp_path, text, block):
    path = tmp_path / "f.txt"
    path.write_bytes(text.encode("utf-8"))
    assert list(iter_lines(path, block_chars=block)) == text.splitlines()


def test_jsonl_scan_reads_lines_back_in_any_order(tmp_path):
    records = [{"text": "é" * i, "category": ["A", "B", None][i % 3]} for i in range(7)]
    for r in records:
        if r["category"] is None:
            del r["category"]
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    offsets, labels = scan_jsonl(path, "category")
    assert labels == [r.get("category") for r in records]
    order = [6, 0, 3, 3, 1]
    assert list(read_jsonl_at(path, offsets, order)) == [records[i] for i in order]


@pytest.mark.parametrize("level, items", [
    ("char", TOY_NAMES),
    ("word", [" ".join(NEWS_WORDS[(i * 7 + j) % 10] for j in range(1 + i % 5)) for i in range(23)]),
])
def test_chunked_encoding_equals_encoding_all_at_once(level, items):
    vocab = Vocabulary.build(items[:15], level, min_freq=1)
    whole = encode_split(vocab, items, chunk_size=10**9)
    # The reference layout, built by hand from per-item encodings.
    ids = [vocab.encode(item) for item in items]
    assert whole.tokens.tolist() == [t for seq in ids for t in seq]
    assert whole.offsets.tolist() == np.concatenate([[0], np.cumsum([len(s) for s in ids])]).tolist()
    assert whole.chars.tolist() == [len(item) + 1 for item in items]
    # Chunk boundaries anywhere (one item, uneven, exactly the length, a generator) change nothing.
    for size in (1, 3, len(items) - 1, len(items)):
        chunked = encode_split(vocab, (item for item in items), chunk_size=size)
        for name in ("tokens", "offsets", "chars"):
            a, b = getattr(whole, name), getattr(chunked, name)
            assert a.dtype == b.dtype and np.array_equal(a, b), (size, name)


def test_encoding_an_empty_split(toy_vocab, tmp_path):
    empty = encode_split(toy_vocab, iter([]), chunk_size=3)
    assert len(empty) == 0 and empty.num_targets == 0
    assert (empty.tokens.dtype, empty.offsets.dtype, empty.chars.dtype) == (np.int32, np.int64, np.int64)
    assert empty.tokens.shape == (0,) and empty.offsets.tolist() == [0] and empty.chars.shape == (0,)


def run_stage(name, args, monkeypatch):
    monkeypatch.setattr(sys, "argv", [f"{name}.py", *map(str, args)])
    monkeypatch.syspath_prepend(str(STAGES))
    runpy.run_path(str(STAGES / f"{name}.py"), run_name="__main__")


def news_file(path):
    lines = []
    for i in range(60):
        words = " ".join(NEWS_WORDS[(i * 3 + j) % 10] for j in range(2 + i % 6))
        lines.append(json.dumps({"category": ["POLITICS", "SPORTS", "TRAVEL"][i % 3],
                                 "short_description": f"{words.title()}!"}))
    lines[7] = '{"broken'               # a reject in the middle
    lines[20] = json.dumps({"category": "X", "short_description": "?!"})  # empty after normalization
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("stratify", [True, False])
def test_stages_stream_the_same_outputs_as_the_in_memory_path(tmp_path, monkeypatch, stratify):
    """ingest -> split -> vocab as scripts (streaming) against the library's in-memory functions."""
    monkeypatch.setattr("rnnlm.data.ENCODE_CHUNK", 4)  # several chunks, the last one partial
    raw = news_file(tmp_path / "raw.jsonl")
    ingest_cfg = params_section("ingest", "news") | {"dedupe": False, "text_fields": ["short_description"],
                                                      "category_field": "category"}
    split_cfg = {"seed": 5, "train": 0.6, "dev": 0.2, "test": 0.2, "stratify": stratify}
    vocab_cfg = params_section("vocab", "news") | {"level": "word", "max_size": 8, "min_freq": 2}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(
        {"ingest": {"news": ingest_cfg}, "split": {"news": split_cfg}, "vocab": {"news": vocab_cfg}}))
    monkeypatch.chdir(tmp_path)

    run_stage("ingest", ["--corpus", "news", "--raw", raw, "--rows", "rows.jsonl", "--rejects", "rejects.jsonl",
                         "--report", "report.json"], monkeypatch)
    run_stage("split", ["--corpus", "news", "--rows", "rows.jsonl", "--out-dir", "splits"], monkeypatch)
    run_stage("vocab", ["--corpus", "news", "--splits", "splits", "--vocab", "vocab.json",
                        "--encoded", "encoded.npz"], monkeypatch)

    result = ingest(raw, ingest_config(**ingest_cfg))
    assert [r["line"] for r in result.rejects] == [8, 21]
    dumps = [json.dumps(r, ensure_ascii=False) + "\n" for r in result.rows]
    assert (tmp_path / "rows.jsonl").read_text(encoding="utf-8") == "".join(dumps)
    assert (tmp_path / "rejects.jsonl").read_text(encoding="utf-8") == "".join(
        json.dumps(r, ensure_ascii=False) + "\n" for r in result.rejects)
    assert json.loads((tmp_path / "report.json").read_text()) == result.report(raw)

    splits = split_rows(result.rows, split_config(**split_cfg))
    for name, rows in splits.items():
        assert (tmp_path / "splits" / f"{name}.txt").read_text(encoding="utf-8").splitlines() == [
            r["text"] for r in rows]
    split_report = json.loads((tmp_path / "splits" / "report.json").read_text())
    assert split_report["items"] == {name: len(rows) for name, rows in splits.items()}
    if stratify:
        assert split_report["categories"]["dev"] == {c: sum(r["category"] == c for r in splits["dev"])
                                                     for c in ("POLITICS", "SPORTS", "TRAVEL")}

    # the vocabulary carries the corpus's ingest rules (rnnlm score/sample normalize with them)
    vocab = Vocabulary.build([r["text"] for r in splits["train"]], "word", max_size=8, min_freq=2,
                             normalization=Normalization.from_config(ingest_config(**ingest_cfg)))
    assert Vocabulary.load(tmp_path / "vocab.json") == vocab
    encoded = load_encoded(tmp_path / "encoded.npz")
    for name, rows in splits.items():
        assert len(encoded[name]) == len(rows) > 4  # more than one chunk
        for i, row in enumerate(rows):
            assert encoded[name].item(i).tolist() == vocab.encode(row["text"])


def test_stratifying_on_codes_gives_the_split_the_label_strings_give():
    from sklearn.model_selection import train_test_split

    from rnnlm.split import _strata, split_indices

    rng = np.random.default_rng(3)
    # Labels that sort around the "<rare>" pool's name, plus rare ones that get pooled.
    labels = list(rng.choice(["b", "A", "zz", "&x", "<a", "Z"], size=400)) + ["once", "twice", "twice"]
    labels = [str(label) for label in labels]
    cfg = split_config(stratify=True, seed=7)
    parts = split_indices(len(labels), labels, cfg)
    strata = _strata(labels, 3)
    train, rest = train_test_split(list(range(len(labels))), train_size=0.8, random_state=7, stratify=strata)
    dev, test = train_test_split(rest, train_size=0.5, random_state=7,
                                 stratify=_strata([strata[i] for i in rest], 2))
    assert {name: idx.tolist() for name, idx in parts.items()} == {"train": train, "dev": dev, "test": test}
