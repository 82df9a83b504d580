"""Any model file as one language model: score items, or step through next-token distributions.

Three kinds of file, told apart by their names:

* ``*.pt``: a neural checkpoint of any kind (``rnnlm.checkpoint``);
* ``*.arpa`` / ``*.arpa.gz``: the Kneser-Ney model as an ARPA file (``rnnlm.arpa``), whose header
  carries the vocabulary;
* ``*.json``: a mixture, plain data naming its component files (relative to the JSON's folder,
  neural checkpoints and ARPA files) and their weights::

      {"format": "rnnlm-mixture", "format_version": 2, "components": [
         {"file": "neural/lstm.pt", "weight": 0.31}, {"file": "neural/transformer.pt", "weight": 0.40},
         {"file": "ngram.arpa.gz", "weight": 0.29}], "kinds": ["lstm", "transformer"], "seed": 0}

Each loads into a :class:`LanguageModel` with one contract: ``vocab`` (with the corpus's
normalization rules), ``target_losses(split)`` (−log P of every target of an ``EncodedSplit``, in
item order, the targets every stage scores) and ``stepper()`` (an object with ``start``/``step``
for ``rnnlm.sampling.sample_ids``). Scoring reuses the stages' own functions (``token_losses``
through ``rnnlm.mixture``, the mixture's log-space formula), so a model file scores a split with
the loss its stage reported.
"""

import math
from pathlib import Path

import numpy as np
import torch

from .arpa import ArpaLM, file_stem, read_arpa, read_arpa_header, require_complete_arpa
from .checkpoint import load_checkpoint, read_checkpoint
from .errors import UserError
from .io import pipeline_hint, read_json, require_file
from .metrics_files import check_record, read_metrics
from .mixture import mixed_losses, neural_target_losses
from .sampling import ModelStepper
from .vocab import Vocabulary

MIXTURE_FORMAT = "rnnlm-mixture"
MIXTURE_VERSION = 2
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
        return neural_target_losses(self.model, split, self.vocab.pad_id)

    def stepper(self):
        return ModelStepper(self.model)

    def describe(self):
        training = self.payload["training"]
        run = training.get("run_id")
        return {"model": self.model.config.kind, "parameters": self.model.num_parameters(),
                "model_config": self.model.config.to_dict(),
                "trained_with": run.get("config") if isinstance(run, dict) else None,
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
        if split.stream:  # one long item: each target's history cut to what the model reads (not O(N^2))
            item, width = split.item(0).tolist(), self.arpa.order - 1
            return -np.array([self.arpa.log10_prob(item[max(0, j - width):j], item[j]) for j in range(1, len(item))],
                             dtype=np.float64) * LN10
        return -self.arpa.target_log10_probs(split) * LN10

    def stepper(self):
        return NgramStepper(self.arpa)

    def describe(self):
        return {"model": "ngram (interpolated modified Kneser-Ney, ARPA)", "order": self.arpa.order,
                "discounts": self.header.get("discounts"), "parameters": self.arpa.num_ngrams,
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
    """Σ_k λ_k · P_k of each row, as log-probabilities (float64), from the components' steppers."""

    def __init__(self, steppers, weights):
        self.steppers = steppers
        with np.errstate(divide="ignore"):
            self.log_weights = np.log(np.asarray(weights, dtype=np.float64)).tolist()

    def _mix(self, scores):
        # each stepper's scores are log-probabilities up to a constant per row: normalize, then mix
        logs = [w + torch.log_softmax(s.double(), dim=-1) for w, s in zip(self.log_weights, scores)]
        return torch.logsumexp(torch.stack(logs), dim=0)

    def start(self, ids, n):
        return self._mix([stepper.start(ids, n) for stepper in self.steppers])

    def step(self, tokens):
        return self._mix([stepper.step(tokens) for stepper in self.steppers])


class MixtureLM:
    kind = "mixture"

    def __init__(self, path, device=None):
        self.path = Path(path)
        self.spec = read_mixture_spec(path)
        self.weights = [float(c["weight"]) for c in self.spec["components"]]
        self.files = [mixture_component(path, c["file"]) for c in self.spec["components"]]
        self.components = [load_model(file, device) for file in self.files]
        self.vocab = self.components[0].vocab
        if any(c.vocab != self.vocab for c in self.components):
            raise UserError(f"{path}: its component models use different vocabularies")

    def target_losses(self, split):
        return mixed_losses(np.stack([c.target_losses(split) for c in self.components]), self.weights)

    def stepper(self):
        return MixtureStepper([c.stepper() for c in self.components], self.weights)

    def describe(self):
        names = [model_name(file) for file in self.files]
        return {"model": "mixture " + " + ".join(f"λ_{name}·P({name})" for name in names),
                "components": [{"file": str(file), "weight": w} for file, w in zip(self.files, self.weights)],
                "parameters": sum(c.describe()["parameters"] for c in self.components),
                "seed": self.spec.get("seed")}


def read_mixture_spec(path):
    """The content of a mixture file, checked: its format, version, components and weights."""
    spec = read_json(path, what="mixture model")
    if not isinstance(spec, dict) or spec.get("format") != MIXTURE_FORMAT:
        raise UserError(f"{path}: not an rnnlm mixture (expected \"format\": \"{MIXTURE_FORMAT}\")")
    if spec.get("format_version") != MIXTURE_VERSION:
        raise UserError(f"{path}: unsupported mixture format_version {spec.get('format_version')!r} "
                        f"(this rnnlm reads {MIXTURE_VERSION}; rebuild it with `dvc repro`)")
    components = spec.get("components")
    if not isinstance(components, list) or not components or not all(
            isinstance(c, dict) and isinstance(c.get("file"), str) for c in components):
        raise UserError(f"{path}: \"components\" must be a list of {{\"file\": ..., \"weight\": ...}}")
    weights = [c.get("weight") for c in components]
    if not all(isinstance(w, (int, float)) and not isinstance(w, bool) and w >= 0 for w in weights) \
            or not math.isclose(sum(weights), 1.0, abs_tol=1e-6):
        raise UserError(f"{path}: the weights must be numbers >= 0 that sum to 1, got {weights!r}")
    return spec


def mixture_component(path, name):
    """The file of one of a mixture's components, named relative to the mixture file: a neural checkpoint
    or an ARPA file (a mixture of mixtures is refused before it is read: one naming itself would never end)."""
    component = Path(path).parent / name
    if name.endswith(".json"):
        raise UserError(f"{path}: component {name}: a mixture's components are neural checkpoints and ARPA "
                        "files, not mixtures")
    return require_file(component, what=f"component model of mixture {path}:",
                        hint=pipeline_hint(component, MODEL_HINT), empty_ok=False)


def mixture_spec(paths, weights, out_path, **extra):
    """The mixture file's content: component paths relative to ``out_path``'s folder, their weights, ``extra``."""
    folder = Path(out_path).resolve().parent

    def relative(p):
        p = Path(p).resolve()
        try:
            return p.relative_to(folder).as_posix()
        except ValueError:
            return str(p)

    return {"format": MIXTURE_FORMAT, "format_version": MIXTURE_VERSION,
            "components": [{"file": relative(p), "weight": float(w)} for p, w in zip(paths, weights)], **extra}


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
    n-grams: an ARPA file's header, a checkpoint's vocabulary, a mixture's first component's."""
    path, loader = model_file(path, hint)
    if loader is NgramLM:
        vocab = arpa_vocabulary(path, read_arpa_header(path))
        require_complete_arpa(path)
        return vocab
    if loader is MixtureLM:
        return load_vocabulary(mixture_component(path, read_mixture_spec(path)["components"][0]["file"]))
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
    data = check_record(read_metrics(candidate), str(candidate))
    return {"file": str(candidate), "dev": data.get("dev"), "test": data.get("test")}
