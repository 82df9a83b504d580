"""The n-gram model as an ARPA file: the format KenLM, SRILM and most n-gram toolkits read.

An ARPA file lists, for every stored n-gram ``h w``, ``log10 P(w | h)`` and, for an n-gram that is
also a history, its back-off weight ``log10 β(h)``. A reader scores a word with the longest stored
n-gram that ends in it, multiplying the weights of the longer histories it had to give up::

    P(w | h) = P*(h w)                if "h w" is stored
             = β(h) · P(w | h')       otherwise (h' drops the oldest word; β = 1 when h is not stored)

Interpolated modified Kneser-Ney (``rnnlm.ngram``) is exactly of this shape: for a stored n-gram
of level ``k`` the file holds the interpolated ``P_k(w | h)``, and for a seen history the weight
``γ_k(h)`` that level ``k`` gives the level below; where ``a_k(h w) = 0`` the interpolation
formula *is* ``γ_k(h) · P_{k-1}(w | h')``. Lower levels hold the model's own lower-order
distributions (continuation counts), the top level its raw-count one.

Start of item. ARPA readers start every sentence in the state ``<s>`` (one token, never predicted:
``log10 P = -99`` by convention), and ``KneserNeyLM`` reads an item the same way: <s> only ever
opens an n-gram, and a target's history is the item so far. So the file lists exactly the model's
stored n-grams, those that start with <s> (raw counts at every level) included, each with the
level it belongs to; the <s> unigram carries ``γ_2(<s>)``.
Nothing assumes that an item ends with </s>: a stream (one long item) is written the same way,
and a reader scores it as one sentence without an end (KenLM: ``score(text, bos=True, eos=False)``).

Specials: ``</s>`` and ``<unk>`` are ordinary predicted tokens (a reader maps any word missing from
the file to ``<unk>``, which is what the vocabulary does); ``<pad>`` is not a word and not stored.
A token holding whitespace (a char vocabulary with " ") is written as ``<U+0020>``: see
:func:`arpa_token`, which a caller also applies before handing text to another reader.

Before ``\\data\\`` the file carries one comment line ``# rnnlm-model {json}`` (KenLM skips lines
starting with ``#``): the vocabulary with its normalization rules, the order and discounts, so the
file alone can score raw text. Numbers are written with 17 significant digits, so reading the file
back gives the model's probabilities to about 1e-16.
"""

import gzip
import io
import json
import math
from pathlib import Path

import numpy as np

from .errors import UserError
from .io import atomic_write, require_file

LOG10_ZERO = -99.0          # the ARPA convention for "probability 0" (the <s> unigram)
HEADER_PREFIX = "# rnnlm-model "


def arpa_token(token):
    """The token as an ARPA word: whitespace inside it becomes ``<U+XXXX>`` (ARPA splits on it)."""
    if not any(ch.isspace() for ch in token):
        return token
    return "".join(f"<U+{ord(ch):04X}>" if ch.isspace() else ch for ch in token)


def _log10(p):
    """log10 of an array of probabilities, LOG10_ZERO where a probability is 0."""
    p = np.asarray(p, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return np.where(p > 0, np.log10(p), LOG10_ZERO)


def arpa_ngrams(model):
    """``{k: (ids (M, k) int64, log10 P (M,), log10 β (M,) with NaN where none)}`` of a fitted
    ``KneserNeyLM`` (see the module docstring), each level sorted by its ids.

    Every probability is the model's own (``ngram_probabilities``, the entries of its
    ``distributions``), every weight its own ``backoff_weights``; one numpy pass per level.
    """
    n, bos = model.order, model.bos_id
    words = np.flatnonzero(model.predictable)
    grams = {1: np.concatenate([words, [bos]])[:, None].astype(np.int64)}
    grams.update({k: model.stored_ngrams(k) for k in range(2, n + 1)})
    out = {}
    for k, ids in grams.items():
        probs = model.ngram_probabilities(ids, k) if len(ids) else np.empty(0)
        if k < n:   # a k-gram that is a history at level k + 1 carries that level's γ
            gamma, seen = model.backoff_weights(ids, k + 1)
            bow = np.where(seen, gamma, np.nan)
        else:
            bow = np.full(len(ids), np.nan)
        logp = _log10(probs)
        logp[ids[:, -1] == bos] = LOG10_ZERO                 # <s> is never predicted
        with np.errstate(divide="ignore", invalid="ignore"):
            logb = np.log10(bow)
        order = np.lexsort(ids.T[::-1])                      # sorted by ids, first column first
        out[k] = (ids[order], logp[order], logb[order])
    return out


def _number(x):
    return repr(float(x)) if x != LOG10_ZERO else "-99"


def write_arpa(path, model, tokens, header=None):
    """Write the fitted ``KneserNeyLM`` ``model`` to ``path`` (gzip-compressed when it ends in ``.gz``).

    ``tokens``: the vocabulary's token strings by id; ``header``: plain data for the comment line.
    The bytes depend on the model only (sorted entries, no gzip timestamp).
    """
    grams = arpa_ngrams(model)
    words = [arpa_token(t) for t in tokens]
    out = io.StringIO()
    if header is not None:
        out.write(HEADER_PREFIX + json.dumps(header, sort_keys=True, ensure_ascii=False, separators=(",", ":")) + "\n")
    out.write("\\data\\\n")
    for k in range(1, model.order + 1):
        out.write(f"ngram {k}={len(grams[k][0])}\n")
    for k in range(1, model.order + 1):
        out.write(f"\n\\{k}-grams:\n")
        ids, logp, logb = grams[k]
        texts = [" ".join(words[i] for i in row) for row in ids.tolist()]
        out.writelines(f"{_number(p)}\t{text}\n" if math.isnan(b) else f"{_number(p)}\t{text}\t{_number(b)}\n"
                       for p, text, b in zip(logp.tolist(), texts, logb.tolist()))
    out.write("\n\\end\\\n")
    data = out.getvalue().encode("utf-8")
    with atomic_write(path, "wb") as f:
        if str(path).endswith(".gz"):
            with gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0) as gz:
                gz.write(data)
        else:
            f.write(data)


def read_arpa_header(path):
    """The ``# rnnlm-model`` header of an ARPA file (None without one), reading only the lines before ``\\data\\``."""
    path = require_file(path, what="ARPA model")
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            for line in f:
                if line.startswith(HEADER_PREFIX):
                    return json.loads(line[len(HEADER_PREFIX):])
                if line.strip() == "\\data\\":
                    return None
    except (OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"{path}: not a readable ARPA file ({err})") from None
    return None


def require_complete_arpa(path, block=1 << 20):
    """A user error unless the ARPA file ``path`` reads to its end: its last line is ``\\end\\`` (and a
    ``.gz`` passes gzip's own length and CRC checks). One pass at gzip's speed, parsing nothing: for a
    reader of the header alone (``read_arpa_header``), which would not notice a truncated file."""
    opener = gzip.open if str(path).endswith(".gz") else open
    tail = b""
    try:
        with opener(path, "rb") as f:
            while chunk := f.read(block):
                tail = (tail + chunk)[-64:]
    except (OSError, EOFError) as err:
        raise UserError(f"{path}: not a readable ARPA file ({err})") from None
    if tail.rstrip().splitlines()[-1:] != [b"\\end\\"]:
        raise UserError(f"{path}: not a complete ARPA file (it does not end with \\end\\: truncated?)")


def read_arpa(path):
    """``(header dict or None, {k: {word tuple: (log10 P, log10 β)}})`` of an ARPA file (``.gz`` too)."""
    path = require_file(path, what="ARPA model")
    opener = gzip.open if str(path).endswith(".gz") else open
    header, grams, counts, order = None, {}, {}, None
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                line = line.strip()
                if order is None:  # before the first section: header comments, \data\, counts
                    if line.startswith(HEADER_PREFIX):
                        header = json.loads(line[len(HEADER_PREFIX):])
                    elif line.startswith("ngram "):
                        k, count = line[len("ngram "):].split("=")
                        counts[int(k)] = int(count)
                    elif line.endswith("-grams:"):
                        order = int(line[1:-len("-grams:")])
                        grams[order] = {}
                    continue
                if not line:
                    continue
                if line.startswith("\\"):
                    if line == "\\end\\":
                        break
                    order = int(line[1:-len("-grams:")])
                    grams[order] = {}
                    continue
                fields = line.split()
                if len(fields) not in (order + 1, order + 2):
                    raise UserError(f"{path}:{number}: expected log10 P, {order} word(s) and a back-off weight")
                bow = float(fields[-1]) if len(fields) == order + 2 else 0.0
                grams[order][tuple(fields[1:order + 1])] = (float(fields[0]), bow)
    except (OSError, EOFError, UnicodeDecodeError, ValueError, json.JSONDecodeError) as err:
        raise UserError(f"{path}: not a readable ARPA file ({err})") from None
    if not grams or any(len(grams.get(k, ())) != c for k, c in counts.items()):
        raise UserError(f"{path}: not an ARPA file, or its n-gram counts differ from its \\data\\ section")
    return header, grams


class ArpaLM:
    """An ARPA model over a vocabulary's token ids: back-off scoring exactly as an ARPA reader does it.

    ``grams`` from :func:`read_arpa`; ``tokens``: the vocabulary by id (words of the file that the
    vocabulary lacks are ignored, tokens the file lacks get probability 0). The interface mirrors
    ``KneserNeyLM``'s where the mixture and the command line need it.
    """

    def __init__(self, grams, tokens, bos_id):
        self.order = max(grams)
        self.vocab_size = len(tokens)
        self.bos_id = bos_id
        self.num_ngrams = sum(len(g) for g in grams.values())
        index = {arpa_token(t): i for i, t in enumerate(tokens)}
        self.entries = {}       # ids tuple -> (log10 P, log10 β), every order
        self.unigram = np.full(self.vocab_size, -np.inf)   # log10 P(w)
        for k, table in grams.items():
            for words, value in table.items():
                ids = tuple(index.get(w) for w in words)
                if None not in ids:
                    self.entries[ids] = value
        for (w,), (logp, _) in ((ids, v) for ids, v in self.entries.items() if len(ids) == 1):
            self.unigram[w] = logp if logp > LOG10_ZERO else -np.inf  # -99 means "never": <s>
        continuations = {}      # history ids -> [(word id, log10 P), ...]
        for ids, (logp, _) in self.entries.items():
            if len(ids) > 1:
                continuations.setdefault(ids[:-1], []).append((ids[-1], logp))
        self.continuations = {h: (np.array([w for w, _ in pairs], dtype=np.int64), np.array([p for _, p in pairs]))
                              for h, pairs in continuations.items()}

    def context(self, history_ids):
        """The reader's state after ``history_ids`` (an item so far, starting with its <s>)."""
        return tuple(int(t) for t in history_ids)[-(self.order - 1):] if self.order > 1 else ()

    def log10_prob(self, history_ids, token_id):
        """log10 P(token | history) by back-off (``-inf`` for a token the file lacks)."""
        ctx, backoff = self.context(history_ids), 0.0
        for start in range(len(ctx) + 1):
            hist = ctx[start:]
            entry = self.entries.get(hist + (int(token_id),))
            if entry is not None:
                return backoff + entry[0]
            if hist in self.entries:
                backoff += self.entries[hist][1]
        return -math.inf

    def prob(self, history_ids, token_id):
        return 10.0 ** self.log10_prob(history_ids, token_id)

    def log10_distribution(self, history_ids):
        """log10 P(. | history) over the vocabulary: (V,) float64, built from the shortest history up."""
        ctx = self.context(history_ids)
        logp = self.unigram.copy()
        for start in range(len(ctx) - 1, -1, -1):
            hist = ctx[start:]
            if hist in self.entries:
                logp += self.entries[hist][1]
            if hist in self.continuations:
                words, values = self.continuations[hist]
                logp[words] = values
        return logp

    def distribution(self, history_ids):
        return 10.0 ** self.log10_distribution(history_ids)

    def target_log10_probs(self, split):
        """log10 P(target | history) of every target of ``split`` (an ``EncodedSplit``), in item order."""
        # Only the last order - 1 tokens matter: a long item (a stream) is not copied at every step.
        keep = self.order - 1
        return np.array([self.log10_prob(item[max(0, j - keep):j] if keep else (), item[j])
                         for item in (split.item(i).tolist() for i in range(len(split)))
                         for j in range(1, len(item))], dtype=np.float64)


def load_arpa(path, tokens, bos_id):
    """Read ``path`` into an :class:`ArpaLM` over ``tokens``; returns ``(model, header)``."""
    header, grams = read_arpa(path)
    return ArpaLM(grams, tokens, bos_id), header


def file_stem(path):
    """``ngram`` for ``models/names/ngram.arpa.gz``: the name without the ARPA suffixes."""
    name = Path(path).name
    for suffix in (".gz", ".arpa"):
        name = name[: -len(suffix)] if name.endswith(suffix) else name
    return name
