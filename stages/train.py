"""Stage train: every model kind of one corpus, once per seed in params; checkpoints, dvclive curves, speed."""

import argparse
import shutil
import sys
from pathlib import Path

from _params import load_params, section
from rnnlm.curves import ProgressFile, run_dir, write_corpus_curves
from rnnlm.data import load_encoded
from rnnlm.distributed import launched, process_group, relaunch
from rnnlm.errors import exit_on_user_error
from rnnlm.io import write_bytes, write_json
from rnnlm.lifecycle import exit_with_parent
from rnnlm.results import rounded
from rnnlm.schema.pipeline import Pipeline
from rnnlm.schema.train import TrainConfig
from rnnlm.speed import train_speed
from rnnlm.training import Run, train_runs
from rnnlm.vocab import Vocabulary


@exit_on_user_error
def main():
    exit_with_parent()  # end with `dvc repro`, even when it is killed with SIGKILL
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--vocab", required=True, help="input: vocabulary JSON")
    ap.add_argument("--encoded", required=True, help="input: the vocab stage's encoded splits (its folder, or an .npz file)")
    ap.add_argument("--models-dir", required=True,
                    help="output: <kind>.pt (the first seed's checkpoint) and <kind>.seeds/seed<N>.pt per kind")
    ap.add_argument("--live-dir", required=True, help="output: <kind>/seed<N>/, each run's dvclive log")
    ap.add_argument("--curves", required=True, help="output: the first seeds' curves in one table (DVC's chart)")
    ap.add_argument("--progress", required=True, help="output: each run's latest epoch, rewritten while training")
    ap.add_argument("--speed", required=True, help="output: each run's training seconds and tokens/s (JSON)")
    ap.add_argument("--resume-dir", help="not an output: each unfinished run's per-epoch state, for "
                                         "train.<corpus>.resume (default .resume/<corpus>)")
    args = ap.parse_args()
    params = load_params()
    base = section(params, TrainConfig, "train", args.corpus)
    kinds = Pipeline.of(params).kinds_of(args.corpus)
    configs = {kind: base.for_kind(kind, f"train.{args.corpus}") for kind in kinds}
    if not launched():  # once, before a relaunch under torchrun
        print_overrides(args.corpus, base, kinds)
    if base.nproc > 1 and not launched():
        return relaunch(base.nproc, sys.argv)  # this script again, in nproc processes under torchrun
    with process_group() as shard:  # None in a single process
        train(args, base, configs, shard)


def print_overrides(corpus, base, kinds):
    """Each kind's settings that differ from train.<corpus> (its overrides), and a warning for every key of
    the section an override shadows: a `-S train.<corpus>.<key>=...` does not reach that kind, and the stage
    cannot see the command line, so it names every shadowed key."""
    where = f"train.{corpus}"
    for kind in kinds:
        line = base.describe_overrides(kind)
        if line:
            print(f"train {corpus}: {line}", flush=True)
        warning = base.shadow_warning(kind, where)
        if warning:
            print(f"train {corpus}: warning: {warning}", file=sys.stderr, flush=True)


def remove_stale_resume_state(resume_dir, runs):
    """The resume folder outlives the stage (it is not an output): drop what a killed run of an earlier
    kind or seed list left there, so it holds only this run's unfinished state."""
    keep = {run.resume for run in runs}
    for stale in Path(resume_dir).glob("*/*"):  # pathlib's glob matches dotfiles: a killed write's temporaries too
        if stale not in keep:
            stale.unlink()


def train(args, base, configs, shard):
    main_process = shard is None or shard.is_main  # the one that writes and prints
    vocab = Vocabulary.load(args.vocab)
    splits = load_encoded(args.encoded)
    models_dir, live_dir, resume_dir, seeds = Path(args.models_dir), Path(args.live_dir), Path(args.resume_dir or f".resume/{args.corpus}"), base.seeds
    # Each run trains into its own file, keeps its per-epoch resume state outside the outputs and logs
    # into its own dvclive directory; the first seed is the headline model whose checkpoint and curve
    # later stages use.
    runs = [Run(kind, cfg, seed, models_dir / f"{kind}.seeds" / f"seed{seed}.pt", run_dir(live_dir, kind, seed),
                resume_dir / kind / f"seed{seed}.pt")
            for kind, cfg in configs.items() for seed in seeds]
    if not main_process:
        train_runs(runs, vocab, splits, base.workers, log=lambda *_: None, shard=shard)
        return
    remove_stale_resume_state(resume_dir, runs)
    shutil.rmtree(live_dir, ignore_errors=True)  # logs start afresh: a resumed run logs its past epochs again
    with ProgressFile(args.progress, {(run.kind, run.seed): run.live_dir for run in runs}):
        records = train_runs(runs, vocab, splits, base.workers, shard=shard)
    write_json(args.speed, rounded(train_speed([(run.kind, run.seed) for run in runs], records)))
    write_corpus_curves(args.curves, {kind: run_dir(live_dir, kind, seeds[0]) for kind in configs})
    for kind in configs:
        write_bytes(models_dir / f"{kind}.pt", (models_dir / f"{kind}.seeds" / f"seed{seeds[0]}.pt").read_bytes())
    print(f"train {args.corpus}: {len(configs)} kind(s) x {len(seeds)} seed(s) done")


if __name__ == "__main__":
    main()
