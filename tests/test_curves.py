"""Training curves through dvclive: each run's log, the corpus table DVC's chart draws, the progress file."""

import json

import pytest

from rnnlm.curves import ProgressFile, RunLog, read_corpus_curves, read_run, run_dir, write_corpus_curves
from rnnlm.errors import UserError
from rnnlm.training import train_model
from tests.configs import train_config

HISTORY = [{"epoch": 1, "train_loss": 2.5, "dev_loss": 2.4}, {"epoch": 2, "train_loss": 2.125, "dev_loss": 2.25}]


def test_run_log_is_dvclive_files_read_back_exactly(tmp_path):
    log = RunLog(tmp_path / "gru" / "seed0")
    for row in HISTORY:
        log.epoch(row)
    log.close()
    assert (tmp_path / "gru/seed0/plots/metrics/train/loss.tsv").read_text().splitlines() == [
        "step\tloss", "1\t2.5", "2\t2.125"]
    assert json.loads((tmp_path / "gru/seed0/metrics.json").read_text()) == {
        "train": {"loss": 2.125}, "dev": {"loss": 2.25}, "step": 2}
    assert read_run(tmp_path / "gru" / "seed0").to_dict("records") == HISTORY


def test_a_resumed_log_starts_again_from_the_history_it_is_given(tmp_path):
    directory = tmp_path / "run"
    RunLog(directory, HISTORY[:1] + [{"epoch": 2, "train_loss": 9.0, "dev_loss": 9.0}]).close()  # killed run
    log = RunLog(directory, HISTORY[:1])  # resumed after epoch 1
    log.epoch(HISTORY[1])
    log.close()
    assert read_run(directory).to_dict("records") == HISTORY


def test_corpus_table_round_trip_and_errors(tmp_path):
    for kind, offset in (("gru", 0.0), ("lstm", 0.5)):
        RunLog(run_dir(tmp_path / "live", kind, 0),
               [row | {"train_loss": row["train_loss"] + offset} for row in HISTORY]).close()
    table = tmp_path / "plots" / "loss.csv"
    write_corpus_curves(table, {kind: run_dir(tmp_path / "live", kind, 0) for kind in ("gru", "lstm")})
    lines = table.read_text().splitlines()
    assert lines[:3] == ["model,curve,epoch,loss", "gru,train,1,2.500000", "gru,train,2,2.125000"]
    assert len(lines) == 1 + 2 * 2 * 2
    assert read_corpus_curves(table) == {"gru": [(1, 2.5, 2.4), (2, 2.125, 2.25)],
                                         "lstm": [(1, 3.0, 2.4), (2, 2.625, 2.25)]}
    table.write_text("epoch,train_loss,dev_loss\n1,2.5,2.4\n")  # the old per-kind layout
    with pytest.raises(UserError, match="model, curve, epoch, loss"):
        read_corpus_curves(table)
    with pytest.raises(UserError, match="dvc repro"):
        read_corpus_curves(tmp_path / "missing.csv")
    with pytest.raises(UserError, match="dvc repro"):
        read_run(tmp_path / "live" / "rnn" / "seed0")


def test_progress_file_holds_each_runs_latest_epoch(tmp_path):
    runs = {("gru", 0): run_dir(tmp_path, "gru", 0), ("gru", 1): run_dir(tmp_path, "gru", 1)}
    RunLog(runs[("gru", 0)], HISTORY).close()  # seed 1 has not logged an epoch yet
    with ProgressFile(tmp_path / "training.json", runs, every=0.01):
        pass
    assert json.loads((tmp_path / "training.json").read_text()) == {
        "gru": {"seed0": {"epoch": 2, "train_loss": 2.125, "dev_loss": 2.25}}}


def test_training_logs_every_epoch_it_records(tmp_path, toy_vocab, toy_splits):
    cfg = train_config(embedding_size=8, hidden_size=8, epochs=2, batch_size=8, workers=1)
    _, record = train_model("gru", cfg, toy_vocab, toy_splits, 0, tmp_path / "m.pt", progress=False,
                            log=lambda *_: None, live_dir=tmp_path / "live")
    logged = read_run(tmp_path / "live").to_dict("records")
    assert logged == [{k: row[k] for k in ("epoch", "train_loss", "dev_loss")} for row in record["history"]]
