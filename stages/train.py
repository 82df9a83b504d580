"""Stage train: every model kind of one corpus, once per seed in params; checkpoints + loss curves."""

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
from rnnlm.training import train_runs
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
    ap.add_argument("--kinds", required=True, nargs="+", help="rnn_scratch | rnn | gru | lstm")
    ap.add_argument("--vocab", required=True, help="input: vocabulary JSON")
    ap.add_argument("--encoded", required=True, help="input: encoded splits (.npz)")
    ap.add_argument("--models-dir", required=True,
                    help="output: <kind>.pt (the first seed's checkpoint) and <kind>.seeds/seed<N>.pt per kind")
    ap.add_argument("--curves-dir", required=True, help="output: <kind>.csv, the first seed's loss per epoch")
    args = ap.parse_args()
    kinds = [check_model_kind(kind) for kind in args.kinds]
    base = section(load_params(), TrainConfig, "train", args.corpus)
    configs = {kind: base.for_kind(kind, f"train.{args.corpus}") for kind in kinds}
    if base.nproc > 1 and not launched():
        return relaunch(base.nproc, sys.argv)  # this script again, in nproc processes under torchrun
    with process_group() as shard:  # None in a single process
        train(args, base, configs, shard)


def train(args, base, configs, shard):
    main_process = shard is None or shard.is_main  # the one that writes and prints
    vocab = Vocabulary.load(args.vocab)
    splits = load_encoded(args.encoded)
    models_dir, seeds = Path(args.models_dir), base.seeds
    # Each run trains into its own file (also its resume point); the first seed is the headline
    # model whose checkpoint and loss curve the later stages use.
    runs = [(kind, cfg, seed, models_dir / f"{kind}.seeds" / f"seed{seed}.pt")
            for kind, cfg in configs.items() for seed in seeds]
    if main_process:
        # The seed folders persist between runs (for resuming): drop what a killed run or an
        # earlier seed list left there, so the outputs hold exactly this run's checkpoints.
        for kind in configs:
            remove_stale_temporaries(models_dir / f"{kind}.seeds")
            for stale in (models_dir / f"{kind}.seeds").glob("seed*.pt"):
                if stale.name not in {f"seed{s}.pt" for s in seeds}:
                    stale.unlink()
    records = train_runs(runs, vocab, splits, base.workers, log=print if main_process else (lambda *_: None),
                         shard=shard)
    if not main_process:
        return
    for (kind, _, seed, path), record in zip(runs, records):
        if seed == seeds[0]:
            write_text(Path(args.curves_dir) / f"{kind}.csv", curve_csv(record["history"]))
            write_bytes(models_dir / f"{kind}.pt", path.read_bytes())
    print(f"train {args.corpus}: {len(configs)} kind(s) x {len(seeds)} seed(s) done")


if __name__ == "__main__":
    main()
