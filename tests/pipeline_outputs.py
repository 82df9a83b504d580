"""The pipeline's own outputs, for the tests that run on them (README's order: set-up with `dvc repro`, then
the tests). Missing outputs fail such a test with one line naming README's set-up command: never a skip."""

import functools
import json
import re
import subprocess
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


@functools.cache
def _in_git_checkout():
    """Whether ROOT is the top of a git checkout (not an unpacked archive, nor one inside another repository)."""
    done = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--show-toplevel"], capture_output=True, text=True)
    return done.returncode == 0 and Path(done.stdout.strip()).resolve() == ROOT.resolve()


@functools.cache
def committed_text(path):
    """The text of ``path`` (relative to the repository) as committed at HEAD (``git -C ROOT show HEAD:path``):
    what README and docs/ state is checked against the committed outputs, which a `dvc repro` on another
    CPU does not rewrite (what such a rerun produces is the gate's to judge: `rnnlm check-metrics`).
    Where ROOT is not a git checkout (an unpacked source archive) this falls back to the workspace's
    file, which is the committed one unless a rerun rewrote it. A path not committed fails the test."""
    if not _in_git_checkout():
        require(path)
        return (ROOT / path).read_text(encoding="utf-8")
    done = subprocess.run(["git", "-C", str(ROOT), "show", f"HEAD:{path}"], capture_output=True)
    if done.returncode != 0:
        pytest.fail(f"{path} is not committed at HEAD: {done.stderr.decode(errors='replace').strip()}", pytrace=False)
    return done.stdout.decode("utf-8")


def committed_json(path):
    """``committed_text(path)``, parsed (a fresh copy each call)."""
    return json.loads(committed_text(path))


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
