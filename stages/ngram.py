"""Stage ngram: fit an interpolated modified Kneser-Ney baseline on train, choose its order on dev, evaluate
dev and test -> metrics JSON, ARPA model of the chosen order, and the seconds of the fit."""

import argparse
import time

from _params import load_params, section
from rnnlm.arpa import write_arpa
from rnnlm.data import joined_streams, load_encoded
from rnnlm.errors import exit_on_user_error
from rnnlm.io import read_lines, write_json
from rnnlm.lifecycle import exit_with_parent
from rnnlm.ngram import discount_record, fit_ngram, select_order
from rnnlm.results import describe, metrics_record, rounded, summarize
from rnnlm.schema.ngram import NgramConfig
from rnnlm.vocab import Vocabulary, with_own_unk


@exit_on_user_error
def main():
    exit_with_parent()  # end with `dvc repro`, even when it is killed with SIGKILL
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--vocab", required=True, help="input: vocabulary JSON")
    ap.add_argument("--encoded", required=True, help="input: the vocab stage's encoded splits (its folder, or an .npz file)")
    ap.add_argument("--test-split", required=True, help="input: test text, for its own literal <unk> tokens")
    ap.add_argument("--metrics", required=True, help="output: metrics JSON")
    ap.add_argument("--arpa", required=True, help="output: the model as an ARPA file (.arpa or .arpa.gz)")
    ap.add_argument("--speed", required=True, help="output: seconds of the fit and of the order's choice (JSON)")
    args = ap.parse_args()
    cfg = section(load_params(), NgramConfig, "ngram", args.corpus)

    vocab = Vocabulary.load(args.vocab)
    splits = load_encoded(args.encoded, mapped=False)  # n-gram arithmetic: int32 in memory
    start = time.perf_counter()
    counts = fit_ngram(vocab, splits["train"], cfg)     # counted once, for max_order
    fit_seconds = time.perf_counter() - start
    # Every order's model comes from those counts; dev alone chooses (test never does).
    model, dev_losses = select_order(counts, splits["dev"], range(cfg.min_order, cfg.max_order + 1))
    select_seconds = time.perf_counter() - start - fit_seconds
    result = {split: summarize(*model.evaluate(splits[split], unk_id=vocab.unk_id)) for split in ("dev", "test")}
    # the text's own literal <unk> (WikiText's) is not a word train lacks: counted apart from oov_rate
    result["test"] = with_own_unk(result["test"], vocab.own_unk_count(read_lines(args.test_split, what="test split")))
    if splits["dev"].stream:  # dev ∪ test as one stream, as nanoGPT's val (the history runs on from dev into test)
        joined = summarize(*model.evaluate(joined_streams(splits["dev"], splits["test"])))
        result["dev_test"] = {k: v for k, v in joined.items() if k != "oov_rate"}
    discounts = discount_record(model)
    extra = {"dev_test": result["dev_test"]} if "dev_test" in result else {}
    metrics = metrics_record(result["dev"], result["test"], **extra, params=model.num_ngrams, order=model.order,
                             discounts=discounts, dev_loss_by_order={str(k): v for k, v in dev_losses.items()})
    write_json(args.metrics, rounded(metrics))
    write_json(args.speed, rounded({"fit_seconds": fit_seconds, "select_seconds": select_seconds}))
    # The header makes the file usable alone (rnnlm score/sample/info): vocabulary with its rules, the
    # chosen order and its discounts; the mixture stage refits at that order and checks the discounts.
    write_arpa(args.arpa, model, vocab.tokens,
               header={"vocabulary": vocab.to_dict(), "order": model.order, "discounts": discounts,
                       "min_order": cfg.min_order, "max_order": cfg.max_order, "corpus": args.corpus})
    print(f"ngram {args.corpus}: order {model.order} (lowest dev loss of {cfg.min_order}-{cfg.max_order}), "
          f"test {describe(metrics['test'])} ({model.num_ngrams} n-grams; fit {fit_seconds:.1f} s, "
          f"choice {select_seconds:.1f} s)")


if __name__ == "__main__":
    main()
