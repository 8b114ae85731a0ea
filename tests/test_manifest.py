"""The run manifest of custom loops (tb_plugin.summary.model_manifest) and the
manifest lint at train begin (HealthCallback); real TensorFlow training."""

import functools
import json

import numpy as np
import pytest

import tensorflow as tf
import keras  # noqa: E402

from tb_plugin import diagnosis  # noqa: E402
from tb_plugin import manifest as manifest_lib  # noqa: E402
from tb_plugin import summary as health  # noqa: E402
from tb_plugin.callback import HealthCallback  # noqa: E402

from test_callback import read_events  # noqa: E402

MISMATCH = diagnosis.KIND_OUTPUT_ACTIVATION


def data(n=128, d=8, k=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = rng.integers(0, k, size=n).astype(np.int32)
    return x, y


def small_model(d=8, k=4, out_activation=None, seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [keras.Input((d,)), keras.layers.Dense(16, activation="tanh", name="hidden"),
         keras.layers.Dense(k, activation=out_activation, name="out")], name="m")


def custom_loop(logdir, model, loss_fn, steps=6):
    """The README's GradientTape loop, with the manifest written before it."""
    x, y = data()
    optimizer = keras.optimizers.Adam(1e-2)
    writer = tf.summary.create_file_writer(str(logdir / "train"))
    with writer.as_default():
        health.model_manifest(model, loss_fn, optimizer)

    @tf.function
    def train_step(x, y, step):
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            loss = tf.reduce_mean(loss_fn(y, logits))
        variables = model.trainable_variables
        grads = tape.gradient(loss, variables)
        with writer.as_default(step=step), tf.summary.record_if(step % 2 == 0):
            health.prediction_distribution("predictions", logits, labels=y, from_logits=True)
            health.gradient_magnitudes("gradients", grads, variables)
        optimizer.apply_gradients(zip(grads, variables))
        return loss

    for step in range(steps):
        i = (step * 32) % len(x)
        train_step(x[i:i + 32], y[i:i + 32], tf.constant(step, tf.int64))
    writer.flush()


def kinds_of(logdir):
    result = diagnosis.check_logdir(str(logdir))
    return {f["kind"] for r in result["runs"] for f in r["findings"]}, result


@pytest.mark.parametrize("out_activation", ["relu", None])
def test_custom_loop_manifest_gets_the_output_lint(tmp_path, out_activation):
    """tf.nn.sparse_softmax_cross_entropy_with_logits + ReLU on the logits:
    output_activation_mismatch; the same loop without the ReLU: none."""
    model = small_model(out_activation=out_activation)
    custom_loop(tmp_path, model, tf.nn.sparse_softmax_cross_entropy_with_logits)
    m = json.loads(read_events(str(tmp_path / "train"))["health/manifest"][0].item())
    assert m["loss"] == {"class": "sparse_softmax_cross_entropy_with_logits",
                         "name": "sparse_softmax_cross_entropy_with_logits",
                         "from_logits": True}
    assert m["output_layer"] == "out" and m["optimizer"]["class"] == "Adam"
    kinds, result = kinds_of(tmp_path)
    assert [r["run"] for r in result["runs"]] == ["train"]
    if out_activation == "relu":
        assert MISMATCH in kinds, result
    else:
        assert MISMATCH not in kinds, result


@pytest.mark.parametrize("loss,task,from_logits", [
    (tf.nn.sparse_softmax_cross_entropy_with_logits, "multiclass", True),
    (tf.nn.softmax_cross_entropy_with_logits, "multiclass", True),
    (tf.nn.sigmoid_cross_entropy_with_logits, "binary", True),
    (tf.compat.v1.nn.sparse_softmax_cross_entropy_with_logits, "multiclass", True),
    (keras.losses.sparse_categorical_crossentropy, "multiclass", False),
    (functools.partial(keras.losses.sparse_categorical_crossentropy, from_logits=True),
     "multiclass", True),
    (keras.losses.SparseCategoricalCrossentropy(from_logits=True), "multiclass", True),
    ("binary_crossentropy", "binary", False),
    ("mse", "regression", None),
])
def test_loss_recognition(loss, task, from_logits):
    info, t, fl = manifest_lib.loss_info(loss)
    assert (t, fl, info["from_logits"]) == (task, from_logits, from_logits)


def test_plain_functions_recognised_by_name():
    def my_sparse_categorical_crossentropy(y, p):
        return p

    def masked_mse(y, p):
        return p

    def xent(y, p):
        return p

    def bce_with_logits(y, p, from_logits=True):
        return p

    info, task, fl = manifest_lib.loss_info(my_sparse_categorical_crossentropy)
    assert info["name"] == "my_sparse_categorical_crossentropy"
    assert (task, fl) == ("multiclass", None)  # from_logits unknown: no guess
    assert manifest_lib.loss_info(my_sparse_categorical_crossentropy, from_logits=True)[2]
    assert manifest_lib.loss_info(masked_mse)[1] == "regression"
    assert manifest_lib.loss_info(xent)[1:] == (None, None)  # unknown: no task
    assert manifest_lib.loss_info(bce_with_logits)[2] is True  # its signature says it


@pytest.mark.parametrize("loss,activation,expected", [
    (tf.nn.softmax_cross_entropy_with_logits, "softmax", True),  # softmax twice
    (tf.nn.softmax_cross_entropy_with_logits, None, False),
    (tf.nn.sigmoid_cross_entropy_with_logits, "sigmoid", True),
    (tf.nn.sigmoid_cross_entropy_with_logits, None, False),
    ("plain", "relu", True),  # a plain function + from_logits=True
    ("plain", None, False),
])
def test_diagnose_manifest_knows_the_tf_ops(loss, activation, expected):
    if loss == "plain":
        def my_categorical_crossentropy(y, p):
            return p
        m = manifest_lib.build_manifest(small_model(out_activation=activation),
                                        my_categorical_crossentropy, from_logits=True)
        assert m["loss"]["from_logits"] is True
    else:
        m = manifest_lib.build_manifest(small_model(out_activation=activation), loss)
    findings = diagnosis.diagnose_manifest(m)
    assert [f.kind for f in findings] == ([MISMATCH] if expected else [])
    if expected:
        assert findings[0].first_step == 0 and findings[0].layer == "out"


@pytest.mark.parametrize("kwargs,name", [
    (dict(model="m"), "model"),
    (dict(loss=3), "loss"),
    (dict(loss=None), "loss"),
    (dict(optimizer="adam"), "optimizer"),
    (dict(from_logits="yes"), "from_logits"),
    (dict(step=-1), "step"),
])
def test_model_manifest_bad_argument(tmp_path, kwargs, name):
    args = dict(model=small_model(), loss=tf.nn.sparse_softmax_cross_entropy_with_logits)
    args.update(kwargs)
    writer = tf.summary.create_file_writer(str(tmp_path))
    with writer.as_default(), pytest.raises(ValueError, match=r"^%s\b" % name):
        health.model_manifest(**args)


class _StderrAtFirstBatch(keras.callbacks.Callback):
    """Takes what was printed to stderr before the first batch."""

    def __init__(self, capsys):
        super().__init__()
        self.capsys = capsys
        self.before_first_batch = None

    def on_train_batch_begin(self, batch, logs=None):
        if self.before_first_batch is None:
            self.before_first_batch = self.capsys.readouterr().err


def _lines(err, kind=MISMATCH):
    return [l for l in err.splitlines() if l.startswith("tb_plugin:") and kind in l]


def test_callback_prints_the_manifest_lint_at_train_begin_once(tmp_path, capsys):
    x, y = data()
    model = small_model(out_activation="relu")
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    cb = HealthCallback(str(tmp_path), log_every_n_steps=1)
    cb.ONLINE_DIAGNOSIS_SHARE = 1.0  # the online diagnosis at every epoch end
    cb.FIRST_DIAGNOSIS_SECONDS = 0.0
    probe = _StderrAtFirstBatch(capsys)
    model.fit(x, y, batch_size=32, epochs=3, verbose=0, callbacks=[cb, probe])
    rest = capsys.readouterr().err
    first = _lines(probe.before_first_batch)
    assert len(first) == 1, probe.before_first_batch[-2000:]
    assert "(train, step 0)" in first[0] and "[out]" in first[0]
    assert not _lines(rest), rest[-2000:]  # the online diagnosis does not repeat it


def test_callback_manifest_lint_respects_report_findings_and_stop_on(tmp_path, capsys):
    x, y = data()
    model = small_model(out_activation="relu")
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=32, epochs=1, verbose=0,
              callbacks=[HealthCallback(str(tmp_path / "quiet"), report_findings=False)])
    assert not _lines(capsys.readouterr().err)
    before = int(model.optimizer.iterations.numpy())
    hist = model.fit(x, y, batch_size=32, epochs=3, verbose=0, callbacks=[
        HealthCallback(str(tmp_path / "stop"), report_findings=False, stop_on=(MISMATCH,))])
    # Stopped at train begin: Keras still runs the step it has started.
    assert len(hist.history["loss"]) == 1
    assert int(model.optimizer.iterations.numpy()) - before == 1
    assert len(_lines(capsys.readouterr().err)) == 1
    # A healthy twin is not stopped.
    model = small_model()
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    hist = model.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[
        HealthCallback(str(tmp_path / "ok"), stop_on=(MISMATCH,))])
    assert len(hist.history["loss"]) == 2
    assert not _lines(capsys.readouterr().err)


def test_callback_with_a_tf_op_loss(tmp_path, capsys):
    """A model compiled with tf.nn.softmax_cross_entropy_with_logits (Keras
    casts the labels to float, so not the sparse op): predictions recorded as
    logits, the ReLU lint printed at train begin."""
    x, y = data()
    y = np.eye(4, dtype=np.float32)[y]
    model = small_model(out_activation="relu")
    model.compile("adam", tf.nn.softmax_cross_entropy_with_logits)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0,
              callbacks=[HealthCallback(str(tmp_path), log_every_n_steps=1)])
    ev = read_events(str(tmp_path / "train"))
    from tb_plugin import metadata
    idx = metadata.parse_index(ev["health/predictions"][0].item())
    assert idx["task"] == "multiclass" and idx["from_logits"] is True
    assert len(_lines(capsys.readouterr().err)) == 1
