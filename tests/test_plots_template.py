"""`dvc plots show` draws one chart per corpus: colour = model, dash = train/dev, x = epoch."""

import json
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
KINDS = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))["kinds"]  # {corpus: [kind, ...]}


def test_one_chart_per_corpus_with_models_by_colour_and_curves_by_dash():
    done = subprocess.run(["dvc", "plots", "show", "--json"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    charts = json.loads(done.stdout)["data"]
    assert set(charts) == {f"plots/{corpus}/loss.csv" for corpus in KINDS}  # one chart per corpus
    for path, chart in charts.items():
        content = chart[0]["content"]
        encoding = content["spec"]["encoding"]
        assert encoding["x"]["field"] == "epoch"
        assert encoding["color"]["field"] == "model" and encoding["strokeDash"]["field"] == "curve"
        assert content["facet"]["column"]["field"] == "rev"  # `dvc plots diff`: a panel per revision
        rows = content["data"]["values"]
        assert {row["curve"] for row in rows} == {"train", "dev"}
        assert {row["model"] for row in rows} == set(KINDS[path.split("/")[1]])  # every kind of kinds.<corpus>, from one table
