"""``ngram.<corpus>``: the modified Kneser-Ney baseline (the ngram stage; the mixture stage refits the same model)."""

from pydantic import model_validator

from .base import Positive, Section, rule


class NgramConfig(Section):
    """The modified Kneser-Ney baseline of one corpus: the orders among which dev chooses (rnnlm.ngram)."""

    min_order: Positive             # the smallest n tried
    max_order: Positive             # the largest n tried: the counts are fit once for it

    @model_validator(mode="after")
    def _range(self):
        rule(self.min_order <= self.max_order, "min_order",
             f"must be <= max_order, got {self.min_order} > {self.max_order}")
        return self
