"""Long texts read as one stream: ingest, the contiguous cut, stream vocabularies, batching with carried state,
stream scoring (carried blocks and the sliding window), sampling, and the model files (docs/streams.md)."""

import io
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rnnlm.arpa import write_arpa
from rnnlm.checkpoint import save_checkpoint
from rnnlm.cli import main
from rnnlm.data import StreamWriter, encode_stream, joined_streams, load_encoded, save_encoded, stream_dtype
from rnnlm.errors import UserError
from rnnlm.evaluation import evaluate_split
from rnnlm.ingest import ingest_stream
from rnnlm.lm import mixture_spec
from rnnlm.mixture import evaluate_mixtures
from rnnlm.models import ModelConfig, build_model, stream_losses
from rnnlm.ngram import KneserNeyLM
from rnnlm.results import summarize
from rnnlm.sampling import ModelStepper, generate, sample_ids, stream_sample_statistics
from rnnlm.stream_scoring import StreamReader, evaluate_stream, stream_target_losses
from rnnlm.streams import CarriedState, StreamChunks, StreamPlan, epoch_chunks, epoch_plan
from rnnlm.text import Normalization
from rnnlm.textstream import (StreamCut, count_units, cut_stream, decode_stream_lines, file_blocks, line_blocks,
                              split_stream, text_blocks)
from rnnlm.seeding import seed_everything
from rnnlm.training import model_config_for, train_epoch, train_model
from rnnlm.vocab import Vocabulary
from tests.configs import PLAIN_TRAIN, ingest_config, split_config, train_config

TEXT_RULES = Normalization("text", "", False, False)


def play(speeches=40, seed=0):
    """A small play: speakers, verse, blank lines between speeches (a stream like tinyshakespeare)."""
    rng = random.Random(seed)
    words = "the king my lord thou art hath love night day sweet death come go not what".split()
    parts = []
    for _ in range(speeches):
        lines = [" ".join(rng.choice(words) for _ in range(rng.randint(2, 7))).capitalize() + rng.choice(",.;!?")
                 for _ in range(rng.randint(1, 3))]
        parts.append(f"{rng.choice(['ROMEO', 'JULIET', 'NURSE'])}:\n" + "\n".join(lines) + "\n")
    return "\n".join(parts)


def stream_splits(text, level="char", train=0.8, dev=0.1):
    ranges, _ = cut_stream(text, level, split_config("shakespeare", train=train, dev=dev, test=1 - train - dev))
    texts = {name: text[start:end] for name, (start, end) in ranges.items()}
    vocab = Vocabulary.build(text_blocks(texts["train"], level, size=50), level, vocab_size=300, normalization=TEXT_RULES,
                             stream=True)
    return vocab, {name: encode_stream(vocab, piece) for name, piece in texts.items()}, texts


def stream_config(**changes):
    return train_config("shakespeare", **(PLAIN_TRAIN | dict(embedding_size=8, hidden_size=16, batch_size=4, bptt=8,
                                                             epochs=1, seeds=[0], workers=1) | changes))


# --- ingest and the cut -----------------------------------------------------------------------

def test_stream_ingest_keeps_blank_lines_and_reports_a_bad_line_by_number(tmp_path):
    raw = tmp_path / "play.txt"
    raw.write_bytes(b"\xef\xbb\xbfROMEO:\r\nBut soft!\r\n\r\n\xff\xfe bad bytes\n\nJULIET:\nAy me.")
    rows, rejects = [], []
    for row, reject in ingest_stream(raw, ingest_config("shakespeare")):
        (rows if row is not None else rejects).append(row or reject)
    assert "".join(row["text"] for row in rows) == "ROMEO:\nBut soft!\n\n\nJULIET:\nAy me."  # BOM, CRLF; no last \n
    assert [row["line"] for row in rows] == [1, 2, 3, 5, 6, 7]                               # blank lines kept
    assert [(r["line"], r["reason"]) for r in rejects] == [(4, "invalid_utf8")]
    with pytest.raises(UserError, match=r"play.txt:4: invalid_utf8"):
        list(ingest_stream(raw, ingest_config("shakespeare", bad_rows_fatal=True)))


def test_decode_stream_lines_joins_back_to_the_text():
    text = "a\n\nb c\r\nlast"
    assert "".join(t for _, t, _ in decode_stream_lines(io.BytesIO(text.encode()))) == "a\n\nb c\nlast"


def test_the_char_cut_gives_nanogpts_val_as_dev_and_test(tmp_path):
    text = play(60) + "Zoë — naïve café\n"  # non-ASCII characters count as one each
    texts, report = split_stream([{"text": line} for line in text.splitlines(keepends=True)], "char",
                                 split_config("shakespeare", train=0.9, dev=0.05, test=0.05))
    n = len(text)
    assert texts["dev"] + texts["test"] == text[int(0.9 * n):]                  # nanoGPT's val, exactly
    assert texts["train"] == text[:int(0.9 * n)] and texts["dev"] == text[int(0.9 * n):int((0.9 + 0.05) * n)]
    assert report["units"] == {"train": int(0.9 * n), "dev": int(0.95 * n) - int(0.9 * n), "test": n - int(0.95 * n)}
    assert report["chars"] == {name: len(piece) for name, piece in texts.items()} and not report["predefined"]


@pytest.mark.parametrize("level", ["char", "word", "bpe"])
def test_a_cut_at_any_level_keeps_the_text_and_its_tokens(level):
    text = play(30) + "don't stop  the   night\n\n"
    ranges, units = cut_stream(text, level, split_config("shakespeare", train=0.7, dev=0.15, test=0.15))
    pieces = {name: text[start:end] for name, (start, end) in ranges.items()}
    assert "".join(pieces[name] for name in ("train", "dev", "test")) == text
    n = count_units(text, level)
    assert units == {"train": int(0.7 * n), "dev": int(0.85 * n) - int(0.7 * n), "test": n - int(0.85 * n)}
    assert {name: count_units(piece, level) for name, piece in pieces.items()} == units
    vocab, splits, _ = stream_splits(text, level, 0.7, 0.15)
    whole = encode_stream(vocab, pieces["dev"] + pieces["test"])
    joined = joined_streams(splits["dev"], splits["test"])
    assert joined.tokens.tolist() == whole.tokens.tolist() and joined.chars.tolist() == whole.chars.tolist()


@pytest.mark.parametrize("level", ["char", "word", "bpe"])
def test_the_cut_read_in_blocks_is_the_cut_of_the_whole_text(level, tmp_path):
    """The split stage holds a block at a time (StreamCut, line_blocks); however small the blocks, it cuts
    where the whole text's rule (cut_stream) cuts, and the blocks' units and ids are the text's, also for
    byte-level BPE around spaces and newlines."""
    text = play(30) + "  an indented line\ntrailing spaces  \n\n   \n\nlast words"
    rows = [{"line": i, "text": line} for i, line in enumerate(text.splitlines(keepends=True), start=1)]
    # train ends at a line start (char level: blocks of one line then start exactly at the cut)
    line_start = text.index("\n", len(text) // 2) + 1
    train = (line_start + 0.5) / len(text) if level == "char" else 0.61
    fractions = split_config("shakespeare", train=train, dev=0.2, test=0.8 - train)
    ranges, units = cut_stream(text, level, fractions)
    assert level != "char" or ranges["train"] == (0, line_start)
    vocab, _, _ = stream_splits(text, level)
    for size in (1, 5, 40, 1 << 20):   # 1: a block per line wherever a cut is clean
        blocks = [block for _, block in line_blocks(((None, row["text"]) for row in rows), level, size)]
        assert "".join(blocks) == text and (size > 1 or len(blocks) > 30)
        assert sum(count_units(block, level) for block in blocks) == count_units(text, level)
        assert [i for block in blocks for i in vocab.stream_ids(block)] == vocab.stream_ids(text)
        passes = []   # the rows are read twice: once to count, once to write
        cut = StreamCut(lambda: passes.append(1) or iter(rows), level, fractions, block_size=size)
        texts = dict.fromkeys(("train", "dev", "test"), "")
        for split, piece in cut.pieces():
            texts[split] += piece
        assert len(passes) == 2
        assert texts == {name: text[start:end] for name, (start, end) in ranges.items()}, size
        assert cut.report()["units"] == units and cut.report()["chars"] == {k: len(v) for k, v in texts.items()}
    (tmp_path / "dev.txt").write_text(text, newline="")
    assert "".join(file_blocks(tmp_path / "dev.txt", level, size=7)) == text
    assert list(text_blocks(text, level, size=7)) == list(file_blocks(tmp_path / "dev.txt", level, size=7))


def test_a_stream_split_is_one_item_with_every_token_a_target(tmp_path):
    vocab, splits, texts = stream_splits(play(10))
    dev = splits["dev"]
    assert dev.stream and len(dev) == 1 and dev.tokens[0] == vocab.bos_id and vocab.eos_id not in dev.tokens
    assert dev.num_targets == len(texts["dev"]) and dev.chars.tolist() == [len(texts["dev"])]
    save_encoded(tmp_path / "e.npz", splits)
    loaded = load_encoded(tmp_path / "e.npz")
    assert loaded["dev"].stream and loaded["dev"].tokens.tolist() == dev.tokens.tolist()
    assert Vocabulary.from_dict(vocab.to_dict()).stream and vocab.to_dict()["stream"] is True
    assert "stream" not in Vocabulary.build(["ab"], "char").to_dict()  # an item vocabulary stays as it was


def test_unseen_dev_characters_read_as_unk_and_are_counted(tmp_path):
    train, dev = "abc\nabc\n" * 20, "abz\nq\n"
    vocab = Vocabulary.build(text_blocks(train, "char"), "char", stream=True)
    split = encode_stream(vocab, dev)
    assert "\n" in vocab.index and int((split.tokens == vocab.unk_id).sum()) == 2
    model = build_model(ModelConfig("gru", len(vocab), vocab.pad_id, 4, 4))
    assert evaluate_split(model, split, vocab.pad_id, unk_id=vocab.unk_id)["oov_rate"] == pytest.approx(2 / len(dev))


def test_a_word_stream_reports_accuracy_without_unk_from_a_hand_count():
    train = "the king my lord\nthou art the king\n\nmy lord the night\n" * 5
    dev = "the queen my lord\nthou art the knave\nmy lord the king\n"  # queen, knave: <unk> targets
    vocab = Vocabulary.build(text_blocks(train, "word"), "word", stream=True)
    split = encode_stream(vocab, dev)
    torch.manual_seed(0)
    model = build_model(ModelConfig("lstm", len(vocab), vocab.pad_id, 8, 16)).eval()
    tokens = torch.from_numpy(split.tokens.astype(np.int64))
    with torch.no_grad():
        logits, _ = model(tokens[None, :-1])  # one pass over the whole stream: the carried state's numbers
    targets, hits = tokens[1:], (logits[0].argmax(dim=-1) == tokens[1:]).tolist()
    known = [i for i, t in enumerate(targets.tolist()) if t != vocab.unk_id]
    assert 0 < len(known) < len(targets)
    result = evaluate_split(model, split, vocab.pad_id, unk_id=vocab.unk_id)
    assert result["accuracy"] == pytest.approx(sum(hits) / len(targets))
    assert result["accuracy_without_unk"] == pytest.approx(sum(hits[i] for i in known) / len(known))
    assert result["oov_rate"] == pytest.approx(1 - len(known) / len(targets))
    # as for items: no accuracy_without_unk without <unk> targets (a char stream's usual case), nor on a
    # loss-only pass
    char_vocab, splits, _ = stream_splits(play(10))
    char_model = build_model(ModelConfig("gru", len(char_vocab), char_vocab.pad_id, 4, 4))
    char = evaluate_split(char_model, splits["train"], char_vocab.pad_id, unk_id=char_vocab.unk_id)
    assert char["oov_rate"] == 0 and "accuracy_without_unk" not in char and "accuracy" in char
    assert "accuracy_without_unk" not in evaluate_split(model, split, vocab.pad_id, unk_id=vocab.unk_id,
                                                        accuracy=False)


def test_word_streams_have_a_newline_token():
    text = "the king\n\nmy lord don't\n"
    vocab = Vocabulary.build(text_blocks(text, "word"), "word", stream=True)
    ids = vocab.stream_ids(text)
    assert [vocab.tokens[i] for i in ids] == ["the", "king", "\n", "\n", "my", "lord", "don", "'", "t", "\n"]
    assert vocab.decode(ids) == text


# --- batches ----------------------------------------------------------------------------------

def test_chunks_lay_the_stream_in_dense_contiguous_rows(tmp_path):
    tokens = np.arange(103, dtype=np.int32)
    plan = StreamPlan(offset=2, columns=25, lengths=[8, 8, 8, 1])
    chunks = StreamChunks(tokens, plan, 4)
    x, y = (torch.cat([chunk[i] for chunk in chunks], dim=1) for i in (0, 1))
    assert x.shape == y.shape == (4, 25) and x.dtype == torch.int64
    # row b starts offset + b * columns in; each target is the next token of the text
    assert x[1, 0] == 27 and x[0, -1] == 26 and x[3, -1] == 101 and torch.equal(y, x + 1)
    assert [chunk[0].shape for chunk in chunks] == [(4, n) for n in plan.lengths]
    assert [chunk[2] for chunk in chunks] == [32, 32, 32, 4]   # dense: every position a target
    half = chunks.share(slice(2, 4))   # a data-parallel process's contiguous rows
    assert torch.equal(torch.cat([chunk[0] for chunk in half], dim=1), x[2:]) and half[0][2] == 16
    # a memory-mapped stream of uint16 ids gives the same chunks
    tokens.astype("<u2").tofile(tmp_path / "train.bin")
    mapped = StreamChunks(np.memmap(tmp_path / "train.bin", dtype="<u2", mode="r"), plan, 4)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(mapped, chunks))
    with pytest.raises(IndexError):
        chunks[4]


def test_an_encoded_stream_folder_is_memory_mapped_and_read_in_blocks(tmp_path):
    vocab, splits, _ = stream_splits(play(10))
    with StreamWriter(tmp_path / "enc", len(vocab)) as out:
        for name, split in splits.items():   # each split written in two blocks
            out.start(name)
            half = len(split.tokens) // 2
            out.write(split.tokens[:half].tolist(), 0)
            out.write(split.tokens[half:].tolist(), int(split.chars[0]))
    assert sorted(path.name for path in (tmp_path / "enc").iterdir()) == ["dev.bin", "stream.json", "test.bin",
                                                                           "train.bin"]
    assert (tmp_path / "enc" / "train.bin").stat().st_size == 2 * len(splits["train"].tokens)   # uint16
    loaded = load_encoded(tmp_path / "enc")
    in_memory = load_encoded(tmp_path / "enc", mapped=False)
    for name, split in splits.items():
        assert isinstance(loaded[name].tokens, np.memmap) and loaded[name].tokens.dtype == np.uint16
        assert in_memory[name].tokens.dtype == np.int32 and not isinstance(in_memory[name].tokens, np.memmap)
        for got in (loaded[name], in_memory[name]):
            assert got.stream and got.tokens.tolist() == split.tokens.tolist()
            assert got.chars.tolist() == split.chars.tolist() and got.num_targets == split.num_targets
        # whole passes read the file a block at a time, and count as a pass over the array does
        blocks = list(loaded[name].token_blocks(size=100))
        assert len(blocks) == -(-len(split.tokens) // 100) and not any(isinstance(b, np.memmap) for b in blocks)
        counts = np.bincount(split.tokens[1:], minlength=len(vocab))
        assert np.array_equal(loaded[name].target_counts(len(vocab)), counts)
    (tmp_path / "enc" / "dev.bin").write_bytes(b"\0" * 3)
    with pytest.raises(UserError, match="dev.bin: 3 bytes, but .* says .* ids; rebuild it with `dvc repro`"):
        load_encoded(tmp_path / "enc")
    # the narrowest type that holds the ids
    assert stream_dtype(65_536) == np.uint16 and stream_dtype(65_537) == np.uint32


def test_a_stream_writer_that_fails_leaves_no_file_of_its_build(tmp_path):
    vocab, splits, _ = stream_splits(play(10))
    with pytest.raises(RuntimeError, match="interrupted"), StreamWriter(tmp_path / "enc", len(vocab)) as out:
        out.start("train")
        out.write(splits["train"].tokens.tolist(), int(splits["train"].chars[0]))
        out.start("dev")
        raise RuntimeError("interrupted")
    assert list((tmp_path / "enc").iterdir()) == []   # no split's file (not even train's), no stream.json


def test_the_state_is_carried_detached_from_chunk_to_chunk():
    vocab, splits, _ = stream_splits(play(10))
    torch.manual_seed(0)
    model = build_model(ModelConfig("lstm", len(vocab), vocab.pad_id, 8, 16))
    first, second = epoch_chunks(splits["train"], epoch_plan(splits["train"].num_targets, 4, 8,
                                                             np.random.default_rng(0)), 4)[:2]
    carried = CarriedState()
    carried(model, first[0], first[1], vocab.pad_id)
    assert all(not h.requires_grad for h in carried.hidden)                  # truncated: no graph behind it
    after_first = carried(model, second[0], second[1], vocab.pad_id)[0].mean()
    from_zero = CarriedState()(model, second[0], second[1], vocab.pad_id)[0].mean()
    assert not torch.isclose(after_first, from_zero)


def test_variable_bptt_is_drawn_from_the_seed():
    def plan(seed, epoch):
        return epoch_plan(10_000, 8, 32, np.random.default_rng([seed, epoch]), variable=True, limit=40)

    assert plan(0, 1) == plan(0, 1) and plan(0, 1).lengths != plan(0, 2).lengths != plan(1, 1).lengths
    lengths = plan(0, 1).lengths
    assert sum(lengths) == plan(0, 1).columns and max(lengths) <= 40 and min(lengths[:-1]) >= 5
    assert len(set(lengths)) > 5 and any(length < 24 for length in lengths)   # around 32, sometimes around 16
    scales = plan(0, 1).lr_scales(32)
    assert scales == [length / 32 for length in lengths]
    fixed = epoch_plan(10_000, 8, 32, np.random.default_rng(0))
    assert set(fixed.lengths[:-1]) == {32} and fixed.offset < 32


@pytest.mark.parametrize("kind", ["lstm", "mlp", "transformer"])
def test_stream_training_is_seeded(kind, tmp_path):
    vocab, splits, _ = stream_splits(play(20))
    cfg = stream_config(epochs=2, variable_bptt=kind == "lstm", max_len=16, context=3)
    a, record = train_model(kind, cfg, vocab, splits, 0, tmp_path / "a.pt", progress=False, log=lambda *_: None)
    b, _ = train_model(kind, cfg, vocab, splits, 0, tmp_path / "b.pt", progress=False, log=lambda *_: None)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    best = record["history"][record["best_epoch"] - 1]["dev_loss"]  # the stream evaluation of the kept weights
    assert best == pytest.approx(evaluate_split(a, splits["dev"], vocab.pad_id)["loss"], rel=1e-6)


def test_resumed_stream_run_ends_with_the_weights_of_an_uninterrupted_one(tmp_path, monkeypatch):
    vocab, splits, _ = stream_splits(play(20))
    cfg = stream_config(epochs=3, resume=True, variable_bptt=True)
    whole, _ = train_model("gru", cfg, vocab, splits, 0, tmp_path / "whole.pt", progress=False, log=lambda *_: None)
    calls = {"n": 0}
    real = train_epoch

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr("rnnlm.training.train_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_model("gru", cfg, vocab, splits, 0, tmp_path / "run.pt", progress=False, log=lambda *_: None)
    monkeypatch.setattr("rnnlm.training.train_epoch", real)
    resumed, record = train_model("gru", cfg, vocab, splits, 0, tmp_path / "run.pt", progress=False,
                                  log=lambda *_: None)
    assert record["epochs_done"] == 3
    assert all(torch.equal(p, q) for p, q in zip(whole.state_dict().values(), resumed.state_dict().values()))


def test_a_transformer_chunk_longer_than_its_positions_is_refused(tmp_path):
    vocab, splits, _ = stream_splits(play(10))
    with pytest.raises(UserError, match=r"bptt \(32\) must be <= max_len \(16\)"):
        train_model("transformer", stream_config(bptt=32, max_len=16), vocab, splits, 0, tmp_path / "t.pt",
                    progress=False)



def test_a_stream_transformer_is_scored_and_sampled_only_at_positions_it_trained(tmp_path):
    """Training reads every chunk of ``bptt`` tokens from position 0: the model gets exactly those
    positions, each one gets a gradient, and scoring and sampling never read a position past them."""
    vocab, splits, _ = stream_splits(play(20))
    cfg = stream_config(epochs=1, bptt=8, max_len=32, heads=2)  # the recipe's shape: bptt < max_len
    config = model_config_for("transformer", cfg, vocab)
    assert config.max_len == cfg.bptt
    # items, and the kinds that carry their state, keep max_len as it was
    assert model_config_for("transformer", cfg, Vocabulary.build(["ab"], "char")).max_len == 32
    assert model_config_for("lstm", cfg, vocab).max_len == 32
    # every position row gets a nonzero gradient from one training chunk
    torch.manual_seed(0)
    model = build_model(config)
    chunk_x, chunk_y, _ = epoch_chunks(splits["train"], epoch_plan(splits["train"].num_targets, cfg.batch_size,
                                                                    cfg.bptt, np.random.default_rng(0)),
                                       cfg.batch_size)[0]
    stream_losses(model, chunk_x, chunk_y)[0].mean().backward()
    assert (model.position.weight.grad.abs().sum(dim=1) > 0).all()
    # after training, every row moved from its initial value (adam, no weight decay: only a gradient moves it)
    seed_everything(0)
    initial = build_model(config).position.weight.detach().clone()  # train_model's init, from the same seed
    trained, _ = train_model("transformer", cfg, vocab, splits, 0, tmp_path / "t.pt", progress=False,
                             log=lambda *_: None)
    moved = (trained.position.weight.detach() - initial).abs().sum(dim=1) > 0
    assert trained.context_limit == cfg.bptt and moved.all()
    # the positions scoring and sampling read are all trained ones
    used = []
    trained.position.register_forward_hook(lambda module, args, out: used.append(int(args[0].max())))
    evaluate_split(trained, splits["dev"], vocab.pad_id, unk_id=vocab.unk_id)
    generate(trained, vocab, 2, "ROMEO:", max_tokens=40, generator=torch.Generator().manual_seed(0))
    assert used and max(used) == cfg.bptt - 1 and moved[:max(used) + 1].all()


# --- scoring ----------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["lstm", "rnn_scratch", "mlp"])
def test_carried_scoring_in_blocks_equals_one_pass(kind):
    vocab, splits, _ = stream_splits(play(20))
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind, len(vocab), vocab.pad_id, 8, 16, context=3)).eval()
    split = splits["train"]
    tokens = torch.from_numpy(split.tokens.astype(np.int64))
    with torch.no_grad():
        logits, _ = model(tokens[None, :-1])
        whole = F.cross_entropy(logits[0], tokens[1:], reduction="sum").item()
    for block in (7, 64, 10_000):
        total, correct, n, chars, _, _ = evaluate_stream(model, split, block=block)
        assert total == pytest.approx(whole, rel=1e-5) and n == split.num_targets and chars == split.chars.sum()
    assert stream_target_losses(model, split, block=5).sum() == pytest.approx(whole, rel=1e-5)


def test_the_sliding_window_scores_every_target_once_with_enough_context():
    vocab, splits, _ = stream_splits(play(20))
    torch.manual_seed(0)
    W = 16
    model = build_model(ModelConfig("transformer", len(vocab), vocab.pad_id, 8, 16, heads=2, ff_size=16,
                                    max_len=W)).eval()
    split = splits["train"]
    reader = StreamReader(model, split)
    N = len(reader)
    scored = np.zeros(N, dtype=int)
    j = 0
    while True:
        begin, first, end = reader.window(j)
        scored[first:end] += 1
        assert end - begin <= W and (j == 0 or first - begin >= W - W // 2)  # at least W - S tokens before
        if end == N:
            break
        j += 1
    assert (scored == 1).all()
    # every target's loss is its own window's, read alone
    inputs, targets = reader.inputs, reader.targets
    expected = 0.0
    with torch.no_grad():
        for p in range(N):
            begin, _, _ = reader.window(reader.window_of(p))
            logits, _ = model(inputs[begin:p + 1][None])
            expected += F.cross_entropy(logits[0, -1:], targets[p:p + 1], reduction="sum").item()
    for block in (5, 37, 4096):
        assert evaluate_stream(model, split, block=block)[0] == pytest.approx(expected, rel=1e-5)


def test_the_ngram_reads_its_history_across_newlines_in_a_stream_mixture():
    vocab, splits, _ = stream_splits(play(20))
    ngram = KneserNeyLM(len(vocab), vocab.pad_id, vocab.bos_id, 3).fit(splits["train"])
    item = splits["dev"].item(0)
    newline = int(np.flatnonzero(item == vocab.index["\n"])[0])
    dist = ngram.distributions(ngram.histories(item)[newline:newline + 1])[0]
    np.testing.assert_allclose(dist, ngram.distribution(item[:newline + 1]))  # history: "x\n", across the line end
    model = build_model(ModelConfig("gru", len(vocab), vocab.pad_id, 8, 8))
    ngram_only = evaluate_mixtures([([model], [0.0, 1.0])], ngram, splits["dev"], vocab.pad_id, max_cells=64 * 5)[0]
    assert ngram_only["loss"] == pytest.approx(summarize(*ngram.evaluate(splits["dev"]))["loss"], rel=1e-9)
    neural_only = evaluate_mixtures([([model], [1.0, 0.0])], ngram, splits["dev"], vocab.pad_id, max_cells=64 * 5)[0]
    assert neural_only["loss"] == pytest.approx(evaluate_split(model, splits["dev"], vocab.pad_id)["loss"], rel=1e-6)


# --- sampling ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def stream_lstm(tmp_path_factory):
    vocab, splits, texts = stream_splits(play(60))
    cfg = stream_config(epochs=3, hidden_size=32, lr=0.01)
    model, _ = train_model("lstm", cfg, vocab, splits, 0, tmp_path_factory.mktemp("lstm") / "lstm.pt",
                           progress=False, log=lambda *_: None)
    return model, vocab, texts


def test_a_long_stream_sample_carries_its_state_across_lines(stream_lstm):
    model, vocab, texts = stream_lstm
    [carried] = generate(model, vocab, 1, "ROMEO:", max_tokens=600, generator=torch.Generator().manual_seed(0))
    assert carried.startswith("ROMEO:") and len(carried) == len("ROMEO:") + 600 and carried.count("\n") >= 10
    # the same model with its state reset at every line end writes something else
    generator, text, ids = torch.Generator().manual_seed(0), "ROMEO:", vocab.encode("ROMEO:")[:-1]
    while len(text) < len(carried):
        row = sample_ids(ModelStepper(model), vocab, 1, ids, max_tokens=60, generator=generator)[0]
        line = vocab.decode(row).split("\n")[0] + "\n"
        text, ids = text + line, [vocab.bos_id]
    assert text[:len(carried)] != carried
    stats = stream_sample_statistics({"lstm": [carried]}, [texts["train"]], long_line=10)["lstm"]
    assert stats["samples"] == 1 and stats["mean_length"] == len(carried) and 0 <= stats["copied_line_share"] <= 1


def test_copied_lines_are_found_in_the_training_text_read_in_blocks(tmp_path):
    """The generate stage reads a stream's training text a block at a time: the copies it finds are the
    whole text's (a sampled line may copy part of a longer line of train, in any block)."""
    train = "the first line of train\nsecond line here, longer than that\nthird\n" * 3 + "a last line\n"
    samples = ["second line here\nnot in train at all, no\nthe first line", "second line here\na last line"]
    (tmp_path / "train.txt").write_text(train, newline="")
    whole = stream_sample_statistics({"a": samples}, [train], long_line=5)["a"]
    assert whole["long_lines"] == 5 and whole["copied_line_share"] == 4 / 5   # all but "not in train at all, no"
    # several kinds judged in one reading of the text: each kind's numbers are its own
    other = ["third\nnot in train at all, no, again"]
    both = stream_sample_statistics({"a": samples, "b": other}, [train], long_line=5)
    assert both["a"] == whole and both["b"]["long_lines"] == 2 and both["b"]["copied_line_share"] == 1 / 2
    for size in (1, 30, 1 << 20):
        blocks = file_blocks(tmp_path / "train.txt", "char", size=size)
        assert stream_sample_statistics({"a": samples, "b": other}, blocks, long_line=5) == both


def test_the_transformer_samples_past_its_positions():
    vocab, splits, _ = stream_splits(play(10))
    torch.manual_seed(0)
    model = build_model(ModelConfig("transformer", len(vocab), vocab.pad_id, 8, 8, heads=2, ff_size=8, max_len=8))
    texts = generate(model, vocab, 2, "ROMEO:", max_tokens=50, generator=torch.Generator().manual_seed(0))
    assert [len(t) for t in texts] == [56, 56]  # a stream model never stops at </s>


def test_the_generate_stage_normalizes_prompts_as_rnnlm_sample(tmp_path, monkeypatch, toy_vocab, toy_splits):
    """`-S 'generate.names.prompts=[Em]'` writes names that start with "em", as `rnnlm sample --prompt Em` does."""
    import yaml

    from tests.test_streaming import run_stage
    vocab = Vocabulary(toy_vocab.tokens, "char", normalization=Normalization("name", "abcdefghijklmnopqrstuvwxyz"))
    model, _ = train_model("gru", train_config(embedding_size=8, hidden_size=8, epochs=1, seeds=[0], workers=1),
                           vocab, toy_splits, 0, tmp_path / "models" / "gru.pt", progress=False, log=lambda *_: None)
    (tmp_path / "train.txt").write_text("emma\nava\n")
    params = {"corpora": {"names": "x"}, "kinds": {"names": ["gru"]},
              "generate": {"names": {"num_samples": 2, "prompts": ["Em"], "samples_per_prompt": 3, "temperature": 1.0,
                                     "top_k": None, "max_tokens": 6, "seed": 0, "device": "cpu"}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    run_stage("generate", ["--corpus", "names", "--models-dir", "models", "--train-split", "train.txt",
                           "--samples-dir", "samples", "--metrics-dir", "metrics"], monkeypatch)
    prompted = (tmp_path / "samples" / "gru.txt").read_text().split("# prompt 'Em'")[1].splitlines()[1:]
    assert len(prompted) == 4 and all(line.startswith("em") and "<unk>" not in line for line in prompted)


# --- model files: rnnlm score, export, info ---------------------------------------------------

@pytest.fixture(scope="module")
def stream_files(tmp_path_factory):
    vocab, splits, texts = stream_splits(play(20), "char", 0.8, 0.1)
    folder = tmp_path_factory.mktemp("files")
    torch.manual_seed(0)
    models = {"lstm": build_model(ModelConfig("lstm", len(vocab), vocab.pad_id, 8, 8)),
              "transformer": build_model(ModelConfig("transformer", len(vocab), vocab.pad_id, 8, 8, heads=2,
                                                     ff_size=8, max_len=16))}
    for kind, model in models.items():
        save_checkpoint(folder / f"{kind}.pt", model, vocab, {"seed": 0, "run_id": {"config": {}}})
    ngram = KneserNeyLM(len(vocab), vocab.pad_id, vocab.bos_id, 3).fit(splits["train"])
    write_arpa(folder / "ngram.arpa.gz", ngram, vocab.tokens, header={"vocabulary": vocab.to_dict(), "order": 3,
                                                                      "discount": 0.75})
    spec = mixture_spec([folder / "lstm.pt", folder / "transformer.pt", folder / "ngram.arpa.gz"], [0.3, 0.3, 0.4],
                        folder / "mix.json", kinds=["lstm", "transformer"])
    (folder / "mix.json").write_text(json.dumps(spec))
    (folder / "test.txt").write_bytes(texts["test"].encode("utf-8"))
    return folder, vocab, splits, models, ngram


@pytest.mark.parametrize("name", ["lstm.pt", "transformer.pt", "ngram.arpa.gz", "mix.json"])
def test_score_reads_a_file_as_one_stream_with_the_stages_loss(stream_files, name, capsys):
    folder, vocab, splits, models, ngram = stream_files
    with pytest.raises(SystemExit) as done:
        main(["score", "--model", str(folder / name), str(folder / "test.txt")])
    assert done.value.code == 0
    [summary] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    test = splits["test"]
    if name == "ngram.arpa.gz":
        expected = summarize(*ngram.evaluate(test))
    elif name == "mix.json":
        expected = evaluate_mixtures([(list(models.values()), [0.3, 0.3, 0.4])], ngram, test, vocab.pad_id)[0]
    else:
        expected = evaluate_split(models[name.removesuffix(".pt")], test, vocab.pad_id)
    assert summary["items"] == 1 and summary["tokens"] == test.num_targets
    for key in ("loss", "perplexity", "bits_per_char"):
        assert summary[key] == pytest.approx(expected[key], rel=1e-6)


def test_score_rejects_a_bad_line_of_a_stream_and_scores_the_rest(stream_files, capsys, tmp_path):
    folder = stream_files[0]
    (tmp_path / "in.txt").write_bytes(b"ROMEO:\n\xff\xfe\nthe king\n")
    with pytest.raises(SystemExit):
        main(["score", "--model", str(folder / "lstm.pt"), str(tmp_path / "in.txt")])
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert records[0]["line"] == 2 and records[0]["rejected"] == "invalid_utf8"
    assert records[1]["tokens"] == len("ROMEO:\nthe king\n")


def test_info_and_export_say_it_is_a_stream_model(stream_files, capsys, tmp_path):
    folder = stream_files[0]
    with pytest.raises(SystemExit):
        main(["info", str(folder / "lstm.pt")])
    assert json.loads(capsys.readouterr().out)["vocabulary"]["stream"] is True
    pytest.importorskip("onnxscript")
    with pytest.raises(SystemExit) as done:
        main(["export", "--model", str(folder / "lstm.pt"), "--onnx", str(tmp_path / "lstm.onnx")])
    assert done.value.code == 0 and "a stream model" in capsys.readouterr().out
    assert json.loads((tmp_path / "lstm.json").read_text())["stream"] is True


# --- the stages: predefined split files, ingest -> split -> vocab -> train -> evaluate, then rnnlm score -----

def test_predefined_split_files_through_the_stages_and_score_gives_the_evaluate_loss(tmp_path, monkeypatch, capsys):
    """A folder of train.txt, valid.txt, test.txt (as WikiText ships them) is split as given; the evaluate
    stage scores dev, test and dev ∪ test as streams, and `rnnlm score` of the test split file gives its loss."""
    import yaml

    from tests.test_streaming import run_stage
    raw = tmp_path / "raw"
    raw.mkdir()
    files = {"train.txt": play(40, seed=1), "valid.txt": play(4, seed=2), "test.txt": play(4, seed=3)}
    for name, text in files.items():
        (raw / name).write_text(text, encoding="utf-8")
    params = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text(encoding="utf-8"))
    small = dict(embedding_size=8, hidden_size=8, epochs=1, seeds=[0], batch_size=4, bptt=16, workers=1,
                 overrides={"transformer": {"heads": 2, "max_len": 16}})
    params = {"corpora": {"plays": "raw"}, "kinds": {"plays": ["lstm", "transformer"]},
              **{section: {"plays": params[section]["shakespeare"]} for section in ("ingest", "split", "vocab")},
              "train": {"plays": params["train"]["shakespeare"] | small}, "evaluate": params["evaluate"]}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    for stage, args in [
        ("ingest", ["--raw", "raw", "--rows", "rows.jsonl", "--rejects", "rejects.jsonl", "--report", "report.json"]),
        ("split", ["--rows", "rows.jsonl", "--out-dir", "splits"]),
        ("vocab", ["--splits", "splits", "--vocab", "vocab.json", "--encoded", "encoded"]),
        ("train", ["--vocab", "vocab.json", "--encoded", "encoded", "--models-dir", "models", "--live-dir", "live",
                   "--curves", "loss.csv", "--progress", "training.json", "--speed", "speed.json", "--resume-dir", "resume"]),
        ("evaluate", ["--vocab", "vocab.json", "--encoded", "encoded", "--models-dir", "models",
                      "--test-split", "splits/test.txt", "--metrics-dir", "metrics"]),
    ]:
        run_stage(stage, ["--corpus", "plays", *args], monkeypatch)
    for split, name in (("train", "train.txt"), ("dev", "valid.txt"), ("test", "test.txt")):
        assert (tmp_path / "splits" / f"{split}.txt").read_bytes() == (raw / name).read_bytes()
    assert json.loads((tmp_path / "splits" / "report.json").read_text())["predefined"] is True
    for kind in ("lstm", "transformer"):
        metrics = json.loads((tmp_path / "metrics" / f"{kind}.json").read_text())
        assert metrics["dev_test"]["tokens"] == metrics["dev"]["tokens"] + metrics["test"]["tokens"]
        capsys.readouterr()
        with pytest.raises(SystemExit) as done:
            main(["score", "--model", f"models/{kind}.pt", "splits/test.txt"])
        assert done.value.code == 0
        summary = json.loads(capsys.readouterr().out.splitlines()[-1])
        for key in ("loss", "perplexity", "bits_per_char"):
            assert summary[key] == pytest.approx(metrics["test"][key], rel=1e-6, abs=1e-6)


# --- the report and rnnlm compare -------------------------------------------------------------

def stream_metrics(loss, joined=True, **extra):
    split = {"loss": loss, "perplexity": float(np.exp(loss)), "accuracy": 0.5, "bits_per_char": loss / np.log(2),
             "tokens": 100}
    metrics = {"dev": split, "test": split | {"oov_rate": 0.0}, "params": 10, **extra}
    return metrics | ({"dev_test": split | {"loss": loss + 0.01}} if joined else {})


def test_the_report_and_compare_show_dev_union_test_for_a_stream_corpus():
    from rnnlm.compare import compare_markdown
    from rnnlm.report import summary_markdown

    neural = dict(seed=0, best_epoch=1, epochs_done=2)
    results = {"shakespeare": {"lstm": stream_metrics(1.5, **neural), "transformer": stream_metrics(1.6, **neural),
                               "ngram": stream_metrics(2.0, joined=False, order=3)},
               "names": {"lstm": stream_metrics(1.9, joined=False, **neural)}}
    sampled = {"samples": 3, "mean_length": 600.0, "std_length": 0.0, "long_lines": 20, "copied_line_share": 0.25}
    text = summary_markdown(results, samples={"shakespeare": {"lstm": sampled, "transformer": sampled},
                                              "names": {"lstm": {"samples": 5, "novel_share": 0.8,
                                                                 "mean_length": 5.0, "std_length": 1.0}}})
    shakespeare, names = text.split("## names")[0], text.split("## names")[1]
    assert "dev ∪ test loss" in shakespeare and "copied lines" in shakespeare and "differ in kind" in shakespeare
    assert "dev ∪ test" not in names and "novel samples" in names
    lstm = next(line for line in shakespeare.splitlines() if line.startswith("| **lstm**"))
    assert [cell.strip() for cell in lstm.split("|")[3:6]] == ["1.5000", "1.5000", "1.5100"] and "0.25" in lstm
    ngram = next(line for line in shakespeare.splitlines() if line.startswith("| ngram"))
    assert ngram.split("|")[5].strip() == "—"
    old = {"metrics/shakespeare/neural/lstm.json": stream_metrics(1.5), "metrics/shakespeare/ngram.json":
           stream_metrics(2.0, joined=False)}
    new = {"metrics/shakespeare/neural/lstm.json": stream_metrics(1.4), "metrics/shakespeare/ngram.json":
           stream_metrics(2.0, joined=False)}
    table = compare_markdown(old, new, "main")
    assert "| lstm    | dev_test |" in table and "| ngram   | dev_test" not in table
    assert "1.5100" in table and "1.4100" in table


def test_rnnlm_sample_writes_long_text_for_a_stream_model(stream_files, capsys):
    folder = stream_files[0]
    for name in ("lstm.pt", "transformer.pt", "mix.json"):  # the transformer's 16 positions: cropped, not refused
        with pytest.raises(SystemExit) as done:
            main(["sample", "--model", str(folder / name), "-n", "1", "--prompt", "ROMEO:", "--max-tokens", "100"])
        out = capsys.readouterr().out
        assert done.value.code == 0 and out.startswith("ROMEO:") and len(out) == len("ROMEO:") + 100 + 1


def test_kenlm_reads_a_tokenized_stream_as_one_sentence_with_the_ngrams_loss(stream_files, capsys):
    kenlm = pytest.importorskip("kenlm")
    folder, vocab, splits, _, ngram = stream_files
    with pytest.raises(SystemExit) as done:
        main(["tokenize", "--model", str(folder / "ngram.arpa.gz"), str(folder / "test.txt")])
    [line] = capsys.readouterr().out.splitlines()
    assert done.value.code == 0 and "<U+000A>" in line and len(line.split()) == splits["test"].num_targets
    loss = -kenlm.Model(str(folder / "ngram.arpa.gz")).score(line, bos=True, eos=False) * np.log(10) / len(line.split())
    assert loss == pytest.approx(summarize(*ngram.evaluate(splits["test"]))["loss"], abs=1e-5)
