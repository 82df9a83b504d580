"""Checkpoints: a state_dict plus plain data (model config, vocabulary, training record).

They are saved atomically and loaded only with ``torch.load(..., weights_only=True)``, which
refuses any pickle that would construct arbitrary objects or run code: a checkpoint from
someone else cannot execute anything on load.
"""

import dataclasses
import pickle
import types
import typing
import zipfile

import torch

from .errors import UserError
from .io import atomic_write, require_file
from .models import ModelConfig, build_model
from .vocab import Vocabulary

FORMAT_VERSION = 1


def _on_cpu(obj):
    """``obj`` with every tensor moved to the CPU: a checkpoint from a GPU run loads anywhere.

    CPU tensors are returned as they are, so a CPU run's checkpoint is byte-for-byte unchanged.
    """
    if isinstance(obj, torch.Tensor):
        return obj if obj.device.type == "cpu" else obj.detach().cpu()
    if isinstance(obj, dict):
        moved = type(obj)((k, _on_cpu(v)) for k, v in obj.items())
        if hasattr(obj, "_metadata"):  # a state_dict's module versions, read back by load_state_dict
            moved._metadata = obj._metadata
        return moved
    if isinstance(obj, (list, tuple)):
        return type(obj)(_on_cpu(v) for v in obj)
    return obj


def save_checkpoint(path, model, vocab, training, optimizer=None, rng_state=None, resume_state=None):
    """Write ``{"model", "model_config", "vocab", "training", ...}``; optimizer/RNG state to resume.

    ``resume_state``: more plain data (tensors, numbers, dicts) a resumed run needs, such as the
    scheduler's state and the best weights so far, stored as top-level keys beside those.
    """
    payload = {
        "format_version": FORMAT_VERSION,
        "model": _on_cpu(model.state_dict()),
        "model_config": model.config.to_dict(),
        "vocab": vocab.to_dict(),
        "training": training,
    }
    if optimizer is not None:
        payload["optimizer"] = _on_cpu(optimizer.state_dict())
    if rng_state is not None:
        payload["rng_state"] = rng_state
    payload.update(_on_cpu(resume_state or {}))
    with atomic_write(path, "wb") as f:
        torch.save(payload, f)


def _check_archive(path):
    """A user error unless ``path`` is a whole zip archive, as torch.save writes, whose members match
    their CRC-32 (torch.load reads the weights without checking it: a corrupt file would load silently).
    torch.load's own message for a file that is no archive talks of pickles and weights_only, which
    would send the user the wrong way."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError):
        raise UserError(f"{path}: not a readable checkpoint (not the zip archive torch.save writes, "
                        "or a truncated one)") from None
    if bad is not None:
        raise UserError(f"{path}: corrupt checkpoint ({bad} fails its CRC-32 check)")


def read_checkpoint(path):
    """The raw checkpoint dict, loaded safely; a user error if it is missing, unsafe or malformed."""
    path = require_file(path, what="checkpoint", empty_ok=False)
    _check_archive(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else "unsupported content"
        raise UserError(
            f"{path}: refused to load: not a plain checkpoint (weights_only load failed: {first})"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise UserError(f"{path}: not a readable checkpoint, corrupt ({str(err).strip().splitlines()[0]})") from None
    if not isinstance(payload, dict) or payload.get("format_version") != FORMAT_VERSION:
        raise UserError(f"{path}: not an rnnlm checkpoint (format_version {FORMAT_VERSION} expected)")
    for key in ("model", "model_config", "vocab", "training"):
        if key not in payload:
            raise UserError(f"{path}: checkpoint lacks {key!r}")
        if not isinstance(payload[key], dict):
            raise UserError(f"{path}: corrupt checkpoint ({key!r} is a {type(payload[key]).__name__}, not a mapping)")
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in payload["model"].items()):
        raise UserError(f"{path}: corrupt checkpoint ('model' must map parameter names to tensors)")
    for key in ("model_config", "vocab", "training"):
        if not _plain(payload[key]):
            raise UserError(f"{path}: corrupt checkpoint ({key!r} must be plain data: mappings, lists, "
                            "strings, numbers)")
    return payload


def _plain(obj):
    """Whether ``obj`` is plain data as JSON holds it (what a checkpoint's config, vocabulary and record are)."""
    if isinstance(obj, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return all(_plain(v) for v in obj)
    return obj is None or isinstance(obj, (str, int, float, bool))


def _is_a(value, annotation):
    """Whether ``value`` fits a ``ModelConfig`` field's type (an int is a float too, a bool is no int; a
    bare ``list`` is the adaptive cut-offs' list of ints)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):  # Optional[list], int | None
        return any(_is_a(value, arg) for arg in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is list:
        return isinstance(value, list) and all(_is_a(v, int) for v in value)
    if origin is not None:  # list[int], dict[str, int]: the container's type, its items as the model checks them
        return isinstance(value, origin)
    return isinstance(value, annotation)


def model_config_from(data, path):
    """The checkpoint's model config as a ``ModelConfig``, every field of the type it declares: a
    config of wrong types would build a model that fails later, deep inside torch."""
    try:
        config = ModelConfig(**data)
    except TypeError as err:
        raise UserError(f"{path}: bad model config ({err})") from None
    for field in dataclasses.fields(ModelConfig):
        value = getattr(config, field.name)
        if not _is_a(value, field.type):
            raise UserError(f"{path}: bad model config ({field.name} is {value!r})")
    return config


def load_checkpoint(path, expect_vocab=None):
    """Return ``(model, vocab, payload)`` in eval mode, checking vocabulary and weights agree.

    With ``expect_vocab`` (the pipeline's current vocabulary), a checkpoint trained on another one
    is refused: its token ids would mean other tokens.
    """
    payload = read_checkpoint(path)
    vocab = Vocabulary.from_dict(payload["vocab"], source=f"{path} (vocabulary)")
    if expect_vocab is not None and vocab != expect_vocab:
        raise UserError(f"{path} was trained with another vocabulary than the current one; rerun `dvc repro`")
    config = model_config_from(payload["model_config"], path)
    if config.vocab_size != len(vocab):
        raise UserError(
            f"{path}: vocabulary has {len(vocab)} tokens but the model was built for {config.vocab_size}"
        )
    model = build_model(config)
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as err:
        lines = str(err).strip().splitlines()  # "Error(s) in loading state_dict for X:", then one line per problem
        detail = lines[1].strip() if len(lines) > 1 else lines[0]
        raise UserError(f"{path}: weights do not match the model config "
                        f"({detail if len(detail) <= 300 else detail[:300] + '...'})") from None
    model.eval()
    return model, vocab, payload
