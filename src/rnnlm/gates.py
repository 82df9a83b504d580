"""CI gates: reproduced metrics versus committed ones, and the committed dvc.lock versus the code.

``dvc metrics diff`` shows what changed but cannot say whether a change is within tolerance, and
``dvc status`` mixes "stage code changed without re-running" (a mistake) with "outputs not built
yet" (normal on a fresh clone); after a ``dvc repro`` it is clean whatever the commit held. These
two checks draw those lines.
"""

import hashlib
import math
import subprocess
from pathlib import Path

import yaml

from .errors import UserError
from .metrics_files import parse_metrics, read_metrics
from .speed import is_timing

# What each committed metric is compared with is decided by its key and shape, never by a list of
# files, so metrics files added later are judged by the same rules:
#
#   timing    keys ending in "seconds", "_per_s" or "_ms" (rnnlm.speed): machine and load; never
#             compared. The pipeline keeps them out of metrics/ (speed/), older revisions did not.
#   count     an int in both files (tokens, n, params, samples, seed, best_epoch...): exact.
#   spread    "std" beside a "mean" (the spread over seeds): |new - old| <= atol + rtol*|mean|.
#             A std is a difference of nearly equal numbers, so last-digit noise in the runs is a
#             large *relative* change of the std; scaled by its mean it is as small as the noise.
#   sample    statistics of random samples, in an object with an int "samples" count n: within
#             k standard errors of the committed value, because on another machine a last-digit
#             difference can flip one draw, and that sample then follows another path:
#               "*_share" p                k*sqrt(q(1-q)/n), q = (p*n+1)/(n+2)
#               "mean_X" m beside "std_X" s  k*s/sqrt(n)
#               "std_X" s                  k*s/sqrt(2(n-1))
#             (q smooths p so that a committed 0% or 100% still gets a band.)
#   relative  every other number (losses, perplexities, means, single-seed values):
#             |new - old| <= atol + rtol*|old|.
#   exact     strings and booleans.
#   effect    the chosen epoch (best_epoch, and epochs_done, which early stopping derives from
#             the same dev losses): judged by its effect, not its value. The last epochs' dev
#             losses can lie closer together (1e-5 relative) than two CPUs' rounding moves them
#             (3e-4 seen), so another machine may keep another epoch with nothing wrong. A
#             different epoch passes when every other value of its file passes its own rule
#             (the dev loss it was chosen by, and the test metrics of its weights); else it fails.
# A NaN passes only where the committed value was NaN too.
CHOSEN_EPOCH_KEYS = ("best_epoch", "epochs_done")
SAMPLE_COUNT_KEY = "samples"


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def flatten(obj, prefix=""):
    """{"test": {"loss": 1.0}} -> {"test.loss": 1.0} (numbers only; bools and strings dropped)."""
    return {key: value for key, (value, _) in leaves(obj, prefix).items() if _is_number(value)}


def leaves(obj, prefix="", parent=None):
    """{dotted key: (value, the dict that holds it)} for every value that is not a dict."""
    found = {}
    if isinstance(obj, dict):
        for key, value in obj.items():
            found.update(leaves(value, f"{prefix}.{key}" if prefix else str(key), obj))
    else:
        found[prefix] = (obj, parent if parent is not None else {})
    return found


def sample_band(name, value, siblings, k):
    """Half-width of the sampling-error band of a sample statistic; None if ``name`` is not one."""
    n = siblings.get(SAMPLE_COUNT_KEY)
    if not isinstance(n, int) or isinstance(n, bool) or n < 1 or name == SAMPLE_COUNT_KEY:
        return None
    if name.endswith("_share"):
        q = (value * n + 1) / (n + 2)
        return k * math.sqrt(q * (1 - q) / n)
    std = siblings.get("std_" + name.removeprefix("mean_"))
    if name.startswith("mean_") and _is_number(std):
        return k * std / math.sqrt(n)
    if name.startswith("std_") and n > 1:
        return k * value / math.sqrt(2 * (n - 1))
    return None


def judge(key, old, new, siblings, rtol=0.01, atol=1e-6, k=3.0):
    """(rule, problem or None) for one metric; ``siblings`` is the committed dict that holds it."""
    name = key.split(".")[-1]
    if is_timing(name):
        return "timing", None
    if not (_is_number(old) and _is_number(new)):
        return "exact", None if old == new else "differs (compared exactly)"
    if math.isnan(old) or math.isnan(new):
        if math.isnan(old) and math.isnan(new):
            return "relative", None
        return "relative", "became NaN" if math.isnan(new) else "was NaN, now a number"
    band = sample_band(name, old, siblings, k)
    if band is not None:
        if abs(new - old) <= band + atol:
            return "sample", None
        n = siblings[SAMPLE_COUNT_KEY]
        return "sample", f"outside {old:g} ± {band:.3g} ({k:g} standard errors of {n} samples)"
    if isinstance(old, int) and isinstance(new, int):
        return "count", None if old == new else "count differs (compared exactly)"
    if name == "std" and _is_number(siblings.get("mean")):
        limit = atol + rtol * abs(siblings["mean"])
        if abs(new - old) <= limit:
            return "spread", None
        return "spread", f"moved by {abs(new - old):.3g} > {rtol:g} × |mean| = {limit:.3g}"
    if math.isclose(new, old, rel_tol=rtol, abs_tol=atol):
        return "relative", None
    rel = abs(new - old) / abs(old) if old else math.inf
    return "relative", f"differs by {rel:.2%} (rtol {rtol:g})"


def _run(args, missing_hint):
    """stdout of a command; a UserError (not a traceback) if it is missing or fails."""
    try:
        return subprocess.run(args, check=True, capture_output=True, text=True).stdout
    except FileNotFoundError:
        raise UserError(f"{args[0]} not found: {missing_hint}") from None
    except subprocess.CalledProcessError as err:
        raise UserError(f"{' '.join(args)} failed: {err.stderr.strip()}") from None


def _git(*args):
    return _run(["git", *args], "the gates compare with a git revision")


def check_revision(rev):
    """A UserError unless ``rev`` names a commit of the git repository here."""
    try:
        done = subprocess.run(["git", "rev-parse", "--verify", f"{rev}^{{commit}}"], capture_output=True, text=True)
    except FileNotFoundError:
        raise UserError("git not found: the gates compare with a git revision") from None
    if done.returncode != 0:
        if "not a git repository" in done.stderr:
            raise UserError("not inside a git repository: run this from the project's clone")
        raise UserError(f"unknown revision {rev!r}: not a commit, branch or tag of this repository "
                        "(fetch it first, e.g. `git fetch origin main`)")


def committed_metrics(rev, metrics_dir):
    """{path: parsed JSON} of every .json under ``metrics_dir`` at git revision ``rev`` (``rnnlm.metrics_files``
    checks each: a corrupt one is a UserError naming it)."""
    check_revision(rev)
    names = _git("ls-tree", "-r", "--name-only", rev, "--", str(metrics_dir)).split()
    return {name: _committed_file(rev, name) for name in names if name.endswith(".json")}


def _committed_file(rev, name):
    source = f"{name} at {rev}"
    try:
        text = _git("show", f"{rev}:{name}")
    except UnicodeDecodeError as err:  # git's output is decoded as text: the file is not UTF-8
        raise UserError(f"{source}: not a metrics file, corrupt ({err.reason} at byte {err.start})") from None
    return parse_metrics(text, source)


def workspace_metrics(metrics_dir):
    return {str(p): read_metrics(p) for p in sorted(Path(metrics_dir).rglob("*.json"))}


def compare_metrics(old, new, rtol=0.01, atol=1e-6, ignore=(), k=3.0, tally=None):
    """Rows (file, key, old, new, problem) for every metric that fails its rule (see ``judge``).

    ``old`` and ``new`` map file -> parsed JSON. ``tally``, if given, receives how many values
    each rule judged (for the summary line).
    """
    rows = []
    tally = {} if tally is None else tally
    for path in sorted(set(old) | set(new)):
        if path not in new:
            rows.append((path, "*", "present", "missing", "file not reproduced"))
            continue
        if path not in old:
            rows.append((path, "*", "missing", "present", "file not committed"))
            continue
        a, b = leaves(old[path]), leaves(new[path])
        file_rows, moved_epochs = [], []
        for key in sorted(set(a) | set(b)):
            if key.split(".")[-1] in ignore:
                tally["ignored"] = tally.get("ignored", 0) + 1
                continue
            if key not in a or key not in b:
                file_rows.append((path, key, a.get(key, ("-",))[0], b.get(key, ("-",))[0], "key added or removed"))
                continue
            (va, siblings), (vb, _) = a[key], b[key]
            if key.split(".")[-1] in CHOSEN_EPOCH_KEYS and _is_number(va) and _is_number(vb):
                tally["effect"] = tally.get("effect", 0) + 1
                if va != vb:
                    moved_epochs.append((path, key, va, vb))
                continue
            rule, problem = judge(key, va, vb, siblings, rtol, atol, k)
            tally[rule] = tally.get(rule, 0) + 1
            if problem:
                file_rows.append((path, key, va, vb, problem))
        if file_rows:  # a moved epoch whose metrics moved too is part of the failure
            file_rows += [(*moved, "another epoch chosen, and metrics of its file differ")
                          for moved in moved_epochs]
        rows += sorted(file_rows, key=lambda row: row[1])
    return rows


def format_rows(rows):
    header = ("file", "metric", "committed", "workspace", "problem")
    table = [header] + [tuple(str(c) for c in row) for row in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table)


def committed_lock(rev):
    """dvc.lock as committed at git revision ``rev``, parsed."""
    check_revision(rev)
    try:
        text = subprocess.run(["git", "show", f"{rev}:dvc.lock"], check=True, capture_output=True, text=True).stdout
    except subprocess.CalledProcessError:
        raise UserError(f"no dvc.lock at {rev}: run `dvc repro` and commit dvc.lock") from None
    return yaml.safe_load(text) or {}


def pipeline_stages():
    """The stages of dvc.yaml as DVC resolves them (``foreach`` expanded), with the current params:
    ``{name: {"cmd", "deps": [path], "params": {params file: {key: value}}, "outs": [path]}}``."""
    from dvc.dependency.param import ParamsDependency  # DVC starts slowly: only the lock check needs it
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        with Repo() as repo:
            stages = {}
            for stage in repo.index.stages:
                if getattr(stage, "cmd", None) is None:  # a .dvc file, not a pipeline stage
                    continue
                params = [dep for dep in stage.deps if isinstance(dep, ParamsDependency)]
                stages[stage.addressing] = {
                    "cmd": stage.cmd,
                    "deps": [dep.def_path for dep in stage.deps if not isinstance(dep, ParamsDependency)],
                    "params": {dep.def_path: dep.read_params() for dep in params},
                    "outs": [out.def_path for out in stage.outs]}
            return stages
    except DvcException as err:
        raise UserError(f"dvc.yaml: {err}") from None


def code_hashes(stages):
    """``{path: md5}`` of every dependency that is code or raw data rather than a stage's output: the
    files git tracks (the md5 of their bytes, as dvc.lock records it) and the files a ``.dvc`` file
    tracks (the md5 that file records)."""
    tracked = set(_git("ls-files", "-z").split("\0"))
    outputs = {out for stage in stages.values() for out in stage["outs"]}
    hashes = {}
    for path in {dep for stage in stages.values() for dep in stage["deps"]}:
        if any(path == out or path.startswith(f"{out}/") for out in outputs):
            continue  # judged by reproducing it (dvc status, check-metrics), not here
        if path in tracked and Path(path).is_file():
            hashes[path] = hashlib.md5(Path(path).read_bytes()).hexdigest()
        elif f"{path}.dvc" in tracked:
            outs = (yaml.safe_load(Path(f"{path}.dvc").read_text(encoding="utf-8")) or {}).get("outs") or [{}]
            hashes[path] = outs[0].get("md5")
    return hashes


def stale_lock(lock, stages, hashes):
    """``{stage: [reasons]}`` for every stage whose command, code, params or outputs in dvc.yaml differ
    from ``lock`` (a parsed dvc.lock); ``hashes``: the current md5 of each code dependency.

    Data a stage reads from another stage is left out: its hash changes with the machine (the
    models) and is judged by reproducing it. So the verdict is the same before and after a
    ``dvc repro``: a lock committed stale stays stale, whatever the workspace's dvc.lock says now.
    """
    locked_stages = lock.get("stages") or {}
    stale = {}
    for name, stage in stages.items():
        locked = locked_stages.get(name)
        if locked is None:
            stale[name] = ["not in dvc.lock (never run)"]
            continue
        reasons = ["command changed"] if locked.get("cmd") != stage["cmd"] else []
        locked_deps = {dep["path"]: dep.get("md5") for dep in locked.get("deps") or []}
        for path in stage["deps"]:
            if path not in locked_deps:
                reasons.append(f"{path} new")
            elif path in hashes and hashes[path] != locked_deps[path]:
                reasons.append(f"{path} modified")
        reasons += [f"{path} deleted" for path in sorted(set(locked_deps) - set(stage["deps"]))]
        for params_file, values in stage["params"].items():
            locked_values = (locked.get("params") or {}).get(params_file) or {}
            for key in sorted(set(values) | set(locked_values)):
                if key not in locked_values:
                    reasons.append(f"param {key} new")
                elif key not in values:
                    reasons.append(f"param {key} deleted")
                elif values[key] != locked_values[key]:
                    reasons.append(f"param {key} modified")
        locked_outs = {out["path"] for out in locked.get("outs") or []}
        reasons += [f"output {path} new" for path in stage["outs"] if path not in locked_outs]
        reasons += [f"output {path} deleted" for path in sorted(locked_outs - set(stage["outs"]))]
        if reasons:
            stale[name] = reasons
    return stale
