"""Dropout and BatchNormalization silently in inference mode while a model
trains (seed 001): the recording (tb_plugin.train_mode, through
HealthCallback and tb_plugin.summary), the rules (train_mode_inactive,
train_mode_overridden, training_arg_missing, dropout_rate_zero,
frozen_batchnorm) on real Keras trainings, and their healthy twins."""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from tb_plugin import diagnosis  # noqa: E402
from tb_plugin import metadata  # noqa: E402
from tb_plugin import reader  # noqa: E402
from tb_plugin import train_mode  # noqa: E402
from tb_plugin import train_mode_rules  # noqa: E402
from tb_plugin.callback import HealthCallback  # noqa: E402
import tb_plugin.summary as health  # noqa: E402

NEW_KINDS = {diagnosis.KIND_TRAIN_MODE_INACTIVE, diagnosis.KIND_TRAIN_MODE_OVERRIDDEN,
             diagnosis.KIND_TRAINING_ARG_MISSING, diagnosis.KIND_DROPOUT_RATE_ZERO,
             diagnosis.KIND_FROZEN_BATCHNORM}


def data(n=640, d=8, k=3, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 1.5, size=(k, d))
    y = rng.integers(0, k, size=n)
    x = centres[y] + rng.normal(0.0, 1.0, size=(n, d))
    return x.astype("float32"), y.astype("int32")


def fit(model, log_dir, epochs=2, x=None, y=None, **callback_kwargs):
    if x is None:
        x, y = data()
    model.compile(keras.optimizers.Adam(3e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    callback_kwargs.setdefault("report_findings", False)
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=0,
              callbacks=[HealthCallback(str(log_dir), **callback_kwargs)])
    return model


def diagnose(run_dir):
    provider, eid = reader.open_logdir(str(run_dir))
    records = reader.read_run(provider, None, eid, "train")
    findings = diagnosis.diagnose(records)
    narrow = diagnosis.diagnose(diagnosis.read_for_diagnosis(provider, None, eid, "train"))
    assert [f.to_json() for f in narrow] == [f.to_json() for f in findings]
    return records, findings


def by_kind(findings):
    out = {}
    for f in findings:
        out.setdefault(f.kind, []).append(f)
    return out


def problems(findings):
    """Findings of the train-mode kinds that make a run unhealthy."""
    return [f.to_json() for f in findings if f.kind in NEW_KINDS and f.severity != "info"]


def no_wrappers(model):
    return not any("call" in layer.__dict__
                   for layer, *_ in train_mode.layer_tree(model))


# ---------------------------------------------------------------------------
# Models


class Net(keras.Model):
    """Dense -> BatchNormalization -> Dropout -> Dense; `call` with or
    without `training`."""

    def __init__(self, **kwargs):
        super().__init__(name="net", **kwargs)
        self.hidden = keras.layers.Dense(32, activation="relu", name="hidden")
        self.bn = keras.layers.BatchNormalization(name="bn")
        self.drop = keras.layers.Dropout(0.4, name="drop")
        self.out = keras.layers.Dense(3, name="out")


class NetWithTraining(Net):
    def call(self, x, training=None):
        return self.out(self.drop(self.bn(self.hidden(x), training=training),
                                  training=training))


class NetWithoutTraining(Net):
    def call(self, x):
        return self.out(self.drop(self.bn(self.hidden(x))))


class Block(keras.layers.Layer):
    """Dense + Dropout; `mode` says how the Dropout is called: "forward"
    (Keras passes the flag on), "kwargs" (training=kwargs.get("training"):
    None, since the call has no `training` parameter) or "direct"
    (self.drop.call(h): no flag at all)."""

    def __init__(self, mode, **kwargs):
        super().__init__(**kwargs)
        self.mode = mode
        self.dense = keras.layers.Dense(32, activation="relu", name="dense")
        self.drop = keras.layers.Dropout(0.4, name="drop")

    def call(self, x, **kwargs):
        h = self.dense(x)
        if self.mode == "kwargs":
            return self.drop(h, training=kwargs.get("training"))
        if self.mode == "direct":
            return self.drop.call(h)
        return self.drop(h)


class BlockNet(keras.Model):
    def __init__(self, mode, **kwargs):
        super().__init__(name="blocknet", **kwargs)
        self.block = Block(mode, name="block")
        self.drop2 = keras.layers.Dropout(0.2, name="drop2")
        self.out = keras.layers.Dense(3, name="out")

    def call(self, x, training=None):
        return self.out(self.drop2(self.block(x, training=training), training=training))


def nested(frozen, dropout=False):
    """A Functional model calling a nested model as base(x, training=False)
    (the transfer-learning idiom); base holds a BatchNormalization."""
    inp = keras.Input((8,))
    h = keras.layers.Dense(16, activation="relu", name="base_dense")(inp)
    h = keras.layers.BatchNormalization(name="bn")(h)
    if dropout:
        h = keras.layers.Dropout(0.3, name="base_drop")(h)
    base = keras.Model(inp, h, name="base")
    base.trainable = not frozen
    outer_in = keras.Input((8,))
    out = keras.layers.Dense(3, name="head")(base(outer_in, training=False))
    return keras.Model(outer_in, out, name="outer")


def sequential(*middle, name="seq"):
    return keras.Sequential([keras.Input((8,)),
                             keras.layers.Dense(32, activation="relu", name="hidden"),
                             *middle, keras.layers.Dense(3, name="out")], name=name)


class IgnoresTraining(keras.layers.Dropout):
    """A custom Dropout whose call never drops (it receives training=True)."""

    def call(self, inputs, training=False):
        return inputs


# ---------------------------------------------------------------------------
# fit


def test_subclassed_model_without_training_runs_dropout_and_bn_in_inference(tmp_path):
    keras.utils.set_random_seed(0)
    model = fit(NetWithoutTraining(), tmp_path / "bad")
    assert no_wrappers(model)
    records, findings = diagnose(tmp_path / "bad")
    kinds = by_kind(findings)
    (inactive,) = kinds["train_mode_inactive"]
    assert inactive.severity == "error"
    assert set(inactive.evidence["layers"]) == {"net/bn", "net/drop"}
    assert inactive.layer == "net/bn"
    assert inactive.evidence["cause"] == "model_call"
    assert inactive.first_step == 0
    drop = inactive.evidence["layers"]["net/drop"]
    assert drop["flag"] == "False"
    # Evidence: zeroed what came in, far below what training would zero.
    assert drop["expected_zero_fraction"] - drop["observed_zero_fraction"] > \
        20 * drop["standard_error"]
    assert inactive.evidence["layers"]["net/bn"]["moving_mean_change_max"] == 0
    assert "NetWithoutTraining.call" in inactive.message
    assert "training=None" in inactive.suggestion
    (missing,) = kinds["training_arg_missing"]
    assert missing.layer == "net" and missing.severity == "error"
    assert set(missing.evidence["layers"]) == {"net/bn", "net/drop"}
    # The manifest alone shows it, before the first step.
    before = diagnosis.diagnose_manifest(records.manifest)
    assert [f.kind for f in before] == ["training_arg_missing"]
    # What the record holds: the flags each layer received.
    tm = records.train_mode["train_mode"]
    assert set(tm.series("training", "net/drop").values) == {0.0}
    assert set(tm.series("root_training", "net/drop").values) == {0.0}


def test_subclassed_model_with_training_is_healthy(tmp_path):
    keras.utils.set_random_seed(0)
    model = fit(NetWithTraining(), tmp_path / "good")
    assert no_wrappers(model)
    records, findings = diagnose(tmp_path / "good")
    assert problems(findings) == []
    tm = records.train_mode["train_mode"]
    assert set(tm.series("training", "net/drop").values) == {1.0}
    # BatchNormalization's moving statistics move between records.
    assert np.all(tm.series("mean_change", "net/bn").values > 0)
    # Dropout zeroes ~z_in + (1 - z_in) * 0.4 of its outputs.
    zin = tm.series("zero_in", "net/drop").values
    zout = tm.series("zero_out", "net/drop").values
    units = tm.series("units", "net/drop").values
    se = np.sqrt((1 - zin) * 0.4 * 0.6 / units)
    assert np.all(np.abs(zout - (zin + (1 - zin) * 0.4)) < 6 * se)
    assert diagnosis.diagnose_manifest(records.manifest) == []


def test_layer_that_drops_the_flag(tmp_path):
    for mode in ("kwargs", "direct"):
        keras.utils.set_random_seed(0)
        fit(BlockNet(mode), tmp_path / mode)
        _, findings = diagnose(tmp_path / mode)
        (inactive,) = by_kind(findings)["train_mode_inactive"]
        # Only the Dropout inside the block: drop2 gets the flag from the model.
        assert list(inactive.evidence["layers"]) == ["blocknet/block/drop"], mode
        assert inactive.evidence["cause"] == "dropped"
        assert inactive.evidence["layers"]["blocknet/block/drop"]["caller"] == \
            "blocknet/block"
        assert inactive.evidence["layers"]["blocknet/block/drop"]["flag"] == \
            ("None" if mode == "kwargs" else "False")
        assert "block.call" in inactive.suggestion
        assert "training_arg_missing" not in by_kind(findings)
    keras.utils.set_random_seed(0)
    fit(BlockNet("forward"), tmp_path / "forward")
    _, findings = diagnose(tmp_path / "forward")
    assert problems(findings) == []


def test_nested_model_called_with_training_false_is_overridden(tmp_path):
    keras.utils.set_random_seed(0)
    fit(nested(frozen=False), tmp_path / "unfrozen")
    _, findings = diagnose(tmp_path / "unfrozen")
    (over,) = by_kind(findings)["train_mode_overridden"]
    assert over.severity == "error"
    assert over.layer == "outer/base/bn"
    assert over.evidence["nested"] == "outer/base"
    assert over.evidence["layers"]["outer/base/bn"]["moving_mean_change_max"] > 0
    assert "trainable = False" in over.suggestion
    assert "train_mode_inactive" not in by_kind(findings)
    # A Dropout in it is active too: a warning when no statistics moved.
    keras.utils.set_random_seed(0)
    fit(nested(frozen=True, dropout=True), tmp_path / "frozen_dropout")
    _, findings = diagnose(tmp_path / "frozen_dropout")
    (over,) = by_kind(findings)["train_mode_overridden"]
    assert over.severity == "warning" and list(over.evidence["layers"]) == [
        "outer/base/base_drop"]


def test_frozen_batchnorm_is_info_and_the_run_healthy(tmp_path):
    keras.utils.set_random_seed(0)
    fit(nested(frozen=True), tmp_path / "frozen")
    records, findings = diagnose(tmp_path / "frozen")
    assert problems(findings) == []
    (frozen,) = by_kind(findings)["frozen_batchnorm"]
    assert frozen.severity == "info" and frozen.layer == "outer/base/bn"
    assert diagnosis.run_status(records, [f for f in findings if f.kind in NEW_KINDS]) \
        == "healthy"
    # Its statistics stay where they were.
    tm = records.train_mode["train_mode"]
    assert set(tm.series("mean_change", "outer/base/bn").values) == {0.0}


def test_dropout_rate_zero(tmp_path):
    keras.utils.set_random_seed(0)
    fit(sequential(keras.layers.Dropout(0.0, name="leftover")), tmp_path / "zero")
    records, findings = diagnose(tmp_path / "zero")
    (zero,) = by_kind(findings)["dropout_rate_zero"]
    assert zero.severity == "warning" and zero.layer == "seq/leftover"
    assert problems(findings) == [zero.to_json()]
    assert [f.kind for f in diagnosis.diagnose_manifest(records.manifest)] == [
        "dropout_rate_zero"]
    keras.utils.set_random_seed(0)
    fit(sequential(keras.layers.Dropout(0.2, name="drop"),
                   keras.layers.GaussianNoise(0.1, name="noise"),
                   keras.layers.GaussianDropout(0.2, name="gdrop")),
        tmp_path / "rate")
    _, findings = diagnose(tmp_path / "rate")
    assert problems(findings) == []


def test_dropout_that_ignores_training_is_caught_by_its_zero_fraction(tmp_path):
    keras.utils.set_random_seed(0)
    fit(sequential(IgnoresTraining(0.5, name="lazy")), tmp_path / "lazy")
    _, findings = diagnose(tmp_path / "lazy")
    (inactive,) = by_kind(findings)["train_mode_inactive"]
    assert inactive.layer == "seq/lazy" and inactive.evidence["cause"] == "ignored"
    ev = inactive.evidence["layers"]["seq/lazy"]
    assert ev["flag"] == "True"
    assert ev["expected_zero_fraction"] - ev["observed_zero_fraction"] > 0.2


def test_spatial_dropout_units_and_cnn_twin(tmp_path):
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(256, 6, 6, 4)).astype("float32")
    y = np.random.default_rng(1).integers(0, 3, 256).astype("int32")
    model = keras.Sequential([
        keras.Input((6, 6, 4)), keras.layers.Conv2D(8, 3, activation="relu", name="conv"),
        keras.layers.SpatialDropout2D(0.3, name="sdrop"), keras.layers.BatchNormalization(
            name="bn"), keras.layers.GlobalAveragePooling2D(name="gap"),
        keras.layers.Dense(3, name="out")], name="cnn")
    fit(model, tmp_path / "cnn", x=x, y=y)
    records, findings = diagnose(tmp_path / "cnn")
    assert problems(findings) == []
    tm = records.train_mode["train_mode"]
    # 4x4x8 feature maps: a sampled row holds 8 channels, the dropout units.
    rows = tm.series("units", "cnn/sdrop").values / 8
    assert np.allclose(rows, np.round(rows)) and rows.min() >= 1


def test_train_step_traced_once_and_layers_restored_after_an_exception(tmp_path):
    keras.utils.set_random_seed(0)
    model = NetWithTraining()
    calls = []
    original = model.train_step
    model.train_step = lambda batch: (calls.append(1), original(batch))[1]
    fit(model, tmp_path / "once", epochs=2, log_every_n_steps=2)
    assert len(calls) == 1  # BatchNormalization's copies were made before the trace
    assert no_wrappers(model)

    x, y = data(n=256)

    def batches():
        for i in range(0, 256, 32):
            if i == 96:
                raise ValueError("bad batch")
            yield x[i:i + 32], y[i:i + 32]

    model = NetWithoutTraining()
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    with pytest.raises(Exception, match="bad batch"):
        model.fit(batches(), epochs=1, verbose=0, callbacks=[
            HealthCallback(str(tmp_path / "raised"), report_findings=False)])
    assert no_wrappers(model)


def test_record_train_mode_false_records_nothing(tmp_path):
    keras.utils.set_random_seed(0)
    fit(NetWithoutTraining(), tmp_path / "off", record_train_mode=False)
    records, _ = diagnose(tmp_path / "off")
    assert records.train_mode == {}


# ---------------------------------------------------------------------------
# Custom loops (tb_plugin.summary)


def custom_loop(log_dir, call_with_training, eager=False, steps=16):
    keras.utils.set_random_seed(0)
    x, y = data()
    model = sequential(keras.layers.BatchNormalization(name="bn"),
                       keras.layers.Dropout(0.3, name="drop"), name="loop")
    optimizer = keras.optimizers.Adam(1e-2)
    loss_fn = tf.nn.sparse_softmax_cross_entropy_with_logits
    writer = tf.summary.create_file_writer(str(log_dir / "train"))
    with writer.as_default():
        health.model_manifest(model, loss_fn, optimizer)
    probe = health.train_mode_probe(model)
    assert health.train_mode_probe(model) is probe

    def step_fn(xb, yb, step):
        with tf.GradientTape() as tape:
            with probe:
                logits = model(xb, training=True) if call_with_training else model(xb)
            loss = tf.reduce_mean(loss_fn(yb, logits))
        grads = tape.gradient(loss, model.trainable_variables)
        with writer.as_default(step=step), tf.summary.record_if(step % 2 == 0):
            health.gradient_magnitudes("gradients", grads, model.trainable_variables)
            health.train_mode(probe)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))

    if not eager:
        step_fn = tf.function(step_fn)
    for i in range(steps):
        step_fn(x[32 * i:32 * (i + 1)], y[32 * i:32 * (i + 1)], tf.constant(i, tf.int64))
    writer.close()
    assert no_wrappers(model)
    return model


@pytest.mark.parametrize("eager", [False, True])
def test_custom_loop_calling_model_without_training(tmp_path, eager):
    custom_loop(tmp_path / "bad", call_with_training=False, eager=eager)
    records, findings = diagnose(tmp_path / "bad")
    (inactive,) = by_kind(findings)["train_mode_inactive"]
    assert set(inactive.evidence["layers"]) == {"loop/bn", "loop/drop"}
    assert inactive.evidence["cause"] == "not_training"
    assert "model(x, training=True)" in inactive.suggestion
    assert sorted(set(records.train_mode["train_mode"].series(
        "training", "loop/drop").steps.tolist())) == list(range(0, 16, 2))
    custom_loop(tmp_path / "good", call_with_training=True, eager=eager)
    _, findings = diagnose(tmp_path / "good")
    assert problems(findings) == []


def test_custom_loop_model_without_training_param_called_with_training_true(tmp_path):
    """Keras passes model(x, training=True) on to the layers of a model whose
    call has no `training` (its call context): the manifest lint is then
    withdrawn by the records."""
    keras.utils.set_random_seed(0)
    x, y = data()
    model = NetWithoutTraining()
    model(x[:2])
    writer = tf.summary.create_file_writer(str(tmp_path / "train"))
    with writer.as_default():
        health.model_manifest(model, "sparse_categorical_crossentropy",
                              keras.optimizers.Adam(), from_logits=True)
        probe = health.train_mode_probe(model)
        for step in range(4):
            with probe:
                model(x[:32], training=True)
            health.train_mode(probe, step=step)
    writer.close()
    records, findings = diagnose(tmp_path)
    assert [f.kind for f in diagnosis.diagnose_manifest(records.manifest)] == [
        "training_arg_missing"]
    assert problems(findings) == []


def test_train_mode_api_errors_and_record_if(tmp_path):
    with pytest.raises(ValueError, match="probe"):
        health.train_mode(object(), step=0)
    with pytest.raises(ValueError, match="keras.Model"):
        train_mode.TrainModeProbe("not a model")
    model = sequential(keras.layers.Dropout(0.3, name="drop"), name="api")
    probe = health.train_mode_probe(model)
    writer = tf.summary.create_file_writer(str(tmp_path / "train"))
    x = np.ones((4, 8), "float32")
    with writer.as_default(), tf.summary.record_if(False):
        with probe:
            model(x, training=True)
        assert not bool(health.train_mode(probe, step=0))
    with writer.as_default():
        with pytest.warns(UserWarning, match="no train-mode layer"):
            assert not bool(health.train_mode(probe, step=1))  # nothing noted since
    writer.close()


# ---------------------------------------------------------------------------
# Manifest and rules on hand-built records


def test_manifest_train_mode_entry():
    keras.utils.set_random_seed(0)
    model = BlockNet("forward")
    model(np.ones((2, 8), "float32"))
    info = train_mode.manifest_info(model)
    assert [(e["path"], e["kind"]) for e in info["layers"]] == [
        ("blocknet/block/drop", "dropout"), ("blocknet/drop2", "dropout")]
    assert info["call_without_training"] == []
    bad = NetWithoutTraining()
    bad(np.ones((2, 8), "float32"))
    info = train_mode.manifest_info(bad)
    assert info["call_without_training"] == [
        {"path": "net", "class": "NetWithoutTraining", "layers": ["net/bn", "net/drop"]}]
    info = train_mode.manifest_info(nested(frozen=True))
    assert info["inference_calls"] == [
        {"path": "outer/base", "class": "Functional", "caller": "outer"}]
    assert [e["trainable"] for e in info["layers"]] == [False]
    # Dense takes `training` in Keras 3 but does not depend on it.
    assert train_mode.layer_kind(keras.layers.Dense(3)) is None


def _records(zin, zout, units, training=1.0, rate=0.5):
    steps = np.arange(len(zout), dtype=np.int64) * 10

    def series(v):
        return reader.Series(steps=steps, values=np.broadcast_to(
            np.asarray(v, dtype=np.float64), steps.shape).copy())

    path = "m/drop"
    stats = {metadata.TM_TRAINING: {path: series(training)},
             metadata.TM_ROOT_TRAINING: {path: series(1.0)},
             metadata.TM_BY_CALLER: {path: series(0.0)},
             metadata.TM_ZERO_IN: {path: series(zin)},
             metadata.TM_ZERO_OUT: {path: series(zout)},
             metadata.TM_UNITS: {path: series(units)},
             metadata.TM_CHANGED: {path: series(1.0)}}
    tm = reader.TrainModeRecords(name="train_mode", layers=[
        {"path": path, "class": "Dropout", "kind": "dropout", "rate": rate, "flag": "True",
         "caller": "m", "trainable": True}], stats=stats)
    return reader.RunRecords(run="train", manifest=None, predictions={}, gradients={},
                             train_mode={"train_mode": tm})


def test_statistical_rule_needs_a_large_margin():
    th = diagnosis.Thresholds()
    rng = np.random.default_rng(0)
    units = 1024
    # Healthy: binomial noise around the expected 50%, and a few records 4 SE low.
    zout = rng.binomial(units, 0.5, size=200) / units
    zout[[20, 21, 22]] = 0.5 - 4 * np.sqrt(0.25 / units)
    assert diagnosis.diagnose(_records(0.0, zout, units)) == []
    # A small sample far below is not enough (the margin in SE)...
    assert diagnosis.diagnose(_records(0.0, np.full(10, 0.3), 16)) == []
    # ...nor is a deficit of a few points on a large one (the margin in drops).
    assert diagnosis.diagnose(_records(0.0, np.full(10, 0.45), 10**6)) == []
    # Half the drops missing on consecutive records: fires from the first.
    zout = np.full(10, 0.5)
    zout[4:] = 0.1
    (f,) = diagnosis.diagnose(_records(0.0, zout, units))
    assert f.kind == "train_mode_inactive" and f.first_step == 40 and f.last_step == 90
    assert f.evidence["cause"] == "ignored"
    # A flag that says inference needs no persistence: a fact (the model
    # itself trained, so a layer on the way dropped it).
    (f,) = diagnosis.diagnose(_records(0.0, np.full(3, 0.0), units, training=0.0))
    assert f.first_step == 0 and f.evidence["cause"] == "dropped"
    assert train_mode_rules.record_findings(_records(0.0, zout, units), None, th)


def test_kinds_appended_and_documented():
    first = diagnosis.KINDS.index("train_mode_inactive")  # later kinds append after them
    assert diagnosis.KINDS[first:first + 5] == (
        "train_mode_inactive", "train_mode_overridden", "training_arg_missing",
        "dropout_rate_zero", "frozen_batchnorm")
    assert set(diagnosis.MANIFEST_KINDS) >= {
        "training_arg_missing", "dropout_rate_zero", "frozen_batchnorm"}
    import os

    root = os.path.join(os.path.dirname(__file__), "..")
    readme = open(os.path.join(root, "README.md")).read()
    reference = open(os.path.join(root, "docs", "reference.md")).read()
    for kind in NEW_KINDS:
        assert "| `%s` |" % kind in readme and "| `%s` |" % kind in reference
    assert "train_mode_probe" in reference


# ---------------------------------------------------------------------------
# The Health tab's route


def test_train_mode_route_serves_per_layer_series(tmp_path):
    import json
    import shutil

    from test_plugin_routes import TB

    import os

    src = os.path.join(os.path.dirname(__file__), "..", "demo_logs", "seed001_no_training_arg")
    shutil.copytree(src, str(tmp_path / "seed001_no_training_arg"))
    tb = TB(str(tmp_path), "python")
    try:
        runs = json.loads(tb.get("/data/plugin/health/runs").get_data())["runs"]
        train = next(r for r in runs if r["run"] == "seed001_no_training_arg/train")
        assert train["train_mode"] == [{"name": "train_mode", "layers": [
            "seed001/dropout0", "seed001/dropout1", "seed001/dropout2", "seed001/dropout3"]}]
        assert {f["kind"] for f in train["findings"]} == {"train_mode_inactive",
                                                          "training_arg_missing"}
        r = tb.get("/data/plugin/health/train_mode?run=seed001_no_training_arg/train"
                   "&name=train_mode&width=50")
        assert r.status_code == 200
        body = json.loads(r.get_data())
        (drop0,) = [e for e in body["layers"] if e["path"] == "seed001/dropout0"]
        assert drop0["kind"] == "dropout" and drop0["rate"] == 0.05 and drop0["flag"] == "False"
        s = drop0["series"]
        assert set(s) >= {"training", "root_training", "observed_zero_fraction",
                          "expected_zero_fraction", "standard_error"}
        assert len(s["training"]["steps"]) <= 50 and set(s["training"]["values"]) == {0.0}
        assert all(e > o for e, o in zip(s["expected_zero_fraction"]["values"],
                                         s["observed_zero_fraction"]["values"]))
        assert tb.get("/data/plugin/health/train_mode?run=seed001_no_training_arg/train"
                      "&name=nope").status_code == 404
        assert tb.get("/data/plugin/health/train_mode?run=x").status_code == 400
    finally:
        tb.close()
