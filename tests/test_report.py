"""The report: markdown table numbers (mean and seed range, order by dev loss, n-gram row, novelty), the
speed tables apart from them, and a deterministic PNG."""

import json
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import pytest

from rnnlm.errors import UserError
from rnnlm.report import plot_curves, speed_markdown, summary_markdown

ROOT = Path(__file__).resolve().parents[1]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def neural(test_loss, std, params, n=3):
    def spread(mean, sd):
        return {"mean": mean, "std": sd, "n": n, "min": mean - sd, "max": mean + sd}

    split = {"loss": test_loss + 0.01, "perplexity": 7.5, "accuracy": 0.3, "bits_per_char": 2.9, "tokens": 1000}
    return {
        "dev": {**split, "loss": test_loss - 0.02},
        "test": {**split, "loss": test_loss + 0.01, "oov_rate": 0.0},
        "params": params, "seed": 0, "best_epoch": 7, "epochs_done": 10,
        "seeds": {
            "dev_loss": spread(test_loss - 0.02, std), "test_loss": spread(test_loss, std),
            "test_perplexity": spread(2.718281828 ** test_loss, 0.0123),
            "test_accuracy": spread(0.31234, 0.00456), "test_bits_per_char": spread(2.87654, 0.00321),
            "dev_perplexity": spread(7.0, 0.1), "dev_accuracy": spread(0.3, 0.01),
            "dev_bits_per_char": spread(2.8, 0.01),
        },
    }


def ngram(test_loss):
    split = {"loss": test_loss, "perplexity": 9.87654, "accuracy": 0.25, "bits_per_char": 3.1, "tokens": 1000}
    return {"dev": {**split, "loss": test_loss - 0.01}, "test": {**split, "oov_rate": 0.0},
            "params": 5432, "order": 3, "discount": 0.75}


def mixture(test_loss, lam, std):
    metrics = neural(test_loss, 0.004, 1_100_000)
    metrics.update({"weights": {"lstm": lam, "ngram": 1 - lam}, "kinds": ["lstm"], "order": 3})
    metrics["seeds"]["weight_lstm"] = {"mean": lam, "std": std, "n": 3, "min": lam - std, "max": lam + std}
    return metrics


RESULTS = {
    "names": {"rnn_scratch": neural(2.20, 0.0100, 19000), "rnn": neural(2.10, 0.0042, 19123),
              "gru": neural(2.0521, 0.0031, 57000), "lstm": neural(2.06, 0.0050, 76000),
              "ngram": ngram(2.15)},
    "news": {"lstm": neural(6.1, 0.02, 900000), "ngram": ngram(6.5), "lstm+ngram": mixture(5.9, 0.6123, 0.0111)},
}


def rows(markdown, corpus):
    """The table rows of ``corpus``'s section, as lists of cells."""
    section = markdown.split(f"## {corpus}\n", 1)[1].split("\n## ", 1)[0]
    table = [line for line in section.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in table[2:]]


def test_table_formats_mean_and_range_and_sorts_by_dev_loss():
    md = summary_markdown(RESULTS)
    names = rows(md, "names")
    assert [r[0] for r in names] == ["**gru** (best)", "lstm", "rnn", "ngram", "rnn_scratch"]
    gru = names[0]
    assert gru[1] == "57,000"
    assert gru[2] == "2.0321 (2.0290–2.0352)"   # dev loss: mean (lowest–highest seed)
    assert gru[3] == "2.0521 (2.0490–2.0552)"   # test loss
    assert gru[4].endswith(")") and "±" not in md
    assert gru[5] == f"0.3123 ({0.31234 - 0.00456:.4f}–{0.31234 + 0.00456:.4f})"
    assert gru[7:] == ["—", "7 of 10"]  # no samples given; chosen epoch of those trained
    assert "n = 3 training seeds" in md and "mean (lowest–highest)" in md
    assert "Sorted by dev loss" in md and "the test split chooses nothing" in md


def one_seed(metrics):
    """A metrics file of a one-seed run: no ``seeds`` spread (it would repeat the headline)."""
    return {key: value for key, value in metrics.items() if key != "seeds"}


def test_one_seed_files_give_single_values_and_say_so():
    md = summary_markdown({"names": {"gru": one_seed(neural(2.0, 0.01, 1000)), "ngram": ngram(2.5),
                                     "lstm+ngram": one_seed(mixture(1.9, 0.61, 0.0))}})
    table = rows(md, "names")
    assert [r[0] for r in table] == ["**lstm+ngram** (best)", "gru", "ngram"]
    assert table[1][2:4] == ["1.9800", "2.0100"] and all("(" not in cell for cell in table[1][2:7])
    assert "- Neural models: one training run each (one seed), so single values" in md
    assert "Training times: speed/summary.md" in md
    assert "(headline seed: lstm 0.610, ngram 0.390)" in md and "mean (lowest–highest)" not in md
    # the n-gram keeps its own note; the one-seed neural models do not get it
    assert "- ngram (order 3): a single deterministic fit" in md and "gru (order" not in md


def test_best_is_chosen_on_dev_not_on_test():
    better_on_test = neural(2.00, 0.01, 1000)
    better_on_test["seeds"]["dev_loss"]["mean"] = 2.5          # but worse on dev
    md = summary_markdown({"names": {"gru": better_on_test, "lstm": neural(2.10, 0.01, 1000)}})
    assert [r[0] for r in rows(md, "names")] == ["**lstm** (best)", "gru"]


def test_novelty_column_from_the_samples_statistics():
    samples = {"names": {"gru": {"samples": 50, "novel_share": 0.28, "mean_length": 6.0, "std_length": 1.0}}}
    names = rows(summary_markdown(RESULTS, samples=samples), "names")
    by_model = {r[0].replace("**", "").replace(" (best)", ""): r for r in names}
    assert by_model["gru"][7] == "0.28" and by_model["lstm"][7] == "—" and by_model["ngram"][7] == "—"
    assert "Novel samples: the share" in summary_markdown(RESULTS, samples=samples)


def test_two_seeds_show_both_values_not_a_std():
    two = neural(2.0, 0.0, 1000, n=2)
    two["seeds"]["test_loss"] |= {"min": 1.99, "max": 2.01}
    assert rows(summary_markdown({"names": {"gru": two}}), "names")[0][3] == "2.0000 (1.9900–2.0100)"


def test_mixture_row_is_labelled_and_explained():
    md = summary_markdown(RESULTS)
    news = rows(md, "news")
    assert news[0][0] == "**lstm+ngram** (best)"
    assert news[0][1] == "1,100,000" and news[0][3] == "5.9000 (5.8960–5.9040)" and news[0][7] == "—"
    assert "training seconds" not in md and "tokens/s" not in md  # timings: speed/summary.md
    assert ("- lstm+ngram: Σ λ_k·P_k(w | h) token by token over its components, the weights λ fit on dev only "
            "(headline seed: lstm 0.612, ngram 0.388)") in md
    assert "lstm+ngram" not in md.split("## news")[0]


def test_ngram_row_has_single_values_and_dashes():
    news = rows(summary_markdown(RESULTS), "news")[1:]  # after the mixture, the best
    assert news[0][0] == "lstm"
    assert news[1] == ["ngram", "5,432", "6.4900", "6.5000", "9.88", "0.2500", "3.1000", "—", "—"]
    assert all("(" not in cell for cell in news[1])
    assert "- ngram (order 3): a single deterministic fit" in summary_markdown(RESULTS)


def test_one_table_per_corpus_with_the_columns():
    md = summary_markdown(RESULTS)
    headers = [[cell.strip() for cell in line.strip("|").split("|")] for line in md.splitlines()
               if line.startswith("| model ")]
    assert headers == [["model", "parameters", "dev loss", "test loss", "test perplexity", "test accuracy",
                        "test bits/char", "novel samples", "chosen epoch"]] * 2
    assert md.index("## names") < md.index("## news")
    assert summary_markdown(RESULTS) == md


def test_missing_metric_is_a_user_error():
    broken = neural(2.0, 0.01, 100)
    del broken["seeds"]["test_loss"]
    with pytest.raises(UserError, match="seeds.test_loss"):
        summary_markdown({"names": {"gru": broken}})


CURVES = {
    "names": {m: [(e, 3.0 - 0.1 * e - k * 0.05, 3.05 - 0.08 * e - k * 0.05) for e in range(1, 11)]
              for k, m in enumerate(["rnn_scratch", "rnn", "gru", "lstm"])},
    "news": {m: [(e, 7.0 - 0.5 * e - k * 0.1, 6.8 - 0.3 * e - k * 0.1) for e in range(1, 4)]
             for k, m in enumerate(["rnn_scratch", "rnn", "gru", "lstm"])},
}


def test_png_is_valid_and_byte_deterministic(tmp_path):
    first, second = tmp_path / "a" / "curves.png", tmp_path / "b" / "curves.png"
    plot_curves(CURVES, first, baselines={"names": {"ngram": 2.4}})
    plot_curves(CURVES, second, baselines={"names": {"ngram": 2.4}})
    data = first.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert data == second.read_bytes()
    assert b"Software" not in data and b"matplotlib" not in data
    image = matplotlib.image.imread(first)
    assert image.shape[:2] == (540, 1440)       # 12 x 4.5 in at 120 dpi
    assert not list(tmp_path.glob("*/.*.tmp"))   # atomic write left no temporary file


# The report stage reads what params.yaml lists: these corpora and kinds, each corpus's ngram and mixture.
STAGE_KINDS = ("gru", "lstm")
STAGE_RESULTS = {
    "names": {"gru": neural(2.0521, 0.0031, 57000), "lstm": neural(2.06, 0.0050, 76000), "ngram": ngram(2.15),
              "gru+ngram": mixture(2.0, 0.7, 0.01) | {"kinds": ["gru"], "weights": {"gru": 0.7, "ngram": 0.3}}},
    "news": {"gru": neural(6.2, 0.02, 800000), "lstm": neural(6.1, 0.02, 900000), "ngram": ngram(6.5),
             "lstm+gru+ngram": mixture(5.9, 0.6123, 0.0111) | {"kinds": ["lstm", "gru"],
                                                                "weights": {"lstm": 0.4, "gru": 0.3, "ngram": 0.3}}},
}


def speed(mixed=("lstm",), levels=None):
    """A corpus's speed files (speed/stages/<corpus>/<stage>.json) for the stage kinds, one seed each."""
    train = {kind: {"seed0": {"train_seconds": 10.0 * (i + 1), "tokens_per_s": 1234.5 / (i + 1), "epochs": 4,
                              "epoch_seconds": 2.5 * (i + 1)}} for i, kind in enumerate(STAGE_KINDS)}
    return {"train": train, "ngram": {"fit_seconds": 0.25},
            "mixture": {"kinds": mixed, "seed": 0, "ngram_fit_seconds": 0.3, "seconds": 2.0},
            "tokenization": {"levels": levels or {}}}


STAGE_SPEED = {"names": speed(["gru"]),
               "news": speed(["lstm", "gru"], {"word": {"seconds": 30.2, "train_seconds": 25.0}})}


def test_speed_tables_list_every_run_the_ngram_and_the_mixture():
    md = speed_markdown(STAGE_SPEED)
    names = rows(md, "names")
    assert names == [["gru", "0", "10.0", "4", "2.50", "1,234"], ["lstm", "0", "20.0", "4", "5.00", "617"],
                     ["ngram", "—", "0.2", "—", "—", "—"], ["gru+ngram", "0", "10.3", "—", "—", "—"]]
    assert rows(md.split("### news")[0], "news")[-1] == ["lstm+gru+ngram", "0", "30.3", "—", "—", "—"]
    assert rows(md, "news")[-1] == ["word", "30", "25"]  # the tokenization comparison's levels
    assert "dvc metrics show --targets speed/stages -R" in md
    assert "\n### news: tokenization\n" in md and md.index("- lstm+gru+ngram: the training seconds of lstm, gru") < md.index("### news")
    assert "names: tokenization" not in md  # no levels compared there


def test_speed_of_a_run_without_epochs_is_a_dash_and_a_bad_value_an_error():
    runs = speed()
    runs["train"]["gru"]["seed0"] |= {"epoch_seconds": None, "tokens_per_s": None}
    assert rows(speed_markdown({"names": runs}), "names")[0][4:] == ["—", "—"]
    runs["train"]["gru"]["seed0"]["train_seconds"] = "fast"
    with pytest.raises(UserError, match="train.gru.seed0: train_seconds"):
        speed_markdown({"names": runs})


def write_json(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")


def write_fixture(root):
    params = {"corpora": {corpus: f"raw/{corpus}.txt" for corpus in STAGE_RESULTS}, "kinds": {corpus: list(STAGE_KINDS) for corpus in STAGE_RESULTS}}
    (root / "params.yaml").write_text(json.dumps(params), encoding="utf-8")  # JSON is YAML
    for corpus, models in STAGE_RESULTS.items():
        metrics = root / "metrics" / corpus
        for model, result in models.items():
            name = "mixture" if "+" in model else model
            write_json(metrics / ("neural" if model in STAGE_KINDS else "") / f"{name}.json", result)
        for kind in STAGE_KINDS:
            write_json(metrics / "samples" / f"{kind}.json", {"novel_share": 0.5, "samples": 4})
        for stage, record in STAGE_SPEED[corpus].items():
            write_json(root / "speed" / "stages" / corpus / f"{stage}.json", record)
        table = "".join(f"{kind},{curve},{epoch},{loss:.6f}\n" for kind in STAGE_KINDS
                        for epoch, train, dev in CURVES[corpus][kind] for curve, loss in (("train", train), ("dev", dev)))
        (root / "plots" / corpus).mkdir(parents=True)
        (root / "plots" / corpus / "loss.csv").write_text("model,curve,epoch,loss\n" + table, encoding="utf-8")


def run_stage(cwd, *args):
    return subprocess.run([sys.executable, str(ROOT / "stages" / "report.py"), *args], cwd=cwd,
                          capture_output=True, text=True)


def test_stage_writes_both_outputs_deterministically(tmp_path):
    write_fixture(tmp_path)
    done = run_stage(tmp_path)
    assert done.returncode == 0, done.stderr
    summary = (tmp_path / "reports" / "summary.md").read_text(encoding="utf-8")
    png = (tmp_path / "reports" / "curves.png").read_bytes()
    samples = {corpus: dict.fromkeys(STAGE_KINDS, {"novel_share": 0.5, "samples": 4}) for corpus in STAGE_RESULTS}
    assert summary == summary_markdown(STAGE_RESULTS, samples=samples)
    assert (tmp_path / "speed" / "summary.md").read_text(encoding="utf-8") == speed_markdown(STAGE_SPEED)
    assert png.startswith(PNG_SIGNATURE)
    assert run_stage(tmp_path).returncode == 0
    assert (tmp_path / "reports" / "curves.png").read_bytes() == png


def test_stage_shows_the_listed_kinds_and_names_the_mixture_by_its_kinds(tmp_path):
    write_fixture(tmp_path)
    write_json(tmp_path / "metrics" / "news" / "neural" / "rnn.json", neural(5.0, 0.01, 10))  # not in kinds
    assert run_stage(tmp_path).returncode == 0
    summary = (tmp_path / "reports" / "summary.md").read_text(encoding="utf-8")
    assert [r[0] for r in rows(summary, "news")] == ["**lstm+gru+ngram** (best)", "lstm", "gru", "ngram"]
    assert rows(summary, "names")[0][0] == "**gru+ngram** (best)"
    write_json(tmp_path / "metrics" / "news" / "mixture.json", mixture(5.9, 0.6, 0.01) | {"kinds": ["gpt"]})
    done = run_stage(tmp_path)
    assert done.returncode == 2 and "mixed kinds" in done.stderr and "Traceback" not in done.stderr


def test_stage_without_metrics_names_dvc_repro(tmp_path):
    write_fixture(tmp_path)
    (tmp_path / "metrics" / "names" / "neural" / "gru.json").unlink()
    done = run_stage(tmp_path)
    assert done.returncode == 2
    assert "dvc repro" in done.stderr and "gru.json" in done.stderr and "Traceback" not in done.stderr


def test_stage_without_a_speed_file_names_dvc_repro_and_writes_nothing(tmp_path):
    write_fixture(tmp_path)
    (tmp_path / "speed" / "stages" / "news" / "train.json").unlink()
    done = run_stage(tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "speed file speed/stages/news/train.json not found: run `dvc repro`" in done.stderr
    assert not (tmp_path / "reports").exists()


def test_chosen_epoch_cell_with_and_without_the_epochs_trained():
    old = neural(2.1, 0.01, 1000)
    del old["best_epoch"], old["epochs_done"]                 # a metrics file from before best-epoch selection
    only_best = {k: v for k, v in neural(2.2, 0.01, 1000).items() if k != "epochs_done"}
    md = summary_markdown({"names": {"gru": old, "lstm": only_best}})
    cells = {r[0].split(" ")[0].strip("*"): r[8] for r in rows(md, "names")}
    assert cells == {"gru": "—", "lstm": "7"}


def test_a_corpus_with_unseen_test_tokens_gets_the_oov_column_for_every_row():
    word = {"lstm": one_seed(neural(6.1, 0.0, 900000)), "ngram": ngram(6.5)}
    for metrics, rate in ((word["lstm"], 0.0864), (word["ngram"], 0.0864)):
        metrics["test"] = metrics["test"] | {"oov_rate": rate, "oov_char_share": 0.1135}
    md = summary_markdown({"names": RESULTS["names"], "news": word})
    header = next(line for line in md.split("## news\n")[1].splitlines() if line.startswith("|"))
    titles = [cell.strip() for cell in header.strip("|").split("|")]
    assert titles[titles.index("test bits/char") + 1] == "test OOV"
    assert [row[titles.index("test OOV")] for row in rows(md, "news")] == ["8.64%", "8.64%"]
    assert "Test OOV: the share of test tokens unseen in train, read as <unk>; they cover 11.35%" in md
    # names read no unseen token (oov_rate 0 in every row): no column, no note
    assert "test OOV" not in md.split("## news")[0] and "Test OOV" not in md.split("## news")[0]
