"""Data-parallel training against one process: the train stage on names/gru, one seed, one epoch.

    python benchmarks/data_parallel.py [--epochs 1] [--model gru] [--runs 0 1 2 3]

Needs data/vocab/names.json and data/encoded/names/ (`dvc repro vocab@names`). Runs the real
train stage (stages/train.py) in a temporary folder, with the project's names settings otherwise:
one process with batch 16, with torch's default threads (one per core) and with one thread; two
processes with batch 8 each (the same global batch of 16, so the same weights); two processes with
batch 16 each (global batch 32: fewer, larger steps). Each of the two processes gets one thread
on two cores.
Tokens/s is the stage's own figure (training tokens of the epoch over its training time, rank 0's
clock, dev evaluation excluded); wall_s is the whole stage, process start-up and torchrun included.
The last line printed is one JSON object.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
RUNS = [("1 process, batch 16, default threads", 1, 16, {}),
        ("1 process, batch 16, 1 thread", 1, 16, {"OMP_NUM_THREADS": "1"}),
        ("2 processes, batch 8 each", 2, 8, {}),
        ("2 processes, batch 16 each", 2, 16, {})]


def run(folder, model, epochs, nproc, batch_size, env):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train"]["names"].update(seeds=[0], epochs=epochs, nproc=nproc, batch_size=batch_size, workers=1)
    params["kinds"] = [model]
    (folder / "params.yaml").write_text(yaml.safe_dump(params))
    out = folder / f"{nproc}x{batch_size}-{len(env)}"
    cmd = [sys.executable, str(ROOT / "stages" / "train.py"), "--corpus", "names",
           "--vocab", str(ROOT / "data/vocab/names.json"), "--encoded", str(ROOT / "data/encoded/names"),
           "--models-dir", str(out / "models"), "--live-dir", str(out / "live"), "--curves", str(out / "loss.csv"),
           "--progress", str(out / "training.json"), "--speed", str(out / "speed.json")]
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, check=True,
                            env=os.environ | env)
    wall = time.perf_counter() - start
    rates = [float(r.replace(",", "")) for r in re.findall(r"([\d,]+) tokens/s", result.stdout)]
    return {"tokens_per_s": round(sum(rates) / len(rates)), "wall_s": round(wall, 1),
            "dev_loss": float(re.findall(r"dev loss ([\d.]+)", result.stdout)[-1])}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--model", default="gru")
    ap.add_argument("--runs", type=int, nargs="+", default=range(len(RUNS)), help="which runs (0-based)")
    args = ap.parse_args()
    figures = {}
    with tempfile.TemporaryDirectory() as folder:
        for label, nproc, batch_size, env in (RUNS[i] for i in args.runs):
            figures[label] = run(Path(folder), args.model, args.epochs, nproc, batch_size, env)
            print(label, figures[label], flush=True)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
