"""Stage report: every corpus's metrics and loss curves -> a markdown table and a PNG of the curves."""

import argparse
from pathlib import Path

from rnnlm.errors import UserError, exit_on_user_error
from rnnlm.io import read_json, write_text
from rnnlm.lifecycle import exit_with_parent
from rnnlm.report import BASELINES, MODEL_ORDER, load_curve_csv, plot_curves, summary_markdown


def discover(metrics_dir):
    """{corpus: [model, ...]} for every ``<metrics_dir>/<corpus>/<model>.json`` of a known model kind."""
    metrics_dir = Path(metrics_dir)
    if not metrics_dir.is_dir():
        raise UserError(f"metrics folder {metrics_dir} not found: run `dvc repro` to build it")
    found = {}
    for corpus_dir in sorted(p for p in metrics_dir.iterdir() if p.is_dir()):
        models = [m for m in MODEL_ORDER if (corpus_dir / f"{m}.json").is_file()]
        if models:
            found[corpus_dir.name] = models
    if not found:
        raise UserError(f"no <corpus>/<model>.json metrics under {metrics_dir}: run `dvc repro` to build them")
    return found


@exit_on_user_error
def main():
    exit_with_parent()  # end with `dvc repro`, even when it is killed with SIGKILL
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--metrics-dir", default="metrics", help="input: metrics/<corpus>/<model>.json")
    ap.add_argument("--plots-dir", default="plots", help="input: plots/<corpus>/<model>.csv")
    ap.add_argument("--summary", default="reports/summary.md", help="output: markdown tables")
    ap.add_argument("--curves", default="reports/curves.png", help="output: loss curves (PNG)")
    args = ap.parse_args()

    found = discover(args.metrics_dir)
    results, curves, baselines = {}, {}, {}
    for corpus, models in found.items():
        results[corpus] = {m: read_json(Path(args.metrics_dir) / corpus / f"{m}.json", what="metrics")
                           for m in models}
        curves[corpus] = {m: load_curve_csv(Path(args.plots_dir) / corpus / f"{m}.csv")
                          for m in models if m not in BASELINES}
        baselines[corpus] = {m: results[corpus][m]["dev"]["loss"] for m in models
                             if m in BASELINES and isinstance(results[corpus][m].get("dev"), dict)
                             and "loss" in results[corpus][m]["dev"]}
    summary = summary_markdown(results)  # validates every metrics file before anything is written
    plot_curves(curves, args.curves, baselines)
    write_text(args.summary, summary)
    print(f"report: {sum(map(len, found.values()))} model(s) on {', '.join(found)} -> {args.summary}, {args.curves}")


if __name__ == "__main__":
    main()
