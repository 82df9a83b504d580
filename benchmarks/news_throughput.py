"""Training throughput on news, side by side with the seed notebook's loop, in one run.

    python benchmarks/news_throughput.py [--reference ../shared/bench/seed_news_gru.py] [--data FILE]

Runs the reference script (every sequence padded to 256, logits for every position) and then the
project's training step (length-bucketed batches, logits only at real tokens, fused GRU and
AdamW) on the same file, with the reference's model size: embedding 64, 512 GRU units, the same
vocabulary rule (every word of every row, up to 50,000), batch 16, AdamW lr 1e-3. The project
runs twice: with the full softmax ("ratio") and with the adaptive softmax output
(``output: adaptive``, the default cut-offs; "seed_size_adaptive_ratio"). Each side runs in its
own process so peak memory (max RSS) is its own. Tokens are real (non-padding) targets. The last
line printed is one JSON object with tokens_per_s, reference_tokens_per_s, the ratios and peak
memory in MiB.
"""

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REFERENCE = ROOT.parent / "shared" / "bench" / "seed_news_gru.py"
DEFAULT_DATA = ROOT / "data" / "raw" / "News_Category_Dataset_v3.first10k.json"


def peak_rss_mib(who):
    # ru_maxrss is in KiB on Linux
    return resource.getrusage(who).ru_maxrss / 1024


def measure_project(data, batches, warmup, output="full"):
    """The project's training step at the reference's model size; returns a dict of figures."""
    import numpy as np
    import torch
    import yaml

    from rnnlm.schema.ingest import IngestConfig
    from rnnlm.schema.train import TrainConfig
    from rnnlm.batches import make_batch
    from rnnlm.data import batch_indices, encode_split
    from rnnlm.ingest import ingest
    from rnnlm.models import token_losses
    from rnnlm.training import make_optimizer, model_config_for
    from rnnlm.models import build_model
    from rnnlm.vocab import Vocabulary

    torch.manual_seed(0)
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))  # the defaults' one source
    rows = ingest(data, IngestConfig.from_params(params["ingest"]["news"] | {"category_field": None},
                                                 "ingest")).rows
    texts = [row["text"] for row in rows]
    vocab = Vocabulary.build(texts, "word", max_size=50_000 + 4)  # the seed: every word, up to 50,000
    split = encode_split(vocab, texts)
    cfg = TrainConfig.from_params(params["train"]["news"] | dict(dropout=0.0, optimizer="adam", lr=1e-3, weight_decay=0.0, scheduler="none", max_len=256) | dict(
        embedding_size=64, hidden_size=512, optimizer="adamw", weight_decay=0.01, batch_size=16, grad_clip=None,
        bucket=True, epochs=10, output=output, adaptive_cutoffs=[2000, 10000]), "train")
    model = build_model(model_config_for("gru", cfg, vocab))
    optimizer = make_optimizer(cfg, model.parameters())
    order = batch_indices(split.lengths, cfg.batch_size, np.random.default_rng(0), bucket=True)
    model.train()
    tokens, start = 0, None
    for step, indices in enumerate(order[: warmup + batches]):
        if step == warmup:  # like the reference: skip warm-up batches
            tokens, start = 0, time.perf_counter()
        x, y = make_batch(split, indices, vocab.pad_id, cfg.max_len)
        nll, _, _ = token_losses(model, x, y, vocab.pad_id, with_logits=False)
        optimizer.zero_grad(set_to_none=True)
        nll.mean().backward()
        optimizer.step()
        tokens += nll.numel()
    seconds = time.perf_counter() - start
    return {"vocab": len(vocab), "batches": batches, "seconds": round(seconds, 2),
            "tokens_per_s": round(tokens / seconds), "peak_rss_mib": round(peak_rss_mib(resource.RUSAGE_SELF))}


def run_reference(reference, data, batches):
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(reference), str(data), str(batches), "gru"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"error: the reference script failed:\n{proc.stderr.strip()[-2000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall_s"] = round(time.perf_counter() - start, 1)
    result["peak_rss_mib"] = round(peak_rss_mib(resource.RUSAGE_CHILDREN))
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE, help="the seed's training script")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="HuffPost JSON lines")
    ap.add_argument("--reference-batches", type=int, default=40, help="timed batches of the reference (~2 s each)")
    ap.add_argument("--batches", type=int, default=300, help="timed batches of the project")
    ap.add_argument("--worker", choices=("full", "adaptive"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    for path, what in ((args.reference, "reference script"), (args.data, "data file")):
        if not path.is_file():
            sys.exit(f"error: {what} {path} not found" + (" (run `dvc pull`)" if what == "data file" else ""))

    if args.worker:  # the project's side, in its own process so its peak memory is its own
        print(json.dumps(measure_project(args.data, args.batches, warmup=2, output=args.worker)))
        return

    print(f"reference: {args.reference.name}, {args.reference_batches} batches ...", flush=True)
    ref = run_reference(args.reference, args.data, args.reference_batches)
    print(f"  {ref['train_tok_per_s']} tokens/s ({ref['s_per_batch']} s/batch), peak {ref['peak_rss_mib']} MiB",
          flush=True)
    ours = {}
    for output in ("full", "adaptive"):
        print(f"project, {output} softmax: {args.batches} batches ...", flush=True)
        proc = subprocess.run([sys.executable, __file__, "--worker", output, "--data", str(args.data),
                               "--reference", str(args.reference), "--batches", str(args.batches)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"error: the project's measurement failed:\n{proc.stderr.strip()[-2000:]}")
        ours[output] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"  {ours[output]['tokens_per_s']} tokens/s, peak {ours[output]['peak_rss_mib']} MiB", flush=True)
    full, adaptive = ours["full"], ours["adaptive"]
    print(json.dumps({
        "model": "gru, embedding 64, hidden 512, batch 16, AdamW 1e-3",
        "vocab": full["vocab"], "reference_vocab": ref["vocab"],
        "tokens_per_s": full["tokens_per_s"], "reference_tokens_per_s": ref["train_tok_per_s"],
        "ratio": round(full["tokens_per_s"] / ref["train_tok_per_s"], 2),
        "seed_size_adaptive_tokens_per_s": adaptive["tokens_per_s"],
        "seed_size_adaptive_ratio": round(adaptive["tokens_per_s"] / ref["train_tok_per_s"], 2),
        "peak_rss_mib": full["peak_rss_mib"], "seed_size_adaptive_peak_rss_mib": adaptive["peak_rss_mib"],
        "reference_peak_rss_mib": ref["peak_rss_mib"],
        "batches": full["batches"], "reference_batches": ref["batches"],
    }))


if __name__ == "__main__":
    main()
