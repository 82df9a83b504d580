"""``ngram``: the Kneser-Ney baseline (the ngram stage; the mixture stage fits the same model)."""

from .base import Fraction, Positive, Section


class NgramConfig(Section):
    order: Positive                 # n of the n-gram model
    discount: Fraction              # absolute discount of interpolated Kneser-Ney
