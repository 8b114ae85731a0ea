"""Times the Health plugin's routes, cold and warm, and reports memory.

Builds a synthetic log directory in the on-disk format HealthCallback writes
(see tb_plugin/metadata.py: series of plugin ``health``, a gradient
record's per-variable series as two tensors, headline numbers as ``scalars``), written directly as TensorBoard event files (no
model is trained), loads it with TensorBoard's Python loader and, with
``--rust``, with the Rust data server too, and times over the real WSGI app:

* ``runs`` (the overview: reads and diagnoses every run) cold and warm;
* ``predictions``, ``gradients`` and ``gradient_histogram`` of one run, cold
  (first read of the run) and warm;
* the resident and peak memory of the process (and of the Rust data server)
  after the cold overview.

The series are no longer in TensorBoard's ``scalars`` and ``histograms``
plugins, so TensorBoard's own routes cannot serve them for comparison (format
1 logdirs, which they could, are no longer written).

With ``--diagnose``, times only :func:`tb_plugin.reader.read_run` and
:func:`tb_plugin.diagnosis.diagnose` of each run (no TensorBoard app).

Usage::

    python benchmarks/bench_routes.py [--runs 50] [--layers 100] [--steps 2000]
        [--grad-every 50] [--pred-every 1] [--logdir DIR] [--rust] [--diagnose]

``--layers L`` gives 2L gradient variables (a kernel and a bias per layer).
The event files are written with TensorFlow's TFRecordWriter when TensorFlow
is importable (fast CRC32C), otherwise with TensorBoard's pure Python writer.
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

import numpy as np

from tensorboard.compat.proto import event_pb2
from tensorboard.compat.proto import summary_pb2
from tensorboard.compat.proto import tensor_pb2
from tensorboard.compat.proto import tensor_shape_pb2
from tensorboard.compat.proto import types_pb2

from tb_plugin import metadata

# --------------------------------------------------------------------------
# Synthetic event files.


class _RecordFile:
    """TFRecord framing with CRC32C, through TF when available."""

    def __init__(self, path):
        self._tf_writer = None
        try:
            import tensorflow as tf  # noqa: F401  (fast C++ CRC32C)

            self._tf_writer = tf.io.TFRecordWriter(path)
        except ImportError:
            from tensorboard.summary.writer.record_writer import RecordWriter

            self._f = open(path, "wb")
            self._py_writer = RecordWriter(self._f)

    def write(self, data):
        if self._tf_writer is not None:
            self._tf_writer.write(data)
        else:
            self._py_writer.write(data)

    def close(self):
        if self._tf_writer is not None:
            self._tf_writer.close()
        else:
            self._py_writer.close()


_SCALAR_SHAPE = tensor_shape_pb2.TensorShapeProto()


def _scalar_value(tag, v, md):
    value = summary_pb2.Summary.Value(
        tag=tag,
        tensor=tensor_pb2.TensorProto(
            dtype=types_pb2.DT_FLOAT, tensor_shape=_SCALAR_SHAPE, float_val=[v]
        ),
    )
    if md is not None:
        value.metadata.CopyFrom(md)
    return value


def _array_value(tag, arr, md):
    """A float64 (histograms) or float32 (per-variable tensors) array."""
    value = summary_pb2.Summary.Value(
        tag=tag,
        tensor=tensor_pb2.TensorProto(
            dtype=types_pb2.DT_DOUBLE if arr.dtype == np.float64 else types_pb2.DT_FLOAT,
            tensor_shape=tensor_shape_pb2.TensorShapeProto(
                dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=n) for n in arr.shape]),
            tensor_content=arr.astype(arr.dtype.newbyteorder("<")).tobytes(),
        ),
    )
    if md is not None:
        value.metadata.CopyFrom(md)
    return value


def _hist_value(tag, edges, counts, md):
    arr = np.stack([edges[:-1], edges[1:], counts], axis=1).astype(np.float64)
    return _array_value(tag, arr, md)


def _json_value(tag, obj, md):
    value = summary_pb2.Summary.Value(
        tag=tag,
        tensor=tensor_pb2.TensorProto(
            dtype=types_pb2.DT_STRING,
            tensor_shape=_SCALAR_SHAPE,
            string_val=[json.dumps(obj).encode("utf-8")],
        ),
    )
    value.metadata.CopyFrom(md)
    return value


class _Tagger:
    """Adds summary metadata to the first value of each tag only, in the
    format HealthCallback writes (see tb_plugin.metadata: series of plugin
    ``health``, a gradient record's per-variable series as two tensors,
    headline numbers as ``scalars``)."""

    def __init__(self):
        self._seen = set()
        self.scalar_md = metadata.create_series_metadata(metadata.SERIES_SCALAR)
        self.hist_md = metadata.create_series_metadata(metadata.SERIES_HISTOGRAM)
        self.index_md = metadata.create_index_metadata()
        self.headline_md = metadata.create_headline_metadata()
        self.variable_stats_md = metadata.create_series_metadata(
            metadata.SERIES_VARIABLE_STATS, columns=list(metadata.GRADIENT_VARIABLE_STATS))
        self.variable_hist_md = metadata.create_series_metadata(
            metadata.SERIES_VARIABLE_HISTOGRAMS, range=list(metadata.LOG10_RANGE))

    def first(self, tag, md):
        if tag in self._seen:
            return None
        self._seen.add(tag)
        return md


def write_run(run_dir, *, layers, steps, grad_every, pred_every, scenario, seed):
    """Writes one synthetic training run (predictions + gradients + manifest).

    scenario: "healthy", "collapse" (entropy falls to 0 and one class wins),
    "vanishing" (gradient norms fall by depth), "nan" (NaN from half way).
    """
    rng = np.random.default_rng(seed)
    os.makedirs(run_dir, exist_ok=True)
    path = os.path.join(
        run_dir, "events.out.tfevents.%d.bench.%d" % (int(time.time()), seed)
    )
    f = _RecordFile(path)
    f.write(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2")
            .SerializeToString())
    t = _Tagger()
    K = 10
    variables = []
    for i in range(layers):
        variables.append(("model/dense_%d/kernel" % i, [64, 64]))
        variables.append(("model/dense_%d/bias" % i, [64]))
    pred_index = {"kind": "predictions", "task": "multiclass", "num_classes": K,
                  "from_logits": True, "has_labels": True}
    grad_index = {"kind": "gradients",
                  "variables": [{"path": p, "shape": s} for p, s in variables]}
    manifest = {
        "model": "synthetic", "output_layer": "dense_%d" % (layers - 1),
        "layers": [{"name": "dense_%d" % i, "class": "Dense", "activation": "relu",
                    "kernel_initializer": {"class": "GlorotUniform"},
                    "bias_initializer": {"class": "Zeros"}, "params": 64 * 65,
                    "trainable_params": 64 * 65} for i in range(layers)],
        "loss": {"class": "SparseCategoricalCrossentropy", "name": "loss",
                 "from_logits": True},
        "optimizer": {"class": "Adam", "learning_rate": 1e-3},
        "versions": {"tensorflow": "synthetic", "keras": "synthetic",
                     "tb_plugin": "bench"},
    }
    prob_edges = np.linspace(0.0, 1.0, metadata.PROBABILITY_BINS + 1)
    log_edges = np.linspace(metadata.LOG10_RANGE[0], metadata.LOG10_RANGE[1],
                            metadata.LOG10_BINS + 1)
    class_edges = np.arange(K + 1, dtype=np.float64)
    depth = np.arange(len(variables)) // 2
    wall = time.time() - steps
    nan_from = steps // 2 if scenario == "nan" else None
    for step in range(steps):
        values = []
        headline = {}
        frac = step / max(steps - 1, 1)
        broken = nan_from is not None and step >= nan_from
        if step == 0:
            values.append(_json_value(metadata.MANIFEST_TAG, manifest, t.index_md))
        if step % pred_every == 0:
            name = "predictions"
            tag = metadata.index_tag(name)
            values.append(_json_value(tag, pred_index, t.index_md))
            if scenario == "collapse":
                entropy = max(0.0, 0.9 * (1 - 2 * frac))
                acc = 0.1
            else:
                entropy = 0.9 - 0.6 * frac + rng.normal(0, 0.01)
                acc = 0.1 + 0.8 * frac
            stats = {
                metadata.PRED_ENTROPY: entropy,
                metadata.PRED_TIE_FRACTION: 0.0,
                metadata.PRED_ZERO_LOGIT_FRACTION: 0.0,
                metadata.PRED_NONFINITE: 640.0 if broken else 0.0,
                metadata.PRED_ACCURACY: acc,
                metadata.PRED_TIE_TOLERANT_ACCURACY: acc,
                metadata.PRED_COUNT: 64.0,
            }
            if broken:
                stats[metadata.PRED_ENTROPY] = float("nan")
            for stat, v in stats.items():
                st = metadata.stat_tag(name, stat)
                values.append(_scalar_value(st, v, t.first(st, t.scalar_md)))
            headline = {metadata.HEADLINE_ENTROPY: stats[metadata.PRED_ENTROPY],
                        metadata.HEADLINE_TIE_FRACTION: 0.0,
                        metadata.HEADLINE_ACCURACY_GAP: 0.0,
                        metadata.HEADLINE_OUTPUT_NONFINITE: stats[metadata.PRED_NONFINITE]}
            top1 = rng.multinomial(64, np.ones(metadata.PROBABILITY_BINS) /
                                   metadata.PROBABILITY_BINS).astype(float)
            classes = rng.multinomial(64, np.ones(K) / K).astype(float)
            if scenario == "collapse" and frac > 0.5:
                classes = np.zeros(K)
                classes[3] = 64.0
            for stat, edges, counts in (
                (metadata.PRED_TOP1_HIST, prob_edges, top1),
                (metadata.PRED_CLASS_PROB_HIST, prob_edges, top1),
                (metadata.PRED_PREDICTED_CLASSES, class_edges, classes),
                (metadata.PRED_LABEL_CLASSES, class_edges,
                 rng.multinomial(64, np.ones(K) / K).astype(float)),
            ):
                st = metadata.stat_tag(name, stat)
                values.append(_hist_value(st, edges, counts, t.first(st, t.hist_md)))
        if step % grad_every == 0:
            name = "gradients"
            tag = metadata.index_tag(name)
            values.append(_json_value(tag, grad_index, t.index_md))
            if scenario == "vanishing":
                norms = 10.0 ** (-0.1 * (layers - 1 - depth))
            else:
                norms = np.full(len(variables), 0.5)
            norms = norms * np.exp(rng.normal(0, 0.05, len(variables)))
            if broken:
                norms = np.full(len(variables), np.nan)
            n = len(variables)
            columns = {  # metadata.GRADIENT_VARIABLE_STATS, in order
                metadata.GRAD_NORM: norms,
                metadata.GRAD_MAX_ABS: norms / 4,
                metadata.GRAD_ZERO_FRACTION: np.zeros(n),
                metadata.GRAD_NONFINITE: np.full(n, 4096.0 if broken else 0.0),
                metadata.GRAD_WEIGHT_NORM: np.full(n, 8.0),
                metadata.GRAD_UPDATE_RATIO: np.full(n, 1e-3),
            }
            matrix = np.stack([columns[s] for s in metadata.GRADIENT_VARIABLE_STATS], axis=1)
            st = metadata.stat_tag(name, metadata.GRAD_VARIABLE_STATS)
            values.append(_array_value(st, matrix.astype(np.float32),
                                       t.first(st, t.variable_stats_md)))
            centers = np.where(np.isfinite(norms), np.log10(np.abs(norms) / 64), 0.0)
            counts = np.stack([np.histogram(rng.normal(c, 0.5, 256), bins=log_edges)[0]
                               for c in centers])
            st = metadata.stat_tag(name, metadata.GRAD_LOG10_HIST)
            values.append(_array_value(st, counts.astype(np.float32),
                                       t.first(st, t.variable_hist_md)))
            st = metadata.stat_tag(name, metadata.GRAD_FIRST_LAST_RATIO)
            values.append(_scalar_value(st, float(norms[0] / norms[-2]),
                                        t.first(st, t.scalar_md)))
            headline.update({
                metadata.HEADLINE_FIRST_LAST_RATIO: float(norms[0] / norms[-2]),
                metadata.HEADLINE_MAX_UPDATE_RATIO: 1e-3,
                metadata.HEADLINE_GRADIENT_NONFINITE: 4096.0 * len(variables) if broken
                else 0.0})
        # The headline numbers of the families written (see metadata.HEADLINE_STATS).
        for stat, v in headline.items():
            st = metadata.headline_tag(stat)
            values.append(_scalar_value(st, float(v), t.first(st, t.headline_md)))
        if values:
            ev = event_pb2.Event(wall_time=wall + step, step=step,
                                 summary=summary_pb2.Summary(value=values))
            f.write(ev.SerializeToString())
    f.close()


SCENARIOS = ("healthy", "collapse", "vanishing", "nan")


def build_logdir(logdir, *, runs, layers, steps, grad_every, pred_every):
    marker = os.path.join(logdir, ".bench_params.json")
    params = dict(runs=runs, layers=layers, steps=steps, grad_every=grad_every,
                  pred_every=pred_every,
                  format=metadata.FORMAT_VERSION)
    if os.path.exists(marker):
        with open(marker) as fh:
            if json.load(fh) == params:
                return False
        shutil.rmtree(logdir)
    os.makedirs(logdir, exist_ok=True)
    for r in range(runs):
        scenario = SCENARIOS[r % len(SCENARIOS)]
        write_run(os.path.join(logdir, "run_%02d_%s" % (r, scenario), "train"),
                  layers=layers, steps=steps, grad_every=grad_every,
                  pred_every=pred_every, scenario=scenario, seed=r)
    with open(marker, "w") as fh:
        json.dump(params, fh)
    return True


# --------------------------------------------------------------------------
# Apps and timing.


def make_app(logdir, load_fast):
    """(wsgi_app, cleanup) for a real TensorBoard app with the Health plugin."""
    from tensorboard import default, program
    from tensorboard.backend import application


    plugins = default.get_plugins()  # the entry point brings the Health plugin
    tb = program.TensorBoard(plugins=plugins)
    argv = [None, "--logdir", logdir, "--load_fast", "true" if load_fast else "false",
            "--reload_interval", "0"]
    if not load_fast:
        argv += ["--reload_task", "blocking"]
    tb.configure(argv=argv)
    provider, multiplexer = tb._make_data_provider()
    app = application.TensorBoardWSGIApp(
        tb.flags, tb.plugin_loaders, provider, tb.assets_zip_provider, multiplexer
    )

    def cleanup():
        ingester = getattr(tb, "_ingester", None)
        handle = getattr(ingester, "_stdin_handle", None)
        if handle is not None:
            handle.close()

    return app, cleanup


def wait_loaded(client, runs_expected, timeout=900):
    """Waits until the data server has every run's health data."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        r = client.get("/data/runs")
        runs = json.loads(r.get_data()) if r.status_code == 200 else []
        if len(runs) >= runs_expected:
            # Stable for two polls: nothing left to load.
            key = client.get("/data/plugin/scalars/tags").get_data()
            if key == last:
                return True
            last = key
        time.sleep(2.0)
    return False


def _timed(client, url, repeat=1, method="get", data=None):
    times = []
    body = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        if method == "get":
            r = client.get(url)
        else:
            r = client.post(url, data=data)
        body = r.get_data()
        times.append(time.perf_counter() - t0)
        if r.status_code != 200:
            raise RuntimeError("%s -> %d %s" % (url, r.status_code, body[:300]))
    return statistics.median(times), body


def _numbers(obj):
    """How many numbers (or null/"NaN" cells) a JSON answer carries."""
    if isinstance(obj, dict):
        return sum(_numbers(v) for v in obj.values())
    if isinstance(obj, list):
        return sum(_numbers(v) for v in obj)
    if isinstance(obj, str):
        return 1 if obj in ("NaN", "Infinity", "-Infinity") else 0
    return 1 if obj is None or isinstance(obj, (int, float)) else 0


def _health_plugin(app):
    for plugin in getattr(app, "_plugins", []):
        if plugin.plugin_name == metadata.PLUGIN_NAME:
            return plugin
    raise RuntimeError("Health plugin not loaded")


def _rss_mib(pid="self"):
    """(resident, peak resident) MiB of process `pid` (Linux /proc), or
    (None, None) where it cannot be read."""
    fields = {}
    try:
        with open("/proc/%s/status" % pid) as fh:
            for line in fh:
                key, _, value = line.partition(":")
                fields[key] = value
    except OSError:
        return None, None
    return tuple(int(fields[k].split()[0]) / 1024 if k in fields else None
                 for k in ("VmRSS", "VmHWM"))


def _children():
    """Process ids of this process' children (the Rust data server)."""
    pids = []
    for task in os.listdir("/proc/self/task"):
        try:
            with open("/proc/self/task/%s/children" % task) as fh:
                pids += fh.read().split()
        except OSError:
            pass
    return pids


def memory():
    """{"python": (rss, peak) MiB, "data server": (rss, peak) MiB of the
    children} of the benchmark process."""
    out = {"python": _rss_mib()}
    children = [_rss_mib(pid) for pid in _children()]
    children = [c for c in children if c[0] is not None]
    if children:
        out["data server"] = (sum(c[0] for c in children),
                              sum(c[1] or 0 for c in children))
    return out


def memory_text(mem):
    return ", ".join("%s %.0f MiB (peak %.0f)" % (k, rss, peak)
                     for k, (rss, peak) in mem.items() if rss is not None)


def bench(app, run, layers, width):
    """Rows (route, cold s, warm s, numbers) and the memory after the cold
    overview (see memory())."""
    from urllib.parse import quote

    from werkzeug.test import Client

    c = Client(app)
    plugin = _health_plugin(app)
    out = []
    base = "/data/plugin/health/"
    q = quote(run)
    variables = ["model/dense_%d/%s" % (i, kb) for i in range(layers)
                 for kb in ("kernel", "bias")]
    plugin._runs._cache.clear()
    plugin._runs._partial.clear()
    cold, body = _timed(c, base + "runs")
    mem = memory()
    warm, body = _timed(c, base + "runs", repeat=5)
    nruns = len(json.loads(body)["runs"])
    out.append(("runs (%d runs)" % nruns, cold, warm, _numbers(json.loads(body))))
    routes = [
        ("predictions", "predictions?run=%s&name=predictions" % q),
        ("gradients", "gradients?run=%s&name=gradients" % q),
        ("gradient_histogram", "gradient_histogram?run=%s&name=gradients&variable=%s"
         % (q, quote(variables[0]))),
        ("manifest", "manifest?run=%s" % q),
    ]
    for name, path in routes:
        for w in ((width, 100000) if name != "manifest" else (None,)):
            url = base + path + ("&width=%d" % w if w else "")
            colds = []
            for _ in range(3):  # median of 3: the machine may be shared
                plugin._runs._cache.clear()  # nothing of the run cached: cold
                plugin._runs._partial.clear()
                colds.append(_timed(c, url)[0])
            cold_t = statistics.median(colds)
            warm_t, body = _timed(c, url, repeat=9)
            label = name + ("" if w is None else " (all)" if w == 100000 else " w=%d" % w)
            out.append((label, cold_t, warm_t, _numbers(json.loads(body))))
    return out, mem


def bench_diagnose(logdir, repeat=5):
    """Rows (run, variables, gradient records, read s, diagnose s): medians of
    `repeat`, each diagnosing freshly read records (nothing cached)."""
    from tb_plugin import diagnosis
    from tb_plugin import reader

    provider, eid = reader.open_logdir(logdir)
    rows = []
    for run in reader.health_runs(provider, None, eid):
        reads, diags = [], []
        for _ in range(repeat):
            t0 = time.perf_counter()
            records = reader.read_run(provider, None, eid, run)
            t1 = time.perf_counter()
            diagnosis.diagnose(records)
            diags.append(time.perf_counter() - t1)
            reads.append(t1 - t0)
        grads = list(records.gradients.values())
        rows.append((run, sum(len(g.variables) for g in grads),
                     max((len(g.steps) for g in grads), default=0),
                     statistics.median(reads), statistics.median(diags)))
    return rows


def print_rows(rows):
    print("%-26s %8s %8s %9s" % ("route", "cold s", "warm s", "numbers"))
    for name, cold, warm, n in rows:
        print("%-26s %8.3f %8.4f %9d" % (name, cold, warm, n))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--layers", type=int, default=100)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--grad-every", type=int, default=50)
    p.add_argument("--pred-every", type=int, default=1)
    p.add_argument("--width", type=int, default=500)
    p.add_argument("--logdir", default=None,
                   help="where to build the logs (reused when parameters match)")
    p.add_argument("--rust", action="store_true",
                   help="also benchmark with the Rust data server (--load_fast=true)")
    p.add_argument("--no-python", action="store_true",
                   help="skip the Python loader")
    p.add_argument("--diagnose", action="store_true",
                   help="only time reader.read_run and diagnosis.diagnose per run")
    args = p.parse_args(argv)

    logdir = args.logdir or os.path.join(tempfile.gettempdir(), "tb_health_bench_%d_%d_%d_%d"
                                         % (args.runs, args.layers, args.steps,
                                            args.grad_every))
    t0 = time.time()
    built = build_logdir(logdir, runs=args.runs, layers=args.layers, steps=args.steps,
                         grad_every=args.grad_every, pred_every=args.pred_every)
    print("logdir %s (%s in %.1fs): %d runs, %d gradient variables, %d steps, "
          "gradients every %d, predictions every %d"
          % (logdir, "built" if built else "reused", time.time() - t0, args.runs,
             2 * args.layers, args.steps, args.grad_every, args.pred_every))
    sys.stdout.flush()

    if args.diagnose:
        print("%-26s %9s %8s %8s %10s" % ("run", "variables", "records", "read s",
                                          "diagnose s"))
        for run, nvars, nrec, read_s, diag_s in bench_diagnose(logdir):
            print("%-26s %9d %8d %8.3f %10.4f" % (run, nvars, nrec, read_s, diag_s))
        return

    loaders = []
    if not args.no_python:
        loaders.append(("python", False))
    if args.rust:
        loaders.append(("rust", True))
    for label, fast in loaders:
        t0 = time.time()
        app, cleanup = make_app(logdir, fast)
        from werkzeug.test import Client

        if fast:
            wait_loaded(Client(app), args.runs)
        print("\n== loader: %s (loaded in %.1fs) ==" % (label, time.time() - t0))
        rows, mem = bench(app, "run_00_healthy/train", args.layers, args.width)
        print_rows(rows)
        print("memory after the cold overview: %s" % memory_text(mem))
        sys.stdout.flush()
        cleanup()
    print("\ncold = first request after the plugin's cache was cleared (runs: read + "
          "diagnosis of every run; detail routes: read of what they show). (all) = no "
          "downsampling. Peak memory is the process' since it started (loading included).")

if __name__ == "__main__":
    main()
