"""Stage train: one model kind on one corpus, once per seed in params; checkpoints + loss curve."""

import argparse
import csv
import io
import sys
from pathlib import Path

from _params import load_params, section
from rnnlm.config import TrainConfig, check_model_kind
from rnnlm.data import load_encoded
from rnnlm.distributed import launched, process_group, relaunch
from rnnlm.errors import exit_on_user_error
from rnnlm.io import remove_stale_temporaries, write_bytes, write_text
from rnnlm.lifecycle import exit_with_parent
from rnnlm.training import train_seeds
from rnnlm.vocab import Vocabulary


def curve_csv(history):
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["epoch", "train_loss", "dev_loss"], lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({"epoch": row["epoch"], "train_loss": f"{row['train_loss']:.6f}",
                         "dev_loss": f"{row['dev_loss']:.6f}"})
    return buf.getvalue()


@exit_on_user_error
def main():
    exit_with_parent()  # end with `dvc repro`, even when it is killed with SIGKILL
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--model", required=True, help="rnn_scratch | rnn | gru | lstm")
    ap.add_argument("--vocab", required=True, help="input: vocabulary JSON")
    ap.add_argument("--encoded", required=True, help="input: encoded splits (.npz)")
    ap.add_argument("--checkpoint", required=True, help="output: the first seed's checkpoint")
    ap.add_argument("--seeds-dir", required=True, help="output: folder with every seed's checkpoint")
    ap.add_argument("--curve", required=True, help="output: the first seed's loss per epoch (CSV)")
    args = ap.parse_args()
    kind = check_model_kind(args.model)
    cfg = section(load_params(), TrainConfig, "train", args.corpus).for_kind(kind, f"train.{args.corpus}")
    if cfg.nproc > 1 and not launched():
        return relaunch(cfg.nproc, sys.argv)  # this script again, in nproc processes under torchrun
    with process_group() as shard:  # None in a single process
        train(args, kind, cfg, shard)


def train(args, kind, cfg, shard):
    main_process = shard is None or shard.is_main  # the one that writes and prints
    vocab = Vocabulary.load(args.vocab)
    splits = load_encoded(args.encoded)
    seeds_dir = Path(args.seeds_dir)
    # The folder persists between runs (for resuming): drop what a killed run or an earlier
    # seed list left there, so the output holds exactly this run's checkpoints.
    if main_process:
        remove_stale_temporaries(seeds_dir)
        for stale in seeds_dir.glob("seed*.pt"):
            if stale.name not in {f"seed{s}.pt" for s in cfg.seeds}:
                stale.unlink()
    # Each seed trains into its own file (also its resume point); the first seed is the headline
    # model whose checkpoint and loss curve the later stages use.
    paths = {seed: seeds_dir / f"seed{seed}.pt" for seed in cfg.seeds}
    records = train_seeds(kind, cfg, vocab, splits, paths, log=print if main_process else (lambda *_: None),
                          shard=shard)
    if not main_process:
        return
    first = cfg.seeds[0]
    write_text(args.curve, curve_csv(records[first]["history"]))
    write_bytes(args.checkpoint, paths[first].read_bytes())
    print(f"train {args.corpus}/{kind}: {len(cfg.seeds)} seed(s) done")


if __name__ == "__main__":
    main()
