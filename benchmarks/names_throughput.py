"""Training throughput on names, side by side with the seed notebook's loop, in one run.

    python benchmarks/names_throughput.py [--reference ../shared/bench/seed_names_rnn.py] [--data FILE]
                                          [--kinds rnn_scratch,rnn,gru,lstm] [--threads 2] [--epochs 4]

For each model kind, runs the reference script (the seed's loop: hand-written cell or nn.RNN/GRU/
LSTM, every position scored and masked) and then the project's own ``train_epoch`` at the seed's
settings: embedding 96, hidden 96, batch 16, Adam lr 1e-3 (with the project's default gradient
clipping and per-batch padding). Both sides train ``--epochs`` epochs (default 4) in their own
single process with the same number of threads; the first is warm-up, and each side's figure is the
median tokens/s of the others, since one epoch's timing on a shared machine can be off by a third.
Tokens are real (non-padding) targets. The last line printed is one JSON object with "ratios"
(project tokens/s / seed tokens/s, per kind), the absolute tokens/s of both sides and each
process's peak memory (max RSS, MiB).

"kernel_bounds" puts the ratios in context: the tokens/s of the recurrent layer's forward and
backward pass alone (the torch RNN, GRU or LSTM kernel that the seed's loop runs too, or the
project's hand-written cell), on the same epoch's batch shapes, divided by the seed's tokens/s. No
training step that runs that layer on those batches can beat the seed by more than this factor.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REFERENCE = ROOT.parent / "shared" / "bench" / "seed_names_rnn.py"
DEFAULT_DATA = ROOT / "data" / "raw" / "names.txt"
KINDS = ("rnn_scratch", "rnn", "gru", "lstm")
SEED_CELL = {"rnn_scratch": "scratch", "rnn": "rnn", "gru": "gru", "lstm": "lstm"}


def peak_rss_mib():
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # KiB on Linux


def measure_project(data, kind, threads, epochs):
    """The project's training epoch at the seed's settings; returns a dict of figures."""
    import torch
    import yaml

    from rnnlm.schema.ingest import IngestConfig
    from rnnlm.schema.split import SplitConfig
    from rnnlm.schema.train import TrainConfig
    from rnnlm.data import encode_split
    from rnnlm.ingest import ingest
    from rnnlm.models import build_model
    from rnnlm.seeding import seed_everything
    from rnnlm.split import split_rows
    from rnnlm.training import make_optimizer, model_config_for, train_epoch
    from rnnlm.vocab import Vocabulary

    torch.set_num_threads(threads)
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))  # the defaults' one source
    rows = ingest(data, IngestConfig.from_params(params["ingest"]["names"], "ingest")).rows
    train_items = [row["text"] for row in split_rows(rows, SplitConfig.from_params(params["split"]["names"], "split"))["train"]]
    vocab = Vocabulary.build(train_items, "char")
    train = encode_split(vocab, train_items)
    cfg = TrainConfig.from_params(params["train"]["names"] | dict(dropout=0.0, optimizer="adam", lr=1e-3, weight_decay=0.0, scheduler="none", max_len=256) | dict(
        embedding_size=96, hidden_size=96, batch_size=16, max_len=64, epochs=10), "train")
    seed_everything(0)
    model = build_model(model_config_for(kind, cfg, vocab))
    optimizer = make_optimizer(cfg, model.parameters())
    rates = []
    for epoch in range(1, epochs + 1):
        loss, seconds, tokens = train_epoch(model, optimizer, train, vocab.pad_id, cfg, 0, epoch, progress=False)
        rates.append(tokens / seconds)
    peak = peak_rss_mib()  # training's own, before the floor measurement below
    return {"tokens_per_s": round(statistics.median(rates[1:])), "train_loss": round(loss, 4),
            "kernel_tokens_per_s": recurrent_layer_tokens_per_s(model, train, vocab, cfg), "peak_rss_mib": peak}


def recurrent_layer_tokens_per_s(model, train, vocab, cfg):
    """Forward and backward of the recurrent layer alone over one epoch's batch shapes (the floor)."""
    import torch

    from rnnlm.batches import epoch_batches
    from rnnlm.data import batch_indices
    from rnnlm.training import epoch_rng

    batches = epoch_batches(train, batch_indices(train.lengths, cfg.batch_size, epoch_rng(0, 2), cfg.bucket),
                            vocab.pad_id, cfg.max_len)
    inputs = [(torch.randn(*x.shape, cfg.embedding_size, requires_grad=True), tokens) for x, _, tokens in batches]
    start = time.perf_counter()
    for x, _ in inputs:
        states, _ = model.rnn(x)
        states.sum().backward()
    return round(sum(tokens for _, tokens in inputs) / (time.perf_counter() - start))


def run(command, threads, what):
    """Run ``command`` with ``threads`` threads; its stdout lines (exits with its stderr on failure)."""
    # The thread count reaches the reference through the environment (it sets none itself).
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        sys.exit(f"error: {what} failed:\n{proc.stderr.strip()[-2000:]}")
    return proc.stdout.strip().splitlines()


def measure_reference(reference, data, kind, threads, epochs):
    # A tiny wrapper runs the reference and then prints its own peak memory (max RSS, MiB).
    wrapper = ("import resource, runpy, sys; sys.argv = sys.argv[1:]; "
               "runpy.run_path(sys.argv[0], run_name='__main__'); "
               "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)")
    lines = run([sys.executable, "-c", wrapper, str(reference), str(data), str(epochs), str(10**9), SEED_CELL[kind]],
                threads, "the reference script")
    result, peak = json.loads(lines[-2]), int(lines[-1])
    timed = [epoch["train_tok_per_s"] for epoch in result["epochs"][1:]]  # after warm-up, like the project's side
    return {"tokens_per_s": round(statistics.median(timed)), "peak_rss_mib": peak}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE, help="the seed's training script")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="names, one per line")
    ap.add_argument("--kinds", default=",".join(KINDS), help="comma-separated model kinds")
    ap.add_argument("--threads", type=int, default=2, help="torch threads of each side")
    ap.add_argument("--epochs", type=int, default=4, help="epochs per side: one warm-up, the median of the rest")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    for path, what in ((args.reference, "reference script"), (args.data, "data file")):
        if not path.is_file():
            sys.exit(f"error: {what} {path} not found" + (" (run `dvc pull`)" if what == "data file" else ""))
    if args.epochs < 2:
        sys.exit("error: --epochs must be at least 2 (the first is warm-up)")
    kinds = args.kinds.split(",")
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        sys.exit(f"error: unknown kind {unknown[0]!r}; choose from {', '.join(KINDS)}")

    if args.worker:  # the project's side, in its own process so its peak memory is its own
        print(json.dumps(measure_project(args.data, args.worker, args.threads, args.epochs)))
        return

    results = {}
    for kind in kinds:
        print(f"{kind}: seed loop ...", flush=True)
        ref = measure_reference(args.reference, args.data, kind, args.threads, args.epochs)
        print(f"  {ref['tokens_per_s']:,} tokens/s, peak {ref['peak_rss_mib']} MiB; project ...", flush=True)
        worker = [sys.executable, __file__, "--worker", kind, "--data", str(args.data), "--reference",
                  str(args.reference), "--threads", str(args.threads), "--epochs", str(args.epochs)]
        ours = json.loads(run(worker, args.threads, "the project's measurement")[-1])
        ratio = round(ours["tokens_per_s"] / ref["tokens_per_s"], 2)
        print(f"  {ours['tokens_per_s']:,} tokens/s, peak {ours['peak_rss_mib']} MiB: {ratio}x", flush=True)
        results[kind] = {"project": ours, "seed": ref, "ratio": ratio}
    print(json.dumps({
        "settings": f"embedding 96, hidden 96, batch 16, Adam 1e-3, {args.threads} threads, "
                    f"median of epochs 2-{args.epochs}",
        "ratios": {kind: r["ratio"] for kind, r in results.items()},
        "kernel_bounds": {kind: round(r["project"]["kernel_tokens_per_s"] / r["seed"]["tokens_per_s"], 2)
                          for kind, r in results.items()},
        "tokens_per_s": {kind: r["project"]["tokens_per_s"] for kind, r in results.items()},
        "seed_tokens_per_s": {kind: r["seed"]["tokens_per_s"] for kind, r in results.items()},
        "peak_rss_mib": {kind: r["project"]["peak_rss_mib"] for kind, r in results.items()},
        "seed_peak_rss_mib": {kind: r["seed"]["peak_rss_mib"] for kind, r in results.items()},
    }))


if __name__ == "__main__":
    main()
