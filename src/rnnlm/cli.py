"""The ``rnnlm`` command: sample from a checkpoint, and the CI gates.

    rnnlm sample --checkpoint models/names/gru.pt -n 10 --prompt s --temperature 0.8 --top-k 5
    rnnlm check-metrics [--rev HEAD] [--rtol 0.01] [--atol 1e-6] [--sample-k 3]
    rnnlm check-lock
"""

import argparse
import sys

import torch

from . import __version__, gates
from .checkpoint import load_checkpoint
from .errors import UserError, exit_on_user_error
from .sampling import generate


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


def cmd_sample(args):
    if args.n < 1:
        raise UserError("-n must be at least 1")
    if args.temperature <= 0:
        raise UserError("--temperature must be > 0")
    if args.top_k is not None and args.top_k < 1:
        raise UserError("--top-k must be at least 1")
    model, vocab, _ = load_checkpoint(args.checkpoint)
    generator = torch.Generator().manual_seed(args.seed)
    texts = generate(model, vocab, args.n, args.prompt, temperature=args.temperature, top_k=args.top_k,
                     max_tokens=args.max_tokens, greedy=args.greedy, generator=generator)
    print("\n".join(texts))
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


def cmd_check_lock(args):
    stale = gates.stale_stages(gates.dvc_status())
    if stale:
        print("dvc.lock is out of date: these stages changed since it was written; "
              "run `dvc repro` and commit dvc.lock and metrics/:")
        for stage, reasons in stale.items():
            print(f"  {stage}: {'; '.join(reasons)}")
        return 1
    print("dvc.lock matches the code and params of every stage")
    return 0


def build_parser():
    ap = argparse.ArgumentParser(prog="rnnlm", description="Recurrent language models in a DVC pipeline. "
                                 "The pipeline itself runs with `dvc repro`; these are the tools around it.")
    ap.add_argument("--version", action="version", version=f"rnnlm {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)

    sp = sub.add_parser("sample", help="generate text from a trained checkpoint")
    sp.add_argument("--checkpoint", required=True, help="e.g. models/names/gru.pt")
    sp.add_argument("-n", type=int, default=10, help="how many samples (default 10)")
    sp.add_argument("--prompt", default="", help="text to continue (normalized like the corpus)")
    sp.add_argument("--temperature", type=float, default=1.0, help="> 0; lower is more conservative")
    sp.add_argument("--top-k", type=int, default=None, help="sample only among the k likeliest tokens")
    sp.add_argument("--max-tokens", type=int, default=30, help="stop after this many new tokens")
    sp.add_argument("--greedy", action="store_true", help="always take the likeliest token")
    sp.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    sp.set_defaults(func=cmd_sample)

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

    cl = sub.add_parser("check-lock", help="fail if a stage's code or params changed but dvc.lock was not updated")
    cl.set_defaults(func=cmd_check_lock)
    return ap


@exit_on_user_error
def main(argv=None):
    args = build_parser().parse_args(argv)
    sys.exit(args.func(args))


if __name__ == "__main__":
    main()
