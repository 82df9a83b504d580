"""Small fixtures made by the tests themselves: no test reads the real corpora or the network."""

import os

import pytest
import torch

from rnnlm.data import encode_split
from rnnlm.seeding import deterministic
from rnnlm.vocab import Vocabulary
from tests import shrunken
from tests.configs import train_config

# Every `dvc` command the tests run would start a detached analytics sender (half a second of CPU
# each, for a network the tests never use), and the slow tests run dozens of them on two cores.
os.environ["DVC_NO_ANALYTICS"] = "1"

# Each pytest-xdist worker gets its share of the cores, and so does every process it starts (DVC's
# stages, the CLI, the shared build): torch's default, one thread per core in every worker, puts
# several spinning OpenMP teams on each core, and a test of tiny models then runs 10-30x slower
# than alone. Results are bit-exact per thread count, and the pipeline's own workers use one.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    _THREADS = str(max(1, (os.cpu_count() or 1) // _WORKERS))
    os.environ.update(OMP_NUM_THREADS=_THREADS, MKL_NUM_THREADS=_THREADS)
    torch.set_num_threads(int(_THREADS))

TOY_NAMES = ["emma", "olivia", "ava", "isabella", "sophia", "mia", "amelia", "harper", "evelyn", "abigail",
             "emily", "ella", "elizabeth", "camila", "luna", "sofia", "avery", "mila", "aria", "scarlett"]


@pytest.fixture
def toy_vocab():
    return Vocabulary.build(TOY_NAMES[:14], "char")


@pytest.fixture
def toy_splits(toy_vocab):
    return {"train": encode_split(toy_vocab, TOY_NAMES[:14]),
            "dev": encode_split(toy_vocab, TOY_NAMES[14:17]),
            "test": encode_split(toy_vocab, TOY_NAMES[17:] + ["zoe"])}


@pytest.fixture
def tiny_train_config():
    return train_config(embedding_size=8, hidden_size=8, batch_size=4, epochs=2, seeds=[0], workers=1)


@pytest.fixture(autouse=True)
def _deterministic_torch():
    deterministic()  # rnnlm.seeding's: the cuBLAS workspace set first, so a GPU machine's tests run too
    yield


# ---- the shared shrunken pipeline (tests/shrunken.py) ---------------------------------------------------

# Files whose tests each get a copy of the shared build and so need no file-wide fixture: under
# `--dist loadfile` each of their tests is its own unit of work, spread over the workers.
PER_TEST_FILES = {"test_pipeline.py", "test_metrics_diff.py"}
# The tests on the shared build, longest first (seconds on an idle 2-core machine, roughly): they run
# last, after the build that started at collection, and longest first, so the workers end together.
LONGEST_FIRST = ["test_experiments_set_queue_and_show", "test_a_parameter_set_run_before_comes_back_from_the_run_cache",
                 "test_metrics_diff_shows_what_changed_and_only_that", "test_a_forced_rerun_writes_the_same_bytes_but_timings",
                 "test_data_stages_are_byte_identical_on_rerun", "test_repro_builds_every_output"]


def _run_root(tmp_path_factory):
    """A folder of this test run that every xdist worker of the run shares (the run's base temp folder)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def _needs_build(item):
    return "shrunken_pipeline" in getattr(item, "fixturenames", ())


def pytest_collection_modifyitems(config, items):
    """Slow tests that do not need the shared build first, then the fast ones, then those on the build
    (longest first). The same order in every worker (xdist checks it)."""
    def rank(item):
        if _needs_build(item):
            name = item.originalname if hasattr(item, "originalname") else item.name
            return 2, LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)
        return (0 if item.get_closest_marker("slow") else 1), 0
    items[:] = sorted(items, key=rank)  # stable: each group keeps the files' order


def pytest_collection_finish(session):
    """Start the shared build in the background as soon as a selected test needs it."""
    if not session.config.option.collectonly and any(map(_needs_build, session.items)):
        shrunken.start_build(_run_root(session.config._tmp_path_factory))


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook: absent under -p no:xdist
def pytest_xdist_make_scheduler(config, log):
    if config.getoption("dist", None) != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class PerTestInSharedBuildFiles(LoadFileScheduling):
        def _split_scope(self, nodeid):
            path = nodeid.split("::", 1)[0]
            return nodeid if path.rsplit("/", 1)[-1] in PER_TEST_FILES else path

    return PerTestInSharedBuildFiles(config, log)


@pytest.fixture(scope="session")
def shrunken_pipeline(tmp_path_factory):
    """The shared shrunken build (tests/shrunken.py), committed: read it, or copy it (``shrunken.copy_project``)
    to change it; never change it in place."""
    return shrunken.wait_for_build(shrunken.start_build(_run_root(tmp_path_factory)))


@pytest.fixture(scope="session")
def shrunken_repro_stdout(shrunken_pipeline):
    """What the shared build's `dvc repro` printed."""
    return (shrunken_pipeline.parent / "repro.out").read_text()
