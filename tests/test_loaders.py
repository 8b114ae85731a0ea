"""With plain `tensorboard --logdir X` defaults, every series survives loading,
and Time Series shows only the headline series.

Writes ~1200 records with the summary functions, fits a multi-layer,
two-output model with HealthCallback, and adds log directories written in
format 1 (tests/data/format1, by tb_plugin before the series moved to the
``health`` plugin) and format 2 (tests/data/format2, before a gradient
record's per-variable series became two tensors). Then starts TensorBoard as `tensorboard --logdir` does,
with the plugins its entry points bring (the Health plugin's loader sets
the points kept per ``health`` tag), on both loaders:

* the Python loader (``--load_fast=false``): EventMultiplexer and
  MultiplexerDataProvider;
* the Rust data server (``--load_fast=true``), read through its gRPC data
  provider.

A user must see >= 1000 points of every scalar series and >= 100 records of
every histogram series in the Health tab, at most 8 health cards per run in
Time Series, and the runs of earlier formats as before.
"""

import os
import shutil
import time

import numpy as np
import pytest

import tensorflow as tf

import tb_plugin.summary as health  # noqa: E402
from tb_plugin import metadata  # noqa: E402
from tb_plugin import reader  # noqa: E402
from tb_plugin.callback import HealthCallback  # noqa: E402

RECORDS = 1200
FIT_STEPS = 40
MIN_SCALARS = 1000
MIN_HISTOGRAMS = 100
MAX_HEADLINE = 8
DATA = os.path.join(os.path.dirname(__file__), "data")
EARLIER_FORMATS = ("format1", "format2")  # under DATA
EARLIER_STEPS = 6  # train records in each (their validation runs have one)


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("loaders")
    run = root / "train"
    writer = tf.summary.create_file_writer(str(run), max_queue=1000)
    v = [tf.Variable(tf.random.normal([3, 4], seed=1), name="k1"),
         tf.Variable(tf.zeros([4]), name="b1"),
         tf.Variable(tf.random.normal([4, 3], seed=2), name="k2")]
    labels = tf.constant([0, 1, 2, 0, 1, 2, 0, 1])

    @tf.function
    def write_all():
        with writer.as_default():
            for i in tf.range(RECORDS, dtype=tf.int64):
                logits = tf.random.normal([8, 3])
                health.prediction_distribution(
                    "predictions", logits, step=i, labels=labels, from_logits=True)
                health.prediction_distribution(
                    "binary", tf.random.uniform([8]), step=i,
                    labels=tf.cast(labels > 0, tf.float32))
                health.prediction_distribution(
                    "regression", logits[:, 0], step=i, labels=logits[:, 1],
                    task="regression")
                grads = [tf.random.normal(x.shape) for x in v]
                health.gradient_magnitudes(
                    "gradients", grads, v, step=i, updates=[g * 1e-3 for g in grads])

    write_all()
    writer.close()

    # HealthCallback on a 6-layer MLP with two outputs: values carry their
    # summary metadata in each writer's first record only.
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((6,))
    h = inputs
    for _ in range(4):
        h = keras.layers.Dense(8, activation="tanh")(h)
    model = keras.Model(inputs, {"cls": keras.layers.Dense(3, name="cls")(h),
                                 "flag": keras.layers.Dense(1, activation="sigmoid",
                                                            name="flag")(h)})
    model.compile("adam", {"cls": keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                           "flag": "binary_crossentropy"})
    n = 8 * FIT_STEPS
    x = np.random.default_rng(0).normal(size=(n + 16, 6)).astype(np.float32)
    y = {"cls": np.arange(n + 16) % 3, "flag": (np.arange(n + 16) % 2).astype(np.float32)}
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0,
              validation_data=(x[n:], {k: t[n:] for k, t in y.items()}),
              steps_per_epoch=FIT_STEPS,
              callbacks=[HealthCallback(str(root / "fit"), log_every_n_steps=1,
                                        report_findings=False)])
    for name in EARLIER_FORMATS:
        shutil.copytree(os.path.join(DATA, name), root / name)
    return str(root)


def start_tensorboard(logdir, loader, *flags):
    """(TensorBoard program, WSGI app, data provider) as `tensorboard
    --logdir` builds them, with every installed plugin (ours by its entry
    point) and the loader's default retention."""
    from tensorboard import default
    from tensorboard import program
    from tensorboard.backend import application

    tb = program.TensorBoard(plugins=default.get_plugins())
    argv = [None, "--logdir", logdir, "--load_fast", "true" if loader == "rust" else "false",
            "--reload_interval", "0", *flags]
    if loader == "python":
        argv += ["--reload_task", "blocking"]  # loaded once, before it serves
    tb.configure(argv=argv)
    provider, multiplexer = tb._make_data_provider()
    app = application.TensorBoardWSGIApp(tb.flags, tb.plugin_loaders, provider,
                                         tb.assets_zip_provider, multiplexer)
    return tb, app, provider


def _ctx():
    from tensorboard import context

    return context.RequestContext()


def _loaded(provider):
    """Whether the loader holds every record of the fixture's runs."""
    listing = provider.list_tensors(_ctx(), experiment_id="", plugin_name=metadata.PLUGIN_NAME)
    last = {run: max((ts.max_step for ts in tags.values()), default=-1)
            for run, tags in listing.items()}
    return (last.get("train") == RECORDS - 1 and last.get("fit/train") == FIT_STEPS - 1
            and "fit/validation" in last
            and all(last.get(f + "/train") == EARLIER_STEPS - 1 for f in EARLIER_FORMATS))


@pytest.fixture(scope="module", params=["python", "rust"])
def tensorboard(request, logdir):
    tb, app, provider = start_tensorboard(logdir, request.param)
    try:
        deadline = time.time() + 180
        while not _loaded(provider):  # the data server loads asynchronously
            assert time.time() < deadline, "%s loader did not load the logdir" % request.param
            time.sleep(1)
        yield app, provider
    finally:
        handle = getattr(getattr(tb, "_ingester", None), "_stdin_handle", None)
        if handle is not None:
            handle.close()  # the data server exits when its stdin closes


def test_time_series_shows_at_most_8_health_cards_per_run(tensorboard):
    import json

    from werkzeug.test import Client

    app, _ = tensorboard
    response = Client(app).get("/data/plugin/timeseries/tags")
    assert response.status_code == 200
    tags = json.loads(response.get_data())
    health_tags = {run: sorted(t for t in run_tags if t.startswith("health/"))
                   for run, run_tags in tags["scalars"]["runTagInfo"].items()}
    for run in ("train", "fit/train", "fit/validation"):
        assert 0 < len(health_tags[run]) <= MAX_HEADLINE, (run, health_tags[run])
    assert health_tags["fit/train"] == sorted(metadata.headline_tag(s) for s in (
        "entropy", "tie_fraction", "accuracy_gap", "output_nonfinite", "first_last_ratio",
        "max_update_ratio", "gradient_nonfinite"))
    assert health_tags["fit/validation"] == sorted(metadata.headline_tag(s) for s in (
        "entropy", "tie_fraction", "accuracy_gap", "output_nonfinite"))
    # Format 1 keeps its series where it wrote them.
    assert len(health_tags["format1/train"]) > 40
    new_hists = {run: t for run, t in tags["histograms"]["runTagInfo"].items()
                 if not run.startswith("format1/")}
    assert not any(t.startswith("health/") for ts in new_hists.values() for t in ts), new_hists


def test_health_tab_reads_every_point_of_every_series(tensorboard):
    """What the Health tab's routes read: >= 1000 points of each number
    series and >= 100 of each histogram series (the fixture wrote 1200)."""
    _, provider = tensorboard
    run = reader.read_run(provider, None, "", "train")
    assert not run.warnings
    series = {}
    for name, pred in run.predictions.items():
        series.update({(name, s): x for s, x in pred.scalars.items()})
        series.update({(name, s, "h"): x for s, x in pred.histograms.items()})
    grad = run.gradients["gradients"]
    for stat, by_path in grad.stats.items():
        series.update({("gradients", stat, p): x for p, x in by_path.items()})
    series.update({("gradients", p, "h"): x for p, x in grad.log10_histograms.items()})
    series[("gradients", metadata.GRAD_FIRST_LAST_RATIO)] = grad.scalars[
        metadata.GRAD_FIRST_LAST_RATIO]
    assert len(series) == 50  # every statistic the fixture writes
    low = {k: len(x) for k, x in series.items()
           if len(x) < (MIN_HISTOGRAMS if k[-1] == "h" else MIN_SCALARS)}
    assert not low, low
    assert all(x.steps[-1] == RECORDS - 1 for x in series.values())
    top1 = run.predictions["predictions"].histograms[metadata.PRED_TOP1_HIST]
    assert top1.counts.shape[1] == metadata.PROBABILITY_BINS
    assert top1.counts[-1].sum() == 8

    fit = reader.read_run(provider, None, "", "fit/train")
    assert sorted(fit.predictions) == ["predictions/cls", "predictions/flag"]
    assert len(fit.gradients["gradients"].variables) == 12
    lengths = {len(x) for p in fit.predictions.values() for x in p.scalars.values()}
    lengths |= {len(x) for by_path in fit.gradients["gradients"].stats.values()
                for x in by_path.values()}
    lengths |= {len(x) for x in fit.gradients["gradients"].log10_histograms.values()}
    assert lengths == {FIT_STEPS}


def headline_values(provider, run):
    """{headline tag: values} of `run`, from TensorBoard's scalars plugin."""
    tags = [metadata.headline_tag(s) for s in metadata.HEADLINE_STATS]
    read = provider.read_scalars(
        _ctx(), experiment_id="", plugin_name="scalars", downsample=10**6,
        run_tag_filter=reader.provider_lib.RunTagFilter(runs=[run], tags=tags))
    return {t: np.array([d.value for d in data]) for t, data in read[run].items()}


def test_headline_series_aggregate_the_families_written_together(tensorboard):
    """One value per record; over the fit's two outputs, the mean entropy and
    the largest tie fraction; the gradient family's first/last ratio."""
    _, provider = tensorboard
    for run, records in [("fit/train", FIT_STEPS), ("fit/validation", 1)]:
        fit = reader.read_run(provider, None, "", run)
        values = headline_values(provider, run)
        assert {len(v) for v in values.values()} == {records}, run
        preds = [fit.predictions["predictions/cls"], fit.predictions["predictions/flag"]]
        np.testing.assert_allclose(
            values["health/entropy"],
            np.mean([p.scalars["entropy"].values for p in preds], axis=0), rtol=1e-5)
        np.testing.assert_allclose(
            values["health/tie_fraction"],
            np.max([p.scalars["tie_fraction"].values for p in preds], axis=0), rtol=1e-5)
    grad = reader.read_run(provider, None, "", "fit/train").gradients["gradients"]
    values = headline_values(provider, "fit/train")
    np.testing.assert_allclose(values["health/first_last_ratio"],
                               grad.scalars["first_last_ratio"].values, rtol=1e-5)
    np.testing.assert_allclose(
        values["health/max_update_ratio"],
        np.nanmax([s.values for s in grad.stats["update_ratio"].values()], axis=0), rtol=1e-5)
    assert np.all(values["health/max_update_ratio"] > 1e-3)  # zero biases at step 0 left out
    np.testing.assert_array_equal(values["health/gradient_nonfinite"], 0)


@pytest.mark.parametrize("earlier", EARLIER_FORMATS)
def test_earlier_formats_read_as_before(tensorboard, earlier):
    _, provider = tensorboard
    train = reader.read_run(provider, None, "", earlier + "/train")
    assert not train.warnings and train.manifest["output_layer"]
    pred = train.predictions["predictions"]
    assert len(pred.scalars) == 7 and len(pred.histograms) == 4
    grad = train.gradients["gradients"]
    assert len(grad.variables) == 6 and len(grad.stats) == 6
    lengths = {len(x) for x in pred.scalars.values()} | {len(x) for x in pred.histograms.values()}
    lengths |= {len(x) for by_path in grad.stats.values() for x in by_path.values()}
    lengths |= {len(x) for x in grad.log10_histograms.values()}
    assert lengths == {EARLIER_STEPS}
    validation = reader.read_run(provider, None, "", earlier + "/validation")
    assert {len(x) for x in validation.predictions["predictions"].scalars.values()} == {1}


def test_health_loader_keeps_a_retention_the_user_set():
    from tensorboard import default
    from tensorboard import program

    def samples(*flags):
        tb = program.TensorBoard(plugins=default.get_plugins())
        tb.configure(argv=[None, "--logdir", ".", *flags])
        return tb.flags.samples_per_plugin

    assert samples() == {metadata.PLUGIN_NAME: metadata.SAMPLES_KEPT}
    assert samples("--samples_per_plugin", "health=50,scalars=7") == {
        metadata.PLUGIN_NAME: 50, "scalars": 7}
