"""Stage vocab: fit the vocabulary on the training split only, then encode all splits once.

A stream corpus (ingest format: text) gets a stream vocabulary and each split is one stream
(rnnlm.textstream), written a block at a time to flat arrays (rnnlm.data.StreamWriter); tokens unseen in train are read as <unk> and counted, apart
from the text's own <unk> tokens (WikiText's, PTB's), which are the vocabulary's <unk> too but not unseen.
At word level vocab.<corpus>.pretokenize says how a line splits into words (null: "whitespace" for a folder
of predefined split files, as the split stage's report.json records it, "words" otherwise)."""

import argparse
from pathlib import Path

import numpy as np
from _params import load_params, section
from rnnlm.data import SPLITS, StreamWriter, encode_split, save_encoded
from rnnlm.errors import exit_on_user_error
from rnnlm.io import iter_lines, read_json, require_file
from rnnlm.lifecycle import exit_with_parent
from rnnlm.schema.ingest import IngestConfig
from rnnlm.schema.vocab import VocabConfig
from rnnlm.text import Normalization
from rnnlm.textstream import file_blocks, resolve_pretokenize
from rnnlm.vocab import Vocabulary, oov_counts


@exit_on_user_error
def main():
    exit_with_parent()  # end with `dvc repro`, even when it is killed with SIGKILL
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--splits", required=True, help="input: folder with {train,dev,test}.txt")
    ap.add_argument("--vocab", required=True, help="output: vocabulary JSON")
    ap.add_argument("--encoded", required=True,
                    help="output: a folder of every split's token ids (items.npz; a stream: {train,dev,test}.bin)")
    args = ap.parse_args()
    params = load_params()
    cfg = section(params, VocabConfig, "vocab", args.corpus)
    # The corpus's ingest rules travel in the vocabulary: a model file then normalizes raw text alone.
    ingest = section(params, IngestConfig, "ingest", args.corpus)
    rules = Normalization.from_config(ingest)

    # Splits are streamed (read twice for train: to count, then to encode), never held as text;
    # all three are checked first so that a missing one fails before anything is written.
    paths = {name: require_file(Path(args.splits) / f"{name}.txt", what=f"{name} split") for name in SPLITS}
    if ingest.format == "text":  # one long text: each split is one stream, read a block at a time
        return stream_vocab(args, cfg, rules, paths)
    vocab = Vocabulary.build(iter_lines(paths["train"]), cfg.level, cfg.max_size, cfg.min_freq, cfg.vocab_size,
                             normalization=rules, pretokenize=cfg.pretokenize)
    vocab.save(args.vocab)
    encoded = {name: encode_split(vocab, iter_lines(path)) for name, path in paths.items()}
    save_encoded(args.encoded, encoded)
    own = {name: vocab.own_unk_count(iter_lines(paths[name])) for name in ("dev", "test")}
    unk = {name: int((encoded[name].tokens == vocab.unk_id).sum()) for name in own}
    print(f"vocab {args.corpus}: {len(vocab)} tokens ({cfg.level}-level, "
          f"fit on {len(encoded['train'])} training items){unk_note(vocab, unk, own)}")


def unk_note(vocab, unk, own):
    """What dev and test read as <unk>: the tokens unseen in train, and apart the text's own <unk> tokens
    (only said when there are some: a corpus without them prints what it printed before). ``unk``: each
    split's <unk> ids; ``own``: its own <unk> tokens among them."""
    counts = {name: oov_counts(unk[name], own[name]) for name in own}
    unseen = ", ".join(f"{name} {counts[name][0]:,}" for name in counts)
    if not any(own.values()):
        return f"; read as <unk> (unseen in train): {unseen}" if vocab.stream else ""
    mine = ", ".join(f"{name} {counts[name][1]:,}" for name in counts)
    return f"; read as <unk>: unseen in train {unseen}; the text's own <unk> tokens (not unseen) {mine}"


def stream_vocab(args, cfg, rules, paths):
    """Fit on train's text and encode each split a block at a time (rnnlm.textstream.file_blocks), the ids
    written to the encoded folder's flat arrays as they come (rnnlm.data.StreamWriter): no split is held."""
    # the split stage's report says whether the splits were predefined files (then words are kept as given)
    report = Path(args.splits) / "report.json"
    predefined = report.is_file() and read_json(report, what="split report").get("predefined", False)
    words = resolve_pretokenize(cfg.pretokenize, predefined)
    vocab = Vocabulary.build(file_blocks(paths["train"], cfg.level), cfg.level, cfg.max_size, cfg.min_freq,
                             cfg.vocab_size, normalization=rules, stream=True, pretokenize=words)
    vocab.save(args.vocab)
    # Tokens unseen in train are read as <unk>: say how many (the evaluate stage reports the rate), and
    # apart the text's own <unk> tokens, which are no unseen words.
    unk, own = dict.fromkeys(SPLITS, 0), dict.fromkeys(SPLITS, 0)
    with StreamWriter(args.encoded, len(vocab)) as out:
        for name, path in paths.items():
            out.start(name)
            out.write([vocab.bos_id])   # the zero-state start that predicts the first token (rnnlm.data)
            for block in file_blocks(path, cfg.level, what=f"{name} split"):
                ids = np.asarray(vocab.stream_ids(block), dtype=np.int64)
                out.write(ids, len(block))
                unk[name] += int((ids == vocab.unk_id).sum())
                own[name] += vocab.own_unk_count([block])
    print(f"vocab {args.corpus}: {len(vocab)} tokens ({cfg.level}-level stream"
          f"{', ' + words + ' words' if cfg.level == 'word' else ''}, fit on "
          f"{out.tokens['train'] - 1:,} training tokens)"
          f"{unk_note(vocab, unk, {name: own[name] for name in ('dev', 'test')})}")


if __name__ == "__main__":
    main()
