"""What every params section shares: typed, validated sections and one-line error messages.

``params.yaml`` is the single source of truth, defaults included: the section models have none, so
a key missing from the file is an error, not a silent fallback (a key that may be ``null``, "off",
is stated as ``null`` there). A stage turns its section into one of these with ``from_params``
before doing any work; every constraint sits in a field's type (``Literal`` for choices,
``Field(gt=0)`` for ranges, strict types so ``"96"`` is not an int), validators only check rules
that span fields. Each problem becomes one line naming the dotted key and the bad value::

    params: train.names.hidden_size must be > 0, got 0

The library itself never opens ``params.yaml``.
"""

import typing
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from ..errors import UserError

Device = Literal["auto", "cpu", "cuda", "mps"]  # resolved to a torch device by rnnlm.devices
Precision = Literal["fp32", "bf16"]
DEVICES = typing.get_args(Device)
PRECISIONS = typing.get_args(Precision)

Positive = Annotated[int, Field(gt=0)]
Fraction = Annotated[float, Field(gt=0, lt=1)]          # strictly between 0 and 1
Share = Annotated[float, Field(ge=0, lt=1)]             # in [0, 1)


def _bounds(field):
    """The range constraints of a field, its nested ``Optional[Annotated[...]]`` included."""
    found, todo = {}, [*field.metadata, field.annotation]
    while todo:
        item = todo.pop()
        for name in ("gt", "ge", "lt", "le"):
            if getattr(item, name, None) is not None:
                found[name] = getattr(item, name)
        # Annotated's metadata holds a pydantic FieldInfo, whose own metadata holds the bounds
        todo += [*getattr(item, "__metadata__", ()), *getattr(item, "metadata", ()), *typing.get_args(item)]
    return found


def _range_text(bounds):
    low = ("(", bounds["gt"]) if "gt" in bounds else ("[", bounds["ge"]) if "ge" in bounds else None
    high = (")", bounds["lt"]) if "lt" in bounds else ("]", bounds["le"]) if "le" in bounds else None
    if low and high:
        return f"must be in {low[0]}{low[1]:g}, {high[1]:g}{high[0]}"
    if low:
        return f"must be {'>' if low[0] == '(' else '>='} {low[1]:g}"
    return f"must be {'<' if high[0] == ')' else '<='} {high[1]:g}"


TYPE_NAMES = {"int_type": "int", "float_type": "float", "bool_type": "bool", "string_type": "str",
              "list_type": "list", "dict_type": "a mapping"}


def _problem(err, where, cls):
    """One line for one pydantic error: the dotted key, what it must be, the bad value."""
    loc, kind, ctx = [str(p) for p in err["loc"]], err["type"], err.get("ctx", {})
    field = cls.model_fields.get(loc[0]) if loc and cls is not None else None
    key = ".".join([where, *loc]) if where else ".".join(loc)
    if kind == "value_error":       # a validator's rule: its message starts with the key when loc is empty
        return f"{key}{' ' if loc else '.'}{ctx['error']}" if key else str(ctx["error"])
    if kind == "missing":
        return f"{key} is missing (params.yaml states every key; null where it may be off)"
    if kind == "extra_forbidden":
        known = f" (known keys: {', '.join(cls.model_fields)})" if cls is not None and len(loc) == 1 else ""
        return f"unknown key {key}{known}"
    if loc and loc[-1] == "[key]":  # a mapping's key, e.g. a kind under overrides
        key = ".".join([where, *loc[:-2]]) if where else ".".join(loc[:-2])
        if "expected" not in ctx:   # a key of the wrong form, e.g. a corpus name with a space
            return f"{key} has a bad key {err['input']!r}: {err['msg'][0].lower()}{err['msg'][1:]}"
        return f"{key} names an unknown key {err['input']!r} (known: {ctx['expected'].replace(chr(39), '')})"
    if kind == "literal_error":
        text = f"must be one of {ctx['expected'].replace(chr(39), '').replace(' or ', ', ')}"
    elif kind in TYPE_NAMES:
        text = f"must be {TYPE_NAMES[kind]}"
    elif kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        text = _range_text(_bounds(field) if field is not None and len(loc) == 1 else ctx)
    elif kind in ("too_short", "string_too_short"):
        text = "must not be empty"
    else:
        text = err["msg"]
    nullable = field is not None and len(loc) == 1 and type(None) in typing.get_args(field.annotation)
    return f"{key} {text}{' or null' if nullable else ''}, got {err['input']!r}"


def _raise_problems(err, where, cls=None, prefix="params: "):
    raise UserError("\n".join(prefix + _problem(e, where, cls) for e in err.errors())) from None


def check_value(annotation, value, name):
    """``value`` checked against a schema type (e.g. ``rnnlm.schema.generate.Temperature``) outside
    params.yaml: a command-line option called ``name``. Returns the validated value; a bad one is a
    ``UserError``."""
    try:
        return TypeAdapter(annotation, config=ConfigDict(strict=True)).validate_python(value)
    except ValidationError as err:
        _raise_problems(err, name, prefix="")


class Section(BaseModel):
    """A params section: unknown keys, wrong types and impossible values are rejected."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    @classmethod
    def from_params(cls, data, where):
        if not isinstance(data, dict):
            raise UserError(f"params: {where} must be a mapping, got {type(data).__name__}")
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            _raise_problems(err, where, cls)

    def updated(self, changes, where=None):
        """These settings with ``changes`` applied, validated as the section ``where``."""
        return type(self).from_params(self.model_dump() | dict(changes), where or type(self).__name__)


def rule(ok, key, text):
    """A rule spanning fields (a model validator): the message names ``key`` first."""
    if not ok:
        raise ValueError(f"{key} {text}")

