"""HealthCallback: record the health of a Keras model while it trains.

The callback records from the tensors the train step already computes (the
model outputs and labels given to ``compute_loss``, the gradients given to the
optimizer): there is no second forward or backward pass. Steps that are not
logged cost one ``tf.cond`` on the optimizer step.
"""

import json
import logging
import math
import os
import sys
import warnings

try:
    import tensorflow as tf
except ImportError as e:  # pragma: no cover - exercised without TF only
    raise ImportError(
        "tb_plugin's recording API needs TensorFlow: pip install tensorflow "
        "(viewing with TensorBoard and the tb-health CLI does not)"
    ) from e

import keras

from tb_plugin import metadata
from tb_plugin import stats
from tb_plugin import summary_v2

logger = logging.getLogger("tb_plugin")

_MULTICLASS_LOSSES = {
    "sparsecategoricalcrossentropy",
    "categoricalcrossentropy",
    "categoricalfocalcrossentropy",
    "kldivergence",
    "kld",
    "kullbackleiblerdivergence",
}
_BINARY_LOSSES = {"binarycrossentropy", "binaryfocalcrossentropy", "hinge", "squaredhinge"}
_REGRESSION_LOSSES = {
    "meansquarederror",
    "mse",
    "meanabsoluteerror",
    "mae",
    "huber",
    "huberloss",
    "logcosh",
    "meanabsolutepercentageerror",
    "mape",
    "meansquaredlogarithmicerror",
    "msle",
    "poisson",
    "cosinesimilarity",
}


def _norm_name(name):
    return "".join(c for c in str(name).lower() if c.isalnum())


def loss_info(loss):
    """(info dict for the manifest, task or None, from_logits or None) of a loss."""
    if isinstance(loss, (list, tuple, dict)):
        return {"class": type(loss).__name__, "name": None, "from_logits": None}, None, None
    from_logits = False
    if isinstance(loss, str):
        cls, name = loss, loss
    elif isinstance(loss, keras.losses.Loss):
        cls, name = type(loss).__name__, getattr(loss, "name", None)
        try:
            from_logits = bool(loss.get_config().get("from_logits", False))
        except Exception:  # noqa: BLE001 - custom losses
            from_logits = None
    elif callable(loss):
        cls = name = getattr(loss, "__name__", type(loss).__name__)
    else:
        return {"class": None, "name": None, "from_logits": None}, None, None
    task = None
    for candidate in (cls, name):
        n = _norm_name(candidate)
        if n in _MULTICLASS_LOSSES:
            task = metadata.TASK_MULTICLASS
        elif n in _BINARY_LOSSES:
            task = metadata.TASK_BINARY
        elif n in _REGRESSION_LOSSES:
            task = metadata.TASK_REGRESSION
        if task:
            break
    if task == metadata.TASK_REGRESSION:
        from_logits = None
    return {"class": cls, "name": name, "from_logits": from_logits}, task, from_logits


def _jsonable(obj):
    return json.loads(json.dumps(obj, default=str))


def _activation_name(config):
    act = config.get("activation")
    if act is None:
        return None
    if isinstance(act, dict):
        return act.get("config", {}).get("name") or act.get("class_name")
    return str(act)


def _iter_layers(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model) and layer.layers:
            yield from _iter_layers(layer)
        else:
            yield layer


def build_manifest(model, loss=None):
    """The run manifest (see CONTRACT / metadata) of a compiled Keras model."""
    import tb_plugin

    layers = []
    for layer in _iter_layers(model):
        try:
            config = layer.get_config()
        except Exception:  # noqa: BLE001 - layers without get_config
            config = {}
        params = sum(int(math.prod(w.shape)) for w in layer.weights)
        trainable = sum(int(math.prod(w.shape)) for w in layer.trainable_weights)
        layers.append(
            {
                "name": layer.name,
                "class": type(layer).__name__,
                "activation": _activation_name(config),
                "kernel_initializer": _jsonable(config.get("kernel_initializer")),
                "bias_initializer": _jsonable(config.get("bias_initializer")),
                "params": params,
                "trainable_params": trainable,
            }
        )
    info, _, _ = loss_info(loss if loss is not None else getattr(model, "loss", None))
    opt = getattr(model, "optimizer", None)
    lr = None
    if opt is not None:
        try:
            lr = float(keras.ops.convert_to_numpy(opt.learning_rate))
        except Exception:  # noqa: BLE001 - schedules etc.
            lr = None
    inner = getattr(opt, "inner_optimizer", None)
    return {
        "model": model.name,
        "layers": layers,
        "output_layer": layers[-1]["name"] if layers else None,
        "loss": info,
        "optimizer": {
            "class": type(inner or opt).__name__ if opt is not None else None,
            "learning_rate": lr,
        },
        "versions": {
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "tb_plugin": tb_plugin.__version__,
        },
    }


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
    At the end of every epoch, new findings of :mod:`tb_plugin.diagnosis`
    are printed (once per kind and layer); training stops when a finding's
    kind is in `stop_on`.

    The callback never breaks training: if it cannot set itself up it warns
    once and disables itself. It turns off XLA (``jit_compile``) for the
    train step while it records, because summary ops cannot run inside XLA.

    Args:
      log_dir: the run directory (same as keras.callbacks.TensorBoard's).
      log_every_n_steps: record every N optimizer steps (default 50).
      record_predictions: record output/label statistics (train and
        validation).
      record_gradients: record gradient statistics.
      record_update_ratio: keep a copy of the weights on logged steps to
        record ||update|| / ||weight|| (costs one copy of the trainable
        weights in memory; not available under a multi-replica strategy).
      task: "multiclass", "binary" or "regression"; default from the loss.
      from_logits: whether the model outputs logits; default from the loss.
      stop_on: finding kinds that stop training (``model.stop_training``).
      report_findings: print new findings at the end of every epoch.
      predictions_name, gradients_name: record family names.
    """

    def __init__(
        self,
        log_dir,
        log_every_n_steps=50,
        record_predictions=True,
        record_gradients=True,
        record_update_ratio=True,
        task=None,
        from_logits=None,
        stop_on=(),
        report_findings=True,
        predictions_name="predictions",
        gradients_name="gradients",
    ):
        super().__init__()
        if int(log_every_n_steps) < 1:
            raise ValueError(
                "log_every_n_steps must be >= 1, got %r" % (log_every_n_steps,)
            )
        if task is not None and task not in summary_v2._TASKS:
            raise ValueError("task must be one of %s or None, got %r" % (summary_v2._TASKS, task))
        self.log_dir = os.fspath(log_dir)
        self.log_every_n_steps = int(log_every_n_steps)
        self.record_predictions = record_predictions
        self.record_gradients = record_gradients
        self.record_update_ratio = record_update_ratio
        self.task = task
        self.from_logits = from_logits
        self.stop_on = tuple(stop_on)
        self.report_findings = report_findings
        self.predictions_name = predictions_name
        self.gradients_name = gradients_name
        self._active = False
        self._reported = set()
        self._warned = set()
        self._acc = None
        self._pred_spec = None
        self._train_writer = None
        self._val_writer = None

    # -- helpers -----------------------------------------------------------

    def _warn(self, key, message):
        if key in self._warned:
            return
        self._warned.add(key)
        warnings.warn("tb_plugin.HealthCallback: " + message, stacklevel=2)

    def _step(self):
        return tf.cast(self._optimizer.iterations, tf.int64)

    def _should_log(self, step):
        return tf.equal(step % self.log_every_n_steps, 0)

    # -- setup / teardown --------------------------------------------------

    def on_train_begin(self, logs=None):
        self._active = False
        try:
            self._setup()
            self._active = True
        except Exception as e:  # noqa: BLE001 - never break training
            self._warn("setup", "disabled, could not set up (%s: %s)" % (type(e).__name__, e))
            try:
                self._restore(in_fit=True)
            except Exception:  # noqa: BLE001
                pass

    def _setup(self):
        model = self.model
        if keras.backend.backend() != "tensorflow":
            raise RuntimeError("needs the TensorFlow backend of Keras")
        optimizer = model.optimizer
        if optimizer is None:
            raise RuntimeError("the model is not compiled")
        self._optimizer = getattr(optimizer, "inner_optimizer", None) or optimizer
        self._patched = []
        self._saved_jit = None
        strategy = model.distribute_strategy
        self._replicas = strategy.num_replicas_in_sync if strategy is not None else 1

        _, task, from_logits = loss_info(getattr(model, "loss", None))
        self._task = self.task or task
        self._from_logits = self.from_logits if self.from_logits is not None else from_logits
        if self.record_predictions and self._task is None:
            self._warn(
                "task",
                "cannot infer the task from the loss %r; predictions are not recorded "
                "(pass task= and from_logits=)" % (getattr(model, "loss", None),),
            )
        self._record_preds = bool(self.record_predictions and self._task)

        os.makedirs(self.log_dir, exist_ok=True)
        self._train_writer = tf.summary.create_file_writer(os.path.join(self.log_dir, "train"))
        with self._train_writer.as_default(), tf.summary.record_if(True):
            summary_v2.manifest(build_manifest(model), step=0)
        self._train_writer.flush()

        # Weight snapshots for update_ratio (only on logged steps).
        self._shadows = {}
        if self.record_gradients and self.record_update_ratio and self._replicas == 1:
            for v in model.trainable_variables:
                value = summary_v2._variable_value(v)
                self._shadows[id(v)] = tf.Variable(
                    tf.zeros(value.shape, value.dtype), trainable=False,
                    name="health_shadow",
                )

        if getattr(model, "jit_compile", False):
            self._saved_jit = model.jit_compile
            model.jit_compile = False

        # Patch the instances (not the classes).
        if self._record_preds:
            self._patch(model, "compute_loss", self._make_compute_loss(model.compute_loss))
        if self.record_gradients:
            self._patch(self._optimizer, "apply", self._make_apply(self._optimizer.apply))
        model.make_train_function(force=True)
        model.make_test_function(force=True)

    def _patch(self, obj, attr, fn):
        had = attr in obj.__dict__
        old = obj.__dict__.get(attr)
        object.__setattr__(obj, attr, fn)
        self._patched.append((obj, attr, had, old))

    def _restore(self, in_fit=False):
        for obj, attr, had, old in reversed(getattr(self, "_patched", [])):
            try:
                if had:
                    object.__setattr__(obj, attr, old)
                else:
                    object.__delattr__(obj, attr)
            except Exception:  # noqa: BLE001
                pass
        self._patched = []
        model = self.model
        if model is not None:
            if getattr(self, "_saved_jit", None) is not None:
                model.jit_compile = self._saved_jit
                self._saved_jit = None
            # The traced functions captured the wrappers: rebuild them now
            # (setup failed inside fit) or on next use (after fit).
            if in_fit:
                model.make_train_function(force=True)
                model.make_test_function(force=True)
            else:
                model.train_function = None
                model.test_function = None

    def on_train_end(self, logs=None):
        if self._active:
            self._flush()
        self._restore()
        for w in (self._train_writer, self._val_writer):
            if w is not None:
                try:
                    w.close()
                except Exception:  # noqa: BLE001
                    pass
        self._train_writer = self._val_writer = None
        self._acc = None
        self._active = False

    def _flush(self):
        for w in (self._train_writer, self._val_writer):
            if w is not None:
                w.flush()

    # -- the wrappers ------------------------------------------------------

    def _make_compute_loss(self, original):
        cb = self
        has_training = "training" in _signature_params(original)

        def compute_loss(x=None, y=None, y_pred=None, sample_weight=None, training=True):
            if has_training:
                loss = original(x, y, y_pred, sample_weight, training=training)
            else:
                loss = original(x, y, y_pred, sample_weight)
            try:
                cb._record_predictions(y, y_pred, training)
            except Exception as e:  # noqa: BLE001 - never break training
                cb._warn(
                    ("predictions", bool(training)),
                    "predictions not recorded (%s: %s)" % (type(e).__name__, e),
                )
            return loss

        return compute_loss

    def _prediction_inputs(self, y, y_pred):
        if isinstance(y_pred, (list, tuple, dict)):
            if len(y_pred) != 1:
                raise ValueError("models with several outputs are not supported")
            y_pred = list(y_pred.values())[0] if isinstance(y_pred, dict) else y_pred[0]
        if isinstance(y, (list, tuple, dict)):
            y = None if len(y) != 1 else (list(y.values())[0] if isinstance(y, dict) else y[0])
        return y, y_pred

    def _record_predictions(self, y, y_pred, training):
        y, y_pred = self._prediction_inputs(y, y_pred)
        task, from_logits = self._task, bool(self._from_logits)
        if training:
            step = self._step()
            # Validate shapes now (trace time) so that errors surface here.
            summary_v2._check_outputs(y_pred, y, task)
            self._pred_spec = (
                task,
                int(y_pred.shape[-1]) if task == metadata.TASK_MULTICLASS else 1,
                y is not None,
                y_pred.shape,
                None if y is None else y.shape,
                y_pred.dtype,
                None if y is None else y.dtype,
            )

            ctx = summary_v2._replica_context()
            if ctx is None:

                def write():
                    with self._train_writer.as_default(), tf.summary.record_if(True):
                        return summary_v2.prediction_distribution(
                            self.predictions_name, y_pred, step=step, labels=y,
                            from_logits=from_logits, task=task,
                        )

            else:
                # Collectives cannot run inside the tf.cond: reduce every step.
                hist_range = None
                if task == metadata.TASK_REGRESSION:
                    hist_range = summary_v2._regression_range(y_pred, ctx)
                sums, _, k = summary_v2.prediction_sums(y_pred, y, from_logits, task, hist_range)
                sums = summary_v2.all_reduce_sums(ctx, sums)

                def write():
                    with self._train_writer.as_default(), tf.summary.record_if(True):
                        return summary_v2.write_prediction_sums(
                            self.predictions_name, sums, task, k, step, from_logits,
                            hist_range,
                        )

            tf.cond(self._should_log(step), write, lambda: tf.constant(False))
        elif self._acc is not None:
            self._accumulate(y, y_pred)

    def _accumulate(self, y, y_pred):
        acc = self._acc
        hist_range = None
        if self._task == metadata.TASK_REGRESSION:
            blo, bhi = stats.finite_range(y_pred)
            first = tf.equal(acc[stats.S_COUNT], 0.0)
            lo = tf.where(first, blo, self._range[0])
            hi = tf.where(first, bhi, self._range[1])
            self._range[0].assign(lo)
            self._range[1].assign(hi)
            hist_range = (lo, hi)
        sums, _, _ = summary_v2.prediction_sums(
            y_pred, y if self._pred_spec[2] else None, bool(self._from_logits),
            self._task, hist_range,
        )
        ctx = summary_v2._replica_context()
        if ctx is not None:
            sums = summary_v2.all_reduce_sums(ctx, sums)
        for key, value in sums.items():
            if key in acc:
                acc[key].assign_add(value)

    def _make_apply(self, original):
        cb = self

        def apply(grads, trainable_variables=None):
            if trainable_variables is None:
                return original(grads, trainable_variables)
            try:
                grads = list(grads)
                variables = list(trainable_variables)
                step = cb._step()
                should = cb._should_log(step)
                shadows = [cb._shadows.get(id(v)) for v in variables]
                if any(s is not None for s in shadows):

                    def snapshot():
                        for v, s in zip(variables, shadows):
                            if s is not None:
                                s.assign(summary_v2._variable_value(v))
                        return tf.constant(True)

                    tf.cond(should, snapshot, lambda: tf.constant(False))
            except Exception as e:  # noqa: BLE001
                cb._warn("gradients", "gradients not recorded (%s: %s)" % (type(e).__name__, e))
                return original(grads, trainable_variables)
            result = original(grads, trainable_variables)
            try:
                ctx = summary_v2._replica_context()
                if ctx is not None:
                    # Collectives cannot run inside the tf.cond: reduce every step.
                    present = [i for i, g in enumerate(grads) if g is not None]
                    reduced = ctx.all_reduce(
                        tf.distribute.ReduceOp.SUM,
                        [stats.to_float(grads[i]) for i in present],
                    )
                    grads = list(grads)
                    for i, r in zip(present, reduced):
                        grads[i] = r

                def write():
                    updates = None
                    if any(s is not None for s in shadows):
                        updates = [
                            None if s is None else summary_v2._variable_value(v) - s
                            for v, s in zip(variables, shadows)
                        ]
                        if any(u is None for u in updates):
                            updates = None
                    with cb._train_writer.as_default(), tf.summary.record_if(True):
                        return summary_v2._gradient_magnitudes(
                            cb.gradients_name, grads, variables, step=step,
                            updates=updates, all_reduce=False,
                        )

                tf.cond(should, write, lambda: tf.constant(False))
            except Exception as e:  # noqa: BLE001
                cb._warn("gradients", "gradients not recorded (%s: %s)" % (type(e).__name__, e))
            return result

        return apply

    # -- validation --------------------------------------------------------

    def on_test_begin(self, logs=None):
        if not self._active or not self._record_preds:
            return
        try:
            if self._acc is None:
                if self._pred_spec is None:
                    return
                self._create_accumulators()
            for v in self._acc.values():
                v.assign(tf.zeros_like(v))
        except Exception as e:  # noqa: BLE001
            self._warn("validation", "validation not recorded (%s: %s)" % (type(e).__name__, e))
            self._acc = None

    def _create_accumulators(self):
        task, k, has_labels, out_shape, lab_shape, out_dtype, lab_dtype = self._pred_spec
        # Shapes and keys of the sums, from a dummy batch of one row.
        out = tf.zeros([1] + list(out_shape[1:]), out_dtype)
        lab = None
        if has_labels:
            lab = tf.zeros([1] + list(lab_shape[1:]), lab_dtype)
        rng = (tf.constant(0.0), tf.constant(1.0)) if task == metadata.TASK_REGRESSION else None
        sums, _, _ = summary_v2.prediction_sums(out, lab, bool(self._from_logits), task, rng)
        strategy = self.model.distribute_strategy
        with strategy.scope():
            self._acc = {
                key: tf.Variable(
                    tf.zeros_like(value), trainable=False, name="health_val_" + key,
                    aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
                )
                for key, value in sums.items()
            }
            self._range = [
                tf.Variable(0.0, trainable=False, name="health_val_lo",
                            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA),
                tf.Variable(1.0, trainable=False, name="health_val_hi",
                            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA),
            ]

    def on_test_end(self, logs=None):
        if not self._active or self._acc is None:
            return
        try:
            sums = {k: tf.convert_to_tensor(v) for k, v in self._acc.items()}
            if float(sums[stats.S_COUNT]) == 0:
                return
            if self._val_writer is None:
                self._val_writer = tf.summary.create_file_writer(
                    os.path.join(self.log_dir, "validation")
                )
            task, k = self._pred_spec[0], self._pred_spec[1]
            hist_range = None
            if task == metadata.TASK_REGRESSION:
                hist_range = (tf.convert_to_tensor(self._range[0]),
                              tf.convert_to_tensor(self._range[1]))
            step = int(self._optimizer.iterations.numpy())
            with self._val_writer.as_default(), tf.summary.record_if(True):
                summary_v2.write_prediction_sums(
                    self.predictions_name, sums, task, k, step,
                    bool(self._from_logits), hist_range,
                )
            self._val_writer.flush()
        except Exception as e:  # noqa: BLE001
            self._warn("validation", "validation not recorded (%s: %s)" % (type(e).__name__, e))

    # -- epochs and findings -----------------------------------------------

    def on_epoch_end(self, epoch, logs=None):
        if not self._active:
            return
        try:
            self._flush()
        except Exception as e:  # noqa: BLE001
            self._warn("flush", "could not flush (%s: %s)" % (type(e).__name__, e))
        if self.report_findings or self.stop_on:
            try:
                self._report_findings()
            except Exception as e:  # noqa: BLE001
                self._warn("findings", "could not diagnose (%s: %s)" % (type(e).__name__, e))

    def _report_findings(self):
        """Prints new findings of tb_plugin.diagnosis; stops on `stop_on` kinds."""
        try:
            from tb_plugin import diagnosis
            from tb_plugin import reader
        except ImportError:
            return []
        from tensorboard import context

        provider, experiment_id = reader.open_logdir(self.log_dir)
        ctx = context.RequestContext()
        new = []
        for run in reader.health_runs(provider, ctx, experiment_id):
            records = reader.read_run(provider, ctx, experiment_id, run)
            for finding in diagnosis.diagnose(records):
                key = (finding.kind, finding.layer)
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


def _signature_params(fn):
    import inspect

    try:
        return inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return {}
