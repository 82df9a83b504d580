"""Stage split: normalized rows -> train/dev/test text files (one item per line) + split report.

A stream corpus (ingest format: text) is cut in three contiguous pieces by its vocabulary level's units, or
split as its predefined files say (then split.<corpus> may be empty: the fractions, seed and stratify do not
apply); each file then holds its exact piece of the text (rnnlm.textstream). At word level the units are the
words of vocab.<corpus>.pretokenize (rnnlm.textstream.resolve_pretokenize)."""

import argparse
import contextlib
from pathlib import Path

from _params import load_params, section
from rnnlm.errors import exit_on_user_error
from rnnlm.io import atomic_write, read_jsonl_at, scan_jsonl, write_json, write_lines
from rnnlm.lifecycle import exit_with_parent
from rnnlm.schema.ingest import IngestConfig
from rnnlm.schema.split import SplitConfig
from rnnlm.schema.vocab import VocabConfig
from rnnlm.split import category_counts, split_indices
from rnnlm.textstream import SPLITS, StreamCut, read_rows


@exit_on_user_error
def main():
    exit_with_parent()  # end with `dvc repro`, even when it is killed with SIGKILL
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--rows", required=True, help="input: ingested rows, JSON lines")
    ap.add_argument("--out-dir", required=True, help="output: {train,dev,test}.txt and report.json")
    args = ap.parse_args()
    params = load_params()
    cfg = section(params, SplitConfig, "split", args.corpus)
    out = Path(args.out_dir)
    if section(params, IngestConfig, "ingest", args.corpus).format == "text":  # one long text
        vocab = section(params, VocabConfig, "vocab", args.corpus)  # its level's units are what it is cut by
        level = vocab.level
        # two passes over the rows, a block of text in memory (rnnlm.textstream.StreamCut)
        cut = StreamCut(lambda: read_rows(args.rows), level, cfg, vocab.pretokenize)
        with contextlib.ExitStack() as files:
            outputs = {name: files.enter_context(atomic_write(out / f"{name}.txt")) for name in SPLITS}
            for name, piece in cut.pieces():
                outputs[name].write(piece)
        report = cut.report()
        write_json(out / "report.json", report)
        units = ", ".join(f"{name} {count:,} {level} units" for name, count in report["units"].items())
        print(f"split {args.corpus}: one stream, {units}{' (predefined)' if report['predefined'] else ''}")
        return

    # Only line positions and categories stay in memory; each split's texts are read back from
    # the rows file in split order as they are written.
    cfg.require_fractions(f"split.{args.corpus}")  # items are always split by the fractions
    offsets, labels = scan_jsonl(args.rows, "category", what="ingested rows")
    parts = split_indices(len(offsets), labels, cfg)
    for name, lines in parts.items():
        write_lines(out / f"{name}.txt", (row["text"] for row in read_jsonl_at(args.rows, offsets, lines)))
    report = {"items": {name: len(lines) for name, lines in parts.items()}}
    if cfg.stratify:
        report["categories"] = category_counts(labels, parts)
    write_json(out / "report.json", report)
    print(f"split {args.corpus}: " + ", ".join(f"{n} {len(p)}" for n, p in parts.items()))


if __name__ == "__main__":
    main()
