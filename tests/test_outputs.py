"""Outputs beyond one classifier/regressor head: multi-output regression
judged per output dimension, multi-label sigmoid outputs, models with
several outputs (one prediction family per output), and what cannot be
recorded reported as `not_covered` instead of a healthy run."""

import warnings

import numpy as np
import pytest

import tensorflow as tf
import keras  # noqa: E402

from tb_plugin import diagnosis  # noqa: E402
from tb_plugin import metadata  # noqa: E402
from tb_plugin import reader  # noqa: E402
from tb_plugin import stats  # noqa: E402
from tb_plugin import summary_args  # noqa: E402
from tb_plugin import summary_v2  # noqa: E402
from tb_plugin.callback import HealthCallback  # noqa: E402


def _fit(model, x, y, log_dir, epochs=4, batch_size=32, validation_split=0.0, **cb):
    """Fits with a HealthCallback (default settings unless given); returns
    the callback's warnings."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0, shuffle=False,
                  validation_split=validation_split,
                  callbacks=[HealthCallback(str(log_dir), **cb)])
    return [str(w.message) for w in caught if "HealthCallback" in str(w.message)]


def _diagnose(log_dir):
    """{run: (RunRecords, [Finding])}."""
    provider, eid = reader.open_logdir(str(log_dir))
    out = {}
    for run in reader.health_runs(provider, None, eid):
        records = reader.read_run(provider, None, eid, run)
        out[run] = (records, diagnosis.diagnose(records))
    return out


def _problems(findings):
    return [f for f in findings if f.severity != diagnosis.SEVERITY_INFO]


# ---------------------------------------------------------------------------
# Statistics


def test_regression_per_dimension_sums_match_numpy():
    rng = np.random.default_rng(3)
    out = (rng.normal(size=(40, 3)) * [1e-5, 1.0, 0.3] + [0.0, 5.0, -5.0]).astype(np.float32)
    tgt = (rng.normal(size=(40, 3)) * [2.0, 1.0, 0.5]).astype(np.float32)
    tgt[:, 2] = 7.0  # a constant target dimension: left out
    sums = stats.regression_sums(out, tgt, *stats.finite_range(out))
    scalars, _ = stats.finalize_prediction_sums(sums, metadata.TASK_REGRESSION, 1)
    ratio = out.astype(np.float64).std(0)[:2] / tgt.astype(np.float64).std(0)[:2]
    np.testing.assert_allclose(float(scalars["output_std_ratio_max"]), ratio.max(), rtol=1e-4)
    np.testing.assert_allclose(float(scalars["output_std_ratio_min"]), ratio.min(), rtol=1e-3)
    # The flattened ratio hides the constant dimension (the means differ).
    assert float(scalars["output_std"]) / float(scalars["target_std"]) > 1
    # numpy finalize: bit-identical; spec and packing agree.
    np_sums = {k: np.asarray(v) for k, v in sums.items()}
    got, _ = stats.finalize_prediction_sums(np_sums, metadata.TASK_REGRESSION, 1,
                                            backend="numpy")
    for key in scalars:
        assert (np.asarray(scalars[key], np.float32).tobytes()
                == np.asarray(got[key], np.float32).tobytes()), key
    spec = stats.prediction_sums_spec(metadata.TASK_REGRESSION, 1, True, False, output_dims=3)
    assert {k for k, _, _ in spec} == set(sums)
    back = stats.unpack_sums(stats.pack_sums(sums, spec).numpy(), spec)
    for key in sums:
        np.testing.assert_array_equal(back[key], sums[key].numpy())
    # One output dimension, or no targets: flattened statistics only.
    one = stats.regression_sums(out[:, :1], tgt[:, :1])
    assert stats.S_OUT_DIM_SUM not in one and stats.S_OUT_DIM_SUM not in (
        stats.regression_sums(out))
    assert summary_v2.index_extra("regression", (None, 3), (None, 3)) == {"output_dims": 3}


def test_multilabel_binary_sums_match_numpy():
    rng = np.random.default_rng(4)
    logits = rng.normal(size=(24, 5)).astype(np.float32)
    logits[0, :2] = 0.0  # two ties
    y = (rng.uniform(size=(24, 5)) > 0.7).astype(np.float32)
    sums, task, k = summary_v2.prediction_sums(logits, y, True, "binary")
    scalars, hists = stats.finalize_prediction_sums(sums, task, k)
    p = 1 / (1 + np.exp(-logits.astype(np.float64)))
    ent = -(p * np.log(p) + (1 - p) * np.log(1 - p))
    np.testing.assert_allclose(float(scalars["entropy"]), ent.mean() / np.log(2), rtol=1e-5)
    assert float(scalars["count"]) == 24  # rows, not labels
    np.testing.assert_allclose(float(scalars["accuracy"]), ((p > 0.5) == y).mean())
    np.testing.assert_allclose(float(scalars["tie_fraction"]), 2 / 120)
    np.testing.assert_array_equal(hists["label_classes"],
                                  np.bincount(y.astype(int).ravel(), minlength=2))
    assert summary_v2.index_extra("binary", (None, 5)) == {"labels": 5}
    with pytest.raises(ValueError, match="5 values per row"):
        summary_args.check_outputs(tf.constant(logits), tf.constant(y[:, :2]), "binary")


# ---------------------------------------------------------------------------
# 8. Multi-output regression: judged per output dimension


def _regression_data(n=512, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8)).astype(np.float32)
    w = rng.normal(size=(8, 3)).astype(np.float32) / np.sqrt(8)
    # Outputs of different means: the flattened spread of a constant net is
    # the spread of the learned biases.
    y = (x @ w + np.array([0.0, 0.4, -0.4], np.float32)).astype(np.float32)
    return x, y


def _regression_model(init, seed=0):
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((8,))]
    for i in range(2):
        layers.append(keras.layers.Dense(32, activation="tanh", name="hidden%d" % i,
                                          kernel_initializer=init))
    layers.append(keras.layers.Dense(3, name="out", kernel_initializer=init))
    model = keras.Sequential(layers, name="reg3")
    model.compile(keras.optimizers.SGD(0.05), "mse")
    return model


def test_multi_output_regression_collapse_is_judged_per_dimension(tmp_path):
    x, y = _regression_data()
    tiny = keras.initializers.RandomNormal(0.0, 1e-3, seed=1)
    _fit(_regression_model(tiny), x, y, tmp_path / "collapsed")
    _fit(_regression_model("glorot_uniform"), x, y, tmp_path / "healthy")

    records, findings = _diagnose(tmp_path / "collapsed")["train"]
    pred = records.predictions["predictions"]
    assert pred.index.get("output_dims") == 3
    r_max = pred.scalars["output_std_ratio_max"].values
    flat = pred.scalars["output_std"].values / pred.scalars["target_std"].values
    assert np.all(r_max[len(r_max) // 3:] < 1e-3)
    # The flattened ratio, all that older records hold, is above the threshold.
    assert np.median(flat) > diagnosis.Thresholds().collapse_std_ratio
    (f,) = [f for f in findings if f.kind == "prediction_collapse"]
    assert f.severity == "error" and f.evidence["output_dims"] == 3
    assert f.evidence["std_ratio_max"] < 0.01 and "Every one of the 3 outputs" in f.message

    records, findings = _diagnose(tmp_path / "healthy")["train"]
    assert np.median(records.predictions["predictions"].scalars[
        "output_std_ratio_max"].values) > 0.1
    assert not [f for f in findings if f.kind == "prediction_collapse"]


def test_one_constant_output_dimension_is_a_warning():
    steps = np.arange(40) * 10
    series = lambda v: reader.Series(steps, np.full(40, v, np.float64))  # noqa: E731
    pred = reader.PredictionRecords(
        name="predictions", task="regression", num_classes=1, from_logits=None,
        has_labels=True, histograms={}, index={"output_dims": 4},
        scalars={"output_std": series(1.0), "target_std": series(1.0),
                 "output_std_ratio_max": series(0.9), "output_std_ratio_min": series(1e-4),
                 "count": series(64)})
    run = reader.RunRecords(run="r", manifest=None, predictions={"predictions": pred},
                            gradients={})
    (f,) = diagnosis.diagnose(run)
    assert f.kind == "prediction_collapse" and f.severity == "warning"
    assert "At least one of the 4 outputs" in f.message


# ---------------------------------------------------------------------------
# 9. Multi-label outputs and models with several outputs


def _multilabel_data(n=512, k=5, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 10)).astype(np.float32)
    w = rng.normal(size=(10, k)).astype(np.float32)
    return x, (x @ w > 0).astype(np.float32)


def _multilabel_model(relu_logits=False, seed=0):
    keras.utils.set_random_seed(seed)
    if relu_logits:  # ReLU on the logits, negative bias: every logit 0
        out = keras.layers.Dense(5, activation="relu", name="out",
                                 bias_initializer=keras.initializers.Constant(-3.0))
    else:
        out = keras.layers.Dense(5, name="out")
    model = keras.Sequential([keras.Input((10,)), keras.layers.Dense(32, activation="tanh",
                                                                     name="hidden"), out],
                             name="multilabel")
    model.compile(keras.optimizers.Adam(1e-2), keras.losses.BinaryCrossentropy(from_logits=True))
    return model


def test_multilabel_sigmoid_outputs_are_recorded(tmp_path):
    x, y = _multilabel_data()
    msgs = _fit(_multilabel_model(), x, y, tmp_path / "healthy", validation_split=0.2)
    assert msgs == []
    diagnosed = _diagnose(tmp_path / "healthy")
    for run in ("train", "validation"):
        records, findings = diagnosed[run]
        pred = records.predictions["predictions"]
        assert pred.task == "binary" and pred.from_logits is True
        assert pred.index.get("labels") == 5 and pred.has_labels
        assert pred.histograms["label_classes"].counts.shape[1] == 2
        assert _problems(findings) == [], [f.message for f in findings]
    acc = diagnosed["train"][0].predictions["predictions"].scalars["accuracy"].values
    assert acc[-1] > 0.85
    # Counts are rows; the label counts sum every label of every row.
    count = diagnosed["train"][0].predictions["predictions"].scalars["count"].values
    assert count[0] == 32
    assert diagnosed["train"][0].predictions["predictions"].histograms[
        "label_classes"].counts[0].sum() == 32 * 5

    _fit(_multilabel_model(relu_logits=True), x, y, tmp_path / "relu")
    records, findings = _diagnose(tmp_path / "relu")["train"]
    z = records.predictions["predictions"].scalars["zero_logit_fraction"].values
    assert np.all(z == 1.0)
    kinds = {f.kind for f in findings}
    assert {"prediction_collapse", "tied_predictions"} <= kinds, kinds


def _two_head_model(seed=0, aux=None):
    keras.utils.set_random_seed(seed)
    inp = keras.Input((8,), name="x")
    h = keras.layers.Dense(32, activation="tanh", name="shared")(inp)
    outputs = {"cls": keras.layers.Dense(3, name="cls")(h),
               "reg": keras.layers.Dense(1, name="reg")(h)}
    losses = {"cls": keras.losses.SparseCategoricalCrossentropy(from_logits=True),
              "reg": "mse"}
    if aux == "custom":  # a loss whose task is unknown
        outputs["aux"] = keras.layers.Dense(2, name="aux")(h)
        losses["aux"] = lambda yt, yp: tf.reduce_mean(tf.square(yt - yp))
    elif aux == "sequence":  # per-position softmax [batch, 2, 3]
        outputs["aux"] = keras.layers.Reshape((2, 3), name="aux")(
            keras.layers.Dense(6, name="aux_logits")(h))
        losses["aux"] = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model = keras.Model(inp, outputs, name="two_heads")
    model.compile(keras.optimizers.Adam(1e-2), loss=losses)
    return model


def _two_head_data(n=512, seed=0, aux=None):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8)).astype(np.float32)
    wc = rng.normal(size=(8, 3)).astype(np.float32)
    wr = rng.normal(size=(8, 1)).astype(np.float32) / np.sqrt(8)
    y = {"cls": np.argmax(x @ wc, axis=1).astype(np.int32), "reg": (x @ wr).astype(np.float32)}
    if aux == "custom":
        y["aux"] = x[:, :2].copy()
    elif aux == "sequence":
        y["aux"] = rng.integers(0, 3, size=(n, 2)).astype(np.int32)
    return x, y


def test_two_head_model_records_each_head(tmp_path):
    x, y = _two_head_data()
    msgs = _fit(_two_head_model(), x, y, tmp_path, validation_split=0.2)
    assert msgs == []
    diagnosed = _diagnose(tmp_path)
    for run in ("train", "validation"):
        records, findings = diagnosed[run]
        assert set(records.predictions) == {"predictions/cls", "predictions/reg"}
        cls, reg = records.predictions["predictions/cls"], records.predictions["predictions/reg"]
        assert (cls.task, cls.num_classes, cls.from_logits) == ("multiclass", 3, True)
        assert reg.task == "regression" and "output_std" in reg.scalars
        assert _problems(findings) == [], [f.message for f in findings]
    records = diagnosed["train"][0]
    assert records.predictions["predictions/cls"].scalars["accuracy"].values[-1] > 0.8
    assert records.manifest[metadata.MANIFEST_RECORDED] == ["predictions/cls",
                                                           "predictions/reg"]
    assert records.manifest[metadata.MANIFEST_NOT_RECORDED] == []


@pytest.mark.parametrize("aux", ["custom", "sequence"])
def test_outputs_not_recorded_are_not_covered(tmp_path, aux):
    x, y = _two_head_data(aux=aux)
    msgs = _fit(_two_head_model(aux=aux), x, y, tmp_path, epochs=2)
    # One warning at train begin names the output and what is still covered.
    (msg,) = msgs
    assert "'aux'" in msg and "predictions/cls" in msg and "gradients" in msg
    assert ("cannot infer the task" if aux == "custom" else "got shape (None, 2, 3)") in msg
    records, findings = _diagnose(tmp_path)["train"]
    assert set(records.predictions) == {"predictions/cls", "predictions/reg"}
    (f,) = [f for f in findings if f.kind == "not_covered"]
    assert f.severity == "warning" and f.layer == "aux"
    assert f.evidence["not_recorded"][0]["output"] == "aux"
    assert "'predictions/cls'" in f.message
    assert diagnosis.run_status(records, findings) == diagnosis.STATUS_UNHEALTHY
    # Known before the first step: the manifest alone shows it.
    assert [f.kind for f in diagnosis.diagnose_manifest(records.manifest)] == ["not_covered"]


def test_single_output_with_unknown_loss_is_not_covered(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(128, 4)).astype(np.float32)
    y = rng.normal(size=(128, 1)).astype(np.float32)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, name="out")])
    model.compile("sgd", lambda yt, yp: tf.reduce_mean(tf.square(yt - yp)))
    (msg,) = _fit(model, x, y, tmp_path, epochs=1)
    assert "cannot infer the task" in msg and "the gradients" in msg
    records, findings = _diagnose(tmp_path)["train"]
    assert records.predictions == {}
    assert [f.kind for f in _problems(findings)] == ["not_covered"]
    # Opting out of prediction records is not a gap.
    _fit(model, x, y, tmp_path / "off", epochs=1, record_predictions=False)
    assert _problems(_diagnose(tmp_path / "off")["train"][1]) == []


class _DictOutputs(keras.Model):
    """A subclassed model: its outputs are only known when the step is traced."""

    def __init__(self):
        super().__init__(name="dict_outputs")
        self.shared = keras.layers.Dense(16, activation="tanh")
        self.a = keras.layers.Dense(1)
        self.seq = keras.layers.Dense(6)

    def call(self, x):
        h = self.shared(x)
        return {"a": self.a(h), "seq": tf.reshape(self.seq(h), [-1, 2, 3])}


def test_outputs_dropped_when_traced_are_not_covered(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(128, 4)).astype(np.float32)
    y = {"a": rng.normal(size=(128, 1)).astype(np.float32),
         "seq": rng.integers(0, 3, size=(128, 2)).astype(np.int32)}
    keras.utils.set_random_seed(0)
    model = _DictOutputs()
    model.compile("sgd", loss={"a": "mse",
                               "seq": keras.losses.SparseCategoricalCrossentropy(
                                   from_logits=True)})
    msgs = _fit(model, x, y, tmp_path, epochs=2)
    assert any("'seq'" in m for m in msgs), msgs
    records, findings = _diagnose(tmp_path)["train"]
    assert set(records.predictions) == {"predictions/a"}
    assert records.manifest[metadata.MANIFEST_RECORDED] == ["predictions/a"]
    (f,) = [f for f in findings if f.kind == "not_covered"]
    assert f.layer == "seq"
