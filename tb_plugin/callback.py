"""HealthCallback: record the health of a Keras model while it trains.

The callback records from the tensors the train step already computes (the
model outputs and labels given to ``compute_loss``, the gradients given to the
optimizer, the updates the optimizer applies): there is no second forward or
backward pass and no copy of the weights.

Cost (see benchmarks/bench_recording_overhead.py): the statistics of a step
are computed with a few ops per variable off the gradients' float32 bits
(see tb_plugin.stats), before the optimizer update so that the
update can reuse the gradients' buffers, and the step's records are written
by one op as one event. Steps that are not logged run Keras's own train
function (long runs, or every step logged: the recording lives in a second
train function called on logged steps only) or cost two functional tf.conds
that skip the recording (short runs: one train function, so that the train
step is traced only once). Keras's second trace of the train step (it
creates the optimizer slots and metric variables while tracing) is avoided by
building them first. The statistics and writes are tf.functions traced once
per process, and the steps that hold them run without the Grappler passes
that would walk them in every fit (see _lean_step_options).
The end-of-epoch diagnosis reads only the records written since the
previous epoch.
"""

import collections
import contextlib
import glob
import logging
import math
import os
import struct
import sys
import time
import warnings
import weakref

# summary_v2 raises a clear ImportError when TensorFlow is missing.
from tb_plugin import summary_v2

import keras
import numpy as np
import tensorflow as tf

from tb_plugin import fit_guard
from tb_plugin import metadata
from tb_plugin import outputs as outputs_lib
from tb_plugin import stats
# The manifest, shared with tb_plugin.summary.model_manifest (build_manifest
# and loss_info stay importable from here).
from tb_plugin.manifest import build_manifest  # noqa: F401
from tb_plugin.manifest import loss_info

logger = logging.getLogger("tb_plugin")


# Traced functions of the recording, shared by all fits of the process:
# tracing them is Python work of tens of ms, paid once per process and key
# instead of once per fit (a fit's train step only calls them). Least
# recently used first; keys that name variables (the record writes) change
# with every model built without keras.backend.clear_session().
_SHARED_FUNCTIONS = collections.OrderedDict()
_SHARED_FUNCTIONS_MAX = 64


def _shared_function(key, impl, args=None):
    """The tf.function of `impl` kept under `key` in _SHARED_FUNCTIONS, as a
    callable that calls it unoptimized (see _unoptimized_calls). With
    `args`, traced at once for them with their batch dimension left open
    (the last, smaller batch of an epoch then needs no trace of its own)."""
    fn = _SHARED_FUNCTIONS.get(key)
    if fn is None:
        fn = tf.function(impl, autograph=False)
        if args is not None:
            fn.get_concrete_function(*[
                tf.TensorSpec([None] + a.shape.as_list()[1:] if a.shape.rank else [], a.dtype)
                for a in args])
        _SHARED_FUNCTIONS[key] = fn
        while len(_SHARED_FUNCTIONS) > _SHARED_FUNCTIONS_MAX:
            _SHARED_FUNCTIONS.popitem(last=False)
    else:
        _SHARED_FUNCTIONS.move_to_end(key)

    def call(*call_args):
        with _unoptimized_calls():
            return fn(*call_args)

    return call


def _function_call_options(**rewrite):
    """The current tf.function call options with `rewrite` (RewriterConfig
    fields of Grappler, TensorFlow's graph optimizer) set; None if this
    TensorFlow lays them out differently."""
    try:
        from tensorflow.core.protobuf import config_pb2
        from tensorflow.python.eager import context

        old = context.context().function_call_options
        config = config_pb2.ConfigProto()
        if isinstance(old.config_proto_serialized, bytes):
            config.ParseFromString(old.config_proto_serialized)
        for field, value in rewrite.items():
            setattr(config.graph_options.rewrite_options, field, value)
        return context.FunctionCallOptions(executor_type=old.executor_type,
                                           config_proto=config)
    except Exception:  # noqa: BLE001 - an optimisation only (another TF layout)
        return None


@contextlib.contextmanager
def _calls_with(options):
    """tf.function calls (eager) and call ops (traced) inside use `options`
    (from _function_call_options; None: unchanged)."""
    if options is None:
        yield
        return
    from tensorflow.python.eager import context

    ctx = context.context()
    old = ctx.function_call_options
    ctx.function_call_options = options
    try:
        yield
    finally:
        ctx.function_call_options = old


def _unoptimized_calls():
    """The calls of tf.functions traced inside skip Grappler when the train
    step that holds them first runs.

    Every fit's train step is a new function, and Grappler optimized the
    statistics and record writes in it again each time: ~50 ms per fit on
    the benchmark's MLP, more than all the records of a default fit, for
    graphs that are already small and lean (a record costs the same
    without it). The rest of the step is optimized as usual.
    """
    return _calls_with(_function_call_options(disable_meta_optimizer=True))


def _lean_step_options():
    """Call options for the train and test steps that hold the recording:
    Grappler without its TFG (MLIR) module pipeline and function optimizer.

    Both walk the whole function library of a step, which with the
    recording holds its statistics and write functions: 50-130 ms more in
    the first train and test calls of every fit on the benchmark's MLP
    (TF_CPP_VMODULE=meta_optimizer=1), to optimize nothing (the statistics run
    unoptimized, see _unoptimized_calls; the TFG pipeline changes no node
    of Keras's own step either, and the function optimizer has no call of
    it to work on). Grappler's other passes (remapper, constant folding,
    arithmetic, layout...) still optimize the step.
    """
    try:
        from tensorflow.core.protobuf import rewriter_config_pb2
    except ImportError:  # an optimisation only (another TF layout)
        return None
    return _function_call_options(
        disable_tfg_optimizer=True,
        function_optimization=rewriter_config_pb2.RewriterConfig.OFF)


def _train_record_impl(heads, gradients_name, layout):
    """The write of one train step's record: the prediction sums (and
    regression histogram range) of each recorded output (`heads`: [(family
    name, task, num_classes, from_logits, optional index fields as sorted
    items)], aligned with `predictions`) and its gradient statistics, weights
    and updates (`layout`: [(variable path, gradient shape)]), with one write
    op to `writer` (a summary writer's resource handle; `written`: see
    summary_v2._one_write)."""

    def write_record(step, writer, written, predictions, gradients):
        with summary_v2._one_write(step, writer, written):
            for (name, task, num_classes, from_logits, extra), (sums, hist_range) in zip(
                    heads or (), predictions or ()):
                summary_v2._write_prediction_sums(
                    name, sums, task, num_classes, step, from_logits, hist_range,
                    None, index_extra=dict(extra))
            if gradients is not None:
                grad_stats, weights, updates = gradients
                st, has_update = summary_v2._gradient_statistics(
                    None, weights, updates, grad_stats)
                summary_v2._write_gradient_rows(
                    gradients_name, layout, st, has_update, step, None)
        return tf.constant(True)

    return write_record


def _check_log_dir(log_dir):
    """ValueError unless `log_dir` is a non-empty path (str or os.PathLike)."""
    try:
        path = os.fspath(log_dir)
    except TypeError:
        path = None
    if not isinstance(path, str) or not path:
        raise ValueError("log_dir must be a non-empty path (str or os.PathLike), got %s"
                         % summary_v2._got(log_dir))


def _check_names(predictions_name, gradients_name):
    """ValueError unless the record family names are valid, distinct and not
    the train-mode record's (tb_plugin.train_mode.FitRecording's default)."""
    summary_v2._check_name(predictions_name, "predictions_name")
    summary_v2._check_name(gradients_name, "gradients_name")
    for arg, name in (("predictions_name", predictions_name), ("gradients_name", gradients_name)):
        if name == "train_mode":
            raise ValueError("%s 'train_mode' is the train-mode record's family name; "
                             "choose another" % arg)
    if predictions_name == gradients_name:
        raise ValueError("predictions_name and gradients_name must differ, got %r for both"
                         % (predictions_name,))


class HealthCallback(keras.callbacks.Callback):
    """Records prediction and gradient health while a Keras model trains.

    One line in ``fit``::

        import tb_plugin

        model.compile(optimizer="adam",
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x, y, validation_data=(x_val, y_val), epochs=10,
                  callbacks=[tb_plugin.HealthCallback("logs/run1")])
        # then: tensorboard --logdir logs   (or: tb-health check logs)

    It coexists with ``keras.callbacks.TensorBoard(log_dir="logs/run1")``.

    Every `log_every_n_steps` optimizer steps (step 0 included) it writes to
    ``log_dir/train``: the statistics of the batch's outputs against its
    labels (``health/predictions/...``) and of the gradients of every
    trainable variable (``health/gradients/...``), computed from the tensors
    the train step already has (no second forward or backward pass). When
    ``fit`` validates, the prediction statistics of all validation batches
    are accumulated and written once per validation run to
    ``log_dir/validation`` at the current train step. A manifest (layers,
    initialisers, loss, optimizer, versions) is written once per run.

    The task (multiclass / binary / regression) and ``from_logits`` are
    inferred from the compiled loss; pass `task` / `from_logits` to override.
    A model with several outputs is recorded per output
    (``health/predictions/<output name>/...``, each output's task from its
    own loss); multi-label sigmoid outputs ``[batch, K]`` as K binary
    problems (see tb_plugin.outputs). Outputs that cannot be recorded are
    named in the manifest (``not_recorded``) and reported by the diagnosis
    (``not_covered``), with a warning at train begin.
    At the end of every epoch, new findings of :mod:`tb_plugin.diagnosis`
    are printed (once per kind and layer); training stops when a finding's
    kind is in `stop_on`. What the manifest alone shows (e.g. a ReLU on the
    logits, see :func:`tb_plugin.diagnosis.diagnose_manifest`) is printed
    at train begin instead, and a `stop_on` kind among it stops fit after
    its first step.

    The callback never breaks training: if it cannot set itself up it warns
    once and disables itself. It turns off XLA (``jit_compile``) for the
    train step while it records, because summary ops cannot run inside XLA,
    and runs the steps that hold the recording without Grappler's TFG
    pipeline and function optimizer (they only walk the recording's
    functions; the step's other graph optimizations stay on).

    Whatever ends ``fit`` (its end, ``stop_training``, an exception, Ctrl-C),
    the model is left as it was (see :mod:`tb_plugin.fit_guard`). What is
    not recorded is said once, with what is lost: records that do not reach
    the disk (checked at each epoch end; a failed write stops the recording,
    not the training), a custom ``train_step`` that bypasses
    ``compute_loss`` or the optimizer, gradient accumulation (recorded once
    per optimizer step, without update_ratio), a second HealthCallback in
    one fit or a callback reused on another model whose records would mix
    with the first's (neither records). Mixed precision is recorded like
    float32.

    Args:
      log_dir: the run directory (same as keras.callbacks.TensorBoard's).
      log_every_n_steps: record every N optimizer steps. Default (None):
        about 64 records per fit, at most 50 steps apart, plus the fit's
        first 8 steps (every step for fits of up to ~130 steps; a fit of
        unknown length is recorded every step at first, then ever
        sparser).
      record_predictions: record output/label statistics (train and
        validation).
      record_gradients: record gradient statistics.
      record_update_ratio: record ||update|| / ||weight||, the update being
        what the optimizer applies through Keras's ``Optimizer.assign*``
        methods (every built-in optimizer; decoupled weight decay is not
        part of it); not available under a multi-replica strategy.
      task: "multiclass", "binary" or "regression"; default from the loss.
        With several outputs it only fills in what an output's loss does not
        say (as `from_logits` does).
      from_logits: whether the model outputs logits; default from the loss.
      stop_on: a list or tuple of finding kinds (``diagnosis.KINDS``) that
        stop training (``model.stop_training``), e.g. ``("nonfinite",)``.
      report_findings: print the manifest's findings at train begin and new
        findings at the end of every epoch (an
        epoch end is skipped when the last diagnosis, or the start of fit,
        is too recent for the online diagnosis to stay within ~0.5% of the
        training time: fits of a few seconds are diagnosed once, at their
        end; with `stop_on`, from the first epoch end).
      predictions_name, gradients_name: record family names.
      record_train_mode: record what the layers that behave differently in
        training (Dropout family, BatchNormalization, any layer whose
        ``call`` takes ``training``) ran with: the training flag each
        received, a Dropout's zero fractions, how far BatchNormalization's
        moving statistics moved (see tb_plugin.train_mode; with the gradient
        record, so not with ``record_gradients=False``).
      thresholds: the online diagnosis' thresholds: None (the defaults),
        a dict of overrides such as ``{"collapse_entropy": 0.95}`` or a
        ``tb_plugin.diagnosis.Thresholds``.
    """

    def __init__(
        self,
        log_dir,
        log_every_n_steps=None,
        record_predictions=True,
        record_gradients=True,
        record_update_ratio=True,
        record_train_mode=True,
        task=None,
        from_logits=None,
        stop_on=(),
        report_findings=True,
        predictions_name="predictions",
        gradients_name="gradients",
        thresholds=None,
    ):
        super().__init__()
        from tb_plugin import diagnosis

        if log_every_n_steps is not None and (
                isinstance(log_every_n_steps, bool)
                or not isinstance(log_every_n_steps, (int, np.integer))
                or log_every_n_steps < 1):
            raise ValueError(
                "log_every_n_steps must be an int >= 1 or None, got %r" % (log_every_n_steps,)
            )
        if isinstance(thresholds, dict):
            thresholds = diagnosis.thresholds_from(thresholds)  # ValueError names the bad one
        elif thresholds is not None and not isinstance(thresholds, diagnosis.Thresholds):
            raise ValueError("thresholds must be None, a dict name -> value or a "
                             "tb_plugin.diagnosis.Thresholds, got %r" % (thresholds,))
        stop_on = diagnosis.validate_kinds(stop_on, "stop_on")
        if task is not None and task not in summary_v2._TASKS:
            raise ValueError("task must be one of %s or None, got %r" % (summary_v2._TASKS, task))
        _check_log_dir(log_dir)
        flags = dict(record_predictions=record_predictions, record_gradients=record_gradients,
                     record_update_ratio=record_update_ratio,
                     record_train_mode=record_train_mode, report_findings=report_findings)
        for arg, value in flags.items():
            summary_v2._check_bool(value, arg)
        if from_logits is not None:
            summary_v2._check_bool(from_logits, "from_logits")
        _check_names(predictions_name, gradients_name)
        self.log_dir = os.fspath(log_dir)
        self.log_every_n_steps = None if log_every_n_steps is None else int(log_every_n_steps)
        self._every = self.log_every_n_steps
        self._first_step = 0
        self.record_predictions = bool(record_predictions)
        self.record_gradients = bool(record_gradients)
        self.record_update_ratio = bool(record_update_ratio)
        self.record_train_mode = bool(record_train_mode)
        self._train_mode = None
        self.task = task
        self.from_logits = None if from_logits is None else bool(from_logits)
        self.stop_on = stop_on
        self.thresholds = thresholds
        self.report_findings = bool(report_findings)
        self.predictions_name = predictions_name
        self.gradients_name = gradients_name
        self._active = False
        self._reported = set()
        self._manifest = None
        self._warned = set()
        self._heads = []  # the outputs recorded (tb_plugin.outputs.Head)
        self._not_recorded = []  # the others: [{"output", "reason"}]
        self._coverage_written = 0
        self._train_writer = None
        self._val_writer = None
        self._metadata_written = None
        self._metadata_key = None
        self._gradients_patched = False
        self._pending_predictions = None
        self._recording = False
        self._single_function = False
        self._spe = 1
        self._next_step = 0
        self._event_files = {}
        self._loader = None
        self._diagnosed_at = None
        self._diagnosis_seconds = self.FIRST_DIAGNOSIS_SECONDS
        self._undiagnosed = False
        self._patches = None  # tb_plugin.fit_guard.FitPatches of the current fit
        self._accum = 1  # the optimizer's gradient_accumulation_steps
        self._last_fit = None  # (weakref to the model, log_dir, its end step)
        self._on_disk = {}  # run -> _EventFileCheck
        self._writes = collections.Counter()  # run -> records written eagerly
        self._graph_writes = None  # train records written by the train steps
        self._records_lost = set()  # runs whose loss was reported

    # -- helpers -----------------------------------------------------------

    def _warn(self, key, message):
        if key in self._warned:
            return
        self._warned.add(key)
        warnings.warn("tb_plugin.HealthCallback: " + message, stacklevel=2)

    # -- outputs not recorded (see tb_plugin.outputs) ------------------------

    def _warn_not_covered(self):
        """Warns (once per list) which outputs are not recorded and what the
        findings still cover."""
        covered = []
        if self._heads:
            covered.append("the predictions %s" % ", ".join(repr(h.name) for h in self._heads))
        if self.record_gradients:
            covered.append("the gradients")
        self._warn(
            ("not_covered", len(self._not_recorded)),
            "predictions not recorded for %s; the findings cover only %s"
            % (outputs_lib.describe(self._not_recorded), " and ".join(covered) or "nothing"))

    def _drop_head(self, head, error):
        """An output whose predictions could not be traced: recorded no more,
        named in the manifest (rewritten at the next epoch end)."""
        if head in self._heads:
            self._heads.remove(head)
        self._not_recorded.append({
            "output": head.output or (outputs_lib.output_names(self.model) or [None])[0],
            "reason": "%s: %s" % (type(error).__name__, error)})
        self._warn_not_covered()

    def _write_coverage(self):
        """Rewrites the manifest when outputs were dropped since it was
        written (the reader takes the newest)."""
        if (self._manifest is None or self._train_writer is None
                or len(self._not_recorded) == self._coverage_written):
            return
        try:
            self._manifest.update(outputs_lib.coverage(self._heads, self._not_recorded))
            with summary_v2.writer_scope(self._train_writer), tf.summary.record_if(True):
                summary_v2.manifest(self._manifest, step=int(self._optimizer.iterations.numpy()))
            self._writes["train"] += 1
            self._coverage_written = len(self._not_recorded)
        except Exception as e:  # noqa: BLE001 - never break training
            self._warn("coverage", "could not update the manifest (%s: %s)"
                       % (type(e).__name__, e))

    def _step(self):
        return tf.cast(self._optimizer.iterations, tf.int64)

    # The automatic cadence (log_every_n_steps=None): about AUTO_RECORDS
    # records per fit (every step for fits of up to ~2 * AUTO_RECORDS steps),
    # at most MAX_AUTO_EVERY steps apart. The rules need tens of records to
    # tell a state from noise; a fixed 50 gave a 60-step fit 2 records.
    AUTO_RECORDS = 64
    MAX_AUTO_EVERY = 50
    # In-graph cadence when the fit's length is unknown (several steps per
    # call of the train function pick the logged step in the graph).
    UNKNOWN_LENGTH_EVERY = 10

    def _planned_steps(self):
        """Epochs x steps per epoch as Keras tells callbacks, or None."""
        params = getattr(self, "params", None) or {}
        try:
            return int(params.get("epochs")) * int(params.get("steps"))
        except (TypeError, ValueError):
            return None

    def _cadence(self):
        """Record every N steps; None: a fit of unknown length, recorded on
        a schedule that thins out as it goes (see _is_logged)."""
        if self.log_every_n_steps is not None:
            return self.log_every_n_steps
        total = self._planned_steps()
        if total is None:
            return None
        total //= self._accum  # optimizer steps
        return max(1, min(self.MAX_AUTO_EVERY, total // self.AUTO_RECORDS))

    # With the automatic cadence the first steps of a fit are all recorded:
    # what goes wrong at once (a learning rate that blows the weights up in
    # two steps) is over before the first multiple of the cadence.
    AUTO_FIRST_STEPS = 8

    def _dense_start(self):
        return self.AUTO_FIRST_STEPS if self.log_every_n_steps is None else 0

    def _is_logged(self, step):
        """Whether optimizer step `step` is recorded (Python side)."""
        if step - self._first_step < self._dense_start():
            return True
        if self._every is not None:
            return step % self._every == 0
        # Unknown length: every step for the first 2 x AUTO_RECORDS steps of
        # the fit, then ever sparser, up to MAX_AUTO_EVERY apart.
        done = step - self._first_step
        every = max(1, min(self.MAX_AUTO_EVERY, done // self.AUTO_RECORDS))
        return done % every == 0

    def _batch_logged(self, batch):
        """Whether train batch number `batch` (see _batches_done) runs a
        logged optimizer step: with gradient accumulation, the last batch
        of each update."""
        n = self._accum
        return (batch + 1) % n == 0 and self._is_logged(batch // n)

    def _should_log(self, step):
        """The in-graph condition of a logged step (`step`: the optimizer's)."""
        every = tf.equal(step % (self._every or self.UNKNOWN_LENGTH_EVERY), 0)
        if self._dense_start():
            every = tf.logical_or(every, step < self._first_step + self._dense_start())
        if self._accum > 1:
            batch = tf.cast(self._optimizer._iterations, tf.int64)
            every = tf.logical_and(every, tf.equal((batch + 1) % self._accum, 0))
        return every

    # -- setup / teardown --------------------------------------------------

    def on_train_begin(self, logs=None):
        self._active = False
        # The first online diagnosis is held to its share of the training
        # time too, at an assumed cost (a stop_on kind diagnoses from the
        # first epoch end): fits shorter than that cost / the share are
        # diagnosed once, at their end.
        self._diagnosed_at = None if self.stop_on else time.perf_counter()
        self._diagnosis_seconds = self.FIRST_DIAGNOSIS_SECONDS
        self._undiagnosed = False
        self._patches = None
        try:
            refusal = self._refusal()
            if refusal is not None:
                self._warn(("refused", refusal), refusal)
                return
            self._setup()
            self._active = True
        except Exception as e:  # noqa: BLE001 - never break training
            self._warn("setup", "disabled, could not set up (%s: %s)" % (type(e).__name__, e))
            if self._patches is not None:
                self._patches.restore()
            return
        if self.report_findings or self.stop_on:
            try:
                self._report_manifest_findings()
            except Exception as e:  # noqa: BLE001
                self._warn("findings", "could not diagnose (%s: %s)" % (type(e).__name__, e))

    def _refusal(self):
        """Why this fit is not recorded, or None: another HealthCallback
        records it already (the train function is the last one's: the
        first would record nothing), or this callback recorded another
        model into the same log_dir up to a step this model's fit starts
        before, and both models' records would mix at the same steps. (The
        same model resumed, or another one whose steps go on after the
        first's, e.g. restored from a checkpoint, is recorded.)"""
        if fit_guard.guarded_by(self.model) is not None:
            return ("not recording this fit into log_dir %r: another HealthCallback of this "
                    "fit records it (give a fit one HealthCallback)" % self.log_dir)
        if self._last_fit is None:
            return None
        ref, log_dir, end_step = self._last_fit
        optimizer = getattr(self.model, "optimizer", None)
        if ref() is self.model or log_dir != self.log_dir or optimizer is None:
            return None
        start = int(optimizer.iterations.numpy())
        if start >= end_step:
            return None
        return ("not recording this fit: this callback recorded another model into log_dir "
                "%r up to step %d, and this model starts at step %d, so both models' records "
                "would mix at the same steps; give each model its own log_dir (one "
                "HealthCallback per model)" % (self.log_dir, end_step - 1, start))

    def _setup(self):
        model = self.model
        if keras.backend.backend() != "tensorflow":
            raise RuntimeError("needs the TensorFlow backend of Keras")
        optimizer = model.optimizer
        if optimizer is None:
            raise RuntimeError("the model is not compiled")
        # What the callback changes on the model, undone whatever ends the
        # fit (see tb_plugin.fit_guard); then the callback's _end_fit.
        self._patches = fit_guard.FitPatches(model, on_restore=self._end_fit)
        self._patches.guard_model()
        self._patches.guard_callbacks(self)
        self._optimizer = getattr(optimizer, "inner_optimizer", None) or optimizer
        self._accum = max(1, int(getattr(self._optimizer, "gradient_accumulation_steps", 1) or 1))
        strategy = model.distribute_strategy
        self._replicas = strategy.num_replicas_in_sync if strategy is not None else 1

        _, _, from_logits = loss_info(getattr(model, "loss", None))
        # One prediction family per output that can be recorded (see
        # tb_plugin.outputs); the others are named in the manifest.
        self._heads, self._not_recorded = [], []
        if self.record_predictions:
            self._heads, self._not_recorded = outputs_lib.plan(
                model, self.predictions_name, self.task, self.from_logits)
        self._record_preds = bool(self._heads)
        self._coverage_written = len(self._not_recorded)

        os.makedirs(self.log_dir, exist_ok=True)
        self._event_files = {}
        self._on_disk = {}
        self._writes = collections.Counter()
        self._records_lost = set()
        self._loader = None
        self._train_writer = self._create_writer("train")
        # Created eagerly: a variable created while a step is traced makes
        # tf.function trace the step again. See _write_record.
        self._metadata_written = tf.Variable(
            False, trainable=False, name="health_metadata_written")
        self._graph_writes = tf.Variable(
            0, dtype=tf.int64, trainable=False, name="health_train_writes")
        self._metadata_key = None
        with summary_v2.writer_scope(self._train_writer), tf.summary.record_if(True):
            # from_logits= fills in what the loss does not say (a plain
            # function); it does not hide what the loss says.
            self._manifest = build_manifest(
                model, from_logits=self.from_logits if from_logits is None else None)
            if self.record_predictions:
                self._manifest.update(outputs_lib.coverage(self._heads, self._not_recorded))
            summary_v2.manifest(self._manifest, step=0)
        self._writes["train"] += 1
        self._train_writer.flush()
        if self._not_recorded:
            self._warn_not_covered()

        # Steps run by one call of the train function. With one, the callback
        # knows in Python which calls hold a logged step (see
        # _install_train_functions); with more, the logged step is picked
        # inside the graph.
        self._spe = max(1, int(getattr(model, "steps_per_execution", 1) or 1))
        self._every = self._cadence()
        self._first_step = int(self._optimizer.iterations.numpy())
        self._single_function = self._use_single_function()
        self._patches.disable_jit()

        # Build the optimizer now, as Keras would on the first apply() (same
        # name scope): otherwise its slot variables are created while the
        # train step is traced, and tf.function traces the whole step (and
        # the recording in it) a second time.
        self._prebuild_optimizer(model)
        self._pending_predictions = None
        self._recording = False
        self._traced = {"compute_loss": False, "apply": False, "checked": False}
        if self._accum > 1:
            self._warn_accumulation()

        # Patch the instances (not the classes).
        self._gradients_patched = bool(self.record_gradients)
        if self._record_preds:
            self._patches.override(model, "compute_loss",
                                   self._make_compute_loss(model.compute_loss))
        if self.record_gradients:
            self._patches.override(self._optimizer, "apply",
                                   self._make_apply(self._optimizer.apply))
        self._setup_train_mode(model)
        self._next_step = self._batches_done()
        self._lean_options = _lean_step_options()
        model.make_test_function(force=True)
        if self._record_preds:
            self._install_test_function(model)
        self._install_train_functions(model)

    def _install_test_function(self, model):
        """The test function runs lean (see _lean_step_options); once the
        fit is over, the model's own."""
        test_function, patches = model.test_function, self._patches

        def lean_test_function(iterator):
            if not patches.live():
                patches.restore()
                return model.make_test_function()(iterator)
            with _calls_with(self._lean_options):
                return test_function(iterator)

        model.test_function = lean_test_function

    def _warn_accumulation(self):
        self._warn(
            ("accumulation", self._accum),
            "gradient_accumulation_steps=%d: each optimizer step is recorded once, from the "
            "last batch of its %d (its predictions, and the mean gradients the optimizer "
            "applies); update_ratio is not recorded (the optimizer updates inside a tf.cond)"
            % (self._accum, self._accum))

    def _batches_done(self):
        """Train batches run so far: the optimizer's steps, or with gradient
        accumulation its count of batches (`iterations` counts updates)."""
        if self._accum > 1:
            return int(self._optimizer._iterations.numpy())
        return int(self._optimizer.iterations.numpy())

    @staticmethod
    def _prebuild_optimizer(model):
        optimizer = model.optimizer
        try:
            if optimizer is not None and not optimizer.built and model.trainable_variables:
                with keras.name_scope(optimizer.name, caller=optimizer):
                    optimizer.build(model.trainable_variables)
                optimizer.built = True
        except Exception:  # noqa: BLE001 - an optimisation only; Keras builds it later
            pass

    # Runs shorter than this (epochs x steps per epoch, as Keras tells
    # callbacks) record from a single train function gated by conds; longer
    # ones from a second train function called only on logged steps.
    SINGLE_FUNCTION_MAX_STEPS = 4000

    def _use_single_function(self):
        """Whether the recording lives in Keras's train function, behind
        tf.conds on the step, rather than in a train function of its own.

        Two functions cost one more trace of the train step (a fixed ~0.1-0.3
        s at the start of fit) but nothing on the steps that are not logged;
        the conds cost a few tens of microseconds per step on CPU (on an
        accelerator the host would also wait for the device on every step to
        read the cond's predicate). So: two functions when every step is
        logged (the plain one is then never traced), on GPU/TPU, or when the
        run is long or of unknown length; one for short runs on CPU, and when
        a call of the train function runs several steps (the logged step is
        then picked in the graph).
        """
        if self._spe > 1:
            return True
        if self._every == 1 or not (self._record_preds or self.record_gradients):
            return False
        try:
            if tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"):
                return False
        except Exception:  # noqa: BLE001
            return False
        total = self._planned_steps()
        return total is not None and total < self.SINGLE_FUNCTION_MAX_STEPS

    def _install_train_functions(self, model):
        """The train function(s) that record.

        Two functions (see _use_single_function): Keras's own, and one that
        also records. The callback counts optimizer steps in Python, so it
        knows which calls of ``model.train_function`` run a logged step:
        those call the recording function (the train step plus the
        statistics, with no condition in it), every other call the plain
        one, which is the train step exactly as Keras builds it. The wrappers
        of compute_loss / apply add the recording only while the recording
        function is traced (``self._recording``). One function: the
        recording is always traced in, each part behind a tf.cond on the
        optimizer step.

        Before the first call, Keras's own symbolic build (what it does under
        a distribution strategy) from the first batch's element_spec builds
        the compiled loss and metrics: variables created while a step is
        traced make tf.function trace it a second time.

        Whatever leaves a call (but the end of an epoch's data) restores the
        model (see tb_plugin.fit_guard); a failed write of the records stops
        the recording, not the training (see _write_failed). Once the fit is
        over the model's own train function runs.
        """
        model.make_train_function(force=True)
        plain = model.train_function
        recording = plain
        if self._single_function:
            self._recording = True
        elif self._record_preds or self.record_gradients:
            model.make_train_function(force=True)
            recording = model.train_function
        cb, patches = self, self._patches
        first = [True]
        # One function that holds the recording: every call runs lean.
        plain_options = self._lean_options if recording is plain and self._recording else None

        def run(iterator):
            if first[0]:
                first[0] = False
                if getattr(model, "_distribute_strategy", None) is None:
                    cb._symbolic_build(model, iterator)
            if recording is plain:
                with _calls_with(plain_options), cb._train_mode_scope():
                    logs = plain(iterator)
                cb._check_step_traced()
                return logs
            start = cb._next_step
            cb._next_step = start + cb._spe
            if not any(cb._batch_logged(s) for s in range(start, start + cb._spe)):
                return plain(iterator)
            cb._recording = True
            try:
                with _calls_with(cb._lean_options), cb._train_mode_scope():
                    logs = recording(iterator)
            finally:
                cb._recording = False
            cb._check_step_traced()
            return logs

        def step(iterator):
            try:
                return run(iterator)
            except tf.errors.OpError as e:
                if not cb._write_failed(e):
                    raise
                return model.get_metrics_result()

        def train_function(iterator):
            if not patches.live():
                patches.restore()
                return model.make_train_function()(iterator)
            return patches.call_guarded(step, iterator)

        model.train_function = train_function

    def _check_step_traced(self):
        """After the first call that traced the recording: says once what a
        custom ``train_step`` left out (it recorded what passes through
        ``compute_loss`` and the optimizer's ``apply``)."""
        traced = self._traced
        if traced["checked"]:
            return
        traced["checked"] = True
        model = type(self.model).__name__
        if self._gradients_patched and not traced["apply"]:
            self._warn("no_apply", (
                "gradients not recorded: %s.train_step does not apply them with "
                "self.optimizer.apply() or apply_gradients()%s" % (
                    model, ", and the train predictions, written with them, are not "
                    "recorded either" if traced["compute_loss"] else "")))
        if self._record_preds and not traced["compute_loss"]:
            self._warn("no_compute_loss", (
                "train predictions not recorded: %s.train_step does not call "
                "self.compute_loss(x, y, y_pred, sample_weight); call it to record them"
                % model))

    def _write_failed(self, error):
        """Whether `error`, raised by a train step, is a write of this
        callback's records failing (a full disk...): recording then stops
        with a warning and the fit goes on."""
        train = os.path.join(self.log_dir, "train", "")
        where = [line.strip() for line in str(error).splitlines() if train in line]
        if not where:
            return False
        self._records_lost.add("train")
        self._warn(("write_failed", self._event_files.get("train")), (
            "train records lost: writing them failed (%s: %s); %s; recording stopped, "
            "training goes on" % (type(error).__name__, summary_v2._short(where[0], 300),
                                  self._on_disk_until("train"))))
        self._patches.restore()
        return True

    def _step_now(self):
        try:
            return int(self._optimizer.iterations.numpy())
        except Exception:  # noqa: BLE001
            return None

    def on_epoch_begin(self, epoch, logs=None):
        if not self._active:
            return
        try:
            # Re-synchronise the Python step count (a last, partial call of
            # several steps; an optimizer that skipped a step).
            self._next_step = self._batches_done()
        except Exception:  # noqa: BLE001
            pass

    @staticmethod
    def _symbolic_build(model, iterator):
        try:
            spec = getattr(iterator, "element_spec", None)
            build = getattr(model, "_symbolic_build", None)
            if spec is None or build is None:
                return
            unbuilt = [
                getattr(model, attr, None) is not None
                and not getattr(model, attr).built
                for attr in ("_compile_loss", "_compile_metrics")
            ]
            if not any(unbuilt):
                return
            with model.distribute_strategy.scope():
                build(data_batch=spec)
        except Exception:  # noqa: BLE001 - an optimisation only
            pass

    def on_train_end(self, logs=None):
        if self._active:
            self._write_coverage()
            if self._undiagnosed and self.report_findings:
                self._flush()
                self._diagnose()
        if self._patches is not None:
            self._patches.restore()  # then _end_fit

    def _end_fit(self):
        """The callback's teardown, once the model is restored (see
        tb_plugin.fit_guard): at the end of fit, or whatever else ended it
        (an exception, Ctrl-C, a failed write). What was recorded is
        flushed and checked on disk; the writers are closed."""
        was_active, self._active, self._recording = self._active, False, False
        if was_active:
            self._flush()
            self._check_records()
            self._remember_fit()
        self._train_mode = None
        for w in (self._train_writer, self._val_writer):
            if w is not None:
                try:
                    w.close()
                except Exception:  # noqa: BLE001
                    pass
        self._train_writer = self._val_writer = None
        self._metadata_written = None
        self._graph_writes = None
        self._metadata_key = None
        for head in self._heads:
            head.acc = None
        self._loader = None  # the online diagnosis' event loader

    def _remember_fit(self):
        """What _refusal compares the next fit with."""
        step = self._step_now()
        if step is not None:
            self._last_fit = (weakref.ref(self.model), self.log_dir, step)

    def _create_writer(self, run):
        """A file writer for run `run`; remembers the event file it created
        (the online diagnosis reads just that file, see _findings_provider;
        _check_records counts its records)."""
        path = os.path.join(self.log_dir, run)
        pattern = os.path.join(glob.escape(path), "*tfevents*")
        before = set(glob.glob(pattern))
        writer = tf.summary.create_file_writer(path)
        new = sorted(set(glob.glob(pattern)) - before)
        # One new file: ours. Otherwise (another writer created one at the
        # same moment) fall back to reading the directory.
        self._event_files[run] = new[0] if len(new) == 1 else path
        if len(new) == 1:
            self._on_disk[run] = _EventFileCheck(new[0])
        return writer

    @contextlib.contextmanager
    def _train_records(self):
        """Where the train step's records are written: the train writer,
        always recording."""
        with summary_v2.writer_scope(self._train_writer), tf.summary.record_if(True):
            yield

    def _flush(self):
        for run, w in (("train", self._train_writer), ("validation", self._val_writer)):
            if w is None:
                continue
            try:
                w.flush()
            except Exception as e:  # noqa: BLE001 - never break training
                self._warn(("flush", run), "%s records may be lost: could not flush them "
                           "(%s: %s)" % (run, type(e).__name__, summary_v2._short(str(e), 300)))

    def _check_records(self):
        """Warns once per run when records given to its writer are not in
        its event file (a full disk, a file-size limit, a log_dir removed
        or replaced: TensorFlow's writer may drop them without an error)."""
        for run, check in self._on_disk.items():
            if run in self._records_lost:
                continue
            written = self._writes[run]
            if run == "train" and self._graph_writes is not None:
                written += int(self._graph_writes.numpy())
            problem = check.problem(written)
            if problem is None:
                continue
            self._records_lost.add(run)
            self._warn(("lost", check.path), "%s records lost: %s; %s (is the disk full, or the "
                       "log_dir gone?)" % (run, problem, self._on_disk_until(run)))

    def _on_disk_until(self, run):
        """Where the records of `run` on disk end, for a warning."""
        check = self._on_disk.get(run)
        last = None if check is None else check.last_step()
        where = "" if last is None else "the last one on disk is from step %d, " % last
        return "%sthe fit is at step %s" % (where, self._step_now())

    # -- the wrappers ------------------------------------------------------

    def _make_compute_loss(self, original):
        cb = self
        has_training = "training" in _signature_params(original)

        def compute_loss(x=None, y=None, y_pred=None, sample_weight=None, training=True):
            if has_training:
                loss = original(x, y, y_pred, sample_weight, training=training)
            else:
                loss = original(x, y, y_pred, sample_weight)
            if not cb._patches.live():
                return loss  # left behind by a fit that is over
            if training and cb._recording:
                cb._traced["compute_loss"] = True
            try:
                cb._record_predictions(y, y_pred, training)
            except Exception as e:  # noqa: BLE001 - never break training
                cb._warn(
                    ("predictions", bool(training)),
                    "predictions not recorded (%s: %s)" % (type(e).__name__, e),
                )
            return loss

        return compute_loss

    # -- train-mode layers (see tb_plugin.train_mode) ------------------------

    def _setup_train_mode(self, model):
        """Wraps the call of the layers that behave differently in training
        (restored with the other patches, or when an exception ends fit)."""
        self._train_mode = None
        if not (self.record_train_mode and self.record_gradients):
            return
        try:
            from tb_plugin import train_mode

            recording = train_mode.FitRecording(model)
            if not recording.recorder.layers:
                return
            self._patches.adopt(recording.install())
            self._train_mode = recording
        except Exception as e:  # noqa: BLE001 - never break training
            self._warn("train_mode", "train mode not recorded (%s: %s)" % (type(e).__name__, e))

    @contextlib.contextmanager
    def _train_mode_scope(self):
        """Around a call of a train function that records: the train-mode
        layers note what they run with while it is traced."""
        recording = self._train_mode
        if recording is None or not self._recording:
            yield
            return
        with recording.step_scope():
            yield

    def _write_train_mode(self, step, notes):
        """Writes the train-mode record of a logged step (`notes`: taken in
        the step's graph, outside its conds)."""
        if not notes or self._train_mode is None:
            return
        try:
            with self._train_records():
                written = self._train_mode.write(step, notes, _shared_function)
            self._count_train_write(written)
        except Exception as e:  # noqa: BLE001 - never break training
            self._warn("train_mode", "train mode not recorded (%s: %s)" % (type(e).__name__, e))

    def _gate(self, step):
        """None (record unconditionally: this call runs one step and it is
        logged) or the in-graph condition of a logged step."""
        if not self._single_function:
            return None
        return self._should_log(step)

    @staticmethod
    def _run_gated(should, fn):
        if should is None:
            return fn()
        return summary_v2.lazy_cond(should, fn, lambda: tf.constant(False))

    def _record_predictions(self, y, y_pred, training):
        if training and not self._recording:
            return  # the plain train function
        if not training:
            for head in self._heads:
                if head.acc is not None:
                    y_h, y_pred_h = outputs_lib.select(head, y, y_pred)
                    self._accumulate(head, y_h, y_pred_h)
            return
        step = self._step()
        parts = []  # (head, labels, outputs) of each output recorded
        for head in list(self._heads):
            try:
                y_h, y_pred_h = outputs_lib.select(head, y, y_pred)
                # Validate shapes now (trace time) so that errors surface here.
                summary_v2._check_outputs(y_pred_h, y_h, head.task)
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
            parts.append((head, y_h, y_pred_h))
        if not parts:
            return

        ctx = summary_v2._replica_context()
        if ctx is None:

            def predictions():
                out = []
                for head, y_h, y_pred_h in parts:
                    hist_range = None
                    if head.task == metadata.TASK_REGRESSION:
                        hist_range = stats.finite_range(y_pred_h)
                    out.append((head, self._prediction_sums(head, y_pred_h, y_h, hist_range),
                                hist_range))
                return out

        else:
            # Collectives cannot run inside the tf.cond: reduce every step.
            reduced = []
            for head, y_h, y_pred_h in parts:
                hist_range = None
                if head.task == metadata.TASK_REGRESSION:
                    hist_range = summary_v2._regression_range(y_pred_h, ctx)
                reduced.append((head, summary_v2.all_reduce_sums(
                    ctx, self._prediction_sums(head, y_pred_h, y_h, hist_range)), hist_range))

            def predictions():
                return reduced

        should = self._gate(step)
        if self._gradients_patched and not tf.executing_eagerly():
            # Written with the gradients (after the update; one cond per
            # step when there is one): see _make_apply.
            self._pending_predictions = (
                tf.compat.v1.get_default_graph(), predictions, should, step)
        else:
            self._run_gated(should, lambda: self._write_record(step, predictions()))

    def _prediction_sums(self, head, y_pred, y, hist_range, packed=None):
        """summary_v2.prediction_sums of a batch, through a tf.function in
        graphs: traced once per process and kind of output (batch dimension
        left open) and shared by the train step, the test step, their
        retraces (Keras retraces a step for a last, smaller batch) and later
        fits. `packed`: a prediction_sums_spec; the sums are then returned
        packed into one vector (stats.pack_sums) by a function of its own,
        which calls the shared one (so packing too is traced once)."""
        task, from_logits = head.task, bool(head.from_logits)
        if tf.executing_eagerly():
            sums = summary_v2.prediction_sums(y_pred, y, from_logits, task, hist_range)[0]
            return sums if packed is None else stats.pack_sums(sums, packed)
        args = [y_pred] + ([y] if y is not None else [])
        if hist_range is not None:
            args += [tf.cast(hist_range[0], tf.float32), tf.cast(hist_range[1], tf.float32)]
        has_labels, regression = y is not None, hist_range is not None

        def sums_impl(*tensors):
            labels = tensors[1] if has_labels else None
            rng = tuple(tensors[-2:]) if regression else None
            return summary_v2.prediction_sums(tensors[0], labels, from_logits, task, rng)[0]

        key = (task, from_logits) + tuple((a.dtype, a.shape.rank) for a in args)
        sums_fn = _shared_function(key, sums_impl, args)
        if packed is None:
            return sums_fn(*args)
        return _shared_function(key + (tuple(packed),),
                                lambda *tensors: stats.pack_sums(sums_fn(*tensors), packed),
                                args)(*args)

    def _write_pending_predictions(self):
        """Writes a stashed prediction record in a cond of its own (when the
        gradients' cond could not be built)."""
        pending, self._pending_predictions = self._pending_predictions, None
        if pending is None or not _inside(pending[0]):
            return
        _, predictions, should, step = pending
        try:
            self._run_gated(should, lambda: self._write_record(step, predictions()))
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

    def _write_record(self, step, predictions=None, gradients=None):
        """Writes a train step's record with one op: `predictions` ([(head,
        prediction sums, regression histogram range)] of the outputs
        recorded), `gradients` (gradient_entries and their
        gradient_stats_many). The statistics and the write are traced once
        per process (_train_record_impl), not into every fit."""
        layout = grad_args = None
        if gradients is not None:
            entries, grad_stats = gradients
            layout = tuple((p, tuple(g.shape.as_list())) for p, g, _, _ in entries)
            grad_args = (
                grad_stats,
                [summary_v2._variable_value(v) for _, _, v, _ in entries],
                [u for _, _, _, u in entries],
            )
        heads = pred_args = None
        if predictions:
            heads = tuple((h.name, h.spec[0], h.spec[1], bool(h.from_logits),
                           tuple(sorted(h.extra.items()))) for h, _, _ in predictions)
            pred_args = [(sums, hist_range) for _, sums, hist_range in predictions]
        key = ("train_record", heads, self.gradients_name if gradients is not None else None,
               layout)
        # The values' metadata only until the write has run once: one write
        # (one set of tags) per writer (see summary_v2._one_write).
        if self._metadata_key is None:
            self._metadata_key = key
        written = None
        if key == self._metadata_key and summary_v2._replica_context() is None:
            written = self._metadata_written
        impl = _train_record_impl(heads, self.gradients_name, layout)
        with self._train_records():
            writer = summary_v2._summary_writer_resource()
            write = impl if writer is None else _shared_function(key, impl)
            result = summary_v2._gated(
                lambda: write(step, writer, written, pred_args, grad_args))
        self._count_train_write(result)
        return result

    def _count_train_write(self, written):
        """Counts a train record once its write (`written`: the write's
        result) has run: in a step's graph, each time the step writes it
        (see _check_records). Not under a multi-replica strategy."""
        if self._graph_writes is None or summary_v2._replica_context() is not None:
            return
        with tf.control_dependencies([written]):
            self._graph_writes.assign_add(1)

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
        packed = self._prediction_sums(head, y_pred, y if head.spec[2] else None, hist_range,
                                       packed=head.acc_spec)
        ctx = summary_v2._replica_context()
        if ctx is not None:
            packed = ctx.all_reduce(tf.distribute.ReduceOp.SUM, packed)
        acc.assign_add(packed)

    def _make_apply(self, original):
        cb = self

        def apply(grads, trainable_variables=None):
            if (trainable_variables is None or not cb._recording
                    or not cb._patches.live()):
                return original(grads, trainable_variables)
            cb._traced["apply"] = True
            grads = list(grads)
            variables = list(trainable_variables)
            try:
                step = cb._step()
                should = cb._gate(step)
                entries, grad_stats = cb._gradient_stats(
                    cb._applied_gradients(grads, variables), variables, should)
            except Exception as e:  # noqa: BLE001
                cb._warn("gradients", "gradients not recorded (%s: %s)" % (type(e).__name__, e))
                result = original(grads, trainable_variables)
                cb._write_pending_predictions()
                return result
            # The statistics of the gradients run before the update: once the
            # optimizer's ops are their last readers, it can reuse their
            # buffers in place (a reader after it would cost fresh buffers).
            with tf.control_dependencies(list(grad_stats.values())):
                if cb.record_update_ratio and cb._replicas == 1 and cb._accum == 1:
                    with _captured_updates(cb._optimizer, variables) as updates:
                        result = original(grads, trainable_variables)
                    if all(u is None for u in updates):
                        cb._warn(
                            "updates",
                            "update_ratio not recorded: %s applies its updates without "
                            "Keras's Optimizer.assign/assign_add/assign_sub"
                            % type(cb._optimizer).__name__,
                        )
                else:
                    result = original(grads, trainable_variables)
                    updates = [None] * len(variables)
            pending = cb._take_pending_predictions()
            train_mode = cb._train_mode.take() if cb._train_mode is not None else None
            try:
                present = [i for i, g in enumerate(grads) if g is not None]
                entries = [(p, g, v, updates[i]) for (p, g, v, _), i in zip(entries, present)]

                def write():
                    # One write op for the step's prediction and gradient records
                    # (and one for its train-mode record, see _write_train_mode).
                    predictions = pending[1]() if pending is not None else None
                    written = cb._write_record(step, predictions, (entries, grad_stats))
                    cb._write_train_mode(step, train_mode)
                    return written

                with tf.name_scope("health_" + summary_v2._scope_name(cb.gradients_name)):
                    cb._run_gated(should, write)
            except Exception as e:  # noqa: BLE001
                cb._warn("gradients", "gradients not recorded (%s: %s)" % (type(e).__name__, e))
                cb._pending_predictions = pending
                cb._write_pending_predictions()
            return result

        return apply

    def _applied_gradients(self, grads, variables):
        """The gradients the optimizer applies: `grads`, or with gradient
        accumulation (on the last batch of an update, the one recorded) the
        mean of the accumulated gradients and this batch's, read before the
        optimizer resets its accumulators."""
        n = self._accum
        if n == 1:
            return grads
        optimizer = self._optimizer
        accumulated = optimizer._accumulated_gradients
        return [g if g is None else (g + accumulated[optimizer._get_variable_index(v)]) / n
                for g, v in zip(grads, variables)]

    def _gradient_stats(self, grads, variables, should):
        """(entries, statistics) of the gradients of a train step (see
        summary_v2.gradient_entries, stats.gradient_stats_many), summed
        across replicas first; gated by `should` (zeros when not logged)."""
        entries = summary_v2.gradient_entries(self.gradients_name, grads, variables)
        if not entries:
            raise ValueError("no variable has a gradient")
        ctx = summary_v2._replica_context()
        if ctx is not None:
            # Collectives cannot run inside a tf.cond: reduce first.
            reduced = ctx.all_reduce(
                tf.distribute.ReduceOp.SUM, [stats.to_float(g) for _, g, _, _ in entries])
            entries = [(p, r, v, u) for (p, _, v, u), r in zip(entries, reduced)]

        def compute():
            # Traced once per process (see _shared_function).
            return _shared_function(("gradient_stats",), stats.gradient_stats_many)(
                [g for _, g, _, _ in entries])

        with tf.name_scope("health_" + summary_v2._scope_name(self.gradients_name)):
            if should is None:
                return entries, compute()
            return entries, summary_v2.lazy_cond(
                should, compute, lambda: stats.zero_gradient_stats(len(entries)))

    # -- validation --------------------------------------------------------

    def on_test_begin(self, logs=None):
        if not self._active or not self._record_preds:
            return
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
        strategy = self.model.distribute_strategy
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

    def on_test_end(self, logs=None):
        if not self._active:
            return
        for head in self._heads:
            if head.acc is None:
                continue
            try:
                flat = head.acc.numpy()
                if flat[head.acc_count] == 0:
                    continue
                sums = stats.unpack_sums(flat, head.acc_spec)
                if self._val_writer is None:
                    self._val_writer = self._create_writer("validation")
                task, k = head.spec[0], head.spec[1]
                hist_range = None
                if task == metadata.TASK_REGRESSION:
                    hist_range = (float(head.range[0].numpy()), float(head.range[1].numpy()))
                step = int(self._optimizer.iterations.numpy())
                with summary_v2.writer_scope(self._val_writer), tf.summary.record_if(True):
                    summary_v2.write_prediction_sums_numpy(
                        head.name, sums, task, k, step,
                        bool(head.from_logits), hist_range, index_extra=head.extra,
                    )
                self._writes["validation"] += 1
            except Exception as e:  # noqa: BLE001
                self._warn("validation", "validation not recorded (%s: %s)" % (
                    type(e).__name__, summary_v2._short(str(e), 300)))

    # -- epochs and findings -----------------------------------------------

    def on_epoch_end(self, epoch, logs=None):
        if not self._active:
            return
        self._write_coverage()
        self._flush()
        self._check_records()
        if self.report_findings or self.stop_on:
            now = time.perf_counter()
            if (self._diagnosed_at is not None and now - self._diagnosed_at
                    < self._diagnosis_seconds / self.ONLINE_DIAGNOSIS_SHARE):
                self._undiagnosed = True
            else:
                self._diagnose()

    # Share of the training time the online diagnosis may take: an epoch end
    # comes too soon after the last diagnosis (or the start of fit) when less
    # than its duration / this share has passed (short epochs, or many
    # records to read).
    ONLINE_DIAGNOSIS_SHARE = 0.005
    # What the first diagnosis of a fit is assumed to cost (a few records of a
    # small model: 10-30 ms once TensorBoard's event loader is imported): no
    # online diagnosis in the first ~6 s of fit.
    FIRST_DIAGNOSIS_SECONDS = 0.03

    def _diagnose(self):
        start = time.perf_counter()
        try:
            self._report_findings()
        except Exception as e:  # noqa: BLE001
            self._warn("findings", "could not diagnose (%s: %s)" % (type(e).__name__, e))
        self._diagnosed_at = time.perf_counter()
        self._diagnosis_seconds = self._diagnosed_at - start
        self._undiagnosed = False

    def _findings_provider(self):
        """A data provider over this callback's own runs, kept for the whole
        fit and reloaded incrementally: each epoch end parses only the events
        written since the previous one (see _HealthEventStore)."""
        if self._loader is None:
            from tb_plugin import diagnosis

            self._loader = _HealthEventStore(histograms=diagnosis.HISTOGRAMS_READ)
        store = self._loader
        for run, path in sorted(self._event_files.items()):
            store.add_run(run, path)
        store.reload()
        return store.provider(), ""

    def _report_findings(self):
        """Prints new findings of tb_plugin.diagnosis; stops on `stop_on` kinds."""
        try:
            from tb_plugin import diagnosis
            from tb_plugin import reader
        except ImportError:
            return []
        from tensorboard import context

        provider, experiment_id = self._findings_provider()
        ctx = context.RequestContext()
        runs = reader.health_runs(provider, ctx, experiment_id)
        records = {run: diagnosis.read_for_diagnosis(provider, ctx, experiment_id, run)
                   for run in runs}
        new = []
        for run in runs:
            validation = records.get(diagnosis.validation_sibling(run, runs))
            new += self._report_new(run, diagnosis.diagnose(
                records[run], self.thresholds, validation=validation))
        return new

    def _report_new(self, run, findings):
        """Prints the findings of `run` not printed yet (once per kind and
        layer) and stops training on their `stop_on` kinds; returns them."""
        new = []
        for finding in findings:
            key = _finding_key(finding)
            if key in self._reported:
                continue
            self._reported.add(key)
            new.append(finding)
            where = " [%s]" % finding.layer if finding.layer else ""
            print(
                "tb_plugin: %s %s%s (%s, step %s): %s"
                % (finding.severity, finding.kind, where, run, finding.first_step,
                   finding.message),
                file=sys.stderr,
            )
            if finding.kind in self.stop_on:
                self.model.stop_training = True
        return new

    def _report_manifest_findings(self):
        """What the manifest alone shows (tb_plugin.diagnosis.diagnose_manifest:
        e.g. ReLU on the logits) is known before the first step: printed at
        train begin, as the online diagnosis prints (which then does not print
        it again); a `stop_on` kind among them stops fit after its first step."""
        from tb_plugin import diagnosis

        findings = diagnosis.diagnose_manifest(self._manifest, self.thresholds)
        new = self._report_new("train", findings)
        if any(f.kind in self.stop_on for f in findings):
            self.model.stop_training = True  # also when printed by an earlier fit
        return new


def _inside(graph):
    """Whether the default graph is `graph` or a graph nested in it (a
    tf.cond branch, a while body)."""
    current = tf.compat.v1.get_default_graph()
    while current is not None:
        if current is graph:
            return True
        current = getattr(current, "outer_graph", None)
    return False


def _finding_key(finding):
    """What a finding is printed once per. A manifest finding names the output
    layer by its kernel's variable path once gradients are recorded, by the
    layer's name before (train begin): one key for both."""
    from tb_plugin import diagnosis

    if finding.kind in diagnosis.MANIFEST_KINDS:
        return finding.kind, (finding.evidence or {}).get("output_layer", finding.layer)
    return finding.kind, finding.layer


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
                summary_v2._variable_value(variable)))
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


class _EventFileCheck:
    """Whether the records given to a writer reached its event file: counts
    the file's complete records, reading their length headers only, from
    where the previous count stopped."""

    _HEADER = struct.Struct("<Q")

    def __init__(self, path):
        self.path = path
        self._offset = 0
        self._last = None  # offset of the last complete record
        self._found = 0
        self._scan()
        self._base = self._found  # the file's own first record

    def problem(self, written):
        """What is wrong given `written` records since the file was created
        (and flushed), or None."""
        try:
            cut = self._scan()
        except OSError as e:
            return "%s cannot be read any more (%s)" % (self.path, e.strerror or e)
        found = self._found - self._base
        if cut:
            return ("%s ends with a cut record (%d of the %d records written are in it)"
                    % (self.path, found, written))
        if found < written:
            return "%d of the %d records written are not in %s" % (
                written - found, written, self.path)
        return None

    def _scan(self):
        """Counts the complete records appended; whether a cut one follows."""
        with open(self.path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            while self._offset + 12 <= size:
                f.seek(self._offset)
                (length,) = self._HEADER.unpack(f.read(8))
                end = self._offset + 12 + length + 4
                if end > size:
                    break
                self._last, self._offset, self._found = self._offset, end, self._found + 1
        return self._offset < size

    def last_step(self):
        """The step of the file's last complete record (None: none, or the
        file cannot be read)."""
        from tensorboard.compat.proto import event_pb2

        try:
            self._scan()
            if self._last is None:
                return None
            with open(self.path, "rb") as f:
                f.seek(self._last)
                (length,) = self._HEADER.unpack(f.read(8))
                f.seek(self._last + 12)
                return event_pb2.Event.FromString(f.read(length)).step
        except Exception:  # noqa: BLE001 - only for a message
            return None


class _HealthEventStore:
    """The health records of the callback's own event files, in memory.

    Each run's event file (or each event file of a run directory) is read
    incrementally: a reload parses only the records appended since the last
    one. Only ``health/...`` values are kept, decoded once into the data
    provider's datum objects, in per-tag reservoirs of the sizes (and seed)
    TensorBoard's Python loader uses, so the online diagnosis sees what
    ``tensorboard --logdir`` / ``tb-health check`` would. Of the histogram
    series, only those whose statistic is in `histograms` are kept (None:
    all). No TensorFlow.
    """

    def __init__(self, histograms=None):
        self._runs = {}  # run -> {"path", "loaders": {file: loader}, "tags": {tag: _StoredTag}}
        self._histograms = histograms

    def add_run(self, run, path):
        if run not in self._runs:
            self._runs[run] = {"path": path, "loaders": {}, "tags": {}}

    def reload(self):
        from tensorboard.backend.event_processing import event_file_loader

        for run in self._runs.values():
            path = run["path"]
            files = [path] if not os.path.isdir(path) else sorted(
                glob.glob(os.path.join(glob.escape(path), "*tfevents*")))
            for name in files:
                loader = run["loaders"].get(name)
                if loader is None:
                    loader = run["loaders"][name] = event_file_loader.LegacyEventFileLoader(name)
                for event in loader.Load():
                    if event.summary.value:
                        self._add_event(run["tags"], event)

    def _add_event(self, tags, event):
        from tensorboard.backend.event_processing import data_ingester
        from tensorboard.backend.event_processing import reservoir
        from tensorboard.compat.proto import summary_pb2
        from tensorboard.data import provider as provider_lib
        from tensorboard.plugins.histogram import metadata as histogram_metadata
        from tensorboard.util import tensor_util

        libs = (provider_lib, tensor_util, reservoir)
        prefix = metadata.TAG_PREFIX + "/"
        step, wall_time = event.step, event.wall_time
        for value in event.summary.value:
            tag = value.tag
            entry = tags.get(tag, _NEW_TAG)
            if entry is _NEW_TAG:
                if not (tag.startswith(prefix) or tag == metadata.TAG_PREFIX):
                    continue
                md = value.metadata
                plugin = md.plugin_data.plugin_name
                if (plugin == histogram_metadata.PLUGIN_NAME and self._histograms is not None
                        and tag.rsplit("/", 1)[-1] not in self._histograms):
                    tags[tag] = None  # a histogram series not kept
                    continue
                size = data_ingester.DEFAULT_TENSOR_SIZE_GUIDANCE.get(
                    plugin, data_ingester.DEFAULT_SIZE_GUIDANCE.get("tensors", 10))
                entry = tags[tag] = _StoredTag(
                    plugin=plugin,
                    scalar=md.data_class == summary_pb2.DATA_CLASS_SCALAR,
                    content=md.plugin_data.content,
                    description=md.summary_description,
                    size=size,
                )
            elif entry is None:
                continue
            entry.add(step, wall_time, value.tensor, libs)

    def provider(self):
        return _store_provider_class()(self._runs)


_FLOAT32 = struct.Struct("<f")
_NEW_TAG = object()  # _HealthEventStore: a tag not seen yet


class _StoredTag:
    """One tag's data: a plain list while it holds at most `size` items (a
    reservoir keeps all of those, in order, without drawing random numbers),
    then a TensorBoard Reservoir of that size, fed the same items first, so
    the samples kept are the loader's."""

    __slots__ = ("plugin", "scalar", "content", "description", "size", "items", "reservoir",
                 "max_step", "max_wall_time")

    def __init__(self, plugin, scalar, content, description, size):
        self.plugin, self.scalar, self.content = plugin, scalar, content
        self.description, self.size = description, size
        self.items, self.reservoir = [], None
        self.max_step, self.max_wall_time = None, None

    def add(self, step, wall_time, tensor, libs):
        provider_lib, tensor_util, reservoir = libs
        content = tensor.tensor_content
        if self.scalar:
            if tensor.dtype == 1 and len(content) == 4:
                value = _FLOAT32.unpack(content)[0]  # one float32, as the callback writes
            else:
                value = tensor_util.make_ndarray(tensor).item()
            datum = provider_lib.ScalarDatum(step=step, wall_time=wall_time, value=value)
        else:
            shape = [d.size for d in tensor.tensor_shape.dim]
            if tensor.dtype == 2 and content and len(content) == 8 * math.prod(shape):
                array = np.frombuffer(content, dtype="<f8").copy().reshape(shape)
                datum = provider_lib.TensorDatum(step=step, wall_time=wall_time, numpy=array)
            else:
                # Index / manifest JSON: written with every record but few are
                # kept; decoded when read.
                datum = (step, wall_time, tensor)
        if self.reservoir is None and len(self.items) < self.size:
            self.items.append(datum)
        else:
            if self.reservoir is None:
                self.reservoir = reservoir.Reservoir(self.size)
                for item in self.items:
                    self.reservoir.AddItem("_", item)
            self.reservoir.AddItem("_", datum)
        if self.max_step is None or step >= self.max_step:
            self.max_step = step
        if self.max_wall_time is None or wall_time > self.max_wall_time:
            self.max_wall_time = wall_time

    def data(self):
        return self.items if self.reservoir is None else self.reservoir.Items("_")


_STORE_PROVIDER = []


def _store_provider_class():
    """A tensorboard DataProvider over a _HealthEventStore (what reader.py reads)."""
    if _STORE_PROVIDER:
        return _STORE_PROVIDER[0]
    from tensorboard.data import provider as provider_lib
    from tensorboard.util import tensor_util

    class StoreProvider(provider_lib.DataProvider):
        def __init__(self, runs):
            self._runs = runs

        def _select(self, plugin_name, run_tag_filter, scalar):
            runs = getattr(run_tag_filter, "runs", None) if run_tag_filter else None
            tags = getattr(run_tag_filter, "tags", None) if run_tag_filter else None
            for run, info in self._runs.items():
                if runs is not None and run not in runs:
                    continue
                for tag, entry in info["tags"].items():
                    if entry is None or entry.plugin != plugin_name or entry.scalar != scalar:
                        continue
                    if tags is not None and tag not in tags:
                        continue
                    yield run, tag, entry

        def _list(self, cls, plugin_name, run_tag_filter, scalar):
            out = {}
            for run, tag, entry in self._select(plugin_name, run_tag_filter, scalar):
                out.setdefault(run, {})[tag] = cls(
                    max_step=entry.max_step, max_wall_time=entry.max_wall_time,
                    plugin_content=entry.content, description=entry.description,
                    display_name="",
                )
            return out

        def _read(self, plugin_name, downsample, run_tag_filter, scalar):
            out = {}
            for run, tag, entry in self._select(plugin_name, run_tag_filter, scalar):
                data = [
                    item if not isinstance(item, tuple) else provider_lib.TensorDatum(
                        step=item[0], wall_time=item[1],
                        numpy=tensor_util.make_ndarray(item[2]))
                    for item in entry.data()
                ]
                if downsample is not None and len(data) > downsample:
                    idx = np.linspace(0, len(data) - 1, max(int(downsample), 1)).round()
                    data = [data[int(i)] for i in idx]
                out.setdefault(run, {})[tag] = data
            return out

        def list_runs(self, ctx=None, *, experiment_id):
            return [provider_lib.Run(run_id=r, run_name=r, start_time=None) for r in self._runs]

        def list_scalars(self, ctx=None, *, experiment_id, plugin_name, run_tag_filter=None):
            return self._list(provider_lib.ScalarTimeSeries, plugin_name, run_tag_filter, True)

        def read_scalars(self, ctx=None, *, experiment_id, plugin_name, downsample=None,
                         run_tag_filter=None):
            return self._read(plugin_name, downsample, run_tag_filter, True)

        def read_last_scalars(self, ctx=None, *, experiment_id, plugin_name,
                              run_tag_filter=None):
            return {run: {tag: data[-1] for tag, data in tags.items() if data}
                    for run, tags in self._read(plugin_name, None, run_tag_filter, True).items()}

        def list_tensors(self, ctx=None, *, experiment_id, plugin_name, run_tag_filter=None):
            return self._list(provider_lib.TensorTimeSeries, plugin_name, run_tag_filter, False)

        def read_tensors(self, ctx=None, *, experiment_id, plugin_name, downsample=None,
                         run_tag_filter=None):
            return self._read(plugin_name, downsample, run_tag_filter, False)

    _STORE_PROVIDER.append(StoreProvider)
    return StoreProvider


def _signature_params(fn):
    import inspect

    try:
        return inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return {}
