"""Stage tokenization: one model per tokenization level, same settings, compared in bits/char -> metrics JSON."""

import argparse
from pathlib import Path

from _params import load_params, section
from rnnlm.errors import exit_on_user_error
from rnnlm.io import read_lines, write_json
from rnnlm.lifecycle import exit_with_parent
from rnnlm.schema.evaluate import EvaluateConfig
from rnnlm.schema.tokenization import TokenizationConfig
from rnnlm.schema.train import TrainConfig
from rnnlm.schema.vocab import VocabConfig
from rnnlm.speed import split_timings


@exit_on_user_error
def main():
    exit_with_parent()  # end with `dvc repro`, even when it is killed with SIGKILL
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--splits", required=True, help="input: folder with {train,dev,test}.txt")
    ap.add_argument("--metrics", required=True, help="output: one result per level (JSON)")
    ap.add_argument("--speed", required=True, help="output: seconds per level (JSON)")
    args = ap.parse_args()
    params = load_params()
    cfg = section(params, TokenizationConfig, "tokenization", args.corpus)
    base_vocab = section(params, VocabConfig, "vocab", args.corpus)
    if not cfg.levels:  # the default: nothing to train, and no need to start torch
        write_json(args.metrics, {"kind": cfg.kind, "epochs": cfg.epochs, "seed": cfg.seed, "levels": {}})
        write_json(args.speed, {"levels": {}})
        print(f"tokenization {args.corpus}: no levels in params (tokenization.{args.corpus}.levels), nothing trained")
        return
    # torch starts here, only when a level is trained
    from rnnlm.data import SPLITS
    from rnnlm.results import rounded
    from rnnlm.tokenization import compare_tokenizations

    # The corpus's settings for this kind, with the comparison's own changes, one seed, in this process.
    # Every level gets a full softmax: adaptive cut-offs belong to one vocabulary, not to all three.
    base = section(params, TrainConfig, "train", args.corpus).for_kind(cfg.kind, f"train.{args.corpus}")
    changes = {"output": "full", **cfg.train, "epochs": cfg.epochs, "seeds": [cfg.seed], "workers": 1, "nproc": 1,
               "resume": False}
    train_cfg = base.updated(changes, f"tokenization.{args.corpus}.train")
    eval_batch_size = section(params, EvaluateConfig, "evaluate").batch_size

    # Word and char levels keep the corpus's vocabulary limits; bpe gets the comparison's size.
    vocab_configs = {level: base_vocab.updated({"level": level, "vocab_size": cfg.bpe_vocab_size}, f"vocab.{args.corpus}")
                     for level in cfg.levels}
    items = {name: read_lines(Path(args.splits) / f"{name}.txt", what=f"{name} split") for name in SPLITS}
    results, seconds = split_timings(compare_tokenizations(items, vocab_configs, cfg.kind, train_cfg, cfg.seed,
                                                           eval_batch_size))
    write_json(args.metrics, rounded({"kind": cfg.kind, "epochs": cfg.epochs, "seed": cfg.seed, "levels": results}))
    write_json(args.speed, rounded({"levels": seconds}))
    for level, result in results.items():
        print(f"tokenization {args.corpus}/{level}: {result['test']['bits_per_char']:.4f} bits/char, "
              f"OOV chars {100 * result['test']['oov_char_share']:.2f}%, {seconds[level]['seconds']:.0f} s")


if __name__ == "__main__":
    main()
