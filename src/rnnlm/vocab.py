"""The vocabulary: fit on the training split only, stored as JSON, validated on load.

Ids 0-3 are the special tokens, then the corpus tokens by descending training frequency (ties in
lexical order, so the same training split always gives the same ids). Items are encoded as
``<s> t1 ... tn </s>``; a model reads ``<s> t1 ... tn`` and predicts ``t1 ... tn </s>``.

Three levels: ``char``, ``word`` and ``bpe`` (byte-level BPE subwords, see ``bpe.py``). A BPE
vocabulary's tokens are its tokenizer's, in the tokenizer's id order, and the vocabulary JSON
carries the tokenizer itself (the library's JSON under ``"tokenizer"``): a checkpoint stores the
vocabulary as plain data, so it can encode prompts and decode samples with no other file.

A **stream vocabulary** (``stream``, saved as ``"stream": true``) is fit on one long text
(``rnnlm.textstream``): a newline is a token (a character, or at word level the token ``"\n"`` after
each line's words, word_language_model's ``<eos>``), a text is encoded ``<s> t1 ... tn`` with no
``</s>`` (the text goes on), and a model file holding it is read as a stream: ``rnnlm score`` reads a
whole file as one text, and sampling never stops at ``</s>``.

At word level ``pretokenize`` says how a line splits into words (``rnnlm.text.PRETOKENIZERS``): "words"
(basic_english: apostrophes isolated, the default) or "whitespace" (a text shipped as tokens, WikiText or PTB:
its tokens as given). The JSON states it only when it is not the default (``"pretokenize": "whitespace"``).

A corpus may hold the token ``<unk>`` itself (WikiText and PTB replaced their rare words by it): it IS the
vocabulary's ``<unk>`` (the same id, never a type of its own), but it is no word unseen in train.
``own_unk_count`` counts those tokens, ``oov_counts`` splits a split's ``<unk>`` targets into the two, and
``unknown_tokens``/``unknown_chars`` leave the corpus's own ``<unk>`` out.
"""

from collections import Counter

from tokenizers import Tokenizer
from tokenizers.models import WordLevel

from . import bpe
from .errors import UserError
from .io import read_json, write_json
from .text import DEFAULT_PRETOKENIZE, NEWLINE, PRETOKENIZERS, Normalization, stream_tokens, tokenize, word_pre_tokenizer

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<s>", "</s>"
SPECIALS = (PAD, UNK, BOS, EOS)
LEVELS = ("char", "word", "bpe")
FORMAT_VERSION = 1


class Vocabulary:
    """Tokens by id, their level, and (``normalization``) the ingest rules of the corpus they were fit on.

    The rules let a vocabulary alone turn raw user text into items as the pipeline saw them
    (``rnnlm score``/``sample``); a vocabulary built without them (None) takes text as it is.
    """

    def __init__(self, tokens, level, tokenizer=None, normalization=None, stream=False, pretokenize=None):
        if level not in LEVELS:
            raise UserError(f"vocabulary level must be one of {LEVELS}, got {level!r}")
        pretokenize = pretokenize or DEFAULT_PRETOKENIZE
        if pretokenize not in PRETOKENIZERS:
            raise UserError(f"vocabulary pretokenize must be one of {', '.join(PRETOKENIZERS)}, got {pretokenize!r}")
        # word level only: char and bpe split text their own way
        self.pretokenize = pretokenize if level == "word" else DEFAULT_PRETOKENIZE
        tokens = list(tokens)
        if tuple(tokens[: len(SPECIALS)]) != SPECIALS:
            raise UserError(f"vocabulary must start with the special tokens {list(SPECIALS)}")
        if len(set(tokens)) != len(tokens):
            raise UserError("vocabulary has duplicate tokens")
        self.tokens = tokens
        self.level = level
        self.index = {tok: i for i, tok in enumerate(tokens)}
        self.pad_id, self.unk_id, self.bos_id, self.eos_id = (self.index[t] for t in SPECIALS)
        self._word_tokenizer = None
        self._bpe_tokenizer = tokenizer
        self.normalization = normalization
        self.stream = bool(stream)  # fit on one long text: rnnlm.textstream
        if level == "bpe":
            if tokenizer is None:
                raise UserError("a bpe vocabulary needs its tokenizer")
            if bpe.vocab_tokens(tokenizer) != tokens:
                raise UserError("the bpe tokenizer's tokens differ from the vocabulary's")

    def __len__(self):
        return len(self.tokens)

    def __eq__(self, other):
        return isinstance(other, Vocabulary) and self.to_dict() == other.to_dict()

    # --- building and (de)serialization -------------------------------------------------------

    @classmethod
    def build(cls, items, level, max_size=None, min_freq=1, vocab_size=None, normalization=None, stream=False,
              pretokenize=None):
        """Fit on training items: keep tokens seen ``min_freq`` times, at most ``max_size`` in all.

        For ``bpe``, ``vocab_size`` (specials included) bounds the merges instead, and a pair must
        occur ``min_freq`` times to be merged. With ``stream``, ``items`` are consecutive pieces of one
        text cut where no unit spans a cut (``rnnlm.textstream.line_blocks``), newlines included.
        """
        if level == "bpe":
            if vocab_size is None:
                raise UserError("a bpe vocabulary needs vocab_size")
            tokenizer = bpe.train_bpe(items, vocab_size, SPECIALS, min_freq, prefix_space=not stream)
            return cls(bpe.vocab_tokens(tokenizer), level, tokenizer, normalization, stream)
        split = stream_tokens if stream else tokenize
        words = pretokenize or DEFAULT_PRETOKENIZE
        counts = Counter(tok for item in items for tok in split(item, level, words))
        ranked = sorted(
            (tok for tok, n in counts.items() if n >= min_freq and tok not in SPECIALS),
            key=lambda tok: (-counts[tok], tok),
        )
        if max_size is not None:
            ranked = ranked[: max(0, max_size - len(SPECIALS))]
        return cls(list(SPECIALS) + ranked, level, normalization=normalization, stream=stream, pretokenize=words)

    def to_dict(self):
        data = {"format_version": FORMAT_VERSION, "level": self.level, "tokens": self.tokens}
        if self.level == "bpe":
            data["tokenizer"] = bpe.tokenizer_to_dict(self._bpe_tokenizer)
        if self.normalization is not None:
            data["normalization"] = self.normalization.to_dict()
        if self.stream:  # only then: an item vocabulary's JSON stays as it was
            data["stream"] = True
        if self.pretokenize != DEFAULT_PRETOKENIZE:  # likewise
            data["pretokenize"] = self.pretokenize
        return data

    @classmethod
    def from_dict(cls, data, source="vocabulary"):
        if not isinstance(data, dict) or not isinstance(data.get("tokens"), list):
            raise UserError(f"{source}: not a vocabulary (expected an object with a 'tokens' list)")
        if data.get("format_version") != FORMAT_VERSION:
            raise UserError(f"{source}: unsupported vocabulary format {data.get('format_version')!r}")
        if not all(isinstance(t, str) and t for t in data["tokens"]):
            raise UserError(f"{source}: every token must be a non-empty string")
        tokenizer = None
        if data.get("level") == "bpe":
            if not isinstance(data.get("tokenizer"), dict):
                raise UserError(f"{source}: a bpe vocabulary must carry its 'tokenizer' (rebuild it with `dvc repro`)")
            tokenizer = bpe.tokenizer_from_dict(data["tokenizer"], source=f"{source} (tokenizer)")
        normalization = None
        if data.get("normalization") is not None:
            normalization = Normalization.from_dict(data["normalization"], source=f"{source} (normalization)")
        if not isinstance(data.get("stream", False), bool):
            raise UserError(f"{source}: 'stream' must be true or false")
        if data.get("pretokenize", DEFAULT_PRETOKENIZE) not in PRETOKENIZERS:
            raise UserError(f"{source}: 'pretokenize' must be one of {', '.join(PRETOKENIZERS)}, "
                            f"got {data.get('pretokenize')!r}")
        try:
            return cls(data["tokens"], data.get("level"), tokenizer, normalization, data.get("stream", False),
                       data.get("pretokenize"))
        except UserError as err:
            raise UserError(f"{source}: {err}") from None

    def save(self, path):
        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path):
        return cls.from_dict(read_json(path, what="vocabulary"), source=str(path))

    # --- encoding -----------------------------------------------------------------------------

    def word_tokenizer(self):
        """A ``tokenizers`` word-level tokenizer over this vocabulary (fast, batched encoding)."""
        if self._word_tokenizer is None:
            tok = Tokenizer(WordLevel(vocab=self.index, unk_token=UNK))
            tok.pre_tokenizer = word_pre_tokenizer(self.pretokenize)
            self._word_tokenizer = tok
        return self._word_tokenizer

    def encode_many(self, items):
        """Encode normalized items to id lists, each wrapped in ``<s> ... </s>`` (for a stream
        vocabulary, a text read as a piece of stream: newlines are tokens)."""
        if self.stream:
            bodies = [self.stream_ids(item) for item in items]
        elif self.level in ("word", "bpe"):
            bodies = [enc.ids for enc in self._tokenizer().encode_batch(list(items), add_special_tokens=False)]
        else:
            bodies = [[self.index.get(ch, self.unk_id) for ch in item] for item in items]
        return [[self.bos_id, *body, self.eos_id] for body in bodies]

    def stream_ids(self, text):
        """The token ids of a piece of a stream, newlines included, without <s> or </s>."""
        if self.level == "char":
            return [self.index.get(ch, self.unk_id) for ch in text]
        if self.level == "bpe":
            return self._bpe_tokenizer.encode(text, add_special_tokens=False).ids
        lines = text.split(NEWLINE)  # the word tokenizer drops newlines: each line alone, then its newline
        newline = self.index.get(NEWLINE, self.unk_id)
        ids = []
        for i, encoding in enumerate(self.word_tokenizer().encode_batch(lines, add_special_tokens=False)):
            ids += encoding.ids
            if i < len(lines) - 1:
                ids.append(newline)
        return ids

    def _tokenizer(self):
        return self._bpe_tokenizer if self.level == "bpe" else self.word_tokenizer()

    def token_strings(self, item):
        """The tokens one normalized ``item`` is read as, as strings (without <s> and </s>): its
        characters, its words, or its BPE pieces; a piece the vocabulary lacks (read as <unk>) as written."""
        if self.level == "char":
            return list(item)
        if self.level == "bpe":
            return self._bpe_tokenizer.encode(item, add_special_tokens=False).tokens
        split = stream_tokens if self.stream else tokenize
        return split(item, "word", self.pretokenize)

    def unknown_tokens(self, item):
        """The pieces of one normalized ``item`` that encode as ``<unk>``: characters or words, in order."""
        if self.level == "char":
            return [ch for ch in item if ch not in self.index]
        enc = self._tokenizer().encode(item, add_special_tokens=False)
        return [item[start:end] for tok, (start, end) in zip(enc.ids, enc.offsets)
                if tok == self.unk_id and item[start:end] != UNK]  # the text's own <unk> is no unknown word

    def unknown_chars(self, items):
        """How many characters of ``items`` lie inside tokens that encode as ``<unk>``.

        At word level that is every character of an out-of-vocabulary word: the share of a split's
        characters the model only "predicts" as one cheap ``<unk>``.
        """
        items = list(items)
        if self.level == "char":
            return sum(ch not in self.index for item in items for ch in item)
        encodings = self._tokenizer().encode_batch(items, add_special_tokens=False)
        return sum(end - start for item, enc in zip(items, encodings)
                   for tok, (start, end) in zip(enc.ids, enc.offsets)
                   if tok == self.unk_id and item[start:end] != UNK)  # the text's own <unk>: not unknown

    def own_unk_count(self, items):
        """How many tokens of ``items`` (normalized items, or lines or pieces of a stream) are the text's own
        ``<unk>`` (module docstring): read as ``<unk>`` like a word unseen in train, but not unseen. At word
        level a token ``<unk>``; byte-level BPE matches the text ``<unk>`` as its special token too; at char
        level a character never is ``<unk>``."""
        if self.level == "char":
            return 0
        return sum(token == UNK for item in items for token in self.token_strings(item))

    def encode(self, item):
        return self.encode_many([item])[0]

    def decode(self, ids, strip_specials=True):
        """Token ids back to text: characters joined directly, words with spaces.

        Word tokenization split "don't" into don ' t; joining re-attaches the apostrophe.
        """
        if self.level == "bpe":
            # the tokenizer's decoder turns byte-level pieces back into text (no Ġ markers)
            keep = [i for i in ids if not strip_specials or i not in (self.pad_id, self.bos_id, self.eos_id)]
            return self._bpe_tokenizer.decode(keep, skip_special_tokens=False)
        toks = [self.tokens[i] for i in ids]
        if strip_specials:
            toks = [t for t in toks if t not in (PAD, BOS, EOS)]
        if self.level == "char":
            return "".join(toks)
        # basic_english split "don't" into don ' t: joining re-attaches the apostrophe; tokens kept as
        # given ("whitespace") join with spaces, as they were written
        glue = (lambda text: text.replace(" ' ", "'")) if self.pretokenize == "words" else (lambda text: text)
        if self.stream:  # a newline token ends a line: no space around it
            return "\n".join(glue(" ".join(line)) for line in _lines(toks))
        return glue(" ".join(toks))


def _lines(tokens):
    """Word tokens cut at newline tokens: ``[[w, ...], ...]``, one list per line."""
    lines = [[]]
    for token in tokens:
        if token == NEWLINE:
            lines.append([])
        else:
            lines[-1].append(token)
    return lines


def oov_counts(unknown, own_unk):
    """``(unseen, own)``: a split's ``<unk>`` targets (``unknown``, as evaluation counts them) split into the
    words unseen in train and the text's own ``<unk>`` tokens (``own_unk``, from ``own_unk_count``)."""
    return unknown - own_unk, own_unk


def with_own_unk(result, own_unk):
    """A split's metrics (``rnnlm.results.summarize``'s dict, with ``oov_rate`` and ``tokens``) with the
    text's own ``<unk>`` targets taken out of ``oov_rate`` and reported apart as ``own_unk_rate``; unchanged
    when the text has none (so a corpus without a literal ``<unk>`` keeps its metrics byte for byte)."""
    if not own_unk or "oov_rate" not in result:
        return result
    unknown = round(result["oov_rate"] * result["tokens"])
    unseen, own = oov_counts(unknown, own_unk)
    return result | {"oov_rate": unseen / result["tokens"], "own_unk_rate": own / result["tokens"]}
