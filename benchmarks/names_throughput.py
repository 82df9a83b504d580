"""Training throughput on names, side by side with the seed notebook's loop, in one run.

    python benchmarks/names_throughput.py [--reference ../shared/bench/seed_names_rnn.py] [--data FILE]
                                          [--kinds rnn_scratch,rnn,gru,lstm] [--threads 2]

For each model kind, runs the reference script (the seed's loop: hand-written cell or nn.RNN/GRU/
LSTM, every position scored and masked) and then the project's own ``train_epoch`` at the seed's
settings: embedding 96, hidden 96, batch 16, Adam lr 1e-3 (with the project's default gradient
clipping and per-batch padding). Both sides train two epochs in their own single process with
the same number of threads, and only the second epoch is timed, so start-up and warm-up are left
out. Tokens are real (non-padding) targets. The last line printed is one JSON object with
"ratios" (project tokens/s / seed tokens/s, per kind), the absolute tokens/s of both sides and
each process's peak memory (max RSS, MiB).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REFERENCE = ROOT.parent / "shared" / "bench" / "seed_names_rnn.py"
DEFAULT_DATA = ROOT / "data" / "raw" / "names.txt"
KINDS = ("rnn_scratch", "rnn", "gru", "lstm")
SEED_CELL = {"rnn_scratch": "scratch", "rnn": "rnn", "gru": "gru", "lstm": "lstm"}


def peak_rss_mib():
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # KiB on Linux


def measure_project(data, kind, threads):
    """The project's training epoch at the seed's settings; returns a dict of figures."""
    import torch

    from rnnlm.config import IngestConfig, SplitConfig, TrainConfig
    from rnnlm.data import encode_split
    from rnnlm.ingest import ingest
    from rnnlm.models import build_model
    from rnnlm.seeding import seed_everything
    from rnnlm.split import split_rows
    from rnnlm.training import make_optimizer, model_config_for, train_epoch
    from rnnlm.vocab import Vocabulary

    torch.set_num_threads(threads)
    rows = ingest(data, IngestConfig(path=str(data))).rows
    train_items = [row["text"] for row in split_rows(rows, SplitConfig())["train"]]
    vocab = Vocabulary.build(train_items, "char")
    train = encode_split(vocab, train_items)
    cfg = TrainConfig(embedding_size=96, hidden_size=96, batch_size=16, optimizer="adam", lr=1e-3, max_len=64)
    seed_everything(0)
    model = build_model(model_config_for(kind, cfg, vocab))
    optimizer = make_optimizer(cfg, model.parameters())
    train_epoch(model, optimizer, train, vocab.pad_id, cfg, 0, 1, progress=False)  # warm-up epoch
    loss, seconds, tokens = train_epoch(model, optimizer, train, vocab.pad_id, cfg, 0, 2, progress=False)
    return {"tokens_per_s": round(tokens / seconds), "seconds": round(seconds, 2), "train_loss": round(loss, 4),
            "peak_rss_mib": peak_rss_mib()}


def run(command, threads, what):
    # The thread count reaches the reference through the environment (it sets none itself).
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        sys.exit(f"error: {what} failed:\n{proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure_reference(reference, data, kind, threads):
    # A tiny wrapper runs the reference and then prints its own peak memory (max RSS, MiB).
    wrapper = ("import resource, runpy, sys; sys.argv = sys.argv[1:]; "
               "runpy.run_path(sys.argv[0], run_name='__main__'); "
               "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)")
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    proc = subprocess.run([sys.executable, "-c", wrapper, str(reference), str(data), "2", str(10**9),
                           SEED_CELL[kind]], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        sys.exit(f"error: the reference script failed:\n{proc.stderr.strip()[-2000:]}")
    lines = proc.stdout.strip().splitlines()
    result, peak = json.loads(lines[-2]), int(lines[-1])
    timed = result["epochs"][-1]  # the second epoch: after warm-up, like the project's side
    return {"tokens_per_s": timed["train_tok_per_s"], "seconds": timed["train_s"], "peak_rss_mib": peak}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE, help="the seed's training script")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="names, one per line")
    ap.add_argument("--kinds", default=",".join(KINDS), help="comma-separated model kinds")
    ap.add_argument("--threads", type=int, default=2, help="torch threads of each side")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    for path, what in ((args.reference, "reference script"), (args.data, "data file")):
        if not path.is_file():
            sys.exit(f"error: {what} {path} not found" + (" (run `dvc pull`)" if what == "data file" else ""))
    kinds = args.kinds.split(",")
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        sys.exit(f"error: unknown kind {unknown[0]!r}; choose from {', '.join(KINDS)}")

    if args.worker:  # the project's side, in its own process so its peak memory is its own
        print(json.dumps(measure_project(args.data, args.worker, args.threads)))
        return

    results = {}
    for kind in kinds:
        print(f"{kind}: seed loop ...", flush=True)
        ref = measure_reference(args.reference, args.data, kind, args.threads)
        print(f"  {ref['tokens_per_s']:,} tokens/s, peak {ref['peak_rss_mib']} MiB; project ...", flush=True)
        ours = run([sys.executable, __file__, "--worker", kind, "--data", str(args.data),
                    "--reference", str(args.reference), "--threads", str(args.threads)], args.threads,
                   "the project's measurement")
        ratio = round(ours["tokens_per_s"] / ref["tokens_per_s"], 2)
        print(f"  {ours['tokens_per_s']:,} tokens/s, peak {ours['peak_rss_mib']} MiB: {ratio}x", flush=True)
        results[kind] = {"project": ours, "seed": ref, "ratio": ratio}
    print(json.dumps({
        "settings": f"embedding 96, hidden 96, batch 16, Adam 1e-3, {args.threads} threads, second epoch timed",
        "ratios": {kind: r["ratio"] for kind, r in results.items()},
        "tokens_per_s": {kind: r["project"]["tokens_per_s"] for kind, r in results.items()},
        "seed_tokens_per_s": {kind: r["seed"]["tokens_per_s"] for kind, r in results.items()},
        "peak_rss_mib": {kind: r["project"]["peak_rss_mib"] for kind, r in results.items()},
        "seed_peak_rss_mib": {kind: r["seed"]["peak_rss_mib"] for kind, r in results.items()},
    }))


if __name__ == "__main__":
    main()
