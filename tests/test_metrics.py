"""Metrics: hand-computed values, brute-force cross-checks, error cases and the PNG plots."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from deepfake_detect.errors import DataError
from deepfake_detect.metrics import (
    accuracy,
    average_precision,
    compute_metrics,
    eer,
    log_loss,
    roc_auc,
    roc_curve,
    tpr_at_fpr,
)
from deepfake_detect.plotting import plot_curves, plot_roc

Y4 = [0, 0, 1, 1]
S4 = [0.1, 0.4, 0.35, 0.8]


def pairwise_auc(y, s) -> float:
    """Brute force: fraction of (fake, real) pairs ranked correctly, ties 1/2."""
    y, s = np.asarray(y), np.asarray(s, dtype=float)
    pos, neg = s[y == 1], s[y == 0]
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


def brute_ap(y, s) -> float:
    y, s = np.asarray(y), np.asarray(s, dtype=float)
    total, prev_recall = 0.0, 0.0
    for t in sorted(set(s.tolist()), reverse=True):
        called = s >= t
        tp = float((called & (y == 1)).sum())
        precision, recall = tp / called.sum(), tp / (y == 1).sum()
        total += (recall - prev_recall) * precision
        prev_recall = recall
    return total


def trapezoid(x, y) -> float:
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2))


# ---------------------------------------------------------------------------- hand examples


def test_roc_curve_hand_example():
    # scores sorted down: 0.8 (fake), 0.4 (real), 0.35 (fake), 0.1 (real)
    fpr, tpr, thr = roc_curve(Y4, S4)
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 0.5, 1, 1])
    assert thr[0] == np.inf
    np.testing.assert_allclose(thr[1:], [0.8, 0.4, 0.35, 0.1])


def test_roc_curve_groups_ties():
    # 0.6 is shared by a fake and a real: one diagonal step, not two
    fpr, tpr, thr = roc_curve([0, 1, 0, 1], [0.2, 0.6, 0.6, 0.9])
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 1, 1])
    np.testing.assert_allclose(thr[1:], [0.9, 0.6, 0.2])


def test_auc_hand_example():
    # pairs (fake, real): (0.35, 0.1) ok, (0.35, 0.4) wrong, (0.8, 0.1) ok, (0.8, 0.4) ok -> 3/4
    assert roc_auc(Y4, S4) == pytest.approx(0.75)


def test_auc_with_ties_counts_half():
    y = [0, 1, 0, 1, 1]
    s = [0.3, 0.3, 0.5, 0.5, 0.9]
    # fakes 0.3, 0.5, 0.9 against reals 0.3, 0.5:
    #   0.3: tie with 0.3 -> 1/2, below 0.5 -> 0      = 0.5
    #   0.5: above 0.3 -> 1, tie with 0.5 -> 1/2      = 1.5
    #   0.9: above both                               = 2
    # AUC = (0.5 + 1.5 + 2) / (3 * 2) = 4/6
    assert roc_auc(y, s) == pytest.approx(4 / 6)
    fpr, tpr, _ = roc_curve(y, s)
    assert trapezoid(fpr, tpr) == pytest.approx(4 / 6)


def test_all_scores_equal_is_chance():
    assert roc_auc([0, 1, 1, 0, 1], [0.5] * 5) == pytest.approx(0.5)
    assert eer([0, 1, 1, 0], [0.5] * 4) == pytest.approx(0.5)


def test_eer_hand_examples():
    # Y4/S4: ROC points (0,0) (0,.5) (.5,.5) (.5,1) (1,1); at (.5,.5) FPR = FNR = 0.5 exactly
    assert eer(Y4, S4) == pytest.approx(0.5)
    # points (0,0) (0,.5) (.5,1) (1,1): FPR - FNR goes -0.5 -> +0.5 between (0,.5) and (.5,1);
    # halfway: FPR = 0.25, TPR = 0.75, FNR = 0.25
    assert eer([0, 1, 0, 1], [0.2, 0.6, 0.6, 0.9]) == pytest.approx(0.25)


def test_tpr_at_fpr_known_answer():
    # 1001 reals: one scores 0.95, the rest at most 0.5; 100 fakes: 10 at 0.99, 10 at 0.9, 80 at 0.3.
    neg = np.r_[np.linspace(0.0, 0.5, 1000), 0.95]
    pos = np.r_[np.full(10, 0.99), np.full(10, 0.9), np.full(80, 0.3)]
    y = np.r_[np.zeros(neg.size), np.ones(pos.size)]
    s = np.r_[neg, pos]
    # threshold 0.9: 1 false positive, FPR = 1/1001 <= 1e-3, TPR = 20/100;
    # the next threshold (0.5) adds a second false positive: FPR = 2/1001 > 1e-3
    assert tpr_at_fpr(y, s) == pytest.approx(0.2)
    assert tpr_at_fpr(y, s, max_fpr=0.0) == pytest.approx(0.1)  # only thresholds without a false alarm
    # with 999 reals one false positive is already FPR 1/999 > 1e-3: conservative, no interpolation
    y2 = np.r_[np.zeros(999), np.ones(pos.size)]
    s2 = np.r_[np.linspace(0.0, 0.5, 998), 0.95, pos]
    assert tpr_at_fpr(y2, s2) == pytest.approx(0.1)
    assert tpr_at_fpr(y2, s2, max_fpr=1.0) == 1.0


def test_tpr_at_fpr_exactly_one_in_a_thousand():
    # 1000 reals, one of them above every fake: FPR = 1/1000 is allowed (<= 1e-3)
    y = np.r_[np.zeros(1000), np.ones(4)]
    s = np.r_[np.linspace(0, 0.1, 999), 1.0, [0.9, 0.9, 0.8, 0.05]]
    assert tpr_at_fpr(y, s) == pytest.approx(0.75)


def test_average_precision_hand_example():
    # thresholds 0.8: P=1, R=.5; 0.4: P=.5, R=.5; 0.35: P=2/3, R=1; 0.1: P=.5, R=1
    # AP = .5 * 1 + 0 * .5 + .5 * 2/3 + 0 = 0.8333 (scikit-learn's documented example)
    assert average_precision(Y4, S4) == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_average_precision_ties():
    # one threshold for the tie at 0.6 (1 fake, 1 real): P = 2/3 at R = 1 after 0.9 (P=1, R=.5)
    assert average_precision([0, 1, 0, 1], [0.2, 0.6, 0.6, 0.9]) == pytest.approx(0.5 + 0.5 * 2 / 3)
    # all tied: one threshold, precision = prevalence
    assert average_precision([0, 1, 1, 0, 1], [0.5] * 5) == pytest.approx(0.6)


def test_accuracy_and_log_loss():
    assert accuracy(Y4, S4) == pytest.approx(0.75)  # 0.35 (fake) is missed
    assert accuracy(Y4, S4, threshold=0.3) == pytest.approx(0.75)  # 0.4 (real) is a false alarm
    assert accuracy([1, 0], [0.5, 0.49]) == 1.0  # score == threshold counts as fake
    assert log_loss([1, 0], [0.8, 0.3]) == pytest.approx(-(math.log(0.8) + math.log(0.7)) / 2)
    # confident mistakes are clipped at eps
    assert log_loss([0, 1], [1.0, 0.0]) == pytest.approx(-math.log(1e-7), rel=1e-6)
    assert math.isfinite(log_loss([0, 1], [0.0, 1.0]))


def test_perfect_and_reversed():
    y = [0, 0, 0, 1, 1]
    s = [0.1, 0.2, 0.3, 0.8, 0.9]
    m = compute_metrics(y, s)
    assert (m["auc"], m["tpr_at_fpr_1e-3"], m["acc"], m["ap"], m["eer"]) == (1.0, 1.0, 1.0, 1.0, 0.0)
    rev = [1 - v for v in s]
    assert roc_auc(y, rev) == 0.0
    assert tpr_at_fpr(y, rev) == 0.0
    assert eer(y, rev) == 1.0
    assert accuracy(y, rev) == 0.0


def test_compute_metrics_keys_and_types():
    m = compute_metrics(np.array(Y4), np.array(S4))
    assert list(m) == ["auc", "tpr_at_fpr_1e-3", "acc", "ap", "eer", "logloss", "n"]
    assert m["n"] == 4 and isinstance(m["n"], int)
    assert all(isinstance(m[k], float) for k in list(m)[:-1])
    assert m["auc"] == pytest.approx(0.75)
    assert m["tpr_at_fpr_1e-3"] == pytest.approx(0.5)
    assert m["ap"] == pytest.approx(0.8333333)
    assert m["eer"] == pytest.approx(0.5)


def test_accepts_lists_arrays_and_bools():
    expected = roc_auc(Y4, S4)
    assert roc_auc(np.array(Y4), np.array(S4, dtype=np.float32)) == pytest.approx(expected)
    assert roc_auc([False, False, True, True], S4) == pytest.approx(expected)
    assert roc_auc([0.0, 0.0, 1.0, 1.0], tuple(S4)) == pytest.approx(expected)
    assert roc_auc(np.array(Y4)[:, None], np.array(S4)[:, None]) == pytest.approx(expected)


# ----------------------------------------------------------------------- brute-force checks


@pytest.mark.parametrize("seed", range(8))
def test_auc_matches_pairwise_on_random_data_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 400))
    y = rng.integers(0, 2, n)
    y[0], y[1] = 0, 1
    s = rng.integers(0, 6, n) / 5.0 + 0.2 * y * rng.random()  # few distinct values: many ties
    auc = roc_auc(y, s)
    assert auc == pytest.approx(pairwise_auc(y, s), abs=1e-12)
    fpr, tpr, _ = roc_curve(y, s)
    assert trapezoid(fpr, tpr) == pytest.approx(auc, abs=1e-12)
    assert (np.diff(fpr) >= 0).all() and (np.diff(tpr) >= 0).all()
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert average_precision(y, s) == pytest.approx(brute_ap(y, s), abs=1e-12)
    e = eer(y, s)
    assert 0.0 <= e <= 1.0


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 4)), min_size=2, max_size=40))
def test_auc_property_against_pairwise(pairs):
    y = [p[0] for p in pairs]
    s = [p[1] / 4 for p in pairs]
    if len(set(y)) < 2:
        with pytest.raises(DataError, match="one class"):
            roc_auc(y, s)
        return
    assert roc_auc(y, s) == pytest.approx(pairwise_auc(y, s), abs=1e-12)
    assert average_precision(y, s) == pytest.approx(brute_ap(y, s), abs=1e-12)
    # a monotone transform of the scores changes nothing
    assert roc_auc(y, [v**3 + 2 for v in s]) == pytest.approx(roc_auc(y, s), abs=1e-12)
    fpr, tpr, _ = roc_curve(y, s)
    e = eer(y, s)
    # the EER lies between the FPRs, and between the FNRs, of the two points around the crossing
    fnr = 1 - tpr
    i = int(np.argmax(fpr >= fnr))
    j = max(i - 1, 0)
    assert fpr[j] - 1e-12 <= e <= fpr[i] + 1e-12
    assert fnr[i] - 1e-12 <= e <= fnr[j] + 1e-12


# ------------------------------------------------------------------------------ error cases


@pytest.mark.parametrize("fn", [roc_auc, roc_curve, tpr_at_fpr, eer, compute_metrics])
def test_one_class_raises(fn):
    with pytest.raises(DataError, match="only one class"):
        fn([1, 1, 1], [0.2, 0.5, 0.9])
    with pytest.raises(DataError, match="real \\(0\\)"):
        fn([0, 0], [0.2, 0.5])


def test_length_mismatch_raises():
    with pytest.raises(DataError, match="different lengths: 4 labels, 3 scores"):
        roc_auc(Y4, S4[:3])


def test_nan_scores_raise_with_count_and_advice():
    with pytest.raises(DataError) as info:
        roc_auc(Y4, [0.1, float("nan"), np.nan, 0.8])
    msg = str(info.value)
    assert "2 of 4 scores are NaN" in msg and "errors='skip'" in msg
    for fn in (accuracy, log_loss, average_precision, compute_metrics):
        with pytest.raises(DataError, match="NaN"):
            fn(Y4, [0.1, float("nan"), 0.3, 0.8])


def test_bad_labels_named():
    with pytest.raises(DataError, match="got 2 at index 2"):
        roc_auc([0, 1, 2, 1], S4)
    with pytest.raises(DataError, match="-1"):
        accuracy([0, -1], [0.2, 0.3])
    with pytest.raises(DataError, match="0.5"):
        log_loss([0.5, 1], [0.2, 0.3])
    with pytest.raises(DataError, match="labels must be 0"):
        roc_auc(["real", "fake"], [0.1, 0.2])


def test_other_errors():
    with pytest.raises(DataError, match="empty"):
        accuracy([], [])
    with pytest.raises(DataError, match="at least one fake"):
        average_precision([0, 0], [0.1, 0.2])
    with pytest.raises(DataError, match="probabilities"):
        log_loss([0, 1], [-2.0, 3.0])
    with pytest.raises(DataError, match="max_fpr"):
        tpr_at_fpr(Y4, S4, max_fpr=1.5)
    assert isinstance(DataError("x"), Exception)


# ----------------------------------------------------------------------------------- plots


def test_plot_roc_writes_png(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    s = np.clip(rng.normal(0.35 + 0.3 * y, 0.2), 0, 1).round(2)
    out = plot_roc(y, s, tmp_path / "sub" / "roc.png", title="test ROC")
    assert out == tmp_path / "sub" / "roc.png" and out.is_file()
    with Image.open(out) as im:
        assert im.format == "PNG"
        assert im.size == (480, 480)
        im = im.convert("RGB")
        arr = np.asarray(im)
    assert arr.std() > 10  # not a blank image
    # the curve colour (first palette entry) is present
    blue = (np.abs(arr.astype(int) - [31, 119, 180]).sum(-1) < 30).sum()
    assert blue > 200


def test_plot_roc_errors_on_one_class(tmp_path):
    with pytest.raises(DataError, match="one class"):
        plot_roc([1, 1], [0.1, 0.2], tmp_path / "roc.png")
    assert not (tmp_path / "roc.png").exists()


def test_plot_curves_several_series(tmp_path):
    levels = [0, 1, 2, 3, 4]
    out = plot_curves(
        {"jpeg": (levels, [0.99, 0.97, 0.9, 0.8, 0.7]), "blur": (levels, [0.98, np.nan, 0.85, 0.7, 0.65])},
        tmp_path / "robust.png",
        xlabel="severity",
        ylabel="AUC",
        title="AUC vs perturbation",
        size=(400, 300),
    )
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size == (400, 300)
        arr = np.asarray(im.convert("RGB")).astype(int)
    orange = (np.abs(arr - [255, 127, 14]).sum(-1) < 30).sum()
    assert orange > 50
    with pytest.raises(DataError, match="different lengths"):
        plot_curves({"x": ([1, 2], [1])}, tmp_path / "bad.png", xlabel="", ylabel="", title="")


# ------------------------------------------------------------------- against scikit-learn
_scores = st.lists(
    st.tuples(
        st.integers(0, 1),
        st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.5, 0.75, 0.9, 1.0]) | st.floats(0.0, 1.0, allow_nan=False),
    ),
    min_size=2,
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(_scores)
def test_metrics_agree_with_scikit_learn(pairs):
    """AUC, ROC curve, AP, accuracy and log loss against scikit-learn (the ``dev`` extra),
    ties included."""
    skm = pytest.importorskip("sklearn.metrics")
    y = np.array([p[0] for p in pairs])
    s = np.array([p[1] for p in pairs], dtype=np.float64)
    assert accuracy(y, s, 0.5) == pytest.approx(skm.accuracy_score(y, (s >= 0.5).astype(int)))
    assert log_loss(y, s) == pytest.approx(skm.log_loss(y, np.clip(s, 1e-7, 1 - 1e-7), labels=[0, 1]), rel=1e-9)
    if len(set(y.tolist())) < 2:
        return
    assert roc_auc(y, s) == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)
    assert average_precision(y, s) == pytest.approx(skm.average_precision_score(y, s), abs=1e-12)
    fpr, tpr, _ = roc_curve(y, s)
    sk_fpr, sk_tpr, _ = skm.roc_curve(y, s, drop_intermediate=False)
    ours = sorted(set(zip(np.round(fpr, 12), np.round(tpr, 12), strict=True)))
    theirs = sorted(set(zip(np.round(sk_fpr, 12), np.round(sk_tpr, 12), strict=True)))
    assert ours == theirs
