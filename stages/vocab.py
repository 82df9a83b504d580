"""Stage vocab: fit the vocabulary on the training split only, then encode all splits once.

A stream corpus (ingest format: text) gets a stream vocabulary and each split is one stream
(rnnlm.textstream, rnnlm.data.encode_stream); tokens unseen in train are read as <unk> and counted, apart
from the text's own <unk> tokens (WikiText's, PTB's), which are the vocabulary's <unk> too but not unseen.
At word level vocab.<corpus>.pretokenize says how a line splits into words (null: "whitespace" for a folder
of predefined split files, as the split stage's report.json records it, "words" otherwise)."""

import argparse
from pathlib import Path

from _params import load_params, section
from rnnlm.data import SPLITS, encode_split, encode_stream, save_encoded
from rnnlm.errors import exit_on_user_error
from rnnlm.io import iter_lines, read_json, require_file
from rnnlm.lifecycle import exit_with_parent
from rnnlm.schema.ingest import IngestConfig
from rnnlm.schema.vocab import VocabConfig
from rnnlm.text import Normalization
from rnnlm.textstream import read_stream_text, resolve_pretokenize, text_blocks
from rnnlm.vocab import Vocabulary, oov_counts


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
                             normalization=rules, pretokenize=cfg.pretokenize)
    vocab.save(args.vocab)
    encoded = {name: encode_split(vocab, iter_lines(path)) for name, path in paths.items()}
    save_encoded(args.encoded, encoded)
    own = {name: vocab.own_unk_count(iter_lines(paths[name])) for name in ("dev", "test")}
    print(f"vocab {args.corpus}: {len(vocab)} tokens ({cfg.level}-level, "
          f"fit on {len(encoded['train'])} training items){unk_note(vocab, encoded, own)}")


def unk_note(vocab, encoded, own):
    """What dev and test read as <unk>: the tokens unseen in train, and apart the text's own <unk> tokens
    (only said when there are some: a corpus without them prints what it printed before)."""
    counts = {name: oov_counts(int((encoded[name].tokens == vocab.unk_id).sum()), own[name]) for name in own}
    unseen = ", ".join(f"{name} {counts[name][0]:,}" for name in counts)
    if not any(own.values()):
        return f"; read as <unk> (unseen in train): {unseen}" if vocab.stream else ""
    mine = ", ".join(f"{name} {counts[name][1]:,}" for name in counts)
    return f"; read as <unk>: unseen in train {unseen}; the text's own <unk> tokens (not unseen) {mine}"


def stream_vocab(args, cfg, rules, paths):
    texts = {name: read_stream_text(path, what=f"{name} split") for name, path in paths.items()}
    # the split stage's report says whether the splits were predefined files (then words are kept as given)
    report = Path(args.splits) / "report.json"
    predefined = report.is_file() and read_json(report, what="split report").get("predefined", False)
    words = resolve_pretokenize(cfg.pretokenize, predefined)
    vocab = Vocabulary.build(text_blocks(texts["train"]), cfg.level, cfg.max_size, cfg.min_freq, cfg.vocab_size,
                             normalization=rules, stream=True, pretokenize=words)
    vocab.save(args.vocab)
    encoded = {name: encode_stream(vocab, text) for name, text in texts.items()}
    save_encoded(args.encoded, encoded)
    # Tokens unseen in train are read as <unk>: say how many (the evaluate stage reports the rate), and
    # apart the text's own <unk> tokens, which are no unseen words.
    own = {name: vocab.own_unk_count([texts[name]]) for name in ("dev", "test")}
    print(f"vocab {args.corpus}: {len(vocab)} tokens ({cfg.level}-level stream"
          f"{', ' + words + ' words' if cfg.level == 'word' else ''}, fit on "
          f"{encoded['train'].num_targets:,} training tokens){unk_note(vocab, encoded, own)}")


if __name__ == "__main__":
    main()
