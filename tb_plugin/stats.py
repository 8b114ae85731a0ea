"""Per-record statistics of tb_plugin, as TensorFlow ops.

This is the one place where the numbers recorded by :mod:`tb_plugin.summary`
and :class:`tb_plugin.HealthCallback` are computed. Every function works
eagerly and inside ``tf.function``; float16/bfloat16 inputs are cast to
float32 first.

Prediction statistics come in two halves so that they can be accumulated
over many batches (validation) or all-reduced across replicas
(``tf.distribute``): ``*_sums`` functions return a dict of *additive*
sufficient statistics (counts and sums, float32 tensors), and
:func:`finalize_prediction_sums` turns a (possibly summed) dict into the
per-record values named in :mod:`tb_plugin.metadata`.
"""

import math

import tensorflow as tf

from tb_plugin import metadata

_FLOAT_TYPES = (tf.float16, tf.bfloat16, tf.float32, tf.float64)


def to_float(x, name="x"):
    """Converts `x` to a float32 tensor (float64 is kept), checking the dtype."""
    if isinstance(x, tf.IndexedSlices):
        x = tf.convert_to_tensor(x)
    x = tf.convert_to_tensor(x)
    if not (x.dtype.is_floating or x.dtype.is_integer or x.dtype == tf.bool):
        raise ValueError(
            "%s must be a numeric tensor, got dtype %s with shape %s"
            % (name, x.dtype.name, x.shape)
        )
    if x.dtype == tf.float64:
        return tf.cast(x, tf.float32)
    if x.dtype != tf.float32:
        return tf.cast(x, tf.float32)
    return x


# ---------------------------------------------------------------------------
# Histograms


def fixed_histogram(values, lo, hi, bins, weights=None):
    """Counts of `values` in `bins` equal bins over [lo, hi] (float32 [bins]).

    Values outside the range are clipped into the first/last bin; the last
    bin is closed on the right (as ``numpy.histogram``). Entries whose weight
    is 0 are not counted (use this to exclude values); non-finite values are
    always excluded.
    """
    values = tf.reshape(to_float(values, "values"), [-1])
    finite = tf.math.is_finite(values)
    w = tf.cast(finite, tf.float32)
    if weights is not None:
        w = w * tf.reshape(tf.cast(weights, tf.float32), [-1])
    lo = tf.cast(lo, tf.float32)
    hi = tf.cast(hi, tf.float32)
    width = hi - lo
    safe_values = tf.where(finite, values, lo)
    scaled = (safe_values - lo) / tf.where(width > 0, width, 1.0) * float(bins)
    idx = tf.cast(tf.floor(scaled), tf.int32)
    idx = tf.clip_by_value(idx, 0, bins - 1)
    return tf.math.unsorted_segment_sum(w, idx, bins)


def histogram_edges(lo, hi, bins):
    """The bins+1 edges of :func:`fixed_histogram` (float64 tensor)."""
    return tf.linspace(tf.cast(lo, tf.float64), tf.cast(hi, tf.float64), bins + 1)


def histogram_tensor(counts, lo, hi):
    """A TensorBoard histogram tensor: float64 [bins, 3] of (left, right, count)."""
    counts = tf.cast(counts, tf.float64)
    bins = counts.shape[0]
    edges = histogram_edges(lo, hi, bins)
    return tf.stack([edges[:-1], edges[1:], counts], axis=1)


def class_histogram_tensor(counts):
    """Histogram tensor of per-class counts: bins [i, i+1)."""
    counts = tf.cast(counts, tf.float64)
    k = counts.shape[0]
    left = tf.range(k, dtype=tf.float64)
    return tf.stack([left, left + 1.0, counts], axis=1)


def log10_abs_histogram(values):
    """Counts of log10|values| over metadata.LOG10_RANGE in LOG10_BINS bins.

    Exact zeros and non-finite values are excluded; values outside the range
    are clipped into the end bins.
    """
    values = tf.reshape(to_float(values, "values"), [-1])
    a = tf.abs(values)
    nonzero = tf.logical_and(a > 0, tf.math.is_finite(a))
    logs = tf.math.log(tf.where(nonzero, a, 1.0)) / math.log(10.0)
    lo, hi = metadata.LOG10_RANGE
    return fixed_histogram(logs, lo, hi, metadata.LOG10_BINS, weights=nonzero)


# ---------------------------------------------------------------------------
# Predictions

# Keys of the additive sums.
S_COUNT = "count"  # rows
S_FINITE_ROWS = "finite_rows"  # rows with all outputs finite
S_ENTROPY = "entropy_sum"  # sum over finite rows of entropy (nats)
S_TIES = "tie_rows"
S_NONFINITE = "nonfinite"  # non-finite entries
S_ZERO_LOGITS = "zero_logits"  # entries exactly 0 (logits)
S_ENTRIES = "entries"  # entries (rows * K)
S_LABELED = "labeled_rows"
S_CORRECT = "correct"
S_TIE_CORRECT = "tie_tolerant_correct"
S_TOP1_HIST = "top1_hist"
S_CLASS_PROB_HIST = "class_prob_hist"
S_PRED_CLASSES = "predicted_classes"
S_LABEL_CLASSES = "label_classes"
# regression
S_OUT_SUM = "output_sum"
S_OUT_SQ = "output_sq_sum"
S_TGT_SUM = "target_sum"
S_TGT_SQ = "target_sq_sum"
S_OUT_HIST = "output_hist"


def _f(x):
    return tf.cast(x, tf.float32)


def _sparse_labels(labels, batch, num_classes):
    """int32 [batch] class ids from sparse ([batch], [batch,1]) or one-hot labels."""
    labels = tf.convert_to_tensor(labels)
    if labels.shape.rank == 2 and labels.shape[-1] == num_classes and num_classes > 1:
        return tf.argmax(labels, axis=-1, output_type=tf.int32)
    labels = tf.reshape(labels, [-1])
    if labels.dtype.is_floating:
        labels = tf.cast(tf.round(labels), tf.int32)
    return tf.cast(labels, tf.int32)


def multiclass_sums(outputs, labels=None, from_logits=False):
    """Additive statistics of a [batch, K] batch of logits or probabilities.

    Ties, argmax accuracy and tie-tolerant accuracy are evaluated on the
    values given (logits when `from_logits`, as ``tf.nn.in_top_k`` would be
    called on them); entropy and probability histograms on the softmax (or on
    the probabilities, each row normalised to sum 1 for the entropy).
    """
    x = to_float(outputs, "outputs")
    k = x.shape[-1]
    finite_entries = tf.math.is_finite(x)
    row_finite = tf.reduce_all(finite_entries, axis=-1)
    safe = tf.where(finite_entries, x, tf.zeros_like(x))
    if from_logits:
        logp = tf.nn.log_softmax(safe, axis=-1)
        p = tf.exp(logp)
        ent = -tf.reduce_sum(p * logp, axis=-1)
    else:
        p = safe
        total = tf.reduce_sum(p, axis=-1, keepdims=True)
        q = p / tf.where(total > 0, total, 1.0)
        ent = -tf.reduce_sum(
            tf.where(q > 0, q * tf.math.log(tf.where(q > 0, q, 1.0)), 0.0), axis=-1
        )
    rf = _f(row_finite)
    row_max = tf.reduce_max(safe, axis=-1, keepdims=True)
    at_max = tf.equal(safe, row_max)
    tie = tf.logical_and(tf.reduce_sum(tf.cast(at_max, tf.int32), -1) > 1, row_finite)
    pred = tf.argmax(safe, axis=-1, output_type=tf.int32)  # lowest index wins
    top1_p = tf.reduce_max(p, axis=-1)
    pred_counts = tf.math.unsorted_segment_sum(rf, pred, k)
    out = {
        S_COUNT: _f(tf.shape(x)[0]),
        S_FINITE_ROWS: tf.reduce_sum(rf),
        S_ENTROPY: tf.reduce_sum(tf.where(row_finite, ent, 0.0)),
        S_TIES: tf.reduce_sum(_f(tie)),
        S_NONFINITE: tf.reduce_sum(_f(tf.logical_not(finite_entries))),
        S_TOP1_HIST: fixed_histogram(top1_p, 0.0, 1.0, metadata.PROBABILITY_BINS, rf),
        S_CLASS_PROB_HIST: fixed_histogram(
            p,
            0.0,
            1.0,
            metadata.PROBABILITY_BINS,
            tf.broadcast_to(rf[:, None], tf.shape(p)),
        ),
        S_PRED_CLASSES: pred_counts,
    }
    if from_logits:
        out[S_ZERO_LOGITS] = tf.reduce_sum(_f(tf.equal(x, 0.0)))
        out[S_ENTRIES] = _f(tf.size(x))
    if labels is not None:
        y = _sparse_labels(labels, tf.shape(x)[0], k)
        valid = tf.logical_and(y >= 0, y < k)
        y_safe = tf.where(valid, y, 0)
        label_value = tf.gather(safe, y_safe, axis=1, batch_dims=1)
        hit_tol = tf.logical_and(
            tf.logical_and(valid, row_finite), label_value >= tf.squeeze(row_max, -1)
        )
        hit = tf.logical_and(tf.logical_and(valid, row_finite), tf.equal(pred, y))
        out[S_LABELED] = tf.reduce_sum(_f(valid))
        out[S_CORRECT] = tf.reduce_sum(_f(hit))
        out[S_TIE_CORRECT] = tf.reduce_sum(_f(hit_tol))
        out[S_LABEL_CLASSES] = tf.math.unsorted_segment_sum(_f(valid), y_safe, k)
    return out


def binary_sums(outputs, labels=None, from_logits=False):
    """Additive statistics of binary outputs ([batch] or [batch, 1]).

    p = sigmoid(outputs) when `from_logits`, else the outputs. A row is tied
    when p == 0.5 exactly; the predicted class is 1 when p > 0.5 (ties go to
    class 0, the lowest index); a tie counts as a hit for the tie-tolerant
    accuracy. ``class_probability`` is the histogram of p (probability of
    class 1). Labels are thresholded at 0.5.
    """
    x = tf.reshape(to_float(outputs, "outputs"), [-1])
    finite = tf.math.is_finite(x)
    safe = tf.where(finite, x, tf.zeros_like(x))
    p = tf.sigmoid(safe) if from_logits else safe
    pc = tf.clip_by_value(p, 0.0, 1.0)

    def xlogx(v):
        return tf.where(v > 0, v * tf.math.log(tf.where(v > 0, v, 1.0)), 0.0)

    ent = -(xlogx(pc) + xlogx(1.0 - pc))
    rf = _f(finite)
    tie = tf.logical_and(tf.equal(p, 0.5), finite)
    pred = tf.cast(p > 0.5, tf.int32)
    out = {
        S_COUNT: _f(tf.shape(x)[0]),
        S_FINITE_ROWS: tf.reduce_sum(rf),
        S_ENTROPY: tf.reduce_sum(tf.where(finite, ent, 0.0)),
        S_TIES: tf.reduce_sum(_f(tie)),
        S_NONFINITE: tf.reduce_sum(_f(tf.logical_not(finite))),
        S_TOP1_HIST: fixed_histogram(
            tf.maximum(p, 1.0 - p), 0.0, 1.0, metadata.PROBABILITY_BINS, rf
        ),
        S_CLASS_PROB_HIST: fixed_histogram(p, 0.0, 1.0, metadata.PROBABILITY_BINS, rf),
        S_PRED_CLASSES: tf.math.unsorted_segment_sum(rf, pred, 2),
    }
    if from_logits:
        out[S_ZERO_LOGITS] = tf.reduce_sum(_f(tf.equal(x, 0.0)))
        out[S_ENTRIES] = _f(tf.size(x))
    if labels is not None:
        y = tf.reshape(to_float(labels, "labels"), [-1])
        y = tf.cast(y > 0.5, tf.int32)
        hit = tf.logical_and(finite, tf.equal(pred, y))
        out[S_LABELED] = _f(tf.shape(y)[0])
        out[S_CORRECT] = tf.reduce_sum(_f(hit))
        out[S_TIE_CORRECT] = tf.reduce_sum(_f(tf.logical_or(hit, tie)))
        out[S_LABEL_CLASSES] = tf.math.unsorted_segment_sum(
            tf.ones_like(rf), y, 2
        )
    return out


def regression_sums(outputs, targets=None, lo=None, hi=None, bins=None):
    """Additive statistics of regression outputs (any shape, flattened).

    The outputs histogram has `bins` (default PROBABILITY_BINS) equal bins over
    [lo, hi]; by default the finite range of this batch.
    """
    x = tf.reshape(to_float(outputs, "outputs"), [-1])
    finite = tf.math.is_finite(x)
    safe = tf.where(finite, x, tf.zeros_like(x))
    if lo is None or hi is None:
        lo, hi = finite_range(x)
    bins = bins or metadata.PROBABILITY_BINS
    s64 = tf.cast(safe, tf.float64)  # float64 sums: no cancellation in the std
    out = {
        S_COUNT: _f(tf.shape(x)[0]),
        S_FINITE_ROWS: tf.reduce_sum(_f(finite)),
        S_NONFINITE: tf.reduce_sum(_f(tf.logical_not(finite))),
        S_OUT_SUM: tf.reduce_sum(s64),
        S_OUT_SQ: tf.reduce_sum(tf.square(s64)),
        S_OUT_HIST: fixed_histogram(x, lo, hi, bins),
    }
    if targets is not None:
        t = tf.reshape(to_float(targets, "labels"), [-1])
        tfin = tf.math.is_finite(t)
        ts = tf.cast(tf.where(tfin, t, tf.zeros_like(t)), tf.float64)
        out[S_LABELED] = tf.reduce_sum(_f(tfin))
        out[S_TGT_SUM] = tf.reduce_sum(ts)
        out[S_TGT_SQ] = tf.reduce_sum(tf.square(ts))
    return out


def finite_range(x):
    """(min, max) of the finite entries of `x`; (0, 1) when there are none.

    A degenerate range (min == max) is widened by 0.5 on each side.
    """
    x = tf.reshape(to_float(x, "outputs"), [-1])
    finite = tf.math.is_finite(x)
    big = tf.float32.max
    lo = tf.reduce_min(tf.where(finite, x, big))
    hi = tf.reduce_max(tf.where(finite, x, -big))
    any_finite = tf.reduce_any(finite)
    lo = tf.where(any_finite, lo, 0.0)
    hi = tf.where(any_finite, hi, 1.0)
    same = tf.equal(lo, hi)
    return tf.where(same, lo - 0.5, lo), tf.where(same, hi + 0.5, hi)


def _div(a, b):
    """a / b, NaN where b <= 0."""
    a, b = _f(a), _f(b)
    return tf.where(b > 0, a / tf.where(b > 0, b, 1.0), float("nan"))


def _std(total, sq_total, n):
    """Population std from float64 sums (NaN when n == 0)."""
    n = tf.cast(n, tf.float64)
    safe_n = tf.where(n > 0, n, 1.0)
    mean = total / safe_n
    var = tf.maximum(sq_total / safe_n - tf.square(mean), 0.0)
    return tf.where(n > 0, tf.cast(tf.sqrt(var), tf.float32), float("nan"))


def finalize_prediction_sums(sums, task, num_classes):
    """Per-record values from (summed) sufficient statistics.

    Returns ``(scalars, histograms)``: dicts from metadata stat names to a
    float32 scalar / a float32 vector of counts. Histograms of probabilities
    use PROBABILITY_BINS over [0, 1]; class-count histograms one bin per class.
    Stats that cannot be computed from what was given are absent.
    """
    scalars = {metadata.PRED_COUNT: sums[S_COUNT], metadata.PRED_NONFINITE: sums[S_NONFINITE]}
    hists = {}
    if task == metadata.TASK_REGRESSION:
        scalars[metadata.PRED_OUTPUT_STD] = _std(
            sums[S_OUT_SUM], sums[S_OUT_SQ], sums[S_FINITE_ROWS]
        )
        if S_TGT_SUM in sums:
            scalars[metadata.PRED_TARGET_STD] = _std(
                sums[S_TGT_SUM], sums[S_TGT_SQ], sums[S_LABELED]
            )
        hists[metadata.PRED_OUTPUT_HIST] = sums[S_OUT_HIST]
        return scalars, hists
    k = 2 if task == metadata.TASK_BINARY else num_classes
    scalars[metadata.PRED_ENTROPY] = _div(sums[S_ENTROPY], sums[S_FINITE_ROWS]) / math.log(k)
    scalars[metadata.PRED_TIE_FRACTION] = _div(sums[S_TIES], sums[S_FINITE_ROWS])
    if S_ZERO_LOGITS in sums:
        scalars[metadata.PRED_ZERO_LOGIT_FRACTION] = _div(sums[S_ZERO_LOGITS], sums[S_ENTRIES])
    hists[metadata.PRED_TOP1_HIST] = sums[S_TOP1_HIST]
    hists[metadata.PRED_CLASS_PROB_HIST] = sums[S_CLASS_PROB_HIST]
    hists[metadata.PRED_PREDICTED_CLASSES] = sums[S_PRED_CLASSES]
    if S_CORRECT in sums:
        scalars[metadata.PRED_ACCURACY] = _div(sums[S_CORRECT], sums[S_LABELED])
        scalars[metadata.PRED_TIE_TOLERANT_ACCURACY] = _div(
            sums[S_TIE_CORRECT], sums[S_LABELED]
        )
        hists[metadata.PRED_LABEL_CLASSES] = sums[S_LABEL_CLASSES]
    return scalars, hists


# ---------------------------------------------------------------------------
# Gradients and weights


def l2_norm(x):
    """L2 norm of all entries of `x` (float32; NaN/Inf propagate)."""
    x = to_float(x)
    return tf.sqrt(tf.reduce_sum(tf.square(x)))


def gradient_stats(grad, weight=None, update=None):
    """Per-variable statistics of one gradient.

    Returns a dict from metadata GRAD_* names to float32 scalars, plus
    ``GRAD_LOG10_HIST`` -> float32 [LOG10_BINS] counts.

    * norm: L2 norm; max_abs: max |g| (NaN if any NaN); zero_fraction: entries
      exactly 0; nonfinite: count of NaN/Inf entries;
    * weight_norm (when `weight` is given): L2 norm of the weight;
    * update_ratio (when `update` is given too): ||update|| / ||weight - update||,
      i.e. ||w_after - w_before|| / ||w_before|| for `weight` = w_after.
    """
    g = to_float(grad, "gradients")
    size = _f(tf.size(g))
    a = tf.abs(g)
    nan_any = tf.reduce_any(tf.math.is_nan(g))
    max_abs = tf.cond(
        size > 0, lambda: tf.reduce_max(a), lambda: tf.constant(0.0)
    )
    out = {
        metadata.GRAD_NORM: l2_norm(g),
        metadata.GRAD_MAX_ABS: tf.where(nan_any, float("nan"), max_abs),
        metadata.GRAD_ZERO_FRACTION: _div(tf.reduce_sum(_f(tf.equal(g, 0.0))), size),
        metadata.GRAD_NONFINITE: tf.reduce_sum(_f(tf.logical_not(tf.math.is_finite(g)))),
        metadata.GRAD_LOG10_HIST: log10_abs_histogram(g),
    }
    if weight is not None:
        w = to_float(weight, "variables")
        out[metadata.GRAD_WEIGHT_NORM] = l2_norm(w)
        if update is not None:
            u = to_float(update, "updates")
            out[metadata.GRAD_UPDATE_RATIO] = _div(l2_norm(u), l2_norm(w - u))
    return out


def first_last_ratio(norms_and_ranks):
    """Gradient norm of the first rank>=2 variable / that of the last one.

    `norms_and_ranks`: list of (norm tensor, rank int) in depth order. Returns
    None when fewer than two rank>=2 variables are given.
    """
    kernels = [n for n, r in norms_and_ranks if r is not None and r >= 2]
    if len(kernels) < 2:
        return None
    return _div(kernels[0], kernels[-1])
