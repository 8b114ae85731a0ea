"""With plain `tensorboard --logdir X` defaults, every series survives loading.

Writes ~1200 records with the summary functions, then loads the logdir with
both TensorBoard loaders at their default settings:

* the Python loader, exactly as TensorBoard builds it (LocalDataIngester from
  TensorBoard's own parsed default flags: EventMultiplexer with TB's default
  size guidance, MultiplexerDataProvider);
* the Rust data server (tensorboard_data_server's binary, which
  `tensorboard --load_fast=true` launches), started as TensorBoard starts it
  with its default flags and read through its gRPC data provider.

A user must see >= 1000 points of every scalar series and >= 100 records of
every histogram series.
"""

import glob
import os
import time

import numpy as np
import pytest

import tensorflow as tf

import tb_plugin.summary as health  # noqa: E402
from tb_plugin import metadata  # noqa: E402
from tb_plugin.callback import HealthCallback  # noqa: E402
from tensorboard.backend.event_processing import event_file_loader  # noqa: E402

RECORDS = 1200
FIT_STEPS = 40
MIN_SCALARS = 1000
MIN_HISTOGRAMS = 100


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

    # A run written by HealthCallback: values carry their summary metadata in
    # each writer's first record only.
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(5, activation="tanh"),
                              keras.layers.Dense(3)])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.random.default_rng(0).normal(size=(8 * FIT_STEPS, 6)).astype(np.float32)
    model.fit(x, np.arange(8 * FIT_STEPS) % 3, batch_size=8, epochs=1, shuffle=False,
              verbose=0, callbacks=[HealthCallback(str(root / "fit"), log_every_n_steps=1,
                                                   report_findings=False)])
    return str(root)


def callback_run_tags(logdir):
    """{plugin name: tags} of the callback run, from its first record's metadata."""
    path = glob.glob(os.path.join(logdir, "fit", "train", "events.out.tfevents.*"))[0]
    for event in event_file_loader.EventFileLoader(path).Load():
        if len(event.summary.value) > 1:
            tags = {}
            for v in event.summary.value:
                tags.setdefault(v.metadata.plugin_data.plugin_name, []).append(v.tag)
            return tags
    raise AssertionError("no record in %s" % path)


def assert_every_callback_record_read(logdir, scalars, hists, index):
    """Every record of the callback run, under its tag's plugin, on a loader."""
    tags = callback_run_tags(logdir)
    assert len(tags["scalars"]) > 10 and len(tags["histograms"]) > 4
    for read, plugin in [(scalars, "scalars"), (hists, "histograms")]:
        series = read.get("fit/train", {})
        counts = {t: len(series.get(t, [])) for t in tags[plugin]}
        assert all(n == FIT_STEPS for n in counts.values()), (plugin, counts)
    # index summaries: a small reservoir (see above), the last one kept
    series = index.get("fit/train", {})
    assert all(series.get(t) and series[t][-1].step == FIT_STEPS - 1 for t in tags["health"])


def expected_tags():
    """(scalar tags, histogram tags) written by the fixture, per metadata.py."""
    s = metadata.stat_tag
    scalars, hists = [], []
    for name, stats_, hs in [
        ("predictions",
         ["entropy", "tie_fraction", "zero_logit_fraction", "nonfinite", "accuracy",
          "tie_tolerant_accuracy", "count"],
         ["top1_probability", "class_probability", "predicted_classes", "label_classes"]),
        ("binary",
         ["entropy", "tie_fraction", "nonfinite", "accuracy", "tie_tolerant_accuracy",
          "count"],
         ["top1_probability", "class_probability", "predicted_classes", "label_classes"]),
        ("regression", ["output_std", "target_std", "nonfinite", "count"], ["outputs"]),
    ]:
        scalars += [s(name, x) for x in stats_]
        hists += [s(name, x) for x in hs]
    for path in ["k1", "b1", "k2"]:
        scalars += [metadata.variable_tag("gradients", path, x) for x in
                    ["norm", "max_abs", "zero_fraction", "nonfinite", "weight_norm",
                     "update_ratio"]]
        hists.append(metadata.variable_tag("gradients", path, "log10_abs"))
    scalars.append(s("gradients", "first_last_ratio"))
    return scalars, hists


def test_python_loader_with_tensorboard_defaults(logdir):
    from tensorboard import context
    from tensorboard import default
    from tensorboard import program
    from tensorboard.backend.event_processing import data_ingester

    tb = program.TensorBoard(plugins=default.get_static_plugins())
    tb.configure(argv=[None, "--logdir", logdir])  # plain defaults otherwise
    ingester = data_ingester.LocalDataIngester(tb.flags)
    # What ingester.start()'s reload thread does, synchronously.
    ingester.deprecated_multiplexer.AddRunsFromDirectory(logdir, None)
    ingester.deprecated_multiplexer.Reload()
    provider = ingester.data_provider
    ctx = context.RequestContext()
    eid = "exp"
    want_scalars, want_hists = expected_tags()
    scalars = provider.read_scalars(ctx, experiment_id=eid, plugin_name="scalars",
                                    downsample=10**6)["train"]
    hists = provider.read_tensors(ctx, experiment_id=eid, plugin_name="histograms",
                                  downsample=10**6)["train"]
    assert set(want_scalars) <= set(scalars), set(want_scalars) - set(scalars)
    assert set(want_hists) <= set(hists), set(want_hists) - set(hists)
    for tag in want_scalars:
        assert len(scalars[tag]) >= MIN_SCALARS, (tag, len(scalars[tag]))
    for tag in want_hists:
        assert len(hists[tag]) >= MIN_HISTOGRAMS, (tag, len(hists[tag]))
    # the health index survives too (one is enough, it is written every record)
    index = provider.read_tensors(ctx, experiment_id=eid, plugin_name="health",
                                  downsample=10**6)
    assert {"health/predictions", "health/gradients", "health/binary",
            "health/regression"} <= set(index["train"])
    assert_every_callback_record_read(
        logdir,
        provider.read_scalars(ctx, experiment_id=eid, plugin_name="scalars", downsample=10**6),
        provider.read_tensors(ctx, experiment_id=eid, plugin_name="histograms",
                              downsample=10**6),
        index)
    # last step kept; values intact
    assert scalars[want_scalars[0]][-1].step == RECORDS - 1
    h = hists["health/predictions/top1_probability"][-1].numpy
    assert h.shape == (metadata.PROBABILITY_BINS, 3) and h[:, 2].sum() == 8


def test_rust_data_server_with_tensorboard_defaults(logdir):
    """The data server that `tensorboard --load_fast=true` launches, started
    the way TensorBoard's program.py starts it (default flags), read through
    its gRPC data provider. (The histograms plugin's HTTP route always
    downsamples to 51 points for display, so it cannot show what the loader
    keeps; the provider can.)"""
    import shlex

    from tensorboard import context
    from tensorboard import default
    from tensorboard import program
    from tensorboard.data import server_ingester

    binary = server_ingester.get_server_binary()  # tensorboard-data-server
    tb = program.TensorBoard(plugins=default.get_static_plugins())
    tb.configure(argv=[None, "--logdir", logdir, "--load_fast=true"])
    flags = tb.flags
    ingester = server_ingester.SubprocessServerDataIngester(
        server_binary=binary,
        logdir=flags.logdir,
        reload_interval=flags.reload_interval,
        channel_creds_type=flags.grpc_creds_type,
        samples_per_plugin=flags.samples_per_plugin,
        extra_flags=shlex.split(flags.extra_data_server_flags),
    )
    ingester.start()
    try:
        provider = ingester.data_provider
        ctx = context.RequestContext()
        want_scalars, want_hists = expected_tags()
        deadline = time.time() + 120
        while True:  # the server loads asynchronously
            all_scalars = provider.read_scalars(
                ctx, experiment_id="", plugin_name="scalars", downsample=10**6)
            scalars = all_scalars.get("train", {})
            fit_entropy = all_scalars.get("fit/train", {}).get("health/predictions/entropy", [])
            hists = provider.read_tensors(
                ctx, experiment_id="", plugin_name="histograms", downsample=10**6
            ).get("train", {})
            done = (
                set(want_scalars) <= set(scalars)
                and set(want_hists) <= set(hists)
                and all(scalars[t] and scalars[t][-1].step == RECORDS - 1
                        for t in want_scalars)
                and all(hists[t] and hists[t][-1].step == RECORDS - 1 for t in want_hists)
                and len(fit_entropy) == FIT_STEPS
            )
            if done or time.time() > deadline:
                break
            time.sleep(1)
        assert set(want_scalars) <= set(scalars), set(want_scalars) - set(scalars)
        assert set(want_hists) <= set(hists), set(want_hists) - set(hists)
        low = {t: len(scalars[t]) for t in want_scalars if len(scalars[t]) < MIN_SCALARS}
        assert not low, low
        hlow = {t: len(hists[t]) for t in want_hists if len(hists[t]) < MIN_HISTOGRAMS}
        assert not hlow, hlow
        h = hists["health/predictions/top1_probability"][-1].numpy
        assert h.shape == (metadata.PROBABILITY_BINS, 3) and h[:, 2].sum() == 8
        assert_every_callback_record_read(
            logdir,
            provider.read_scalars(ctx, experiment_id="", plugin_name="scalars",
                                  downsample=10**6),
            provider.read_tensors(ctx, experiment_id="", plugin_name="histograms",
                                  downsample=10**6),
            provider.read_tensors(ctx, experiment_id="", plugin_name="health",
                                  downsample=10**6))
    finally:
        # The data server exits when its stdin closes (--die-after-stdin).
        handle = getattr(ingester, "_stdin_handle", None)
        if handle is not None:
            handle.close()
