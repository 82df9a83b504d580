"""Comparing tokenizations fairly: the same model at every level, scored in bits per character.

Loss per token cannot compare levels: a word-level model predicts fewer, harder tokens than a
character-level one. Bits per character can: the total negative log-likelihood of the test split
(in bits) over the characters it covers is the code length a model needs per character of text,
whatever the unit it predicts. One caveat stays: at word level an out-of-vocabulary word costs only
the probability of ``<unk>``, never its spelling, so each result also gives the OOV rate and the
share of test characters inside OOV words (0 for bpe, whose 256-byte alphabet spells anything).

For each level, the vocabulary is fit on the training split only, every split is encoded, and one
model is trained with identical settings (``training.train_model``), then scored on the test split.
"""

import tempfile
import time
from pathlib import Path

from .data import SPLITS, encode_split
from .evaluation import evaluate_split
from .training import train_model
from .vocab import Vocabulary


def compare_tokenizations(items, vocab_configs, kind, train_config, seed, eval_batch_size=256, log=print,
                          progress=True):
    """``items``: {split: [text]}; ``vocab_configs``: {level: VocabConfig} -> {level: result}.

    Each result: ``vocab_size``, ``params``, ``dev_loss`` and ``best_epoch`` (the epoch whose weights
    are tested, the lowest dev loss, as everywhere else), ``seconds`` (fit, encode,
    train and test), ``train_seconds``, and ``test`` (evaluation metrics plus ``chars``,
    ``tokens_per_char`` and ``oov_char_share``).
    """
    results = {}
    # The checkpoints are a by-product here: only the metrics are this comparison's output.
    with tempfile.TemporaryDirectory(prefix="rnnlm-tokenization-") as workdir:
        for level, vc in vocab_configs.items():
            start = time.perf_counter()
            vocab = Vocabulary.build(items["train"], vc.level, vc.max_size, vc.min_freq, vc.vocab_size,
                                     pretokenize=vc.pretokenize)
            splits = {name: encode_split(vocab, items[name]) for name in SPLITS}
            log(f"tokenization {level}: {len(vocab)} tokens, {splits['train'].num_targets:,} training targets")
            model, record = train_model(kind, train_config, vocab, splits, seed, Path(workdir) / f"{level}.pt",
                                        log=log, progress=progress)
            test = evaluate_split(model, splits["test"], vocab.pad_id, eval_batch_size, unk_id=vocab.unk_id)
            chars = int(splits["test"].chars.sum())
            test |= {"chars": chars, "tokens_per_char": test["tokens"] / chars,
                     "oov_char_share": vocab.unknown_chars(items["test"]) / chars}
            results[level] = {"vocab_size": len(vocab), "params": model.num_parameters(),
                              "dev_loss": record["best_dev_loss"], "best_epoch": record["best_epoch"],
                              "train_seconds": record["train_seconds"],
                              "seconds": time.perf_counter() - start, "test": test}
    return results
