"""How HealthCallback installs its recording into Keras's train step.

For one fit it wraps, on the instances (see :mod:`tb_plugin.fit_guard`,
which undoes it whatever ends the fit): the model's ``compute_loss`` (the
batch's outputs and labels), the optimizer's ``apply`` (the gradients and
updates), the ``call`` of the layers that behave differently in training
(see :mod:`tb_plugin.train_mode`), and the model's train and test functions.

Steps that are not logged run Keras's own train function (long runs, or
every step logged: the recording lives in a second train function called on
logged steps only) or cost two functional tf.conds that skip the recording
(short runs on CPU: one train function, so that the train step is traced only
once). Keras's second trace of the train step (it creates the optimizer
slots and metric variables while tracing) is avoided by building them first.
The steps that hold the recording run with lean Grappler options (see
:func:`tb_plugin.tf_internals.lean_step_options`).
"""

import contextlib
import inspect
import os

import keras
import tensorflow as tf

from tb_plugin import record_cadence
from tb_plugin import summary_args
from tb_plugin import tf_internals


class TrainStepHooks:
    """The recording of one fit of `model`, installed into its train step.

    `recorder`: the fit's tb_plugin.step_recording.StepRecorder (the train
    steps), `validation`: its tb_plugin.validation_recording
    .ValidationRecorder (the test steps), `cadence`, `writers`,
    `patches`: its tb_plugin.fit_guard.FitPatches; `callback` gives the
    settings (``record_train_mode``, ``SINGLE_FUNCTION_MAX_STEPS``, Keras's
    ``params``) and `warn(key, message)` says once per key what is not
    recorded.
    """

    def __init__(self, callback, model, optimizer, *, recorder, validation, cadence, writers,
                 patches, accum, record_predictions, record_gradients, warn):
        self._callback = callback
        self._model = model
        self._optimizer = optimizer
        self._recorder = recorder
        self._validation = validation
        self._cadence = cadence
        self._writers = writers
        self._patches = patches
        self._accum = accum
        self._record_preds = bool(record_predictions)
        self._record_gradients = bool(record_gradients)
        self._warn = warn
        # Steps run by one call of the train function. With one, the
        # callback knows in Python which calls hold a logged step (see
        # install_train_functions); with more, the logged step is picked
        # inside the graph.
        self._spe = max(1, int(getattr(model, "steps_per_execution", 1) or 1))
        self._next_step = 0  # the train batch the next call of the train function runs
        self._traced = {"compute_loss": False, "apply": False, "checked": False}
        self._lean_options = None
        self.single_function = False

    def use_single_function(self):
        """Whether the recording lives in Keras's train function, behind
        tf.conds on the step, rather than in a train function of its own.

        Two functions cost one more trace of the train step (a fixed ~0.1-0.3
        s at the start of fit on small models, seconds on large ones) but
        nothing on the steps that are not logged; the conds cost a few tens
        of microseconds to ~1.5% per step on CPU (on an accelerator the host
        would also wait for the device on every step to read the cond's
        predicate). So: two functions when every step is logged (the plain
        one is then never traced), on GPU/TPU, under a multi-replica
        strategy (the statistics' all-reduce then runs on logged steps
        only), or when the run is long or of unknown length; one for short
        runs on CPU, and when a call of the train function runs several
        steps (the logged step is then picked in the graph). "Short": fewer
        planned steps than the callback's SINGLE_FUNCTION_MAX_STEPS.
        """
        if self._spe > 1:
            return True
        if self._cadence.every == 1 or not (self._record_preds or self._record_gradients):
            return False
        strategy = getattr(self._model, "distribute_strategy", None)
        if strategy is not None and strategy.num_replicas_in_sync > 1:
            # Collectives cannot sit behind a cond: with one function every
            # step would all-reduce the statistics' inputs.
            return False
        try:
            if tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"):
                return False
        except Exception:  # noqa: BLE001
            return False
        total = record_cadence.planned_steps(getattr(self._callback, "params", None))
        return total is not None and total < self._callback.SINGLE_FUNCTION_MAX_STEPS

    def install(self):
        model, patches = self._model, self._patches
        self.single_function = self.use_single_function()
        self._recorder.single_function = self.single_function
        patches.disable_jit()
        # Build the optimizer now, as Keras would on the first apply() (same
        # name scope): otherwise its slot variables are created while the
        # train step is traced, and tf.function traces the whole step (and
        # the recording in it) a second time.
        _prebuild_optimizer(model)
        if self._accum > 1:
            self._warn_accumulation()
        # Patch the instances (not the classes).
        if self._record_preds:
            patches.override(model, "compute_loss", self._wrap_compute_loss(model.compute_loss))
        if self._record_gradients:
            patches.override(self._optimizer, "apply", self._wrap_apply(self._optimizer.apply))
        self._install_train_mode()
        self.resync()
        self._lean_options = tf_internals.lean_step_options()
        model.make_test_function(force=True)
        if self._record_preds:
            self._install_test_function()
        self.install_train_functions(model)

    def resync(self):
        """Re-synchronises the Python step count (a last, partial call of
        several steps; an optimizer that skipped a step)."""
        self._next_step = record_cadence.batches_done(self._optimizer, self._accum)

    def _warn_accumulation(self):
        self._warn(
            ("accumulation", self._accum),
            "gradient_accumulation_steps=%d: each optimizer step is recorded once, from the "
            "last batch of its %d (its predictions, and the mean gradients the optimizer "
            "applies); update_ratio is not recorded (the optimizer updates inside a tf.cond)"
            % (self._accum, self._accum))

    # -- the wrappers of compute_loss and apply --------------------------------

    def _wrap_compute_loss(self, original):
        hooks, recorder, validation = self, self._recorder, self._validation
        has_training = "training" in _signature_params(original)

        def compute_loss(x=None, y=None, y_pred=None, sample_weight=None, training=True):
            if has_training:
                loss = original(x, y, y_pred, sample_weight, training=training)
            else:
                loss = original(x, y, y_pred, sample_weight)
            if not hooks._patches.live():
                return loss  # left behind by a fit that is over
            if training and recorder.recording:
                hooks._traced["compute_loss"] = True
            try:
                if training:
                    recorder.record_predictions(y, y_pred, sample_weight)
                else:
                    validation.add_batch(y, y_pred)
            except Exception as e:  # noqa: BLE001 - never break training
                hooks._warn(
                    ("predictions", bool(training)),
                    "predictions not recorded (%s: %s)" % (type(e).__name__, e),
                )
            return loss

        return compute_loss

    def _wrap_apply(self, original):
        hooks, recorder = self, self._recorder

        def apply(grads, trainable_variables=None):
            if (trainable_variables is None or not recorder.recording
                    or not hooks._patches.live()):
                return original(grads, trainable_variables)
            hooks._traced["apply"] = True
            return recorder.record_gradients(original, grads, trainable_variables)

        return apply

    # -- train-mode layers (see tb_plugin.train_mode) ------------------------

    def _install_train_mode(self):
        """Wraps the call of the layers that behave differently in training
        (restored with the other patches, or when an exception ends fit)."""
        self._recorder.train_mode = None
        if not (self._callback.record_train_mode and self._record_gradients):
            return
        try:
            from tb_plugin import train_mode

            recording = train_mode.FitRecording(self._model)
            if not recording.recorder.layers:
                return
            self._patches.adopt(recording.install())
            self._recorder.train_mode = recording
        except Exception as e:  # noqa: BLE001 - never break training
            self._warn("train_mode", "train mode not recorded (%s: %s)" % (type(e).__name__, e))

    @contextlib.contextmanager
    def train_mode_scope(self):
        """Around a call of a train function that records: the train-mode
        layers note what they run with while it is traced."""
        recording = self._recorder.train_mode
        if recording is None or not self._recorder.recording:
            yield
            return
        with recording.step_scope():
            yield

    # -- the train and test functions ------------------------------------------

    def _install_test_function(self):
        """The test function runs lean (see tf_internals.lean_step_options);
        once the fit is over, the model's own."""
        model, patches = self._model, self._patches
        test_function, options = model.test_function, self._lean_options

        def lean_test_function(iterator):
            if not patches.live():
                patches.restore()
                return model.make_test_function()(iterator)
            with tf_internals.calls_with(options):
                return test_function(iterator)

        model.test_function = lean_test_function

    def install_train_functions(self, model):
        """The train function(s) that record.

        Two functions (see use_single_function): Keras's own, and one that
        also records. The callback counts optimizer steps in Python, so it
        knows which calls of ``model.train_function`` run a logged step:
        those call the recording function (the train step plus the
        statistics, with no condition in it), every other call the plain
        one, which is the train step exactly as Keras builds it. The wrappers
        of compute_loss / apply add the recording only while the recording
        function is traced (``StepRecorder.recording``). One function: the
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
        recorder, cadence = self._recorder, self._cadence
        model.make_train_function(force=True)
        plain = model.train_function
        recording = plain
        if self.single_function:
            recorder.recording = True
        elif self._record_preds or self._record_gradients:
            model.make_train_function(force=True)
            recording = model.train_function
        hooks, patches = self, self._patches
        first = [True]
        # One function that holds the recording: every call runs lean.
        plain_options = (self._lean_options if recording is plain and recorder.recording
                         else None)

        def run(iterator):
            if first[0]:
                first[0] = False
                if not tf_internals.strategy_set(model):
                    tf_internals.symbolic_build(model, iterator)
            if recording is plain:
                with tf_internals.calls_with(plain_options), hooks.train_mode_scope():
                    logs = plain(iterator)
                hooks._check_step_traced()
                return logs
            start = hooks._next_step
            hooks._next_step = start + hooks._spe
            if not any(cadence.batch_logged(s) for s in range(start, start + hooks._spe)):
                return plain(iterator)
            recorder.recording = True
            try:
                with tf_internals.calls_with(hooks._lean_options), hooks.train_mode_scope():
                    logs = recording(iterator)
            finally:
                recorder.recording = False
            hooks._check_step_traced()
            return logs

        def step(iterator):
            try:
                return run(iterator)
            except tf.errors.OpError as e:
                if not hooks._write_failed(e):
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
        model = type(self._model).__name__
        if self._recorder.gradients_recorded and not traced["apply"]:
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
        writers = self._writers
        train = os.path.join(writers.log_dir, "train", "")
        where = [line.strip() for line in str(error).splitlines() if train in line]
        if not where:
            return False
        writers.lost.add("train")
        on_disk = writers.on_disk_until("train", record_cadence.step_now(self._optimizer))
        self._warn(("write_failed", writers.event_files.get("train")), (
            "train records lost: writing them failed (%s: %s); %s; recording stopped, "
            "training goes on" % (type(error).__name__, summary_args.short(where[0], 300),
                                  on_disk)))
        self._patches.restore()
        return True


def _prebuild_optimizer(model):
    optimizer = model.optimizer
    try:
        if optimizer is not None and not optimizer.built and model.trainable_variables:
            with keras.name_scope(optimizer.name, caller=optimizer):
                optimizer.build(model.trainable_variables)
            optimizer.built = True
    except Exception:  # noqa: BLE001 - an optimisation only; Keras builds it later
        pass


def _signature_params(fn):
    try:
        return inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return {}
