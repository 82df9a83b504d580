"""``mixture.<corpus>``: which trained kinds the mixture stage mixes with the n-gram."""

from typing import Annotated

from pydantic import Field, field_validator

from ..kinds import ModelKind
from .base import Section, rule


class MixtureConfig(Section):
    # the trained kind, or list of kinds, mixed with the n-gram model (row "lstm+transformer+ngram")
    model: Annotated[list[ModelKind], Field(min_length=1)]

    @field_validator("model", mode="before")
    @classmethod
    def _one_kind_is_a_list_of_one(cls, model):
        return [model] if isinstance(model, str) else model

    @field_validator("model")
    @classmethod
    def _distinct(cls, model):
        rule(len(set(model)) == len(model), "must not repeat a kind,", f"got {model}")
        return model

    @property
    def kinds(self):
        """The mixed kinds, in the order given."""
        return list(self.model)


def mixture_name(kinds):
    """The report's and metrics file's name of ``kinds`` mixed with the n-gram model: ``lstm+ngram``,
    ``lstm+transformer+ngram``."""
    return "+".join([kinds] if isinstance(kinds, str) else kinds) + "+ngram"
