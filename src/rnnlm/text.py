"""Text normalization and tokenization for the corpus kinds (and the rules as plain data: ``Normalization``).

``names`` (char-level): one item per line; surrounding whitespace is stripped, optionally lowercased
and stripped of accents, and every character must belong to the allowed alphabet.

``news`` (word-level): the seed notebook's rules, kept exactly so results stay comparable:
lowercase, hyphens to spaces, remove punctuation except apostrophes and ampersands (so "don't" and
"at&t" survive), strip; then torchtext's ``basic_english`` tokenization, which on text normalized
like this only splits on whitespace and isolates apostrophes ("don't" -> don ' t). The word-level
tokenizer is built with the maintained ``tokenizers`` library (torchtext no longer loads with
current torch); tests check that its token stream equals the seed's rules.

``text`` (a stream, ``ingest.<corpus>.format: text``): one long text kept as it is, newlines and
blank lines included (``rnnlm.textstream``); nothing is rewritten and nothing is rejected.

Word level splits a line with one of two pre-tokenizers (``PRETOKENIZERS``, ``vocab.<corpus>.pretokenize``):
"words", basic_english's rule above (the default), or "whitespace", the whitespace-separated tokens as given,
for a corpus that ships tokenized (WikiText, PTB: "'s" is one of their tokens, not ' and s).
"""

import re
import unicodedata
from dataclasses import asdict, dataclass, fields

from tokenizers import pre_tokenizers

from .errors import UserError

# Reasons a row is rejected; they are the keys of the ingest report's "dropped" counts.
EMPTY = "empty"
DISALLOWED_CHARS = "disallowed_characters"

_NEWS_PUNCTUATION = re.compile(r"[^'&\w\s]")


def strip_accents(text):
    """Decompose accented characters and drop the combining marks: "zoë" -> "zoe"."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def clean_name(raw, lowercase=True, strip_accents_=True):
    """The name rules' rewriting of ``raw`` (strip, lowercase, accents), before any check."""
    text = raw.strip()
    if lowercase:
        text = text.lower()
    if strip_accents_:
        text = strip_accents(text)
    return text


def normalize_name(raw, alphabet, lowercase=True, strip_accents_=True):
    """Return ``(name, None)`` for a usable line or ``(None, reason)`` for a rejected one."""
    text = clean_name(raw, lowercase, strip_accents_)
    if not text:
        return None, EMPTY
    if any(ch not in alphabet for ch in text):
        return None, DISALLOWED_CHARS
    return text, None


def normalize_news(raw):
    """The seed's normalization of one news text; returns ``(text, None)`` or ``(None, reason)``."""
    text = raw.lower().replace("-", " ")
    text = _NEWS_PUNCTUATION.sub("", text)
    # Collapse runs of whitespace (tabs, newlines inside a field) so one item is one line.
    text = " ".join(text.split())
    if not text:
        return None, EMPTY
    return text, None


@dataclass(frozen=True)
class Normalization:
    """The rules ingest applies to one item's text, as plain data that travels with the vocabulary.

    A checkpoint or model file carries them (inside its vocabulary), so ``rnnlm score`` and
    ``rnnlm sample`` normalize and reject input exactly as the ingest stage did for the corpus.
    """

    normalize: str = "name"          # "name", "news" or "text" (see rnnlm.text)
    alphabet: str = ""               # name rule: allowed characters
    lowercase: bool = True           # name rule
    strip_accents: bool = True       # name rule

    @classmethod
    def from_config(cls, cfg):
        """The rules of an IngestConfig (the news and text rules take no settings)."""
        if cfg.normalize in ("news", "text"):
            return cls(cfg.normalize, "", False, False)
        return cls("name", cfg.alphabet, cfg.lowercase, cfg.strip_accents)

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, data, source="normalization"):
        try:
            rules = cls(**data)
        except TypeError as err:
            raise UserError(f"{source}: bad normalization rules ({err})") from None
        for field in fields(cls):  # every rule of the type its default has (a str alphabet, bool flags)
            if type(getattr(rules, field.name)) is not type(field.default):
                raise UserError(f"{source}: bad normalization rules ({field.name} is {getattr(rules, field.name)!r})")
        if rules.normalize not in ("name", "news", "text"):
            raise UserError(f"{source}: unknown normalization {rules.normalize!r}")
        return rules

    def apply(self, text):
        """``(normalized, None)`` or ``(None, (reason, detail))`` for one item's raw text."""
        if self.normalize == "text":  # a stream's text stays as it is: blank lines are part of it
            return text, None
        if self.normalize == "name":
            normalized, reason = normalize_name(text, self._allowed, self.lowercase, self.strip_accents)
        else:
            normalized, reason = normalize_news(text)
        if reason is None:
            return normalized, None
        return None, (reason, "nothing left after normalization" if reason == EMPTY
                      else "characters outside params ingest alphabet")

    def clean(self, text):
        """The text rewritten by the rules but never rejected (a prompt: unknown pieces get a warning)."""
        if self.normalize == "text":
            return text
        if self.normalize == "name":
            return clean_name(text, self.lowercase, self.strip_accents)
        return normalize_news(text)[0] or ""

    @property
    def _allowed(self):
        allowed = self.__dict__.get("_allowed_set")
        if allowed is None:  # a frozen dataclass: cache the set without a field
            allowed = frozenset(self.alphabet)
            object.__setattr__(self, "_allowed_set", allowed)
        return allowed


# basic_english on normalized text: split on whitespace, then isolate each apostrophe.
WORD_PRE_TOKENIZER = pre_tokenizers.Sequence(
    [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split("'", behavior="isolated")]
)
# A text shipped as tokens (WikiText, PTB): its whitespace-separated tokens as given ("'s" stays one token).
WHITESPACE_PRE_TOKENIZER = pre_tokenizers.WhitespaceSplit()
# How word level splits a line (``vocab.<corpus>.pretokenize``): "words", the basic_english rule above (the
# default, news's), or "whitespace", the tokens as given (the default of a folder of predefined splits).
PRETOKENIZERS = {"words": WORD_PRE_TOKENIZER, "whitespace": WHITESPACE_PRE_TOKENIZER}
DEFAULT_PRETOKENIZE = "words"


def word_pre_tokenizer(pretokenize=DEFAULT_PRETOKENIZE):
    """The ``tokenizers`` pre-tokenizer of a word-level ``pretokenize`` setting ("words" or "whitespace")."""
    if pretokenize not in PRETOKENIZERS:
        raise UserError(f"pretokenize must be one of {', '.join(PRETOKENIZERS)}, got {pretokenize!r}")
    return PRETOKENIZERS[pretokenize]


def tokenize(text, level, pretokenize=DEFAULT_PRETOKENIZE):
    """Split one normalized item into token strings: characters or words (split as ``pretokenize`` says)."""
    if level == "char":
        return list(text)
    return [piece for piece, _ in word_pre_tokenizer(pretokenize).pre_tokenize_str(text)]


NEWLINE = "\n"  # a stream's newline: a character, and at word level a token (word_language_model's <eos>)


def stream_tokens(text, level, pretokenize=DEFAULT_PRETOKENIZE):
    """The token strings of a piece of a stream (``rnnlm.textstream``) at char or word level: its
    characters, or each line's words followed by a newline token wherever the text has a newline."""
    if level == "char":
        return list(text)
    tokens = []
    lines = text.split(NEWLINE)
    for i, line in enumerate(lines):
        tokens += tokenize(line, "word", pretokenize)
        if i < len(lines) - 1:
            tokens.append(NEWLINE)
    return tokens
