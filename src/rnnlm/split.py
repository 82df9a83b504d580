"""Train/dev/test splits: the seed notebook's shuffle, or a category-stratified split.

The split is decided on row indices (and labels, to stratify) only: ``split_indices`` never sees
the texts, so a stage can pick rows from the file by position and keep memory small.

Every split must hold at least one row: ``split_sizes`` gives the sizes a split of ``n`` rows will
have (the same floors the two splits take), and ``minimum_rows`` the fewest rows from which no split
is empty for the given fractions, which a refusal names.
"""

import math

import random
from collections import Counter

import numpy as np

from .errors import UserError


def shuffled_split(n, cfg):
    """The seed's split: shuffle with ``random.seed(123)``, then first 80% / next 10% / rest.

    A private ``random.Random(seed)`` gives the same permutation as seeding the global generator
    (as the notebook did) without touching global state other code may rely on. The permutation
    depends only on the number of items, so shuffling their indices orders them as the notebook did.
    """
    order = list(range(n))
    random.Random(cfg.seed).shuffle(order)
    order = np.asarray(order, dtype=np.int64)
    n_train = int(cfg.train * n)
    n_dev = int((cfg.train + cfg.dev) * n)
    return {"train": order[:n_train], "dev": order[n_train:n_dev], "test": order[n_dev:]}


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


def _codes(strata):
    """Strata as int32 codes numbered in the labels' sorted order.

    scikit-learn only uses ``np.unique(stratify, return_inverse=True)``, so codes in sorted order
    give the very split the strings give, without a fixed-width string array the size of the corpus.
    """
    code = {label: i for i, label in enumerate(sorted(set(strata)))}
    return np.fromiter((code[label] for label in strata), dtype=np.int32, count=len(strata))


def stratified_split(labels, cfg):
    """Indices for train/dev/test (fractions from cfg) keeping each label's share in every split, seeded."""
    from sklearn.model_selection import train_test_split  # imported here: a second only this split needs

    strata = _strata(labels, 3)
    index = np.arange(len(labels))
    try:
        train_idx, rest_idx = train_test_split(index, train_size=cfg.train, random_state=cfg.seed,
                                               stratify=_codes(strata))
        dev_share = cfg.dev / (cfg.dev + cfg.test)
        rest_strata = _strata([strata[i] for i in rest_idx], 2)
        dev_idx, test_idx = train_test_split(rest_idx, train_size=dev_share, random_state=cfg.seed,
                                             stratify=_codes(rest_strata))
    except ValueError as err:
        raise UserError(f"cannot make a stratified split of {len(labels)} rows: {err}") from None
    return {"train": train_idx, "dev": dev_idx, "test": test_idx}


def split_sizes(n, cfg):
    """``{"train", "dev", "test"}`` row counts of a split of ``n`` rows, as the split makes them.

    The shuffled split cuts at ``int(train·n)`` and ``int((train + dev)·n)``; the stratified one
    takes ``floor(train·n)`` rows for training (scikit-learn's ``train_size``), then
    ``floor(dev / (dev + test)·rest)`` of the rest for dev.
    """
    if not cfg.stratify:
        n_train, n_until_test = int(cfg.train * n), int((cfg.train + cfg.dev) * n)
        return {"train": n_train, "dev": n_until_test - n_train, "test": n - n_until_test}
    n_train = math.floor(cfg.train * n)
    rest = n - n_train
    n_dev = math.floor(cfg.dev / (cfg.dev + cfg.test) * rest)
    return {"train": n_train, "dev": n_dev, "test": rest - n_dev}


def minimum_rows(cfg):
    """The fewest rows from which every larger count too leaves no split empty, for ``cfg``'s fractions.

    Past ``2 / f`` rows (``f`` the smallest fraction) each split gets at least one row whatever the
    floors and float rounding do, so the answer is one more than the largest count below that which
    leaves a split empty.
    """
    bound = math.ceil(2 / min(cfg.train, cfg.dev, cfg.test)) + 1
    failing = [n for n in range(1, bound + 1) if min(split_sizes(n, cfg).values()) < 1]
    return max(failing, default=0) + 1


def require_nonempty_splits(n, cfg):
    """A UserError naming the minimum number of rows if a split of ``n`` rows would leave one empty."""
    sizes = split_sizes(n, cfg)
    empty = [name for name, size in sizes.items() if size < 1]
    if empty:
        fractions = f"train {cfg.train:g}, dev {cfg.dev:g}, test {cfg.test:g}" + (", stratified" if cfg.stratify else "")
        raise UserError(f"{n} rows leave the {' and '.join(empty)} split{'s' if len(empty) > 1 else ''} empty: "
                        f"the split's fractions ({fractions}) need at least {minimum_rows(cfg)} rows")


def split_indices(n, labels, cfg):
    """Which rows go to each split: {split: int64 array of row indices} in the order they are written.

    ``labels`` holds each row's category (None where a row has none); it is read only to stratify.
    Too few rows for a non-empty train, dev and test split are a user error naming the minimum.
    """
    require_nonempty_splits(n, cfg)
    if not cfg.stratify:
        return shuffled_split(n, cfg)
    if any(label is None for label in labels):
        raise UserError("params split stratify is true but the rows have no category "
                        "(set ingest category_field)")
    return stratified_split(labels, cfg)


def split_rows(rows, cfg):
    """Split ingested rows ({"text", ["category"]}) held in memory; returns {split: [row, ...]}."""
    parts = split_indices(len(rows), [row.get("category") for row in rows], cfg)
    return {name: [rows[i] for i in idx] for name, idx in parts.items()}


def category_counts(labels, parts):
    """Rows per category in each split, from the labels and ``split_indices``' result."""
    return {name: dict(sorted(Counter(labels[i] for i in idx).items())) for name, idx in parts.items()}
