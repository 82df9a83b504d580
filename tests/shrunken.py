"""The shrunken pipeline: a temporary copy of the repository with tiny corpora and tiny models, built
with `dvc repro` ONCE per test run and shared by the slow tests (tests/test_pipeline.py,
tests/test_metrics_diff.py).

The build starts in the background as soon as collection shows a test that needs it
(tests/conftest.py: ``pytest_collection_finish``), in a folder every pytest-xdist worker of the run
shares (the run's base temporary folder), so the workers run the fast tests while it builds; the
first worker to create the folder starts it, the others only wait for its ``status`` file. The build
is committed (the project, then its outputs) and never touched again: a test works on its own copy
(``copy_project``: the tree with .git and .dvc/cache, seconds cheaper than a rebuild).

Run as ``python -m tests.shrunken DEST`` it builds into DEST (what the background build runs).
"""

import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BUILD_TIMEOUT = 1800  # seconds a test waits for the shared build (a loaded 2-core machine: a few minutes)


def sh(*args, cwd, check=True):
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def make_corpora(repo):
    rng = random.Random(0)
    letters = "abcdefghijklmnopqrstuvwxyz"
    names = ["".join(rng.choice(letters) for _ in range(rng.randint(2, 8))) for _ in range(300)]
    names += ["", "  ", "Zoë", "mary-jane"]  # blank, accented, rejected: exercised on the way
    names += names[:20] + ["ZOE"]  # repeats (one only after normalization): dropped, so held-out names are held out
    (repo / "fixtures").mkdir()
    (repo / "fixtures" / "names.txt").write_text("\r\n".join(names) + "\r\n", encoding="utf-8")
    words = "the a market vote city team film study report people said new year first after".split()
    rows = []
    for i in range(240):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(3, 12))).capitalize() + "."
        rows.append(json.dumps({"category": ["POLITICS", "SPORTS", "WELLNESS"][i % 3], "headline": "H",
                                "short_description": text, "link": "", "authors": "", "date": ""}))
    rows.insert(5, '{"short_description": null, "category": "POLITICS"}')
    rows.insert(9, "not json")
    (repo / "fixtures" / "news.json").write_text("\n".join(rows) + "\n", encoding="utf-8")
    # a stream: speakers and verse, blank lines between speeches, one line that is not UTF-8
    speeches = [f"{rng.choice(['ROMEO', 'JULIET', 'NURSE'])}:\n" + "\n".join(
        " ".join(rng.choice(words) for _ in range(rng.randint(3, 8))).capitalize() + rng.choice(",.;!?")
        for _ in range(rng.randint(1, 4))) + "\n" for _ in range(120)]
    stream = "\n".join(speeches).encode("utf-8")
    cut = stream.index(b"\n", len(stream) // 3) + 1
    (repo / "fixtures" / "shakespeare.txt").write_bytes(stream[:cut] + b"caf\xe9 latin-1\n" + stream[cut:])


def shrink(repo, adjust=None):
    """Tiny models, one epoch; ``adjust`` (optional) changes the params further before they are written."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["corpora"] = {"names": "fixtures/names.txt", "news": "fixtures/news.json",
                         "shakespeare": "fixtures/shakespeare.txt"}
    for corpus in ("names", "news"):
        # workers 1: tiny runs train in the stage's own process, sparing two torch start-ups per
        # train stage (the pool of workers: test_checkpoint_training, test_interruptions)
        params["train"][corpus].update(embedding_size=8, hidden_size=8, epochs=1, seeds=[0, 1], batch_size=32,
                                       workers=1)
        # the kinds' own settings stay (their code paths run), but not their sizes and epochs
        params["train"][corpus]["overrides"] = {
            kind: {key: value for key, value in settings.items()
                   if key not in ("embedding_size", "hidden_size", "layers", "epochs")}
            for kind, settings in params["train"][corpus].get("overrides", {}).items()}
        params["generate"][corpus].update(num_samples=4, samples_per_prompt=1, max_tokens=8)
    # the stream: tiny models in short chunks, a few long-ish samples
    params["train"]["shakespeare"].update(embedding_size=8, hidden_size=8, epochs=1, seeds=[0, 1], batch_size=4,
                                          bptt=16, workers=1, overrides={"transformer": {"heads": 2}})
    params["generate"]["shakespeare"].update(num_samples=2, samples_per_prompt=1, max_tokens=60)
    params["train"]["news"]["adaptive_cutoffs"] = [8, 16]  # the tiny corpus's vocabulary is far below 1,000
    params["train"]["news"]["hidden_size"] = 16  # the last of 2 tail clusters projects to 16 // 4**2 = 1 dimension
    # the tokenization comparison, on (tiny) news only: names keeps its empty default
    params["tokenization"]["news"].update(levels=["word", "bpe", "char"], epochs=1, bpe_vocab_size=300)
    if adjust is not None:
        adjust(params)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def shrunken_project(repo, adjust=None):
    """Make ``repo`` a git repository of the project's files (as in the working tree), tiny corpora
    and tiny models (``adjust``: see ``shrink``), with one commit and no pipeline outputs yet."""
    files = sh("git", "ls-files", "--cached", "--others", "--exclude-standard", cwd=ROOT).stdout.split()
    for name in files:
        # outputs are rebuilt, and the real raw data is not needed: the fixtures replace it
        if (ROOT / name).is_file() and not name.startswith(("metrics/", "speed/", "plots/", "live/", "reports/",
                                                             "samples/", "data/raw/")):
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, repo / name)
    (repo / "dvc.lock").unlink(missing_ok=True)
    make_corpora(repo)
    shrink(repo, adjust)
    sh("git", "init", "-q", cwd=repo)
    sh("git", "add", "-A", cwd=repo)
    sh("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "fixture", cwd=repo)
    return repo


def wait_for_queue(repo, timeout=600):
    """Wait until `dvc queue` has nothing queued or running; fail on a failed experiment."""
    deadline = time.time() + timeout
    while True:
        status = sh("dvc", "queue", "status", cwd=repo).stdout
        if "Queued" not in status and "Running" not in status:
            break
        assert time.time() < deadline, status
        time.sleep(2)
    failed = [line.split()[0] for line in status.splitlines() if "Failed" in line]
    assert not failed, status + sh("dvc", "queue", "logs", failed[0], cwd=repo, check=False).stdout


def experiments_shown(repo):
    """``dvc exp show --json`` as {experiment name: its data (params, metrics)}."""
    shown = json.loads(sh("dvc", "exp", "show", "--json", cwd=repo).stdout)
    experiments = {}
    for commit in shown:
        for exp in commit.get("experiments") or []:
            for rev in exp.get("revs") or []:
                data = rev.get("data") or {}
                experiments[rev.get("name") or data.get("name")] = data
    return experiments


def commit(repo, message):
    sh("git", "add", "-A", cwd=repo)
    sh("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message, cwd=repo)


def metrics_diff(repo, *args):
    """``dvc metrics diff --json``'s rows: {(file, metric): (old, new)}."""
    shown = json.loads(sh("dvc", "metrics", "diff", "--json", *args, cwd=repo).stdout or "{}")
    return {(path, key): (row.get("old"), row.get("new")) for path, rows in shown.items() for key, row in rows.items()}


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def copy_project(built, dest):
    """A copy of the built project ``built`` at ``dest`` (work tree, .git, .dvc/cache), to change freely."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    sh("cp", "-a", str(built), str(dest), cwd=dest.parent)
    return dest


# ---- the one shared build -------------------------------------------------------------------------------

def build(dest):
    """Build the shrunken pipeline in ``dest``/rnnlm: the project committed, `dvc repro`, its outputs committed.
    Writes ``dest``/repro.out (the repro's stdout) and, last, ``dest``/status ("ok" or the failure)."""
    dest = Path(dest)
    try:
        repo = shrunken_project(dest / "rnnlm")
        result = sh("dvc", "repro", cwd=repo)
        assert "Traceback" not in result.stderr, result.stderr
        (dest / "repro.out").write_text(result.stdout)
        commit(repo, "the pipeline's outputs")
        status = "ok"
    except BaseException:
        status = traceback.format_exc()
    (dest / "status.tmp").write_text(status)
    os.replace(dest / "status.tmp", dest / "status")


def start_build(root):
    """Start the shared build under ``root``/shrunken in the background unless a process of this run
    already did (the folder's creation is the claim). Returns the folder."""
    dest = Path(root) / "shrunken"
    try:
        dest.mkdir(parents=True)
    except FileExistsError:
        return dest
    with open(dest / "build.log", "wb") as log:
        subprocess.Popen([sys.executable, "-m", "tests.shrunken", str(dest)], cwd=ROOT, stdin=subprocess.DEVNULL,
                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return dest


def wait_for_build(dest, timeout=BUILD_TIMEOUT):
    """The built project (``dest``/rnnlm) once the background build is done; AssertionError if it failed."""
    deadline = time.monotonic() + timeout
    status = dest / "status"
    while not status.is_file():
        assert time.monotonic() < deadline, f"the shared shrunken build ({dest}) took over {timeout} s"
        time.sleep(1)
    text = status.read_text()
    log = (dest / "build.log").read_text(errors="replace")[-4000:] if (dest / "build.log").is_file() else ""
    assert text == "ok", f"the shared shrunken build failed:\n{text}\n{log}"
    return dest / "rnnlm"


if __name__ == "__main__":
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    build(sys.argv[1])
