"""Stage mixture: a trained recurrent model mixed with the Kneser-Ney n-gram, λ fit on dev -> metrics JSON,
and the headline mixture as a model file (JSON naming both component files and λ)."""

import argparse
import time
from pathlib import Path

from _params import load_params, pipeline, section
from rnnlm.arpa import read_arpa_header
from rnnlm.checkpoint import load_checkpoint
from rnnlm.config import MixtureConfig, NgramConfig, TrainConfig, mixture_name
from rnnlm.data import load_encoded
from rnnlm.errors import UserError, exit_on_user_error
from rnnlm.evaluation import describe, metrics_record, rounded
from rnnlm.io import write_json
from rnnlm.lifecycle import exit_with_parent
from rnnlm.lm import mixture_spec
from rnnlm.mixture import evaluate_mixtures, fit_lambda, rnn_target_probabilities
from rnnlm.ngram import fit_ngram
from rnnlm.summary import with_seed_spread
from rnnlm.vocab import Vocabulary


def check_arpa_header(path, vocab, cfg):
    """Refuse an ARPA file written for another vocabulary, order or discount than this fit."""
    header = read_arpa_header(path)
    if (header or {}).get("vocabulary") != vocab.to_dict() or (header.get("order"), header.get("discount")) != (
            cfg.order, cfg.discount):
        raise UserError(f"{path} was not written by the ngram stage for this vocabulary and params; rerun `dvc repro`")


@exit_on_user_error
def main():
    exit_with_parent()  # end with `dvc repro`, even when it is killed with SIGKILL
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--vocab", required=True, help="input: vocabulary JSON")
    ap.add_argument("--encoded", required=True, help="input: encoded splits (.npz)")
    ap.add_argument("--models-dir", required=True,
                    help="input: the train stage's <kind>.pt and <kind>.seeds/ (the kind mixture.<corpus>.model names)")
    ap.add_argument("--arpa", required=True, help="input: the ngram stage's ARPA model, named in the model file")
    ap.add_argument("--metrics", required=True, help="output: metrics JSON")
    ap.add_argument("--model-file", required=True, help="output: the mixture as a model file (JSON)")
    ap.add_argument("--speed", required=True, help="output: seconds of the n-gram fit and of the whole stage (JSON)")
    args = ap.parse_args()
    params = load_params()
    kind, trained = section(params, MixtureConfig, "mixture", args.corpus).model, pipeline(params).kinds
    if kind not in trained:
        raise UserError(f"params: mixture.{args.corpus}.model is {kind}, which is not trained: "
                        f"kinds lists {', '.join(trained)}")
    seeds_dir, checkpoint = Path(args.models_dir) / f"{kind}.seeds", Path(args.models_dir) / f"{kind}.pt"
    ngram_cfg = section(params, NgramConfig, "ngram")
    seeds = section(params, TrainConfig, "train", args.corpus).seeds

    began = time.perf_counter()
    vocab = Vocabulary.load(args.vocab)
    splits = load_encoded(args.encoded)
    check_arpa_header(args.arpa, vocab, ngram_cfg)
    # The n-gram model fit exactly as the ngram stage fits it (same params, train split only): the
    # metrics stay bit-identical; the model file names the ARPA file, which scores the same to ~1e-12.
    fit_start = time.perf_counter()
    ngram = fit_ngram(vocab, splits["train"], ngram_cfg)
    ngram_seconds = time.perf_counter() - fit_start
    p_ngram_dev = ngram.target_probabilities(splits["dev"])
    models, lambdas = [], []
    for seed in seeds:
        path = seeds_dir / f"seed{seed}.pt"
        model, _, _ = load_checkpoint(path, expect_vocab=vocab)
        # λ from the dev split only: test never influences the mixture.
        lambdas.append(fit_lambda(rnn_target_probabilities(model, splits["dev"], vocab.pad_id), p_ngram_dev))
        models.append(model)
    results = {split: evaluate_mixtures(models, lambdas, ngram, splits[split], vocab.pad_id, unk_id=vocab.unk_id)
               for split in ("dev", "test")}
    per_seed = [{"dev": dev, "test": test} for dev, test in zip(results["dev"], results["test"])]

    # Headline = first seed, as in the evaluate stage; its parameters count both components.
    headline = metrics_record(per_seed[0]["dev"], per_seed[0]["test"], seed=seeds[0], **{"lambda": lambdas[0]},
                              params=models[0].num_parameters() + ngram.num_ngrams, rnn=kind, order=ngram_cfg.order)
    write_json(args.metrics, rounded(with_seed_spread(headline, per_seed, **{"lambda": lambdas})))
    # Its training time is the headline run's (the train stage's speed file) plus this n-gram fit.
    write_json(args.speed, rounded({"rnn": kind, "seed": seeds[0], "ngram_fit_seconds": ngram_seconds,
                                    "seconds": time.perf_counter() - began}))
    # The model file is the headline mixture: the first seed's checkpoint (<kind>.pt holds its
    # weights) and its λ, exactly as in the metrics' headline numbers.
    write_json(args.model_file, mixture_spec(checkpoint, args.arpa, lambdas[0], args.model_file,
                                             kind=kind, seed=seeds[0], corpus=args.corpus))
    print(f"mixture {args.corpus}/{mixture_name(kind)}: λ {lambdas[0]:.3f}, test {describe(headline['test'])} "
          f"(seed {seeds[0]}; {len(seeds)} seed(s) in {time.perf_counter() - began:.1f} s)")


if __name__ == "__main__":
    main()
