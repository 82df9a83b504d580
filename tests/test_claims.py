"""README's claims about the results hold, by margins the gate and the seeds cannot close.

Each claim sits in README's claims block as one bullet of a fixed form, so this test reads them from
README itself (the one place they are stated):

    - **names**: `lstm` beats `ngram` by 0.090 nats on test (0.084 on dev; margin 0.010)
    - **names**: `transformer` and `ngram` are within noise (test 0.008, dev 0.013; margin 0.014)

A "beats" claim holds when the worse model's loss exceeds the better's by at least the margin on
both dev and test, the margin being ``rnnlm.tolerances.claim_margin``: five times what the metrics
gate lets a loss move (so no change the gate passes can reverse the claim) and twice the measured
spread between training seeds of the two models (``tests/claims.py``). A "within noise" claim says
the gap on dev or test is below that margin. The stated gaps must be the metrics' (to what the gate
lets two CPUs differ), and the stated margin the one computed here.
"""

import functools
import json
import re
from pathlib import Path

import pytest

from rnnlm.schema.mixture import mixture_name
from rnnlm.tolerances import claim_margin, rtol_of
from tests.claims import SEED_SPREAD
from tests.pipeline_outputs import metrics_file, require

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BEATS = re.compile(r"^- \*\*(\w+)\*\*: `([\w+]+)` beats `([\w+]+)` by ([\d.]+) nats on test "
                   r"\(([\d.]+) on dev; margin ([\d.]+)\)")
NOISE = re.compile(r"^- \*\*(\w+)\*\*: `([\w+]+)` and `([\w+]+)` are within noise "
                   r"\(test (-?[\d.]+), dev (-?[\d.]+); margin ([\d.]+)\)")


def claims_block():
    text = README.read_text(encoding="utf-8")
    return text.split("<!-- claims:begin -->")[1].split("<!-- claims:end -->")[0]


def stated_claims():
    """``[(kind, corpus, a, b, test gap, dev gap, margin)]`` of every claim bullet; a bullet of
    another form fails (a claim must be checkable)."""
    found = []
    for line in claims_block().splitlines():
        if not line.startswith("- "):
            continue
        beats, noise = BEATS.match(line), NOISE.match(line)
        assert beats or noise, f"README claim of no checkable form: {line}"
        if beats:
            corpus, a, b, test, dev, margin = beats.groups()
            found.append(("beats", corpus, a, b, float(test), float(dev), float(margin)))
        else:
            corpus, a, b, test, dev, margin = noise.groups()
            found.append(("noise", corpus, a, b, float(test), float(dev), float(margin)))
    return found


CLAIMS = stated_claims()


def loss_rtol(corpus, model):
    """What the gate lets this model's loss move, relative (its file's tolerance: rnnlm.tolerances)."""
    return rtol_of("loss", metrics_file(corpus, model))


@functools.cache
def metrics(corpus, model):
    """``model``'s metrics file, read once (a mixture's must mix the kinds its name says)."""
    require(metrics_file(corpus, model))
    data = json.loads((ROOT / metrics_file(corpus, model)).read_text(encoding="utf-8"))
    if "+" in model:
        assert mixture_name(data["kinds"]) == model, f"{corpus}: the mixture is not {model}"
    return data


def loss(corpus, model, split):
    return metrics(corpus, model)[split]["loss"]


def test_readme_states_claims_of_every_corpus():
    assert {corpus for _, corpus, *_ in CLAIMS} == set(SEED_SPREAD)
    assert any(kind == "beats" for kind, *_ in CLAIMS)


@pytest.mark.parametrize("kind, corpus, a, b, test, dev, margin", CLAIMS,
                         ids=[f"{c[1]}:{c[2]}-{c[3]}" for c in CLAIMS])
def test_each_claim_holds_by_its_margin(kind, corpus, a, b, test, dev, margin):
    spread = max(SEED_SPREAD[corpus].get(m, 0.0) for m in (a, b))
    gaps = {split: loss(corpus, b, split) - loss(corpus, a, split) for split in ("dev", "test")}
    rtol = max(loss_rtol(corpus, m) for m in (a, b))  # the looser of the two files' tolerances
    needed = max(claim_margin(loss(corpus, a, split), spread, rtol) for split in ("dev", "test"))
    assert margin == pytest.approx(needed, abs=6e-4), "README's margin is not claim_margin's"
    # the stated gaps are the metrics' to what two CPUs may differ (each loss within the gate's tolerance)
    for split, stated in (("dev", dev), ("test", test)):
        slack = 2 * rtol * max(loss(corpus, a, split), loss(corpus, b, split)) + 6e-4
        assert abs(gaps[split] - stated) <= slack, (split, gaps[split], stated)
    if kind == "beats":
        assert min(gaps.values()) >= needed, f"{a} beats {b} by {gaps}, less than the margin {needed:.4f}"
    else:
        assert min(abs(g) for g in gaps.values()) < needed, f"{a} and {b} differ by {gaps}: not within noise"
