"""Peak memory and seconds of every stage of a word-level stream, at two sizes: flat in the stream's size?

    python benchmarks/stream_scale.py [--tokens 100000000] [--small 10000000] [--types 50000] [--steps 200]
                                      [--dev-tokens 1000000] [--keep DIR]

For each size (--small, then --tokens) the benchmark writes a synthetic text of that many words: words of a
Zipf vocabulary of --types types (p(rank k) proportional to 1/k), lines of 5 to 30 words, seeded. It is a
stream corpus at word level (`whitespace` words, every type kept) whose dev and test splits hold about
--dev-tokens tokens each. Each stage then runs as its own process from a temporary folder, never the
repository (the stages read params.yaml there: shakespeare's entries with the settings above):

- ingest, split and vocab: the stage scripts themselves (vocab fits on train and encodes every split, so it
  is also the encoding: the flat uint16/uint32 arrays of docs/streams.md);
- train: the first --steps steps of epoch 1 of word_language_model's default sizes with the adaptive softmax
  (an LSTM of 200 units, cut-offs 2,000 and 10,000, B 20, T 35), as the train stage takes them (the epoch's plan,
  ``rnnlm.streams.StreamChunks`` over the memory-mapped train array, ``training.train_step``), after the
  adaptive softmax's ranking pass over the whole train array;
- evaluate: that model (untrained past those steps) scored on the whole dev split (``evaluate_stream``).

Peak memory is each process's own (wait4's ru_maxrss, MiB: file pages a process maps count too; the text is
written by a process of its own, since a child's ru_maxrss starts from its parent's peak at exec). The target
(issue #35): every stage at most 1 GiB at 100M tokens, and the peak of each at most 1.3 x its peak at 10M.
The last line printed is one JSON object: {"sizes": {N: {stage: {"seconds", "max_rss_mb"}}},
"ratios": {stage: peak at --tokens / peak at --small}, "within_target": bool}.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import yaml

from full_size import ROOT, run_measured

STAGES = ("ingest", "split", "vocab", "train", "evaluate")
LIMIT_MB, RATIO = 1024, 1.3   # issue #35's targets
CHUNK = 1 << 20               # words generated at a time
MODEL = dict(embedding_size=200, hidden_size=200, dropout=0.2, bptt=35, batch_size=20, output="adaptive",
             adaptive_cutoffs=[2000, 10000], tie_weights=False, variable_bptt=False, overrides={}, seeds=[0],
             epochs=1, workers=1, lr=0.001, scheduler="none", device="cpu")


def word_list(types):
    """``types`` distinct lowercase words, short ones first (the frequent ranks get the short words)."""
    letters, words, width = "etaoinshrdlucmfwypvbgkjqxz", [], 1
    while len(words) < types:
        for i in range(26 ** width):
            word, rest = "", i
            for _ in range(width):
                word, rest = letters[rest % 26] + word, rest // 26
            words.append(word)
            if len(words) == types:
                break
        width += 1
    return np.array(words, dtype=object)


def write_text(path, tokens, types, seed):
    """``tokens`` Zipf-distributed words in lines of 5 to 30 words."""
    rng = np.random.default_rng(seed)
    words, p = word_list(types), 1.0 / np.arange(1, types + 1)
    p /= p.sum()
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        left = tokens
        while left > 0:
            ids = rng.choice(types, size=min(CHUNK, left), p=p)
            left -= len(ids)
            ends = np.cumsum(rng.integers(5, 31, size=len(ids) // 5 + 1))
            ends = np.concatenate([ends[ends < len(ids)], [len(ids)]])
            text = words[ids]
            f.write("".join(" ".join(text[a:b]) + "\n" for a, b in zip(np.concatenate([[0], ends[:-1]]), ends)))


def project(work, tokens, dev_tokens):
    """params.yaml for corpus ``stream``: shakespeare's entries at word level, dev and test ~dev_tokens each."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    share = dev_tokens / tokens
    params["corpora"] = {"stream": "raw.txt"}
    for entries in params.values():   # every per-corpus section: kinds, ingest, split, vocab, train, ...
        if isinstance(entries, dict) and "shakespeare" in entries:
            entries["stream"] = entries["shakespeare"]
    params["split"]["stream"] |= {"train": 1 - 2 * share, "dev": share, "test": share}
    params["vocab"]["stream"] |= {"level": "word", "pretokenize": "whitespace", "min_freq": 1, "max_size": None}
    params["train"]["stream"] |= MODEL
    (work / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")


def run_model_stage(stage, steps):
    """The train or evaluate measurement, in this process (``--run``), from the working folder's files."""
    sys.path.insert(0, str(ROOT / "stages"))
    import torch
    from _params import load_params, section

    from rnnlm.data import load_encoded
    from rnnlm.models import build_model
    from rnnlm.schema.train import TrainConfig
    from rnnlm.stream_scoring import evaluate_stream
    from rnnlm.streams import CarriedState, StreamChunks, epoch_plan
    from rnnlm.training import epoch_rng, make_optimizer, model_config_for, train_step
    from rnnlm.vocab import Vocabulary

    torch.manual_seed(0)
    cfg = section(load_params(), TrainConfig, "train", "stream")
    vocab, splits = Vocabulary.load("vocab.json"), load_encoded("encoded")
    model = build_model(model_config_for("lstm", cfg, vocab))
    if stage == "evaluate":
        model.eval()
        with torch.no_grad():
            total_nll, _, tokens, *_ = evaluate_stream(model, splits["dev"], accuracy=False)
        print(json.dumps({"dev_tokens": tokens, "dev_loss": round(total_nll / tokens, 4)}))
        return
    train = splits["train"]
    model.set_target_counts(train.target_counts(len(vocab)))   # a whole pass, a block at a time
    plan = epoch_plan(train.num_targets, cfg.batch_size, cfg.bptt, epoch_rng(0, 1))
    chunks, score = StreamChunks(train.tokens, plan, cfg.batch_size), CarriedState()
    optimizer, parameters = make_optimizer(cfg, model.parameters()), list(model.parameters())
    model.train()
    for step in range(min(steps, len(chunks))):
        x, y, _ = chunks[step]
        loss = train_step(model, optimizer, parameters, x, y, vocab.pad_id, cfg.grad_clip, cfg.precision, score)
    print(json.dumps({"steps": min(steps, len(chunks)), "loss": round(loss.item(), 4)}))


def measure(work, tokens, args):
    work.mkdir(parents=True, exist_ok=True)
    # Written by a process of its own: at exec, Linux counts the parent's peak into the child's ru_maxrss,
    # so this process stays as small at 100M tokens as at 10M.
    subprocess.run([sys.executable, Path(__file__).resolve(), "--write", work / "raw.txt", "--tokens", str(tokens),
                    "--types", str(args.types), "--seed", str(args.seed)], check=True)
    project(work, tokens, args.dev_tokens)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")])),
           "OMP_NUM_THREADS": "1"}
    stages = ROOT / "stages"
    commands = {
        "ingest": [stages / "ingest.py", "--raw", "raw.txt", "--rows", "rows.jsonl", "--rejects", "rejects.jsonl",
                   "--report", "ingest.json"],
        "split": [stages / "split.py", "--rows", "rows.jsonl", "--out-dir", "splits"],
        "vocab": [stages / "vocab.py", "--splits", "splits", "--vocab", "vocab.json", "--encoded", "encoded"],
    }
    figures = {}
    for stage in STAGES:
        command = ([*commands[stage], "--corpus", "stream"] if stage in commands
                   else [Path(__file__).resolve(), "--run", stage, "--steps", str(args.steps)])
        seconds, rss = run_measured([sys.executable, *command], work, env)
        figures[stage] = {"seconds": seconds, "max_rss_mb": rss}
        print(f"{tokens:,} tokens: {stage} {seconds} s, peak {rss} MiB", file=sys.stderr)
    return figures


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokens", type=int, default=100_000_000)
    ap.add_argument("--small", type=int, default=10_000_000, help="the size the peaks are compared with")
    ap.add_argument("--types", type=int, default=50_000)
    ap.add_argument("--dev-tokens", type=int, default=1_000_000)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temporary one)")
    ap.add_argument("--run", choices=("train", "evaluate"), help=argparse.SUPPRESS)   # one measured process
    ap.add_argument("--write", type=Path, help=argparse.SUPPRESS)                      # the text, in a process
    args = ap.parse_args()
    if args.run:
        return run_model_stage(args.run, args.steps)
    if args.write:
        return write_text(args.write, args.tokens, args.types, args.seed)
    work = args.keep or Path(tempfile.mkdtemp(prefix="rnnlm-stream-scale-"))
    try:
        sizes = {}
        for tokens in (args.small, args.tokens):
            sizes[tokens] = measure(work / str(tokens), tokens, args)
            if args.keep is None:   # the small size's files go before the large one is written
                shutil.rmtree(work / str(tokens), ignore_errors=True)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    small, large = sizes[args.small], sizes[args.tokens]
    ratios = {stage: round(large[stage]["max_rss_mb"] / small[stage]["max_rss_mb"], 3) for stage in STAGES}
    within = all(large[stage]["max_rss_mb"] <= LIMIT_MB and ratios[stage] <= RATIO for stage in STAGES)
    print(json.dumps({"sizes": sizes, "ratios": ratios, "within_target": within}))


if __name__ == "__main__":
    main()
