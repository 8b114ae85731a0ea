"""tb_plugin.reader: reads back what the real summary writers wrote, every
point, in four provider calls per run, and survives odd runs."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tensorflow as tf

from tb_plugin import metadata  # noqa: E402
from tb_plugin import reader  # noqa: E402
import tb_plugin.summary as health  # noqa: E402

N_RECORDS = 120  # more than the 10 tensors the loaders keep for unknown plugins
MANIFEST = {
    "model": "m",
    "layers": [
        {"name": "dense", "class": "Dense", "activation": "relu", "kernel_initializer": None,
         "bias_initializer": None, "params": 15, "trainable_params": 15},
        {"name": "logits", "class": "Dense", "activation": None, "kernel_initializer": None,
         "bias_initializer": None, "params": 8, "trainable_params": 8},
    ],
    "output_layer": "logits",
    "loss": {"class": "SparseCategoricalCrossentropy", "name": "scce", "from_logits": True},
    "optimizer": {"class": "SGD", "learning_rate": 0.1},
    "versions": {"tensorflow": tf.__version__, "keras": "x", "tb_plugin": "0.1.0"},
}


def _variables():
    return [
        tf.Variable(tf.ones([4, 3]), name="kernel0"),
        tf.Variable(tf.zeros([3]), name="bias0"),
        tf.Variable(tf.ones([3, 2]), name="kernel1"),
    ]


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("reader_logs")
    rng = np.random.default_rng(0)
    variables = _variables()
    train = tf.summary.create_file_writer(str(root / "exp1" / "train"))
    with train.as_default():
        health.manifest(MANIFEST, step=0)
        for i in range(N_RECORDS):
            step = 10 * i
            logits = rng.normal(size=(16, 3)).astype("float32")
            if i == 7:
                logits[0, 0] = np.nan
            labels = rng.integers(0, 3, size=16)
            health.prediction_distribution(
                "predictions", logits, step=step, labels=labels, from_logits=True)
            grads = [tf.fill([4, 3], 1e-3 * (i + 1)), tf.zeros([3]), tf.fill([3, 2], 1.0)]
            health.gradient_magnitudes("gradients", grads, variables, step=step)
    train.close()
    val = tf.summary.create_file_writer(str(root / "exp1" / "validation"))
    with val.as_default():
        for i in range(5):
            outputs = rng.normal(scale=i + 1, size=(32, 1)).astype("float32")
            health.prediction_distribution(
                "predictions", outputs, step=100 * i, labels=outputs * 2, task="regression")
    val.close()
    # A run without health records: TensorBoard shows it, the reader skips it.
    other = tf.summary.create_file_writer(str(root / "other"))
    with other.as_default():
        tf.summary.scalar("loss", 1.0, step=0)
    other.close()
    return root


@pytest.fixture(scope="module")
def provider(logdir):
    return reader.open_logdir(str(logdir))


def test_health_runs_lists_only_runs_with_health_records(provider):
    prov, eid = provider
    assert reader.health_runs(prov, None, eid) == ["exp1/train", "exp1/validation"]


def test_read_run_returns_every_point_of_predictions(provider):
    prov, eid = provider
    run = reader.read_run(prov, None, eid, "exp1/train")
    assert run.run == "exp1/train"
    assert run.manifest == MANIFEST
    pred = run.predictions["predictions"]
    assert (pred.task, pred.num_classes, pred.from_logits, pred.has_labels) == (
        "multiclass", 3, True, True)
    expected_steps = np.arange(N_RECORDS) * 10
    for stat in ("entropy", "tie_fraction", "zero_logit_fraction", "accuracy",
                 "tie_tolerant_accuracy", "count", "nonfinite"):
        s = pred.scalars[stat]
        assert s.steps.dtype == np.int64 and s.values.dtype == np.float64
        np.testing.assert_array_equal(s.steps, expected_steps)
    assert pred.scalars["nonfinite"].values[7] == 1
    assert pred.scalars["count"].values[0] == 16
    assert np.all(pred.scalars["entropy"].values[np.arange(N_RECORDS) != 7] > 0)
    h = pred.histograms["top1_probability"]
    np.testing.assert_array_equal(h.steps, expected_steps)
    assert h.counts.shape == (N_RECORDS, metadata.PROBABILITY_BINS)
    assert h.edges.shape == (metadata.PROBABILITY_BINS + 1,)
    assert h.edges[0] == 0.0 and h.edges[-1] == 1.0 and h.step_edges is None
    pc = pred.histograms["predicted_classes"]
    assert pc.counts.shape == (N_RECORDS, 3)
    np.testing.assert_array_equal(pc.edges, [0, 1, 2, 3])
    # Every finite row is counted once in the predicted-class histogram.
    np.testing.assert_array_equal(pc.counts.sum(axis=1)[:3], [16, 16, 16])


def test_read_run_returns_gradients_in_depth_order(provider):
    prov, eid = provider
    grad = reader.read_run(prov, None, eid, "exp1/train").gradients["gradients"]
    assert grad.variables == ["kernel0", "bias0", "kernel1"]
    assert grad.shapes == {"kernel0": [4, 3], "bias0": [3], "kernel1": [3, 2]}
    norm = grad.stats["norm"]["kernel0"]
    assert len(norm) == N_RECORDS
    np.testing.assert_allclose(norm.values, 1e-3 * (np.arange(N_RECORDS) + 1) * np.sqrt(12),
                               rtol=1e-5)
    np.testing.assert_array_equal(grad.stats["zero_fraction"]["bias0"].values, 1.0)
    np.testing.assert_allclose(grad.stats["weight_norm"]["kernel1"].values, np.sqrt(6),
                               rtol=1e-6)
    assert "update_ratio" not in grad.stats  # not passed to the writer
    flr = grad.scalars["first_last_ratio"]
    np.testing.assert_allclose(flr.values, norm.values / np.sqrt(6), rtol=1e-5)
    h = grad.log10_histograms["kernel0"]
    assert h.counts.shape == (N_RECORDS, metadata.LOG10_BINS)
    assert (h.edges[0], h.edges[-1]) == metadata.LOG10_RANGE
    assert h.counts[0].sum() == 12
    # Exact zeros are not in the log10 histogram (zero_fraction counts them).
    assert grad.log10_histograms["bias0"].counts.sum() == 0


def test_regression_histograms_with_moving_range_keep_per_step_edges(provider):
    prov, eid = provider
    run = reader.read_run(prov, None, eid, "exp1/validation")
    assert run.manifest is None and not run.gradients
    pred = run.predictions["predictions"]
    assert pred.task == "regression" and pred.from_logits is None
    np.testing.assert_array_equal(pred.scalars["output_std"].steps, [0, 100, 200, 300, 400])
    ratio = pred.scalars["target_std"].values / pred.scalars["output_std"].values
    np.testing.assert_allclose(ratio, 2.0, rtol=1e-4)
    h = pred.histograms["outputs"]
    assert h.step_edges is not None and h.step_edges.shape == (5, metadata.PROBABILITY_BINS + 1)
    np.testing.assert_array_equal(h.edges, h.step_edges[-1])


class _CountingProvider:
    def __init__(self, inner):
        self.inner = inner
        self.calls = []

    def __getattr__(self, name):
        attr = getattr(self.inner, name)
        if not callable(attr):
            return attr

        def wrapped(*args, **kwargs):
            self.calls.append((name, kwargs))
            return attr(*args, **kwargs)

        return wrapped


def test_read_run_makes_four_filtered_provider_calls(provider):
    prov, eid = provider
    counting = _CountingProvider(prov)
    reader.read_run(counting, None, eid, "exp1/train")
    names = [c[0] for c in counting.calls]
    assert names == ["list_tensors", "read_tensors", "read_scalars", "read_tensors"]
    for name, kwargs in counting.calls:
        assert kwargs["run_tag_filter"].runs == frozenset(["exp1/train"])
        assert kwargs["plugin_name"] == metadata.PLUGIN_NAME
    index_read = counting.calls[1][1]
    assert index_read["downsample"] == reader.INDEX_POINTS
    assert index_read["run_tag_filter"].tags == {
        metadata.MANIFEST_TAG, "health/predictions", "health/gradients"}
    assert all(k["downsample"] >= 10**6 for _, k in counting.calls[2:])
    scalars_call = next(k for n, k in counting.calls if n == "read_scalars")
    tags = scalars_call["run_tag_filter"].tags
    assert tags and all(t.startswith("health/") for t in tags)
    # A gradient record's per-variable series are one tensor, not a tag each.
    assert not any(t.startswith("health/gradients/kernel0/") for t in tags)
    assert "health/gradients/variable_stats" in counting.calls[3][1]["run_tag_filter"].tags


def test_read_run_filters_ask_only_for_what_is_wanted(provider):
    prov, eid = provider
    full = reader.read_run(prov, None, eid, "exp1/train")
    counting = _CountingProvider(prov)
    part = reader.read_run(counting, None, eid, "exp1/train", names=["gradients"],
                           variables=["bias0"], include_manifest=False,
                           include_scalars=False)
    assert [(n, k["plugin_name"], k["run_tag_filter"].tags) for n, k in counting.calls] == [
        ("list_tensors", metadata.PLUGIN_NAME,
         {"health/gradients", "health/gradients/variable_stats", "health/gradients/log10_abs"}),
        ("read_tensors", metadata.PLUGIN_NAME, {"health/gradients"}),
        ("read_tensors", metadata.PLUGIN_NAME, {"health/gradients/log10_abs"}),
    ]
    assert part.manifest is None and not part.predictions
    grad = part.gradients["gradients"]
    assert grad.variables == ["bias0"] and grad.shapes == {"bias0": [3]}
    assert grad.stats == {} and grad.scalars == {} and list(grad.log10_histograms) == ["bias0"]
    np.testing.assert_array_equal(grad.log10_histograms["bias0"].counts,
                                  full.gradients["gradients"].log10_histograms["bias0"].counts)

    counting.calls.clear()
    manifest_only = reader.read_run(counting, None, eid, "exp1/train", names=[])
    assert [k["run_tag_filter"].tags for _, k in counting.calls] == [{metadata.MANIFEST_TAG}] * 2
    assert manifest_only.manifest == MANIFEST and not manifest_only.has_data


def test_read_run_histograms_filter(provider):
    prov, eid = provider
    full = reader.read_run(prov, None, eid, "exp1/train")
    counting = _CountingProvider(prov)
    part = reader.read_run(counting, None, eid, "exp1/train",
                           histograms=[metadata.PRED_PREDICTED_CLASSES])
    hist_tags = counting.calls[-1][1]["run_tag_filter"].tags
    assert hist_tags == {metadata.stat_tag("predictions", metadata.PRED_PREDICTED_CLASSES),
                         "health/gradients/variable_stats"}
    assert list(part.predictions["predictions"].histograms) == [metadata.PRED_PREDICTED_CLASSES]
    assert part.gradients["gradients"].log10_histograms == {}
    assert part.predictions["predictions"].scalars.keys() == \
        full.predictions["predictions"].scalars.keys()

    counting.calls.clear()
    reader.read_run(counting, None, eid, "exp1/train", histograms=[metadata.GRAD_LOG10_HIST])
    hist_tags = counting.calls[-1][1]["run_tag_filter"].tags
    assert hist_tags == {"health/gradients/log10_abs", "health/gradients/variable_stats"}


def test_gradient_matrix_aligns_every_variable_on_common_steps(provider):
    prov, eid = provider
    grad = reader.read_run(prov, None, eid, "exp1/train").gradients["gradients"]
    np.testing.assert_array_equal(grad.steps, np.arange(N_RECORDS) * 10)
    m = grad.matrix("norm")
    assert m.values.shape == m.present.shape == (3, N_RECORDS) and m.present.all()
    for i, path in enumerate(grad.variables):
        np.testing.assert_array_equal(m.values[i], grad.stats["norm"][path].values)
    empty = grad.matrix("update_ratio")  # not recorded
    assert not empty.present.any() and np.isnan(empty.values).all()

    s = reader.Series(np.array([0, 5, 5, 9]), np.array([1.0, 2.0, 3.0, 4.0]))
    g = reader.GradientRecords(name="g", variables=["a", "b"], shapes={},
                               stats={"norm": {"a": s}}, log10_histograms={}, scalars={})
    np.testing.assert_array_equal(g.steps, [0, 5, 9])
    np.testing.assert_array_equal(g.matrix("norm").values[0], [1.0, 3.0, 4.0])  # last wins
    assert g.matrix("norm").present.tolist() == [[True] * 3, [False] * 3]


def test_odd_runs_do_not_break_the_others(tmp_path):
    good = tf.summary.create_file_writer(str(tmp_path / "good"))
    with good.as_default():
        for step in range(3):
            health.prediction_distribution(
                "predictions", tf.constant([[1.0, 2.0]]), step=step, from_logits=True)
    good.close()
    # A health index that is not JSON.
    bad = tf.summary.create_file_writer(str(tmp_path / "badjson"))
    with bad.as_default():
        tf.summary.write("health/predictions", tf.constant("{not json"), step=0,
                         metadata=metadata.create_index_metadata())
    bad.close()
    # An event file full of garbage.
    os.makedirs(tmp_path / "garbage")
    with open(tmp_path / "garbage" / "events.out.tfevents.1.garbage", "wb") as f:
        f.write(os.urandom(4096))

    prov, eid = reader.open_logdir(str(tmp_path))
    runs = reader.health_runs(prov, None, eid)
    assert "good" in runs and "badjson" in runs
    odd = reader.read_run(prov, None, eid, "badjson")
    assert not odd.has_data and odd.warnings
    good_run = reader.read_run(prov, None, eid, "good")
    assert len(good_run.predictions["predictions"].scalars["entropy"]) == 3

    from tb_plugin import diagnosis

    result = diagnosis.check_logdir(str(tmp_path))
    statuses = {r["run"]: r["status"] for r in result["runs"]}
    assert statuses["badjson"] == "no_data"
    assert statuses["good"] == "healthy"


def test_open_logdir_rejects_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError):
        reader.open_logdir(str(tmp_path / "nope"))


def test_reader_and_diagnosis_import_without_tensorflow(logdir):
    code = textwrap.dedent("""
        import sys
        sys.modules["tensorflow"] = None  # any `import tensorflow` now fails
        from tb_plugin import reader, diagnosis, cli
        result = diagnosis.check_logdir(sys.argv[1])
        print(sorted(r["run"] for r in result["runs"]))
    """)
    out = subprocess.run([sys.executable, "-c", code, str(logdir)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(["exp1/train", "exp1/validation"])


def test_compact_gradient_records_that_do_not_fit_the_index_are_left_out(tmp_path):
    """A gradient record's per-variable tensors hold one row per variable of
    the family's index: a record with another row count, or tensors whose
    metadata does not say their columns or bins, are left out with a
    warning naming the tag and steps; the good records are read."""
    variables = _variables()
    grads = [tf.fill([4, 3], 1e-3), tf.zeros([3]), tf.fill([3, 2], 1.0)]
    writer = tf.summary.create_file_writer(str(tmp_path / "run"))
    with writer.as_default():
        for step in range(3):
            health.gradient_magnitudes("gradients", grads, variables, step=step)
        # Step 3: the statistics of two variables only, the index lists three.
        stats_tag = metadata.stat_tag("gradients", metadata.GRAD_VARIABLE_STATS)
        stats_md = metadata.create_series_metadata(
            metadata.SERIES_VARIABLE_STATS, columns=list(metadata.GRADIENT_VARIABLE_STATS))
        tf.summary.write(stats_tag, tf.ones([2, 6]), step=3, metadata=stats_md)
        # Another family whose tensors' metadata names no columns or range.
        health.gradient_magnitudes("bare", grads, variables, step=0)
    writer.close()
    _strip_series_fields(tmp_path / "run", "health/bare/")

    prov, eid = reader.open_logdir(str(tmp_path))
    run = reader.read_run(prov, None, eid, "run")
    grad = run.gradients["gradients"]
    assert [len(s) for s in grad.stats[metadata.GRAD_NORM].values()] == [3, 3, 3]
    np.testing.assert_allclose(grad.stats[metadata.GRAD_NORM]["kernel1"].values,
                               np.sqrt(6.0), rtol=1e-6)
    assert "update_ratio" not in grad.stats  # no updates given
    assert [len(h) for h in grad.log10_histograms.values()] == [3, 3, 3]
    assert ("%s: not one row for each of the index's 3 variables at step 3; left out"
            % stats_tag) in run.warnings
    bare = run.gradients["bare"]
    assert bare.stats == {} and bare.log10_histograms == {}
    assert "health/bare/variable_stats: its metadata does not name its 5 columns; left out" \
        in run.warnings
    assert "health/bare/log10_abs: its metadata has no bin range; left out" in run.warnings


def _strip_series_fields(run_dir, prefix):
    """Rewrites `run_dir`'s event file: the series metadata of the tags
    under `prefix` keep only their kind and version."""
    import glob
    import json

    from tensorboard.backend.event_processing import event_file_loader

    (path,) = glob.glob(os.path.join(str(run_dir), "events.out.tfevents.*"))
    events = list(event_file_loader.EventFileLoader(path).Load())
    for event in events:
        for v in event.summary.value:
            content = v.metadata.plugin_data.content
            if v.tag.startswith(prefix) and content and metadata.series_kind(content):
                fields = json.loads(content)
                v.metadata.plugin_data.content = json.dumps(
                    {"version": fields["version"], "series": fields["series"]}).encode()
    os.remove(path)
    with tf.io.TFRecordWriter(path) as out:
        for event in events:
            out.write(event.SerializeToString())
