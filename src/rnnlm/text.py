"""Text normalization and tokenization for the two corpus kinds.

``names`` (char-level): one item per line; surrounding whitespace is stripped, optionally lowercased
and stripped of accents, and every character must belong to the allowed alphabet.

``news`` (word-level): the seed notebook's rules, kept exactly so results stay comparable:
lowercase, hyphens to spaces, remove punctuation except apostrophes and ampersands (so "don't" and
"at&t" survive), strip; then torchtext's ``basic_english`` tokenization, which on text normalized
like this only splits on whitespace and isolates apostrophes ("don't" -> don ' t). The word-level
tokenizer is built with the maintained ``tokenizers`` library (torchtext no longer loads with
current torch); tests check that its token stream equals the seed's rules.
"""

import re
import unicodedata

from tokenizers import pre_tokenizers

# Reasons a row is rejected; they are the keys of the ingest report's "dropped" counts.
EMPTY = "empty"
DISALLOWED_CHARS = "disallowed_characters"

_NEWS_PUNCTUATION = re.compile(r"[^'&\w\s]")


def strip_accents(text):
    """Decompose accented characters and drop the combining marks: "zoë" -> "zoe"."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def normalize_name(raw, alphabet, lowercase=True, strip_accents_=True):
    """Return ``(name, None)`` for a usable line or ``(None, reason)`` for a rejected one."""
    text = raw.strip()
    if lowercase:
        text = text.lower()
    if strip_accents_:
        text = strip_accents(text)
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


# basic_english on normalized text: split on whitespace, then isolate each apostrophe.
WORD_PRE_TOKENIZER = pre_tokenizers.Sequence(
    [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split("'", behavior="isolated")]
)


def tokenize(text, level):
    """Split one normalized item into token strings: characters or words."""
    if level == "char":
        return list(text)
    return [piece for piece, _ in WORD_PRE_TOKENIZER.pre_tokenize_str(text)]
