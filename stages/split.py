"""Stage split: normalized rows -> train/dev/test text files (one item per line) + split report."""

import argparse
import json
from pathlib import Path

from _params import load_params, section
from rnnlm.config import SplitConfig
from rnnlm.errors import exit_on_user_error
from rnnlm.io import read_lines, write_json, write_lines
from rnnlm.lifecycle import exit_with_parent
from rnnlm.split import category_counts, split_rows


@exit_on_user_error
def main():
    exit_with_parent()  # end with `dvc repro`, even when it is killed with SIGKILL
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--rows", required=True, help="input: ingested rows, JSON lines")
    ap.add_argument("--out-dir", required=True, help="output: {train,dev,test}.txt and report.json")
    args = ap.parse_args()
    cfg = section(load_params(), SplitConfig, "split", args.corpus)

    rows = [json.loads(line) for line in read_lines(args.rows, what="ingested rows")]
    splits = split_rows(rows, cfg)
    out = Path(args.out_dir)
    for name, part in splits.items():
        write_lines(out / f"{name}.txt", (row["text"] for row in part))
    report = {"items": {name: len(part) for name, part in splits.items()}}
    if cfg.stratify:
        report["categories"] = category_counts(splits)
    write_json(out / "report.json", report)
    print(f"split {args.corpus}: " + ", ".join(f"{n} {len(p)}" for n, p in splits.items()))


if __name__ == "__main__":
    main()
