"""The top of ``params.yaml``: what the pipeline builds, ``corpora`` and the ``kinds`` each trains.

``dvc.yaml``'s ``foreach`` reads ``corpora``; the train, evaluate, generate and mixture stages of
a corpus read its own list ``kinds.<corpus>``, so a corpus trains only the kinds that earn their
place in its time budget.
"""

from typing import Annotated

from pydantic import Field, model_validator

from ..errors import UserError
from ..kinds import ModelKind
from .base import Section, rule

CorpusName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+$")]
KindList = Annotated[list[ModelKind], Field(min_length=1)]


class Pipeline(Section):
    """params.yaml's top-level mappings: each corpus's raw file and the model kinds it trains."""

    corpora: Annotated[dict[CorpusName, Annotated[str, Field(min_length=1)]],
                       Field(min_length=1)]    # corpus name -> its raw file, relative to the repository root
    kinds: dict[CorpusName, KindList]          # corpus name -> the model kinds trained on it

    @model_validator(mode="after")
    def _a_list_of_kinds_per_corpus(self):
        for corpus, kinds in self.kinds.items():
            rule(len(set(kinds)) == len(kinds), f"kinds.{corpus}", f"lists a kind twice: {kinds}")
        missing, extra = sorted(set(self.corpora) - set(self.kinds)), sorted(set(self.kinds) - set(self.corpora))
        rule(not missing, "kinds", f"has no list for the corpus {', '.join(missing)} (one list per corpus)")
        rule(not extra, "kinds", f"lists kinds for {', '.join(extra)}, which is not in corpora")
        return self

    @classmethod
    def of(cls, params):
        """params.yaml's top-level ``corpora`` and ``kinds`` (a parsed mapping), validated."""
        return cls.from_params({key: params[key] for key in cls.model_fields if key in params}, "")

    def kinds_of(self, corpus):
        """The kinds trained on ``corpus``, in the order params.yaml lists them."""
        if corpus not in self.kinds:
            raise UserError(f"params: corpus {corpus!r} is not in corpora ({', '.join(self.corpora)})")
        return list(self.kinds[corpus])
