"""Word-level corpora as they ship (WikiText, PTB): the namings of predefined split files, the text's own
``<unk>``, tokens kept as given (``vocab.<corpus>.pretokenize``), OOV apart from the own ``<unk>``, split
sections that predefined splits do not need, and the overrides that shadow a train key."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from rnnlm.data import load_encoded
from rnnlm.errors import UserError
from rnnlm.ingest import ingest_stream
from rnnlm.schema.split import SplitConfig
from rnnlm.schema.vocab import VocabConfig
from rnnlm.textstream import NAMINGS, predefined_files, split_stream
from rnnlm.vocab import UNK, Vocabulary, with_own_unk
from tests.configs import ingest_config, params_section, split_config, train_config, vocab_config
from tests.test_streaming import run_stage

ROOT = Path(__file__).resolve().parents[1]

# WikiText-style lines: tokens separated by spaces, "'s" one token, and the corpus's own <unk>
TRAIN = (" = Valkyria Chronicles = \n\n The game 's <unk> began in 2010 . \n The team 's game was <unk> . \n" * 6)
VALID = " The <unk> game 's team . \n"
TEST = " The game began . \n <unk> <unk> team 's game . \n"

FILES = {
    "plain": ("train.txt", "valid.txt", "test.txt"),
    "wikitext": ("wiki.train.tokens", "wiki.valid.tokens", "wiki.test.tokens"),
    "wikitext-raw": ("wiki.train.raw", "wiki.valid.raw", "wiki.test.raw"),
    "ptb": ("ptb.train.txt", "ptb.valid.txt", "ptb.test.txt"),
}


def folder(path, names, texts=(TRAIN, VALID, TEST)):
    path.mkdir(parents=True, exist_ok=True)
    for name, text in zip(names, texts):
        (path / name).write_text(text, encoding="utf-8")
    return path


# --- 1. the namings ---------------------------------------------------------------------------

@pytest.mark.parametrize("naming", list(FILES))
def test_every_naming_is_read_as_its_splits(tmp_path, naming):
    raw = folder(tmp_path / naming, FILES[naming])
    found = predefined_files(raw)
    assert {split: path.name for split, path in found.items()} == dict(zip(("train", "dev", "test"), FILES[naming]))
    rows = [row for row, reject in ingest_stream(raw, ingest_config("shakespeare")) if row]
    texts, report = split_stream(rows, "word", None)
    assert texts == {"train": TRAIN, "dev": VALID, "test": TEST} and report["predefined"]


def test_the_namings_are_the_documented_ones():
    assert set(NAMINGS) == set(FILES)
    assert NAMINGS["plain"]["dev"] == ("dev.txt", "valid.txt")  # today's folder reads as before


def test_a_folder_of_two_namings_is_one_line_naming_the_files(tmp_path):
    raw = folder(tmp_path / "both", FILES["wikitext"])
    folder(raw, FILES["wikitext-raw"][:1])
    with pytest.raises(UserError) as err:
        predefined_files(raw)
    message = str(err.value)
    assert "\n" not in message and "2 namings" in message
    assert "wiki.train.tokens" in message and "wiki.train.raw" in message


def test_a_folder_of_no_naming_names_the_accepted_ones(tmp_path):
    raw = folder(tmp_path / "none", ("training.txt",))
    with pytest.raises(UserError) as err:
        predefined_files(raw)
    message = str(err.value)
    assert "\n" not in message
    for names in FILES.values():
        assert all(name in message for name in names)


def test_a_naming_with_a_split_missing_names_it(tmp_path):
    raw = folder(tmp_path / "part", FILES["ptb"][:2])
    with pytest.raises(UserError, match=r"no ptb\.test\.txt \(its test split"):
        predefined_files(raw)


# --- 2-4 and 6: the stages on a WikiText-style folder ------------------------------------------

def project(tmp_path, naming="wikitext", vocab=None, split=None):
    """A tmp project of one WikiText-style stream corpus ``wiki`` (params as docs/streams.md gives them)."""
    raw = folder(tmp_path / "raw", FILES[naming])
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    params = {"corpora": {"wiki": "raw"}, "kinds": {"wiki": ["lstm"]},
              "ingest": {"wiki": params["ingest"]["shakespeare"]},
              "split": {"wiki": {} if split is None else split},
              "vocab": {"wiki": params["vocab"]["shakespeare"] | {"level": "word"} | (vocab or {})}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return raw


def run_to_vocab(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for stage, args in [
        ("ingest", ["--raw", "raw", "--rows", "rows.jsonl", "--rejects", "rejects.jsonl", "--report", "ingest.json"]),
        ("split", ["--rows", "rows.jsonl", "--out-dir", "splits"]),
        ("vocab", ["--splits", "splits", "--vocab", "vocab.json", "--encoded", "encoded"]),
    ]:
        run_stage(stage, ["--corpus", "wiki", *args], monkeypatch)
    return Vocabulary.load(tmp_path / "vocab.json"), load_encoded(tmp_path / "encoded")


def test_a_wikitext_folder_keeps_its_tokens_and_its_own_unk_is_the_vocabularys(tmp_path, monkeypatch, capsys):
    project(tmp_path)
    vocab, encoded = run_to_vocab(tmp_path, monkeypatch)
    out = capsys.readouterr().out
    # 3. tokens as given: "'s" is one token (the default of a predefined folder), and the JSON says so
    assert vocab.pretokenize == "whitespace" and "'s" in vocab.index and "'" not in vocab.index
    assert json.loads((tmp_path / "vocab.json").read_text())["pretokenize"] == "whitespace"
    report = json.loads((tmp_path / "splits" / "report.json").read_text())
    assert report["pretokenize"] == "whitespace" and report["units"]["test"] == len(TEST.split()) + 2
    # 2. the text's <unk> is the vocabulary's <unk>: no type of its own, its id where the text has it
    assert vocab.tokens.count(UNK) == 1 and vocab.tokens[vocab.unk_id] == UNK
    test_tokens = vocab.token_strings(TEST)
    ids = encoded["test"].tokens[1:]  # after <s>
    assert len(ids) == len(test_tokens)
    own = [i for i, token in enumerate(test_tokens) if token == UNK]
    assert len(own) == 2 and all(ids[i] == vocab.unk_id for i in own)
    assert not np.any(np.delete(ids, own) == vocab.unk_id)  # every other test word was seen in train
    # 4. OOV counts only what train lacks; the text's own <unk> is reported apart
    assert "unseen in train dev 0, test 0" in out and "own <unk> tokens (not unseen) dev 1, test 2" in out
    assert vocab.own_unk_count(TEST.splitlines()) == 2 and vocab.unknown_tokens(TEST) == []
    assert vocab.unknown_chars(TEST.splitlines()) == 0



def test_the_ngram_stage_counts_the_texts_own_unk_apart_from_oov(tmp_path, monkeypatch):
    """The test text's two literal <unk> are targets scored as <unk>, but no word train lacks: the ngram
    stage's oov_rate is 0 and own_unk_rate holds them (the evaluate and mixture stages apply the same rule)."""
    project(tmp_path)
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    params["ngram"] = {"wiki": {"min_order": 2, "max_order": 3}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    vocab, encoded = run_to_vocab(tmp_path, monkeypatch)
    run_stage("ngram", ["--corpus", "wiki", "--vocab", "vocab.json", "--encoded", "encoded",
                        "--test-split", "splits/test.txt", "--metrics", "ngram.json", "--arpa", "ngram.arpa",
                        "--speed", "speed.json"], monkeypatch)
    test = json.loads((tmp_path / "ngram.json").read_text())["test"]
    targets = int(encoded["test"].num_targets)
    assert test["oov_rate"] == 0 and test["own_unk_rate"] == pytest.approx(2 / targets, abs=1e-6)

def test_pretokenize_words_splits_apostrophes_as_before(tmp_path, monkeypatch):
    project(tmp_path, vocab={"pretokenize": "words"})
    vocab, _ = run_to_vocab(tmp_path, monkeypatch)
    assert vocab.pretokenize == "words" and "'" in vocab.index and "'s" not in vocab.index
    assert "pretokenize" not in json.loads((tmp_path / "vocab.json").read_text())  # the default is not written


def test_a_bad_pretokenize_is_one_line():
    with pytest.raises(UserError) as err:
        vocab_config("news", pretokenize="spaces")
    assert str(err.value) == "params: vocab.news.pretokenize must be one of words, whitespace or null, got 'spaces'"


def test_whitespace_tokens_decode_as_written():
    vocab = Vocabulary.build(["the game 's team"], "word", pretokenize="whitespace")
    assert vocab.token_strings("the game 's team") == ["the", "game", "'s", "team"]
    assert vocab.decode(vocab.encode("the game 's team")) == "the game 's team"
    assert Vocabulary.from_dict(vocab.to_dict()) == vocab
    with pytest.raises(UserError, match="'pretokenize' must be one of"):
        Vocabulary.from_dict(vocab.to_dict() | {"pretokenize": "spaces"})


def test_default_vocabularies_and_reports_stay_as_they_were():
    """names, news and shakespeare write the JSON and reports they wrote before."""
    assert "pretokenize" not in Vocabulary.build(["the cat's"], "word").to_dict()
    assert "pretokenize" not in Vocabulary.build(["ab"], "char", pretokenize="whitespace").to_dict()
    _, report = split_stream([{"text": "abcdefghij" * 10 + "\n"}], "char", split_config("shakespeare"))
    assert "pretokenize" not in report
    assert Vocabulary.build(["don't"], "word").token_strings("don't") == ["don", "'", "t"]


def test_with_own_unk_takes_the_texts_unk_out_of_the_oov_rate():
    result = {"loss": 1.0, "tokens": 100, "oov_rate": 0.07}
    assert with_own_unk(result, 5) == result | {"oov_rate": pytest.approx(0.02), "own_unk_rate": 0.05}
    assert with_own_unk(result, 0) is result  # no own <unk>: the metrics as they were


# --- 6. split sections a predefined folder does not need --------------------------------------

def test_a_predefined_folder_needs_no_split_fractions(tmp_path, monkeypatch):
    project(tmp_path, split={})
    run_to_vocab(tmp_path, monkeypatch)
    assert SplitConfig.from_params({}, "split.wiki").has_fractions is False


def test_items_and_a_single_text_still_need_the_fractions(tmp_path):
    with pytest.raises(UserError, match=r"^params: split\.names needs seed, train, dev, test, stratify \(only"):
        SplitConfig.from_params({}, "split.names").require_fractions("split.names")
    with pytest.raises(UserError, match="cut by the split fractions"):
        split_stream([{"text": "a b\n"}], "word", SplitConfig.from_params({}, "split.x"))
    with pytest.raises(UserError, match=r"split\.names\.train dev and test must be given together"):
        SplitConfig.from_params({"train": 0.8}, "split.names")
    assert split_config("names").require_fractions("split.names").train == 0.8


# --- 5. overrides that shadow a train key -----------------------------------------------------

def test_the_train_stage_names_the_keys_an_override_shadows(capsys):
    cfg = train_config("news", epochs=8, dropout=0.4,
                       overrides={"lstm": {"epochs": 14, "dropout_mode": "locked", "dropout": 0.4}})
    assert cfg.shadowed("lstm") == {"epochs": (8, 14), "dropout_mode": ("standard", "locked"),
                                    "dropout": (0.4, 0.4)}
    assert cfg.shadowed("gru") == {} and cfg.describe_overrides("gru") is None and cfg.shadow_warning("gru") is None
    assert cfg.describe_overrides("lstm") == "lstm: epochs=14 (override), dropout_mode=locked (override), " \
                                             "dropout=0.4 (override)"
    assert cfg.shadow_warning("lstm", "train.news") == (
        "train.news.epochs=8, train.news.dropout_mode=standard do not apply to lstm: "
        "train.news.overrides.lstm sets epochs=14, dropout_mode=locked")
    sys.path.insert(0, str(ROOT / "stages"))
    try:
        from train import print_overrides
    finally:
        sys.path.remove(str(ROOT / "stages"))
    print_overrides("news", cfg, ["gru", "lstm"])
    out, err = capsys.readouterr()
    assert out == "train news: lstm: epochs=14 (override), dropout_mode=locked (override), dropout=0.4 (override)\n"
    assert err.startswith("train news: warning: train.news.epochs=8, ") and err.count("\n") == 1



def test_the_report_notes_the_texts_own_unk_apart_from_oov():
    from rnnlm.report import summary_markdown
    from tests.test_streams import stream_metrics

    neural = dict(seed=0, best_epoch=1, epochs_done=2)
    own = stream_metrics(5.0, **neural)
    own["test"] = own["test"] | {"oov_rate": 0.0, "own_unk_rate": 0.025}
    text = summary_markdown({"wiki": {"lstm": own}})
    header, _, row = [line for line in text.splitlines() if line.startswith("|")][:3]
    titles, cells = ([cell.strip() for cell in line.strip("|").split("|")] for line in (header, row))
    assert cells[titles.index("test OOV")] == "0.00%"   # no word unseen in train: said, not left out
    assert "Test tokens that are the corpus's own <unk> (not out of vocabulary): 2.50%." in text
    assert "own <unk>" not in summary_markdown({"wiki": {"lstm": stream_metrics(5.0, **neural)}})
