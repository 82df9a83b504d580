"""CI gates: reproduced metrics versus committed ones, and dvc.lock versus the code.

``dvc metrics diff`` shows what changed but cannot say whether a change is within tolerance, and
``dvc status`` mixes "stage code changed without re-running" (a mistake) with "outputs not built
yet" (normal on a fresh clone). These two checks draw those lines.
"""

import json
import math
import subprocess
from pathlib import Path

from .errors import UserError

# Wall-clock figures: they depend on the machine and its load, so they are never compared.
TIMING_KEYS = ("train_seconds", "train_tokens_per_s")


def flatten(obj, prefix=""):
    """{"test": {"loss": 1.0}} -> {"test.loss": 1.0} (numbers only; bools and strings dropped)."""
    flat = {}
    if isinstance(obj, dict):
        for key, value in obj.items():
            flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        flat[prefix] = obj
    return flat


def _run(args, missing_hint):
    """stdout of a command; a UserError (not a traceback) if it is missing or fails."""
    try:
        return subprocess.run(args, check=True, capture_output=True, text=True).stdout
    except FileNotFoundError:
        raise UserError(f"{args[0]} not found: {missing_hint}") from None
    except subprocess.CalledProcessError as err:
        raise UserError(f"{' '.join(args)} failed: {err.stderr.strip()}") from None


def _git(*args):
    return _run(["git", *args], "check-metrics compares with a git revision")


def committed_metrics(rev, metrics_dir):
    """{path: parsed JSON} of every .json under ``metrics_dir`` at git revision ``rev``."""
    names = _git("ls-tree", "-r", "--name-only", rev, "--", str(metrics_dir)).split()
    return {name: json.loads(_git("show", f"{rev}:{name}")) for name in names if name.endswith(".json")}


def workspace_metrics(metrics_dir):
    return {str(p): json.loads(p.read_text(encoding="utf-8")) for p in sorted(Path(metrics_dir).rglob("*.json"))}


def compare_metrics(old, new, rtol=0.01, atol=1e-6, ignore=TIMING_KEYS):
    """Rows (file, key, old, new, problem) for every metric outside ``|new-old| <= atol + rtol*|old|``."""
    rows = []
    for path in sorted(set(old) | set(new)):
        if path not in new:
            rows.append((path, "*", "present", "missing", "file not reproduced"))
            continue
        if path not in old:
            rows.append((path, "*", "missing", "present", "file not committed"))
            continue
        a, b = flatten(old[path]), flatten(new[path])
        for key in sorted(set(a) | set(b)):
            if key.split(".")[-1] in ignore:
                continue
            if key not in a or key not in b:
                rows.append((path, key, a.get(key, "-"), b.get(key, "-"), "key added or removed"))
            elif not math.isclose(b[key], a[key], rel_tol=rtol, abs_tol=atol):
                rel = abs(b[key] - a[key]) / abs(a[key]) if a[key] else math.inf
                rows.append((path, key, a[key], b[key], f"differs by {rel:.2%}"))
    return rows


def format_rows(rows):
    header = ("file", "metric", "committed", "workspace", "problem")
    table = [header] + [tuple(str(c) for c in row) for row in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table)


def stale_stages(status):
    """Stages whose code, params or command changed since dvc.lock, from ``dvc status --json``.

    Outputs that are missing (a fresh clone has no models) and dependencies that are missing
    because an upstream stage has not run yet are expected, and not reported.
    """
    stale = {}
    for stage, changes in status.items():
        if stage.endswith(".dvc"):
            continue
        reasons = []
        for change in changes:
            if change == "changed command":
                reasons.append("command changed")
            elif isinstance(change, dict) and "changed deps" in change:
                for dep, what in change["changed deps"].items():
                    if isinstance(what, dict):  # a params file: {key: "modified" | "new" | "deleted"}
                        reasons += [f"param {key} {state}" for key, state in what.items()]
                    elif what != "deleted":
                        reasons.append(f"{dep} {what}")
        if reasons:
            stale[stage] = reasons
    return stale


def dvc_status():
    return json.loads(_run(["dvc", "status", "--json"], "install the project first (see README)") or "{}")
