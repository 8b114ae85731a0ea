"""The Health plugin's HTTP routes over a real TensorBoard WSGI app.

The logs are real event files written by tb_plugin's recording API (a small
Keras training with HealthCallback, plus runs written with the summary
functions: ties/zero logits, NaN outputs and gradients, a run whose name holds
HTML markup, a broken index, a run without health data). Every route is
exercised with both TensorBoard loaders: the Python multiplexer and the Rust
data server (``--load_fast=true``). Every JSON answer is parsed strictly
(no NaN/Infinity tokens).
"""

import json
import os
import shutil
import sys
import time
import urllib.parse

import numpy as np
import pytest

from tensorboard import default
from tensorboard import program
from tensorboard.backend import application
from werkzeug.test import Client

from tb_plugin import health_plugin
from tb_plugin import metadata
from tb_plugin import route_json

BASE = "/data/plugin/health/"
HTML_RUN = "<b>bold<img src=x onerror=alert(1)>"

# Runs (as TensorBoard names them) and what they must show.
KERAS_TRAIN = "keras/train"
KERAS_VALIDATION = "keras/validation"
TIES_RUN = "ties/train"
NAN_RUN = "nan/train"
BROKEN_RUN = "broken/train"
REGRESSION_RUN = "regression/train"
PLAIN_RUN = "plain"  # ordinary scalars only: not a health run
HEALTH_RUNS = sorted(
    [KERAS_TRAIN, KERAS_VALIDATION, TIES_RUN, NAN_RUN, BROKEN_RUN, HTML_RUN,
     REGRESSION_RUN]
)


# --------------------------------------------------------------------------
# Strict JSON.


def _no_constant(name):
    raise ValueError("non-standard JSON constant %r in answer" % name)


def strict_json(data):
    if isinstance(data, bytes):
        data = data.decode("utf-8")
    return json.loads(data, parse_constant=_no_constant)


# --------------------------------------------------------------------------
# Logs, written once per test session with the recording API.


def _write_keras_run(root):
    import keras
    import tensorflow as tf

    from tb_plugin.callback import HealthCallback

    keras.utils.set_random_seed(1)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(256, 8)).astype("float32")
    y = (x[:, 0] > 0).astype("int64") + (x[:, 1] > 0).astype("int64")
    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(3),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(
        x,
        y,
        batch_size=32,
        epochs=3,
        validation_data=(x[:64], y[:64]),
        verbose=0,
        callbacks=[
            HealthCallback(
                os.path.join(root, "keras"), log_every_n_steps=2, report_findings=False
            )
        ],
    )
    del tf


def _write_summary_runs(root):
    import tensorflow as tf

    import tb_plugin.summary as summary

    rng = np.random.default_rng(2)

    def variables(shapes):
        return [
            tf.Variable(rng.normal(size=s).astype("float32"), name="v%d" % i)
            for i, s in enumerate(shapes)
        ]

    # Every logit exactly 0: ties, zero logits, entropy 1.
    writer = tf.summary.create_file_writer(os.path.join(root, "ties", "train"))
    with writer.as_default():
        vs = variables([(4, 8), (8,), (8, 3)])
        for step in range(12):
            logits = tf.zeros((32, 3))
            labels = tf.constant(rng.integers(0, 3, 32))
            summary.prediction_distribution(
                "predictions", logits, step=step, labels=labels, from_logits=True
            )
            grads = [tf.zeros_like(v) for v in vs]
            summary.gradient_magnitudes("gradients", grads, vs, step=step)
    writer.close()

    # NaN outputs and NaN/Inf gradients from step 5 on.
    writer = tf.summary.create_file_writer(os.path.join(root, "nan", "train"))
    with writer.as_default():
        vs = variables([(4, 8), (8,), (8, 3)])
        for step in range(12):
            logits = rng.normal(size=(32, 3)).astype("float32")
            grads = [rng.normal(size=v.shape).astype("float32") for v in vs]
            if step >= 5:
                logits[:] = np.nan
                grads[0][:] = np.nan
                grads[2][0, 0] = np.inf
            labels = tf.constant(rng.integers(0, 3, 32))
            summary.prediction_distribution(
                "predictions", tf.constant(logits), step=step, labels=labels,
                from_logits=True,
            )
            summary.gradient_magnitudes(
                "gradients", [tf.constant(g) for g in grads], vs, step=step
            )
    writer.close()

    # A healthy-looking run whose name holds HTML markup.
    writer = tf.summary.create_file_writer(os.path.join(root, HTML_RUN))
    with writer.as_default():
        vs = variables([(4, 8), (8, 3)])
        summary.manifest({"model": "<script>alert(1)</script>", "layers": []}, step=0)
        for step in range(10):
            labels = rng.integers(0, 3, 32)
            logits = np.eye(3)[labels] * (1 + step) + rng.normal(0, 0.3, (32, 3))
            summary.prediction_distribution(
                "predictions", tf.constant(logits, tf.float32), step=step,
                labels=tf.constant(labels), from_logits=True,
            )
            grads = [tf.constant(rng.normal(size=v.shape), tf.float32) for v in vs]
            summary.gradient_magnitudes("gradients", grads, vs, step=step)
    writer.close()

    # A health index that is not JSON: the run must not break the others.
    writer = tf.summary.create_file_writer(os.path.join(root, "broken", "train"))
    with writer.as_default():
        for step in range(3):
            tf.summary.write(
                metadata.index_tag("predictions"),
                tf.constant("{not json"),
                step=step,
                metadata=metadata.create_index_metadata(),
            )
    writer.close()

    # Regression outputs that follow their targets.
    writer = tf.summary.create_file_writer(os.path.join(root, "regression", "train"))
    with writer.as_default():
        for step in range(10):
            targets = rng.normal(size=(32, 1)).astype("float32")
            outputs = targets * (0.5 + 0.05 * step) + rng.normal(0, 0.1, (32, 1))
            summary.prediction_distribution(
                "predictions", tf.constant(outputs, tf.float32), step=step,
                labels=tf.constant(targets), task="regression",
            )
    writer.close()

    # Ordinary TensorBoard scalars only.
    writer = tf.summary.create_file_writer(os.path.join(root, PLAIN_RUN))
    with writer.as_default():
        for step in range(5):
            tf.summary.scalar("loss", 1.0 / (step + 1), step=step)
    writer.close()


def write_logs(root):
    """Writes the test logs under `root` (once; reused if complete)."""
    done = os.path.join(root, ".complete")
    if os.path.exists(done):
        return root
    if os.path.exists(root):
        shutil.rmtree(root)
    os.makedirs(root)
    _write_summary_runs(root)
    _write_keras_run(root)
    with open(done, "w") as f:
        f.write("ok\n")
    return root


def write_plain_logs(root):
    import tensorflow as tf

    writer = tf.summary.create_file_writer(os.path.join(root, "only_scalars"))
    with writer.as_default():
        for step in range(3):
            tf.summary.scalar("loss", float(step), step=step)
    writer.close()
    return root


@pytest.fixture(scope="session")
def health_logdir(tmp_path_factory):
    return write_logs(str(tmp_path_factory.mktemp("health_logs")))


@pytest.fixture(scope="session")
def plain_logdir(tmp_path_factory):
    return write_plain_logs(str(tmp_path_factory.mktemp("plain_logs")))


# --------------------------------------------------------------------------
# TensorBoard apps.


class TB:
    """A TensorBoard WSGI app with the Health plugin over one logdir."""

    def __init__(self, logdir, loader, path_prefix="", reload_interval=0):
        self.loader = loader
        plugins = default.get_plugins()  # the entry point brings the Health plugin
        self._tb = program.TensorBoard(plugins=plugins)
        argv = [
            None,
            "--logdir", logdir,
            "--load_fast", "true" if loader == "rust" else "false",
            "--reload_interval", str(reload_interval),
        ]
        if loader == "python" and reload_interval == 0:
            argv += ["--reload_task", "blocking"]
        if path_prefix:
            argv += ["--path_prefix", path_prefix]
        self._tb.configure(argv=argv)
        provider, multiplexer = self._tb._make_data_provider()
        self.provider = provider
        self.multiplexer = multiplexer
        self.app = application.TensorBoardWSGIApp(
            self._tb.flags,
            self._tb.plugin_loaders,
            provider,
            self._tb.assets_zip_provider,
            multiplexer,
        )
        self.client = Client(self.app)
        self.plugin = next(
            p for p in self.app._plugins if p.plugin_name == metadata.PLUGIN_NAME
        )

    def wait_for_runs(self, runs, timeout=120):
        """Waits until the data server lists `runs` with health data, stably."""
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            listing = self.provider.list_tensors(
                _ctx(), experiment_id="", plugin_name=metadata.PLUGIN_NAME
            )
            scalars = self.provider.list_scalars(
                _ctx(), experiment_id="", plugin_name="scalars"
            )
            key = (
                sorted((r, t, ts.max_step) for r, tags in listing.items()
                       for t, ts in tags.items()),
                sorted((r, t, ts.max_step) for r, tags in scalars.items()
                       for t, ts in tags.items()),
            )
            if set(runs) <= set(listing) and key == last:
                return
            last = key
            time.sleep(1.0)
        raise AssertionError("data server did not load %s in %ds" % (runs, timeout))

    def get(self, path, **kw):
        return self.client.get(path, **kw)

    def close(self):
        ingester = getattr(self._tb, "_ingester", None)
        handle = getattr(ingester, "_stdin_handle", None)
        if handle is not None:
            handle.close()  # the data server exits when its stdin closes


def _ctx():
    from tensorboard import context

    return context.RequestContext()


@pytest.fixture(scope="module", params=["python", "rust"])
def tb(request, health_logdir):
    t = TB(health_logdir, request.param)
    if request.param == "rust":
        t.wait_for_runs(HEALTH_RUNS)
    yield t
    t.close()


def q(value):
    return urllib.parse.quote(value, safe="")


def get_json(tb, path, code=200):
    r = tb.get(path)
    assert r.status_code == code, (path, r.status_code, r.get_data()[:500])
    assert r.headers["Content-Type"].startswith("application/json"), r.headers
    assert r.headers.get("X-Content-Type-Options") == "nosniff"
    return strict_json(r.get_data())


def runs_by_name(tb):
    body = get_json(tb, BASE + "runs")
    return {r["run"]: r for r in body["runs"]}


# --------------------------------------------------------------------------
# Listing.


def test_tab_listed_when_health_data(tb):
    listing = get_json(tb, "/data/plugins_listing")
    entry = listing[metadata.PLUGIN_NAME]
    assert entry["enabled"] is True
    assert entry["tab_name"] == "Health"
    assert entry["loading_mechanism"] == {
        "type": "IFRAME",
        "module_path": "/data/plugin/health/index.js",
    }


@pytest.mark.parametrize("loader", ["python", "rust"])
def test_tab_not_listed_without_health_data(plain_logdir, loader):
    t = TB(plain_logdir, loader)
    try:
        if loader == "rust":
            deadline = time.time() + 60
            while time.time() < deadline:
                if "scalars" in t.provider.list_plugins(_ctx(), experiment_id=""):
                    break
                time.sleep(0.5)
        listing = get_json(t, "/data/plugins_listing")
        assert listing["scalars"]["enabled"] is True  # the logs were loaded
        assert listing[metadata.PLUGIN_NAME]["enabled"] is False
        assert get_json(t, BASE + "runs") == {"runs": []}
    finally:
        t.close()


# --------------------------------------------------------------------------
# runs


def test_runs_lists_health_runs_only(tb):
    runs = runs_by_name(tb)
    assert sorted(runs) == HEALTH_RUNS
    assert PLAIN_RUN not in runs
    for r in runs.values():
        assert r["status"] in ("healthy", "unhealthy", "no_data")
        assert isinstance(r["findings"], list)
        assert set(r) >= {"run", "status", "findings", "predictions", "gradients",
                          "has_manifest"}


def test_runs_report_their_last_step_and_wall_time(tb):
    runs = runs_by_name(tb)
    # 3 epochs of 8 steps (0..23), train records every 2 steps; validation
    # records at the train step reached after each epoch.
    assert runs[KERAS_TRAIN]["last_step"] == 22
    assert runs[KERAS_VALIDATION]["last_step"] == 24
    for r in runs.values():
        assert isinstance(r["last_step"], int) and r["last_wall_time"] > 1.6e9


def test_runs_statuses_and_findings(tb):
    runs = runs_by_name(tb)
    nan = runs[NAN_RUN]
    assert nan["status"] == "unhealthy"
    assert any(f["severity"] == "error" for f in nan["findings"])
    for f in nan["findings"]:
        assert set(f) >= {"kind", "severity", "layer", "first_step", "last_step",
                          "evidence", "message", "suggestion", "caused_by"}
    assert runs[TIES_RUN]["status"] == "unhealthy"
    assert runs[BROKEN_RUN]["status"] == "no_data"
    assert runs[BROKEN_RUN]["predictions"] == []
    keras_train = runs[KERAS_TRAIN]
    assert keras_train["has_manifest"] is True
    assert keras_train["predictions"][0]["name"] == "predictions"
    assert keras_train["predictions"][0]["task"] == "multiclass"
    assert keras_train["predictions"][0]["num_classes"] == 3
    assert keras_train["gradients"][0]["name"] == "gradients"
    assert len(keras_train["gradients"][0]["variables"]) == 4
    assert runs[KERAS_VALIDATION]["gradients"] == []
    assert runs[KERAS_VALIDATION]["predictions"][0]["name"] == "predictions"
    assert runs[REGRESSION_RUN]["predictions"] == [
        {"name": "predictions", "task": "regression", "num_classes": 1}
    ]


def test_runs_match_cli_check(tb, health_logdir):
    """The runs route answers what `tb-health check --json` answers."""
    from tensorboard.backend import json_util

    from tb_plugin import diagnosis

    expected = diagnosis.check_logdir(health_logdir)
    expected = strict_json(json.dumps(json_util.Cleanse(expected)))
    want = {r["run"]: r for r in expected["runs"]}
    got = runs_by_name(tb)
    assert sorted(want) == sorted(got)
    for run, w in want.items():
        assert got[run]["status"] == w["status"], run
        if tb.loader == "python":
            assert got[run]["findings"] == w["findings"], run
        else:
            assert [f["kind"] for f in got[run]["findings"]] == [
                f["kind"] for f in w["findings"]
            ], run


def test_html_run_name_is_data(tb):
    runs = runs_by_name(tb)
    assert HTML_RUN in runs
    body = get_json(tb, BASE + "predictions?run=%s&name=predictions" % q(HTML_RUN))
    assert body["run"] == HTML_RUN
    manifest = get_json(tb, BASE + "manifest?run=%s" % q(HTML_RUN))
    assert manifest["manifest"]["model"] == "<script>alert(1)</script>"


def test_broken_run_does_not_break_others(tb, monkeypatch):
    from tb_plugin import reader

    real = reader.read_run

    def flaky(provider, ctx, eid, run, **filters):
        if run == TIES_RUN:
            raise RuntimeError("disk on fire")
        return real(provider, ctx, eid, run, **filters)

    tb.plugin._runs._cache.clear()
    monkeypatch.setattr(reader, "read_run", flaky)
    try:
        runs = runs_by_name(tb)
        assert runs[TIES_RUN]["status"] == "no_data"
        assert "disk on fire" in runs[TIES_RUN]["error"]
        assert runs[NAN_RUN]["status"] == "unhealthy"
        r = tb.get(BASE + "predictions?run=%s&name=predictions" % q(TIES_RUN))
        assert r.status_code == 404
        strict_json(r.get_data())
    finally:
        monkeypatch.setattr(reader, "read_run", real)
        tb.plugin._runs._cache.clear()
    assert runs_by_name(tb)[TIES_RUN]["status"] == "unhealthy"


# --------------------------------------------------------------------------
# predictions / gradients / gradient_histogram / manifest


def _check_series(s):
    assert len(s["steps"]) == len(s["values"])
    assert s["steps"] == sorted(s["steps"])
    for v in s["values"]:
        assert isinstance(v, (int, float)) or v in ("NaN", "Infinity", "-Infinity")


def _check_histograms(h):
    bins = len(h["edges"]) - 1
    assert bins >= 1
    assert len(h["counts"]) == len(h["steps"])
    for row in h["counts"]:
        assert len(row) == bins


def test_predictions_shapes(tb):
    body = get_json(tb, BASE + "predictions?run=%s&name=predictions" % q(KERAS_TRAIN))
    assert body["run"] == KERAS_TRAIN and body["name"] == "predictions"
    assert body["task"] == "multiclass" and body["num_classes"] == 3
    assert body["from_logits"] is True
    assert metadata.PRED_ENTROPY in body["scalars"]
    assert metadata.PRED_ACCURACY in body["scalars"]
    for s in body["scalars"].values():
        _check_series(s)
    # 3 epochs of 8 batches: 24 train records (the callback may record fewer).
    entropy = body["scalars"][metadata.PRED_ENTROPY]
    assert len(entropy["steps"]) >= 3
    assert metadata.PRED_TOP1_HIST in body["histograms"]
    for h in body["histograms"].values():
        _check_histograms(h)
    top1 = body["histograms"][metadata.PRED_TOP1_HIST]
    assert len(top1["edges"]) == metadata.PROBABILITY_BINS + 1


def test_predictions_downsampling(tb):
    full = get_json(tb, BASE + "predictions?run=%s&name=predictions" % q(NAN_RUN))
    small = get_json(
        tb, BASE + "predictions?run=%s&name=predictions&width=3" % q(NAN_RUN)
    )
    for stat, s in full["scalars"].items():
        d = small["scalars"][stat]
        assert len(d["steps"]) == min(3, len(s["steps"]))
        assert d["steps"][0] == s["steps"][0]
        assert d["steps"][-1] == s["steps"][-1]
        assert set(d["steps"]) <= set(s["steps"])
    for stat, h in full["histograms"].items():
        d = small["histograms"][stat]
        assert len(d["steps"]) == min(3, len(h["steps"]))
        assert d["steps"][0] == h["steps"][0] and d["steps"][-1] == h["steps"][-1]
        _check_histograms(d)
    one = get_json(tb, BASE + "predictions?run=%s&name=predictions&width=1" % q(NAN_RUN))
    ent = one["scalars"][metadata.PRED_ENTROPY]
    assert ent["steps"] == [11]


def test_regression_predictions(tb):
    body = get_json(tb, BASE + "predictions?run=%s&name=predictions" % q(REGRESSION_RUN))
    assert body["task"] == "regression"
    for stat in (metadata.PRED_OUTPUT_STD, metadata.PRED_TARGET_STD):
        assert len(body["scalars"][stat]["steps"]) == 10
    outputs = body["histograms"][metadata.PRED_OUTPUT_HIST]
    _check_histograms(outputs)
    # The range follows each batch: per-record edges come along.
    if "step_edges" in outputs:
        assert len(outputs["step_edges"]) == len(outputs["steps"])
        assert all(len(e) == len(outputs["edges"]) for e in outputs["step_edges"])


def test_gradients_shapes(tb):
    body = get_json(tb, BASE + "gradients?run=%s&name=gradients" % q(KERAS_TRAIN))
    variables = body["variables"]
    assert len(variables) == 4
    assert variables[0].endswith("kernel") and variables[-1].endswith("bias")
    steps = body["steps"]
    assert steps == sorted(steps) and len(steps) >= 2
    for stat in (metadata.GRAD_NORM, metadata.GRAD_MAX_ABS,
                 metadata.GRAD_ZERO_FRACTION, metadata.GRAD_NONFINITE):
        m = body["matrix"][stat]
        assert len(m) == len(variables)
        for row in m:
            assert len(row) == len(steps)
            assert all(v is not None for v in row)
    _check_series(body["first_last_ratio"])
    assert len(body["first_last_ratio"]["steps"]) == len(steps)
    th = body["thresholds"]
    assert th["update_ratio_guideline"] == 1e-3
    for key in ("vanishing_ratio", "exploding_ratio", "update_ratio_low"):
        assert key in th

    small = get_json(tb, BASE + "gradients?run=%s&name=gradients&width=2" % q(KERAS_TRAIN))
    assert small["steps"] == [steps[0], steps[-1]]
    for m in small["matrix"].values():
        assert all(len(row) == 2 for row in m)


def test_gradient_histogram(tb):
    grads = get_json(tb, BASE + "gradients?run=%s&name=gradients" % q(KERAS_TRAIN))
    var = grads["variables"][0]
    body = get_json(
        tb,
        BASE + "gradient_histogram?run=%s&name=gradients&variable=%s"
        % (q(KERAS_TRAIN), q(var)),
    )
    assert body["variable"] == var and body["run"] == KERAS_TRAIN
    _check_histograms(body)
    assert len(body["edges"]) == metadata.LOG10_BINS + 1
    assert body["edges"][0] == metadata.LOG10_RANGE[0]
    assert body["edges"][-1] == metadata.LOG10_RANGE[1]
    small = get_json(
        tb,
        BASE + "gradient_histogram?run=%s&name=gradients&variable=%s&width=2"
        % (q(KERAS_TRAIN), q(var)),
    )
    assert len(small["steps"]) == 2
    assert small["steps"] == [body["steps"][0], body["steps"][-1]]


def test_manifest(tb):
    body = get_json(tb, BASE + "manifest?run=%s" % q(KERAS_TRAIN))
    m = body["manifest"]
    assert isinstance(m, dict)
    assert len(m["layers"]) >= 2
    assert "loss" in m and "optimizer" in m
    none = get_json(tb, BASE + "manifest?run=%s" % q(NAN_RUN))
    assert none == {"run": NAN_RUN, "manifest": None}


def test_nonfinite_values_encoded_as_strings(tb):
    preds = get_json(tb, BASE + "predictions?run=%s&name=predictions" % q(NAN_RUN))
    nonfinite = preds["scalars"][metadata.PRED_NONFINITE]
    assert nonfinite["values"][0] == 0
    assert nonfinite["values"][-1] > 0
    entropy = preds["scalars"][metadata.PRED_ENTROPY]["values"]
    assert "NaN" in entropy
    grads = get_json(tb, BASE + "gradients?run=%s&name=gradients" % q(NAN_RUN))
    first = grads["matrix"][metadata.GRAD_NORM][0]
    assert first[0] != "NaN" and isinstance(first[0], float)
    assert first[-1] == "NaN"
    last_var_max = grads["matrix"][metadata.GRAD_MAX_ABS][2]
    assert last_var_max[-1] == "Infinity"
    nf = grads["matrix"][metadata.GRAD_NONFINITE]
    assert nf[0][-1] > 0 and nf[1][-1] == 0
    runs = get_json(tb, BASE + "runs")  # findings with NaN evidence parse too
    assert runs["runs"]


# --------------------------------------------------------------------------
# Errors.


@pytest.mark.parametrize(
    "path",
    [
        "predictions",
        "predictions?name=predictions",
        "predictions?run=" + q(KERAS_TRAIN),
        "predictions?run=&name=predictions",
        "gradients?run=" + q(KERAS_TRAIN),
        "gradients?name=gradients",
        "gradient_histogram?run=%s&name=gradients" % q(KERAS_TRAIN),
        "manifest",
        "predictions?run=%s&name=predictions&width=abc" % q(KERAS_TRAIN),
        "predictions?run=%s&name=predictions&width=0" % q(KERAS_TRAIN),
        "predictions?run=%s&name=predictions&width=-5" % q(KERAS_TRAIN),
        "predictions?run=%s&name=predictions&width=2.5" % q(KERAS_TRAIN),
        "gradients?run=%s&name=gradients&width=99999999999" % q(KERAS_TRAIN),
    ],
)
def test_bad_params_400(tb, path):
    body = get_json(tb, BASE + path, code=400)
    assert isinstance(body["error"], str) and body["error"]


@pytest.mark.parametrize(
    "path",
    [
        "predictions?run=nope&name=predictions",
        "predictions?run=%s&name=nope" % q(KERAS_TRAIN),
        "predictions?run=%s&name=gradients" % q(KERAS_TRAIN),
        "gradients?run=%s&name=predictions" % q(KERAS_TRAIN),
        "gradients?run=%s&name=gradients" % q(KERAS_VALIDATION),
        "gradient_histogram?run=%s&name=gradients&variable=nope" % q(KERAS_TRAIN),
        "gradient_histogram?run=nope&name=gradients&variable=x",
        "manifest?run=nope",
        "manifest?run=" + q(PLAIN_RUN),
        "predictions?run=%s&name=predictions" % q(PLAIN_RUN),
        "predictions?run=%s&name=predictions" % q(BROKEN_RUN),
        "no_such_route",
    ],
)
def test_unknown_404(tb, path):
    body = get_json(tb, BASE + path, code=404)
    assert isinstance(body["error"], str) and body["error"]


# --------------------------------------------------------------------------
# Static files.


def test_index_js(tb):
    r = tb.get(BASE + "index.js")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/javascript")
    assert r.headers.get("X-Content-Type-Options") == "nosniff"
    assert b"render" in r.get_data()


@pytest.mark.parametrize(
    "path",
    [
        "../../../../etc/passwd",
        "static/../health_plugin.py",
        "static/../../tb_plugin/health_plugin.py",
        "%2e%2e/health_plugin.py",
        "static/%2e%2e/health_plugin.py",
        "static/%2e%2e%2fhealth_plugin.py",
        "static/..%2f..%2f..%2fetc%2fpasswd",
        "static/%252e%252e%252fhealth_plugin.py",
        "static//etc/passwd",
        "static/%2fetc%2fpasswd",
        "/etc/passwd",
        "static/..\\health_plugin.py",
        "static/C:/Windows/win.ini",
        "static/",
        "static/does_not_exist.js",
        "health_plugin.py",
        "metadata.py",
    ],
)
def test_static_path_traversal_refused(tb, path):
    r = tb.get(BASE + path)
    assert r.status_code == 404, (path, r.status_code)
    data = r.get_data()
    assert b"root:" not in data and b"import" not in data and b"def " not in data


def test_static_guard_unit():
    guard = health_plugin._safe_static_path
    for bad in ["..", "../x", "a/../../x", "/etc/passwd", "%2e%2e/x", "a/%2e%2e/%2e%2e/x",
                "..%2fx", "x\x00.js", "a\\..\\b", "C:/x", "", ".", "./"]:
        assert guard(bad) is None, bad
    assert guard("index.js") == os.path.realpath(
        os.path.join(health_plugin._STATIC_DIR, "index.js")
    )


# --------------------------------------------------------------------------
# Deployment variants (Python loader).


def test_path_prefix_and_experiment_routes(health_logdir):
    t = TB(health_logdir, "python", path_prefix="/tb")
    try:
        body = get_json(t, "/tb" + BASE + "runs")
        assert sorted(r["run"] for r in body["runs"]) == HEALTH_RUNS
        listing = get_json(t, "/tb/data/plugins_listing")
        assert listing["health"]["loading_mechanism"]["module_path"] == (
            "/tb/data/plugin/health/index.js"
        )
        exp = get_json(t, "/tb/experiment/123" + BASE + "runs")
        assert sorted(r["run"] for r in exp["runs"]) == HEALTH_RUNS
        p = get_json(
            t, "/tb/experiment/123" + BASE + "predictions?run=%s&name=predictions"
            % q(KERAS_TRAIN)
        )
        assert p["run"] == KERAS_TRAIN
        r = t.get("/tb" + BASE + "index.js")
        assert r.status_code == 200
    finally:
        t.close()


def test_cache_hit_and_invalidation_on_new_data(tmp_path):
    import tensorflow as tf

    import tb_plugin.summary as summary

    logdir = str(tmp_path)
    run_dir = os.path.join(logdir, "grow")

    def write(steps):
        writer = tf.summary.create_file_writer(run_dir)
        with writer.as_default():
            for step in steps:
                summary.prediction_distribution(
                    "predictions", tf.random.normal((16, 4)), step=step,
                    from_logits=True,
                )
        writer.close()

    write(range(5))
    t = TB(logdir, "python")
    stats = t.plugin._runs.stats
    try:
        # A detail route on a cold cache reads only what it shows.
        body = get_json(t, BASE + "predictions?run=grow&name=predictions")
        assert body["scalars"][metadata.PRED_ENTROPY]["steps"][-1] == 4
        assert stats["partial_miss"] == 1 and stats["miss"] == 0
        get_json(t, BASE + "predictions?run=grow&name=predictions")
        assert stats["partial_miss"] == 1  # cached
        # The overview reads and diagnoses the whole run once...
        get_json(t, BASE + "runs")
        assert stats["miss"] == 1
        # ...and then everything is served from the cache.
        get_json(t, BASE + "runs")
        get_json(t, BASE + "predictions?run=grow&name=predictions&width=3")
        get_json(t, BASE + "manifest?run=grow")
        assert stats["miss"] == 1 and stats["partial_miss"] == 1
        # The overview reads what the rules read (diagnosis.read_for_diagnosis),
        # not the probability histograms: without its own read, the
        # predictions route reads them.
        t.plugin._runs._partial.clear()
        body = get_json(t, BASE + "predictions?run=grow&name=predictions")
        assert body["histograms"][metadata.PRED_TOP1_HIST]["steps"][-1] == 4
        assert stats["miss"] == 1 and stats["partial_miss"] == 2
        time.sleep(1.1)  # a new event file name
        write(range(5, 10))
        t.multiplexer.AddRunsFromDirectory(logdir)
        t.multiplexer.Reload()
        body = get_json(t, BASE + "predictions?run=grow&name=predictions")
        assert body["scalars"][metadata.PRED_ENTROPY]["steps"][-1] == 9
        assert stats["partial_miss"] == 3
        runs = get_json(t, BASE + "runs")
        assert stats["miss"] == 2
        assert runs["runs"][0]["run"] == "grow"
    finally:
        t.close()


def test_cold_detail_routes_read_only_what_they_show(health_logdir, monkeypatch):
    t = TB(health_logdir, "python")
    seen = []
    real_scalars = t.provider.read_scalars
    real_tensors = t.provider.read_tensors

    def spy_scalars(ctx, **kw):
        seen.append(("scalars", kw["run_tag_filter"].tags))
        return real_scalars(ctx, **kw)

    def spy_tensors(ctx, **kw):
        seen.append((kw["plugin_name"], kw["run_tag_filter"].tags))
        return real_tensors(ctx, **kw)

    monkeypatch.setattr(t.provider, "read_scalars", spy_scalars)
    monkeypatch.setattr(t.provider, "read_tensors", spy_tensors)
    try:
        grads = get_json(t, BASE + "gradients?run=%s&name=gradients" % q(KERAS_TRAIN))
        var = grads["variables"][0]
        for kind, tags in seen:
            assert tags is None or all("/predictions" not in tag for tag in tags), tags
        seen.clear()
        url = BASE + "gradient_histogram?run=%s&name=gradients&variable=%s" % (
            q(KERAS_TRAIN), q(var))
        cached = get_json(t, url)  # served by the gradients family just read
        assert seen == []
        t.plugin._runs._partial.clear()
        body = get_json(t, url)
        assert body == cached
        assert len(body["steps"]) >= 2
        assert [k for k, _ in seen] == [metadata.PLUGIN_NAME] * 2
        assert seen[1][1] == {metadata.stat_tag("gradients", metadata.GRAD_LOG10_HIST)}
        seen.clear()
        m = get_json(t, BASE + "manifest?run=%s" % q(KERAS_TRAIN))
        assert isinstance(m["manifest"], dict)
        assert [k for k, _ in seen] == [metadata.PLUGIN_NAME]
    finally:
        t.close()


# --------------------------------------------------------------------------
# Units.


def test_downsample_indices():
    ds = route_json.downsample_indices
    assert ds(0, 5).tolist() == []
    assert ds(3, 5).tolist() == [0, 1, 2]
    assert ds(10, 2).tolist() == [0, 9]
    assert ds(10, 1).tolist() == [9]
    idx = ds(1000, 7).tolist()
    assert len(idx) == 7 and idx[0] == 0 and idx[-1] == 999
    assert idx == sorted(set(idx))
    gaps = np.diff(idx)
    assert gaps.max() - gaps.min() <= 1


def test_float_encoding_units():
    from tb_plugin import diagnosis

    fl = diagnosis.json_floats
    assert fl([1.0, float("nan"), float("inf"), -float("inf")]) == [
        1.0, "NaN", "Infinity", "-Infinity"
    ]
    assert fl(np.float32([0.5])) == [0.5]
    assert health_plugin._dumps({"x": float("nan")}) == '{"x":"NaN"}'


_BLOCKED_APP = r"""
import json, sys

class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError("%s is blocked in this test" % name)

sys.meta_path.insert(0, _Block())
from tensorboard import default, program
from tensorboard.backend import application
from werkzeug.test import Client

tb = program.TensorBoard(plugins=default.get_plugins())
tb.configure(argv=[None, "--logdir", sys.argv[1], "--load_fast", "false",
                   "--reload_interval", "0", "--reload_task", "blocking"])
provider, multiplexer = tb._make_data_provider()
app = application.TensorBoardWSGIApp(tb.flags, tb.plugin_loaders, provider,
                                     tb.assets_zip_provider, multiplexer)
c = Client(app)
"""


def blocked_app_script(blocked, requests):
    """A script (run as ``python -c SCRIPT LOGDIR``) that serves LOGDIR
    through TensorBoard's Python loader with the top-level packages
    `blocked` unimportable, then runs `requests`: code that uses the
    werkzeug Client ``c`` and prints its result as JSON."""
    return "BLOCKED = %r\n" % (tuple(blocked),) + _BLOCKED_APP + requests


_NO_TF_SCRIPT = blocked_app_script(["tensorflow"], r"""
runs = json.loads(c.get("/data/plugin/health/runs").get_data())
listing = json.loads(c.get("/data/plugins_listing").get_data())
assert "tensorflow" not in sys.modules, "TensorFlow was imported"
print(json.dumps({"runs": {r["run"]: r["status"] for r in runs["runs"]},
                  "enabled": listing["health"]["enabled"]}))
""")


def test_plugin_works_without_tensorflow(health_logdir):
    import subprocess

    out = subprocess.run(
        [sys.executable, "-c", _NO_TF_SCRIPT, health_logdir],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["enabled"] is True
    assert sorted(result["runs"]) == HEALTH_RUNS
    assert result["runs"][NAN_RUN] == "unhealthy"


def test_bucket_values_units():
    from tb_plugin.reader import Series

    s = Series(steps=np.array([0, 1, 2, 3, 5, 8, 9]),
               values=np.array([0, 3, 1, np.nan, 2, 7, 1.0]))
    cols = np.array([0, 2, 4, 6, 7, 9])
    last, present = route_json.bucket_values(s, cols, use_max=False)
    assert present.tolist() == [True, True, True, True, False, True]
    assert np.allclose(last[present], [0, 1, np.nan, 2, 1], equal_nan=True)
    top, _ = route_json.bucket_values(s, cols, use_max=True)
    assert np.allclose(top[present], [0, 3, np.nan, 2, 7], equal_nan=True)
