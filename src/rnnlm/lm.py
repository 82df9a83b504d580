"""Any model file as one language model: score items, or step through next-token distributions.

Three kinds of file, told apart by their names:

* ``*.pt``: a neural checkpoint of any kind (``rnnlm.checkpoint``);
* ``*.arpa`` / ``*.arpa.gz``: the Kneser-Ney model as an ARPA file (``rnnlm.arpa``), whose header
  carries the vocabulary;
* ``*.json``: a mixture, plain data naming its two component files (relative to the JSON's
  folder) and λ::

      {"format": "rnnlm-mixture", "format_version": 1, "rnn": "lstm.pt", "ngram": "ngram.arpa.gz",
       "lambda": 0.61, "kind": "lstm", "seed": 0}

Each loads into a :class:`LanguageModel` with one contract: ``vocab`` (with the corpus's
normalization rules), ``target_losses(split)`` (−log P of every target of an ``EncodedSplit``, in
item order, the targets every stage scores) and ``stepper()`` (an object with ``start``/``step``
for ``rnnlm.sampling.sample_ids``). Scoring reuses the stages' own functions (``token_losses``
through ``rnnlm.mixture``, the mixture's log-space formula), so a model file scores a split with
the loss its stage reported.
"""

import json
import math
from pathlib import Path

import numpy as np
import torch

from .arpa import ArpaLM, file_stem, read_arpa, read_arpa_header, require_complete_arpa
from .checkpoint import load_checkpoint, read_checkpoint
from .errors import UserError
from .io import pipeline_hint, read_json, require_file
from .mixture import mixed_losses, rnn_target_losses
from .sampling import ModelStepper
from .vocab import Vocabulary

MIXTURE_FORMAT = "rnnlm-mixture"
MIXTURE_VERSION = 1
LN10 = math.log(10)
MODEL_FILES = "a .pt checkpoint, an .arpa/.arpa.gz n-gram or a mixture .json"
# What the pipeline writes, for the hint on a missing one (README, "Using the models").
PIPELINE_MODELS = "models/<corpus>/neural/<kind>.pt, models/<corpus>/ngram.arpa.gz, models/<corpus>/mixture.json"
MODEL_HINT = f"run `dvc repro` to build the pipeline's models ({PIPELINE_MODELS})"


class NeuralLM:
    kind = "neural"

    def __init__(self, path, device=None):
        self.path = Path(path)
        self.model, self.vocab, self.payload = load_checkpoint(path)
        if device is not None:
            self.model.to(device)

    def target_losses(self, split):
        return rnn_target_losses(self.model, split, self.vocab.pad_id)

    def stepper(self):
        return ModelStepper(self.model)

    def describe(self):
        training = self.payload["training"]
        run = training.get("run_id", {})
        return {"model": self.model.config.kind, "parameters": self.model.num_parameters(),
                "model_config": self.model.config.to_dict(), "trained_with": run.get("config"),
                "seed": training.get("seed"), "best_epoch": training.get("best_epoch"),
                "epochs_done": training.get("epochs_done"), "best_dev_loss": training.get("best_dev_loss")}


class NgramLM:
    kind = "ngram"

    def __init__(self, path):
        self.path = Path(path)
        header, grams = read_arpa(path)
        self.vocab = arpa_vocabulary(path, header)
        self.arpa = ArpaLM(grams, self.vocab.tokens, self.vocab.bos_id)
        self.header = header

    def target_losses(self, split):
        return -self.arpa.target_log10_probs(split) * LN10

    def stepper(self):
        return NgramStepper(self.arpa)

    def describe(self):
        return {"model": "ngram (interpolated Kneser-Ney, ARPA)", "order": self.arpa.order,
                "discount": self.header.get("discount"), "parameters": self.arpa.num_ngrams,
                "trained_with": {k: v for k, v in self.header.items() if k != "vocabulary"}}


def arpa_vocabulary(path, header):
    """The vocabulary in the header of an ARPA file written by rnnlm (``header``: its parsed header)."""
    if not isinstance(header, dict) or not isinstance(header.get("vocabulary"), dict):
        raise UserError(f"{path}: an ARPA file without rnnlm's vocabulary header (written by another tool?): "
                        "rnnlm reads the ARPA files of its ngram stage, which carry their vocabulary; "
                        "score this one with the tool that wrote it")
    return Vocabulary.from_dict(header["vocabulary"], source=f"{path} (vocabulary)")


class NgramStepper:
    """An ARPA model seen by the sampler: each row's history grows by the drawn token."""

    def __init__(self, arpa):
        self.arpa = arpa
        self.rows = []

    def _scores(self):
        cache = {}
        for row in self.rows:
            key = self.arpa.context(row)
            if key not in cache:
                cache[key] = self.arpa.log10_distribution(row) * LN10
        return torch.from_numpy(np.stack([cache[self.arpa.context(row)] for row in self.rows]))

    def start(self, ids, n):
        self.rows = [list(ids) for _ in range(n)]
        return self._scores()

    def step(self, tokens):
        for row, token in zip(self.rows, tokens.tolist()):
            row.append(token)
        return self._scores()


class MixtureStepper:
    """λ·P_rnn + (1 − λ)·P_ngram of each row, as log-probabilities (float64)."""

    def __init__(self, rnn, ngram, lam):
        self.rnn, self.ngram = rnn, ngram
        with np.errstate(divide="ignore"):
            self.logs = (math.log(lam) if lam > 0 else -math.inf, math.log1p(-lam) if lam < 1 else -math.inf)

    def _mix(self, logits, log_ngram):
        log_rnn = torch.log_softmax(logits.double(), dim=-1)
        return torch.logaddexp(self.logs[0] + log_rnn, self.logs[1] + log_ngram)

    def start(self, ids, n):
        return self._mix(self.rnn.start(ids, n), self.ngram.start(ids, n))

    def step(self, tokens):
        return self._mix(self.rnn.step(tokens), self.ngram.step(tokens))


class MixtureLM:
    kind = "mixture"

    def __init__(self, path, device=None):
        self.path = Path(path)
        self.spec = read_mixture_spec(path)
        self.lam = float(self.spec["lambda"])
        self.rnn = NeuralLM(self._component("rnn"), device)
        self.ngram = NgramLM(self._component("ngram"))
        if self.rnn.vocab != self.ngram.vocab:
            raise UserError(f"{path}: its recurrent model and n-gram model use different vocabularies")
        self.vocab = self.rnn.vocab

    def _component(self, key):
        return mixture_component(self.path, self.spec, key)

    def target_losses(self, split):
        return mixed_losses(self.rnn.target_losses(split), -self.ngram.target_losses(split), self.lam)

    def stepper(self):
        return MixtureStepper(self.rnn.stepper(), self.ngram.stepper(), self.lam)

    def describe(self):
        return {"model": f"mixture λ·P({self.spec.get('kind', 'rnn')}) + (1 − λ)·P(ngram)", "lambda": self.lam,
                "components": {"rnn": str(self._component("rnn")), "ngram": str(self._component("ngram"))},
                "parameters": self.rnn.model.num_parameters() + self.ngram.arpa.num_ngrams,
                "seed": self.spec.get("seed")}


def read_mixture_spec(path):
    """The content of a mixture file, checked: its format, version and λ."""
    spec = read_json(path, what="mixture model")
    if not isinstance(spec, dict) or spec.get("format") != MIXTURE_FORMAT:
        raise UserError(f"{path}: not an rnnlm mixture (expected \"format\": \"{MIXTURE_FORMAT}\")")
    if spec.get("format_version") != MIXTURE_VERSION:
        raise UserError(f"{path}: unsupported mixture format_version {spec.get('format_version')!r}")
    lam = spec.get("lambda")
    if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not 0 <= lam <= 1:
        raise UserError(f"{path}: \"lambda\" must be a number in [0, 1], got {lam!r}")
    return spec


def mixture_component(path, spec, key):
    """The file of a mixture's ``key`` model (``rnn`` or ``ngram``), named relative to the mixture file."""
    name = spec.get(key)
    if not isinstance(name, str):
        raise UserError(f"{path}: missing the path of its {key} model (\"{key}\")")
    component = Path(path).parent / name
    return require_file(component, what=f"{key} model of mixture {path}:", hint=pipeline_hint(component, MODEL_HINT),
                        empty_ok=False)


def mixture_spec(rnn_path, ngram_path, lam, out_path, **extra):
    """The mixture file's content: component paths relative to ``out_path``'s folder, λ, ``extra``."""
    folder = Path(out_path).resolve().parent

    def relative(p):
        p = Path(p).resolve()
        try:
            return p.relative_to(folder).as_posix()
        except ValueError:
            return str(p)

    return {"format": MIXTURE_FORMAT, "format_version": MIXTURE_VERSION, "rnn": relative(rnn_path),
            "ngram": relative(ngram_path), "lambda": float(lam), **extra}


_LOADERS = {".pt": ("checkpoint", NeuralLM), ".arpa": ("ARPA model", NgramLM), ".arpa.gz": ("ARPA model", NgramLM),
            ".json": ("mixture model", MixtureLM)}


def model_file(path, hint=MODEL_HINT):
    """``(path, loader class)`` of a model file, after the checks every command makes: a folder, an unknown
    suffix, a missing file (its error ends with ``hint``; None: no hint) and an empty file are errors.

    A command passes ``hint=pipeline_hint(path, MODEL_HINT)``, so that only the pipeline's own files
    get "run `dvc repro`".
    """
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path} is a folder, not a model file ({MODEL_FILES})")
    suffix = next((s for s in _LOADERS if path.name.endswith(s)), None)
    if suffix is None:
        raise UserError(f"{path}: not a model file (expected {MODEL_FILES})")
    what, loader = _LOADERS[suffix]
    return require_file(path, what=what, hint=hint, empty_ok=False), loader


def load_model(path, device=None, hint=MODEL_HINT):
    """The model in ``path``: a recurrent checkpoint, an ARPA n-gram or a mixture (by file name)."""
    path, loader = model_file(path, hint)
    return loader(path) if loader is NgramLM else loader(path, device)


def load_vocabulary(path, hint=MODEL_HINT):
    """The vocabulary (with its normalization rules) of any model file, without reading its weights or
    n-grams: an ARPA file's header, a checkpoint's vocabulary, a mixture's recurrent component's."""
    path, loader = model_file(path, hint)
    if loader is NgramLM:
        vocab = arpa_vocabulary(path, read_arpa_header(path))
        require_complete_arpa(path)
        return vocab
    if loader is MixtureLM:
        return load_vocabulary(mixture_component(path, read_mixture_spec(path), "rnn"))
    return Vocabulary.from_dict(read_checkpoint(path)["vocab"], source=f"{path} (vocabulary)")


def model_name(path):
    """The name the pipeline's metrics use for a model file: ``lstm``, ``ngram``, ``lstm+ngram``."""
    return file_stem(Path(path).name.removesuffix(".pt").removesuffix(".json"))


def recorded_metrics(path):
    """The metrics file of a pipeline model, if there is one: ``metrics/`` mirrors ``models/``
    (``models/<corpus>/neural/lstm.pt`` -> ``metrics/<corpus>/neural/lstm.json``)."""
    path = Path(path).resolve()
    parts = path.parts
    if "models" not in parts[:-1]:
        return None
    at = len(parts) - 1 - parts[::-1].index("models")  # the last "models" folder above the file
    candidate = Path(*parts[:at], "metrics", *parts[at + 1:-1], f"{model_name(path)}.json")
    if not candidate.is_file():
        return None
    data = json.loads(candidate.read_text(encoding="utf-8"))
    return {"file": str(candidate), "dev": data.get("dev"), "test": data.get("test")}
