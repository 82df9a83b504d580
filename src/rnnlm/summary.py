"""Aggregating per-seed results: mean, sample standard deviation and range (written only for several seeds)."""

import statistics


def mean_std(values):
    values = [float(v) for v in values]
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "n": len(values), "min": min(values), "max": max(values)}


def seed_spread(per_seed):
    """``per_seed``: list of {"dev": {...}, "test": {...}} -> {"dev_loss": {"mean","std","n","min","max"}, ...}."""
    spread = {}
    for split in ("dev", "test", "dev_test")[:3 if "dev_test" in per_seed[0] else 2]:  # dev_test: a stream's
        for key in ("loss", "perplexity", "accuracy", "bits_per_char"):
            spread[f"{split}_{key}"] = mean_std(result[split][key] for result in per_seed)
    return spread


def with_seed_spread(headline, per_seed, **spreads):
    """The metrics file of a model: its headline (first seed) record, and with more than one seed
    ``seeds``, the spread of every split metric and of each of ``spreads`` (name -> per-seed values).

    One run has no spread: its mean, lowest and highest would repeat the headline numbers, and
    every ``dvc metrics diff`` of the file would list them a second time.
    """
    if len(per_seed) < 2:
        return headline
    return headline | {"seeds": seed_spread(per_seed) | {name: mean_std(values) for name, values in spreads.items()}}
