"""CI gates: reproduced metrics versus committed ones, and the committed dvc.lock versus the code.

``dvc metrics diff`` shows what changed but cannot say whether a change is within tolerance, and
``dvc status`` mixes "stage code changed without re-running" (a mistake) with "outputs not built
yet" (normal on a fresh clone); after a ``dvc repro`` it is clean whatever the commit held. These
two checks draw those lines. The lock check asks DVC itself: it runs ``dvc status`` on a copy of the
workspace that holds the committed dvc.lock, and sorts what DVC says into stale and not built.
"""

import hashlib
import json
import math
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import yaml

from .errors import UserError
from .metrics_files import parse_metrics, read_metrics
from .speed import is_timing
from .tolerances import band, chaotic_model, metric_name, model_sample_band, own_band, rtol_of, within

# What each committed metric is compared with is decided by its key and shape, never by a list of
# files, so metrics files added later are judged by the same rules:
#
#   timing    keys ending in "seconds", "_per_s" or "_ms" (rnnlm.speed): machine and load; never
#             compared. The pipeline keeps them out of metrics/ (speed/), older revisions did not.
#   count     an int in both files (tokens, n, params, samples, seed, best_epoch...): exact.
#   spread    "std" beside a "mean" (the spread over seeds): |new - old| <= atol + rtol*|mean|, rtol the
#             tolerance of the metric it spreads (a chaotic model's: the band of that metric at the mean).
#             A std is a difference of nearly equal numbers, so last-digit noise in the runs is a
#             large *relative* change of the std; scaled by its mean it is as small as the noise.
#   sample    statistics of random samples, in an object with an int "samples" count n: within
#             k standard errors of the committed value, because on another machine a last-digit
#             difference can flip one draw, and that sample then follows another path:
#               "*_share" p                k*sqrt(q(1-q)/n), q = (p*n+1)/(n+2)
#               "mean_X" m beside "std_X" s  k*s/sqrt(n)
#               "std_X" s                  k*s/sqrt(2(n-1))
#             (q smooths p so that a committed 0% or 100% still gets a band.)
#   relative  every other number (losses, accuracies, means, single-seed values):
#             |new - old| <= atol + rtol*|old|, rtol the metric's own tolerance, measured
#             between CPUs (rnnlm.tolerances: losses 1e-3); a perplexity through its log, the loss.
#             A chaotic model's file (rnnlm.tolerances.CHAOTIC: its training moves on another CPU):
#             its losses within an absolute band per split, 1.5 x the model's seed spread (perplexity
#             through its log, bits/char the band / ln 2), its other values ("model band") within
#             the bands rnnlm.tolerances.CHAOTIC_BANDS gives them: the chosen epoch and counts included.
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


def judge(key, old, new, siblings, rtol=None, atol=1e-6, k=3.0, drift=None, path=None):
    """(rule, problem or None) for one metric; ``siblings`` is the committed dict that holds it.

    ``rtol`` None takes each metric's band from ``rnnlm.tolerances`` (by metric, split and, for a chaotic
    model, the model of the file at ``path``); a number overrides it for every metric. ``drift``, if
    given, keeps per metric name the largest relative change the relative rule saw (how the
    tolerances were measured)."""
    name = key.split(".")[-1]
    if is_timing(name):
        return "timing", None
    if not (_is_number(old) and _is_number(new)):
        return "exact", None if old == new else "differs (compared exactly)"
    if math.isnan(old) or math.isnan(new):
        if math.isnan(old) and math.isnan(new):
            return "relative", None
        return "relative", "became NaN" if math.isnan(new) else "was NaN, now a number"
    if rtol is None and own_band(key, path) is not None:  # a chaotic model's value with a band of its own
        ok, _ = within(key, old, new, atol, None, path)
        limit = band(key, old, path)
        return "model band", None if ok else f"moved by {abs(new - old):.3g} > its model's band {limit:.3g}"
    band_ = sample_band(name, old, siblings, k)
    if band_ is not None:
        if rtol is None:
            band_ += model_sample_band(name, path)  # a chaotic model's samples come from another model too
        if abs(new - old) <= band_ + atol:
            return "sample", None
        n = siblings[SAMPLE_COUNT_KEY]
        return "sample", f"outside {old:g} ± {band_:.3g} ({k:g} standard errors of {n} samples)"
    if isinstance(old, int) and isinstance(new, int):
        return "count", None if old == new else "count differs (compared exactly)"
    if name == "std" and _is_number(siblings.get("mean")):
        limit = atol + band(key, siblings["mean"], path, rtol)
        if abs(new - old) <= limit:
            return "spread", None
        if rtol is None and chaotic_model(path) is not None:
            return "spread", f"moved by {abs(new - old):.3g} > its model's band at the mean, {limit:.3g}"
        tol = rtol_of(key, path) if rtol is None else rtol
        return "spread", f"moved by {abs(new - old):.3g} > {tol:g} × |mean| = {limit:.3g}"
    ok, change = within(key, old, new, atol, rtol, path)
    if drift is not None:
        metric = metric_name(key)
        drift[metric] = max(drift.get(metric, 0.0), change)
    if ok:
        return "relative", None
    if rtol is None and chaotic_model(path) is not None and metric_name(key) in ("loss", "perplexity",
                                                                               "bits_per_char"):
        moved = abs(math.log(new / old)) if metric_name(key) == "perplexity" and old > 0 and new > 0 else abs(new - old)
        return "relative", (f"moved by {moved:.3g} > {band(key, old, path):.3g}, its model's band "
                            "(1.5 x its seed spread on that split)")
    tol = rtol_of(key, path) if rtol is None else rtol
    return "relative", f"differs by {change:.3g} relative (rtol {tol:g})"


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


def compare_metrics(old, new, rtol=None, atol=1e-6, ignore=(), k=3.0, tally=None, drift=None):
    """Rows (file, key, old, new, problem) for every metric that fails its rule (see ``judge``).

    ``old`` and ``new`` map file -> parsed JSON. ``tally``, if given, receives how many values
    each rule judged (for the summary line); ``drift`` the largest relative change per metric name.
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
            if (key.split(".")[-1] in CHOSEN_EPOCH_KEYS and _is_number(va) and _is_number(vb)
                    and (rtol is not None or own_band(key, path) is None)):  # a chaotic model's: its own band
                tally["effect"] = tally.get("effect", 0) + 1
                if va != vb:
                    moved_epochs.append((path, key, va, vb))
                continue
            rule, problem = judge(key, va, vb, siblings, rtol, atol, k, drift, path)
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
    """The text of dvc.lock as committed at git revision ``rev``."""
    check_revision(rev)
    try:
        return subprocess.run(["git", "show", f"{rev}:dvc.lock"], check=True, capture_output=True, text=True).stdout
    except subprocess.CalledProcessError:
        raise UserError(f"no dvc.lock at {rev}: run `dvc repro` and commit dvc.lock") from None


def _link_or_copy(src, dst):
    """A hard link where the file system allows one (DVC only reads the copy), else a copy."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def workspace_copy(dest, lock_text):
    """Lay out in ``dest`` what ``dvc status`` reads of this workspace, with ``lock_text`` as its dvc.lock: the
    files git sees (tracked, and untracked but not ignored: dvc.yaml, params, code, the ``.dvc`` files) and the
    data the ``.dvc`` files track (the raw files). The outputs of pipeline stages that git ignores (models,
    data/) stay out, so they read as not built.

    Returns ``{path: .dvc file}`` of the tracked data that is not in the workspace (not pulled)."""
    top = Path(_git("rev-parse", "--show-toplevel").strip())
    dest = Path(dest)
    files = [f for f in _git("-C", str(top), "ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0")
             if f and f != "dvc.lock"]
    for name in files:
        if (top / name).is_file():  # a tracked file deleted from the workspace stays deleted in the copy
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            _link_or_copy(top / name, dest / name)
    absent = {}
    for dvcfile in (f for f in files if f.endswith(".dvc") and (top / f).is_file()):
        for out in (yaml.safe_load((top / dvcfile).read_text(encoding="utf-8")) or {}).get("outs") or []:
            path = (Path(dvcfile).parent / out["path"]).as_posix()
            if (top / path).is_dir():
                shutil.copytree(top / path, dest / path, copy_function=_link_or_copy, dirs_exist_ok=True)
            elif (top / path).is_file():
                _link_or_copy(top / path, dest / path)
            else:
                absent[path] = dvcfile
    (dest / "dvc.lock").write_text(lock_text, encoding="utf-8")
    return absent


def _inside(path, folder):
    return path == folder or path.startswith(f"{folder}/")


def judge_lock(root, lock):
    """What ``dvc status`` says of the DVC project in ``root`` against its dvc.lock (``lock``, parsed),
    sorted into what makes that lock stale and what does not.

    Stale, ``{stage: [reasons]}``: the command changed; a param changed; a dependency that is code or raw
    data (no stage makes it) changed, was deleted, or is new; a dependency or output declared in dvc.yaml
    that the lock lacks (``dvc repro`` would run the stage for it); a stage the lock lacks. DVC hashes a
    folder dependency (``src/rnnlm/models``) file by file, as ``dvc repro`` would.

    Not stale: an output not built or not in the cache, a dependency that another stage makes missing or
    different (the models' hashes change with the machine: reproducing them is judged by ``dvc status`` and
    check-metrics after ``dvc repro``). So the verdict is the same before and after a ``dvc repro``.

    Returns ``(stale, defined, absent)``: ``defined``, the stage names of dvc.yaml (``foreach`` expanded);
    ``absent``, the dependencies that are data a ``.dvc`` file tracks and that are missing (not pulled).
    """
    from dvc.dependency.param import ParamsDependency  # DVC starts slowly: only the lock check needs it
    from dvc.exceptions import DvcException
    from dvc.repo import Repo
    from dvc.stage import PipelineStage

    root = Path(root)
    locked_stages = lock.get("stages") or {}
    # no_scm: the copy is no git repository; site_cache_dir: DVC's per-repository state, kept in the copy
    config = {"core": {"no_scm": True, "site_cache_dir": str(root / ".dvc" / "tmp" / "site")}}
    stale, defined, absent = {}, [], set()
    try:
        with Repo(str(root), config=config) as repo, repo.lock:
            stages = [stage for stage in repo.index.stages  # those of the top dvc.yaml, whose lock is dvc.lock
                      if isinstance(stage, PipelineStage) and os.path.relpath(stage.path, repo.root_dir) == "dvc.yaml"]
            made = [out.def_path for stage in stages for out in stage.outs]
            tracked = {out.def_path for stage in repo.index.stages if not isinstance(stage, PipelineStage)
                       for out in stage.outs}
            for stage in stages:
                defined.append(stage.name)
                locked = locked_stages.get(stage.name)
                if locked is None:
                    stale[stage.name] = ["not in dvc.lock (never run)"]
                    continue
                locked_deps = {dep["path"] for dep in locked.get("deps") or []}
                locked_outs = {out["path"] for out in locked.get("outs") or []}
                new = {dep.def_path for dep in stage.deps
                       if not isinstance(dep, ParamsDependency) and dep.def_path not in locked_deps}
                reasons = [f"{path} new (not in dvc.lock)" for path in sorted(new)]
                reasons += [f"output {out.def_path} new (not in dvc.lock)" for out in stage.outs
                            if out.def_path not in locked_outs]
                by_key = {str(dep): dep for dep in stage.deps}
                for entry in next(iter(stage.status().values()), []):  # `dvc status` of this stage
                    if entry == "changed command":
                        reasons.insert(0, "command changed")
                    if not isinstance(entry, dict) or "changed deps" not in entry:
                        continue  # outputs not built or not cached: not the lock's fault
                    for key, state in entry["changed deps"].items():
                        dep = by_key[key]
                        path = dep.def_path
                        if isinstance(dep, ParamsDependency):
                            reasons += ([f"param {param} {how}" for param, how in state.items()]
                                        if isinstance(state, dict) else [f"{path} {state}"])
                        elif path in new or any(_inside(path, out) or _inside(out, path) for out in made):
                            continue
                        elif state == "deleted" and path in tracked:
                            absent.add(path)
                        else:
                            reasons.append(f"{path} {state}")
                if reasons:
                    stale[stage.name] = reasons
    except DvcException as err:
        raise UserError(f"dvc: {err}") from None
    return stale, defined, sorted(absent)


def check_lock(rev):
    """``(stale, extra, defined)`` for dvc.lock as committed at ``rev``, judged by ``dvc status`` in a copy of
    the workspace that holds it (``workspace_copy``, ``judge_lock``); ``extra``: the stages the lock holds
    that dvc.yaml no longer defines (DVC ignores and keeps them)."""
    text = committed_lock(rev)
    try:
        lock = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise UserError(f"dvc.lock at {rev} is not YAML: {err}") from None
    if not isinstance(lock, dict) or not isinstance(lock.get("stages") or {}, dict):
        raise UserError(f"dvc.lock at {rev} is not a DVC lock file (no `stages:` mapping)")
    with tempfile.TemporaryDirectory(prefix="rnnlm-check-lock-") as tmp:
        not_pulled = workspace_copy(tmp, text)
        stale, defined, absent = judge_lock(tmp, lock)
    if absent:
        files = " ".join(sorted({not_pulled.get(path, f"{path}.dvc") for path in absent}))
        raise UserError(f"data the stages read is not in the workspace ({', '.join(absent)}): "
                        f"fetch it with `dvc pull {files}`")
    extra = sorted(set(lock.get("stages") or {}) - set(defined))
    return stale, extra, defined
