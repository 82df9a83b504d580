"""Stage mixture: trained neural models mixed with the Kneser-Ney n-gram (at the order the ngram stage chose),
weights fit on dev -> metrics JSON, and the headline mixture as a model file (JSON naming its component files
and weights)."""

import argparse
import time
from pathlib import Path

from _params import load_params, section
from rnnlm.arpa import read_arpa_header
from rnnlm.checkpoint import load_checkpoint
from rnnlm.data import joined_streams, load_encoded
from rnnlm.errors import UserError, exit_on_user_error
from rnnlm.io import read_lines, write_json
from rnnlm.lifecycle import exit_with_parent
from rnnlm.lm import mixture_spec
from rnnlm.mixture import evaluate_mixtures, fit_weights, neural_target_probabilities
from rnnlm.ngram import discount_record, fit_ngram
from rnnlm.results import describe, metrics_record, rounded
from rnnlm.schema.mixture import MixtureConfig, mixture_name
from rnnlm.schema.ngram import NgramConfig
from rnnlm.schema.pipeline import Pipeline
from rnnlm.schema.train import TrainConfig
from rnnlm.summary import with_seed_spread
from rnnlm.vocab import Vocabulary, with_own_unk


def chosen_order(path, vocab, cfg):
    """The order the ngram stage chose on dev, from its ARPA file's header; refuses a file written for
    another vocabulary or other ``ngram.<corpus>`` params."""
    header = read_arpa_header(path) or {}
    order = header.get("order")
    if (header.get("vocabulary") != vocab.to_dict()
            or (header.get("min_order"), header.get("max_order")) != (cfg.min_order, cfg.max_order)
            or not isinstance(order, int) or not cfg.min_order <= order <= cfg.max_order):
        raise UserError(f"{path} was not written by the ngram stage for this vocabulary and params; rerun `dvc repro`")
    return order, header.get("discounts")


@exit_on_user_error
def main():
    exit_with_parent()  # end with `dvc repro`, even when it is killed with SIGKILL
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--vocab", required=True, help="input: vocabulary JSON")
    ap.add_argument("--encoded", required=True, help="input: the vocab stage's encoded splits (its folder, or an .npz file)")
    ap.add_argument("--test-split", required=True, help="input: test text, for its own literal <unk> tokens")
    ap.add_argument("--models-dir", required=True,
                    help="input: the train stage's <kind>.pt and <kind>.seeds/ (the kinds mixture.<corpus>.model names)")
    ap.add_argument("--arpa", required=True, help="input: the ngram stage's ARPA model, named in the model file")
    ap.add_argument("--metrics", required=True, help="output: metrics JSON")
    ap.add_argument("--model-file", required=True, help="output: the mixture as a model file (JSON)")
    ap.add_argument("--speed", required=True, help="output: seconds of the n-gram fit and of the whole stage (JSON)")
    args = ap.parse_args()
    params = load_params()
    listed = section(params, MixtureConfig, "mixture", args.corpus).kinds
    trained = Pipeline.of(params).kinds_of(args.corpus)
    # The listed kinds that this run trains: `-S 'kinds.names=[gru,lstm]'` still gets its mixture.
    kinds, skipped = [k for k in listed if k in trained], [k for k in listed if k not in trained]
    if not kinds:
        raise UserError(f"params: mixture.{args.corpus}.model lists {', '.join(listed)}, none of which is trained "
                        f"(kinds.{args.corpus} lists {', '.join(trained)}): name one of those")
    if skipped:
        print(f"mixture {args.corpus}: {', '.join(skipped)} not in kinds.{args.corpus}, mixing {' + '.join(kinds)} with the n-gram")
    ngram_cfg = section(params, NgramConfig, "ngram", args.corpus)
    seeds = section(params, TrainConfig, "train", args.corpus).seeds
    models_dir = Path(args.models_dir)

    began = time.perf_counter()
    vocab = Vocabulary.load(args.vocab)
    splits = load_encoded(args.encoded, mapped=False)  # n-gram arithmetic: int32 in memory
    order, discounts = chosen_order(args.arpa, vocab, ngram_cfg)
    # The n-gram model refit at the order the ngram stage chose on dev (its ARPA header), on the same
    # train split: the metrics stay bit-identical; the model file names the ARPA file, which scores
    # the same to ~1e-12. Equal discounts confirm that the file was fit on this train split.
    fit_start = time.perf_counter()
    ngram = fit_ngram(vocab, splits["train"], ngram_cfg, order=order)
    ngram_seconds = time.perf_counter() - fit_start
    if discount_record(ngram) != discounts:
        raise UserError(f"{args.arpa} was fit on another train split (its discounts differ); rerun `dvc repro`")
    p_ngram_dev = ngram.target_probabilities(splits["dev"])
    mixtures = []
    for seed in seeds:  # one mixture per seed: each seed's models with their own weights
        models = [load_checkpoint(models_dir / f"{kind}.seeds" / f"seed{seed}.pt", expect_vocab=vocab)[0]
                  for kind in kinds]
        # The weights from the dev split only: test never influences the mixture.
        weights = fit_weights([neural_target_probabilities(model, splits["dev"], vocab.pad_id) for model in models]
                              + [p_ngram_dev])
        mixtures.append((models, weights))
    if vocab.stream:  # a stream's dev ∪ test, scored as one stream (docs/streams.md)
        splits["dev_test"] = joined_streams(splits["dev"], splits["test"])
    results = {split: evaluate_mixtures(mixtures, ngram, splits[split], vocab.pad_id, unk_id=vocab.unk_id)
               for split in ("dev", "test", "dev_test") if split in splits}
    per_seed = [{split: result[m] for split, result in results.items()} for m in range(len(mixtures))]
    own_unk = vocab.own_unk_count(read_lines(args.test_split, what="test split"))  # not words train lacks
    for result in per_seed:
        result["test"] = with_own_unk(result["test"], own_unk)
    components = kinds + ["ngram"]

    # Headline = first seed, as in the evaluate stage; parameters count every component.
    models, weights = mixtures[0]
    joined = ({"dev_test": {k: v for k, v in per_seed[0]["dev_test"].items() if k != "oov_rate"}}
              if "dev_test" in per_seed[0] else {})
    headline = metrics_record(per_seed[0]["dev"], per_seed[0]["test"], **joined, seed=seeds[0], kinds=kinds,
                              weights=dict(zip(components, weights.tolist())), order=order,
                              params=sum(model.num_parameters() for model in models) + ngram.num_ngrams)
    spreads = {f"weight_{name}": [w[i] for _, w in mixtures] for i, name in enumerate(components)}
    write_json(args.metrics, rounded(with_seed_spread(headline, per_seed, **spreads)))
    # Its training time is the headline runs' (the train stage's speed file) plus this n-gram fit.
    write_json(args.speed, rounded({"kinds": kinds, "seed": seeds[0], "ngram_fit_seconds": ngram_seconds,
                                    "seconds": time.perf_counter() - began}))
    # The model file is the headline mixture: the first seed's checkpoints (<kind>.pt holds its
    # weights) and its weights, exactly as in the metrics' headline numbers.
    write_json(args.model_file, mixture_spec([models_dir / f"{kind}.pt" for kind in kinds] + [args.arpa], weights,
                                             args.model_file, kinds=kinds, seed=seeds[0], corpus=args.corpus))
    mixed = ", ".join(f"{name} {w:.3f}" for name, w in zip(components, weights))
    print(f"mixture {args.corpus}/{mixture_name(kinds)}: weights {mixed}; test {describe(headline['test'])} "
          f"(seed {seeds[0]}; {len(seeds)} seed(s) in {time.perf_counter() - began:.1f} s)")


if __name__ == "__main__":
    main()
