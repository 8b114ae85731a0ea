"""HealthCallback with real Keras training; values checked against numpy."""

import glob
import json
import math
import os
import warnings

import numpy as np
import pytest

import tensorflow as tf
import keras  # noqa: E402

from recorded_events import summary_values  # noqa: E402
from tb_plugin import metadata  # noqa: E402
from tb_plugin.callback import HealthCallback  # noqa: E402
from tensorboard.backend.event_processing import event_file_loader  # noqa: E402


def read_events(run_dir):
    """{tag: {step: value}}, a gradient variable's series under its own tag
    (see recorded_events)."""
    out = {}
    for step, tag, value, _, _ in summary_values(run_dir):
        out.setdefault(tag, {})[step] = value
    return out


def np_softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def data(n=256, d=20, k=5, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = rng.integers(0, k, size=n).astype(np.int32)
    return x, y


def small_model(d=20, k=5, out_activation=None, seed=0, name="m"):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [keras.Input((d,)), keras.layers.Dense(16, activation="tanh", name="hidden"),
         keras.layers.Dense(k, activation=out_activation, name="out")], name=name)


def test_train_records_match_numpy_at_step_0(tmp_path):
    x, y = data()
    model = small_model()
    lr = 0.1
    model.compile(keras.optimizers.SGD(lr),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    w0 = [w.copy() for w in model.get_weights()]
    cb = HealthCallback(str(tmp_path), log_every_n_steps=3, report_findings=False)
    model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0, callbacks=[cb])
    ev = read_events(str(tmp_path / "train"))
    steps = sorted(ev["health/predictions/entropy"])
    assert steps == [0, 3, 6]  # 8 steps, every 3rd (step 0 included)
    assert sorted(ev["health/gradients/hidden/kernel/norm"] if "health/gradients/hidden/kernel/norm" in ev
                  else ev["health/gradients/m/hidden/kernel/norm"]) == [0, 3, 6]

    # Recompute step 0 by hand from the initial weights and the first batch.
    ref = small_model()
    ref.set_weights(w0)
    xb, yb = x[:32], y[:32]
    with tf.GradientTape() as tape:
        logits = ref(xb, training=True)
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(yb, logits)
    grads = tape.gradient(loss, ref.trainable_variables)
    logits = logits.numpy().astype(np.float64)
    p = np_softmax(logits)
    s0 = lambda tag: float(ev[tag][0])  # noqa: E731
    np.testing.assert_allclose(
        s0("health/predictions/entropy"), -(p * np.log(p)).sum(-1).mean() / math.log(5), rtol=1e-4)
    np.testing.assert_allclose(s0("health/predictions/accuracy"), (logits.argmax(-1) == yb).mean())
    assert s0("health/predictions/count") == 32
    np.testing.assert_array_equal(
        ev["health/predictions/label_classes"][0][:, 2], np.bincount(yb, minlength=5))
    paths = [v.path for v in model.trainable_variables]
    assert paths == ["m/hidden/kernel", "m/hidden/bias", "m/out/kernel", "m/out/bias"]
    for path, g, w in zip(paths, grads, w0):
        g = g.numpy().astype(np.float64)
        t = "health/gradients/%s/" % path
        np.testing.assert_allclose(s0(t + "norm"), np.linalg.norm(g), rtol=1e-4)
        np.testing.assert_allclose(s0(t + "max_abs"), np.abs(g).max(), rtol=1e-4)
        np.testing.assert_allclose(s0(t + "weight_norm"), np.linalg.norm(w - lr * g), rtol=1e-4)
        if np.linalg.norm(w) > 0:
            np.testing.assert_allclose(
                s0(t + "update_ratio"), lr * np.linalg.norm(g) / np.linalg.norm(w), rtol=1e-3)
        else:  # zero-initialised bias: ratio undefined
            assert np.isnan(s0(t + "update_ratio"))
        assert ev[t + "log10_abs"][0][:, 2].sum() == (g != 0).sum()
    np.testing.assert_allclose(
        s0("health/gradients/first_last_ratio"),
        np.linalg.norm(grads[0]) / np.linalg.norm(grads[2]), rtol=1e-4)
    idx = metadata.parse_index(ev["health/gradients"][0].item())
    assert [v["path"] for v in idx["variables"]] == paths
    assert idx["variables"][0]["shape"] == [20, 16]
    pidx = metadata.parse_index(ev["health/predictions"][0].item())
    assert pidx == {"kind": "predictions", "task": "multiclass", "num_classes": 5,
                    "from_logits": True, "has_labels": True}
    # The patches are gone after fit.
    assert "compute_loss" not in model.__dict__
    assert "apply" not in model.optimizer.__dict__


def test_validation_accumulates_all_batches_and_coexists_with_tensorboard(tmp_path):
    x, y = data(n=128)
    xv, yv = data(n=100, seed=1)  # 100 rows: 4 batches of 32, the last one partial
    model = small_model(out_activation="softmax")
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    cbs = [keras.callbacks.TensorBoard(str(tmp_path), histogram_freq=1, update_freq=2),
           HealthCallback(str(tmp_path), log_every_n_steps=2, report_findings=False)]
    hist = model.fit(x, y, batch_size=32, epochs=2, validation_data=(xv, yv), verbose=0,
                     callbacks=cbs)
    val = read_events(str(tmp_path / "validation"))
    assert sorted(val["health/predictions/count"]) == [4, 8]  # train step of each validation
    assert float(val["health/predictions/count"][8]) == 100
    p = model.predict(xv, verbose=0).astype(np.float64)  # final weights = last validation
    ent = -(p * np.log(p)).sum(-1).mean() / math.log(5)
    np.testing.assert_allclose(float(val["health/predictions/entropy"][8]), ent, rtol=1e-4)
    np.testing.assert_allclose(float(val["health/predictions/accuracy"][8]),
                               (p.argmax(-1) == yv).mean())
    np.testing.assert_allclose(float(val["health/predictions/accuracy"][8]),
                               hist.history["val_accuracy"][-1], atol=1e-6)
    np.testing.assert_array_equal(val["health/predictions/predicted_classes"][8][:, 2],
                                  np.bincount(p.argmax(-1), minlength=5))
    np.testing.assert_array_equal(
        val["health/predictions/top1_probability"][8][:, 2],
        np.histogram(p.max(-1), bins=metadata.PROBABILITY_BINS, range=(0, 1))[0])
    assert "health/predictions/zero_logit_fraction" not in val  # probabilities
    train = read_events(str(tmp_path / "train"))
    assert sorted(train["health/predictions/entropy"]) == [0, 2, 4, 6]
    assert any(t.startswith("epoch_") for t in train)  # Keras TensorBoard's own tags
    assert any(t.endswith("/histogram") for t in train)
    assert any(t.startswith("epoch_") for t in val)
    # Both writers' files are in the same run directories.
    assert len(glob.glob(str(tmp_path / "train" / "events*"))) >= 2
    from tensorboard.backend.event_processing import event_accumulator
    acc = event_accumulator.EventAccumulator(str(tmp_path / "train"))
    acc.Reload()
    assert "health/predictions/entropy" in acc.Tags()["tensors"]
    assert "epoch_loss" in acc.Tags()["tensors"]


def test_manifest(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((300,)),
        keras.layers.Dense(96, activation="elu", name="hidden1",
                           kernel_initializer=keras.initializers.RandomNormal(0, 1e-3)),
        keras.layers.Dropout(0.2, name="dropout1"),
        keras.layers.Dense(7, activation="relu", name="logits")], name="seed000")
    model.compile(keras.optimizers.Adam(1e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = data(n=64, d=300, k=7)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0,
              callbacks=[HealthCallback(str(tmp_path), report_findings=False)])
    ev = read_events(str(tmp_path / "train"))
    assert list(ev["health/manifest"]) == [0]
    m = json.loads(ev["health/manifest"][0].item())
    assert m["model"] == "seed000" and m["output_layer"] == "logits"
    assert [(l["name"], l["class"], l["activation"]) for l in m["layers"]] == [
        ("hidden1", "Dense", "elu"), ("dropout1", "Dropout", None), ("logits", "Dense", "relu")]
    assert m["layers"][0]["params"] == 300 * 96 + 96
    assert m["layers"][0]["trainable_params"] == 300 * 96 + 96
    assert m["layers"][0]["kernel_initializer"]["class_name"] == "RandomNormal"
    assert m["layers"][0]["kernel_initializer"]["config"]["stddev"] == 1e-3
    assert m["layers"][1]["kernel_initializer"] is None
    assert m["loss"] == {"class": "SparseCategoricalCrossentropy",
                         "name": "sparse_categorical_crossentropy", "from_logits": True}
    assert m["optimizer"]["class"] == "Adam"
    np.testing.assert_allclose(m["optimizer"]["learning_rate"], 1e-3)
    assert m["versions"]["tensorflow"] == tf.__version__
    assert m["versions"]["keras"] == keras.__version__
    assert m["versions"]["tb_plugin"]


@pytest.mark.parametrize("loss,task,from_logits,k,ytype", [
    (keras.losses.BinaryCrossentropy(from_logits=True), "binary", True, 1, "binary"),
    ("binary_crossentropy", "binary", False, 1, "binary"),
    ("mse", "regression", None, 1, "regression"),
    (keras.losses.CategoricalCrossentropy(), "multiclass", False, 3, "onehot"),
])
def test_task_inference_from_loss(tmp_path, loss, task, from_logits, k, ytype):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype(np.float32)
    if ytype == "binary":
        y = rng.integers(0, 2, size=(64, 1)).astype(np.float32)
    elif ytype == "onehot":
        y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, size=64)]
    else:
        y = rng.normal(size=(64, 1)).astype(np.float32) * 5
    act = "sigmoid" if (ytype == "binary" and not from_logits) else (
        "softmax" if ytype == "onehot" else None)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(k, activation=act)])
    model.compile("sgd", loss)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, validation_split=0.25, shuffle=False,
              callbacks=[HealthCallback(str(tmp_path), log_every_n_steps=1,
                                        report_findings=False)])
    ev = read_events(str(tmp_path / "train"))
    idx = metadata.parse_index(ev["health/predictions"][0].item())
    assert idx["task"] == task and idx["from_logits"] == from_logits
    assert idx["num_classes"] == k
    if task == "regression":
        assert "health/predictions/output_std" in ev and "health/predictions/target_std" in ev
        np.testing.assert_allclose(float(ev["health/predictions/target_std"][0]),
                                   y[:16].std(), rtol=1e-4)
        val = read_events(str(tmp_path / "validation"))
        assert float(val["health/predictions/outputs"][3][:, 2].sum()) == 16
    else:
        assert "health/predictions/tie_fraction" in ev
        if ytype == "onehot":
            np.testing.assert_array_equal(ev["health/predictions/label_classes"][0][:, 2],
                                          y[:16].sum(0))


def test_callback_never_breaks_training(tmp_path):
    x, y = data(n=64)
    # 1. setup fails (log_dir is a file): one warning, training completes.
    bad = tmp_path / "file"
    bad.write_text("not a directory")
    model = small_model()
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        hist = model.fit(x, y, epochs=2, verbose=0,
                         callbacks=[HealthCallback(str(bad / "run"), report_findings=False)])
    assert len(hist.history["loss"]) == 2
    msgs = [str(w.message) for w in caught if "HealthCallback" in str(w.message)]
    assert len(msgs) == 1 and "disabled" in msgs[0]
    # 2. unknown custom loss: predictions skipped with a warning, gradients recorded.
    model = small_model()
    model.compile("sgd", lambda yt, yp: tf.reduce_mean(tf.square(yp)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(x, y, epochs=1, verbose=0,
                  callbacks=[HealthCallback(str(tmp_path / "ok"), report_findings=False)])
    assert any("cannot infer the task" in str(w.message) for w in caught)
    ev = read_events(str(tmp_path / "ok" / "train"))
    assert "health/gradients/m/out/kernel/norm" in ev
    assert "health/predictions" not in ev


def test_restores_model_and_jit_compile(tmp_path):
    x, y = data(n=64)
    model = small_model()
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=True)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0,
              callbacks=[HealthCallback(str(tmp_path), log_every_n_steps=1,
                                        report_findings=False)])
    assert model.jit_compile is True
    ev = read_events(str(tmp_path / "train"))
    assert sorted(ev["health/predictions/entropy"]) == [0, 1]
    # A second fit without the callback records nothing more.
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    model.evaluate(x, y, verbose=0)
    ev2 = read_events(str(tmp_path / "train"))
    assert sorted(ev2["health/predictions/entropy"]) == [0, 1]
    assert not os.path.exists(tmp_path / "validation")


def test_stop_on_skips_findings_that_validation_overruled(tmp_path, capsys):
    # A train run's prediction_collapse made info by its validation run (see
    # tb_plugin.diagnosis) is printed but does not stop training; the same
    # kind as an error does, and converged (info by nature) does as asked.
    import dataclasses

    from tb_plugin import diagnosis

    cb = HealthCallback(str(tmp_path), stop_on=("prediction_collapse", "converged"))
    cb.set_model(small_model())
    cb.model.stop_training = False  # as fit sets it
    overruled = diagnosis.Finding("prediction_collapse", "info", None, 1, 9, {}, "m", "s")
    cb._diagnosis.report_new("train", [overruled])
    assert not cb.model.stop_training
    cb._diagnosis.report_new("train", [dataclasses.replace(overruled, kind="converged")])
    assert cb.model.stop_training
    cb.model.stop_training = False
    cb._diagnosis.report_new("validation", [dataclasses.replace(
        overruled, severity="error", layer="m/out/kernel")])
    assert cb.model.stop_training
    assert capsys.readouterr().err.count("tb_plugin: ") == 3


def test_report_findings_and_stop_on(tmp_path, capsys):
    """Seed 000: ReLU on the logits. Findings print once; stop_on stops fit."""
    x, y = data(n=256, d=20, k=7)
    model = small_model(k=7, out_activation="relu")
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    cb = HealthCallback(str(tmp_path), log_every_n_steps=1)
    model.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[cb])
    err = capsys.readouterr().err
    lines = [l for l in err.splitlines() if l.startswith("tb_plugin:")]
    assert lines, err[-2000:]
    kinds = {(k, l) for k, l in cb._diagnosis.reported}
    assert len(lines) == len(kinds)  # once per kind + layer
    first_kind = sorted(kinds)[0][0]
    model = small_model(k=7, out_activation="relu")
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    hist = model.fit(x, y, batch_size=32, epochs=5, verbose=0, callbacks=[
        HealthCallback(str(tmp_path / "stop"), log_every_n_steps=1, stop_on=(first_kind,))])
    assert len(hist.history["loss"]) == 1


MIRRORED_CODE = r"""
import glob, json, numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from tb_plugin.callback import HealthCallback
from tensorboard.backend.event_processing import event_file_loader
from tensorboard.util import tensor_util
logdir, every, epochs = %r, %d, %d
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
rng = np.random.default_rng(0)
x = rng.normal(size=(64, 6)).astype(np.float32); y = rng.integers(0, 3, 64)
with strategy.scope():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3, name="out")], name="m")
    model.compile(keras.optimizers.SGD(0.1),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
w0 = [w.copy() for w in model.get_weights()]
cb = HealthCallback(logdir, log_every_n_steps=every, report_findings=False)
model.fit(x, y, batch_size=32, epochs=epochs, shuffle=False, verbose=0,
          validation_data=(x, y), callbacks=[cb])
out = {"single_function": cb._train_step.single_function}
for run in ["train", "validation"]:
    for f in glob.glob(logdir + "/" + run + "/events*"):
        for e in event_file_loader.EventFileLoader(f).Load():
            for v in e.summary.value:
                out.setdefault(run + ":" + v.tag, []).append(
                    [e.step, tensor_util.make_ndarray(v.tensor).tolist()])
# reference gradient of the global batch 0 (mean loss over 32 rows)
ref = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)])
ref.set_weights(w0)
with tf.GradientTape() as tape:
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y[:32], ref(x[:32]))
g = tape.gradient(loss, ref.trainable_variables)
out["ref_norm"] = float(tf.norm(g[0]))
print("RESULT" + json.dumps(out, default=lambda b: b.decode()))
"""


def test_callback_under_mirrored_strategy(tmp_path):
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-c", MIRRORED_CODE % (str(tmp_path), 1, 1)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.split("RESULT", 1)[1])
    per_variable = out["train:health/gradients/variable_stats"]
    assert [s for s, _ in per_variable] == [0, 1]  # one copy per step
    index = next(v for s, v in out["train:health/gradients"] if s == 0)
    kernel = [v["path"] for v in json.loads(index)["variables"]].index("m/out/kernel")
    norm = list(metadata.GRADIENT_VARIABLE_STATS).index(metadata.GRAD_NORM)
    np.testing.assert_allclose(per_variable[0][1][kernel][norm], out["ref_norm"], rtol=1e-4)
    counts = out["train:health/predictions/count"]
    assert [c for _, c in counts] == [32, 32]  # the global batch
    val = out["validation:health/predictions/count"]
    assert val == [[2, 64]]


def test_mirrored_strategy_records_from_a_second_train_function(tmp_path):
    """Under a multi-replica strategy the statistics are all-reduced, which
    cannot happen behind a cond: the recording gets a train function of its
    own, so steps that are not logged run Keras's own, without the
    all-reduce; the logged steps are recorded once each."""
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-c", MIRRORED_CODE % (str(tmp_path), 2, 3)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.split("RESULT", 1)[1])
    assert out["single_function"] is False
    assert [s for s, _ in out["train:health/gradients/variable_stats"]] == [0, 2, 4]
    assert [c for _, c in out["train:health/predictions/count"]] == [32, 32, 32]
    norm = list(metadata.GRADIENT_VARIABLE_STATS).index(metadata.GRAD_NORM)
    kernel = out["train:health/gradients/variable_stats"][0][1][0]  # m/out/kernel first
    np.testing.assert_allclose(kernel[norm], out["ref_norm"], rtol=1e-4)


@pytest.mark.parametrize("single", [True, False])
def test_single_and_two_function_modes_record_the_same(tmp_path, single, monkeypatch):
    """Short runs record from Keras's train function behind conds; long ones
    (or every step) from a second train function called on logged steps
    only. Both write the same records."""
    monkeypatch.setattr(HealthCallback, "SINGLE_FUNCTION_MAX_STEPS", 10**9 if single else 0)
    x, y = data(n=320)
    model = small_model()
    model.compile(keras.optimizers.SGD(0.05),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    cb = HealthCallback(str(tmp_path), log_every_n_steps=4, report_findings=False)
    model.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0, callbacks=[cb],
              validation_data=(x[:64], y[:64]))
    assert cb._train_step.single_function is single
    ev = read_events(str(tmp_path / "train"))
    assert sorted(ev["health/predictions/entropy"]) == [0, 4, 8, 12, 16]
    assert sorted(ev["health/gradients/m/out/kernel/update_ratio"]) == [0, 4, 8, 12, 16]
    assert sorted(read_events(str(tmp_path / "validation"))["health/predictions/count"]) == [
        10, 20]
    # Same values as the other mode (identical training, deterministic).
    ref_dir = tmp_path.parent / ("ref_%s" % single)
    monkeypatch.setattr(HealthCallback, "SINGLE_FUNCTION_MAX_STEPS", 0 if single else 10**9)
    model = small_model()
    model.compile(keras.optimizers.SGD(0.05),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0,
              validation_data=(x[:64], y[:64]),
              callbacks=[HealthCallback(str(ref_dir), log_every_n_steps=4,
                                        report_findings=False)])
    ref = read_events(str(ref_dir / "train"))
    assert set(ref) == set(ev)
    for tag in ev:
        if tag == "health/manifest":
            continue
        assert sorted(ev[tag]) == sorted(ref[tag]), tag
        for step in ev[tag]:
            if ev[tag][step].dtype.kind == "f":
                np.testing.assert_allclose(ev[tag][step], ref[tag][step], rtol=1e-5,
                                           err_msg=tag)


def test_train_step_traced_once_with_the_callback(tmp_path):
    """Optimizer slots and compiled metrics are built before the first trace,
    so tf.function does not trace the step (and the recording) twice."""
    x, y = data(n=128)
    model = small_model()
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    calls = []
    original = model.train_step
    model.train_step = lambda data: (calls.append(1), original(data))[1]
    model.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[
        HealthCallback(str(tmp_path), log_every_n_steps=2, report_findings=False)])
    assert len(calls) == 1  # one function, traced once


def test_shared_functions_are_called_without_grappler():
    """The recording's traced functions are called with TensorFlow's graph
    optimizer off (each fit's train step would otherwise optimize them
    again); the caller's options are restored after the call."""
    from tensorflow.core.protobuf import config_pb2
    from tensorflow.python.eager import context
    from tb_plugin import shared_functions

    before = context.context().function_call_options.config_proto_serialized
    double = shared_functions.shared_function(("test_double",), lambda x: x * 2.0)

    @tf.function
    def outer(x):
        return double(x) + 1.0

    graph = outer.get_concrete_function(tf.TensorSpec([], tf.float32)).graph
    calls = [op for op in graph.get_operations()
             if op.type in ("PartitionedCall", "StatefulPartitionedCall")]
    assert len(calls) == 1
    config = config_pb2.ConfigProto.FromString(calls[0].get_attr("config_proto"))
    assert config.graph_options.rewrite_options.disable_meta_optimizer
    assert config.allow_soft_placement  # the rest of the caller's config is kept
    assert float(outer(tf.constant(2.0))) == 5.0
    assert context.context().function_call_options.config_proto_serialized == before


class _TraceOptions(keras.layers.Layer):
    """Identity layer that notes the tf.function call options in force
    while Keras traces a step (they are the options of that step's call)."""

    seen = []

    def call(self, x, training=None):
        from tensorflow.core.protobuf import config_pb2
        from tensorflow.python.eager import context

        config = config_pb2.ConfigProto()
        serialized = context.context().function_call_options.config_proto_serialized
        if isinstance(serialized, bytes):
            config.ParseFromString(serialized)
        self.seen.append((bool(training), config.graph_options.rewrite_options,
                          tf.compat.v1.get_default_graph().name))
        return x


@pytest.mark.parametrize("single", [True, False])
def test_steps_with_the_recording_skip_grapplers_library_passes(tmp_path, single, monkeypatch):
    """The train and test steps that hold the recording are called without
    Grappler's TFG module pipeline and function optimizer (which walk the
    recording's functions in every fit's steps); its other passes run; a
    step without the recording is called as Keras calls it; the caller's
    options are back after fit."""
    from tensorflow.core.protobuf import rewriter_config_pb2
    from tensorflow.python.eager import context

    from tb_plugin.train_step_hooks import TrainStepHooks

    monkeypatch.setattr(TrainStepHooks, "use_single_function", lambda self: single)
    before = context.context().function_call_options.config_proto_serialized
    x, y = data(n=128)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((20,)), keras.layers.Dense(16, activation="tanh"),
                              _TraceOptions(), keras.layers.Dense(5)])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    _TraceOptions.seen.clear()
    model.fit(x, y, batch_size=32, epochs=1, validation_data=(x, y), verbose=0,
              callbacks=[HealthCallback(str(tmp_path), log_every_n_steps=2,
                                        report_findings=False)])
    def lean(rewrite):
        return (rewrite.disable_tfg_optimizer
                and rewrite.function_optimization == rewriter_config_pb2.RewriterConfig.OFF
                and not rewrite.disable_meta_optimizer
                and rewrite.remapping != rewriter_config_pb2.RewriterConfig.OFF)

    # Keras's steps (not its symbolic build's scratch graph).
    steps = [(training, lean(rewrite)) for training, rewrite, graph in _TraceOptions.seen
             if graph == "one_step_on_data"]
    train = [is_lean for training, is_lean in steps if training]
    test = [is_lean for training, is_lean in steps if not training]
    # Two functions: Keras's own train step (no recording) is called as is.
    assert sorted(train) == ([True] if single else [False, True])
    assert test == [True]
    assert context.context().function_call_options.config_proto_serialized == before
    assert sorted(read_events(str(tmp_path / "train"))["health/predictions/entropy"]) == [0, 2]


def test_recording_traced_once_per_process_not_per_fit(tmp_path):
    """A second fit of a freshly built model of the same kind (as in a seed
    sweep) reuses the traced statistics and write functions; its records go
    to its own writer."""
    from tb_plugin import shared_functions

    x, y = data(n=128)
    counts = []
    for i in range(2):
        keras.backend.clear_session()
        model = small_model()
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x, y, batch_size=32, epochs=1, validation_data=(x, y), verbose=0,
                  callbacks=[HealthCallback(str(tmp_path / str(i)), log_every_n_steps=2,
                                            report_findings=False)])
        counts.append({key: fn.experimental_get_tracing_count()
                       for key, fn in shared_functions.SHARED_FUNCTIONS.items()})
    assert any(key[0] == "train_record" for key in counts[1])
    assert any(key == ("gradient_stats",) for key in counts[1])
    assert counts[1] == counts[0]
    for i in range(2):
        ev = read_events(str(tmp_path / str(i) / "train"))
        assert sorted(ev["health/gradients/m/out/kernel/norm"]) == [0, 2]
        assert sorted(ev["health/predictions/entropy"]) == [0, 2]


@pytest.mark.parametrize("single", [True, False])
def test_summary_metadata_only_in_each_writers_first_record(tmp_path, single, monkeypatch):
    """Each fit's first train record carries every value's metadata; later
    ones only tags and tensors, byte for byte (no stray metadata bytes)."""
    from tensorboard.compat.proto import summary_pb2

    monkeypatch.setattr(HealthCallback, "SINGLE_FUNCTION_MAX_STEPS", 10**6 if single else 0)
    x, y = data(n=128)
    model = small_model()
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    for _ in range(2):  # two fits: two writers, two event files
        model.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[
            HealthCallback(str(tmp_path), log_every_n_steps=3, report_findings=False)])
    paths = sorted(glob.glob(os.path.join(str(tmp_path), "train", "events.out.tfevents.*")))
    assert len(paths) == 2
    steps = []
    for path in paths:
        records = [e for e in event_file_loader.EventFileLoader(path).Load()
                   if len(e.summary.value) > 1]
        assert len(records) >= 2
        first_tags = [v.tag for v in records[0].summary.value]
        assert all(v.HasField("metadata") for v in records[0].summary.value)
        for event in records[1:]:
            assert [v.tag for v in event.summary.value] == first_tags
            plain = summary_pb2.Summary(value=[
                summary_pb2.Summary.Value(tag=v.tag, tensor=v.tensor)
                for v in event.summary.value])
            assert event.summary.SerializeToString() == plain.SerializeToString()
        steps += [e.step for e in records]
    assert steps == list(range(0, 16, 3))
    # Read back as the loaders do: later values follow their tag's first metadata.
    ev = read_events(str(tmp_path / "train"))
    assert sorted(ev["health/predictions/entropy"]) == steps


def test_steps_per_execution_records_logged_steps(tmp_path):
    x, y = data(n=320)
    model = small_model()
    model.compile(keras.optimizers.SGD(0.05),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  steps_per_execution=3)
    model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0, callbacks=[
        HealthCallback(str(tmp_path), log_every_n_steps=4, report_findings=False)])
    ev = read_events(str(tmp_path / "train"))
    assert sorted(ev["health/predictions/entropy"]) == [0, 4, 8]
    assert sorted(ev["health/gradients/m/out/kernel/update_ratio"]) == [0, 4, 8]
    assert all(np.isfinite(float(v)) for v in ev["health/gradients/m/hidden/kernel/update_ratio"].values())


def test_online_loader_reads_what_a_full_load_reads(tmp_path):
    """The callback's incremental loader (its own event files, reloaded every
    epoch) gives the diagnosis the same records as loading the logdir afresh,
    with keras.callbacks.TensorBoard writing to the same run directories; it
    keeps only the histograms the diagnosis reads."""
    from tb_plugin import diagnosis
    from tb_plugin import reader

    x, y = data(n=256, k=7)
    model = small_model(k=7, out_activation="relu")
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    cb = HealthCallback(str(tmp_path), log_every_n_steps=1)
    model.fit(x, y, batch_size=32, epochs=3, verbose=0, validation_data=(x[:64], y[:64]),
              callbacks=[keras.callbacks.TensorBoard(str(tmp_path)), cb])
    # the loader is dropped at the end of fit; rebuild it as during fit
    cb._diagnosis.store = None
    provider, eid = cb._diagnosis.provider()
    full, feid = reader.open_logdir(str(tmp_path))
    for run in ("train", "validation"):
        a = diagnosis.read_for_diagnosis(provider, None, eid, run)
        b = diagnosis.read_for_diagnosis(full, None, feid, run)
        assert a.manifest == b.manifest
        assert set(a.predictions) == set(b.predictions)
        for name in a.predictions:
            pa, pb = a.predictions[name], b.predictions[name]
            assert set(pa.scalars) == set(pb.scalars)
            for stat in pa.scalars:
                np.testing.assert_array_equal(pa.scalars[stat].steps, pb.scalars[stat].steps)
                np.testing.assert_array_equal(pa.scalars[stat].values, pb.scalars[stat].values)
            # (no sample weights in this fit: no label_weights)
            assert set(pa.histograms) == set(pb.histograms) == (
                set(diagnosis.HISTOGRAMS_READ) - {metadata.PRED_LABEL_WEIGHTS})
            for stat in pa.histograms:
                np.testing.assert_array_equal(pa.histograms[stat].counts,
                                              pb.histograms[stat].counts)
        assert set(a.gradients) == set(b.gradients) == ({"gradients"} if run == "train" else set())
        for name in a.gradients:
            ga, gb = a.gradients[name], b.gradients[name]
            assert ga.variables == gb.variables
            assert set(ga.stats) == set(gb.stats)
            for stat in ga.stats:
                for path in ga.variables:
                    np.testing.assert_array_equal(ga.stats[stat][path].values,
                                                  gb.stats[stat][path].values)
            assert ga.log10_histograms == gb.log10_histograms == {}
        # What the diagnosis does not read is not even kept.
        kept = {tag.rsplit("/", 1)[-1] for tag, entry in
                cb._diagnosis.store._runs[run]["tags"].items() if entry is not None}
        assert not kept & {metadata.PRED_TOP1_HIST, metadata.PRED_CLASS_PROB_HIST,
                           metadata.GRAD_LOG10_HIST}
        assert [f.to_json() for f in diagnosis.diagnose(a)] == \
            [f.to_json() for f in diagnosis.diagnose(reader.read_run(full, None, feid, run))]


class _WeightsPerStep(keras.callbacks.Callback):
    """The trainable weights before and after every train batch."""

    def on_train_begin(self, logs=None):
        self.before, self.after = [], []

    def on_train_batch_begin(self, batch, logs=None):
        self.before.append([v.numpy().copy() for v in self.model.trainable_variables])

    def on_train_batch_end(self, batch, logs=None):
        self.after.append([v.numpy().copy() for v in self.model.trainable_variables])


@pytest.mark.parametrize("single", [True, False])
@pytest.mark.parametrize("optimizer", [
    lambda: keras.optimizers.Adam(1e-2),
    lambda: keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
    lambda: keras.optimizers.RMSprop(1e-2, momentum=0.5),
    lambda: keras.optimizers.AdamW(1e-2, weight_decay=0.0),
])
def test_update_ratio_is_the_applied_change(tmp_path, optimizer, single, monkeypatch):
    """update_ratio = ||w_after - w_before|| / ||w_before|| of every logged
    step, whatever the optimizer's update rule (assign, assign_add,
    assign_sub), in both recording modes."""
    monkeypatch.setattr(HealthCallback, "SINGLE_FUNCTION_MAX_STEPS", 10**9 if single else 0)
    x, y = data(n=192)
    model = small_model()
    model.compile(optimizer(), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    weights = _WeightsPerStep()
    cb = HealthCallback(str(tmp_path), log_every_n_steps=2, report_findings=False)
    model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0,
              callbacks=[cb, weights])
    ev = read_events(str(tmp_path / "train"))
    paths = [v.path for v in model.trainable_variables]
    for step in (0, 2, 4):
        for i, path in enumerate(paths):
            before = weights.before[step][i].astype(np.float64)
            after = weights.after[step][i].astype(np.float64)
            got = float(ev["health/gradients/%s/update_ratio" % path][step])
            if np.linalg.norm(before) == 0:
                assert np.isnan(got), (path, step)
            else:
                want = np.linalg.norm(after - before) / np.linalg.norm(before)
                np.testing.assert_allclose(got, want, rtol=2e-3, err_msg="%s %d" % (path, step))


def test_optimizer_without_keras_assign_gets_no_update_ratio(tmp_path):
    """An optimizer that changes the variables itself (not through
    Optimizer.assign*): gradients are recorded, update_ratio is not, with
    one warning."""

    class DirectSGD(keras.optimizers.SGD):
        def update_step(self, gradient, variable, learning_rate):
            variable.assign(variable - learning_rate * gradient)

    x, y = data(n=64)
    model = small_model()
    model.compile(DirectSGD(0.1), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    cb = HealthCallback(str(tmp_path), log_every_n_steps=1, report_findings=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[cb])
    ev = read_events(str(tmp_path / "train"))
    assert sorted(ev["health/gradients/m/out/kernel/norm"]) == [0, 1]
    assert not any(tag.endswith("/update_ratio") for tag in ev)
    assert sum("update_ratio not recorded" in str(w.message) for w in caught) == 1


def test_online_loader_samples_like_tensorboards_reservoir():
    """Past its size, a tag of the callback's loader keeps the very samples a
    TensorBoard Reservoir of that size keeps (same items, same seed)."""
    from tensorboard.backend.event_processing import reservoir
    from tensorboard.data import provider as provider_lib
    from tensorboard.util import tensor_util

    from tb_plugin.health_event_store import StoredTag

    tag = StoredTag(plugin="scalars", scalar=True, content=b"", description="", size=100)
    ref = reservoir.Reservoir(100)
    for step in range(2500):
        tensor = tensor_util.make_tensor_proto(np.float32(step * 0.5))
        tag.add(step, 1000.0 + step, tensor, (provider_lib, tensor_util, reservoir))
        ref.AddItem("_", step)
    assert [d.step for d in tag.data()] == ref.Items("_")
    assert [d.value for d in tag.data()] == [s * 0.5 for s in ref.Items("_")]
    assert tag.max_step == 2499 and len(tag.data()) == 100


def test_online_diagnosis_skips_epoch_ends_within_its_time_share(tmp_path, capsys):
    """Epoch ends that come too soon after the last diagnosis are skipped;
    one final diagnosis at the end of fit reads every record."""
    x, y = data(n=128, d=20, k=7)
    model = small_model(k=7, out_activation="relu")
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    cb = HealthCallback(str(tmp_path), log_every_n_steps=1)
    cb.ONLINE_DIAGNOSIS_SHARE = 1e-9  # every epoch end is too soon
    seen = []
    report = cb._diagnosis.report

    def counting_report():
        seen.append(int(model.optimizer.iterations.numpy()))
        return report()

    cb._diagnosis.report = counting_report
    model.fit(x, y, batch_size=32, epochs=4, verbose=0, callbacks=[cb])
    assert seen == [16]  # the first epoch end too (too soon after the start): the end of fit
    assert "tb_plugin:" in capsys.readouterr().err
    cb.ONLINE_DIAGNOSIS_SHARE = 1.0  # never too soon: every epoch end
    cb.FIRST_DIAGNOSIS_SECONDS = 0.0
    seen.clear()
    model.fit(x, y, batch_size=32, epochs=3, verbose=0, callbacks=[cb])
    assert seen == [20, 24, 28]
    cb.ONLINE_DIAGNOSIS_SHARE = 1e-9
    cb.stop_on = ("prediction_collapse",)  # stop_on: from the first epoch end
    seen.clear()
    model.fit(x, y, batch_size=32, epochs=3, verbose=0, callbacks=[cb])
    assert seen[0] == 32


@pytest.mark.parametrize("kwargs,words", [
    (dict(stop_on="nonfinite"), ["stop_on", "list or tuple", "('nonfinite',)"]),
    (dict(stop_on=("nonfinite", "nan")), ["stop_on", "'nan'", "valid kinds", "dead_units"]),
    (dict(stop_on=3), ["stop_on", "list or tuple"]),
    (dict(log_every_n_steps=0), ["log_every_n_steps", "got 0"]),
    (dict(log_every_n_steps=1.5), ["log_every_n_steps", "got 1.5"]),
    (dict(log_every_n_steps="x"), ["log_every_n_steps", "got 'x'"]),
    (dict(log_every_n_steps=True), ["log_every_n_steps", "got True"]),
    (dict(thresholds={"nope": 1}), ["'nope'", "collapse_entropy"]),
    (dict(thresholds={"collapse_entropy": "high"}), ["collapse_entropy", "'high'"]),
    (dict(thresholds={"persist_records": -1}), ["persist_records", "-1"]),
    (dict(thresholds=0.5), ["thresholds", "0.5"]),
    (dict(log_dir=""), ["log_dir", "''"]),
    (dict(log_dir=None), ["log_dir", "None"]),
    (dict(log_dir=5), ["log_dir", "5 (int)"]),
    (dict(record_predictions="yes"), ["record_predictions", "'yes'"]),
    (dict(record_gradients=1), ["record_gradients", "1 (int)"]),
    (dict(record_update_ratio=None), ["record_update_ratio", "None"]),
    (dict(record_train_mode="no"), ["record_train_mode", "'no'"]),
    (dict(report_findings="no"), ["report_findings", "'no'"]),
    (dict(from_logits="yes"), ["from_logits", "'yes'"]),
    (dict(predictions_name=""), ["predictions_name", "''"]),
    (dict(predictions_name="manifest"), ["predictions_name", "'manifest'", "reserved"]),
    (dict(predictions_name="train_mode"), ["predictions_name", "'train_mode'"]),
    (dict(gradients_name=None), ["gradients_name", "None"]),
    (dict(gradients_name="predictions"), ["predictions_name", "gradients_name", "differ"]),
])
def test_bad_arguments_are_refused_when_constructed(tmp_path, kwargs, words):
    kwargs.setdefault("log_dir", str(tmp_path))
    with pytest.raises(ValueError) as e:
        HealthCallback(**kwargs)
    for word in words:
        assert word in str(e.value), (word, str(e.value))


def test_good_arguments_are_kept(tmp_path):
    from tb_plugin import diagnosis

    cb = HealthCallback(str(tmp_path), log_every_n_steps=np.int64(5), stop_on=["nonfinite"],
                        thresholds={"collapse_entropy": "0.9", "persist_records": 4})
    assert cb.log_every_n_steps == 5 and cb.stop_on == ("nonfinite",)
    assert cb.thresholds == diagnosis.Thresholds(collapse_entropy=0.9, persist_records=4)
    th = diagnosis.Thresholds(dead_fraction=0.5)
    assert HealthCallback(str(tmp_path), thresholds=th, log_every_n_steps=None).thresholds is th
    assert HealthCallback(str(tmp_path)).thresholds is None
    cb = HealthCallback(tmp_path, record_gradients=np.bool_(False), from_logits=True,
                        predictions_name="preds", gradients_name="grads")
    assert cb.log_dir == str(tmp_path) and cb.record_gradients is False
    assert (cb.from_logits, cb.predictions_name, cb.gradients_name) == (True, "preds", "grads")


def test_thresholds_reach_the_online_diagnosis(tmp_path, capsys):
    x, y = data(n=256)
    reported = []
    for name, thresholds in (("default", None), ("override", {"collapse_entropy": 0.0})):
        model = small_model()
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        cb = HealthCallback(str(tmp_path / name), log_every_n_steps=1, thresholds=thresholds)
        model.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[cb])
        reported.append({kind for kind, _ in cb._diagnosis.reported})
    assert "prediction_collapse" not in reported[0]
    # Every classifier is "collapsed" when the entropy threshold is 0.
    assert "prediction_collapse" in reported[1], capsys.readouterr().err[-2000:]


def test_two_fresh_fits_in_one_log_dir_are_reported_resumed_fits_are_not(tmp_path):
    from tb_plugin import diagnosis

    x, y = data(n=128)

    def fit(model, log_dir):
        model.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[
            HealthCallback(str(log_dir), log_every_n_steps=1, report_findings=False)])

    def mixed(log_dir):
        (run,) = diagnosis.check_logdir(str(log_dir))["runs"]
        return [f for f in run["findings"] if f["kind"] == diagnosis.KIND_MIXED_FITS]

    for seed in (0, 1):  # two fresh models: steps 0-7 twice
        model = small_model(seed=seed)
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        fit(model, tmp_path / "fresh")
    (f,) = mixed(tmp_path / "fresh")
    assert f["severity"] == "warning" and f["evidence"]["fits"] == 2
    assert (f["first_step"], f["last_step"]) == (0, 7)
    assert "2 fits" in f["message"] and "log_dir" in f["suggestion"]

    model = small_model()
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    fit(model, tmp_path / "resumed")
    fit(model, tmp_path / "resumed")  # the same model: steps 8-15
    assert mixed(tmp_path / "resumed") == []
