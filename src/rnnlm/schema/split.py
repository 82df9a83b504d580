"""``split.<corpus>``: the train/dev/test split (the split stage)."""

import math

from pydantic import model_validator

from .base import Fraction, Section, rule


class SplitConfig(Section):
    seed: int                       # the seed notebook's random.seed(123)
    train: Fraction
    dev: Fraction
    test: Fraction
    stratify: bool                  # keep the category mix in every split (needs a category field)

    @model_validator(mode="after")
    def _sums_to_one(self):
        total = self.train + self.dev + self.test
        rule(math.isclose(total, 1.0, abs_tol=1e-9), "train", f"+ dev + test must sum to 1, got {total:g}")
        return self
