"""tb_plugin.summary writers: read the event files back, compare with numpy."""

import glob
import json
import math
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import tensorflow as tf

import tb_plugin.summary as health  # noqa: E402
from recorded_events import summary_values  # noqa: E402
from tb_plugin import metadata  # noqa: E402
from tensorboard.backend.event_processing import event_file_loader  # noqa: E402


def read_events(logdir):
    """{tag: [(step, value ndarray, plugin_name, data_class)]} from every event file."""
    out = {}
    for step, tag, arr, plugin_name, data_class in summary_values(logdir):
        out.setdefault(tag, []).append((step, arr, plugin_name, data_class))
    return out


def scalar(events, tag, i=-1):
    return float(events[tag][i][1])


def np_softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.fixture
def writer(tmp_path):
    w = tf.summary.create_file_writer(str(tmp_path))
    yield w
    w.close()


def test_prediction_distribution_multiclass_roundtrip(tmp_path, writer):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(32, 7)).astype(np.float32)
    logits[:8] = 0.0
    y = rng.integers(0, 7, size=32)
    with writer.as_default():
        ok = health.prediction_distribution(
            "predictions", logits, step=3, labels=y, from_logits=True,
            description="train outputs")
    assert bool(ok)
    writer.flush()
    ev = read_events(str(tmp_path))
    p = np_softmax(logits.astype(np.float64))
    ent = -(p * np.log(p)).sum(-1).mean() / math.log(7)
    assert ev["health/predictions/entropy"][0][0] == 3
    np.testing.assert_allclose(scalar(ev, "health/predictions/entropy"), ent, rtol=1e-5)
    ties = ((logits == logits.max(-1, keepdims=True)).sum(-1) > 1).mean()
    np.testing.assert_allclose(scalar(ev, "health/predictions/tie_fraction"), ties)
    np.testing.assert_allclose(
        scalar(ev, "health/predictions/accuracy"), (logits.argmax(-1) == y).mean())
    np.testing.assert_allclose(
        scalar(ev, "health/predictions/tie_tolerant_accuracy"),
        tf.reduce_mean(tf.cast(tf.nn.in_top_k(y, logits, 1), tf.float32)).numpy())
    np.testing.assert_allclose(
        scalar(ev, "health/predictions/zero_logit_fraction"), 8 / 32)
    assert scalar(ev, "health/predictions/count") == 32
    # formats: health plugin / SCALAR; health plugin / TENSOR [bins, 3] float64
    _, val, plugin, dc = ev["health/predictions/entropy"][0]
    assert plugin == "health" and dc == 1 and val.dtype == np.float32 and val.shape == ()
    _, hist, plugin, dc = ev["health/predictions/top1_probability"][0]
    assert plugin == "health" and dc == 2
    assert hist.dtype == np.float64 and hist.shape == (metadata.PROBABILITY_BINS, 3)
    np.testing.assert_array_equal(
        hist[:, 2],
        np.histogram(p.max(-1), bins=metadata.PROBABILITY_BINS, range=(0, 1))[0])
    np.testing.assert_allclose(hist[0, :2], [0, 1 / metadata.PROBABILITY_BINS])
    _, cls, _, _ = ev["health/predictions/predicted_classes"][0]
    np.testing.assert_array_equal(cls[:, 0], np.arange(7))
    np.testing.assert_array_equal(cls[:, 1], np.arange(1, 8))
    np.testing.assert_array_equal(cls[:, 2], np.bincount(logits.argmax(-1), minlength=7))
    _, lab, _, _ = ev["health/predictions/label_classes"][0]
    np.testing.assert_array_equal(lab[:, 2], np.bincount(y, minlength=7))
    _, cp, _, _ = ev["health/predictions/class_probability"][0]
    assert cp[:, 2].sum() == 32 * 7
    # headline numbers, in TensorBoard's scalars plugin (Time Series)
    headline = {t: v for t, v in ev.items() if t.count("/") == 1 and v[0][2] == "scalars"}
    assert sorted(headline) == ["health/accuracy_gap", "health/entropy",
                                "health/output_nonfinite", "health/tie_fraction"]
    for stat in ("entropy", "tie_fraction"):
        assert scalar(ev, "health/" + stat) == scalar(ev, "health/predictions/" + stat)
    np.testing.assert_allclose(
        scalar(ev, "health/accuracy_gap"),
        scalar(ev, "health/predictions/tie_tolerant_accuracy")
        - scalar(ev, "health/predictions/accuracy"), atol=1e-6)
    assert scalar(ev, "health/output_nonfinite") == 0
    # index summary
    _, idx, plugin, dc = ev["health/predictions"][0]
    assert plugin == "health" and dc == 2
    assert metadata.parse_index(idx.item()) == {
        "kind": "predictions", "task": "multiclass", "num_classes": 7,
        "from_logits": True, "has_labels": True}
    # description lands in the metadata
    raw = next(event_file_loader.EventFileLoader(
        glob.glob(str(tmp_path / "events*"))[0]).Load(), None)
    assert raw is not None


def test_prediction_distribution_sums_sample_weights_per_class(tmp_path, writer):
    # [batch, 1] weights, in a tf.function: label_weights holds each class's
    # summed weight; without sample_weight the record has none.
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(40, 3)).astype(np.float32)
    y = rng.integers(0, 3, size=40)
    w = rng.uniform(0.5, 5.0, size=(40, 1)).astype(np.float32)

    @tf.function
    def record(step, weights):
        return health.prediction_distribution("p", logits, step=step, labels=y,
                                              from_logits=True, sample_weight=weights)

    with writer.as_default():
        assert bool(record(tf.constant(0, tf.int64), w))
        assert bool(health.prediction_distribution("q", logits, step=0, labels=y,
                                                   from_logits=True))
    writer.flush()
    ev = read_events(str(tmp_path))
    _, lw, _, _ = ev["health/p/label_weights"][0]
    np.testing.assert_array_equal(lw[:, 0], np.arange(3))
    np.testing.assert_allclose(lw[:, 2], np.bincount(y, weights=w[:, 0], minlength=3),
                               rtol=1e-5)
    assert "health/q/label_weights" not in ev and "health/q/label_classes" in ev


def test_prediction_distribution_binary_and_regression(tmp_path, writer):
    rng = np.random.default_rng(1)
    probs = rng.uniform(size=(20, 1)).astype(np.float32)
    probs[:4] = 0.5
    yb = rng.integers(0, 2, size=(20, 1))
    out = rng.normal(size=(20,)).astype(np.float32) * 0.01
    tgt = rng.normal(size=(20,)).astype(np.float32) * 2
    with writer.as_default():
        health.prediction_distribution("bin", probs, step=1, labels=yb)
        health.prediction_distribution("reg", out, step=1, labels=tgt, task="regression")
    writer.flush()
    ev = read_events(str(tmp_path))
    p = probs[:, 0].astype(np.float64)
    np.testing.assert_allclose(scalar(ev, "health/bin/tie_fraction"), 4 / 20)
    ent = -(p * np.log(p) + (1 - p) * np.log(1 - p))
    np.testing.assert_allclose(scalar(ev, "health/bin/entropy"), ent.mean() / math.log(2), rtol=1e-5)
    np.testing.assert_allclose(
        scalar(ev, "health/bin/accuracy"), ((p > 0.5) == yb[:, 0]).mean())
    assert "health/bin/zero_logit_fraction" not in ev
    idx = metadata.parse_index(ev["health/bin"][0][1].item())
    assert idx["task"] == "binary" and idx["num_classes"] == 1 and idx["from_logits"] is False
    np.testing.assert_allclose(scalar(ev, "health/reg/output_std"), out.std(), rtol=1e-4)
    np.testing.assert_allclose(scalar(ev, "health/reg/target_std"), tgt.std(), rtol=1e-4)
    _, h, plugin, _ = ev["health/reg/outputs"][0]
    assert plugin == "health"
    np.testing.assert_allclose(h[0, 0], out.min(), rtol=1e-6)
    np.testing.assert_allclose(h[-1, 1], out.max(), rtol=1e-6)
    assert h[:, 2].sum() == 20
    assert "health/reg/entropy" not in ev
    idx = metadata.parse_index(ev["health/reg"][0][1].item())
    assert idx == {"kind": "predictions", "task": "regression", "num_classes": 1,
                   "from_logits": None, "has_labels": True}


def test_gradient_magnitudes_roundtrip_in_tf_function(tmp_path, writer):
    """Seed 002: N(0, 1e-3) init, first-layer gradients ~1000x below the last."""
    rng = np.random.default_rng(2)
    v = [tf.Variable(rng.normal(size=(4, 8)).astype(np.float32), name="dense/kernel"),
         tf.Variable(np.zeros(8, np.float32), name="dense/bias"),
         tf.Variable(rng.normal(size=(8, 1)).astype(np.float32), name="out/kernel")]
    g = [rng.normal(size=(4, 8)).astype(np.float32) * 1e-6,
         np.zeros(8, np.float32),
         rng.normal(size=(8, 1)).astype(np.float32) * 1e-3]
    g[0][0, :4] = 0.0
    u = [x * -0.1 for x in g]

    @tf.function
    def record(step):
        return health.gradient_magnitudes("gradients", g, v, step=step, updates=u)

    with writer.as_default():
        for s in range(3):
            assert bool(record(tf.constant(s, tf.int64)))
    writer.flush()
    ev = read_events(str(tmp_path))
    assert [e[0] for e in ev["health/gradients/dense/kernel/norm"]] == [0, 1, 2]
    for path, gi, vi, ui in zip(["dense/kernel", "dense/bias", "out/kernel"], g, v, u):
        t = "health/gradients/%s/" % path
        np.testing.assert_allclose(scalar(ev, t + "norm"), np.linalg.norm(gi), rtol=1e-5)
        np.testing.assert_allclose(scalar(ev, t + "max_abs"), np.abs(gi).max(), rtol=1e-6)
        np.testing.assert_allclose(scalar(ev, t + "zero_fraction"), (gi == 0).mean())
        assert scalar(ev, t + "nonfinite") == 0
        w = vi.numpy()
        np.testing.assert_allclose(scalar(ev, t + "weight_norm"), np.linalg.norm(w), rtol=1e-5)
        if np.linalg.norm(ui) > 0:
            np.testing.assert_allclose(
                scalar(ev, t + "update_ratio"),
                np.linalg.norm(ui) / np.linalg.norm(w - ui), rtol=1e-4)
        _, h, plugin, _ = ev[t + "log10_abs"][-1]
        assert plugin == "health" and h.shape == (metadata.LOG10_BINS, 3)
        np.testing.assert_allclose(h[0, 0], metadata.LOG10_RANGE[0])
        np.testing.assert_allclose(h[-1, 1], metadata.LOG10_RANGE[1])
        assert h[:, 2].sum() == (gi != 0).sum()
    np.testing.assert_allclose(
        scalar(ev, "health/gradients/first_last_ratio"),
        np.linalg.norm(g[0]) / np.linalg.norm(g[2]), rtol=1e-5)
    assert scalar(ev, "health/gradients/first_last_ratio") < 1e-2
    assert scalar(ev, "health/first_last_ratio") == scalar(
        ev, "health/gradients/first_last_ratio")
    assert ev["health/first_last_ratio"][0][2] == "scalars"
    ratios = [scalar(ev, "health/gradients/%s/update_ratio" % p)
              for p in ("dense/kernel", "dense/bias", "out/kernel")]
    assert scalar(ev, "health/max_update_ratio") == np.nanmax(ratios) > 0
    assert scalar(ev, "health/gradient_nonfinite") == 0
    idx = metadata.parse_index(ev["health/gradients"][-1][1].item())
    assert idx == {"kind": "gradients", "variables": [
        {"path": "dense/kernel", "shape": [4, 8]},
        {"path": "dense/bias", "shape": [8]},
        {"path": "out/kernel", "shape": [8, 1]}]}
    assert len(ev["health/gradients"]) == 3  # index with every record


def test_keras_variable_paths_and_none_gradient_warning(tmp_path, writer):
    import keras
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="d1"),
                              keras.layers.Dense(1, name="d2")])
    variables = model.trainable_variables
    grads = [tf.ones_like(tf.convert_to_tensor(x)) for x in variables]
    grads[1] = None
    with writer.as_default(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        health.gradient_magnitudes("grads_w", grads, variables, step=0)
    assert len([w for w in caught if "no gradient" in str(w.message)]) == 1
    writer.flush()
    ev = read_events(str(tmp_path))
    idx = metadata.parse_index(ev["health/grads_w"][0][1].item())
    paths = [x["path"] for x in idx["variables"]]
    assert paths == [variables[0].path, variables[2].path, variables[3].path]
    assert paths[0].endswith("d1/kernel")
    assert "health/grads_w/%s/norm" % variables[1].path not in ev


def test_manifest_and_default_step(tmp_path, writer):
    with writer.as_default():
        health.manifest({"model": "m", "layers": []})
        tf.summary.experimental.set_step(7)
        try:
            health.prediction_distribution("p", tf.random.normal([4, 3]), from_logits=True)
        finally:
            tf.summary.experimental.set_step(None)
    writer.flush()
    ev = read_events(str(tmp_path))
    step, val, plugin, _ = ev["health/manifest"][0]
    assert step == 0 and plugin == "health"
    assert json.loads(val.item()) == {"model": "m", "layers": []}
    assert ev["health/p/entropy"][0][0] == 7
    assert "health/p/accuracy" not in ev  # no labels


def test_record_if_and_no_writer(tmp_path, writer):
    # No default writer: nothing happens, returns False.
    assert not bool(health.prediction_distribution("p", tf.zeros([2, 3]), step=0))
    with writer.as_default():
        with tf.summary.record_if(False):
            assert not bool(health.prediction_distribution("p", tf.zeros([2, 3]), step=1))
            assert not bool(health.gradient_magnitudes(
                "g", [tf.ones([2, 2])], [tf.Variable(tf.ones([2, 2]))], step=1))

        @tf.function
        def f(step):
            with tf.summary.record_if(step % 2 == 0):
                return health.prediction_distribution("p", tf.zeros([2, 3]), step=step)

        for s in range(2, 6):
            f(tf.constant(s, tf.int64))
    writer.flush()
    ev = read_events(str(tmp_path))
    assert [e[0] for e in ev["health/p/entropy"]] == [2, 4]


@pytest.mark.parametrize("call,match", [
    (lambda: health.prediction_distribution("p", tf.zeros([2, 3, 4]), step=0),
     r"shape \(2, 3, 4\)"),
    (lambda: health.prediction_distribution("p", tf.zeros([]), step=0), r"rank 0"),
    (lambda: health.prediction_distribution("p", tf.zeros([4, 3]), step=0,
                                             labels=tf.zeros([5], tf.int32)),
     r"labels.*batch size.*\(4\).*\(5,\)"),
    (lambda: health.prediction_distribution("p", tf.constant([["a"]]), step=0),
     r"outputs.*dtype string"),
    (lambda: health.prediction_distribution("p", tf.zeros([4, 3]), step=0,
                                             labels=tf.constant(["a"] * 4)),
     r"labels.*dtype string"),
    (lambda: health.prediction_distribution("p", tf.zeros([4, 3]), step=0, task="x"),
     r"task"),
    (lambda: health.prediction_distribution("p", tf.zeros([4, 3]), step=0,
                                             labels=tf.zeros([4], tf.int32),
                                             sample_weight=tf.ones([4, 3])),
     r"sample_weight.*\[batch\].*\(4, 3\)"),
    (lambda: health.gradient_magnitudes("g", [tf.ones([2])], [], step=0),
     r"1 gradients and 0 variables"),
    (lambda: health.gradient_magnitudes(
        "g", [tf.ones([3])], [tf.Variable(tf.ones([2]), name="vv")], step=0),
     r"gradients\[0\].*\(3,\).*vv.*\[2\]"),
])
def test_bad_input_raises_value_error(writer, call, match):
    with writer.as_default():
        with pytest.raises(ValueError, match=match):
            call()


def _run_python(code, env=None):
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
        timeout=300, env=env)


def test_import_without_tensorflow():
    code = """
        import sys
        sys.modules["tensorflow"] = None  # import tensorflow -> ImportError
        import tb_plugin, tb_plugin.metadata
        for mod in ["tb_plugin.summary_v2", "tb_plugin.summary_args", "tb_plugin.summary_writes",
                    "tb_plugin.summary", "tb_plugin.callback"]:
            try:
                __import__(mod)
            except ImportError as e:
                assert "pip install tensorflow" in str(e), str(e)
            else:
                raise AssertionError(mod + " imported without TF")
        print("OK")
    """
    r = _run_python(code)
    assert r.returncode == 0 and "OK" in r.stdout, r.stderr[-3000:]


def test_mirrored_strategy_writes_one_copy_of_aggregated_stats(tmp_path):
    code = """
        import glob, json, numpy as np, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        import tb_plugin.summary as health
        from tensorboard.backend.event_processing import event_file_loader
        from tensorboard.util import tensor_util
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        logdir = %r
        with strategy.scope():
            v = tf.Variable(tf.ones([2, 2]), name="k")
        writer = tf.summary.create_file_writer(logdir)
        # replica i gets gradient (i+1) * ones and logits row block i
        logits = np.random.default_rng(0).normal(size=(8, 3)).astype(np.float32)
        labels = np.arange(8) %% 3
        @tf.function
        def step_fn():
            ctx = tf.distribute.get_replica_context()
            r = tf.cast(ctx.replica_id_in_sync_group, tf.float32)
            g = tf.ones([2, 2]) * (r + 1.0)
            rid = ctx.replica_id_in_sync_group
            lg = tf.gather(tf.constant(logits), tf.range(4) + 4 * rid)
            lb = tf.gather(tf.constant(labels), tf.range(4) + 4 * rid)
            with writer.as_default():
                health.gradient_magnitudes("gradients", [g], [v], step=5)
                health.prediction_distribution("predictions", lg, step=5, labels=lb,
                                               from_logits=True)
                health.prediction_distribution("reg", lg[:, 0] + r * 10.0, step=5,
                                               task="regression")
        strategy.run(step_fn)
        writer.flush()
        out = {}
        for f in glob.glob(logdir + "/events*"):
            for e in event_file_loader.EventFileLoader(f).Load():
                for val in e.summary.value:
                    out.setdefault(val.tag, []).append(
                        tensor_util.make_ndarray(val.tensor).tolist())
        print("RESULT" + json.dumps(out, default=lambda b: b.decode()))
    """ % str(tmp_path)
    r = _run_python(code)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.split("RESULT", 1)[1])
    # One copy per family (headline numbers: one per call, and two calls
    # write prediction families here).
    headline = {metadata.headline_tag(s) for s in metadata.HEADLINE_STATS}
    counts = {k: len(v) for k, v in out.items()}
    assert all(n == 1 for k, n in counts.items() if k not in headline), counts
    assert counts["health/output_nonfinite"] == 2 and counts["health/entropy"] == 1
    # aggregated gradient = (1 + 2) * ones([2, 2]) -> norm 6
    columns = list(metadata.GRADIENT_VARIABLE_STATS)
    (row,) = out["health/gradients/variable_stats"][0]  # one variable
    np.testing.assert_allclose(row[columns.index(metadata.GRAD_NORM)], 6.0, rtol=1e-6)
    np.testing.assert_allclose(row[columns.index(metadata.GRAD_MAX_ABS)], 3.0)
    logits = np.random.default_rng(0).normal(size=(8, 3)).astype(np.float32)
    labels = np.arange(8) % 3
    assert out["health/predictions/count"][0] == 8
    np.testing.assert_allclose(
        out["health/predictions/accuracy"][0], (logits.argmax(-1) == labels).mean())
    reg = np.concatenate([logits[:4, 0], logits[4:, 0] + 10.0])
    np.testing.assert_allclose(out["health/reg/output_std"][0], reg.std(), rtol=1e-5)
    hist = np.array(out["health/reg/outputs"][0])
    np.testing.assert_allclose([hist[0, 0], hist[-1, 1]], [reg.min(), reg.max()], rtol=1e-6)


def _values(logdir):
    """{tag: (step, serialized Summary.Value)} and the number of events with values."""
    out, events = {}, 0
    for path in sorted(glob.glob(os.path.join(logdir, "events.out.tfevents.*"))):
        for event in event_file_loader.EventFileLoader(path).Load():
            if event.summary.value:
                events += 1
            for v in event.summary.value:
                out[v.tag] = (event.step, v.SerializeToString())
    return out, events


@pytest.mark.parametrize("shape", [[], [0], [7], [40, 3], [4, 54, 3]])
@pytest.mark.parametrize("dtype", [tf.float32, tf.float64, tf.int32])
def test_tensor_header_is_serialize_tensors(shape, dtype):
    """The hand-built TensorProto prefix is what serialize_tensor writes
    before a tensor's raw content."""
    from tb_plugin import summary_writes

    blob = tf.io.serialize_tensor(tf.zeros(shape, dtype)).numpy()
    content = int(np.prod(shape)) * dtype.size
    assert summary_writes.tensor_header(shape, dtype) == blob[:len(blob) - content]


@pytest.mark.parametrize("mode", ["graph", "eager", "numpy"])
def test_one_write_per_record_is_byte_identical_to_tf_summary_write(tmp_path, mode):
    """A record is written by one op, as one event; every value in it is
    byte-for-byte what tf.summary.write would have written."""
    from tb_plugin import summary_writes

    vals = np.array([0.5, -1e-30, np.nan, np.inf, 3.25], np.float32)
    hist = np.random.default_rng(0).random((2, 32, 3))
    tags = ["health/x/%s" % c for c in "abcde"]
    htags = ["health/x/h1", "health/x/h2"]
    md = summary_writes.metadata_bytes
    ref = tf.summary.create_file_writer(str(tmp_path / "ref"))
    with ref.as_default():
        for t, v in zip(tags, vals):
            tf.summary.write(t, tf.constant(v), step=3, metadata=md("scalar", None))
        for t, v in zip(htags, hist):
            tf.summary.write(t, tf.constant(v), step=3, metadata=md("histogram", "d"))
        tf.summary.write("health/x", tf.constant('{"kind": "x"}'), step=3,
                         metadata=md("index", None))
    ref.close()
    writer = tf.summary.create_file_writer(str(tmp_path / mode))

    def record():
        with summary_writes.writer_scope(writer), tf.summary.record_if(True):
            with summary_writes.one_write(tf.constant(3, tf.int64)):
                if mode == "numpy":
                    summary_writes.write_rows(tags, vals, 3, "scalar")
                    summary_writes.write_rows(htags, hist, 3, "histogram", "d")
                else:
                    summary_writes.write_rows(tags, tf.constant(vals), 3, "scalar")
                    summary_writes.write_rows(htags, tf.constant(hist), 3, "histogram", "d")
                summary_writes.write_json("health/x", {"kind": "x"}, 3)
        return True

    (tf.function(record, autograph=False) if mode == "graph" else record)()
    writer.close()
    want, _ = _values(str(tmp_path / "ref"))
    got, events = _values(str(tmp_path / mode))
    assert got == want
    assert events == 1


def test_gradient_record_is_one_event_with_a_few_ops_per_variable(tmp_path):
    """A gradient record: one event, and a fixed few ops per variable."""
    writer = tf.summary.create_file_writer(str(tmp_path))

    def ops_for(n):
        variables = [tf.Variable(tf.ones([3, 2]) * (i + 1), name="v%d" % i) for i in range(n)]

        @tf.function(autograph=False)
        def record(step):
            with writer.as_default():
                grads = [tf.ones([3, 2]) * 1e-3 for _ in variables]
                return health.gradient_magnitudes("g", grads, variables, step=step)

        graph = record.get_concrete_function(tf.TensorSpec([], tf.int64)).graph
        record(tf.constant(1, tf.int64))
        return len(graph.as_graph_def().node) + sum(
            len(f.node_def) for f in graph.as_graph_def().library.function)

    small, large = ops_for(2), ops_for(20)
    # Per variable: the test's gradient (2 ops), its capture, a read, two
    # reshapes, the gradient and weight norms (L2Loss, no temporaries), and
    # |g|, its bits, their max and their histogram.
    assert large - small <= 18 * 15, (small, large)
    writer.close()
    _, events = _values(str(tmp_path))
    assert events == 2  # one event per record


def test_readme_custom_loop_snippet_runs(tmp_path, monkeypatch):
    """The README's custom-training-loop example, run as written (with a
    model, loss and optimizer of our own), records both families."""
    import re

    readme = open(os.path.join(os.path.dirname(os.path.dirname(__file__)), "README.md")).read()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    (snippet,) = [b for b in blocks if "import tb_plugin.summary as health" in b]
    monkeypatch.chdir(tmp_path)
    import keras

    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(3)])
    namespace = {
        "model": model,
        "loss_fn": keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        "optimizer": keras.optimizers.Adam(1e-2),
    }
    exec(compile(snippet, "README.md", "exec"), namespace)
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(16, 6)).astype(np.float32))
    y = tf.constant(rng.integers(0, 3, size=16))
    for step in range(3):
        namespace["train_step"](x, y, tf.constant(step, tf.int64))
    namespace["writer"].close()
    ev, _ = _values(str(tmp_path / "logs" / "custom" / "train"))
    assert ev["health/predictions/entropy"][0] == 0  # steps 0 only (every 50th)
    kernel = model.layers[0].kernel.path
    per_variable = read_events(str(tmp_path / "logs" / "custom" / "train"))
    assert [step for step, *_ in per_variable["health/gradients/%s/norm" % kernel]] == [0]
