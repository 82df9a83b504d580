"""The real pipeline, end to end: `dvc repro` in a temporary copy of the repository, shrunk.

The copy gets tiny corpora made here (the user's "bring your own file" path: params point the
ingest stage at them), tiny models and one epoch, so the whole DAG runs in a few minutes. It is built
once per test run and shared (tests/shrunken.py); the tests that change it work on their own copy.
"""

import json
import re

import pytest
import yaml

from rnnlm import cli, gates
from rnnlm.speed import is_timing
from tests.shrunken import ROOT, copy_project, digest, experiments_shown, metrics_diff, sh, wait_for_queue

pytestmark = pytest.mark.slow

PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())
MODELS = {corpus: tuple(kinds) for corpus, kinds in PARAMS["kinds"].items()}  # kinds.<corpus>
MIXED = {corpus: [m] if isinstance(m, str) else m for corpus, m in
         ((corpus, section["model"]) for corpus, section in PARAMS["mixture"].items())}
DATA_OUTPUTS = ["data/interim/names.jsonl", "data/interim/news.jsonl", "data/splits/names/train.txt",
                "data/splits/news/test.txt", "data/splits/news/report.json", "data/vocab/names.json",
                "data/vocab/news.json", "data/encoded/names/items.npz", "data/encoded/news/items.npz",
                "data/splits/shakespeare/dev.txt", "data/encoded/shakespeare/train.bin",
                "data/encoded/shakespeare/stream.json"]


@pytest.fixture(scope="session")
def built(shrunken_pipeline, tmp_path_factory):
    """A copy of the shared shrunken build (tests/shrunken.py: the project's files as in the working tree,
    tiny corpora, `dvc repro`, committed) for the tests that only read it, one per worker."""
    return copy_project(shrunken_pipeline, tmp_path_factory.mktemp("pipeline") / "rnnlm")


@pytest.fixture
def repo(shrunken_pipeline, tmp_path):
    """A copy of the shared shrunken build of this test's own, to change."""
    return copy_project(shrunken_pipeline, tmp_path / "rnnlm")


def test_repro_builds_every_output(built):
    report = json.loads((built / "metrics/names/ingest.json").read_text())
    assert report["rows_read"] == 325 == report["rows_kept"] + report["rows_rejected"]
    duplicates = report["rejected_by_reason"].pop("duplicate")
    assert report["rejected_by_reason"] == {"disallowed_characters": 1, "empty": 2} and duplicates >= 21
    news_report = json.loads((built / "metrics/news/ingest.json").read_text())
    assert news_report["rejected_by_reason"] == {"invalid_json": 1, "null_field": 1}
    split_report = json.loads((built / "data/splits/news/report.json").read_text())
    assert set(split_report["categories"]["test"]) == {"POLITICS", "SPORTS", "WELLNESS"}
    for corpus in ("names", "news"):
        for model in MODELS[corpus]:
            metrics = json.loads((built / f"metrics/{corpus}/neural/{model}.json").read_text())
            assert set(metrics["dev"]) >= {"loss", "perplexity", "accuracy", "bits_per_char"}
            assert set(metrics["test"]) >= {"loss", "perplexity", "accuracy", "bits_per_char", "oov_rate"}
            assert metrics["seeds"]["test_loss"]["n"] == 2 and metrics["params"] > 0
            speed = json.loads((built / f"speed/stages/{corpus}/train.json").read_text())[model]
            assert set(speed) == {"seed0", "seed1"} and speed["seed0"]["tokens_per_s"] > 0
            assert speed["seed1"]["epochs"] == 1 and speed["seed1"]["train_seconds"] > 0
            assert (built / f"models/{corpus}/neural/{model}.pt").is_file()
            assert (built / f"samples/{corpus}/{model}.txt").read_text().strip()
            for seed in (0, 1):  # each run's dvclive log: its one epoch, its latest epoch in training.json
                live = built / f"live/{corpus}/{model}/seed{seed}"
                assert json.loads((live / "metrics.json").read_text())["step"] == 1
                assert (live / "plots/metrics/dev/loss.tsv").read_text().splitlines()[0] == "step\tloss"
                training = json.loads((built / f"metrics/{corpus}/training.json").read_text())[model][f"seed{seed}"]
                assert training["epoch"] == 1 and training["dev_loss"] > 0
        curves = (built / f"plots/{corpus}/loss.csv").read_text().splitlines()
        assert curves[0] == "model,curve,epoch,loss" and len(curves) == 1 + 2 * len(MODELS[corpus])
        mixture = json.loads((built / f"metrics/{corpus}/mixture.json").read_text())
        assert mixture["kinds"] == MIXED[corpus]  # mixture.<corpus>.model
        assert sum(mixture["weights"].values()) == pytest.approx(1.0, abs=1e-5)
        assert mixture["seeds"]["test_loss"]["n"] == 2
    for corpus, kinds in MIXED.items():
        name = re.escape("+".join(kinds) + "+ngram")
        assert re.search(rf"^\| (\*\*)?{name}(\*\*)? ", (built / "reports/summary.md").read_text(), flags=re.M)
        assert re.search(rf"^\| {name} +\| +0 \|", (built / "speed/summary.md").read_text(), flags=re.M)  # timings
    timings = [f"{path}: {key}" for path in built.glob("metrics/**/*.json")
               for key in gates.flatten(json.loads(path.read_text())) if is_timing(key)]
    assert not timings, timings
    tokenization = json.loads((built / "metrics/news/tokenization.json").read_text())
    assert set(tokenization["levels"]) == {"word", "bpe", "char"}
    assert set(json.loads((built / "speed/stages/news/tokenization.json").read_text())["levels"]) == {"word", "bpe", "char"}
    assert json.loads((built / "metrics/names/tokenization.json").read_text())["levels"] == {}
    assert "## news: tokenization" in (built / "reports/summary.md").read_text()
    assert "Data and pipelines are up to date" in sh("dvc", "status", cwd=built).stdout
    shown = sh("dvc", "metrics", "show", "--json", cwd=built).stdout
    for corpus in ("names", "news"):
        assert all(f"metrics/{corpus}/neural/{model}.json" in shown for model in MODELS[corpus])
        assert f"metrics/{corpus}/mixture.json" in shown and f"metrics/{corpus}/samples/{MODELS[corpus][0]}.json" in shown
    plots = json.loads(sh("dvc", "plots", "show", "--json", cwd=built).stdout)
    assert sorted(plots["data"]) == ["plots/names/loss.csv", "plots/news/loss.csv",
                                     "plots/shakespeare/loss.csv"]  # one chart per corpus
    stream = json.loads((built / "metrics/shakespeare/neural/lstm.json").read_text())
    assert stream["dev_test"]["tokens"] == stream["dev"]["tokens"] + stream["test"]["tokens"]
    assert "dev ∪ test loss" in (built / "reports/summary.md").read_text()
    assert json.loads((built / "metrics/shakespeare/ingest.json").read_text())["rejected_by_reason"] == {
        "invalid_utf8": 1}


@pytest.mark.parametrize("corpus", ["names", "news", "shakespeare"])
def test_every_model_file_scores_its_test_split_with_its_stage_loss(built, corpus, capsys, monkeypatch):
    """`rnnlm score` on each file the pipeline wrote (recurrent checkpoints, the ARPA n-gram, the
    mixture) gives the test loss and perplexity its stage recorded in metrics/, to 1e-6. (In this
    process: the console script itself runs in test_cli_gates.)"""
    monkeypatch.chdir(built)
    files = {f"neural/{model}": f"models/{corpus}/neural/{model}.pt" for model in MODELS[corpus]}
    files |= {"ngram": f"models/{corpus}/ngram.arpa.gz", "mixture": f"models/{corpus}/mixture.json"}
    for model, path in files.items():
        with pytest.raises(SystemExit) as done:
            cli.main(["score", "--model", path, f"data/splits/{corpus}/test.txt"])
        assert done.value.code == 0, capsys.readouterr().err
        summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        recorded = json.loads((built / f"metrics/{corpus}/{model}.json").read_text())["test"]
        assert summary["rejected"] == 0, model
        for key in ("loss", "perplexity", "bits_per_char"):
            assert summary[key] == pytest.approx(recorded[key], rel=1e-6, abs=1e-6), (model, key)


def test_no_held_out_item_occurs_in_train(built):
    """ingest drops repeated items before the split (dedupe), so dev and test hold no training item."""
    for corpus in ("names", "news"):
        splits = {name: (built / f"data/splits/{corpus}/{name}.txt").read_text().splitlines()
                  for name in ("train", "dev", "test")}
        assert not set(splits["train"]) & (set(splits["dev"]) | set(splits["test"])), corpus
        assert len(set(splits["train"])) == len(splits["train"]), corpus
    rejects = [json.loads(line) for line in (built / "data/interim/names.rejects.jsonl").read_text().splitlines()]
    assert {"line": 325, "reason": "duplicate", "detail": "the same item as line 303"} == {
        key: rejects[-1][key] for key in ("line", "reason", "detail")}  # "ZOE" repeats "Zoë" (line 303)


def test_data_stages_are_byte_identical_on_rerun(repo):
    before = {name: digest(repo / name) for name in DATA_OUTPUTS}
    sh("dvc", "repro", "--force", "--single-item", *[f"{stage}@{corpus}" for stage in ("ingest", "split", "vocab")
                                                  for corpus in ("names", "news", "shakespeare")], cwd=repo)
    assert {name: digest(repo / name) for name in DATA_OUTPUTS} == before


def output_digests(repo):
    """{path: sha256} of every file the stages wrote, but the timings under speed/."""
    roots = ("data/interim", "data/splits", "data/vocab", "data/encoded", "models", "live", "samples", "metrics",
             "plots", "reports")
    return {str(path.relative_to(repo)): digest(path) for root in roots for path in sorted((repo / root).rglob("*"))
            if path.is_file() and path.name != ".gitignore"}


def test_a_forced_rerun_writes_the_same_bytes_but_timings(repo):
    """`dvc repro --force` of every names stage on the same machine gives every output byte for byte
    (checkpoints, dvclive logs, samples, the ARPA file, metrics, the report): no wall-clock figure
    outside speed/, whose timings change. `dvc metrics diff` lists no row. (Another CPU, and a one-key
    experiment: tests/test_metrics_diff.py.)"""
    before, timings = output_digests(repo), (repo / "speed/stages/names/train.json").read_text()
    # the data stages' own rerun: test_data_stages_are_byte_identical_on_rerun
    sh("dvc", "repro", "--force", "--single-item", *[f"{stage}@names" for stage in ("train", "evaluate", "generate",
                                                                                    "ngram", "mixture")], "report",
       cwd=repo)
    after = output_digests(repo)
    assert {path for path in before | after if before.get(path) != after.get(path)} == set()
    assert metrics_diff(repo) == {}
    assert (repo / "speed/stages/names/train.json").read_text() != timings  # the seconds are new


def test_a_parameter_set_run_before_comes_back_from_the_run_cache(repo):
    """An experiment with another training setting, then the default again: DVC restores every stage
    of the default from its run-cache (no training: no epoch is logged) with the very same outputs.
    Every stage that costs time can be restored; only the report (uncached outputs) runs again."""
    before = output_digests(repo)
    sh("dvc", "exp", "run", "-S", "train.names.epochs=2", cwd=repo)
    back = sh("dvc", "exp", "run", "-S", "train.names.epochs=1", cwd=repo)
    restored = set(re.findall(r"Stage '([\w@]+)' is cached - skipping run, checking out outputs", back.stdout))
    assert {f"{stage}@names" for stage in ("train", "evaluate", "generate", "mixture")} <= restored, back.stdout
    assert "epoch 1:" not in back.stdout + back.stderr  # nothing trained
    assert output_digests(repo) == before
    sh("git", "reset", "-q", "--hard", cwd=repo)


def test_experiments_set_queue_and_show(repo):
    """A sweep of `dvc exp run --queue -S` run by `dvc queue start -j 2`, and `dvc exp show` (run last:
    experiments leave their results in the workspace). A direct `dvc exp run -S` runs in
    test_shared_experiments."""
    # two experiments, two at a time: one with two settings, one with another list of kinds
    sweep = (("wider", ("train.names.hidden_size=12", "train.names.lr=0.02")), ("two-kinds", ("kinds.names=[gru,lstm]",)))
    for name, settings in sweep:
        # one seed each (the fixture trains two): the sweep's machinery is the point, not the spread
        overrides = [arg for setting in settings for arg in ("-S", setting)]
        sh("dvc", "exp", "run", "--queue", "-n", name, *overrides, "-S", "train.names.seeds=[0]", "evaluate@names",
           cwd=repo)
    sh("dvc", "queue", "start", "-j", "2", cwd=repo)
    wait_for_queue(repo)
    experiments = experiments_shown(repo)
    assert {"wider", "two-kinds"} <= set(experiments), list(experiments)
    params = experiments["wider"]["params"]["params.yaml"]["data"]
    assert params["train"]["names"]["lr"] == 0.02 and params["train"]["names"]["hidden_size"] == 12
    metrics = experiments["wider"]["metrics"]["metrics/names/neural/lstm.json"]["data"]
    assert metrics["params"] > 0 and metrics["test"]["loss"] > 0
    # the kinds list is the one place that says what trains: dropping two drops their files
    two_kinds = {path for path in experiments["two-kinds"]["metrics"] if path.startswith("metrics/names/neural/")}
    assert two_kinds == {"metrics/names/neural/gru.json", "metrics/names/neural/lstm.json"}, two_kinds
    table = sh("dvc", "exp", "show", "--csv", cwd=repo).stdout  # the human table, untruncated
    assert "wider" in table and "two-kinds" in table
