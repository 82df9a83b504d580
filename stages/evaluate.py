"""Stage evaluate: full dev and test passes for every seed's checkpoint of every kind -> metrics JSON.

A stream corpus also gets "dev_test": dev and test scored as ONE stream from a zero state (docs/streams.md), and
with ``evaluate.stream_cache.enabled`` each recurrent kind a second file, <kind>+cache.json: the model with a
neural cache, θ and λ fit on dev (rnnlm.cache; docs/streams.md, "A neural cache"); with
``evaluate.stream_dyneval.enabled`` <kind>+dyneval.json: the model read with dynamic evaluation, its learning
rate and decay fit on dev (rnnlm.dyneval)."""

import argparse
from pathlib import Path

from _params import load_params, section
from rnnlm.cache import cache_metrics
from rnnlm.checkpoint import load_checkpoint
from rnnlm.data import joined_streams, load_encoded
from rnnlm.devices import resolve_device
from rnnlm.dyneval import dyneval_metrics
from rnnlm.errors import exit_on_user_error
from rnnlm.evaluation import evaluate_split
from rnnlm.io import read_lines, write_json
from rnnlm.kinds import STATEFUL_KINDS, check_model_kind
from rnnlm.lifecycle import exit_with_parent
from rnnlm.results import describe, metrics_record, rounded
from rnnlm.schema.evaluate import EvaluateConfig
from rnnlm.schema.pipeline import Pipeline
from rnnlm.schema.train import TrainConfig
from rnnlm.summary import with_seed_spread
from rnnlm.vocab import Vocabulary, with_own_unk


def evaluate_checkpoint(path, vocab, splits, batch_size, device):
    model, _, payload = load_checkpoint(path, expect_vocab=vocab)
    model.to(device)
    result = {split: evaluate_split(model, splits[split], vocab.pad_id, batch_size, unk_id=vocab.unk_id)
              for split in ("dev", "test")}
    if "dev_test" in splits:  # a stream's dev ∪ test, one stream (nanoGPT's val)
        result["dev_test"] = evaluate_split(model, splits["dev_test"], vocab.pad_id, batch_size)
    return model, payload["training"], result


def evaluate_kind(seeds_dir, seeds, vocab, splits, cfg, oov_char_share, own_unk=0):
    """The metrics file of one kind: the first seed's numbers, and with several seeds their spread.
    Its training time is the train stage's (speed/): a timing is no metric. ``own_unk``: the test text's own
    literal ``<unk>`` tokens, counted apart from the words train lacks (``rnnlm.vocab.with_own_unk``)."""
    per_seed = []
    for seed in seeds:
        model, training, result = evaluate_checkpoint(Path(seeds_dir) / f"seed{seed}.pt", vocab, splits,
                                                      cfg.batch_size, resolve_device(cfg.device))
        per_seed.append(result)
        if len(per_seed) == 1:  # the first seed is the headline model
            test = with_own_unk(result["test"], own_unk) | {"oov_char_share": oov_char_share}
            joined = {"dev_test": result["dev_test"]} if "dev_test" in result else {}
            headline = metrics_record(result["dev"], test, **joined, params=model.num_parameters(), seed=seed,
                                      # the epoch whose weights were kept (lowest dev loss), of those trained
                                      best_epoch=training.get("best_epoch"), epochs_done=training["epochs_done"])
    return rounded(with_seed_spread(headline, per_seed))


def evaluate_adapted_kind(adapt, seeds_dir, seed, vocab, splits, cfg, oov_char_share, own_unk=0):
    """The metrics file of one kind adapted at test time (``<kind>+cache.json``, ``<kind>+dyneval.json``): the
    headline seed's model, ``adapt(model)`` (its settings fit on dev only, then test and dev ∪ test scored with
    them), and the model's params, seed and epochs."""
    model, _, payload = load_checkpoint(Path(seeds_dir) / f"seed{seed}.pt", expect_vocab=vocab)
    model.to(resolve_device(cfg.device))
    result = adapt(model)
    result["test"] = with_own_unk(result["test"], own_unk) | {"oov_char_share": oov_char_share}
    training = payload["training"]
    joined = {"dev_test": result.pop("dev_test")} if "dev_test" in result else {}
    return rounded(metrics_record(result.pop("dev"), result.pop("test"), **joined, **result,
                                  params=model.num_parameters(), seed=seed, best_epoch=training.get("best_epoch"),
                                  epochs_done=training["epochs_done"]))


def adaptations(cfg, splits, vocab):
    """The test-time adaptations that ``evaluate`` turns on, by row suffix (<kind>+cache, <kind>+dyneval):
    ``(adapt, settings)``, the function that fits one on dev and scores every split with it, and the line
    that names the settings it chose."""
    on = {}
    if cfg.stream_cache.enabled:
        on["cache"] = (lambda model: cache_metrics(model, splits, cfg.stream_cache.size, unk_id=vocab.unk_id),
                       lambda m: f"theta {m['theta']}, lambda {m['lambda']}, size {m['size']}")
    if cfg.stream_dyneval.enabled:
        on["dyneval"] = (lambda model: dyneval_metrics(model, splits, cfg.stream_dyneval.segment,
                                                       unk_id=vocab.unk_id, log=print),
                         lambda m: f"learning rate {m['lr']}, decay {m['decay']}, segment {m['segment']}")
    return on


@exit_on_user_error
def main():
    exit_with_parent()  # end with `dvc repro`, even when it is killed with SIGKILL
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--vocab", required=True, help="input: vocabulary JSON")
    ap.add_argument("--encoded", required=True, help="input: the vocab stage's encoded splits (its folder, or an .npz file)")
    ap.add_argument("--models-dir", required=True, help="input: <kind>.seeds/seed<N>.pt per kind")
    ap.add_argument("--test-split", required=True, help="input: test items, to measure the characters in OOV words")
    ap.add_argument("--metrics-dir", required=True, help="output: <kind>.json per kind")
    args = ap.parse_args()
    params = load_params()
    kinds = Pipeline.of(params).kinds_of(args.corpus)
    cfg = section(params, EvaluateConfig, "evaluate")
    seeds = section(params, TrainConfig, "train", args.corpus).seeds

    vocab = Vocabulary.load(args.vocab)
    splits = load_encoded(args.encoded)
    if vocab.stream:
        splits["dev_test"] = joined_streams(splits["dev"], splits["test"])
    # <unk> stands for a whole word's characters: say how many of the characters bits/char divides by.
    test_items = read_lines(args.test_split, what="test split")
    oov_char_share = vocab.unknown_chars(test_items) / int(splits["test"].chars.sum())
    own_unk = vocab.own_unk_count(test_items)   # the test text's own literal <unk> tokens, counted once
    for kind in kinds:
        metrics = evaluate_kind(Path(args.models_dir) / f"{kind}.seeds", seeds, vocab, splits, cfg, oov_char_share,
                                own_unk)
        write_json(Path(args.metrics_dir) / f"{kind}.json", metrics)
        print(f"evaluate {args.corpus}/{kind}: test {describe(metrics['test'])} (seed {seeds[0]})")
        for row, (adapt, settings) in adaptations(cfg, splits, vocab).items():
            if not (vocab.stream and check_model_kind(kind) in STATEFUL_KINDS):
                print(f"evaluate {args.corpus}/{kind}: no {row} row (it needs a stream corpus and a recurrent kind)")
                continue
            adapted = evaluate_adapted_kind(adapt, Path(args.models_dir) / f"{kind}.seeds", seeds[0], vocab, splits,
                                            cfg, oov_char_share, own_unk)
            write_json(Path(args.metrics_dir) / f"{kind}+{row}.json", adapted)
            print(f"evaluate {args.corpus}/{kind}+{row}: test {describe(adapted['test'])} ({settings(adapted)}, "
                  "fit on dev)")


if __name__ == "__main__":
    main()
