"""Stream training throughput: the project's char-level LSTM on one long text against the plainest loop, in one run.

    python benchmarks/stream_throughput.py [--reference ../shared/bench/plain_stream_lstm.py]
                                           [--data data/raw/tinyshakespeare.txt] [--chars N]
                                           [--steps 30] [--threads T]

Both sides train a 1-layer LSTM at the same sizes (hidden 512, batch 32, bptt 128, embedding 64, AdamW at
2e-3, gradient norm clipped at 1.0, dropout 0, a constant learning rate) on the first 90% of the text, B
parallel streams in chunks of T characters with the state carried and detached:

- the project: its real training path, ``rnnlm.training.train_epoch`` on a stream split (``rnnlm.streams``:
  dense chunks, ``CarriedState``, the fused AdamW of ``make_optimizer``), the stream and its vocabulary
  made by the project's own functions; 5 warm-up steps, then one timed pass of about ``--steps`` chunks;
- the plain loop: the reference script, run as a subprocess with ``--steps`` (it times after its own 5
  warm-up steps and then scores its val stream, which the figure leaves out).

Both run with the same number of threads (``--threads``, default torch's: OMP_NUM_THREADS and MKL_NUM_THREADS
for the subprocess). The same run measures the machine's fp32 matrix-multiply peak (the best of a few
``torch.mm`` of two 2048 x 2048 matrices) and gives each side's share of it, counting per training token

    FLOPs/token = 3 x (8 H (E + H) + 2 H V)

multiply-adds times 2 of the LSTM's four gates (input E and state H) and of the output layer (H x V), and x3
for the forward pass plus a backward pass that costs twice as much; the embedding lookup, the
nonlinearities and the optimizer are left out (a few percent here). The last line printed is one JSON
object: each side's tokens/s and share of peak, their ratio (project / plain; the goal is at least 1), the
peak, FLOPs/token and the settings. Each side also gives its process's peak memory (VmHWM, MiB: the
project's is this process's, which also holds the text and the matrix-multiply measurement; the plain loop's
its subprocess's own).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REFERENCE = ROOT.parent / "shared" / "bench" / "plain_stream_lstm.py"
DEFAULT_DATA = ROOT / "data" / "raw" / "tinyshakespeare.txt"
SIZES = {"hidden": 512, "batch": 32, "bptt": 128, "embedding": 64}
LR, CLIP, WARM_UP = 2e-3, 1.0, 5


def flops_per_token(hidden, embedding, vocab_size):
    """Training FLOPs per token of a 1-layer LSTM and its output layer (module docstring)."""
    return 3 * (8 * hidden * (embedding + hidden) + 2 * hidden * vocab_size)


def peak_rss_mib():
    """The peak resident memory of this process, in MiB: its address space's high-water mark (VmHWM). Not
    ru_maxrss: Linux carries that across exec, so a subprocess started from this torch-laden process would
    report this process's peak as its own."""
    with open("/proc/self/status", encoding="ascii") as status:
        return next(round(int(line.split()[1]) / 1024) for line in status if line.startswith("VmHWM:"))


def matmul_peak(n=2048, repeats=5):
    """The best fp32 FLOP/s of ``torch.mm`` on two n x n matrices."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best


def measure_project(text, steps):
    """The project's ``train_epoch`` on the stream; returns tokens/s, steps, the loss and the vocabulary size."""
    import torch
    import yaml

    from rnnlm.data import encode_stream
    from rnnlm.models import build_model
    from rnnlm.schema.train import TrainConfig
    from rnnlm.seeding import seed_everything
    from rnnlm.text import Normalization
    from rnnlm.textstream import text_blocks
    from rnnlm.training import make_optimizer, model_config_for, train_epoch
    from rnnlm.vocab import Vocabulary

    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))  # the defaults' one source
    cfg = TrainConfig.from_params(params["train"]["shakespeare"] | dict(
        embedding_size=SIZES["embedding"], hidden_size=SIZES["hidden"], layers=1, batch_size=SIZES["batch"],
        bptt=SIZES["bptt"], variable_bptt=False, dropout=0.0, optimizer="adamw", lr=LR, weight_decay=0.01,
        grad_clip=CLIP, scheduler="none", output="full", tie_weights=False), "train.shakespeare")
    train_text = text[:int(0.9 * len(text))]  # the plain loop's train split
    vocab = Vocabulary.build(text_blocks(train_text, "char"), "char", normalization=Normalization("text", "", False, False),
                             stream=True)
    B, T = cfg.batch_size, cfg.bptt

    def stream_of(chunks):  # the first chunks x B x T characters: an epoch of about that many chunks
        return encode_stream(vocab, train_text[:B * T * chunks + B * T + 1])

    seed_everything(0)
    model = build_model(model_config_for("lstm", cfg, vocab))
    optimizer = make_optimizer(cfg, model.parameters())
    train_epoch(model, optimizer, stream_of(WARM_UP), vocab.pad_id, cfg, 0, 1, progress=False)
    loss, seconds, tokens = train_epoch(model, optimizer, stream_of(steps), vocab.pad_id, cfg, 0, 2, progress=False)
    return {"tokens_per_s": round(tokens / seconds, 1), "tokens": tokens, "seconds": round(seconds, 2),
            "train_loss": round(loss, 4), "peak_rss_mib": peak_rss_mib()}, len(set(train_text))


def measure_plain(reference, text, steps, threads):
    """The reference loop as a subprocess on the same text; its JSON line with its peak memory."""
    env = os.environ | {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    with tempfile.TemporaryDirectory(prefix="stream-bench-") as folder:
        path = Path(folder) / "text.txt"
        path.write_text(text, encoding="utf-8")
        # a wrapper runs the loop, then prints its own peak memory on a line of its own
        wrapper = (f"import runpy, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
                   "from stream_throughput import peak_rss_mib; sys.argv = sys.argv[1:]; "
                   "runpy.run_path(sys.argv[0], run_name='__main__'); print(peak_rss_mib())")
        done = subprocess.run([sys.executable, "-c", wrapper, str(reference), str(path), "--steps", str(steps + WARM_UP),
                               "--hidden", str(SIZES["hidden"]), "--batch", str(SIZES["batch"]),
                               "--bptt", str(SIZES["bptt"]), "--embedding", str(SIZES["embedding"]), "--lr", str(LR)],
                              capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        sys.exit(f"{reference} failed:\n{done.stderr}")
    *_, result, peak = done.stdout.strip().splitlines()
    return json.loads(result) | {"peak_rss_mib": int(peak)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reference", default=str(DEFAULT_REFERENCE), help="the plain loop (plain_stream_lstm.py)")
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="the text (default: tiny shakespeare)")
    ap.add_argument("--chars", type=int, default=None,
                    help="read only the text's first N characters (shortens the plain loop's val pass)")
    ap.add_argument("--steps", type=int, default=30, help="timed training steps of each side (default 30)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads of both sides (default: torch's)")
    args = ap.parse_args()
    import torch

    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    with open(args.data, encoding="utf-8", newline="") as f:
        text = f.read()[:args.chars]
    peak = matmul_peak()
    project, vocab_size = measure_project(text, args.steps)
    plain = measure_plain(args.reference, text, args.steps, threads)
    per_token = flops_per_token(SIZES["hidden"], SIZES["embedding"], vocab_size)
    for side in (project, plain):
        side["share_of_peak"] = round(side["tokens_per_s"] * per_token / peak, 4) if side["tokens_per_s"] else None
    print(json.dumps({"project": project, "plain": plain,
                      "ratio": round(project["tokens_per_s"] / plain["tokens_per_s"], 3) if plain["tokens_per_s"] else None,
                      "peak_gflops": round(peak / 1e9, 1), "flops_per_token": per_token, "vocab_size": vocab_size,
                      "threads": threads, "steps": args.steps, "chars": len(text), **SIZES}))


if __name__ == "__main__":
    main()
