"""tb_plugin.stats against numpy recomputations, eagerly and in tf.function."""

import math

import numpy as np
import pytest

import tensorflow as tf

from tb_plugin import metadata  # noqa: E402
from tb_plugin import stats  # noqa: E402

P = metadata.PROBABILITY_BINS


def np_hist(values, lo, hi, bins, mask=None):
    v = np.asarray(values, np.float64).ravel()
    keep = np.isfinite(v)
    if mask is not None:
        keep &= np.asarray(mask, bool).ravel()
    v = np.clip(v[keep], lo, hi)
    return np.histogram(v, bins=bins, range=(lo, hi))[0].astype(np.float64)


def np_softmax(x):
    x = np.asarray(x, np.float64)
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def np_multiclass(x, y, from_logits):
    x = np.asarray(x, np.float64)
    p = np_softmax(x) if from_logits else x / x.sum(-1, keepdims=True)
    q = p
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.where(q > 0, q * np.log(np.where(q > 0, q, 1)), 0).sum(-1)
    k = x.shape[1]
    mx = x.max(-1, keepdims=True)
    ties = ((x == mx).sum(-1) > 1)
    pred = x.argmax(-1)
    top1 = (np_softmax(x) if from_logits else x).max(-1)
    out = {
        "entropy": ent.mean() / math.log(k),
        "tie_fraction": ties.mean(),
        "count": len(x),
        "nonfinite": 0,
        "top1": np_hist(top1, 0, 1, P),
        "classp": np_hist(np_softmax(x) if from_logits else x, 0, 1, P),
        "pred_counts": np.bincount(pred, minlength=k),
    }
    if from_logits:
        out["zero_logit_fraction"] = (x == 0).mean()
    if y is not None:
        out["accuracy"] = (pred == y).mean()
        out["tie_tolerant_accuracy"] = (x[np.arange(len(x)), y] >= mx[:, 0]).mean()
        out["label_counts"] = np.bincount(y, minlength=k)
    return out


def finalize(fn, *args, **kwargs):
    sums = fn(*args, **kwargs)
    return sums


@pytest.mark.parametrize("graph", [False, True])
@pytest.mark.parametrize("from_logits", [True, False])
def test_multiclass_matches_numpy(graph, from_logits):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(64, 7)).astype(np.float32)
    logits[:5] = 0.0  # seed 000: ReLU logits all zero -> uniform, tied rows
    logits[5, [2, 4]] = 3.0  # a tie not at index 0
    logits[5, [0, 1, 3, 5, 6]] = -1.0
    y = rng.integers(0, 7, size=64).astype(np.int64)
    y[5] = 4  # tie-tolerant hit, argmax miss (argmax picks 2)
    outputs = logits if from_logits else np_softmax(logits).astype(np.float32)

    def compute(o, lab):
        sums = stats.multiclass_sums(o, lab, from_logits=from_logits)
        return stats.finalize_prediction_sums(sums, metadata.TASK_MULTICLASS, 7)

    if graph:
        compute = tf.function(compute)
    scalars, hists = compute(tf.constant(outputs), tf.constant(y))
    ref = np_multiclass(outputs, y, from_logits)
    np.testing.assert_allclose(scalars["entropy"], ref["entropy"], rtol=1e-5)
    if from_logits:
        np.testing.assert_allclose(scalars["zero_logit_fraction"], ref["zero_logit_fraction"])
        # With logits the softmax of a zero row is exactly uniform and tied.
        assert ref["tie_fraction"] >= 6 / 64
    else:
        assert "zero_logit_fraction" not in scalars
    np.testing.assert_allclose(scalars["tie_fraction"], ref["tie_fraction"])
    np.testing.assert_allclose(scalars["accuracy"], ref["accuracy"])
    np.testing.assert_allclose(scalars["tie_tolerant_accuracy"], ref["tie_tolerant_accuracy"])
    assert float(scalars["tie_tolerant_accuracy"]) > float(scalars["accuracy"])
    assert float(scalars["count"]) == 64
    np.testing.assert_array_equal(hists["top1_probability"], ref["top1"])
    np.testing.assert_array_equal(hists["class_probability"], ref["classp"])
    np.testing.assert_array_equal(hists["predicted_classes"], ref["pred_counts"])
    np.testing.assert_array_equal(hists["label_classes"], ref["label_counts"])


def test_uniform_logits_match_in_top_k():
    """Seed 000: all-zero logits; in_top_k says 100% accuracy, argmax doesn't."""
    logits = tf.zeros([32, 7])
    y = tf.constant(np.arange(32) % 7, tf.int32)
    sums = stats.multiclass_sums(logits, y, from_logits=True)
    scalars, hists = stats.finalize_prediction_sums(sums, metadata.TASK_MULTICLASS, 7)
    in_top_k = tf.reduce_mean(tf.cast(tf.nn.in_top_k(y, logits, 1), tf.float32))
    assert float(scalars["tie_tolerant_accuracy"]) == float(in_top_k) == 1.0
    np.testing.assert_allclose(scalars["accuracy"], np.mean(np.arange(32) % 7 == 0))
    np.testing.assert_allclose(scalars["entropy"], 1.0, rtol=1e-6)
    assert float(scalars["tie_fraction"]) == 1.0
    assert float(scalars["zero_logit_fraction"]) == 1.0
    # 1/7 falls in bin floor(40/7) = 5 for every class probability.
    expected = np.zeros(P)
    expected[int(P / 7)] = 32 * 7
    np.testing.assert_array_equal(hists["class_probability"], expected)
    expected_pred = np.zeros(7)
    expected_pred[0] = 32
    np.testing.assert_array_equal(hists["predicted_classes"], expected_pred)


def test_tie_tolerant_matches_in_top_k_random():
    rng = np.random.default_rng(1)
    logits = rng.integers(-2, 3, size=(200, 5)).astype(np.float32)  # many ties
    y = rng.integers(0, 5, size=200).astype(np.int32)
    sums = stats.multiclass_sums(logits, y, from_logits=True)
    expected = np.mean(tf.nn.in_top_k(y, logits, 1).numpy())
    np.testing.assert_allclose(sums["tie_tolerant_correct"] / sums["labeled_rows"], expected)


def test_one_hot_labels_and_additivity():
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(40, 4)).astype(np.float32)
    y = rng.integers(0, 4, size=40)
    onehot = np.eye(4, dtype=np.float32)[y]
    a = stats.multiclass_sums(logits, onehot, from_logits=True)
    b = stats.multiclass_sums(logits, y, from_logits=True)
    for key in b:
        np.testing.assert_allclose(a[key], b[key])
    halves = [stats.multiclass_sums(logits[:15], y[:15], True),
              stats.multiclass_sums(logits[15:], y[15:], True)]
    for key in b:
        np.testing.assert_allclose(halves[0][key] + halves[1][key], b[key], rtol=1e-5)


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16])
def test_low_precision_inputs(dtype):
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(16, 3))
    x = tf.cast(tf.constant(logits), dtype)
    sums = stats.multiclass_sums(x, None, from_logits=True)
    scalars, _ = stats.finalize_prediction_sums(sums, metadata.TASK_MULTICLASS, 3)
    xr = tf.cast(x, tf.float32).numpy()
    ref = np_multiclass(xr, None, True)
    np.testing.assert_allclose(scalars["entropy"], ref["entropy"], rtol=1e-4)
    g = stats.gradient_stats_many([tf.cast(tf.constant([[3.0, 4.0]]), dtype)])
    np.testing.assert_allclose(g["norm"], [5.0])


def test_out_of_range_labels_are_not_counted():
    rng = np.random.default_rng(13)
    logits = rng.normal(size=(40, 5)).astype(np.float32)
    logits[:4] = 0.0  # ties
    y = rng.integers(0, 5, size=40)
    y[[1, 7, 30]] = [-1, 5, 9]  # not classes of a 5-class output
    sums = stats.multiclass_sums(logits, y, from_logits=True)
    scalars, hists = stats.finalize_prediction_sums(sums, metadata.TASK_MULTICLASS, 5)
    ok = (y >= 0) & (y < 5)
    ref = np_multiclass(logits[ok], y[ok], True)
    assert float(sums["labeled_rows"]) == ok.sum()
    np.testing.assert_allclose(scalars["accuracy"], ref["accuracy"])
    np.testing.assert_allclose(scalars["tie_tolerant_accuracy"], ref["tie_tolerant_accuracy"])
    np.testing.assert_array_equal(hists["label_classes"], ref["label_counts"])


def test_nonfinite_rows_are_counted_not_propagated():
    logits = np.array([[1.0, 2.0, 3.0], [np.nan, 0.0, 1.0], [np.inf, 0, 0]], np.float32)
    sums = stats.multiclass_sums(logits, np.array([2, 2, 0]), from_logits=True)
    scalars, hists = stats.finalize_prediction_sums(sums, metadata.TASK_MULTICLASS, 3)
    assert float(scalars["nonfinite"]) == 2
    ref = np_multiclass(logits[:1], None, True)
    np.testing.assert_allclose(scalars["entropy"], ref["entropy"], rtol=1e-5)
    np.testing.assert_allclose(scalars["accuracy"], 1 / 3)
    # Only the finite row is in the histograms (its 3 probabilities once each).
    np.testing.assert_array_equal(hists["top1_probability"], ref["top1"])
    np.testing.assert_array_equal(hists["class_probability"], ref["classp"])


@pytest.mark.parametrize("from_logits", [True, False])
def test_binary_matches_numpy(from_logits):
    rng = np.random.default_rng(4)
    z = rng.normal(size=(50,)).astype(np.float32)
    z[:6] = 0.0  # p == 0.5 exactly: ties
    y = rng.integers(0, 2, size=50)
    p64 = 1 / (1 + np.exp(-z.astype(np.float64)))
    outputs = z if from_logits else (1 / (1 + np.exp(-z))).astype(np.float32)
    sums = stats.binary_sums(outputs[:, None], y.astype(np.float32), from_logits)
    scalars, hists = stats.finalize_prediction_sums(sums, metadata.TASK_BINARY, 1)
    p = p64 if from_logits else outputs.astype(np.float64)
    ent = -(p * np.log(p) + (1 - p) * np.log(1 - p))
    np.testing.assert_allclose(scalars["entropy"], ent.mean() / math.log(2), rtol=1e-4)
    np.testing.assert_allclose(scalars["tie_fraction"], 6 / 50)
    pred = (p > 0.5).astype(int)
    np.testing.assert_allclose(scalars["accuracy"], (pred == y).mean())
    np.testing.assert_allclose(
        scalars["tie_tolerant_accuracy"], ((pred == y) | (p == 0.5)).mean()
    )
    np.testing.assert_array_equal(hists["predicted_classes"], np.bincount(pred, minlength=2))
    np.testing.assert_array_equal(hists["label_classes"], np.bincount(y, minlength=2))
    np.testing.assert_array_equal(hists["top1_probability"], np_hist(np.maximum(p, 1 - p), 0, 1, P))
    np.testing.assert_array_equal(hists["class_probability"], np_hist(p, 0, 1, P))
    if from_logits:
        np.testing.assert_allclose(scalars["zero_logit_fraction"], 6 / 50)


def test_regression_matches_numpy():
    rng = np.random.default_rng(5)
    out = (1000 + 0.01 * rng.normal(size=(30, 1))).astype(np.float32)
    tgt = rng.normal(size=(30, 1)).astype(np.float32) * 3
    lo, hi = stats.finite_range(out)
    sums = stats.regression_sums(out, tgt, lo, hi)
    scalars, hists = stats.finalize_prediction_sums(sums, metadata.TASK_REGRESSION, 1)
    np.testing.assert_allclose(scalars["output_std"], out.astype(np.float64).std(), rtol=1e-3)
    np.testing.assert_allclose(scalars["target_std"], tgt.astype(np.float64).std(), rtol=1e-5)
    assert float(lo) == out.min() and float(hi) == out.max()
    np.testing.assert_array_equal(
        hists["outputs"], np_hist(out, float(lo), float(hi), P)
    )


def test_histogram_edges_clipping_and_exclusion():
    v = np.array([-5.0, 0.0, 0.5, 1.0, 7.0, np.nan, np.inf], np.float32)
    counts = stats.fixed_histogram(v, 0.0, 1.0, 4).numpy()
    np.testing.assert_array_equal(counts, [2, 0, 1, 2])  # clipped, last bin closed
    t = stats.histogram_tensor(counts, 0.0, 1.0).numpy()
    assert t.dtype == np.float64 and t.shape == (4, 3)
    np.testing.assert_allclose(t[:, 0], [0, 0.25, 0.5, 0.75])
    np.testing.assert_allclose(t[:, 1], [0.25, 0.5, 0.75, 1.0])
    c = stats.class_histogram_tensor(tf.constant([3.0, 0.0, 1.0])).numpy()
    np.testing.assert_array_equal(c, [[0, 1, 3], [1, 2, 0], [2, 3, 1]])


def np_log10_histogram(g):
    """log10|g| counts of nonzero finite entries, one bin per power of two."""
    a = np.abs(np.asarray(g, np.float32).ravel())
    a = a[(a > 0) & np.isfinite(a)]
    exponent = np.frexp(a)[1] - 1  # 2**exponent <= a < 2**(exponent + 1)
    lo, _ = metadata.LOG2_RANGE
    bins = np.clip(exponent - lo, 0, metadata.LOG10_BINS - 1)
    return np.bincount(bins, minlength=metadata.LOG10_BINS).astype(np.float64)


def np_gradient_stats(g, w=None, u=None):
    """numpy recomputation of one variable's gradient statistics (float64)."""
    g32 = np.asarray(g).astype(np.float32)  # what the recording casts to
    g64 = g32.astype(np.float64).ravel()
    finite = np.isfinite(g64)
    out = {
        "norm": np.sqrt(np.sum(g64 ** 2)),
        "max_abs": (np.nan if np.isnan(g64).any() else np.abs(g64).max()) if g64.size else 0.0,
        "zero_fraction": (g64 == 0).mean() if g64.size else np.nan,
        "nonfinite": float((~finite).sum()),
        "log10_abs": np_log10_histogram(g32),
    }
    if w is not None:
        w64 = np.asarray(w).astype(np.float32).astype(np.float64)
        out["weight_norm"] = np.linalg.norm(w64)
        if u is not None:
            u64 = np.asarray(u).astype(np.float32).astype(np.float64)
            before = np.linalg.norm(w64 - u64)
            out["update_ratio"] = np.linalg.norm(u64) / before if before > 0 else np.nan
    return out


def assert_gradient_stats(got, i, ref, where=""):
    for key, value in ref.items():
        # counts and max are exact; fractions and norms are float32
        rtol = {"nonfinite": 0, "log10_abs": 0, "max_abs": 0, "zero_fraction": 1e-7}.get(key, 1e-5)
        np.testing.assert_allclose(np.asarray(got[key][i], np.float64), value, rtol=rtol,
                                   err_msg="%s %s" % (key, where))


def test_log10_histogram_matches_numpy():
    rng = np.random.default_rng(6)
    g = (10.0 ** rng.uniform(-15, 6, size=(40, 30)) * rng.choice([-1, 1], size=(40, 30)))
    g = g.astype(np.float32)
    g[0, :10] = 0.0
    g[1, :4] = [2.0 ** -40, 2.0 ** -41, 2.0 ** 13, 2.0 ** 14]  # on and past the ends
    counts = stats.gradient_stats_many([g])["log10_abs"][0].numpy()
    np.testing.assert_array_equal(counts, np_log10_histogram(g))
    assert counts.sum() == (g != 0).sum()
    assert counts[0] >= 2 and counts[-1] >= 2  # clipped into the end bins
    edges = stats.histogram_tensor(counts, *metadata.LOG10_RANGE).numpy()
    np.testing.assert_allclose(edges[:, 0], np.arange(-40, 14) * np.log10(2.0))


def test_log10_histogram_exact_at_powers_of_two():
    # Every power of two in float32's normal range and its two neighbours,
    # split over several variables (each its own histogram).
    powers = 2.0 ** np.arange(-126, 128, dtype=np.float64)
    p = powers.astype(np.float32)
    values = np.concatenate([p, np.nextafter(p, np.float32(0)), np.nextafter(p, np.float32(np.inf))])
    values = values[np.isfinite(values) & (values >= 2.0 ** -126)]  # no subnormals (zeros on CPU)
    values = values * np.where(np.arange(values.size) % 2, -1, 1)
    parts = np.array_split(values.astype(np.float32), 3)
    out = stats.gradient_stats_many([tf.constant(v) for v in parts])
    for i, part in enumerate(parts):
        np.testing.assert_array_equal(out["log10_abs"][i].numpy(), np_log10_histogram(part))
        assert float(out["max_abs"][i]) == np.abs(part).max()


@pytest.mark.parametrize("graph", [False, True])
def test_gradient_stats_match_numpy(graph):
    rng = np.random.default_rng(7)
    g = rng.normal(size=(20, 10)).astype(np.float32) * 1e-3
    g[:3] = 0.0
    w_before = rng.normal(size=(20, 10)).astype(np.float32)
    w_after = w_before - 0.1 * g

    def fn(g, w, u):
        return dict(stats.gradient_stats_many([g]), **stats.weight_stats_many([w], [u]))

    if graph:
        fn = tf.function(fn)
    out = fn(tf.constant(g), tf.constant(w_after), tf.constant(w_after - w_before))
    assert_gradient_stats(out, 0, np_gradient_stats(g, w_after, w_after - w_before))
    np.testing.assert_allclose(
        out["update_ratio"][0],
        np.linalg.norm(w_after.astype(np.float64) - w_before) / np.linalg.norm(w_before),
        rtol=1e-3,
    )


def test_gradient_nonfinite():
    out = stats.gradient_stats_many([tf.constant([1.0, np.nan, np.inf, 0.0])])
    assert float(out["nonfinite"][0]) == 2
    assert np.isnan(float(out["max_abs"][0]))
    assert out["log10_abs"][0].numpy().sum() == 1
    assert float(out["zero_fraction"][0]) == 0.25
    out = stats.gradient_stats_many([tf.constant([1.0, -np.inf])])
    assert float(out["max_abs"][0]) == np.inf


def test_non_numeric_input_raises():
    with pytest.raises(ValueError, match="dtype string"):
        stats.gradient_stats_many([tf.constant(["a"])])


# ---------------------------------------------------------------------------
# Vectorised / host-side paths: same numbers as the reference paths above.


def _gradient_cases(rng):
    gs = [
        rng.normal(size=(30, 9)).astype(np.float32) * 1e-4,
        np.zeros(5, np.float32),
        np.array([1.0, np.nan, np.inf, 0.0, -2.0, -np.inf], np.float32),
        np.zeros((0, 3), np.float32),  # empty variable
        (10.0 ** rng.uniform(-15, 6, size=(7, 7)) * rng.choice([-1, 1], size=(7, 7))).astype(
            np.float32),
        rng.normal(size=(4, 4)).astype(np.float16),
        rng.normal(size=(3,)).astype(np.float64),
    ]
    ws = [rng.normal(size=g.shape).astype(np.float32) for g in gs]
    ws[1][:] = 0.0  # zero weights: update_ratio undefined
    us = [(0.01 * rng.normal(size=g.shape)).astype(np.float32) for g in gs]
    return gs, ws, us


def test_gradient_stats_many_match_numpy():
    gs, ws, us = _gradient_cases(np.random.default_rng(8))
    many = dict(stats.gradient_stats_many(gs), **stats.weight_stats_many(ws, us))
    for i, (g, w, u) in enumerate(zip(gs, ws, us)):
        ref = np_gradient_stats(g, w, u)
        assert set(ref) == set(many)
        assert_gradient_stats(many, i, ref, where=str(i))
    # the empty variable: no entries
    assert float(many["max_abs"][3]) == 0 and np.isnan(float(many["zero_fraction"][3]))
    assert float(many["log10_abs"][3].numpy().sum()) == 0
    assert np.isnan(float(many["max_abs"][2])) and float(many["nonfinite"][2]) == 3


def test_gradient_stats_many_in_tf_function_with_unknown_shapes():
    gs, ws, _ = _gradient_cases(np.random.default_rng(9))
    gs, ws = [g.astype(np.float32) for g in gs], [w.astype(np.float32) for w in ws]
    sig = [[tf.TensorSpec(None, tf.float32)] * len(gs), [tf.TensorSpec(None, tf.float32)] * len(gs)]
    def both(g, w):
        return dict(stats.gradient_stats_many(g), **stats.weight_stats_many(w))

    fn = tf.function(both, input_signature=sig)
    got = fn([tf.constant(g) for g in gs], [tf.constant(w) for w in ws])
    ref = both(gs, ws)
    for key in ref:
        np.testing.assert_allclose(got[key], ref[key], rtol=1e-6)


def test_first_last_ratio_many():
    norms = tf.constant([1e-3, 5.0, 2.0, 7.0])
    np.testing.assert_allclose(stats.first_last_ratio_many(norms, [2, 1, 4, 1]), 5e-4)
    assert stats.first_last_ratio_many(norms, [2, 1, 1, 0]) is None


def _all_sums():
    rng = np.random.default_rng(10)
    logits = rng.normal(size=(50, 5)).astype(np.float32)
    logits[:3] = 0.0
    logits[3, 1] = np.nan
    y = rng.integers(0, 5, size=50)
    z = rng.normal(size=(50,)).astype(np.float32)
    out = []
    for from_logits in (True, False):
        x = logits if from_logits else np.nan_to_num(np_softmax(logits)).astype(np.float32)
        for labels in (y, None):
            out.append(("multiclass", 5, from_logits, labels is not None,
                        stats.multiclass_sums(x, labels, from_logits)))
            out.append(("binary", 1, from_logits, labels is not None,
                        stats.binary_sums(z if from_logits else 1 / (1 + np.exp(-z)),
                                          None if labels is None else (labels > 2), from_logits)))
    for labels in (z * 3, None):
        lo, hi = stats.finite_range(z)
        out.append(("regression", 1, None, labels is not None,
                    stats.regression_sums(z, labels, lo, hi)))
    empty = stats.multiclass_sums(np.zeros((0, 3), np.float32), np.zeros(0, np.int32), True)
    out.append(("multiclass", 3, True, True, empty))  # no rows: NaN ratios
    return out


def test_finalize_numpy_is_bit_identical_to_tf():
    for task, k, from_logits, has_labels, sums in _all_sums():
        ref_s, ref_h = stats.finalize_prediction_sums(sums, task, k)
        np_sums = {key: np.asarray(v) for key, v in sums.items()}
        got_s, got_h = stats.finalize_prediction_sums(np_sums, task, k, backend="numpy")
        assert set(got_s) == set(ref_s) and set(got_h) == set(ref_h)
        for key in ref_s:
            a = np.asarray(ref_s[key], np.float32)
            b = np.asarray(got_s[key], np.float32)
            assert a.tobytes() == b.tobytes(), (task, key, a, b)
        for key in ref_h:
            np.testing.assert_array_equal(ref_h[key], got_h[key])


def test_prediction_sums_spec_and_packing():
    for task, k, from_logits, has_labels, sums in _all_sums():
        spec = stats.prediction_sums_spec(task, k, has_labels, bool(from_logits))
        assert [key for key, _, _ in spec] == [key for key, _, _ in spec]  # ordered list
        assert {key for key, _, _ in spec} == set(sums), task
        for key, shape, dtype in spec:
            assert tuple(sums[key].shape) == shape and sums[key].dtype == dtype, (task, key)
        flat = stats.pack_sums(sums, spec)
        assert flat.dtype == tf.float64 and flat.shape.rank == 1
        back = stats.unpack_sums(flat.numpy(), spec)
        for key in sums:
            np.testing.assert_array_equal(back[key], sums[key].numpy())
            assert back[key].dtype == sums[key].dtype.as_numpy_dtype


def test_multiclass_sample_weights_sum_per_label_class():
    # Weights of rows with an invalid label (-1, 9) are left out; the spec,
    # packing and both finalize backends carry label_weights.
    rng = np.random.default_rng(4)
    logits = rng.normal(size=(30, 4)).astype(np.float32)
    y = rng.integers(0, 4, size=30)
    y[:2] = [-1, 9]
    w = rng.uniform(0.1, 3.0, size=(30, 1)).astype(np.float32)
    sums = tf.function(stats.multiclass_sums)(logits, y, True, w)
    ok = (y >= 0) & (y < 4)
    expected = np.bincount(y[ok], weights=w[ok, 0], minlength=4)
    np.testing.assert_allclose(sums[stats.S_LABEL_WEIGHTS], expected, rtol=1e-5)
    spec = stats.prediction_sums_spec(metadata.TASK_MULTICLASS, 4, True, True, has_weights=True)
    assert {key for key, _, _ in spec} == set(sums)
    back = stats.unpack_sums(stats.pack_sums(sums, spec).numpy(), spec)
    for backend, values in (("tf", sums), ("numpy", back)):
        _, hists = stats.finalize_prediction_sums(values, metadata.TASK_MULTICLASS, 4, backend)
        np.testing.assert_allclose(hists[metadata.PRED_LABEL_WEIGHTS], expected, rtol=1e-5)
    assert stats.S_LABEL_WEIGHTS not in stats.multiclass_sums(logits, None, True, w)


def test_histogram_tensors_static_edges_and_numpy_twins():
    counts = tf.constant(np.arange(40, dtype=np.float32))
    for lo, hi, bins in [(0.0, 1.0, 40), (-12.0, 4.0, 32), (0.1, 0.7, 7)]:
        c = counts[:bins]
        static = stats.histogram_tensor(c, lo, hi).numpy()
        dynamic = stats.histogram_tensor(
            c, tf.constant(lo, tf.float64), tf.constant(hi, tf.float64)).numpy()
        np.testing.assert_array_equal(static, dynamic)
        np.testing.assert_array_equal(stats.histogram_array(c.numpy(), lo, hi), static)
        many = stats.histogram_tensor(tf.stack([c, 2 * c]), lo, hi).numpy()
        np.testing.assert_array_equal(many[1], stats.histogram_tensor(2 * c, lo, hi).numpy())
    k = tf.constant([3.0, 0.0, 1.0])
    np.testing.assert_array_equal(stats.class_histogram_array(k.numpy()),
                                  stats.class_histogram_tensor(k).numpy())


def test_fixed_histogram_static_and_tensor_ranges_bin_alike():
    rng = np.random.default_rng(11)
    v = rng.uniform(-0.2, 1.2, size=5000).astype(np.float32)
    v[:50] = np.linspace(0, 1, 50, dtype=np.float32)  # values on edges
    for lo, hi, bins in [(0.0, 1.0, 40), (0.1, 0.7, 7), (-12.0, 4.0, 32)]:
        a = stats.fixed_histogram(v, lo, hi, bins).numpy()
        b = stats.fixed_histogram(v, tf.constant(lo), tf.constant(hi), bins).numpy()
        np.testing.assert_array_equal(a, b)
    finite = v[np.isfinite(v)]
    np.testing.assert_array_equal(
        stats.fixed_histogram(finite, 0.0, 1.0, 40, assume_finite=True),
        stats.fixed_histogram(finite, 0.0, 1.0, 40))
