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

import numpy as np
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


def fixed_histogram(values, lo, hi, bins, weights=None, assume_finite=False):
    """Counts of `values` in `bins` equal bins over [lo, hi] (float32 [bins]).

    Values outside the range are clipped into the first/last bin; the last
    bin is closed on the right (as ``numpy.histogram``). Entries whose weight
    is 0 are not counted (use this to exclude values); non-finite values are
    always excluded (`assume_finite`: the caller guarantees there are none,
    which saves the check).
    """
    values = tf.reshape(to_float(values, "values"), [-1])
    static = _static_number(lo) is not None and _static_number(hi) is not None
    if not static:
        lo = tf.cast(lo, tf.float32)
        hi = tf.cast(hi, tf.float32)
    if assume_finite:
        w = None
        safe_values = values
    else:
        finite = tf.math.is_finite(values)
        w = tf.cast(finite, tf.float32)
        safe_values = tf.where(finite, values, lo)
    if weights is not None:
        weights = tf.reshape(tf.cast(weights, tf.float32), [-1])
        w = weights if w is None else w * weights
    if w is None:
        w = tf.ones_like(values)
    idx = bin_index(safe_values, lo, hi, bins)
    return tf.math.unsorted_segment_sum(w, idx, bins)


def bin_index(values, lo, hi, bins):
    """int32 bin of each (finite) value in `bins` equal bins over [lo, hi].

    Values outside the range go to the first/last bin; the last bin is closed
    on the right. `lo`/`hi` may be Python floats (folded into constants,
    with the float32 arithmetic a tensor `lo`/`hi` would get) or float32
    tensors, so that :func:`fixed_histogram` and the vectorised
    :func:`gradient_stats_many` put every value in the same bin.
    """
    slo, shi = _static_number(lo), _static_number(hi)
    if slo is not None and shi is not None:
        lo32 = np.float32(slo)
        width = np.float32(shi) - lo32  # float32 arithmetic, as in the graph
        scaled = (values - lo32) / (width if width > 0 else np.float32(1.0)) * np.float32(bins)
    else:
        lo = tf.cast(lo, tf.float32)
        hi = tf.cast(hi, tf.float32)
        width = hi - lo
        scaled = (values - lo) / tf.where(width > 0, width, 1.0) * float(bins)
    idx = tf.cast(tf.floor(scaled), tf.int32)
    return tf.clip_by_value(idx, 0, bins - 1)


def histogram_edges(lo, hi, bins):
    """The bins+1 edges of :func:`fixed_histogram` (float64 tensor)."""
    return tf.linspace(tf.cast(lo, tf.float64), tf.cast(hi, tf.float64), bins + 1)


def _static_number(x):
    """`x` as a Python float if it is a Python/numpy number, else None."""
    if isinstance(x, (int, float, np.integer, np.floating)):
        return float(x)
    return None


def static_edges(lo, hi, bins):
    """numpy float64 [bins, 2] (left, right) edges, bit-identical to
    :func:`histogram_edges` (start + i * step, the last edge exactly `hi`)."""
    edges = np.linspace(float(lo), float(hi), bins + 1, dtype=np.float64)
    return np.stack([edges[:-1], edges[1:]], axis=1)


def histogram_tensor(counts, lo, hi):
    """A TensorBoard histogram tensor: float64 [bins, 3] of (left, right, count).

    `counts` may also be [n, bins] (n histograms over the same range), giving
    [n, bins, 3]. With Python-number `lo`/`hi` the edges are one constant.
    """
    counts = tf.cast(counts, tf.float64)
    bins = counts.shape[-1]
    slo, shi = _static_number(lo), _static_number(hi)
    if slo is not None and shi is not None:
        edges = tf.constant(static_edges(slo, shi, bins))
    else:
        e = histogram_edges(lo, hi, bins)
        edges = tf.stack([e[:-1], e[1:]], axis=1)
    if counts.shape.rank == 2:
        if counts.shape.is_fully_defined():
            target = counts.shape.as_list() + [2]
        else:
            target = tf.concat([tf.shape(counts), [2]], 0)
        edges = tf.broadcast_to(edges, target)
    return tf.concat([edges, counts[..., None]], axis=-1)


def histogram_array(counts, lo, hi):
    """numpy twin of :func:`histogram_tensor` for one histogram."""
    counts = np.asarray(counts, dtype=np.float64)
    return np.concatenate([static_edges(lo, hi, counts.shape[-1]), counts[:, None]], axis=1)


def class_histogram_array(counts):
    """numpy twin of :func:`class_histogram_tensor`."""
    counts = np.asarray(counts, dtype=np.float64)
    left = np.arange(counts.shape[0], dtype=np.float64)
    return np.stack([left, left + 1.0, counts], axis=1)


def class_histogram_tensor(counts):
    """Histogram tensor of per-class counts: bins [i, i+1)."""
    counts = tf.cast(counts, tf.float64)
    k = counts.shape[0]
    left = np.arange(k, dtype=np.float64)
    edges = tf.constant(np.stack([left, left + 1.0], axis=1))
    return tf.concat([edges, counts[:, None]], axis=1)


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
S_LABEL_WEIGHTS = "label_weights"  # per class: sum of the sample weights of its rows
# regression
S_OUT_SUM = "output_sum"
S_OUT_SQ = "output_sq_sum"
S_TGT_SUM = "target_sum"
S_TGT_SQ = "target_sq_sum"
S_OUT_HIST = "output_hist"
# regression, per output dimension (D > 1, see regression_dims): [D] vectors
S_OUT_DIM_N = "output_dim_count"  # finite outputs
S_OUT_DIM_SUM = "output_dim_sum"
S_OUT_DIM_SQ = "output_dim_sq_sum"
S_TGT_DIM_N = "target_dim_count"
S_TGT_DIM_SUM = "target_dim_sum"
S_TGT_DIM_SQ = "target_dim_sq_sum"

# Per-dimension spread of regression outputs is recorded for at most this
# many output dimensions (the last axis); wider outputs are judged flattened.
MAX_OUTPUT_DIMS = 4096


def _f(x):
    return tf.cast(x, tf.float32)


def _zero_where_not(keep, x):
    """`x` where `keep` (bool, same shape), else 0 (float32; same result as
    tf.where, several times cheaper on CPU)."""
    return tf.math.multiply_no_nan(x, tf.cast(keep, x.dtype))


def _sparse_labels(labels, batch, num_classes):
    """int32 [batch] class ids from sparse ([batch], [batch,1]) or one-hot labels."""
    labels = tf.convert_to_tensor(labels)
    if labels.shape.rank == 2 and labels.shape[-1] == num_classes and num_classes > 1:
        return tf.argmax(labels, axis=-1, output_type=tf.int32)
    labels = tf.reshape(labels, [-1])
    if labels.dtype.is_floating:
        labels = tf.cast(tf.round(labels), tf.int32)
    return tf.cast(labels, tf.int32)


def multiclass_sums(outputs, labels=None, from_logits=False, sample_weight=None):
    """Additive statistics of a [batch, K] batch of logits or probabilities.

    With labels, a per-row `sample_weight` ([batch] or [batch, 1]) adds the
    sum of the weights of the rows of each class (S_LABEL_WEIGHTS).

    Ties, argmax accuracy and tie-tolerant accuracy are evaluated on the
    values given (logits when `from_logits`, as ``tf.nn.in_top_k`` would be
    called on them); entropy and probability histograms on the softmax (or on
    the probabilities, each row normalised to sum 1 for the entropy).
    """
    x = to_float(outputs, "outputs")
    k = x.shape[-1]
    finite_entries = tf.math.is_finite(x)
    row_finite = tf.reduce_all(finite_entries, axis=-1)
    safe = _zero_where_not(finite_entries, x)
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
        # p is computed from the finite-masked outputs: always finite.
        S_TOP1_HIST: fixed_histogram(
            top1_p, 0.0, 1.0, metadata.PROBABILITY_BINS, rf, assume_finite=True
        ),
        S_CLASS_PROB_HIST: fixed_histogram(
            p,
            0.0,
            1.0,
            metadata.PROBABILITY_BINS,
            tf.broadcast_to(rf[:, None], tf.shape(p)),
            assume_finite=True,
        ),
        S_PRED_CLASSES: pred_counts,
    }
    if from_logits:
        out[S_ZERO_LOGITS] = tf.reduce_sum(_f(tf.equal(x, 0.0)))
        out[S_ENTRIES] = _f(tf.size(x))
    if labels is not None:
        y = _sparse_labels(labels, tf.shape(x)[0], k)
        valid = tf.logical_and(y >= 0, y < k)
        y_safe = tf.clip_by_value(y, 0, k - 1)  # rows of invalid labels are weighted 0
        label_value = tf.gather(safe, y_safe, axis=1, batch_dims=1)
        hit_tol = tf.logical_and(
            tf.logical_and(valid, row_finite), label_value >= tf.squeeze(row_max, -1)
        )
        hit = tf.logical_and(tf.logical_and(valid, row_finite), tf.equal(pred, y))
        out[S_LABELED] = tf.reduce_sum(_f(valid))
        out[S_CORRECT] = tf.reduce_sum(_f(hit))
        out[S_TIE_CORRECT] = tf.reduce_sum(_f(hit_tol))
        out[S_LABEL_CLASSES] = tf.math.unsorted_segment_sum(_f(valid), y_safe, k)
        if sample_weight is not None:
            w = tf.reshape(to_float(sample_weight, "sample_weight"), [-1])
            out[S_LABEL_WEIGHTS] = tf.math.unsorted_segment_sum(
                _zero_where_not(valid, w), y_safe, k)
    return out


def binary_sums(outputs, labels=None, from_logits=False):
    """Additive statistics of binary outputs ([batch] or [batch, 1]; or
    [batch, K, ...]: multi-label, each entry a binary problem of its own).

    p = sigmoid(outputs) when `from_logits`, else the outputs. An entry is
    tied when p == 0.5 exactly; the predicted class is 1 when p > 0.5 (ties
    go to class 0, the lowest index); a tie counts as a hit for the
    tie-tolerant accuracy. ``class_probability`` is the histogram of p
    (probability of class 1). Labels (shaped like the outputs) are
    thresholded at 0.5. Every statistic is over all entries together (for
    multi-label: entropy, ties and accuracy averaged over the labels, class
    counts summed over them) except the count, which counts rows.
    """
    outputs = to_float(outputs, "outputs")
    rows = tf.shape(outputs)[0] if outputs.shape.rank else tf.size(outputs)
    x = tf.reshape(outputs, [-1])
    finite = tf.math.is_finite(x)
    safe = _zero_where_not(finite, x)
    p = tf.sigmoid(safe) if from_logits else safe
    pc = tf.clip_by_value(p, 0.0, 1.0)

    def xlogx(v):
        return tf.where(v > 0, v * tf.math.log(tf.where(v > 0, v, 1.0)), 0.0)

    ent = -(xlogx(pc) + xlogx(1.0 - pc))
    rf = _f(finite)
    tie = tf.logical_and(tf.equal(p, 0.5), finite)
    pred = tf.cast(p > 0.5, tf.int32)
    out = {
        S_COUNT: _f(rows),
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


def regression_dims(output_shape, target_shape):
    """D when the last axis of outputs of `output_shape` holds D > 1 output
    dimensions (at most MAX_OUTPUT_DIMS, statically known) and targets of
    `target_shape` (None: no targets) are laid out alike: the spread of the
    outputs is then also recorded per dimension. Else 1."""
    if target_shape is None:
        return 1
    out, tgt = tf.TensorShape(output_shape), tf.TensorShape(target_shape)
    if out.rank is None or out.rank < 2 or tgt.rank != out.rank:
        return 1
    d = out[-1]
    if d is None or d < 2 or d > MAX_OUTPUT_DIMS or tgt[-1] != d:
        return 1
    return int(d)


def regression_sums(outputs, targets=None, lo=None, hi=None, bins=None):
    """Additive statistics of regression outputs (any shape, flattened).

    The outputs histogram has `bins` (default PROBABILITY_BINS) equal bins over
    [lo, hi]; by default the finite range of this batch. With D > 1 output
    dimensions (see :func:`regression_dims`), the sums of outputs and targets
    per dimension too (6 reductions over [rows, D]).
    """
    outputs = to_float(outputs, "outputs")
    dims = regression_dims(outputs.shape, None if targets is None else
                           tf.convert_to_tensor(targets).shape)
    x = tf.reshape(outputs, [-1])
    finite = tf.math.is_finite(x)
    safe = _zero_where_not(finite, x)
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
        if dims > 1:
            for n, total, sq, values, fin in (
                    (S_OUT_DIM_N, S_OUT_DIM_SUM, S_OUT_DIM_SQ, s64, finite),
                    (S_TGT_DIM_N, S_TGT_DIM_SUM, S_TGT_DIM_SQ, ts, tfin)):
                v = tf.reshape(values, [-1, dims])
                out[n] = tf.reduce_sum(tf.reshape(_f(fin), [-1, dims]), axis=0)
                out[total] = tf.reduce_sum(v, axis=0)
                out[sq] = tf.reduce_sum(tf.square(v), axis=0)
    return out


def prediction_sums_spec(task, num_classes, has_labels, from_logits, output_dims=1,
                         has_weights=False):
    """The keys, shapes and dtypes of the sums of one task, without computing them.

    Returns a list of ``(key, shape, dtype)`` in a fixed order: what
    :func:`multiclass_sums` / :func:`binary_sums` / :func:`regression_sums`
    return for `task` (``num_classes`` = K for multiclass; `output_dims`: the
    regression's :func:`regression_dims`; `has_weights`: multiclass sums
    given a sample_weight). Lets a caller set up accumulators
    before any batch is seen.
    """
    f32, f64 = tf.float32, tf.float64
    if task == metadata.TASK_REGRESSION:
        spec = [
            (S_COUNT, (), f32), (S_FINITE_ROWS, (), f32), (S_NONFINITE, (), f32),
            (S_OUT_SUM, (), f64), (S_OUT_SQ, (), f64),
            (S_OUT_HIST, (metadata.PROBABILITY_BINS,), f32),
        ]
        if has_labels:
            spec += [(S_LABELED, (), f32), (S_TGT_SUM, (), f64), (S_TGT_SQ, (), f64)]
            d = int(output_dims)
            if d > 1:
                spec += [(S_OUT_DIM_N, (d,), f32), (S_OUT_DIM_SUM, (d,), f64),
                         (S_OUT_DIM_SQ, (d,), f64), (S_TGT_DIM_N, (d,), f32),
                         (S_TGT_DIM_SUM, (d,), f64), (S_TGT_DIM_SQ, (d,), f64)]
        return spec
    k = 2 if task == metadata.TASK_BINARY else int(num_classes)
    spec = [
        (S_COUNT, (), f32), (S_FINITE_ROWS, (), f32), (S_ENTROPY, (), f32),
        (S_TIES, (), f32), (S_NONFINITE, (), f32),
        (S_TOP1_HIST, (metadata.PROBABILITY_BINS,), f32),
        (S_CLASS_PROB_HIST, (metadata.PROBABILITY_BINS,), f32),
        (S_PRED_CLASSES, (k,), f32),
    ]
    if from_logits:
        spec += [(S_ZERO_LOGITS, (), f32), (S_ENTRIES, (), f32)]
    if has_labels:
        spec += [(S_LABELED, (), f32), (S_CORRECT, (), f32), (S_TIE_CORRECT, (), f32),
                 (S_LABEL_CLASSES, (k,), f32)]
        if has_weights and task == metadata.TASK_MULTICLASS:
            spec.append((S_LABEL_WEIGHTS, (k,), f32))
    return spec


def pack_sums(sums, spec):
    """The sums of `spec` flattened into one float64 vector (spec order).
    Neighbouring scalars of one dtype are stacked and cast together (a
    graph of a few ops, not three per sum)."""
    parts, scalars = [], []

    def add(part):
        parts.append(part if part.dtype == tf.float64 else tf.cast(part, tf.float64))

    for key, shape, _ in spec:
        value = sums[key]
        if not shape:
            if scalars and scalars[-1].dtype != value.dtype:
                add(tf.stack(scalars))
                scalars = []
            scalars.append(value)
            continue
        if scalars:
            add(tf.stack(scalars))
            scalars = []
        add(value if len(shape) == 1 else tf.reshape(value, [-1]))
    if scalars:
        add(tf.stack(scalars))
    return tf.concat(parts, axis=0)


def unpack_sums(flat, spec):
    """Inverse of :func:`pack_sums`: dict of numpy arrays with the shapes and
    dtypes of `spec` (for ``finalize_prediction_sums(..., backend="numpy")``)."""
    flat = np.asarray(flat, dtype=np.float64)
    out, i = {}, 0
    for key, shape, dtype in spec:
        n = int(np.prod(shape, dtype=np.int64)) if shape else 1
        out[key] = flat[i:i + n].reshape(shape).astype(dtype.as_numpy_dtype)
        i += n
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


def _div_np(a, b):
    """numpy twin of :func:`_div` (float32, same IEEE operations)."""
    a, b = np.float32(a), np.float32(b)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, np.float32(1.0)), np.float32("nan")).astype(
            np.float32
        )


def _std_np(total, sq_total, n):
    """numpy twin of :func:`_std`."""
    n = np.float64(n)
    safe_n = n if n > 0 else 1.0
    mean = np.float64(total) / safe_n
    var = max(np.float64(sq_total) / safe_n - mean * mean, 0.0)
    return np.float32(np.sqrt(var)) if n > 0 else np.float32("nan")


def _std_ratio_range(out_std, tgt_std):
    """(max, min) over dimensions of out_std / tgt_std (float32 [D] tensors),
    dimensions whose target std is 0 left out; NaN when none is left."""
    ratio = _div(out_std, tgt_std)
    valid = tf.math.is_finite(ratio)
    inf = float("inf")
    hi = tf.reduce_max(tf.where(valid, ratio, -inf))
    lo = tf.reduce_min(tf.where(valid, ratio, inf))
    any_valid = tf.reduce_any(valid)
    return tf.where(any_valid, hi, float("nan")), tf.where(any_valid, lo, float("nan"))


def _std_ratio_range_np(total_o, sq_o, n_o, total_t, sq_t, n_t):
    """numpy twin of :func:`_std_ratio_range` over the per-dimension sums."""
    def std(total, sq_total, n):
        n = np.asarray(n, np.float64)
        safe_n = np.where(n > 0, n, 1.0)
        mean = np.asarray(total, np.float64) / safe_n
        var = np.maximum(np.asarray(sq_total, np.float64) / safe_n - mean * mean, 0.0)
        return np.where(n > 0, np.sqrt(var).astype(np.float32), np.float32("nan"))

    ratio = _div_np(std(total_o, sq_o, n_o), std(total_t, sq_t, n_t))
    valid = np.isfinite(ratio)
    if not valid.any():
        return np.float32("nan"), np.float32("nan")
    return np.float32(ratio[valid].max()), np.float32(ratio[valid].min())


def finalize_prediction_sums(sums, task, num_classes, backend="tf"):
    """Per-record values from (summed) sufficient statistics.

    Returns ``(scalars, histograms)``: dicts from metadata stat names to a
    float32 scalar / a float32 vector of counts. Histograms of probabilities
    use PROBABILITY_BINS over [0, 1]; class-count histograms one bin per class.
    Stats that cannot be computed from what was given are absent.

    ``backend="numpy"`` computes the same values (same float32/float64 IEEE
    operations) from numpy sums, for eager callers that have them on the
    host (validation records): ~100 times cheaper than tens of eager ops.
    """
    if backend == "numpy":
        div, std = _div_np, _std_np

        def per_log(x, k):
            return np.float32(x / np.float32(math.log(k)))
    else:
        div, std = _div, _std

        def per_log(x, k):
            return x / math.log(k)

    scalars = {metadata.PRED_COUNT: sums[S_COUNT], metadata.PRED_NONFINITE: sums[S_NONFINITE]}
    hists = {}
    if task == metadata.TASK_REGRESSION:
        scalars[metadata.PRED_OUTPUT_STD] = std(
            sums[S_OUT_SUM], sums[S_OUT_SQ], sums[S_FINITE_ROWS]
        )
        if S_TGT_SUM in sums:
            scalars[metadata.PRED_TARGET_STD] = std(
                sums[S_TGT_SUM], sums[S_TGT_SQ], sums[S_LABELED]
            )
        if S_OUT_DIM_SUM in sums and S_TGT_DIM_SUM in sums:
            args = [sums[k] for k in (S_OUT_DIM_SUM, S_OUT_DIM_SQ, S_OUT_DIM_N,
                                      S_TGT_DIM_SUM, S_TGT_DIM_SQ, S_TGT_DIM_N)]
            if backend == "numpy":
                hi, lo = _std_ratio_range_np(*args)
            else:
                hi, lo = _std_ratio_range(_std(*args[:3]), _std(*args[3:]))
            scalars[metadata.PRED_OUTPUT_STD_RATIO_MAX] = hi
            scalars[metadata.PRED_OUTPUT_STD_RATIO_MIN] = lo
        hists[metadata.PRED_OUTPUT_HIST] = sums[S_OUT_HIST]
        return scalars, hists
    k = 2 if task == metadata.TASK_BINARY else num_classes
    # Every ratio in one (elementwise) division: stat -> (numerator, denominator).
    ratios = [
        (metadata.PRED_ENTROPY, S_ENTROPY, S_FINITE_ROWS),
        (metadata.PRED_TIE_FRACTION, S_TIES, S_FINITE_ROWS),
    ]
    if S_ZERO_LOGITS in sums:
        ratios.append((metadata.PRED_ZERO_LOGIT_FRACTION, S_ZERO_LOGITS, S_ENTRIES))
    if S_CORRECT in sums:
        ratios += [
            (metadata.PRED_ACCURACY, S_CORRECT, S_LABELED),
            (metadata.PRED_TIE_TOLERANT_ACCURACY, S_TIE_CORRECT, S_LABELED),
        ]
    if backend == "numpy":
        values = div(
            np.array([sums[n] for _, n, _ in ratios], np.float32),
            np.array([sums[d] for _, _, d in ratios], np.float32),
        )
        values = list(values)
    else:
        values = tf.unstack(
            div(tf.stack([_f(sums[n]) for _, n, _ in ratios]),
                tf.stack([_f(sums[d]) for _, _, d in ratios]))
        )
    for (stat, _, _), value in zip(ratios, values):
        scalars[stat] = value
    scalars[metadata.PRED_ENTROPY] = per_log(scalars[metadata.PRED_ENTROPY], k)
    hists[metadata.PRED_TOP1_HIST] = sums[S_TOP1_HIST]
    hists[metadata.PRED_CLASS_PROB_HIST] = sums[S_CLASS_PROB_HIST]
    hists[metadata.PRED_PREDICTED_CLASSES] = sums[S_PRED_CLASSES]
    if S_CORRECT in sums:
        hists[metadata.PRED_LABEL_CLASSES] = sums[S_LABEL_CLASSES]
    if S_LABEL_WEIGHTS in sums:
        hists[metadata.PRED_LABEL_WEIGHTS] = sums[S_LABEL_WEIGHTS]
    return scalars, hists


# ---------------------------------------------------------------------------
# Gradients and weights
#
# A gradient's statistics are read off the float32 bit patterns of |g|,
# variable by variable: their integer order is the float order, NaNs above
# +Inf, so an integer max gives max |g| (NaN when there is a NaN). The bits
# shifted right by 22 (the exponent field and the top mantissa bit) are the
# binary order of magnitude: exponent field 0 for zeros (and subnormals,
# which TensorFlow flushes to zero on CPU), 255 for Inf and NaN. One
# HistogramFixedWidth over the bits, with bins 2**22 wide, gives the log10|g|
# histogram (one bin per power of two), the zero count and the non-finite
# count at once (TensorFlow's integer shift and bincount kernels are several
# times slower on CPU). Norms are L2Loss ops on the tensors themselves. A
# variable's statistics allocate one buffer of its size (|g|), and nothing
# is concatenated: on a CPU, fresh large buffers cost more than the
# arithmetic, and the variables' ops run side by side.

_KEYS = 511  # bins of (float32 bits of |g|) >> 22; Inf and NaN share the last
_KEY_RANGE = (0, _KEYS << 22)


def _key_to_bin():
    """float32 [_KEYS, LOG10_BINS]: (bits >> 22) -> clipped log10|g| bin (no
    bin for exponent field 0, zeros, or 255, Inf/NaN)."""
    lo, _ = metadata.LOG2_RANGE
    table = np.zeros((_KEYS, metadata.LOG10_BINS), np.float32)
    for key in range(2, _KEYS - 1):  # exponent field e = key // 2: 2**(e-127) <= |g| < 2**(e-126)
        table[key, min(max(key // 2 - 127 - lo, 0), metadata.LOG10_BINS - 1)] = 1.0
    return table


_KEY_TO_BIN = _key_to_bin()


def _norms(tensors):
    """float32 [n] L2 norms of tensors (no temporaries: L2Loss)."""
    return tf.sqrt(2.0 * tf.stack([tf.raw_ops.L2Loss(t=t) for t in tensors]))


def _floats(tensors, name):
    """The tensors as float32, in their own shapes (every statistic here
    reduces over all entries, so none needs reshaping)."""
    return [to_float(t, name) for t in tensors]


def _sizes(tensors):
    """float32 [n] sizes of tensors (a constant when they are known)."""
    sizes = [t.shape.num_elements() for t in tensors]
    if all(n is not None for n in sizes):
        return tf.constant(sizes, tf.float32)
    return tf.cast(tf.stack([tf.size(t) for t in tensors]), tf.float32)


def gradient_stats_many(grads):
    """Per-variable statistics of many gradients.

    Per variable: norm (L2), max_abs (max |g|, NaN if any NaN),
    zero_fraction (entries exactly 0), nonfinite (count of NaN/Inf entries)
    and a log10|g| histogram (nonzero finite entries, one bin per power of
    two over metadata.LOG10_RANGE, clipped into the end bins).

    Args:
      grads: list of gradient tensors (no None).

    Returns:
      dict from metadata GRAD_* names to float32 [n] tensors, and
      ``GRAD_LOG10_HIST`` -> float32 [n, LOG10_BINS] counts.
    """
    if not grads:
        raise ValueError("gradient_stats_many needs at least one gradient")
    grads = _floats(grads, "gradients")
    key_range = tf.constant(_KEY_RANGE, tf.int32)
    max_bits, counts = [], []
    for g in grads:
        bits = tf.bitcast(tf.abs(g), tf.int32)
        max_bits.append(tf.reduce_max(bits))
        counts.append(tf.histogram_fixed_width(bits, key_range, nbins=_KEYS))
    size = _sizes(grads)
    counts = tf.cast(tf.stack(counts), tf.float32)
    return {
        metadata.GRAD_NORM: _norms(grads),
        metadata.GRAD_MAX_ABS: tf.where(size > 0, tf.bitcast(tf.stack(max_bits), tf.float32), 0.0),
        metadata.GRAD_ZERO_FRACTION: _div(counts[:, 0] + counts[:, 1], size),
        metadata.GRAD_NONFINITE: counts[:, _KEYS - 1],
        metadata.GRAD_LOG10_HIST: tf.matmul(counts, tf.constant(_KEY_TO_BIN)),
    }


def weight_stats_many(weights, updates=None):
    """weight_norm per variable and, with `updates` (``w_after - w_before``,
    aligned with `weights`, the weights after the update), update_ratio =
    ||update|| / ||weight before the update||; float32 [n] tensors."""
    fw = _floats(list(weights), "variables")
    out = {metadata.GRAD_WEIGHT_NORM: _norms(fw)}
    if updates is not None:
        fu = _floats(list(updates), "updates")
        update_norm = _norms(fu)
        with tf.control_dependencies([update_norm]):
            # Last reader of each update: the subtraction reuses its buffer.
            before_norm = _norms([w - u for w, u in zip(fw, fu)])
        out[metadata.GRAD_UPDATE_RATIO] = _div(update_norm, before_norm)
    return out


def zero_gradient_stats(n):
    """Zeros shaped like gradient_stats_many of n gradients (the untaken
    branch of a gated record)."""
    return {
        key: tf.zeros([n, metadata.LOG10_BINS] if key == metadata.GRAD_LOG10_HIST else [n])
        for key in (metadata.GRAD_NORM, metadata.GRAD_MAX_ABS, metadata.GRAD_ZERO_FRACTION,
                    metadata.GRAD_NONFINITE, metadata.GRAD_LOG10_HIST)
    }


def first_last_ratio_many(norms, ranks):
    """Gradient norm of the first rank>=2 variable / that of the last one,
    from a [n] vector of norms in depth order and their n static ranks; None
    with fewer than two such variables."""
    kernels = [i for i, r in enumerate(ranks) if r is not None and r >= 2]
    if len(kernels) < 2:
        return None
    return _div(norms[kernels[0]], norms[kernels[-1]])
