"""Stage ngram: fit an interpolated Kneser-Ney baseline on train, evaluate dev and test -> metrics JSON, ARPA
model, and the seconds of the fit."""

import argparse
import time

from _params import load_params, section
from rnnlm.arpa import write_arpa
from rnnlm.data import load_encoded
from rnnlm.errors import exit_on_user_error
from rnnlm.evaluation import describe, metrics_record, rounded, summarize
from rnnlm.io import write_json
from rnnlm.lifecycle import exit_with_parent
from rnnlm.ngram import fit_ngram
from rnnlm.schema.ngram import NgramConfig
from rnnlm.vocab import Vocabulary


@exit_on_user_error
def main():
    exit_with_parent()  # end with `dvc repro`, even when it is killed with SIGKILL
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--vocab", required=True, help="input: vocabulary JSON")
    ap.add_argument("--encoded", required=True, help="input: encoded splits (.npz)")
    ap.add_argument("--metrics", required=True, help="output: metrics JSON")
    ap.add_argument("--arpa", required=True, help="output: the model as an ARPA file (.arpa or .arpa.gz)")
    ap.add_argument("--speed", required=True, help="output: seconds of the fit (JSON)")
    args = ap.parse_args()
    cfg = section(load_params(), NgramConfig, "ngram")

    vocab = Vocabulary.load(args.vocab)
    splits = load_encoded(args.encoded)
    start = time.perf_counter()
    model = fit_ngram(vocab, splits["train"], cfg)
    fit_seconds = time.perf_counter() - start
    result = {split: summarize(*model.evaluate(splits[split], unk_id=vocab.unk_id)) for split in ("dev", "test")}
    metrics = metrics_record(result["dev"], result["test"], params=model.num_ngrams, order=cfg.order,
                             discount=cfg.discount)
    write_json(args.metrics, rounded(metrics))
    write_json(args.speed, rounded({"fit_seconds": fit_seconds}))
    # The header makes the file usable alone (rnnlm score/sample/info): vocabulary with its rules, params.
    write_arpa(args.arpa, model, vocab.tokens, header={"vocabulary": vocab.to_dict(), "order": cfg.order,
                                                       "discount": cfg.discount, "corpus": args.corpus})
    print(f"ngram {args.corpus}: order {cfg.order}, test {describe(metrics['test'])} ({model.num_ngrams} n-grams)")


if __name__ == "__main__":
    main()
