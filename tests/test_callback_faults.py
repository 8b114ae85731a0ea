"""HealthCallback under faults: whatever ends a fit, the model is left as it
was, training goes on where it can, and nothing is lost without a warning
that says what. Real Keras training, small models; what is on disk is read
back as TensorBoard reads it."""

import glob
import os
import shutil
import signal
import subprocess
import sys
import warnings

import numpy as np
import pytest

import tensorflow as tf
import keras  # noqa: E402

import tb_plugin
from recorded_events import summary_values  # noqa: E402
from tb_plugin import diagnosis  # noqa: E402
from tb_plugin.callback import HealthCallback  # noqa: E402

# The model methods the callback guards while it is installed (see
# tb_plugin.fit_guard), and the tag every train prediction record holds.
GUARDED = ("fit", "evaluate", "predict", "train_on_batch", "test_on_batch",
           "predict_on_batch", "save")
ENTROPY = "health/predictions/entropy"
HIDDEN_NORM = "health/gradients/m/hidden/kernel/norm"


def data(n=128, d=8, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int32)


def compiled(*middle, jit_compile=False, optimizer=None, seed=0, cls=keras.Sequential):
    """A small classifier named "m" (its kernels: m/hidden/kernel, m/out/kernel)."""
    keras.utils.set_random_seed(seed)
    model = cls([keras.Input((8,)), keras.layers.Dense(8, activation="tanh", name="hidden"),
                 *middle, keras.layers.Dense(2, name="out")], name="m")
    model.compile(optimizer or keras.optimizers.SGD(0.1),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=jit_compile)
    return model


def health(log_dir, **kwargs):
    kwargs.setdefault("log_every_n_steps", 1)
    kwargs.setdefault("report_findings", False)
    return HealthCallback(str(log_dir), **kwargs)


def steps(run_dir, tag=ENTROPY):
    """The steps of `tag`'s values in the order they were written (repeats
    kept), as TensorBoard's event loader reads the run's files."""
    return [step for step, t, _, _, _ in summary_values(str(run_dir)) if t == tag]


def on_disk(log_dir):
    return {path: os.path.getsize(path)
            for path in glob.glob(os.path.join(str(log_dir), "*", "events.out.tfevents.*"))}


def left_behind(model):
    """What the callback changed that is still on the model."""
    left = [name for name in ("compute_loss",) + GUARDED if name in vars(model)]
    optimizer = model.optimizer
    for opt in (optimizer, getattr(optimizer, "inner_optimizer", None)):
        if opt is not None and "apply" in vars(opt):
            left.append("optimizer.apply")
    left += ["%s.call" % layer.name for layer in model.layers if "call" in vars(layer)]
    for name in ("train_function", "test_function"):
        if getattr(getattr(model, name, None), "__module__", None) == "tb_plugin.callback":
            left.append(name)
    return left


def assert_left_as_it_was(model, log_dir, x, y, jit_compile=False):
    """The model carries nothing of the callback, and a fit, an evaluation
    and a prediction without it write nothing into its log_dir."""
    assert left_behind(model) == []
    assert model.jit_compile is jit_compile
    before = on_disk(log_dir)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    model.evaluate(x, y, verbose=0)
    model.predict(x[:4], verbose=0)
    assert on_disk(log_dir) == before
    assert left_behind(model) == []


def caught(fn):
    """Runs `fn`; the callback's warnings."""
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        fn()
    return [str(w.message) for w in records if "tb_plugin.HealthCallback" in str(w.message)]


class RaiseAt(keras.callbacks.Callback):
    """Raises `error` in `hook` at batch (or epoch) `at` (None: at once)."""

    def __init__(self, hook, at, error):
        super().__init__()
        self.at, self.error = at, error
        setattr(self, hook, self._maybe_raise)

    def _maybe_raise(self, index=None, logs=None):
        if self.at is None or index == self.at:
            raise self.error


class InterruptAt(keras.layers.Layer):
    """Passes its input through; sends the process a real SIGINT (Ctrl-C)
    from inside the train step of its `at`-th call."""

    def __init__(self, at, **kwargs):
        super().__init__(**kwargs)
        self.at, self.calls = at, 0

    def call(self, h):
        def ctrl_c(value):
            self.calls += 1
            if self.calls == self.at:
                os.kill(os.getpid(), signal.SIGINT)
            return value

        out = tf.py_function(ctrl_c, [h], h.dtype)
        out.set_shape(h.shape)
        return out


# -- whatever ends the fit, the model is left as it was ---------------------


def test_ctrl_c_inside_the_train_step_leaves_the_model_as_it_was(tmp_path):
    x, y = data()
    model = compiled(InterruptAt(4), keras.layers.Dropout(0.1, name="drop"))
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[health(tmp_path)])
    assert left_behind(model) == []
    # Ctrl-C in step 3 ends the fit once the step is done; its record is on
    # disk (flushed as the model is restored).
    assert steps(tmp_path / "train") == [0, 1, 2, 3]
    assert_left_as_it_was(model, tmp_path, x, y)


def test_an_exception_in_a_callback_hook_restores_jit_and_every_wrapper(tmp_path):
    x, y = data()
    model = compiled(keras.layers.Dropout(0.1, name="drop"), jit_compile=True)
    stop = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs=None: setattr(model, "stop_training", batch == 1))
    model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[health(tmp_path / "a"), stop])
    assert left_behind(model) == [] and model.jit_compile is True
    for hook, error in (("on_train_batch_end", KeyboardInterrupt()),
                        ("on_epoch_end", ValueError("a callback's bug"))):
        log_dir = tmp_path / hook
        with pytest.raises(type(error)):
            model.fit(x, y, batch_size=16, epochs=2, verbose=0,
                      callbacks=[health(log_dir), RaiseAt(hook, 0, error)])
        assert left_behind(model) == [] and model.jit_compile is True
        assert len(steps(log_dir / "train")) == (1 if hook == "on_train_batch_end" else 8)
        assert_left_as_it_was(model, log_dir, x, y, jit_compile=True)


def test_an_exception_from_the_data_generator_leaves_the_model_as_it_was(tmp_path):
    x, y = data()

    def batches():
        for i in range(8):
            if i == 5:
                raise RuntimeError("a bad batch")
            yield x[16 * i:16 * (i + 1)], y[16 * i:16 * (i + 1)]

    model = compiled()
    with pytest.raises(Exception, match="a bad batch"):
        model.fit(batches(), epochs=1, verbose=0, callbacks=[health(tmp_path)])
    assert left_behind(model) == []
    assert steps(tmp_path / "train") == [0, 1, 2, 3, 4]
    assert_left_as_it_was(model, tmp_path, x, y)


def test_a_fit_that_died_elsewhere_is_restored_by_the_next_call_and_never_records(tmp_path):
    """A callback after HealthCallback fails in on_train_begin, outside
    every guarded call: the wrappers stay until the model's next call, which
    restores them first; none of them records after the fit is over."""
    x, y = data()
    model = compiled()
    with pytest.raises(RuntimeError):
        model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[
            health(tmp_path), RaiseAt("on_train_begin", None, RuntimeError("setup bug"))])
    leftover = model.train_function
    assert "compute_loss" in vars(model)  # nothing ran since
    before = on_disk(tmp_path)
    model.evaluate(x, y, verbose=0)  # restores first
    assert left_behind(model) == [] and model.train_function is not leftover
    assert_left_as_it_was(model, tmp_path, x, y)
    assert on_disk(tmp_path) == before and steps(tmp_path / "train") == []


# -- nothing is lost without a warning that says what ----------------------

_FULL_DISK = """
import resource, signal, sys, warnings
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG)
import numpy as np, keras
from tb_plugin.callback import HealthCallback
rng = np.random.default_rng(0)
x = rng.normal(size=(512, 8)).astype("float32"); y = (x[:, 0] > 0).astype("int32")
resource.setrlimit(resource.RLIMIT_FSIZE, (40000, resource.RLIM_INFINITY))
for dropout, log_dir in ((False, sys.argv[1]), (True, sys.argv[2])):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(8, activation="tanh")]
        + [keras.layers.Dropout(0.1)] * dropout + [keras.layers.Dense(2)])
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(x, y, batch_size=16, epochs=3, verbose=0,
                            callbacks=[HealthCallback(log_dir, log_every_n_steps=1,
                                                      report_findings=False)])
    print("TRAINED", len(history.history["loss"]), int(model.optimizer.iterations.numpy()))
    for w in caught:
        if "HealthCallback" in str(w.message):
            print("WARNING", str(w.message).replace("\\n", " "))
"""


def test_a_full_disk_says_which_records_were_lost_and_training_goes_on(tmp_path):
    """The event files may not grow past 40 kB (a file-size limit: the same
    failed writes as a full disk, without root). TensorFlow's writer drops
    the large gradient records silently, and the small train-mode record's
    write fails the train step."""
    silent, raising = tmp_path / "silent", tmp_path / "raising"
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(tb_plugin.__file__)))
    done = subprocess.run([sys.executable, "-c", _FULL_DISK, str(silent), str(raising)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert [line for line in lines if line.startswith("TRAINED")] == ["TRAINED 3 96"] * 2
    warned = [line for line in lines if line.startswith("WARNING")]
    for log_dir in (silent, raising):
        (train,) = glob.glob(str(log_dir / "train" / "events.out.tfevents.*"))
        recorded = steps(log_dir / "train")
        assert 0 < len(recorded) < 96
        (lost,) = [w for w in warned if train in w]
        assert "train records lost" in lost
        assert "the last one on disk is from step %d" % recorded[-1] in lost
    assert "ends with a cut record" in [w for w in warned if str(silent) in w][0]
    assert "recording stopped, training goes on" in [w for w in warned if str(raising) in w][0]


def test_a_log_dir_replaced_by_a_file_mid_fit_says_the_records_are_lost(tmp_path):
    x, y = data()
    log_dir = tmp_path / "run"

    def replace(epoch, logs=None):
        if epoch == 1:
            shutil.rmtree(log_dir)
            log_dir.write_text("not a directory")

    model = compiled()
    replacer = keras.callbacks.LambdaCallback(on_epoch_begin=replace)
    messages = caught(lambda: model.fit(x, y, batch_size=16, epochs=3, verbose=0,
                                        validation_data=(x[:32], y[:32]),
                                        callbacks=[health(log_dir), replacer]))
    lost = [m for m in messages if "records lost" in m]
    assert [m.split(":")[1].strip() for m in lost] == ["train records lost",
                                                       "validation records lost"]
    assert all("cannot be read any more" in m and "Not a directory" in m for m in lost)
    assert left_behind(model) == []


@pytest.mark.parametrize("precision", ["mixed_float16", "loss_scale_optimizer"])
def test_mixed_precision_records_the_train_predictions(tmp_path, precision):
    x, y = data()
    policy = keras.mixed_precision.global_policy()
    try:
        optimizer = keras.optimizers.SGD(0.1)
        if precision == "mixed_float16":
            keras.mixed_precision.set_global_policy("mixed_float16")
        else:
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        model = compiled(optimizer=optimizer)
        messages = caught(lambda: model.fit(x, y, batch_size=16, epochs=1, verbose=0,
                                            callbacks=[health(tmp_path)]))
    finally:
        keras.mixed_precision.set_global_policy(policy)
    assert messages == []
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    train = tmp_path / "train"
    assert steps(train) == steps(train, HIDDEN_NORM) == list(range(8))
    (run,) = [r for r in diagnosis.check_logdir(str(tmp_path))["runs"] if r["run"] == "train"]
    assert run["status"] != "no_data"
    assert left_behind(model) == []


def test_gradient_accumulation_records_each_optimizer_step_once(tmp_path):
    """4 batches per update: one record per optimizer step (not 4 at one
    step), the gradients the optimizer applies (SGD: the weight change /
    learning rate), and a warning that update_ratio is left out."""
    x, y = data()
    lr = 0.5
    model = compiled(optimizer=keras.optimizers.SGD(lr, gradient_accumulation_steps=4))
    kernels = [model.get_layer("hidden").kernel.numpy()]
    keep = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs=None: (
        kernels.append(model.get_layer("hidden").kernel.numpy()) if batch % 4 == 3 else None))
    messages = caught(lambda: model.fit(x, y, batch_size=16, epochs=1, shuffle=False,
                                        verbose=0, callbacks=[health(tmp_path), keep]))
    assert len(messages) == 1 and "gradient_accumulation_steps=4" in messages[0]
    assert "update_ratio is not recorded" in messages[0]
    train = tmp_path / "train"
    norm = HIDDEN_NORM
    assert steps(train) == steps(train, norm) == [0, 1]
    for step, (before, after) in enumerate(zip(kernels, kernels[1:])):
        recorded = [e for e in _values(train, norm) if e[0] == step][0][1]
        np.testing.assert_allclose(recorded, np.linalg.norm(before - after) / lr, rtol=1e-4)


def _values(run_dir, tag):
    return [(step, float(value)) for step, t, value, _, _ in summary_values(str(run_dir))
            if t == tag]


class ManualStep(keras.Sequential):
    """A custom train_step that computes its loss without compute_loss."""

    def train_step(self, data):
        x, y = data
        with tf.GradientTape() as tape:
            logits = self(x, training=True)
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(
                y, logits, from_logits=True))
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        return {"loss": loss}


def test_a_custom_train_step_without_compute_loss_is_reported_once(tmp_path):
    x, y = data()
    model = compiled(cls=ManualStep)
    messages = caught(lambda: model.fit(x, y, batch_size=16, epochs=2, verbose=0,
                                        callbacks=[health(tmp_path)]))
    assert len(messages) == 1, messages
    assert "train predictions not recorded" in messages[0]
    assert "ManualStep.train_step does not call self.compute_loss" in messages[0]
    assert steps(tmp_path / "train", HIDDEN_NORM) == list(range(16))
    assert left_behind(model) == []


def test_a_callback_reused_on_another_model_does_not_mix_their_records(tmp_path):
    x, y = data()
    callback = health(tmp_path)
    first = compiled(seed=0)
    first.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[callback])
    other = compiled(seed=1)
    messages = caught(lambda: other.fit(x, y, batch_size=16, epochs=1, verbose=0,
                                        callbacks=[callback]))
    assert len(messages) == 1 and "not recording this fit" in messages[0]
    assert "up to step 7, and this model starts at step 0" in messages[0]
    assert left_behind(other) == [] and steps(tmp_path / "train") == list(range(8))
    # The first model resumed: recorded (steps go on).
    assert caught(lambda: first.fit(x, y, batch_size=16, epochs=1, verbose=0,
                                    callbacks=[callback])) == []
    assert steps(tmp_path / "train") == list(range(16))
    (run,) = [r for r in diagnosis.check_logdir(str(tmp_path))["runs"] if r["run"] == "train"]
    assert diagnosis.KIND_MIXED_FITS not in [f["kind"] for f in run["findings"]]


def test_two_health_callbacks_in_one_fit_the_second_says_it_does_not_record(tmp_path):
    x, y = data()
    model = compiled(keras.layers.Dropout(0.1, name="drop"), jit_compile=True)
    messages = caught(lambda: model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[
        health(tmp_path / "a"), health(tmp_path / "b")]))
    assert len(messages) == 1 and "not recording this fit into log_dir" in messages[0]
    assert str(tmp_path / "b") in messages[0]
    assert steps(tmp_path / "a" / "train") == list(range(8))
    assert not os.path.exists(tmp_path / "b")
    assert_left_as_it_was(model, tmp_path, x, y, jit_compile=True)
