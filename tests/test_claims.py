"""README's claims about the results hold, by margins the gate and the seeds cannot close.

Each claim sits in README's claims block as one bullet of a fixed form, so this test reads them from
README itself (the one place they are stated):

    - **names**: `lstm` beats `ngram` by 0.090 nats on test (0.084 on dev; margin 0.010)
    - **names**: `transformer` and `ngram` are within noise (test 0.008, dev 0.013; margin 0.014)

The rule (tests/claims.py, ``check_claim``): per split, the margin is ``rnnlm.tolerances.claim_margin``,
max(2 x the larger seed spread of the two models, the sum of their gate bands), in nats; "beats" needs
the gap at least the margin on dev AND test, "within noise" below it on dev AND test. The stated gaps
are the committed metrics' (``git show HEAD:``) to the stated digits, the stated margin the larger of
the two splits'. A model without a measured seed spread (``rnnlm.seed_spread``) fails its claim.
``python -m tests.claims`` prints the lines the rule allows.
"""

import re
from pathlib import Path

import pytest

from tests.claims import SEED_SPREAD, check_claim, claim_line, committed_losses, margins

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BEATS = re.compile(r"^- \*\*(\w+)\*\*: `([\w+]+)` beats `([\w+]+)` by ([\d.]+) nats on test "
                   r"\(([\d.]+) on dev; margin ([\d.]+)\)")
NOISE = re.compile(r"^- \*\*(\w+)\*\*: `([\w+]+)` and `([\w+]+)` are within noise "
                   r"\(test (-?[\d.]+), dev (-?[\d.]+); margin ([\d.]+)\)")


def claims_block(text=None):
    text = README.read_text(encoding="utf-8") if text is None else text
    return text.split("<!-- claims:begin -->")[1].split("<!-- claims:end -->")[0]


def stated_claims(text=None):
    """``[(kind, corpus, a, b, test gap, dev gap, margin)]`` of every claim bullet of README (or ``text``);
    a bullet of another form fails (a claim must be checkable)."""
    found = []
    for line in claims_block(text).splitlines():
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


def test_readme_states_claims_of_every_corpus():
    assert {corpus for _, corpus, *_ in CLAIMS} == set(SEED_SPREAD)
    assert any(kind == "beats" for kind, *_ in CLAIMS)


@pytest.mark.parametrize("kind, corpus, a, b, test, dev, margin", CLAIMS,
                         ids=[f"{c[1]}:{c[2]}-{c[3]}" for c in CLAIMS])
def test_each_claim_holds_by_its_margin(kind, corpus, a, b, test, dev, margin):
    losses = {m: committed_losses(corpus, m) for m in (a, b)}
    problems = check_claim(kind, corpus, a, b, test, dev, margin, losses)
    assert not problems, "; ".join(problems) + f" (the rule's line: {claim_line(corpus, a, b, losses)})"


# --- the rule, on made-up losses -----------------------------------------------------------------
# names' lstm (seed spread dev 0.0052, test 0.0018) against the n-gram (none): margins, per split,
# max(2 x 0.0052, bands 0.002 + 0.002) ~ 0.0104 on dev and max(2 x 0.0018, 0.004) ~ 0.004 on test.
SYNTHETIC = {"lstm": {"dev": 2.000, "test": 2.000}, "ngram": {"dev": 2.005, "test": 2.060}}


@pytest.fixture
def synthetic_spreads(monkeypatch):
    """The made-up tests judge against these spreads, not the measured table (which a new measurement changes)."""
    monkeypatch.setitem(SEED_SPREAD, "names", {"lstm": {"dev": 0.0052, "test": 0.0018},
                                               "ngram": {"dev": 0.0, "test": 0.0}})


def _line(line):
    """check_claim's problems for one README line (parsed as README's are)."""
    [claim] = stated_claims(f"<!-- claims:begin -->\n{line}\n<!-- claims:end -->")
    return check_claim(*claim, SYNTHETIC)


@pytest.mark.usefixtures("synthetic_spreads")
def test_the_margin_is_per_split_and_covers_both_gate_bands():
    margin = margins("names", "lstm", "ngram", SYNTHETIC)
    assert margin["dev"] == pytest.approx(2 * 0.0052)
    assert margin["test"] == pytest.approx(1e-3 * (2.000 + 2.060))


@pytest.mark.usefixtures("synthetic_spreads")
def test_within_noise_wrong_on_one_split_fails():
    """The dev gap (0.005) is under its margin, the test gap (0.060) is not: no "within noise"."""
    problems = _line("- **names**: `lstm` and `ngram` are within noise (test 0.060, dev 0.005; margin 0.010)")
    assert problems == ["lstm and ngram are not within noise on test: |gap| 0.0600 >= margin 0.0041"]


@pytest.mark.usefixtures("synthetic_spreads")
def test_beats_wrong_on_one_split_fails():
    problems = _line("- **names**: `lstm` beats `ngram` by 0.060 nats on test (0.005 on dev; margin 0.010)")
    assert problems == ["lstm does not beat ngram on dev: gap 0.0050 < margin 0.0104"]


@pytest.mark.usefixtures("synthetic_spreads")
def test_stated_gaps_and_margin_must_be_the_metrics():
    problems = _line("- **names**: `lstm` beats `ngram` by 0.062 nats on test (0.005 on dev; margin 0.004)")
    assert "stated margin 0.004 is not claim_margin's 0.0104 (dev 0.0104, test 0.0041)" in problems
    assert "stated test gap 0.062 is not the metrics' 0.0600" in problems


@pytest.mark.usefixtures("synthetic_spreads")
def test_the_printed_lines_follow_the_rule_and_pass_the_check():
    clear = SYNTHETIC | {"ngram": {"dev": 2.020, "test": 2.050}}
    line = claim_line("names", "ngram", "lstm", clear)   # the better model goes first
    assert line == "- **names**: `lstm` beats `ngram` by 0.050 nats on test (0.020 on dev; margin 0.010)"
    [claim] = stated_claims(f"<!-- claims:begin -->\n{line}\n<!-- claims:end -->")
    assert check_claim(*claim, clear) == []
    close = SYNTHETIC | {"ngram": {"dev": 2.005, "test": 2.001}}
    assert claim_line("names", "lstm", "ngram", close) == (
        "- **names**: `lstm` and `ngram` are within noise (test 0.001, dev 0.005; margin 0.010)")
    assert claim_line("names", "lstm", "ngram", SYNTHETIC).startswith("# no claim for names: lstm vs ngram")


@pytest.mark.usefixtures("synthetic_spreads")
def test_a_model_without_a_measured_spread_fails_its_claim():
    losses = {"gru": {"dev": 2.0, "test": 2.0}, "ngram": {"dev": 2.1, "test": 2.1}}
    [problem] = check_claim("beats", "names", "gru", "ngram", 0.1, 0.1, 0.01, losses)
    assert "no seed spread measured for names/gru" in problem
