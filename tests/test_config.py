import pytest

from rnnlm.errors import UserError
from rnnlm.schema.generate import GenerateConfig
from rnnlm.schema.ingest import IngestConfig
from rnnlm.schema.ngram import NgramConfig
from rnnlm.schema.pipeline import Pipeline
from rnnlm.schema.split import SplitConfig
from rnnlm.schema.train import TrainConfig
from rnnlm.schema.vocab import VocabConfig
from rnnlm.errors import UserError
from tests.configs import PARAMS, SECTIONS as FIXTURE_SECTIONS, params_section, train_config, validated


@pytest.mark.parametrize("cls, data, message", [
    (TrainConfig, {"hidden_sise": 96}, r"unknown key train\.names\.hidden_sise"),
    (TrainConfig, {"hidden_size": 0}, r"^params: train\.names\.hidden_size must be > 0, got 0$"),
    (TrainConfig, {"hidden_size": "96"}, r"train\.names\.hidden_size must be int"),
    (TrainConfig, {"hidden_size": 9.5}, r"hidden_size must be int"),
    (TrainConfig, {"lr": True}, r"lr must be float"),
    (TrainConfig, {"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
    (TrainConfig, {"optimizer": "adagrad"}, r"optimizer must be one of"),
    (TrainConfig, {"seeds": []}, r"train\.names\.seeds must not be empty, got \[\]"),
    (TrainConfig, {"seeds": [1, 1]}, r"seeds must not repeat"),
    (TrainConfig, {"grad_clip": 0}, r"grad_clip must be > 0"),
    (TrainConfig, {"scheduler": "step"}, r"train\.names\.scheduler must be one of none, plateau"),
    (TrainConfig, {"warmup": 1.0}, r"warmup must be in \[0, 1\)"),
    (TrainConfig, {"scheduler": "onecycle", "warmup": 0}, r"warmup must be > 0 for onecycle"),
    (TrainConfig, {"plateau_factor": 1}, r"plateau_factor must be in \(0, 1\), got 1"),
    (TrainConfig, {"plateau_patience": -1}, r"plateau_patience must be >= 0"),
    (TrainConfig, {"early_stopping_patience": 0}, r"early_stopping_patience must be >= 1 or null"),
    (TrainConfig, {"early_stopping_patience": 2.5}, r"early_stopping_patience must be int or null, got 2.5"),
    (TrainConfig, {"dropout_mode": "variational"}, r"dropout_mode must be one of standard, locked"),
    (TrainConfig, {"nproc": 0}, r"train\.names\.nproc must be > 0"),
    (TrainConfig, {"overrides": {"bilstm": {}}}, r"train\.names\.overrides names an unknown key 'bilstm' \(known: rnn_scratch, rnn"),
    (TrainConfig, {"overrides": {"lstm": {"seeds": [0]}}}, r"overrides of lstm cannot set seeds"),
    (TrainConfig, {"overrides": {"lstm": {"hidden_size": 0}}}, r"train\.names\.overrides\.lstm\.hidden_size must be > 0"),
    (TrainConfig, {"overrides": {"lstm": {"hiden_size": 9}}}, r"unknown key train\.names\.overrides\.lstm\.hiden_size"),
    (SplitConfig, {"train": 0.7}, r"must sum to 1"),
    (SplitConfig, {"dev": 0}, r"split\.names\.dev must be in \(0, 1\) or null, got 0"),  # null: predefined splits
    (VocabConfig, {"level": "byte"}, r"level must be one of"),
    (VocabConfig, {"max_size": 3}, r"max_size must be > 4"),
    (GenerateConfig, {"top_k": 0}, r"top_k must be >= 1"),
    (GenerateConfig, {"temperature": 0}, r"temperature must be > 0"),
    (GenerateConfig, {"temperature": -1.0}, r"temperature must be > 0"),
    (GenerateConfig, {"prompts": "s"}, r"prompts must be list"),
    (IngestConfig, {"format": "csv"}, r"format must be one of"),
    (IngestConfig, {"path": "x"}, r"unknown key ingest\.names\.path"),  # the raw file is corpora.<name>
    (IngestConfig, {"alphabet": None}, r"ingest\.names\.alphabet must be set for normalize: name"),
    (NgramConfig, {"min_order": 0}, r"^params: ngram\.names\.min_order must be > 0, got 0$"),
    (NgramConfig, {"max_order": 2.5}, r"ngram\.names\.max_order must be int"),
    (NgramConfig, {"min_order": 4, "max_order": 3}, r"ngram\.names\.min_order must be <= max_order, got 4 > 3"),
    (NgramConfig, {"order": 3}, r"unknown key ngram\.names\.order"),
])
def test_bad_params_are_rejected_naming_the_key(cls, data, message):
    name = SECTIONS[cls]
    with pytest.raises(UserError, match=message):
        cls.from_params(params_section(name) | data, f"{name}.names")


SECTIONS = {TrainConfig: "train", SplitConfig: "split", VocabConfig: "vocab", GenerateConfig: "generate",
            IngestConfig: "ingest", NgramConfig: "ngram"}


@pytest.mark.parametrize("data, message", [
    ({"kinds": {"names": ["gru", "bilstm"], "news": ["gru"]}},
     r"^params: kinds\.names\.1 must be one of rnn_scratch, rnn, gru, lstm, mlp, transformer, got 'bilstm'$"),
    ({"kinds": {"names": ["gru", "gru"], "news": ["gru"]}}, r"kinds\.names lists a kind twice"),
    ({"kinds": {"names": [], "news": ["gru"]}}, r"kinds\.names must not be empty"),
    ({"kinds": {"names": ["gru"]}}, r"kinds has no list for the corpus news"),
    ({"kinds": {"names": ["gru"], "news": ["gru"], "poems": ["gru"]}}, r"kinds lists kinds for poems, which is not"),
    ({"kinds": ["gru"]}, r"^params: kinds must be a mapping"),
    ({"corpora": {}}, r"corpora must not be empty"),
    ({"corpora": {"my corpus": "x.txt"}}, r"^params: corpora has a bad key 'my corpus': string should match"),
    ({"corpora": {"names": ""}}, r"corpora\.names must not be empty"),
])
def test_the_lists_of_corpora_and_kinds_are_checked(data, message):
    good = {"corpora": {"names": "names.txt", "news": "news.json"}, "kinds": {"names": ["gru"], "news": ["lstm"]}}
    assert Pipeline.from_params(good, "").kinds_of("news") == ["lstm"]
    with pytest.raises(UserError, match=message):
        Pipeline.from_params(good | data, "")


def test_every_key_comes_from_params_and_every_problem_gets_a_line():
    data = params_section("train")
    del data["lr"]
    with pytest.raises(UserError) as err:
        TrainConfig.from_params(data | {"hidden_size": 0, "dropout": 1.5}, "train.names")
    assert str(err.value).splitlines() == ["params: train.names.hidden_size must be > 0, got 0",
                                           "params: train.names.dropout must be in [0, 1), got 1.5",
                                           "params: train.names.lr is missing (params.yaml states every key; "
                                           "null where it may be off)"]


def test_good_params_parse_with_ints_for_floats():
    cfg = TrainConfig.from_params(params_section("train") | {"lr": 1, "grad_clip": None, "seeds": [0, 1, 2]},
                                  "train.names")
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float) and cfg.grad_clip is None and cfg.seeds == [0, 1, 2]
    assert SplitConfig.from_params(params_section("split"), "split.names").train == 0.8


def test_params_yaml_of_the_project_is_valid():
    """The committed params.yaml passes the same validation the stages apply."""
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root / "stages"))
    from _params import load_params, section

    params = load_params(root / "params.yaml")
    for corpus in params["corpora"]:
        section(params, IngestConfig, "ingest", corpus)
        section(params, SplitConfig, "split", corpus)
        section(params, VocabConfig, "vocab", corpus)
        section(params, TrainConfig, "train", corpus)
        section(params, GenerateConfig, "generate", corpus)
        section(params, NgramConfig, "ngram", corpus)


def test_overrides_change_one_kind_only():
    cfg = train_config(hidden_size=96, dropout=0.0, overrides={"lstm": {"hidden_size": 256, "dropout": 0.1}})
    lstm, gru = cfg.for_kind("lstm"), cfg.for_kind("gru")
    assert (lstm.hidden_size, lstm.dropout, lstm.overrides) == (256, 0.1, {})
    assert (gru.hidden_size, gru.dropout, gru.overrides) == (96, 0.0, {})
    assert lstm.seeds == gru.seeds == cfg.seeds  # shared by every kind


def test_the_unit_tests_fixture_params_are_complete():
    """tests/fixture_params.yaml (the unit tests' params, not params.yaml) holds every section for both toy
    corpora, validated by the stages' schema: dropping a key the schema requires fails, as in params.yaml."""
    assert set(PARAMS["corpora"]) == {"names", "news", "shakespeare"}
    for name, (cls, per_corpus) in FIXTURE_SECTIONS.items():
        entries = [(f"{name}.{c}", PARAMS[name][c]) for c in PARAMS["corpora"]] if per_corpus else [(name, PARAMS[name])]
        for where, data in entries:
            required = {key for key, field in cls.model_fields.items() if field.is_required()}
            assert required <= set(data) <= set(cls.model_fields), where
            for key in required:
                with pytest.raises(UserError, match=f"{where}.{key} is missing"):
                    cls.from_params({k: v for k, v in data.items() if k != key}, where)
    with pytest.raises(ValueError, match="expected corpora, kinds"):
        validated({k: v for k, v in PARAMS.items() if k != "ngram"})
    with pytest.raises(ValueError, match="mixture needs one entry per corpus"):
        validated(PARAMS | {"mixture": {"names": PARAMS["mixture"]["names"]}})
