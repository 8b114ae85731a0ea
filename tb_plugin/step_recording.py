"""The recording of a train step: its statistics and its one write.

The wrappers that :mod:`tb_plugin.train_step_hooks` installs call
:class:`StepRecorder` while Keras traces the train step: ``compute_loss``
gives each recorded output's predictions and labels, the optimizer's
``apply`` the gradients (their statistics run before the update, so that
the optimizer can reuse their buffers) and the update itself (for
update_ratio). A logged step's prediction and gradient records are written
by one op as one event, after the update, and its train-mode record by
another, all behind one condition on the step (one train function) or
unconditionally (a train function called on logged steps only). The
statistics and the writes are traced once per process (see
:mod:`tb_plugin.shared_functions`), not into every fit.
"""

import contextlib

import tensorflow as tf

from tb_plugin import fit_guard
from tb_plugin import metadata
from tb_plugin import outputs as outputs_lib
from tb_plugin import stats
from tb_plugin import summary_v2
from tb_plugin import summary_args
from tb_plugin import summary_writes
from tb_plugin import tf_internals
from tb_plugin.shared_functions import shared_function


class StepRecorder:
    """Records the train steps of one fit.

    `heads`: the outputs recorded (tb_plugin.outputs.Head; the callback's
    list, from which `drop_head(head, error)` removes an output that cannot
    be traced); `writers`: the fit's tb_plugin.record_writers.RecordWriters;
    `cadence`: its tb_plugin.record_cadence.RecordCadence; `warn(key,
    message)`: says once per key what is not recorded.
    """

    def __init__(self, *, optimizer, heads, writers, cadence, gradients_name,
                 record_gradients, record_update_ratio, accum, replicas, warn, drop_head):
        self._optimizer = optimizer
        self._heads = heads
        self._writers = writers
        self._cadence = cadence
        self._gradients_name = gradients_name
        # Predictions are written with the gradients when both are recorded.
        self.gradients_recorded = bool(record_gradients)
        self._update_ratio = bool(record_update_ratio) and replicas == 1 and accum == 1
        self._accum = accum
        self._warn = warn
        self._drop_head = drop_head
        self.recording = False  # the train function that records is traced / runs
        self.single_function = False  # the recording sits behind conds (see _gate)
        self.train_mode = None  # tb_plugin.train_mode.FitRecording, or None
        self._pending_predictions = None
        # Created eagerly: a variable created while a step is traced makes
        # tf.function trace the step again. See _write_record.
        self._metadata_written = tf.Variable(
            False, trainable=False, name="health_metadata_written")
        self._metadata_key = None

    def end(self):
        """At the end of fit: nothing more is recorded."""
        self.recording = False
        self.train_mode = None
        self._metadata_written = None
        self._metadata_key = None

    def _step(self):
        return tf.cast(self._optimizer.iterations, tf.int64)

    def _gate(self, step):
        """None (record unconditionally: this call runs one step and it is
        logged) or the in-graph condition of a logged step."""
        if not self.single_function:
            return None
        return self._cadence.should_log(step)

    # -- predictions (from compute_loss) -------------------------------------

    def record_predictions(self, y, y_pred, sample_weight=None):
        """The prediction records of a train step (`y`, `y_pred`,
        `sample_weight`: what compute_loss was given), written with its
        gradients when those are recorded (see record_gradients)."""
        if not self.recording:
            return  # the plain train function
        step = self._step()
        parts = []  # (head, labels, outputs, sample weights) of each output recorded
        for head in list(self._heads):
            try:
                y_h, y_pred_h = outputs_lib.select(head, y, y_pred)
                # Validate shapes now (trace time) so that errors surface here.
                summary_args.check_outputs(y_pred_h, y_h, head.task)
            except Exception as e:  # noqa: BLE001 - the other outputs are still recorded
                self._drop_head(head, e)
                continue
            label_shape = None if y_h is None else y_h.shape
            head.spec = (
                head.task,
                int(y_pred_h.shape[-1]) if head.task == metadata.TASK_MULTICLASS else 1,
                y_h is not None,
                y_pred_h.shape,
                label_shape,
                y_pred_h.dtype,
                None if y_h is None else y_h.dtype,
            )
            head.extra = summary_v2.index_extra(head.task, y_pred_h.shape, label_shape)
            parts.append((head, y_h, y_pred_h, _label_weights(head, y_h, y_pred_h, sample_weight)))
        if not parts:
            return

        ctx = summary_writes.replica_context()
        if ctx is None:

            def predictions():
                out = []
                for head, y_h, y_pred_h, w_h in parts:
                    hist_range = None
                    if head.task == metadata.TASK_REGRESSION:
                        hist_range = stats.finite_range(y_pred_h)
                    out.append((head, prediction_sums(head, y_pred_h, y_h, hist_range, w_h),
                                hist_range))
                return out

        else:
            # Collectives cannot run inside the tf.cond: reduce every step.
            reduced = []
            for head, y_h, y_pred_h, w_h in parts:
                hist_range = None
                if head.task == metadata.TASK_REGRESSION:
                    hist_range = summary_v2.regression_range(y_pred_h, ctx)
                reduced.append((head, summary_v2.all_reduce_sums(
                    ctx, prediction_sums(head, y_pred_h, y_h, hist_range, w_h)), hist_range))

            def predictions():
                return reduced

        should = self._gate(step)
        if self.gradients_recorded and not tf.executing_eagerly():
            # Written with the gradients (after the update; one cond per
            # step when there is one): see record_gradients.
            self._pending_predictions = (
                tf.compat.v1.get_default_graph(), predictions, should, step)
        else:
            _run_gated(should, lambda: self._write_record(step, predictions()))

    def _write_pending_predictions(self):
        """Writes a stashed prediction record in a cond of its own (when the
        gradients' cond could not be built)."""
        pending, self._pending_predictions = self._pending_predictions, None
        if pending is None or not _inside(pending[0]):
            return
        _, predictions, should, step = pending
        try:
            _run_gated(should, lambda: self._write_record(step, predictions()))
        except Exception as e:  # noqa: BLE001
            self._warn(
                ("predictions", True),
                "predictions not recorded (%s: %s)" % (type(e).__name__, e),
            )

    def _take_pending_predictions(self):
        """The stashed prediction record of this graph or one it is nested in
        (a LossScaleOptimizer applies the gradients inside a tf.cond), if
        any: compute_loss stashes it for apply to write with the gradients."""
        pending = self._pending_predictions
        if pending is None or not _inside(pending[0]):
            return None
        self._pending_predictions = None
        return pending

    # -- gradients (from the optimizer's apply) ------------------------------

    def record_gradients(self, apply, grads, trainable_variables):
        """Calls the optimizer's `apply` with the gradient statistics of the
        step before it and the step's records written after it; returns
        what `apply` returns."""
        grads = list(grads)
        variables = list(trainable_variables)
        try:
            step = self._step()
            should = self._gate(step)
            entries, grad_stats = self._gradient_stats(
                self._applied_gradients(grads, variables), variables, should)
        except Exception as e:  # noqa: BLE001
            self._warn("gradients", "gradients not recorded (%s: %s)" % (type(e).__name__, e))
            result = apply(grads, trainable_variables)
            self._write_pending_predictions()
            return result
        # Recorded unconditionally (a train function of logged steps), the
        # statistics of the gradients run before the update: once the
        # optimizer's ops are their last readers, it can reuse their
        # buffers in place (a reader after it would cost fresh buffers).
        # Behind a cond (one train function), no such barrier: on the steps
        # that are not logged it would hold every update back until the
        # last gradient is computed (+3-5% a step on a ResNet or a
        # Transformer, see benchmarks/README.md).
        barrier = list(grad_stats.values()) if should is None else []
        with tf.control_dependencies(barrier):
            if self._update_ratio:
                with _captured_updates(self._optimizer, variables) as updates:
                    result = apply(grads, trainable_variables)
                if all(u is None for u in updates):
                    self._warn(
                        "updates",
                        "update_ratio not recorded: %s applies its updates without "
                        "Keras's Optimizer.assign/assign_add/assign_sub"
                        % type(self._optimizer).__name__,
                    )
            else:
                result = apply(grads, trainable_variables)
                updates = [None] * len(variables)
        pending = self._take_pending_predictions()
        train_mode = self.train_mode.take() if self.train_mode is not None else None
        try:
            present = [i for i, g in enumerate(grads) if g is not None]
            entries = [(p, g, v, updates[i]) for (p, g, v, _), i in zip(entries, present)]

            def write():
                # One write op for the step's prediction and gradient records
                # (and one for its train-mode record, see _write_train_mode).
                predictions = pending[1]() if pending is not None else None
                written = self._write_record(step, predictions, (entries, grad_stats))
                self._write_train_mode(step, train_mode)
                return written

            with tf.name_scope("health_" + summary_writes.scope_name(self._gradients_name)):
                _run_gated(should, write)
        except Exception as e:  # noqa: BLE001
            self._warn("gradients", "gradients not recorded (%s: %s)" % (type(e).__name__, e))
            self._pending_predictions = pending
            self._write_pending_predictions()
        return result

    def _applied_gradients(self, grads, variables):
        """The gradients the optimizer applies: `grads`, or with gradient
        accumulation (on the last batch of an update, the one recorded) the
        mean of the accumulated gradients and this batch's, read before the
        optimizer resets its accumulators."""
        n = self._accum
        if n == 1:
            return grads
        optimizer = self._optimizer
        return [g if g is None else (g + tf_internals.accumulated_gradient(optimizer, v)) / n
                for g, v in zip(grads, variables)]

    def _gradient_stats(self, grads, variables, should):
        """(entries, statistics) of the gradients of a train step (see
        summary_v2.gradient_entries, stats.gradient_stats_many), summed
        across replicas first; gated by `should` (zeros when not logged)."""
        entries = summary_v2.gradient_entries(self._gradients_name, grads, variables)
        if not entries:
            raise ValueError("no variable has a gradient")
        ctx = summary_writes.replica_context()
        if ctx is not None:
            # Collectives cannot run inside a tf.cond: reduce first.
            reduced = ctx.all_reduce(
                tf.distribute.ReduceOp.SUM, [stats.to_float(g) for _, g, _, _ in entries])
            entries = [(p, r, v, u) for (p, _, v, u), r in zip(entries, reduced)]

        def compute():
            # Traced once per process (see shared_function).
            return shared_function(("gradient_stats",), stats.gradient_stats_many)(
                [g for _, g, _, _ in entries])

        with tf.name_scope("health_" + summary_writes.scope_name(self._gradients_name)):
            if should is None:
                return entries, compute()
            return entries, summary_writes.lazy_cond(
                should, compute, lambda: stats.zero_gradient_stats(len(entries)))

    # -- the writes ----------------------------------------------------------

    def _write_record(self, step, predictions=None, gradients=None):
        """Writes a train step's record with one op: `predictions` ([(head,
        prediction sums, regression histogram range)] of the outputs
        recorded), `gradients` (gradient_entries and their
        gradient_stats_many). The statistics and the write are traced once
        per process (train_record_impl), not into every fit."""
        layout = grad_args = None
        if gradients is not None:
            entries, grad_stats = gradients
            layout = tuple((p, tuple(g.shape.as_list())) for p, g, _, _ in entries)
            grad_args = (
                grad_stats,
                [summary_v2.variable_value(v) for _, _, v, _ in entries],
                [u for _, _, _, u in entries],
            )
        heads = pred_args = None
        if predictions:
            heads = tuple((h.name, h.spec[0], h.spec[1], bool(h.from_logits),
                           tuple(sorted(h.extra.items()))) for h, _, _ in predictions)
            pred_args = [(sums, hist_range) for _, sums, hist_range in predictions]
        weighted = tuple(stats.S_LABEL_WEIGHTS in sums for sums, _ in pred_args or ())
        key = ("train_record", heads, weighted,
               self._gradients_name if gradients is not None else None, layout)
        # The values' metadata only until the write has run once: one write
        # (one set of tags) per writer (see summary_writes.one_write).
        if self._metadata_key is None:
            self._metadata_key = key
        written = None
        if key == self._metadata_key and summary_writes.replica_context() is None:
            written = self._metadata_written
        impl = train_record_impl(heads, self._gradients_name, layout)
        with self._writers.train_scope():
            writer = summary_writes.summary_writer_resource()
            write = impl if writer is None else shared_function(key, impl)
            result = summary_writes.gated(
                lambda: write(step, writer, written, pred_args, grad_args))
        self._writers.count_train_write(result)
        return result

    def _write_train_mode(self, step, notes):
        """Writes the train-mode record of a logged step (`notes`: taken in
        the step's graph, outside its conds)."""
        if not notes or self.train_mode is None:
            return
        try:
            with self._writers.train_scope():
                written = self.train_mode.write(step, notes, shared_function)
            self._writers.count_train_write(written)
        except Exception as e:  # noqa: BLE001 - never break training
            self._warn("train_mode", "train mode not recorded (%s: %s)" % (type(e).__name__, e))


def train_record_impl(heads, gradients_name, layout):
    """The write of one train step's record: the prediction sums (and
    regression histogram range) of each recorded output (`heads`: [(family
    name, task, num_classes, from_logits, optional index fields as sorted
    items)], aligned with `predictions`) and its gradient statistics, weights
    and updates (`layout`: [(variable path, gradient shape)]), with one write
    op to `writer` (a summary writer's resource handle; `written`: see
    summary_writes.one_write)."""

    def write_record(step, writer, written, predictions, gradients):
        with summary_writes.one_write(step, writer, written):
            for (name, task, num_classes, from_logits, extra), (sums, hist_range) in zip(
                    heads or (), predictions or ()):
                summary_v2.write_prediction_record(
                    name, sums, task, num_classes, step, from_logits, hist_range,
                    None, index_extra=dict(extra))
            if gradients is not None:
                grad_stats, weights, updates = gradients
                st, has_update = summary_v2.gradient_statistics(
                    None, weights, updates, grad_stats)
                summary_v2.write_gradient_record(
                    gradients_name, layout, st, has_update, step, None)
        return tf.constant(True)

    return write_record


def _label_weights(head, y, y_pred, sample_weight):
    """The per-row sample weights of `head`'s rows when they are recorded
    (multiclass outputs with labels, weights matched to the output and
    shaped [batch] / [batch, 1]); else None."""
    if head.task != metadata.TASK_MULTICLASS or y is None:
        return None
    w = outputs_lib.select_weights(head, sample_weight)
    if w is None:
        return None
    try:
        return summary_args.check_sample_weight(w, y_pred)
    except ValueError:
        return None  # weights of another shape: not recorded


def prediction_sums(head, y_pred, y, hist_range, sample_weight=None, packed=None):
    """summary_v2.prediction_sums of a batch of output `head`, through a
    tf.function in graphs: traced once per process and kind of output (batch
    dimension left open) and shared by the train step, the test step, their
    retraces (Keras retraces a step for a last, smaller batch) and later
    fits. `packed`: a prediction_sums_spec; the sums are then returned
    packed into one vector (stats.pack_sums) by a function of its own,
    which calls the shared one (so packing too is traced once)."""
    task, from_logits = head.task, bool(head.from_logits)
    if tf.executing_eagerly():
        sums = summary_v2.prediction_sums(y_pred, y, from_logits, task, hist_range,
                                          sample_weight)[0]
        return sums if packed is None else stats.pack_sums(sums, packed)
    has_labels, weighted = y is not None, sample_weight is not None
    args = [y_pred] + ([y] if has_labels else []) + ([sample_weight] if weighted else [])
    if hist_range is not None:
        args += [tf.cast(hist_range[0], tf.float32), tf.cast(hist_range[1], tf.float32)]
    regression = hist_range is not None

    def sums_impl(*tensors):
        labels = tensors[1] if has_labels else None
        weights = tensors[1 + has_labels] if weighted else None
        rng = tuple(tensors[-2:]) if regression else None
        return summary_v2.prediction_sums(tensors[0], labels, from_logits, task, rng,
                                          weights)[0]

    key = (task, from_logits, weighted) + tuple((a.dtype, a.shape.rank) for a in args)
    sums_fn = shared_function(key, sums_impl, args)
    if packed is None:
        return sums_fn(*args)
    return shared_function(key + (tuple(packed),),
                           lambda *tensors: stats.pack_sums(sums_fn(*tensors), packed),
                           args)(*args)


def _run_gated(should, fn):
    if should is None:
        return fn()
    return summary_writes.lazy_cond(should, fn, lambda: tf.constant(False))


def _inside(graph):
    """Whether the default graph is `graph` or a graph nested in it (a
    tf.cond branch, a while body)."""
    current = tf.compat.v1.get_default_graph()
    while current is not None:
        if current is graph:
            return True
        current = getattr(current, "outer_graph", None)
    return False


@contextlib.contextmanager
def _captured_updates(optimizer, variables):
    """Collects what `optimizer` adds to each of `variables` while inside.

    Keras 3 optimizers change variables through ``Optimizer.assign``,
    ``assign_add`` and ``assign_sub``; wrapping those on the instance gives
    each variable's update as the tensor the optimizer computes anyway (no
    copy of the weights before the step). Yields a list aligned with
    `variables`: the summed update of each, None where nothing was applied
    through those methods.
    """
    index = {}
    for i, v in enumerate(variables):
        index[id(v)] = i
        inner = getattr(v, "value", None)  # the tf.Variable of a keras.Variable
        if isinstance(inner, tf.Variable):
            index[id(inner)] = i
    updates = [None] * len(variables)

    def add(variable, delta):
        i = index.get(id(variable))
        if i is None:
            return
        if isinstance(delta, tf.IndexedSlices):
            delta = tf.convert_to_tensor(delta)
        delta = stats.to_float(delta)
        updates[i] = delta if updates[i] is None else updates[i] + delta

    originals = {name: getattr(optimizer, name) for name in ("assign", "assign_add", "assign_sub")}

    def assign(variable, value):
        if id(variable) in index:
            add(variable, stats.to_float(value) - stats.to_float(
                summary_v2.variable_value(variable)))
        return originals["assign"](variable, value)

    def assign_add(variable, value):
        add(variable, value)
        return originals["assign_add"](variable, value)

    def assign_sub(variable, value):
        add(variable, -stats.to_float(value))
        return originals["assign_sub"](variable, value)

    patched = {"assign": assign, "assign_add": assign_add, "assign_sub": assign_sub}
    saved = [fit_guard.override(optimizer, name, fn) for name, fn in patched.items()]
    try:
        yield updates
    finally:
        for item in reversed(saved):
            fit_guard.restore_attr(item)
