"""Aggregating per-seed results: mean, sample standard deviation and range."""

import statistics


def mean_std(values):
    values = [float(v) for v in values]
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "n": len(values), "min": min(values), "max": max(values)}


def seed_spread(per_seed):
    """``per_seed``: list of {"dev": {...}, "test": {...}} -> {"dev_loss": {"mean","std","n","min","max"}, ...}."""
    spread = {}
    for split in ("dev", "test"):
        for key in ("loss", "perplexity", "accuracy", "bits_per_char"):
            spread[f"{split}_{key}"] = mean_std(result[split][key] for result in per_seed)
    return spread
