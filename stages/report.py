"""Stage report: every corpus's metrics and loss curves -> a markdown table and a PNG of the curves."""

import argparse
from pathlib import Path

from rnnlm.config import MODEL_KINDS
from rnnlm.errors import UserError, exit_on_user_error
from rnnlm.io import read_json, write_text
from rnnlm.lifecycle import exit_with_parent
from rnnlm.report import BASELINES, MIXTURES, load_curve_csv, plot_curves, summary_markdown


def discover(metrics_dir, mixtures=()):
    """{corpus: {model: path}} for every ``<metrics_dir>/<corpus>/<model>.json`` of a recurrent kind or
    baseline, plus the ``mixtures`` files named on the command line (``<corpus>/<kind>+ngram.json``).

    Mixtures are named, not discovered: a file left over from a previous ``mixture.<corpus>.model``
    must not show up as a current row.
    """
    metrics_dir = Path(metrics_dir)
    if not metrics_dir.is_dir():
        raise UserError(f"metrics folder {metrics_dir} not found: run `dvc repro` to build it")
    found = {}
    for corpus_dir in sorted(p for p in metrics_dir.iterdir() if p.is_dir()):
        paths = {m: corpus_dir / f"{m}.json" for m in MODEL_KINDS + BASELINES}
        models = {m: path for m, path in paths.items() if path.is_file()}
        if models:
            found[corpus_dir.name] = models
    for path in map(Path, mixtures):
        if path.stem not in MIXTURES:
            raise UserError(f"{path}: a mixture's metrics file is named <kind>+ngram.json ({', '.join(MIXTURES)})")
        found.setdefault(path.parent.name, {})[path.stem] = path
    if not found:
        raise UserError(f"no <corpus>/<model>.json metrics under {metrics_dir}: run `dvc repro` to build them")
    return found


@exit_on_user_error
def main():
    exit_with_parent()  # end with `dvc repro`, even when it is killed with SIGKILL
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--metrics-dir", default="metrics", help="input: metrics/<corpus>/<model>.json")
    ap.add_argument("--plots-dir", default="plots", help="input: plots/<corpus>/<model>.csv")
    ap.add_argument("--mixtures", nargs="*", default=[], help="input: metrics/<corpus>/<kind>+ngram.json files")
    ap.add_argument("--summary", default="reports/summary.md", help="output: markdown tables")
    ap.add_argument("--curves", default="reports/curves.png", help="output: loss curves (PNG)")
    args = ap.parse_args()

    found = discover(args.metrics_dir, args.mixtures)
    results, curves, baselines, tokenization, samples = {}, {}, {}, {}, {}
    for corpus, models in found.items():
        results[corpus] = {m: read_json(path, what="metrics") for m, path in models.items()}
        # The tokenization stage's comparison, where this corpus has one.
        sampled = {m: Path(args.metrics_dir) / corpus / "samples" / f"{m}.json" for m in models if m in MODEL_KINDS}
        samples[corpus] = {m: read_json(path, what="sample statistics") for m, path in sampled.items()
                           if path.is_file()}
        compared = Path(args.metrics_dir) / corpus / "tokenization.json"
        if compared.is_file():
            tokenization[corpus] = read_json(compared, what="metrics")
        curves[corpus] = {m: load_curve_csv(Path(args.plots_dir) / corpus / f"{m}.csv")
                          for m in models if m in MODEL_KINDS}
        baselines[corpus] = {m: results[corpus][m]["dev"]["loss"] for m in models
                             if m in BASELINES and isinstance(results[corpus][m].get("dev"), dict)
                             and "loss" in results[corpus][m]["dev"]}
    summary = summary_markdown(results, tokenization, samples)  # validates every metrics file before anything is written
    plot_curves(curves, args.curves, baselines)
    write_text(args.summary, summary)
    print(f"report: {sum(map(len, found.values()))} model(s) on {', '.join(found)} -> {args.summary}, {args.curves}")


if __name__ == "__main__":
    main()
