"""``ingest.<corpus>``: how the raw file is read and normalized (the ingest stage)."""

from typing import Annotated, Literal, Optional

from pydantic import Field, model_validator

from .base import Section, rule


class IngestConfig(Section):
    # "lines": one item per line; "jsonl": one JSON object per line; "text": one long text read as one
    # stream, newlines included (a file, or a folder of split files: train.txt, dev.txt or valid.txt, test.txt;
    # WikiText's wiki.{train,valid,test}.tokens or .raw; PTB's ptb.{train,valid,test}.txt: docs/streams.md)
    format: Literal["lines", "jsonl", "text"]
    # "name": char-level rules; "news": the seed's word-level rules; "text": the text as it is (format: text)
    normalize: Literal["name", "news", "text"]
    # The name rules (normalize: name; the news rules take no settings, so news leaves them out):
    alphabet: Optional[Annotated[str, Field(min_length=1)]] = None  # name rows with other characters are rejected
    lowercase: Optional[bool] = None        # lowercase before checking the alphabet
    strip_accents: Optional[bool] = None    # "zoë" -> "zoe" before checking the alphabet
    # The jsonl fields (a lines file leaves them out):
    text_fields: Optional[Annotated[list[str], Field(min_length=1)]] = None  # joined by a space
    category_field: Optional[str] = None    # kept for stratified splitting; None: no category
    # Drop an item whose normalized text an earlier row already had (reason "duplicate"), so no dev
    # or test item also occurs in train; false keeps them (the seed notebook's split). A stream
    # (format: text) is split into contiguous stretches, not items: it must be false there.
    dedupe: bool
    bad_rows_fatal: bool                    # stop at the first rejected row instead of counting it

    @model_validator(mode="after")
    def _rules_of_the_mode(self):
        if self.normalize == "name":
            for key in ("alphabet", "lowercase", "strip_accents"):
                rule(getattr(self, key) is not None, key, "must be set for normalize: name")
        rule(self.format != "jsonl" or self.text_fields is not None, "text_fields", "must be set for format: jsonl")
        rule((self.format == "text") == (self.normalize == "text"), "normalize",
             f"must be text exactly when format is text (a stream keeps its text as it is), got {self.normalize}")
        rule(self.format != "text" or not self.dedupe, "dedupe",
             "must be false for format: text (a stream keeps every line, repeated or blank, and is cut into "
             "contiguous stretches)")
        return self
