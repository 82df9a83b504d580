"""The ``rnnlm`` command: use any model file (score, sample, info, novelty), and the CI gates.

    rnnlm score --model models/names/lstm+ngram.json names.txt [--format jsonl|csv] [--device cpu]
    rnnlm sample --model models/names/ngram.arpa.gz -n 10 --prompt Em --temperature 0.8 --top-k 5
    rnnlm info models/news/lstm.pt
    rnnlm novelty --model models/names/lstm.pt --train-split data/splits/names/train.txt
    rnnlm compare [REV] [--rtol 0.01]
    rnnlm check-metrics [--rev HEAD] [--rtol 0.01] [--atol 1e-6] [--sample-k 3]
    rnnlm check-lock [--rev HEAD]
"""

import argparse
import csv
import json
import sys

import torch

from . import __version__, gates
from .compare import compare
from .config import Positive, Temperature, TopK, check_value
from .devices import DEVICES, resolve_device
from .errors import UserError, exit_on_user_error
from .io import read_lines
from .lm import load_model, recorded_metrics
from .novelty import novelty_grid
from .sampling import join_text, sample_ids
from .scoring import score_lines


CHECK_METRICS_RULES = """\
  timing    keys ending in seconds, _per_s, _ms: never compared (machine, load)
  count     integers (tokens, n, params, samples, seed, ...): exactly
  effect    the chosen epoch (best_epoch, epochs_done): another one passes when every other
            value of its file passes (its dev loss and test metrics); else it fails too
  spread    std beside a mean (spread over seeds): |new-old| <= atol + rtol*|mean|
  sample    statistics in an object with an integer `samples` count n (metrics/<corpus>/samples/):
              *_share p:             |new-old| <= k*sqrt(q(1-q)/n), q = (p*n+1)/(n+2)
              mean_X beside std_X s: |new-old| <= k*s/sqrt(n)
              std_X s:               |new-old| <= k*s/sqrt(2(n-1))
            (another machine may draw other samples: a last-digit difference can flip a draw)
  relative  every other number (losses, accuracies, means, single-seed values):
              |new-old| <= atol + rtol*|old|
  exact     strings and booleans; a NaN passes only where the committed value was NaN
A file or key that is missing on one side fails. Exit status 1 and a table (file, metric,
committed, workspace, problem) when any value fails its rule.
"""


def _check_sampling(args):
    """The flags checked with the generate section's own types (params.yaml's generate.*)."""
    check_value(Positive, args.n, "-n")
    check_value(Temperature, args.temperature, "--temperature")
    check_value(TopK, args.top_k, "--top-k")


def _model(args):
    path = args.model or getattr(args, "checkpoint", None)
    if path is None:
        raise UserError("name a model file: --model FILE (a .pt checkpoint, an .arpa/.arpa.gz n-gram or a mixture .json)")
    return load_model(path, resolve_device(getattr(args, "device", "cpu")))


def prompt_ids(vocab, prompt, warn):
    """``(ids, text)`` of a prompt normalized like the corpus; ``warn`` gets one line per unknown piece."""
    text = vocab.normalization.clean(prompt) if vocab.normalization is not None else prompt.strip()
    if not text:
        return [vocab.bos_id], ""
    what = "character" if vocab.level == "char" else "word"
    for piece in dict.fromkeys(vocab.unknown_tokens(text)):
        warn(f"warning: prompt {what} {piece!r} is not in the model's vocabulary; the model reads it as <unk>")
    return vocab.encode(text)[:-1], text


def cmd_sample(args):
    _check_sampling(args)
    lm = _model(args)
    ids, text = prompt_ids(lm.vocab, args.prompt, lambda line: print(line, file=sys.stderr))
    generator = torch.Generator().manual_seed(args.seed)
    rows = sample_ids(lm.stepper(), lm.vocab, args.n, ids, temperature=args.temperature, top_k=args.top_k,
                      max_tokens=args.max_tokens, greedy=args.greedy, generator=generator)
    print("\n".join(join_text(lm.vocab, ids, rows, prefix=text if args.prompt else None)))
    return 0


CSV_COLUMNS = ["line", "text", "tokens", "logprob_nats", "logprob_bits", "perplexity", "bits_per_char", "oov",
               "rejected", "detail", "loss"]


def cmd_score(args):
    lm = _model(args)
    if args.input == "-":
        lines = sys.stdin.read().splitlines()
    else:
        lines = read_lines(args.input, what="input")
    records, summary = score_lines(lm, lines)
    if not summary["items"]:
        raise UserError(f"no line of {args.input if args.input != '-' else 'stdin'} could be scored "
                        f"({summary['rejected']} rejected)")
    if args.format == "jsonl":
        for record in records + [summary]:
            print(json.dumps(record, ensure_ascii=False))
        return 0
    writer = csv.DictWriter(sys.stdout, CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow(record | ({"oov": " ".join(record["oov"])} if "oov" in record else {}))
    writer.writerow({"line": "summary", "text": f"{summary['items']} items, {summary['rejected']} rejected",
                     "oov": summary["oov_tokens"]} | {k: summary[k] for k in CSV_COLUMNS if k in summary
                                                       and k not in ("line", "text", "oov")})
    return 0


def cmd_info(args):
    lm = load_model(args.model)
    vocab = lm.vocab
    info = {"file": args.model, "kind": lm.kind, **lm.describe(),
            "vocabulary": {"level": vocab.level, "size": len(vocab),
                           "normalization": vocab.normalization.to_dict() if vocab.normalization else None},
            "metrics": recorded_metrics(args.model)}
    print(json.dumps(info, indent=2, ensure_ascii=False))
    return 0


def cmd_novelty(args):
    check_value(Positive, args.n, "-n")
    check_value(list[Temperature], args.temperatures, "--temperatures")
    check_value(list[TopK], [k or None for k in args.top_k], "--top-k (0: no cut)")
    lm = _model(args)
    train = read_lines(args.train_split, what="training split")
    rows = novelty_grid(lm, train, args.temperatures, [k or None for k in args.top_k], n=args.n,
                        max_tokens=args.max_tokens, seed=args.seed)
    print("temperature  top_k  novel_share  distinct_share  loglik/token  loglik/sample")
    for row in rows:
        print(f"{row['temperature']:>11g}  {row['top_k'] or '-':>5}  {row['novel_share']:>11.3f}  "
              f"{row['distinct_share']:>14.3f}  {row['mean_loglik_per_token']:>12.4f}  "
              f"{row['mean_loglik_per_sample']:>13.3f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=2)
    return 0


def cmd_check_metrics(args):
    old = gates.committed_metrics(args.rev, args.metrics_dir)
    if not old:
        raise UserError(f"no metrics under {args.metrics_dir}/ at revision {args.rev}")
    if args.rtol < 0 or args.atol < 0 or args.sample_k <= 0:
        raise UserError("--rtol and --atol must be >= 0 and --sample-k > 0")
    new = gates.workspace_metrics(args.metrics_dir)
    tally = {}
    rows = gates.compare_metrics(old, new, args.rtol, args.atol, ignore=tuple(args.ignore), k=args.sample_k,
                                 tally=tally)
    tolerances = f"rtol={args.rtol}, atol={args.atol}, sample bands of {args.sample_k:g} standard errors"
    if rows:
        print(f"{len(rows)} metric(s) differ from {args.rev} beyond their tolerance ({tolerances}):")
        print(gates.format_rows(rows))
        return 1
    judged = ", ".join(f"{tally[rule]} {rule}" for rule in sorted(tally))
    print(f"metrics match {args.rev}: {len(old)} files within tolerance ({tolerances}); values by rule: {judged}")
    return 0


def cmd_compare(args):
    print(compare(args.rev, args.rtol, args.atol, args.metrics_dir))
    return 0


def cmd_check_lock(args):
    lock = gates.committed_lock(args.rev)
    stages = gates.pipeline_stages()
    stale = gates.stale_lock(lock, stages, gates.code_hashes(stages))
    if stale:
        print(f"dvc.lock at {args.rev} is out of date: these stages changed since it was written; "
              "run `dvc repro` and commit dvc.lock with the outputs git keeps (metrics/, speed/, reports/, ...):")
        for stage, reasons in stale.items():
            print(f"  {stage}: {'; '.join(reasons)}")
        return 1
    print(f"dvc.lock at {args.rev} matches the command, code and params of every stage ({len(stages)} stages)")
    return 0


def build_parser():
    ap = argparse.ArgumentParser(prog="rnnlm", description="Recurrent language models in a DVC pipeline. "
                                 "The pipeline itself runs with `dvc repro`; these are the tools around it.")
    ap.add_argument("--version", action="version", version=f"rnnlm {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)

    model_help = "a .pt checkpoint, an .arpa/.arpa.gz n-gram or a mixture .json (e.g. models/names/lstm+ngram.json)"
    sp = sub.add_parser("sample", help="generate text from any model file")
    source = sp.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help=model_help)
    source.add_argument("--checkpoint", help="the same as --model (kept for older commands)")
    sp.add_argument("-n", type=int, default=10, help="how many samples (default 10)")
    sp.add_argument("--prompt", default="", help="text to continue (normalized like the corpus)")
    sp.add_argument("--temperature", type=float, default=1.0, help="> 0; lower is more conservative")
    sp.add_argument("--top-k", type=int, default=None, help="sample only among the k likeliest tokens")
    sp.add_argument("--max-tokens", type=int, default=30, help="stop after this many new tokens")
    sp.add_argument("--greedy", action="store_true", help="always take the likeliest token")
    sp.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    sp.add_argument("--device", default="cpu", choices=DEVICES, help="where a recurrent model runs (default cpu)")
    sp.set_defaults(func=cmd_sample)

    sc = sub.add_parser("score", help="log-probability, perplexity and bits/char of text, one line per item")
    sc.add_argument("--model", required=True, help=model_help)
    sc.add_argument("input", nargs="?", default="-", help="a text file, one item per line (default: stdin)")
    sc.add_argument("--format", choices=("jsonl", "csv"), default="jsonl",
                    help="one JSON object per line, or CSV rows; the summary comes last (default jsonl)")
    sc.add_argument("--device", default="cpu", choices=DEVICES, help="where a recurrent model runs (default cpu)")
    sc.set_defaults(func=cmd_score)

    inf = sub.add_parser("info", help="what a model file is: kind, sizes, vocabulary, training params, metrics")
    inf.add_argument("model", help=model_help)
    inf.set_defaults(func=cmd_info)

    nv = sub.add_parser("novelty", help="novel share and log-likelihood of samples over temperatures and top-k")
    nv.add_argument("--model", required=True, help=model_help)
    nv.add_argument("--train-split", required=True, help="the training items, e.g. data/splits/names/train.txt")
    nv.add_argument("--temperatures", type=float, nargs="+", default=[0.6, 0.8, 1.0, 1.2])
    nv.add_argument("--top-k", type=int, nargs="+", default=[0, 5, 10], help="0: no cut (default 0 5 10)")
    nv.add_argument("-n", type=int, default=500, help="samples per setting (default 500)")
    nv.add_argument("--max-tokens", type=int, default=30)
    nv.add_argument("--seed", type=int, default=0)
    nv.add_argument("--device", default="cpu", choices=DEVICES)
    nv.add_argument("--json", help="also write the rows to this JSON file")
    nv.set_defaults(func=cmd_novelty)

    cm = sub.add_parser(
        "check-metrics", help="compare workspace metrics with committed ones, each with the tolerance that fits it",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Compare every value in metrics/**/*.json with the same file at --rev. The rule for a value "
                    "follows from its key and shape (so new metrics files need no configuration):",
        epilog=CHECK_METRICS_RULES)
    cm.add_argument("--rev", default="HEAD", help="git revision holding the reference metrics (default HEAD)")
    cm.add_argument("--rtol", type=float, default=0.01,
                    help="relative tolerance of means and single-seed values; spreads get rtol*|mean| "
                         "(default 0.01 = 1%%)")
    cm.add_argument("--atol", type=float, default=1e-6, help="absolute slack added to every band (default 1e-6)")
    cm.add_argument("--sample-k", type=float, default=3.0,
                    help="width of the bands of sample statistics, in standard errors (default 3)")
    cm.add_argument("--metrics-dir", default="metrics")
    cm.add_argument("--ignore", action="append", default=[], metavar="KEY",
                    help="also ignore this metric name (timings are always ignored)")
    cm.set_defaults(func=cmd_check_metrics)

    cp = sub.add_parser(
        "compare", help="Markdown: every model's dev and test loss and perplexity at REV beside the workspace's",
        description="Compare the metrics committed at REV with the workspace's: for each corpus and model, dev and "
                    "test loss and perplexity on both sides, the change, and a mark where it goes beyond the "
                    "tolerance of check-metrics; then the best model (lowest dev loss) of each side.")
    cp.add_argument("rev", nargs="?", default="HEAD", help="git revision to compare with (default HEAD), e.g. main")
    cp.add_argument("--rtol", type=float, default=0.01, help="relative tolerance, as check-metrics (default 0.01)")
    cp.add_argument("--atol", type=float, default=1e-6, help="absolute slack, as check-metrics (default 1e-6)")
    cp.add_argument("--metrics-dir", default="metrics")
    cp.set_defaults(func=cmd_compare)

    cl = sub.add_parser(
        "check-lock", help="fail if a stage's command, code or params changed since the committed dvc.lock",
        description="Judge dvc.lock as committed at --rev against dvc.yaml, the code and params.yaml in the "
                    "workspace. Data made by other stages is not judged (dvc status and check-metrics do that), "
                    "so the verdict is the same before and after `dvc repro`.")
    cl.add_argument("--rev", default="HEAD", help="git revision whose dvc.lock is judged (default HEAD)")
    cl.set_defaults(func=cmd_check_lock)
    return ap


@exit_on_user_error
def main(argv=None):
    args = build_parser().parse_args(argv)
    sys.exit(args.func(args))


if __name__ == "__main__":
    main()
