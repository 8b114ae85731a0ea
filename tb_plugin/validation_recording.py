"""The validation record of HealthCallback: one per validation run.

While ``fit`` validates, the prediction sums of every validation batch of
each recorded output are added, in the test step, to one float64 vector (one
op to reset, one to add a batch, one to read at the end); at the end of the
run they are written once to the ``validation`` run at the current train
step.
"""

import numpy as np
import tensorflow as tf

from tb_plugin import metadata
from tb_plugin import outputs as outputs_lib
from tb_plugin import stats
from tb_plugin import summary_v2
from tb_plugin import summary_args
from tb_plugin import summary_writes
from tb_plugin.step_recording import prediction_sums


class ValidationRecorder:
    """The validation records of one fit of `model`: `heads` the outputs
    recorded (the callback's list; an output's accumulators are created
    once its train predictions were traced), `writers` the fit's
    tb_plugin.record_writers.RecordWriters, `warn(key, message)`."""

    def __init__(self, model, optimizer, heads, writers, warn):
        self._model = model
        self._optimizer = optimizer
        self._heads = heads
        self._writers = writers
        self._warn = warn

    def begin(self):
        """At the start of a validation run: zero sums."""
        for head in self._heads:
            try:
                if head.acc is None:
                    if head.spec is None:
                        continue
                    self._create_accumulators(head)  # zeros
                else:
                    head.acc.assign(np.zeros(head.acc.shape, np.float64))
            except Exception as e:  # noqa: BLE001
                self._warn("validation",
                           "validation not recorded (%s: %s)" % (type(e).__name__, e))
                head.acc = None

    def add_batch(self, y, y_pred):
        """In the test step (`y`, `y_pred`: what compute_loss was given):
        adds the batch's sums."""
        for head in self._heads:
            if head.acc is not None:
                y_h, y_pred_h = outputs_lib.select(head, y, y_pred)
                self._accumulate(head, y_h, y_pred_h)

    def end(self):
        """At the end of a validation run: writes the outputs' records as
        one record (one event; its headline statistics over every output)."""
        records = []
        for head in self._heads:
            if head.acc is None:
                continue
            try:
                flat = head.acc.numpy()
                if flat[head.acc_count] == 0:
                    continue
                hist_range = None
                if head.spec[0] == metadata.TASK_REGRESSION:
                    hist_range = (float(head.range[0].numpy()), float(head.range[1].numpy()))
                records.append((head, stats.unpack_sums(flat, head.acc_spec), hist_range))
            except Exception as e:  # noqa: BLE001
                self._warn_lost(e)
        if not records:
            return
        try:
            writer = self._writers.validation_writer()
            step = int(self._optimizer.iterations.numpy())
            with summary_writes.writer_scope(writer), tf.summary.record_if(True), \
                    summary_writes.one_write(step):
                for head, sums, hist_range in records:
                    summary_v2.write_prediction_sums_numpy(
                        head.name, sums, head.spec[0], head.spec[1], step,
                        bool(head.from_logits), hist_range, index_extra=head.extra,
                    )
            self._writers.writes["validation"] += 1
        except Exception as e:  # noqa: BLE001
            self._warn_lost(e)

    def _warn_lost(self, e):
        self._warn("validation", "validation not recorded (%s: %s)" % (
            type(e).__name__, summary_args.short(str(e), 300)))

    def end_fit(self):
        for head in self._heads:
            head.acc = None

    def _create_accumulators(self, head):
        task, k, has_labels, y_pred_shape, y_shape, _, _ = head.spec
        dims = 1
        if task == metadata.TASK_REGRESSION and has_labels:
            dims = stats.regression_dims(y_pred_shape, y_shape)
        # All the sums in one float64 vector: one op to reset, one to add a
        # batch, one to read at the end.
        head.acc_spec = stats.prediction_sums_spec(task, k, has_labels, bool(head.from_logits),
                                                   output_dims=dims)
        head.acc_count = [key for key, _, _ in head.acc_spec].index(stats.S_COUNT)
        size = sum(int(np.prod(shape)) if shape else 1 for _, shape, _ in head.acc_spec)
        strategy = self._model.distribute_strategy
        with strategy.scope():
            head.acc = tf.Variable(
                tf.zeros([size], tf.float64), trainable=False, name="health_val_sums",
                aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
            )
            head.range = [
                tf.Variable(0.0, trainable=False, name="health_val_lo",
                            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA),
                tf.Variable(1.0, trainable=False, name="health_val_hi",
                            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA),
            ]

    def _accumulate(self, head, y, y_pred):
        acc = head.acc
        hist_range = None
        if head.task == metadata.TASK_REGRESSION:
            # The histogram range is the first batch's (later batches clip).
            blo, bhi = stats.finite_range(y_pred)
            first = tf.equal(acc[head.acc_count], 0.0)
            lo = tf.where(first, blo, head.range[0])
            hi = tf.where(first, bhi, head.range[1])
            head.range[0].assign(lo)
            head.range[1].assign(hi)
            hist_range = (lo, hi)
        # Packed in the shared function: the sums' casts and concat are
        # traced once per process, not into every fit's test step.
        packed = prediction_sums(head, y_pred, y if head.spec[2] else None, hist_range,
                                 packed=head.acc_spec)
        ctx = summary_writes.replica_context()
        if ctx is not None:
            packed = ctx.all_reduce(tf.distribute.ReduceOp.SUM, packed)
        acc.assign_add(packed)
