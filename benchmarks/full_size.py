"""Time and peak memory of the data stages (ingest, split, vocab) at the full HuffPost size.

    python benchmarks/full_size.py [--rows 209527] [--sample FILE] [--seed 0] [--keep DIR] [--code DIR]

The full Kaggle file has 209,527 rows; this project ships the first 10,000. The benchmark makes a
file of the full size from the sample: rows drawn with replacement, and the words of each text
field shuffled, so most rows are new sentences but the vocabulary and the lengths are the real
ones (seeded, so every run makes the same file). It is written to a temporary folder (or --keep
DIR), never to the repository.

Each stage script then runs as its own process, from a temporary copy of the project's layout (the
stages read params.yaml from their working directory), with the project's news params and
corpora.news pointing at the generated file. Seconds are wall-clock; max_rss_mb is that
process's peak resident memory (wait4's ru_maxrss, MiB). The last line printed is one JSON object:
{"rows": N, "stages": {"ingest": {"seconds": s, "max_rss_mb": m}, "split": {...}, "vocab": {...}}}

--code DIR runs another checkout's stages/ and src/ (e.g. the code before a change) on the same file.
"""

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SAMPLE = ROOT / "data" / "raw" / "News_Category_Dataset_v3.first10k.json"
FULL_ROWS = 209_527
TEXT_FIELDS = ("headline", "short_description")


def generate(sample, rows, seed, out):
    """Write ``rows`` lines drawn from ``sample`` with each text field's words shuffled."""
    with open(sample, encoding="utf-8") as f:
        lines = [line for line in f.read().splitlines() if line.strip()]
    rng = random.Random(seed)
    with open(out, "w", encoding="utf-8", newline="\n") as f:
        for _ in range(rows):
            record = json.loads(rng.choice(lines))
            for name in TEXT_FIELDS:
                if isinstance(record.get(name), str):
                    words = record[name].split()
                    rng.shuffle(words)
                    record[name] = " ".join(words)
            f.write(json.dumps(record) + "\n")


def run_measured(cmd, cwd, env):
    """Run ``cmd`` in ``cwd``; return (seconds, peak RSS in MiB) of that one process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env)
    # wait4 gives this child's own rusage; RUSAGE_CHILDREN would be the maximum over all children.
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed with exit code {proc.returncode}")
    return round(seconds, 2), round(usage.ru_maxrss / 1024, 1)  # ru_maxrss is in KiB on Linux


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=FULL_ROWS)
    ap.add_argument("--sample", type=Path, default=DEFAULT_SAMPLE, help="JSONL file to draw rows from")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temporary one)")
    ap.add_argument("--code", type=Path, default=ROOT, help="checkout whose stages/ and src/ run (default: this one)")
    args = ap.parse_args()
    if not args.sample.is_file():
        raise SystemExit(f"{args.sample} not found: run `dvc pull {args.sample}.dvc` first")

    work = args.keep or Path(tempfile.mkdtemp(prefix="rnnlm-full-size-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        raw = work / "news.full.jsonl"
        generate(args.sample, args.rows, args.seed, raw)
        params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
        params["corpora"]["news"] = str(raw)
        (work / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")

        code = args.code.resolve()
        stages = code / "stages"
        # src/ first on the path, so the stages import that checkout's rnnlm, not the installed one.
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(code / "src"),
                                                                          os.environ.get("PYTHONPATH")]))}
        commands = {
            "ingest": ["ingest.py", "--raw", raw, "--rows", "interim/news.jsonl",
                       "--rejects", "interim/news.rejects.jsonl", "--report", "interim/news.report.json"],
            "split": ["split.py", "--rows", "interim/news.jsonl", "--out-dir", "splits/news"],
            "vocab": ["vocab.py", "--splits", "splits/news", "--vocab", "vocab/news.json",
                      "--encoded", "encoded/news.npz"],
        }
        figures = {}
        for stage, (script, *rest) in commands.items():
            seconds, rss = run_measured([sys.executable, stages / script, "--corpus", "news", *rest], work, env)
            figures[stage] = {"seconds": seconds, "max_rss_mb": rss}
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"rows": args.rows, "stages": figures}))


if __name__ == "__main__":
    main()
