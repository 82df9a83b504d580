"""``split.<corpus>``: the train/dev/test split (the split stage).

A folder of predefined split files (a stream corpus, docs/streams.md) is split as given: its section may be
empty (``split.<corpus>: {}``), since the fractions, the seed and stratify do not apply to it. Every other
corpus states them, and the split stage says so in one line when they are missing.
"""

import math
from typing import Optional

from pydantic import model_validator

from ..errors import UserError
from .base import Fraction, Section, rule

FRACTIONS = ("train", "dev", "test")


class SplitConfig(Section):
    seed: Optional[int] = None                 # the seed notebook's random.seed(123)
    train: Optional[Fraction] = None
    dev: Optional[Fraction] = None
    test: Optional[Fraction] = None
    stratify: Optional[bool] = None            # keep the category mix in every split (needs a category field)

    @model_validator(mode="after")
    def _sums_to_one(self):
        given = [key for key in FRACTIONS if getattr(self, key) is not None]
        if not given:  # predefined split files only (require_fractions)
            return self
        rule(len(given) == len(FRACTIONS), "train",
             f"dev and test must be given together (got only {', '.join(given)})")
        total = self.train + self.dev + self.test
        rule(math.isclose(total, 1.0, abs_tol=1e-9), "train", f"+ dev + test must sum to 1, got {total:g}")
        return self

    @property
    def has_fractions(self):
        return self.train is not None

    def require_fractions(self, where, stream=False):
        """These settings if they can split rows (or with ``stream``, cut one text: the fractions alone);
        else a one-line UserError naming ``where``."""
        keys = FRACTIONS if stream else ("seed", *FRACTIONS, "stratify")
        missing = [key for key in keys if getattr(self, key) is None]
        if missing:
            raise UserError(f"params: {where} needs {', '.join(missing)} (only a folder of predefined split "
                            "files may leave them out: it is split as given)")
        return self
