"""README's claims: the rule that judges one, and the lines it allows (tests/test_claims.py checks README with it).

A claim compares two models' losses on one corpus, split by split (dev and test), against a margin per
split, ``rnnlm.tolerances.claim_margin``: max(2 x the larger seed spread of the two models on that split,
the sum of their gate bands), in nats. Seed spreads: ``rnnlm.seed_spread``.

- "`a` beats `b`": b's loss exceeds a's by at least the margin on dev AND on test;
- "`a` and `b` are within noise": the gap is below the margin on dev AND on test;
- anything else (one split beyond the margin, the other not) supports no claim.

The stated gaps are the committed metrics' rounded to the stated digits, and the stated margin the
larger of the two splits' margins, rounded likewise. The numbers are the committed ones (``git show
HEAD:``): what a rerun on another CPU produces is the gate's to judge.

Print README's claim lines from the committed metrics, choosing "beats" or "within noise" by the rule:

    python -m tests.claims                                   # the pairs README states now
    python -m tests.claims shakespeare:lstm:ngram names:gru:ngram   # corpus:a:b pairs (either order)
"""

import sys

from rnnlm.schema.mixture import mixture_name
from rnnlm.seed_spread import SEED_SPREAD, MissingSpread  # noqa: F401  (re-exported for the tests)
from rnnlm.tolerances import claim_margin
from tests.pipeline_outputs import committed_json, metrics_file

SPLITS = ("dev", "test")
DIGITS = 3  # README states gaps and margins to 3 decimals
HALF = 0.5 * 10 ** -DIGITS + 1e-9


def committed_losses(corpus, model):
    """``{"dev": loss, "test": loss}`` of ``model`` as committed at HEAD (a mixture's file must mix the kinds
    its name says)."""
    data = committed_json(metrics_file(corpus, model))
    if "+" in model:
        assert mixture_name(data["kinds"]) == model, f"{corpus}: the committed mixture is not {model}"
    return {split: data[split]["loss"] for split in SPLITS}


def margins(corpus, a, b, losses):
    """``{split: margin}`` of a claim between ``a`` and ``b`` (``losses``: ``{model: {split: loss}}``)."""
    return {split: claim_margin(corpus, a, b, split, losses[a][split], losses[b][split]) for split in SPLITS}


def gaps(a, b, losses):
    """``{split: b's loss - a's}`` (positive where ``a`` is better)."""
    return {split: losses[b][split] - losses[a][split] for split in SPLITS}


def verdict(corpus, a, b, losses):
    """``"beats"`` (``a`` beats ``b``), ``"beaten"`` (``b`` beats ``a``), ``"noise"`` or ``None`` (no claim)."""
    gap, margin = gaps(a, b, losses), margins(corpus, a, b, losses)
    if all(gap[s] >= margin[s] for s in SPLITS):
        return "beats"
    if all(-gap[s] >= margin[s] for s in SPLITS):
        return "beaten"
    if all(abs(gap[s]) < margin[s] for s in SPLITS):
        return "noise"
    return None


def check_claim(kind, corpus, a, b, test, dev, margin, losses):
    """The problems of one stated claim (``kind`` "beats" or "noise", as README's line states it: the
    stated test and dev gaps and margin) against ``losses`` (``{model: {"dev": loss, "test": loss}}``);
    [] when it holds."""
    try:
        needed = margins(corpus, a, b, losses)
    except MissingSpread as err:
        return [str(err)]
    gap, problems = gaps(a, b, losses), []
    if abs(margin - max(needed.values())) > HALF:
        problems.append(f"stated margin {margin} is not claim_margin's {max(needed.values()):.4f} "
                        f"(dev {needed['dev']:.4f}, test {needed['test']:.4f})")
    for split, stated in (("dev", dev), ("test", test)):
        if abs(gap[split] - stated) > HALF:
            problems.append(f"stated {split} gap {stated} is not the metrics' {gap[split]:.4f}")
    for split in SPLITS:
        if kind == "beats" and gap[split] < needed[split]:
            problems.append(f"{a} does not beat {b} on {split}: gap {gap[split]:.4f} < margin {needed[split]:.4f}")
        if kind == "noise" and abs(gap[split]) >= needed[split]:
            problems.append(f"{a} and {b} are not within noise on {split}: |gap| {abs(gap[split]):.4f} >= "
                            f"margin {needed[split]:.4f}")
    return problems


def claim_line(corpus, a, b, losses):
    """README's claim line for ``a`` and ``b`` by the rule (the better model first in a "beats"), or a
    ``# no claim`` line saying why none holds."""
    try:
        found = verdict(corpus, a, b, losses)
    except MissingSpread as err:
        return f"# no claim for {corpus}: {a} vs {b}: {err}"
    if found == "beaten":
        a, b, found = b, a, "beats"
    gap, margin = gaps(a, b, losses), max(margins(corpus, a, b, losses).values())
    if found == "beats":
        return (f"- **{corpus}**: `{a}` beats `{b}` by {gap['test']:.{DIGITS}f} nats on test "
                f"({gap['dev']:.{DIGITS}f} on dev; margin {margin:.{DIGITS}f})")
    if found == "noise":
        return (f"- **{corpus}**: `{a}` and `{b}` are within noise (test {gap['test']:.{DIGITS}f}, "
                f"dev {gap['dev']:.{DIGITS}f}; margin {margin:.{DIGITS}f})")
    each = margins(corpus, a, b, losses)
    return (f"# no claim for {corpus}: {a} vs {b}: gaps dev {gap['dev']:.4f}, test {gap['test']:.4f} against "
            f"margins dev {each['dev']:.4f}, test {each['test']:.4f} (no rule holds on both splits)")


def main(argv):
    if argv:
        pairs = [tuple(arg.split(":")) for arg in argv]
    else:
        from tests.test_claims import stated_claims
        pairs = [(corpus, a, b) for _, corpus, a, b, *_ in stated_claims()]
    for corpus, a, b in pairs:
        print(claim_line(corpus, a, b, {m: committed_losses(corpus, m) for m in (a, b)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
