"""The pipeline's own outputs, for the tests that run on them (README's order: set-up with `dvc repro`, then
the tests). Missing outputs fail such a test with one line naming README's set-up command: never a skip."""

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
CORPORA = sorted(PARAMS["corpora"])
KINDS = {corpus: list(PARAMS["kinds"][corpus]) for corpus in CORPORA}  # params.yaml's kinds.<corpus>


def setup_command():
    """README's set-up command: its first bash block that runs `dvc repro`."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```bash\n(.*?)^```", readme, flags=re.S | re.M)
    return next(block.strip() for block in blocks if "dvc repro" in block)


def model_files(corpus):
    return [*(f"models/{corpus}/neural/{kind}.pt" for kind in KINDS[corpus]), f"models/{corpus}/ngram.arpa.gz",
            f"models/{corpus}/mixture.json"]


def metrics_file(corpus, model):
    """The metrics file of a model, relative to the repository: a kind, ``ngram``, or the mixture (``mixture``,
    or its report name, ``lstm+transformer+ngram``)."""
    name = "mixture" if model == "mixture" or "+" in model else model if model == "ngram" else f"neural/{model}"
    return f"metrics/{corpus}/{name}.json"


def require(*paths):
    """Fail the calling test (one line) unless every path, relative to the repository, exists."""
    missing = [path for path in paths if not (ROOT / path).exists()]
    if missing:
        pytest.fail(f"the pipeline's outputs are missing ({', '.join(missing[:3])}"
                    f"{', ...' if len(missing) > 3 else ''}): run README's set-up command first: {setup_command()}",
                    pytrace=False)


def require_all():
    require(*(path for corpus in CORPORA for path in (*model_files(corpus), f"data/splits/{corpus}/train.txt",
                                                      f"data/splits/{corpus}/test.txt",
                                                      f"metrics/{corpus}/ngram.json")))
