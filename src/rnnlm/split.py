"""Train/dev/test splits: the seed notebook's shuffle, or a category-stratified split."""

import random
from collections import Counter

from sklearn.model_selection import train_test_split

from .errors import UserError


def shuffled_split(items, cfg):
    """The seed's split: shuffle with ``random.seed(123)``, then first 80% / next 10% / rest.

    A private ``random.Random(seed)`` gives the same permutation as seeding the global generator
    (as the notebook did) without touching global state other code may rely on.
    """
    items = list(items)
    random.Random(cfg.seed).shuffle(items)
    n_train = int(cfg.train * len(items))
    n_dev = int((cfg.train + cfg.dev) * len(items))
    return {"train": items[:n_train], "dev": items[n_train:n_dev], "test": items[n_dev:]}


RARE = "<rare>"


def _strata(labels, minimum):
    """Labels with fewer than ``minimum`` rows pooled into one stratum (scikit-learn needs at least
    two rows per stratum at each cut); a pool still too small joins the largest label."""
    counts = Counter(labels)
    pooled = [lab if counts[lab] >= minimum else RARE for lab in labels]
    if 0 < pooled.count(RARE) < minimum:
        largest = counts.most_common(1)[0][0]
        pooled = [largest if lab == RARE else lab for lab in pooled]
    return pooled


def stratified_split(items, labels, cfg):
    """train/dev/test (fractions from cfg) keeping each label's share in every split, seeded."""
    strata = _strata(labels, 3)
    index = list(range(len(items)))
    try:
        train_idx, rest_idx = train_test_split(index, train_size=cfg.train, random_state=cfg.seed, stratify=strata)
        dev_share = cfg.dev / (cfg.dev + cfg.test)
        rest_strata = _strata([strata[i] for i in rest_idx], 2)
        dev_idx, test_idx = train_test_split(rest_idx, train_size=dev_share, random_state=cfg.seed,
                                             stratify=rest_strata)
    except ValueError as err:
        raise UserError(f"cannot make a stratified split of {len(items)} rows: {err}") from None
    return {"train": [items[i] for i in train_idx], "dev": [items[i] for i in dev_idx],
            "test": [items[i] for i in test_idx]}


def split_rows(rows, cfg):
    """Split ingested rows ({"text", ["category"]}); returns {split: [row, ...]}."""
    if len(rows) < 3:
        raise UserError(f"need at least 3 rows to make train/dev/test splits, got {len(rows)}")
    if not cfg.stratify:
        return shuffled_split(rows, cfg)
    if any("category" not in row for row in rows):
        raise UserError("params split stratify is true but the rows have no category "
                        "(set ingest category_field)")
    return stratified_split(rows, [row["category"] for row in rows], cfg)


def category_counts(splits):
    return {name: dict(sorted(Counter(r.get("category") for r in rows).items()))
            for name, rows in splits.items()}
