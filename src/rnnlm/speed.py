"""Speed records: the timings a stage measures, kept apart from its metrics.

A metrics file holds what a run of the same code reproduces: losses, counts, sample statistics.
A timing changes with the machine and its load on every run, so it never goes there (``dvc
metrics diff`` would list it on every run, and a reviewer would look past it to find a real
change). Each stage that measures a time writes it to ``speed/stages/<corpus>/<stage>.json``
instead, an ordinary output in DVC's cache (an uncached one would switch the stage's run-cache
off), and the report stage sums them up in ``speed/summary.md``, which git keeps. No other output
holds a timing: checkpoints, logs and metrics are the same bytes on a rerun, and only files under
``speed/`` change::

    dvc metrics show --targets speed/stages -R     # every timing of this run
    git diff main -- speed/summary.md              # against the committed run's timings

A key is a timing when its name ends in one of ``TIMING_SUFFIXES``: the same rule by which
``rnnlm check-metrics`` never compares one.
"""

TIMING_SUFFIXES = ("seconds", "_per_s", "_ms")


def is_timing(key):
    """Whether the (possibly dotted) key names a timing: ``train_seconds``, ``test.tokens_per_s``."""
    return str(key).split(".")[-1].endswith(TIMING_SUFFIXES)


def split_timings(record):
    """``record`` (nested dicts) -> ``(the record without timings, the timings alone)``.

    A dict left empty on either side is dropped, so ``{"a": {"seconds": 1}}`` has no ``a`` without
    its timings.
    """
    kept, timings = {}, {}
    for key, value in record.items():
        if isinstance(value, dict):
            inner_kept, inner_timings = split_timings(value)
            if inner_kept or not inner_timings:
                kept[key] = inner_kept
            if inner_timings:
                timings[key] = inner_timings
        elif is_timing(key):
            timings[key] = value
        else:
            kept[key] = value
    return kept, timings


def run_speed(record):
    """The speed of one training run, from its record (``rnnlm.training.train_model``)."""
    epochs = record["epochs_done"]
    return {"train_seconds": record["train_seconds"], "tokens_per_s": record.get("tokens_per_s"),
            "epochs": epochs, "epoch_seconds": record["train_seconds"] / epochs if epochs else None}


def train_speed(runs, records):
    """``{kind: {"seed<N>": run_speed}}`` of the runs ``(kind, seed)`` and their records, in order."""
    speed = {}
    for (kind, seed), record in zip(runs, records):
        speed.setdefault(kind, {})[f"seed{seed}"] = run_speed(record)
    return speed
