"""A sweep over several machines with DVC's own sharing: experiments are git refs, outputs sit in the DVC remote.

"Machines" A and B are two clones of a shrunken project that share a bare git remote and a DVC
remote folder; each runs its own experiment and pushes it (`dvc exp push`); a third clone pulls
both (`dvc exp pull`), compares them (`dvc exp show`) and restores one (`dvc exp apply`).
"""

import hashlib
import json

import pytest
import yaml

from tests.shrunken import experiments_shown, sh, shrunken_project

pytestmark = pytest.mark.slow

METRICS = "metrics/names/neural/gru.json"


def one_model_pipeline(repo):
    """Shrink the pipeline to names and the GRU (params.yaml's lists), so an experiment runs (and
    restores) all of it; the report goes, for time."""
    pipeline = yaml.safe_load((repo / "dvc.yaml").read_text())
    del pipeline["stages"]["report"]
    (repo / "dvc.yaml").write_text(yaml.safe_dump(pipeline, sort_keys=False))
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["corpora"] = {"names": params["corpora"]["names"]}
    params["kinds"] = {corpus: ["gru"] for corpus in params["corpora"]}
    params["mixture"]["names"]["model"] = "gru"
    params["train"]["names"].update(seeds=[0], epochs=1)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def clone(remote, path):
    sh("git", "clone", "-q", str(remote), str(path), cwd=remote.parent)
    sh("git", "config", "user.name", "t", cwd=path)
    sh("git", "config", "user.email", "t@t", cwd=path)
    return path


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def origin(tmp_path_factory):
    """A bare git remote holding the shrunken project, whose DVC remote is a shared local folder."""
    root = tmp_path_factory.mktemp("sweep")
    seed = shrunken_project(root / "seed")
    one_model_pipeline(seed)
    sh("dvc", "remote", "add", "--force", "--default", "store", str(root / "dvc-store"), cwd=seed)
    sh("git", "add", "-A", cwd=seed)
    sh("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "names/gru only, one seed, shared DVC remote", cwd=seed)
    sh("git", "init", "-q", "--bare", str(root / "origin.git"), cwd=root)
    sh("git", "push", "-q", str(root / "origin.git"), "HEAD:refs/heads/main", cwd=seed)
    sh("git", "symbolic-ref", "HEAD", "refs/heads/main", cwd=root / "origin.git")
    return root / "origin.git"


def test_experiments_run_on_two_machines_are_pulled_compared_and_restored_on_a_third(origin):
    root = origin.parent
    machine_a = clone(origin, root / "machine-a")
    sh("dvc", "exp", "run", "-n", "wide", "-S", "train.names.hidden_size=12", cwd=machine_a)
    sh("dvc", "exp", "push", "origin", "wide", cwd=machine_a)

    machine_b = clone(origin, root / "machine-b")
    sh("dvc", "exp", "run", "-n", "fast", "-S", "train.names.lr=0.01", cwd=machine_b)  # queues: test_pipeline
    sh("dvc", "exp", "push", "origin", "fast", cwd=machine_b)

    laptop = clone(origin, root / "laptop")
    for name in ("wide", "fast"):
        sh("dvc", "exp", "pull", "origin", name, cwd=laptop)
    experiments = experiments_shown(laptop)
    assert {"wide", "fast"} <= set(experiments), list(experiments)
    assert experiments["wide"]["params"]["params.yaml"]["data"]["train"]["names"]["hidden_size"] == 12
    assert experiments["fast"]["params"]["params.yaml"]["data"]["train"]["names"]["lr"] == 0.01
    for name in ("wide", "fast"):
        assert experiments[name]["metrics"][METRICS]["data"]["test"]["loss"] > 0
    assert "wide" in sh("dvc", "exp", "show", "--csv", cwd=laptop).stdout

    sh("dvc", "exp", "apply", "wide", cwd=laptop)
    sh("dvc", "pull", cwd=laptop)  # what `exp pull` fetched is in the cache: this only checks it out
    # the laptop now holds machine A's results: the same metrics and the very same model file
    metrics = json.loads((laptop / METRICS).read_text())
    assert metrics == json.loads((machine_a / METRICS).read_text())
    assert metrics["params"] != experiments["fast"]["metrics"][METRICS]["data"]["params"]
    assert digest(laptop / "models/names/neural/gru.pt") == digest(machine_a / "models/names/neural/gru.pt")
    assert "up to date" in sh("dvc", "status", cwd=laptop).stdout
