"""Summary writers of tb_plugin, in the style of ``tf.summary``.

Each function writes to the default summary writer at `step` (or
``tf.summary.experimental.get_step()``), honours ``tf.summary.record_if``,
works eagerly and inside ``tf.function``, and returns a boolean tensor that is
true when the record was written. The tags and formats are those of
:mod:`tb_plugin.metadata`: per-record numbers are ``scalars`` summaries,
distributions are ``histograms`` summaries, and an index summary
(``health/<name>``, plugin "health") describes the record family.

Under ``tf.distribute`` (replica context, more than one replica) the
statistics are all-reduced across replicas before they are written, and TF
writes summaries from replica 0 only, so exactly one record is written, of the
global batch / aggregated gradients.
"""

import json
import logging
import warnings

try:
    import tensorflow as tf
except ImportError as e:  # pragma: no cover - exercised without TF only
    raise ImportError(
        "tb_plugin's recording API needs TensorFlow: pip install tensorflow "
        "(viewing with TensorBoard and the tb-health CLI does not)"
    ) from e

from tb_plugin import metadata
from tb_plugin import stats

logger = logging.getLogger("tb_plugin")

_TASKS = (metadata.TASK_MULTICLASS, metadata.TASK_BINARY, metadata.TASK_REGRESSION)
_warned = set()


def _warn_once(key, message):
    if key in _warned:
        return
    _warned.add(key)
    warnings.warn(message, stacklevel=3)


# ---------------------------------------------------------------------------
# Metadata and low-level writes

_md_cache = {}


def _metadata_bytes(kind, description):
    key = (kind, description or "")
    if key not in _md_cache:
        factory = {
            "scalar": metadata.create_scalar_metadata,
            "histogram": metadata.create_histogram_metadata,
            "index": metadata.create_index_metadata,
        }[kind]
        _md_cache[key] = factory(description or "").SerializeToString()
    return _md_cache[key]


def _write_scalar(tag, value, step, description=None):
    return tf.summary.write(
        tag,
        tf.reshape(tf.cast(value, tf.float32), []),
        step=step,
        metadata=_metadata_bytes("scalar", description),
    )


def _write_histogram(tag, tensor, step, description=None):
    return tf.summary.write(
        tag, tensor, step=step, metadata=_metadata_bytes("histogram", description)
    )


def _write_json(tag, obj, step, description=None):
    text = json.dumps(obj, sort_keys=True, default=str)
    return tf.summary.write(
        tag,
        tf.constant(text, dtype=tf.string),
        step=step,
        metadata=_metadata_bytes("index", description),
    )


def _resolve_step(step):
    if step is None:
        step = tf.summary.experimental.get_step()
        if step is None:
            raise ValueError(
                "No step set: pass step= or use tf.summary.experimental.set_step()"
            )
    return step


def _replica_context():
    """The replica context when running in a multi-replica `strategy.run`."""
    if not tf.distribute.has_strategy() or tf.distribute.in_cross_replica_context():
        return None
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync <= 1:
        return None
    return ctx


# ---------------------------------------------------------------------------
# Predictions


def _check_outputs(outputs, labels, task):
    if isinstance(outputs, (list, tuple, dict)) and not hasattr(outputs, "shape"):
        try:
            outputs = tf.convert_to_tensor(outputs)
        except (ValueError, TypeError) as e:
            raise ValueError(
                "outputs must be one numeric tensor, got %s" % type(outputs).__name__
            ) from e
    outputs = tf.convert_to_tensor(outputs)
    if not (outputs.dtype.is_floating or outputs.dtype.is_integer):
        raise ValueError(
            "outputs must be a numeric tensor, got dtype %s with shape %s"
            % (outputs.dtype.name, outputs.shape)
        )
    rank = outputs.shape.rank
    if task is not None and task not in _TASKS:
        raise ValueError("task must be one of %s or None, got %r" % (_TASKS, task))
    if rank is None:
        raise ValueError("outputs must have a known rank, got shape %s" % outputs.shape)
    if task == metadata.TASK_REGRESSION:
        if rank < 1:
            raise ValueError(
                "outputs of a regression must have rank >= 1 ([batch, ...]), got "
                "shape %s" % outputs.shape
            )
    elif rank not in (1, 2):
        raise ValueError(
            "outputs must have shape [batch, num_classes] (multiclass) or [batch] / "
            "[batch, 1] (binary), got shape %s (rank %d)" % (outputs.shape, rank)
        )
    if task is None:
        if rank == 2 and outputs.shape[-1] is not None and outputs.shape[-1] > 1:
            task = metadata.TASK_MULTICLASS
        else:
            task = metadata.TASK_BINARY
    if task == metadata.TASK_MULTICLASS:
        if rank != 2 or outputs.shape[-1] is None or outputs.shape[-1] < 2:
            raise ValueError(
                "multiclass outputs must have shape [batch, num_classes] with a known "
                "num_classes >= 2, got shape %s" % outputs.shape
            )
    if task == metadata.TASK_BINARY and rank == 2 and outputs.shape[-1] != 1:
        raise ValueError(
            "binary outputs must have shape [batch] or [batch, 1], got shape %s"
            % outputs.shape
        )
    if labels is not None:
        labels = tf.convert_to_tensor(labels)
        if not (labels.dtype.is_floating or labels.dtype.is_integer or labels.dtype == tf.bool):
            raise ValueError(
                "labels must be a numeric tensor, got dtype %s with shape %s"
                % (labels.dtype.name, labels.shape)
            )
        if labels.dtype == tf.bool:
            labels = tf.cast(labels, tf.int32)
        if labels.shape.rank == 0:
            raise ValueError("labels must have a batch dimension, got shape %s" % labels.shape)
        b_out, b_lab = outputs.shape[0], labels.shape[0] if labels.shape.rank else None
        if b_out is not None and b_lab is not None and b_out != b_lab:
            raise ValueError(
                "labels must have the batch size of outputs (%d), got shape %s"
                % (b_out, labels.shape)
            )
        if task == metadata.TASK_MULTICLASS:
            k = outputs.shape[-1]
            ok = labels.shape.rank == 1 or (
                labels.shape.rank == 2 and labels.shape[-1] in (1, k)
            )
            if not ok:
                raise ValueError(
                    "labels must be class ids [batch] / [batch, 1] or one-hot "
                    "[batch, %d], got shape %s" % (k, labels.shape)
                )
    return outputs, labels, task


def prediction_sums(outputs, labels=None, from_logits=False, task=None, hist_range=None):
    """Validated additive statistics (see :mod:`tb_plugin.stats`) of one batch.

    Returns ``(sums, task, num_classes)``. For regression `hist_range`
    (lo, hi) fixes the outputs histogram range (default: the batch's range).
    """
    outputs, labels, task = _check_outputs(outputs, labels, task)
    if task == metadata.TASK_MULTICLASS:
        return (
            stats.multiclass_sums(outputs, labels, from_logits),
            task,
            int(outputs.shape[-1]),
        )
    if task == metadata.TASK_BINARY:
        return stats.binary_sums(outputs, labels, from_logits), task, 1
    lo, hi = hist_range if hist_range is not None else (None, None)
    return stats.regression_sums(outputs, labels, lo, hi), task, 1


def _prediction_index(task, num_classes, from_logits, has_labels):
    return {
        "kind": metadata.KIND_PREDICTIONS,
        "task": task,
        "num_classes": int(num_classes),
        "from_logits": None if task == metadata.TASK_REGRESSION else bool(from_logits),
        "has_labels": bool(has_labels),
    }


def write_prediction_sums(
    name, sums, task, num_classes, step, from_logits=False, hist_range=None,
    description=None,
):
    """Writes one prediction record from (accumulated) sufficient statistics.

    Used by :func:`prediction_distribution` and by the callback for
    validation (sums accumulated over all validation batches). `hist_range`
    is the (lo, hi) of the regression outputs histogram.
    """
    step = _resolve_step(step)
    scalars, hists = stats.finalize_prediction_sums(sums, task, num_classes)
    for stat in sorted(scalars):
        _write_scalar(metadata.stat_tag(name, stat), scalars[stat], step, description)
    for stat in sorted(hists):
        counts = hists[stat]
        if stat in (metadata.PRED_PREDICTED_CLASSES, metadata.PRED_LABEL_CLASSES):
            tensor = stats.class_histogram_tensor(counts)
        elif stat == metadata.PRED_OUTPUT_HIST:
            lo, hi = hist_range
            tensor = stats.histogram_tensor(counts, lo, hi)
        else:
            tensor = stats.histogram_tensor(counts, 0.0, 1.0)
        _write_histogram(metadata.stat_tag(name, stat), tensor, step, description)
    has_labels = stats.S_LABELED in sums
    return _write_json(
        metadata.index_tag(name),
        _prediction_index(task, num_classes, from_logits, has_labels),
        step,
        description,
    )


def all_reduce_sums(ctx, sums):
    """Sums a dict of statistics across replicas (one all-reduce per dtype)."""
    out = {}
    for dtype in sorted({v.dtype for v in sums.values()}, key=lambda d: d.name):
        keys = sorted(k for k, v in sums.items() if v.dtype == dtype)
        reduced = ctx.all_reduce(tf.distribute.ReduceOp.SUM, [sums[k] for k in keys])
        out.update(zip(keys, reduced))
    return out


def _regression_range(outputs, ctx):
    lo, hi = stats.finite_range(outputs)
    if ctx is not None:
        both = ctx.all_gather(tf.reshape(tf.stack([lo, -hi]), [1, 2]), axis=0)
        both = tf.reduce_min(tf.reshape(both, [-1, 2]), axis=0)
        lo, hi = both[0], -both[1]
    return lo, hi


def prediction_distribution(
    name, outputs, step=None, labels=None, from_logits=False, task=None,
    description=None,
):
    """Writes the health statistics of one batch of model outputs.

    Args:
      name: record family name, e.g. "predictions" (tags ``health/<name>/...``).
      outputs: multiclass ``[batch, K]`` logits or probabilities; binary
        ``[batch]`` or ``[batch, 1]``; regression any ``[batch, ...]``.
      step: int64 step; default ``tf.summary.experimental.get_step()``.
      labels: optional class ids ``[batch]`` / ``[batch, 1]`` or one-hot
        ``[batch, K]`` (multiclass), 0/1 ``[batch]`` (binary), targets
        (regression).
      from_logits: whether `outputs` are logits (softmax / sigmoid applied
        here) rather than probabilities.
      task: "multiclass", "binary", "regression", or None to infer from the
        shape ([batch, K>1] -> multiclass, else binary).
      description: optional description stored in the summary metadata.

    Written stats (see :mod:`tb_plugin.metadata`): count, nonfinite and, for
    classification, entropy, tie_fraction, zero_logit_fraction (logits
    only), accuracy and tie_tolerant_accuracy (with labels) as scalars;
    top1_probability, class_probability, predicted_classes, label_classes
    (with labels) as histograms. Regression: output_std, target_std (with
    labels) and the outputs histogram. Plus the index summary ``health/<name>``.

    Returns:
      A boolean scalar tensor, true if the record was written.

    Raises:
      ValueError: on outputs/labels of the wrong rank, batch size or dtype.
    """
    step = _resolve_step(step)
    outputs, labels, task = _check_outputs(outputs, labels, task)
    ctx = _replica_context()

    def compute():
        hist_range = None
        if task == metadata.TASK_REGRESSION:
            hist_range = _regression_range(outputs, ctx)
        sums, _, k = prediction_sums(outputs, labels, from_logits, task, hist_range)
        if ctx is not None:
            sums = all_reduce_sums(ctx, sums)
        return sums, k, hist_range

    if ctx is not None:
        # Collective ops must run on every replica; only the write is gated.
        sums, k, hist_range = compute()

        def write():
            return write_prediction_sums(
                name, sums, task, k, step, from_logits, hist_range, description
            )
    else:

        def write():
            sums, k, hist_range = compute()
            return write_prediction_sums(
                name, sums, task, k, step, from_logits, hist_range, description
            )

    with tf.name_scope("health_" + _scope_name(name)):
        return _gated(write)


def _scope_name(name):
    return "".join(c if c.isalnum() or c in "_-." else "_" for c in name)


def _gated(fn):
    """Runs `fn` only when summaries would be recorded (lazily in graphs)."""
    should = tf.summary.should_record_summaries()
    if tf.executing_eagerly():
        return fn() if bool(should) else tf.constant(False)
    return tf.cond(should, lambda: tf.cast(fn(), tf.bool), lambda: tf.constant(False))


# ---------------------------------------------------------------------------
# Gradients


def variable_path(variable):
    """Keras 3 ``variable.path``, else the tf.Variable name without ':0'."""
    path = getattr(variable, "path", None)
    if isinstance(path, str) and path:
        return path
    name = getattr(variable, "name", None) or "variable"
    if name.endswith(":0"):
        name = name[:-2]
    return name


def _variable_value(variable):
    value = getattr(variable, "value", None)
    if value is not None and not callable(value):
        variable = value  # Keras 3 Variable -> backing tf.Variable
    return tf.convert_to_tensor(variable)


def gradient_magnitudes(
    name, gradients, variables, step=None, updates=None, description=None
):
    """Writes per-variable gradient statistics of one step.

    Args:
      name: record family name, e.g. "gradients".
      gradients: list of gradient tensors (or IndexedSlices, or None: skipped
        with one warning), aligned with `variables`.
      variables: the variables, in model depth order (input to output); each
        is named by its Keras 3 ``path`` (``name`` for a tf.Variable).
      step: int64 step; default ``tf.summary.experimental.get_step()``.
      updates: optional list aligned with `variables` of the change just
        applied, ``w_after - w_before`` (call after the optimizer step); gives
        update_ratio = ||update|| / ||w_before||.
      description: optional description stored in the summary metadata.

    Per variable ``health/<name>/<path>/<stat>``: norm, max_abs,
    zero_fraction, nonfinite, weight_norm, update_ratio (with updates) as
    scalars and log10_abs as a histogram; ``health/<name>/first_last_ratio``;
    and the index summary ``health/<name>`` listing the variables.

    Returns:
      A boolean scalar tensor, true if the record was written.
    """
    return _gradient_magnitudes(name, gradients, variables, step, updates, description)


def _gradient_magnitudes(
    name, gradients, variables, step=None, updates=None, description=None,
    all_reduce=True,
):
    """gradient_magnitudes; `all_reduce=False` when the caller already summed
    the gradients across replicas (collectives cannot run inside a tf.cond)."""
    step = _resolve_step(step)
    gradients = list(gradients)
    variables = list(variables)
    if len(gradients) != len(variables):
        raise ValueError(
            "gradients and variables must have the same length, got %d gradients "
            "and %d variables" % (len(gradients), len(variables))
        )
    if updates is not None:
        updates = list(updates)
        if len(updates) != len(variables):
            raise ValueError(
                "updates must have the length of variables (%d), got %d"
                % (len(variables), len(updates))
            )
    entries = []
    skipped = []
    for i, (g, v) in enumerate(zip(gradients, variables)):
        path = variable_path(v)
        if g is None:
            skipped.append(path)
            continue
        if isinstance(g, tf.IndexedSlices):
            g = tf.convert_to_tensor(g)
        g = tf.convert_to_tensor(g)
        if not (g.dtype.is_floating or g.dtype.is_integer):
            raise ValueError(
                "gradients[%d] (%s) must be numeric, got dtype %s with shape %s"
                % (i, path, g.dtype.name, g.shape)
            )
        if v is not None and hasattr(v, "shape") and g.shape.is_fully_defined():
            vshape = tuple(v.shape)
            if None not in vshape and tuple(g.shape) != vshape:
                raise ValueError(
                    "gradients[%d] has shape %s but variables[%d] (%s) has shape %s"
                    % (i, g.shape, i, path, list(vshape))
                )
        u = updates[i] if updates is not None else None
        entries.append((path, g, v, u))
    if skipped:
        _warn_once(
            ("none_gradients", name, tuple(skipped)),
            "tb_plugin: no gradient for %d variable(s) of %r, skipped: %s"
            % (len(skipped), name, ", ".join(skipped)),
        )
    ctx = _replica_context() if all_reduce else None
    if ctx is not None and entries:
        reduced = ctx.all_reduce(
            tf.distribute.ReduceOp.SUM, [stats.to_float(g) for _, g, _, _ in entries]
        )
        entries = [(p, r, v, u) for (p, _, v, u), r in zip(entries, reduced)]
    index = {
        "kind": metadata.KIND_GRADIENTS,
        "variables": [
            {"path": p, "shape": [int(d) if d is not None else None for d in g.shape]}
            for p, g, _, _ in entries
        ],
    }

    def write():
        norms = []
        for path, g, v, u in entries:
            w = _variable_value(v) if v is not None else None
            st = stats.gradient_stats(g, w, u)
            norms.append((st[metadata.GRAD_NORM], g.shape.rank))
            for stat in sorted(st):
                tag = metadata.variable_tag(name, path, stat)
                if stat == metadata.GRAD_LOG10_HIST:
                    lo, hi = metadata.LOG10_RANGE
                    _write_histogram(
                        tag, stats.histogram_tensor(st[stat], lo, hi), step, description
                    )
                else:
                    _write_scalar(tag, st[stat], step, description)
        ratio = stats.first_last_ratio(norms)
        if ratio is not None:
            _write_scalar(
                metadata.stat_tag(name, metadata.GRAD_FIRST_LAST_RATIO),
                ratio,
                step,
                description,
            )
        return _write_json(metadata.index_tag(name), index, step, description)

    with tf.name_scope("health_" + _scope_name(name)):
        return _gated(write)


# ---------------------------------------------------------------------------
# Manifest


def manifest(data, step=0):
    """Writes the run manifest (a JSON-able dict) under ``health/manifest``."""
    if not isinstance(data, dict):
        raise ValueError("manifest data must be a dict, got %s" % type(data).__name__)
    return _gated(lambda: _write_json(metadata.MANIFEST_TAG, data, step))
