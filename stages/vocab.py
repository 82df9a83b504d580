"""Stage vocab: fit the vocabulary on the training split only, then encode all splits once.

A stream corpus (ingest format: text) gets a stream vocabulary and each split is one stream
(rnnlm.textstream, rnnlm.data.encode_stream); tokens unseen in train are read as <unk> and counted."""

import argparse
from pathlib import Path

from _params import load_params, section
from rnnlm.data import SPLITS, encode_split, encode_stream, save_encoded
from rnnlm.errors import exit_on_user_error
from rnnlm.io import iter_lines, require_file
from rnnlm.lifecycle import exit_with_parent
from rnnlm.schema.ingest import IngestConfig
from rnnlm.schema.vocab import VocabConfig
from rnnlm.text import Normalization
from rnnlm.textstream import read_stream_text, text_blocks
from rnnlm.vocab import Vocabulary


@exit_on_user_error
def main():
    exit_with_parent()  # end with `dvc repro`, even when it is killed with SIGKILL
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--splits", required=True, help="input: folder with {train,dev,test}.txt")
    ap.add_argument("--vocab", required=True, help="output: vocabulary JSON")
    ap.add_argument("--encoded", required=True, help="output: token ids of every split (.npz)")
    args = ap.parse_args()
    params = load_params()
    cfg = section(params, VocabConfig, "vocab", args.corpus)
    # The corpus's ingest rules travel in the vocabulary: a model file then normalizes raw text alone.
    ingest = section(params, IngestConfig, "ingest", args.corpus)
    rules = Normalization.from_config(ingest)

    # Splits are streamed (read twice for train: to count, then to encode), never held as text;
    # all three are checked first so that a missing one fails before anything is written.
    paths = {name: require_file(Path(args.splits) / f"{name}.txt", what=f"{name} split") for name in SPLITS}
    if ingest.format == "text":  # one long text: each split is one stream, read whole
        return stream_vocab(args, cfg, rules, paths)
    vocab = Vocabulary.build(iter_lines(paths["train"]), cfg.level, cfg.max_size, cfg.min_freq, cfg.vocab_size,
                             normalization=rules)
    vocab.save(args.vocab)
    encoded = {name: encode_split(vocab, iter_lines(path)) for name, path in paths.items()}
    save_encoded(args.encoded, encoded)
    print(f"vocab {args.corpus}: {len(vocab)} tokens ({cfg.level}-level, "
          f"fit on {len(encoded['train'])} training items)")


def stream_vocab(args, cfg, rules, paths):
    texts = {name: read_stream_text(path, what=f"{name} split") for name, path in paths.items()}
    vocab = Vocabulary.build(text_blocks(texts["train"]), cfg.level, cfg.max_size, cfg.min_freq, cfg.vocab_size,
                             normalization=rules, stream=True)
    vocab.save(args.vocab)
    encoded = {name: encode_stream(vocab, text) for name, text in texts.items()}
    save_encoded(args.encoded, encoded)
    # Tokens unseen in train are read as <unk>: say how many (the evaluate stage reports the rate).
    unseen = ", ".join(f"{name} {int((encoded[name].tokens == vocab.unk_id).sum()):,}" for name in ("dev", "test"))
    print(f"vocab {args.corpus}: {len(vocab)} tokens ({cfg.level}-level stream, fit on "
          f"{encoded['train'].num_targets:,} training tokens); read as <unk> (unseen in train): {unseen}")


if __name__ == "__main__":
    main()
