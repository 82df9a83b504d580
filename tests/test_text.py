import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rnnlm.text import normalize_name, normalize_news, tokenize

ALPHABET = set("abcdefghijklmnopqrstuvwxyz")


# The seed notebook's rules, written out independently as the oracle: pandas' lower / replace,
# then torchtext's basic_english patterns (https://pytorch.org/text/0.18.0/data_utils.html).
def seed_normalize(text):
    text = text.lower().replace("-", " ")
    return re.sub(r"[^'\&\w\s]", "", text).strip()


_BASIC_ENGLISH = [(r"\'", " '  "), (r"\"", ""), (r"\.", " . "), (r"<br \/>", " "), (r",", " , "), (r"\(", " ( "),
                  (r"\)", " ) "), (r"\!", " ! "), (r"\?", " ? "), (r"\;", " "), (r"\:", " "), (r"\s+", " ")]


def basic_english(text):
    text = text.lower()
    for pattern, repl in _BASIC_ENGLISH:
        text = re.sub(pattern, repl, text)
    return text.split()


SENTENCES = [
    "Health experts said it is too early to predict whether demand would match up.",
    '"Until you have a dog you don\'t understand what could be eaten."',
    "AT&T's well-known CEO -- and his co-pilot -- won't (can't!) say; 3:30 p.m.",
    "Rock 'n' roll isn't dead: it's 100% alive, O'Brien says.",
    "Tabs\tand\nnewlines   and  émigrés café naïve",
    "snake_case and under_scores stay, as \\w keeps them",
]


@pytest.mark.parametrize("sentence", SENTENCES)
def test_news_tokens_equal_seed_rules(sentence):
    text, reason = normalize_news(sentence)
    assert reason is None
    assert tokenize(text, "word") == basic_english(seed_normalize(sentence))


def test_apostrophes_and_ampersands_survive():
    text, _ = normalize_news("Don't blame AT&T!")
    assert text == "don't blame at&t"
    assert tokenize(text, "word") == ["don", "'", "t", "blame", "at&t"]


@given(st.text(max_size=200))
def test_news_tokens_equal_seed_rules_on_any_text(text):
    normalized, reason = normalize_news(text)
    expected = basic_english(seed_normalize(text))
    if reason is None:
        assert tokenize(normalized, "word") == expected
    else:
        assert expected == []  # rejected as empty exactly when the seed's rules leave no token


def test_news_rejects_rows_left_empty():
    assert normalize_news("?!... --") == (None, "empty")


@pytest.mark.parametrize("raw, expected", [
    ("  Emma \r", ("emma", None)),
    ("ZOË", ("zoe", None)),
    ("José", ("jose", None)),
    ("", (None, "empty")),
    ("   ", (None, "empty")),
    ("mary-jane", (None, "disallowed_characters")),
    ("o'neil", (None, "disallowed_characters")),
    ("李", (None, "disallowed_characters")),
])
def test_normalize_name(raw, expected):
    assert normalize_name(raw, ALPHABET) == expected


def test_normalize_name_options():
    assert normalize_name("Émile", ALPHABET, lowercase=False) == (None, "disallowed_characters")
    assert normalize_name("émile", ALPHABET, strip_accents_=False) == (None, "disallowed_characters")
    assert normalize_name("mary-jane", ALPHABET | {"-"}) == ("mary-jane", None)


@given(st.text())
def test_normalize_name_keeps_only_alphabet_or_gives_reason(raw):
    name, reason = normalize_name(raw, ALPHABET)
    assert (name is None) != (reason is None)
    if name is not None:
        assert name and set(name) <= ALPHABET
