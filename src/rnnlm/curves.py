"""Training curves: one dvclive log per trained model, read back for DVC's charts and the report.

Every run (kind x seed) logs its epochs with dvclive, DVC's own experiment logger, into its own
directory ``<live root>/<kind>/seed<N>``: ``metrics.json`` holds the latest epoch (the step) and
``plots/metrics/{train,dev}/loss.tsv`` the history. DVC's charts take files, not folders, so a
chart with one colour per model would need one dvc.yaml entry per kind; instead the train stage
gathers the headline runs into one long table per corpus (:func:`corpus_curves`) that the chart's
template colours by model, and, while runs train, the latest epoch of each into one small
metrics file (:class:`ProgressFile`) that ``dvc exp show`` reads from a running experiment.
"""

import json
import threading
from pathlib import Path

import pandas as pd

from .errors import UserError
from .io import require_file, write_json, write_text

CURVES = ("train", "dev")           # dvclive metric "<curve>/loss" for each
CURVE_COLUMNS = ["model", "curve", "epoch", "loss"]


def run_dir(root, kind, seed):
    """The dvclive directory of one run."""
    return Path(root) / kind / f"seed{seed}"


class RunLog:
    """The dvclive log of one run; a resumed run starts it again from the epochs it already has."""

    def __init__(self, directory, history=()):
        from dvclive import Live  # imported here: it starts DVC, which a worker needs only to log

        # No dvc.yaml of its own (the train stage declares these files), no Studio, no report.
        self.live = Live(str(directory), dvcyaml=False, save_dvc_exp=False, report=None)
        for row in history:
            self.epoch(row)

    def epoch(self, row):
        """Log one epoch's ``{"epoch", "train_loss", "dev_loss"}``: its step is the epoch."""
        self.live.step = row["epoch"]
        for curve in CURVES:
            self.live.log_metric(f"{curve}/loss", row[f"{curve}_loss"])
        self.live.next_step()  # writes metrics.json: the latest epoch, for a running experiment

    def close(self):
        self.live.end()


def read_run(directory):
    """One run's curves from its dvclive files: a DataFrame with columns epoch, train_loss, dev_loss."""
    frames = []
    for curve in CURVES:
        path = require_file(Path(directory) / "plots" / "metrics" / curve / "loss.tsv", what="loss curve")
        frame = pd.read_csv(path, sep="\t", dtype={"step": int, "loss": float})
        frames.append(frame.rename(columns={"step": "epoch", "loss": f"{curve}_loss"}).set_index("epoch"))
    return pd.concat(frames, axis=1).reset_index()


def corpus_curves(runs):
    """``{model: run directory}`` -> the long table of one corpus's chart (model, curve, epoch, loss)."""
    rows = []
    for model, directory in runs.items():
        run = read_run(directory)
        rows += [{"model": model, "curve": curve, "epoch": int(epoch), "loss": f"{loss:.6f}"}
                 for curve in CURVES for epoch, loss in zip(run["epoch"], run[f"{curve}_loss"])]
    return pd.DataFrame(rows, columns=CURVE_COLUMNS)


def write_corpus_curves(path, runs):
    write_text(path, corpus_curves(runs).to_csv(index=False, lineterminator="\n"))


def read_corpus_curves(path):
    """A corpus's table -> ``{model: [(epoch, train_loss, dev_loss), ...]}`` (the report's PNG)."""
    path = require_file(path, what="loss curves")
    try:
        table = pd.read_csv(path, dtype={"model": str, "curve": str, "epoch": int, "loss": float})
        wide = table.pivot(index=["model", "epoch"], columns="curve", values="loss")  # a repeated row is an error
        return {model: [(int(epoch), float(row["train"]), float(row["dev"]))
                        for epoch, row in group.loc[model].iterrows()]
                for model, group in wide.groupby(level="model")}
    except (ValueError, KeyError) as err:
        raise UserError(f"{path}: not a loss-curve table with columns {', '.join(CURVE_COLUMNS)} ({err})") from None


class ProgressFile:
    """While runs train, keep ``path`` holding each run's latest epoch (from its dvclive metrics).

    A thread rewrites the file every ``every`` seconds and once more at the end, so it ends with
    each run's last epoch: ``{kind: {"seed<N>": {"epoch", "train_loss", "dev_loss"}}}``.
    """

    def __init__(self, path, runs, every=10.0):
        self.path, self.runs, self.every = Path(path), runs, every  # runs: {(kind, seed): directory}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        if exc[0] is None:
            self.write()

    def _loop(self):
        while not self._stop.wait(self.every):
            self.write()

    def latest(self):
        progress = {}
        for (kind, seed), directory in self.runs.items():
            try:
                summary = json.loads((Path(directory) / "metrics.json").read_text(encoding="utf-8"))
            except (OSError, ValueError):  # not started yet, or being rewritten this instant
                continue
            progress.setdefault(kind, {})[f"seed{seed}"] = {
                "epoch": summary["step"], **{f"{c}_loss": round(summary[c]["loss"], 6) for c in CURVES}}
        return progress

    def write(self):
        write_json(self.path, self.latest())
