"""HealthCallback: record the health of a Keras model while it trains.

The callback records from the tensors the train step already computes (the
model outputs and labels given to ``compute_loss``, the gradients given to the
optimizer, the updates the optimizer applies): there is no second forward or
backward pass and no copy of the weights.

:class:`HealthCallback` is the Keras callback: its arguments, and what it
does at each of fit's hooks. The work is done, per fit, by:

- :mod:`tb_plugin.train_step_hooks`: installs the recording into Keras's
  train step (the ``compute_loss`` / ``optimizer.apply`` / train and test
  function wrappers; one train function or two);
- :mod:`tb_plugin.step_recording` and :mod:`tb_plugin.validation_recording`:
  the statistics and writes of a logged train step, and of a validation run;
- :mod:`tb_plugin.record_cadence`: which steps are logged;
- :mod:`tb_plugin.record_writers`: the summary writers, and whether the
  records reached the disk;
- :mod:`tb_plugin.recorded_outputs`: the outputs recorded, and the run
  manifest that names them;
- :mod:`tb_plugin.online_diagnosis`: the findings printed at epoch ends;
- :mod:`tb_plugin.fit_guard`: undoes the wrappers whatever ends the fit.

Cost (see benchmarks/bench_recording_overhead.py): the statistics of a step
are computed with a few ops per variable off the gradients' float32 bits
(see tb_plugin.stats), before the optimizer update so that the update can
reuse the gradients' buffers, and the step's records are written by one op
as one event. The statistics and writes are tf.functions traced once per
process (tb_plugin.shared_functions), and the steps that hold them run
without the Grappler passes that would walk them in every fit (see
tb_plugin.tf_internals, where every private TensorFlow / Keras API used
lives). The end-of-epoch diagnosis reads only the records written since the
previous epoch.
"""

import os
import warnings
import weakref

# summary_args raises a clear ImportError when TensorFlow is missing.
from tb_plugin import summary_args

import keras
import numpy as np

from tb_plugin import fit_guard
from tb_plugin import record_cadence
from tb_plugin import record_writers
from tb_plugin.online_diagnosis import OnlineDiagnosis
from tb_plugin.recorded_outputs import RecordedOutputs
from tb_plugin.step_recording import StepRecorder
from tb_plugin.train_step_hooks import TrainStepHooks
from tb_plugin.validation_recording import ValidationRecorder


def _check_log_dir(log_dir):
    """ValueError unless `log_dir` is a non-empty path (str or os.PathLike)."""
    try:
        path = os.fspath(log_dir)
    except TypeError:
        path = None
    if not isinstance(path, str) or not path:
        raise ValueError("log_dir must be a non-empty path (str or os.PathLike), got %s"
                         % summary_args.got(log_dir))


def _check_names(predictions_name, gradients_name):
    """ValueError unless the record family names are valid, distinct and not
    the train-mode record's (tb_plugin.train_mode.FitRecording's default)."""
    summary_args.check_name(predictions_name, "predictions_name")
    summary_args.check_name(gradients_name, "gradients_name")
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

    # Runs shorter than this (epochs x steps per epoch, as Keras tells
    # callbacks) record from a single train function gated by conds; longer
    # ones from a second train function called only on logged steps (see
    # tb_plugin.train_step_hooks.TrainStepHooks.use_single_function).
    SINGLE_FUNCTION_MAX_STEPS = 4000
    # Share of the training time the online diagnosis may take: an epoch end
    # comes too soon after the last diagnosis (or the start of fit) when less
    # than its duration / this share has passed (short epochs, or many
    # records to read).
    ONLINE_DIAGNOSIS_SHARE = 0.005
    # What the first diagnosis of a fit is assumed to cost (a few records of a
    # small model: 10-30 ms once TensorBoard's event loader is imported): no
    # online diagnosis in the first ~6 s of fit.
    FIRST_DIAGNOSIS_SECONDS = 0.03

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
        if task is not None and task not in summary_args.TASKS:
            raise ValueError("task must be one of %s or None, got %r" % (summary_args.TASKS, task))
        _check_log_dir(log_dir)
        flags = dict(record_predictions=record_predictions, record_gradients=record_gradients,
                     record_update_ratio=record_update_ratio,
                     record_train_mode=record_train_mode, report_findings=report_findings)
        for arg, value in flags.items():
            summary_args.check_bool(value, arg)
        if from_logits is not None:
            summary_args.check_bool(from_logits, "from_logits")
        _check_names(predictions_name, gradients_name)
        self.log_dir = os.fspath(log_dir)
        self.log_every_n_steps = None if log_every_n_steps is None else int(log_every_n_steps)
        self.record_predictions = bool(record_predictions)
        self.record_gradients = bool(record_gradients)
        self.record_update_ratio = bool(record_update_ratio)
        self.record_train_mode = bool(record_train_mode)
        self.task = task
        self.from_logits = None if from_logits is None else bool(from_logits)
        self.stop_on = stop_on
        self.thresholds = thresholds
        self.report_findings = bool(report_findings)
        self.predictions_name = predictions_name
        self.gradients_name = gradients_name
        self._active = False
        self._warned = set()
        self._record_preds = False
        self._optimizer = None  # the optimizer that applies (inside a LossScaleOptimizer)
        self._patches = None  # tb_plugin.fit_guard.FitPatches of the current fit
        # The parts of the current (or last) fit, see _setup.
        self._outputs = None
        self._writers = None
        self._recorder = None
        self._validation = None
        self._train_step = None
        self._diagnosis = OnlineDiagnosis(self, self._warn)
        self._last_fit = None  # (weakref to the model, log_dir, its end step)

    def _warn(self, key, message):
        if key in self._warned:
            return
        self._warned.add(key)
        warnings.warn("tb_plugin.HealthCallback: " + message, stacklevel=2)

    def _step_now(self):
        return record_cadence.step_now(self._optimizer)

    # -- setup / teardown --------------------------------------------------

    def on_train_begin(self, logs=None):
        self._active = False
        self._diagnosis.fit_begins()
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
        if self._diagnosis.wanted:
            try:
                self._diagnosis.report_manifest(self._outputs.manifest)
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
        self._outputs = self._writers = self._recorder = self._validation = None
        self._train_step = None
        # What the callback changes on the model, undone whatever ends the
        # fit (see tb_plugin.fit_guard); then the callback's _end_fit.
        self._patches = fit_guard.FitPatches(model, on_restore=self._end_fit)
        self._patches.guard_model()
        self._patches.guard_callbacks(self)
        self._optimizer = getattr(optimizer, "inner_optimizer", None) or optimizer
        accum = max(1, int(getattr(self._optimizer, "gradient_accumulation_steps", 1) or 1))
        strategy = model.distribute_strategy
        replicas = strategy.num_replicas_in_sync if strategy is not None else 1

        self._outputs = RecordedOutputs(
            model, record_predictions=self.record_predictions,
            predictions_name=self.predictions_name, task=self.task,
            from_logits=self.from_logits, record_gradients=self.record_gradients,
            warn=self._warn)
        heads = self._outputs.heads
        self._record_preds = bool(heads)
        # Under a multi-worker strategy the other workers record what the
        # chief records (the same collectives) into a temporary directory,
        # print nothing, and diagnose only to stop with the chief (stop_on).
        chief, multi_worker = record_writers.cluster_role(
            getattr(strategy, "cluster_resolver", None))
        self._diagnosis.quiet = not chief
        self._diagnosis.lockstep = multi_worker
        self._writers = record_writers.RecordWriters(self.log_dir, self._warn, chief=chief)
        self._diagnosis.watch(self._writers.event_files)
        self._outputs.write_manifest(self._writers)
        cadence = record_cadence.RecordCadence(
            self.log_every_n_steps, record_cadence.planned_steps(getattr(self, "params", None)),
            self._optimizer, accum)
        self._recorder = StepRecorder(
            optimizer=self._optimizer, heads=heads, writers=self._writers,
            cadence=cadence, gradients_name=self.gradients_name,
            record_gradients=self.record_gradients,
            record_update_ratio=self.record_update_ratio, accum=accum, replicas=replicas,
            warn=self._warn, drop_head=self._outputs.drop)
        self._validation = ValidationRecorder(
            model, self._optimizer, heads, self._writers, self._warn)
        self._train_step = TrainStepHooks(
            self, model, self._optimizer, recorder=self._recorder, validation=self._validation,
            cadence=cadence, writers=self._writers, patches=self._patches, accum=accum,
            record_predictions=self._record_preds, record_gradients=self.record_gradients,
            warn=self._warn)
        self._train_step.install()

    def on_epoch_begin(self, epoch, logs=None):
        if not self._active:
            return
        try:
            self._train_step.resync()
        except Exception:  # noqa: BLE001
            pass

    def on_train_end(self, logs=None):
        if self._active:
            self._update_manifest()
            if self._diagnosis.undiagnosed and self.report_findings and not self._diagnosis.quiet:
                self._writers.flush()
                self._diagnosis.run()
        if self._patches is not None:
            self._patches.restore()  # then _end_fit

    def _end_fit(self):
        """The callback's teardown, once the model is restored (see
        tb_plugin.fit_guard): at the end of fit, or whatever else ended it
        (an exception, Ctrl-C, a failed write). What was recorded is
        flushed and checked on disk; the writers are closed."""
        was_active, self._active = self._active, False
        if self._recorder is not None:
            self._recorder.recording = False
        if was_active:
            self._writers.flush()
            self._writers.check(self._step_now)
            self._remember_fit()
        if self._recorder is not None:
            self._recorder.end()
        if self._writers is not None:
            self._writers.close()
        for head in self._outputs.heads if self._outputs is not None else ():
            head.acc = None
        self._diagnosis.fit_ended()  # drops its event loader

    def _remember_fit(self):
        """What _refusal compares the next fit with."""
        step = self._step_now()
        if step is not None:
            self._last_fit = (weakref.ref(self.model), self.log_dir, step)

    def _update_manifest(self):
        if self._outputs is not None and self._writers is not None:
            self._outputs.update_manifest(self._writers, self._optimizer)

    # -- validation --------------------------------------------------------

    def on_test_begin(self, logs=None):
        if not self._active or not self._record_preds:
            return
        self._validation.begin()

    def on_test_end(self, logs=None):
        if not self._active:
            return
        self._validation.end()

    # -- epochs ------------------------------------------------------------

    def on_epoch_end(self, epoch, logs=None):
        if not self._active:
            return
        self._update_manifest()
        self._writers.flush()
        self._writers.check(self._step_now)
        self._diagnosis.epoch_end()
