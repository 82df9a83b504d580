import pytest

from rnnlm.config import GenerateConfig, IngestConfig, NgramConfig, SplitConfig, TrainConfig, VocabConfig
from rnnlm.errors import UserError


@pytest.mark.parametrize("cls, data, message", [
    (TrainConfig, {"hidden_sise": 96}, r"unknown key train\.names\.hidden_sise"),
    (TrainConfig, {"hidden_size": 0}, r"train\.names\.hidden_size must be > 0"),
    (TrainConfig, {"hidden_size": "96"}, r"train\.names\.hidden_size must be int"),
    (TrainConfig, {"hidden_size": 9.5}, r"hidden_size must be int"),
    (TrainConfig, {"lr": True}, r"lr must be float"),
    (TrainConfig, {"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
    (TrainConfig, {"optimizer": "adagrad"}, r"optimizer must be one of"),
    (TrainConfig, {"seeds": []}, r"seeds must list at least one"),
    (TrainConfig, {"seeds": [1, 1]}, r"seeds must not repeat"),
    (TrainConfig, {"tie_weights": True, "embedding_size": 32}, r"tie_weights needs"),
    (TrainConfig, {"grad_clip": 0}, r"grad_clip must be > 0"),
    (TrainConfig, {"scheduler": "step"}, r"train\.names\.scheduler must be one of none, plateau"),
    (TrainConfig, {"warmup": 1.0}, r"warmup must be in \[0, 1\)"),
    (TrainConfig, {"scheduler": "onecycle", "warmup": 0}, r"warmup must be > 0 for onecycle"),
    (TrainConfig, {"plateau_factor": 1}, r"plateau_factor must be between 0 and 1"),
    (TrainConfig, {"plateau_patience": -1}, r"plateau_patience must be >= 0"),
    (TrainConfig, {"early_stopping_patience": 0}, r"early_stopping_patience must be >= 1 or null"),
    (TrainConfig, {"early_stopping_patience": 2.5}, r"early_stopping_patience must be int or null, got 2.5"),
    (TrainConfig, {"dropout_mode": "variational"}, r"dropout_mode must be one of standard, locked"),
    (TrainConfig, {"nproc": 0}, r"train\.names\.nproc must be > 0"),
    (TrainConfig, {"overrides": {"transformer": {}}}, r"train\.names\.overrides names an unknown model kind"),
    (TrainConfig, {"overrides": {"lstm": {"seeds": [0]}}}, r"overrides of lstm cannot set seeds"),
    (TrainConfig, {"overrides": {"lstm": {"hidden_size": 0}}}, r"train\.names\.overrides\.lstm\.hidden_size must be > 0"),
    (TrainConfig, {"overrides": {"lstm": {"hiden_size": 9}}}, r"unknown key train\.names\.overrides\.lstm\.hiden_size"),
    (SplitConfig, {"train": 0.7}, r"must sum to 1"),
    (SplitConfig, {"dev": 0}, r"dev must be between 0 and 1"),
    (VocabConfig, {"level": "byte"}, r"level must be one of"),
    (VocabConfig, {"max_size": 3}, r"max_size must be > 4"),
    (GenerateConfig, {"top_k": 0}, r"top_k must be >= 1"),
    (GenerateConfig, {"temperature": 0}, r"temperature must be > 0"),
    (GenerateConfig, {"temperature": -1.0}, r"temperature must be > 0"),
    (GenerateConfig, {"prompts": "s"}, r"prompts must be list"),
    (IngestConfig, {"path": "x", "format": "csv"}, r"format must be one of"),
    (IngestConfig, {}, r"path must name the raw file"),
    (NgramConfig, {"discount": 1.5}, r"discount must be between"),
])
def test_bad_params_are_rejected_naming_the_key(cls, data, message):
    with pytest.raises(UserError, match=message):
        cls.from_params(data, "train.names" if cls is TrainConfig else "section")


def test_good_params_parse_with_ints_for_floats():
    cfg = TrainConfig.from_params({"lr": 1, "grad_clip": None, "seeds": [0, 1, 2]}, "train.names")
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float) and cfg.grad_clip is None and cfg.seeds == [0, 1, 2]
    assert SplitConfig.from_params({"train": 0.8, "dev": 0.1, "test": 0.1}, "split.names").train == 0.8


def test_params_yaml_of_the_project_is_valid():
    """The committed params.yaml passes the same validation the stages apply."""
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root / "stages"))
    from _params import load_params, section

    params = load_params(root / "params.yaml")
    for corpus in ("names", "news"):
        section(params, IngestConfig, "ingest", corpus)
        section(params, SplitConfig, "split", corpus)
        section(params, VocabConfig, "vocab", corpus)
        section(params, TrainConfig, "train", corpus)
        section(params, GenerateConfig, "generate", corpus)


def test_overrides_change_one_kind_only():
    cfg = TrainConfig.from_params({"hidden_size": 96, "overrides": {"lstm": {"hidden_size": 256, "dropout": 0.1}}},
                                  "train.names")
    lstm, gru = cfg.for_kind("lstm"), cfg.for_kind("gru")
    assert (lstm.hidden_size, lstm.dropout, lstm.overrides) == (256, 0.1, {})
    assert (gru.hidden_size, gru.dropout, gru.overrides) == (96, 0.0, {})
    assert lstm.seeds == gru.seeds == cfg.seeds  # shared by every kind
