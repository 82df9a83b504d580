"""Stage report: every corpus's metrics, timings and loss curves -> the results and the speed as markdown
tables, and a PNG of the curves."""

import argparse
from pathlib import Path

from _params import load_params
from rnnlm.curves import read_corpus_curves
from rnnlm.errors import UserError, exit_on_user_error
from rnnlm.io import read_json, write_text
from rnnlm.kinds import MODEL_KINDS
from rnnlm.lifecycle import exit_with_parent
from rnnlm.report import plot_curves, speed_markdown, summary_markdown
from rnnlm.schema.mixture import mixture_name
from rnnlm.schema.pipeline import Pipeline

SPEED_STAGES = ("train", "ngram", "mixture", "tokenization")  # speed/stages/<corpus>/<stage>.json
ADAPTED_ROWS = ("cache", "dyneval")  # <kind>+cache, <kind>+dyneval: evaluate.stream_cache, evaluate.stream_dyneval


def corpus_results(metrics_dir, kinds):
    """``(results, samples, tokenization)`` of one corpus: every model's metrics by row name (each
    kind, ngram, the mixture named by its kinds, e.g. lstm+transformer+ngram), the kinds' sample statistics and
    the tokenization comparison (None when absent)."""
    metrics_dir = Path(metrics_dir)
    results = {kind: read_json(metrics_dir / "neural" / f"{kind}.json", what="metrics") for kind in kinds}
    for row in (f"{kind}+{adapted}" for kind in kinds for adapted in ADAPTED_ROWS):  # where the evaluate stage wrote them
        if (metrics_dir / "neural" / f"{row}.json").is_file():
            results[row] = read_json(metrics_dir / "neural" / f"{row}.json", what="metrics")
    results["ngram"] = read_json(metrics_dir / "ngram.json", what="metrics")
    mixture = read_json(metrics_dir / "mixture.json", what="metrics")
    mixed = mixture.get("kinds")
    if not isinstance(mixed, list) or not mixed or not all(kind in MODEL_KINDS for kind in mixed):
        raise UserError(f"{metrics_dir / 'mixture.json'}: \"kinds\" must list the mixed kinds, got {mixed!r}")
    results[mixture_name(mixed)] = mixture
    samples = {kind: read_json(metrics_dir / "samples" / f"{kind}.json", what="sample statistics") for kind in kinds}
    compared = metrics_dir / "tokenization.json"
    return results, samples, read_json(compared, what="metrics") if compared.is_file() else None


def corpus_speed(speed_dir):
    """{stage: its speed file} of one corpus."""
    return {stage: read_json(Path(speed_dir) / f"{stage}.json", what="speed file") for stage in SPEED_STAGES}


@exit_on_user_error
def main():
    exit_with_parent()  # end with `dvc repro`, even when it is killed with SIGKILL
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--metrics-dir", default="metrics", help="input: metrics/<corpus>/ (every stage's metrics)")
    ap.add_argument("--plots-dir", default="plots", help="input: plots/<corpus>/loss.csv (the train stage's curves)")
    ap.add_argument("--speed-dir", default="speed/stages", help="input: speed/stages/<corpus>/ (every stage's timings)")
    ap.add_argument("--summary", default="reports/summary.md", help="output: markdown tables of the results")
    ap.add_argument("--speed", default="speed/summary.md", help="output: markdown tables of the timings")
    ap.add_argument("--curves", default="reports/curves.png", help="output: loss curves (PNG)")
    args = ap.parse_args()
    built = Pipeline.of(load_params())

    results, curves, baselines, tokenization, samples, speed = {}, {}, {}, {}, {}, {}
    for corpus in built.corpora:
        results[corpus], samples[corpus], compared = corpus_results(Path(args.metrics_dir) / corpus,
                                                                     built.kinds_of(corpus))
        if compared is not None:
            tokenization[corpus] = compared
        curves[corpus] = read_corpus_curves(Path(args.plots_dir) / corpus / "loss.csv")
        baselines[corpus] = {"ngram": results[corpus]["ngram"]["dev"]["loss"]}
        speed[corpus] = corpus_speed(Path(args.speed_dir) / corpus)
    # both tables validate their files before anything is written
    summary, timings = summary_markdown(results, tokenization, samples), speed_markdown(speed)
    plot_curves(curves, args.curves, baselines)
    write_text(args.summary, summary)
    write_text(args.speed, timings)
    print(f"report: {sum(map(len, results.values()))} model(s) on {', '.join(results)} -> {args.summary}, "
          f"{args.speed}, {args.curves}")


if __name__ == "__main__":
    main()
