"""Summary writers of tb_plugin, in the style of ``tf.summary``.

Each function writes to the default summary writer at `step` (or
``tf.summary.experimental.get_step()``), honours ``tf.summary.record_if``,
works eagerly and inside ``tf.function``, and returns a boolean tensor that is
true when the record was written. The tags and formats are those of
:mod:`tb_plugin.metadata`: per-record numbers and distributions are series
summaries of plugin "health" (shown in the Health tab only), an index summary
(``health/<name>``, plugin "health") describes the record family, and each
write adds a few headline numbers (``health/<stat>``, ``scalars`` summaries,
plotted in Time Series; see ``metadata.HEADLINE_STATS``) aggregated over the
families it writes: one family per call of these functions.

Under ``tf.distribute`` (replica context, more than one replica) the
statistics are all-reduced across replicas before they are written, and TF
writes summaries from replica 0 only, so exactly one record is written, of the
global batch / aggregated gradients.

Cost: a record is computed with a few ops per variable (see
:func:`tb_plugin.stats.gradient_stats_many`) and written by a single op as a
single event holding one summary value per tag; each value is byte-for-byte
what ``tf.summary.write`` would write (same tag, metadata and tensor).
"""

import numpy as np

# summary_args raises a clear ImportError when TensorFlow is missing.
from tb_plugin import summary_args

import tensorflow as tf  # noqa: E402

from tb_plugin import metadata
from tb_plugin import stats
from tb_plugin import summary_writes


# ---------------------------------------------------------------------------
# Predictions


def index_extra(task, outputs_shape, labels_shape=None):
    """The optional prediction-index fields (see metadata.INDEX_*) of outputs
    of `outputs_shape` (and labels of `labels_shape`): the number of labels
    of a multi-label binary output, the output dimensions of a regression
    whose spread is recorded per dimension."""
    shape = tf.TensorShape(outputs_shape)
    if task == metadata.TASK_BINARY and shape.rank is not None and shape.rank > 1:
        k = shape[1:].num_elements()
        if k is not None and k > 1:
            return {metadata.INDEX_LABELS: int(k)}
    if task == metadata.TASK_REGRESSION:
        d = stats.regression_dims(shape, labels_shape)
        if d > 1:
            return {metadata.INDEX_OUTPUT_DIMS: d}
    return {}


def prediction_sums(outputs, labels=None, from_logits=False, task=None, hist_range=None,
                    sample_weight=None):
    """Validated additive statistics (see :mod:`tb_plugin.stats`) of one batch.

    Returns ``(sums, task, num_classes)``. For regression `hist_range`
    (lo, hi) fixes the outputs histogram range (default: the batch's range).
    `sample_weight` (per row) is summed per class for multiclass outputs
    with labels, and ignored otherwise.
    """
    outputs, labels, task = summary_args.check_outputs(outputs, labels, task)
    if sample_weight is not None:
        sample_weight = summary_args.check_sample_weight(sample_weight, outputs)
    if task == metadata.TASK_MULTICLASS:
        return (
            stats.multiclass_sums(outputs, labels, from_logits, sample_weight),
            task,
            int(outputs.shape[-1]),
        )
    if task == metadata.TASK_BINARY:
        return stats.binary_sums(outputs, labels, from_logits), task, 1
    lo, hi = hist_range if hist_range is not None else (None, None)
    return stats.regression_sums(outputs, labels, lo, hi), task, 1


def _prediction_index(task, num_classes, from_logits, has_labels, extra=None):
    index = {
        "kind": metadata.KIND_PREDICTIONS,
        "task": task,
        "num_classes": int(num_classes),
        "from_logits": None if task == metadata.TASK_REGRESSION else bool(from_logits),
        "has_labels": bool(has_labels),
    }
    index.update(extra or {})
    return index


def write_prediction_sums(
    name, sums, task, num_classes, step, from_logits=False, hist_range=None,
    description=None, index_extra=None,
):
    """Writes one prediction record from (accumulated) sufficient statistics.

    Used by :func:`prediction_distribution` and by the callback for
    validation (sums accumulated over all validation batches). `hist_range`
    is the (lo, hi) of the regression outputs histogram; `index_extra` the
    optional index fields (:func:`index_extra`). Honours
    ``tf.summary.record_if`` (and, under tf.distribute, writes from replica 0
    only); returns a boolean tensor, true if written.
    """
    step = summary_args.resolve_step(step)
    return summary_writes.gated(
        lambda: write_prediction_record(
            name, sums, task, num_classes, step, from_logits, hist_range, description,
            index_extra=index_extra,
        )
    )


def write_prediction_record(
    name, sums, task, num_classes, step, from_logits, hist_range, description,
    backend="tf", index_extra=None,
):
    """write_prediction_sums, in a branch already gated by summary_writes.gated.

    ``backend="numpy"``: `sums` are numpy arrays (eager callers), finalized on
    the host and written with one eager op.
    """
    with summary_writes.one_write(step):
        return _write_prediction_sums_rows(
            name, sums, task, num_classes, step, from_logits, hist_range, description,
            backend, index_extra,
        )


def _write_prediction_sums_rows(
    name, sums, task, num_classes, step, from_logits, hist_range, description, backend,
    index_extra=None,
):
    scalars, hists = stats.finalize_prediction_sums(sums, task, num_classes, backend)
    numpy = backend == "numpy"
    names = sorted(scalars)
    values = [scalars[stat] for stat in names]
    if numpy:
        values = np.array(values, dtype=np.float32).reshape([-1])
    summary_writes.write_scalars([metadata.stat_tag(name, stat) for stat in names], values, step, description)
    summary_writes.add_headline(metadata.HEADLINE_ENTROPY, scalars.get(metadata.PRED_ENTROPY))
    summary_writes.add_headline(metadata.HEADLINE_TIE_FRACTION, scalars.get(metadata.PRED_TIE_FRACTION))
    summary_writes.add_headline(metadata.HEADLINE_OUTPUT_NONFINITE, scalars.get(metadata.PRED_NONFINITE))
    if metadata.PRED_ACCURACY in scalars and metadata.PRED_TIE_TOLERANT_ACCURACY in scalars:
        summary_writes.add_headline(metadata.HEADLINE_ACCURACY_GAP,
                      scalars[metadata.PRED_TIE_TOLERANT_ACCURACY]
                      - scalars[metadata.PRED_ACCURACY])
    tags, tensors = [], []
    for stat in sorted(hists):
        counts = hists[stat]
        if stat in (metadata.PRED_PREDICTED_CLASSES, metadata.PRED_LABEL_CLASSES,
                    metadata.PRED_LABEL_WEIGHTS):
            tensor = (stats.class_histogram_array if numpy else stats.class_histogram_tensor)(
                counts
            )
        else:
            lo, hi = hist_range if stat == metadata.PRED_OUTPUT_HIST else (0.0, 1.0)
            if numpy:
                tensor = stats.histogram_array(counts, float(lo), float(hi))
            else:
                tensor = stats.histogram_tensor(counts, lo, hi)
        tags.append(metadata.stat_tag(name, stat))
        tensors.append(tensor)
    summary_writes.write_rows(tags, tensors, step, "histogram", description)
    has_labels = stats.S_LABELED in sums
    return summary_writes.write_json(
        metadata.index_tag(name),
        _prediction_index(task, num_classes, from_logits, has_labels, index_extra),
        step,
        description,
    )


def write_prediction_sums_numpy(
    name, sums, task, num_classes, step, from_logits=False, hist_range=None,
    description=None, index_extra=None,
):
    """Eager :func:`write_prediction_sums` from numpy sums (e.g. the
    accumulated validation sums), finalized on the host."""
    step = summary_args.resolve_step(step)
    return summary_writes.gated(
        lambda: write_prediction_record(
            name, sums, task, num_classes, step, from_logits, hist_range, description,
            backend="numpy", index_extra=index_extra,
        )
    )


def all_reduce_sums(ctx, sums):
    """Sums a dict of statistics across replicas (one all-reduce per dtype)."""
    out = {}
    for dtype in sorted({v.dtype for v in sums.values()}, key=lambda d: d.name):
        keys = sorted(k for k, v in sums.items() if v.dtype == dtype)
        reduced = ctx.all_reduce(tf.distribute.ReduceOp.SUM, [sums[k] for k in keys])
        out.update(zip(keys, reduced))
    return out


def regression_range(outputs, ctx):
    lo, hi = stats.finite_range(outputs)
    if ctx is not None:
        both = ctx.all_gather(tf.reshape(tf.stack([lo, -hi]), [1, 2]), axis=0)
        both = tf.reduce_min(tf.reshape(both, [-1, 2]), axis=0)
        lo, hi = both[0], -both[1]
    return lo, hi


def prediction_distribution(
    name, outputs, step=None, labels=None, from_logits=False, task=None,
    description=None, sample_weight=None,
):
    """Writes the health statistics of one batch of model outputs.

    Args:
      name: record family name, a non-empty string other than "manifest",
        e.g. "predictions" (tags ``health/<name>/...``).
      outputs: a numeric tensor (or array): multiclass ``[batch, K]`` logits
        or probabilities; binary ``[batch]`` or ``[batch, 1]`` (or, with
        ``task="binary"``, multi-label ``[batch, K, ...]``: every entry a
        binary problem, the statistics taken over all entries together);
        regression any ``[batch, ...]``.
      step: a non-negative int or integer scalar tensor / variable; default
        ``tf.summary.experimental.get_step()``.
      labels: optional class ids in [0, K) ``[batch]`` / ``[batch, 1]`` or
        one-hot ``[batch, K]`` (multiclass), values in [0, 1] shaped like the
        outputs (binary, thresholded at 0.5), targets (regression). Invalid
        class labels (out of range, not whole, NaN) raise a ValueError when
        the record is written eagerly; inside a ``tf.function`` they are
        counted in the record's ``invalid_labels`` scalar instead (and left
        out of the accuracy, multiclass).
      from_logits: True or False: whether `outputs` are logits (softmax /
        sigmoid applied here) rather than probabilities.
      task: "multiclass", "binary", "regression", or None to infer from the
        shape ([batch, K>1] -> multiclass, else binary).
      description: optional string stored in the summary metadata.
      sample_weight: optional per-row weights ``[batch]`` / ``[batch, 1]``
        given to the loss (e.g. from ``class_weight``); with multiclass
        labels, their sum per class is written as ``label_weights`` (used
        to spot class weights that make one class dominate the loss).
        Ignored for binary and regression outputs.

    Written stats (see :mod:`tb_plugin.metadata`): count, nonfinite and, for
    classification, entropy, tie_fraction, zero_logit_fraction (logits
    only), accuracy, tie_tolerant_accuracy and invalid_labels (with labels)
    as numbers;
    top1_probability, class_probability, predicted_classes, label_classes
    (with labels), label_weights (with labels and sample_weight) as
    histograms. Regression: output_std, target_std (with
    labels) and the outputs histogram; with labels and D > 1 output
    dimensions (last axis), output_std_ratio_max / output_std_ratio_min, the
    largest and smallest std(output_d) / std(target_d). Plus the index
    summary ``health/<name>`` and the headline numbers ``health/entropy``,
    ``health/tie_fraction``, ``health/accuracy_gap`` (classification, the
    last with labels) and ``health/output_nonfinite``.

    Returns:
      A boolean scalar tensor, true if the record was written.

    Raises:
      ValueError: naming the argument and what it got, for any argument not
        as above (a family name that is empty or reserved, outputs / labels
        of the wrong rank, batch size or dtype, a step that is not a
        non-negative integer, a from_logits that is not a bool).
    """
    name = summary_args.check_name(name)
    step = summary_args.resolve_step(step)
    from_logits = summary_args.check_bool(from_logits, "from_logits")
    description = summary_args.check_description(description)
    outputs, labels, task = summary_args.check_outputs(outputs, labels, task)
    if sample_weight is not None:
        sample_weight = summary_args.check_sample_weight(sample_weight, outputs)
    ctx = summary_writes.replica_context()
    extra = index_extra(task, outputs.shape, None if labels is None else labels.shape)

    def compute():
        hist_range = None
        if task == metadata.TASK_REGRESSION:
            hist_range = regression_range(outputs, ctx)
        sums, _, k = prediction_sums(outputs, labels, from_logits, task, hist_range,
                                     sample_weight)
        invalid = summary_args.invalid_label_count(labels, task, k)
        if ctx is not None:
            sums = all_reduce_sums(ctx, sums)
            if invalid is not None:
                invalid = ctx.all_reduce(tf.distribute.ReduceOp.SUM, invalid)
        return sums, k, hist_range, invalid

    def write_record(sums, k, hist_range, invalid):
        with summary_writes.one_write(step):
            if invalid is not None:
                summary_writes.write_scalars([metadata.stat_tag(name, metadata.PRED_INVALID_LABELS)],
                               [invalid], step, description)
            return write_prediction_record(
                name, sums, task, k, step, from_logits, hist_range, description,
                index_extra=extra,
            )

    if ctx is not None:
        # Collective ops must run on every replica; only the write is gated.
        computed = compute()

        def write():
            return write_record(*computed)
    else:

        def write():
            return write_record(*compute())

    with tf.name_scope("health_" + summary_writes.scope_name(name)):
        return summary_writes.gated(write)



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


def variable_value(variable):
    value = getattr(variable, "value", None)
    if value is not None and not callable(value):
        variable = value  # Keras 3 Variable -> backing tf.Variable
    return tf.convert_to_tensor(variable)


def gradient_magnitudes(
    name, gradients, variables, step=None, updates=None, description=None
):
    """Writes per-variable gradient statistics of one step.

    Args:
      name: record family name, a non-empty string other than "manifest",
        e.g. "gradients".
      gradients: a list of gradient tensors (or IndexedSlices, or None:
        skipped with one warning), aligned with `variables`, each shaped
        like its variable.
      variables: a list of tf.Variables or Keras Variables, in model depth
        order (input to output); each is named by its Keras 3 ``path``
        (``name`` for a tf.Variable). Variables that share a path (unnamed
        tf.Variables are all "Variable") are recorded under unique paths
        (``Variable#2``, ``dense#2/kernel``), with one warning.
      step: a non-negative int or integer scalar tensor / variable; default
        ``tf.summary.experimental.get_step()``.
      updates: optional list aligned with `variables` of the change just
        applied, ``w_after - w_before`` (call after the optimizer step),
        each shaped like its variable (None: unknown); gives update_ratio =
        ||update|| / ||w_before||.
      description: optional string stored in the summary metadata.

    Writes ``health/<name>/variable_stats``, one row per variable: norm,
    max_abs, zero_fraction, nonfinite, weight_norm and, with updates,
    update_ratio; ``health/<name>/log10_abs``, one log10|g| histogram per
    variable; ``health/<name>/first_last_ratio``; the index summary
    ``health/<name>`` listing the variables (the rows' order); and the
    headline numbers ``health/first_last_ratio``, ``health/gradient_nonfinite``
    and ``health/max_update_ratio`` (with updates).

    Returns:
      A boolean scalar tensor, true if the record was written.

    Raises:
      ValueError: naming the argument and what it got, for any argument not
        as above.
    """
    name = summary_args.check_name(name)
    step = summary_args.resolve_step(step)
    description = summary_args.check_description(description)
    gradients = summary_args.as_list(gradients, "gradients")
    variables = summary_args.as_list(variables, "variables")
    if len(gradients) != len(variables):
        raise ValueError(
            "gradients and variables must have the same length, got %d gradients "
            "and %d variables" % (len(gradients), len(variables))
        )
    if updates is not None:
        updates = summary_args.as_list(updates, "updates")
        if len(updates) != len(variables):
            raise ValueError(
                "updates must have the length of variables (%d), got %d"
                % (len(variables), len(updates))
            )
    entries = gradient_entries(name, gradients, variables, updates)
    ctx = summary_writes.replica_context()
    if ctx is not None and entries:
        reduced = ctx.all_reduce(
            tf.distribute.ReduceOp.SUM, [stats.to_float(g) for _, g, _, _ in entries]
        )
        entries = [(p, r, v, u) for (p, _, v, u), r in zip(entries, reduced)]

    def write():
        return _write_gradient_stats(name, entries, step, description)

    with tf.name_scope("health_" + summary_writes.scope_name(name)):
        return summary_writes.gated(write)


def gradient_entries(name, gradients, variables, updates=None):
    """The (unique path, gradient tensor, variable, update tensor or None)
    of each variable with a gradient, validated (see gradient_magnitudes);
    None gradients are skipped with one warning per family and set of
    variables."""
    paths = summary_args.unique_paths(name, [variable_path(summary_args.check_variable(v, i))
                                 for i, v in enumerate(variables)])
    entries = []
    skipped = []
    for i, (g, v, path) in enumerate(zip(gradients, variables, paths)):
        if g is None:
            skipped.append(path)
            continue
        g = summary_args.as_tensor(g, "gradients[%d] (%s)" % (i, path))
        summary_args.check_same_shape(g, v, "gradients", i, path)
        u = updates[i] if updates is not None else None
        if u is not None:
            u = summary_args.as_tensor(u, "updates[%d] (%s)" % (i, path))
            summary_args.check_same_shape(u, v, "updates", i, path)
        entries.append((path, g, v, u))
    if skipped:
        summary_args.warn_once(
            ("none_gradients", name, tuple(skipped)),
            "tb_plugin: no gradient for %d variable(s) of %r, skipped: %s"
            % (len(skipped), name, ", ".join(skipped)),
        )
    return entries


def _write_gradient_stats(name, entries, step, description=None):
    """Computes (vectorised, see stats.gradient_stats_many) and writes the
    statistics of `entries` [(path, gradient, variable, update or None)]."""
    layout = [(p, g.shape) for p, g, _, _ in entries]
    st, has_update = {}, []
    if entries:
        st, has_update = gradient_statistics(
            [g for _, g, _, _ in entries],
            [variable_value(v) for _, _, v, _ in entries],
            [u for _, _, _, u in entries])
    with summary_writes.one_write(step):
        return write_gradient_record(name, layout, st, has_update, step, description)


def gradient_statistics(gradients, weights=None, updates=None, grad_stats=None):
    """(statistics by name, whether each variable has an update_ratio) of
    the gradients (stats.gradient_stats_many; `grad_stats`: those, already
    computed) and, given the weights, of the weights and their `updates`
    (a list aligned with them; None entries: no update known)."""
    st = dict(grad_stats if grad_stats is not None else stats.gradient_stats_many(gradients))
    has_update = [False] * int(st[metadata.GRAD_NORM].shape[0])
    if weights is not None:
        if updates is not None:
            has_update = [u is not None for u in updates]
        filled = None
        if any(has_update):
            filled = [u if u is not None else tf.zeros_like(stats.to_float(w))
                      for u, w in zip(updates, weights)]
        st.update(stats.weight_stats_many(weights, filled))
    return st, has_update


def write_gradient_record(name, layout, st, has_update, step, description):
    """The rows of a gradient record: `layout` [(variable path, gradient
    shape)], `st` and `has_update` from gradient_statistics. The
    per-variable statistics are one [variables, statistics] tensor and the
    log10|g| histograms one [variables, bins] tensor (see metadata)."""
    if layout:
        columns = [s for s in metadata.GRADIENT_VARIABLE_STATS if s in st
                   and (s != metadata.GRAD_UPDATE_RATIO or any(has_update))]
        matrix = tf.stack([tf.cast(st[s], tf.float32) for s in columns], axis=1)
        summary_writes.write_rows([metadata.stat_tag(name, metadata.GRAD_VARIABLE_STATS)], matrix[None],
                    step, (metadata.SERIES_VARIABLE_STATS, tuple(columns)), description)
        ratio = stats.first_last_ratio_many(
            st[metadata.GRAD_NORM], [len(shape) for _, shape in layout]
        )
        if ratio is not None:
            summary_writes.write_scalars([metadata.stat_tag(name, metadata.GRAD_FIRST_LAST_RATIO)],
                           tf.reshape(ratio, [1]), step, description)
        summary_writes.add_headline(metadata.HEADLINE_FIRST_LAST_RATIO, ratio)
        summary_writes.add_headline(metadata.HEADLINE_GRADIENT_NONFINITE,
                      tf.reduce_sum(st[metadata.GRAD_NONFINITE]))
        updated = [i for i, has in enumerate(has_update) if has]
        if updated:  # the largest ratio known (NaN: a weight of norm 0)
            ratios = tf.gather(st[metadata.GRAD_UPDATE_RATIO], updated)
            top = tf.reduce_max(tf.where(tf.math.is_nan(ratios), -np.inf, ratios))
            summary_writes.add_headline(metadata.HEADLINE_MAX_UPDATE_RATIO,
                          tf.where(top > -np.inf, top, np.nan))
        summary_writes.write_rows([metadata.stat_tag(name, metadata.GRAD_LOG10_HIST)],
                    tf.cast(st[metadata.GRAD_LOG10_HIST], tf.float32)[None], step,
                    (metadata.SERIES_VARIABLE_HISTOGRAMS, metadata.LOG10_RANGE), description)
    variables = []
    for i, (p, shape) in enumerate(layout):
        entry = {"path": p, "shape": [int(d) if d is not None else None for d in shape]}
        if any(has_update) and not has_update[i]:
            entry[metadata.INDEX_NO_UPDATE] = True
        variables.append(entry)
    index = {"kind": metadata.KIND_GRADIENTS, "variables": variables}
    return summary_writes.write_json(metadata.index_tag(name), index, step, description)


# ---------------------------------------------------------------------------
# Manifest


def manifest(data, step=0):
    """Writes the run manifest under ``health/manifest``.

    Args:
      data: a dict of JSON values (dicts with string keys, lists, strings,
        numbers, bools, None; other values are written as ``str(value)``),
        without cycles, nested at most summary_args.MAX_MANIFEST_DEPTH deep.
      step: a non-negative int or integer scalar tensor (None: the default
        step).

    Returns:
      A boolean tensor, true when the manifest was written.

    Raises:
      ValueError: naming the argument and what it got, for `data` or `step`
        not as above.
    """
    data = summary_args.check_manifest_data(data)
    step = summary_args.resolve_step(step)
    return summary_writes.gated(lambda: summary_writes.write_json(metadata.MANIFEST_TAG, data, step))


def model_manifest(model, loss, optimizer=None, step=0, from_logits=None):
    """Writes the manifest of a Keras model trained by a custom loop.

    The manifest (layers with their activations and initialisers, the output
    layer, the loss and whether it takes logits, the optimizer) is what the
    root-cause lint of :mod:`tb_plugin.diagnosis` reads, e.g. a ReLU on the
    logits of a ``from_logits=True`` loss (``output_activation_mismatch``),
    reported by ``tb-health check`` and the Health tab from step 0.
    ``HealthCallback`` writes the same manifest (one implementation:
    :func:`tb_plugin.manifest.build_manifest`). Write it once per run, before
    the loop, with the run's writer as the default::

        import tensorflow as tf
        from tb_plugin import summary as health

        model = keras.Sequential([keras.Input((20,)),
                                  keras.layers.Dense(64, activation="relu"),
                                  keras.layers.Dense(10)])
        loss_fn = tf.nn.sparse_softmax_cross_entropy_with_logits
        optimizer = keras.optimizers.Adam(1e-3)
        writer = tf.summary.create_file_writer("logs/custom/train")
        with writer.as_default():
            health.model_manifest(model, loss_fn, optimizer)
        # ... the training loop, then: tb-health check logs

    Args:
      model: a ``keras.Model`` (built, so that its parameters are counted).
      loss: the loss: a ``keras.losses.Loss`` instance, a Keras loss name
        (``"sparse_categorical_crossentropy"``), a TensorFlow op
        (``tf.nn.sparse_softmax_cross_entropy_with_logits`` and
        ``tf.nn.softmax_cross_entropy_with_logits``: multi-class on logits;
        ``tf.nn.sigmoid_cross_entropy_with_logits``: binary on logits) or a
        plain function, recognised by its name (``my_categorical_crossentropy``,
        ``masked_mse``; a ``functools.partial`` passes on its ``from_logits``).
        None: the model's compiled loss.
      optimizer: a ``keras.optimizers.Optimizer``; None: the model's, if any.
      step: the step to write the manifest at (a non-negative int or integer
        scalar tensor).
      from_logits: whether the model outputs logits, for a plain function
        whose name or signature does not say it (it overrides what the loss
        says); None: inferred (unknown stays unknown, and the output lint is
        then skipped).

    Returns:
      A boolean tensor, true when the manifest was written (as
      :func:`manifest`).

    Raises:
      ValueError: naming the argument, when one is not of the kinds above.
    """
    import keras

    from tb_plugin import manifest as manifest_lib

    if not isinstance(model, keras.Model):
        raise ValueError("model must be a keras.Model, got %s" % summary_args.got(model))
    if loss is None:
        loss = getattr(model, "loss", None)
        if loss is None:
            raise ValueError("loss is None and the model is not compiled with a loss: "
                             "pass the loss function")
    if not (isinstance(loss, str) or callable(loss)):
        raise ValueError(
            "loss must be a keras.losses.Loss, a loss name, a tf.nn loss function or "
            "a function, got %s" % summary_args.got(loss))
    if optimizer is not None and not isinstance(optimizer, keras.optimizers.Optimizer):
        raise ValueError("optimizer must be a keras.optimizers.Optimizer or None, got %s"
                         % summary_args.got(optimizer))
    if from_logits is not None:
        from_logits = summary_args.check_bool(from_logits, "from_logits")
    step = summary_args.resolve_step(step)
    data = manifest_lib.build_manifest(model, loss, optimizer, from_logits)
    return manifest(data, step=step)
