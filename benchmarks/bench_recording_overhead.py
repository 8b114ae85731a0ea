"""Overhead of HealthCallback on whole ``model.fit`` wall time.

Prints, from one run, for each model (two tiny ones, the worst case: a
record is a large share of their 2-6 ms steps; and two realistic ones: a
residual CNN with BatchNorm, 47 variables, and a Transformer encoder with
embeddings, attention and LayerNorm, 100 variables) and a short training
(default 5 epochs x 150 steps, with validation data):

* the ratio of the whole ``model.fit`` wall time with the callback to the
  time without it, at the default setting (log_every_n_steps=50) and logging
  every step, each also with ``report_findings=False`` (so that the cost of
  the end-of-epoch online diagnosis is visible), and the same ratio of the
  process's CPU time (steadier than wall time on a shared machine);
* the same ratio for fits without the callback whose model state
  (optimizer, compiled loss and metrics) Keras builds before fit, as the
  callback has it built: Keras otherwise creates those variables while it
  traces the first train step and then traces the step again, so part of
  every ratio with the callback is this saved trace (what the callback's
  own costs are: its ratio over this one);
* the steady-state ratio per train step (train phase of epochs 2+, i.e.
  without validation, end-of-epoch work and the first epoch's tracing);
* the first epoch's wall time (where the one-time costs land);
* the cost of one record measured inside fits that log every other step:
  the median logged step minus the median unlogged step, which alternate
  (steadier than ratios of whole fits, which the load of a shared machine
  moves by several percent from one fit to the next);
* the bytes written per logged train step (and per validation record);
* the same whole-fit ratio for a single fit in a fresh Python process, as a
  script that trains once sees it: the first fit of a process also pays
  one-time costs that later fits of the process do not (importing the
  online diagnosis' event loader, tracing the callback's shared statistics
  functions); every fit above runs after a warm-up fit.

Every fit starts from a freshly built and compiled model, as a user's
script does, so that every fit traces its train and test steps anew. The Keras settings are the same for both fits of a
pair: jit_compile=False (what "auto" resolves to on CPU; the callback turns
XLA off while it records, so a jit_compile=True baseline would not be a like
for like comparison), steps_per_execution=1, run_eagerly=False.

Every fit with the callback runs right next to one without it (the order
alternating), and the ratios reported are the medians of the per-pair ratios,
with their quartiles: shared machines are noisy, and pairing cancels most of
the drift of the load. The "best" column is the ratio of the fastest fit with
the callback to the fastest without (noise only ever adds time). A verdict
needs the 90% bootstrap confidence interval of the median pair ratio to lie
on one side of the target ("undecided" otherwise): on this kind of machine
the same fit's wall and CPU time move by +-10-20% from one fit to the next
(the machine's speed drifts within seconds), so a median of a few pairs is
only known to within a few percent. The spread of the fits without the
callback is printed too.

    python benchmarks/bench_recording_overhead.py [--repeats 7] [--epochs 5]
        [--steps 150] [--models mlp,cnn,resnet,transformer] [--fresh-pairs 3]
        [--targets-only] [--without-call-options]
        (~2 x 5 x repeats fits per model, plus 2 x 2 x fresh-pairs processes;
        --targets-only: 2 x 2 x repeats, for the many pairs a verdict within a
        few percent needs on a noisy machine: identical fits without the
        callback differ by ~10% (standard deviation of their ratio) here;
        --without-call-options: also those settings without tf_internals's
        Grappler call options, paired with them, to see what they buy)

Targets: whole fit <= 1.03x at the default setting, <= 1.20x every step on
the tiny models; <= 1.02x and <= 1.05x on the realistic ones.
"""

import argparse
import contextlib
import gc
import glob
import io
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from unittest import mock

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import tb_plugin.callback  # noqa: E402
from tb_plugin import tf_internals  # noqa: E402
from tb_plugin.callback import HealthCallback  # noqa: E402
from tb_plugin.train_step_hooks import TrainStepHooks  # noqa: E402

FINDINGS = set()  # findings printed by the callback (random labels: expected)
KERAS_SETTINGS = dict(jit_compile=False, steps_per_execution=1, run_eagerly=False)


def seed000_model():
    """Seed 000's model: 300 token counts -> Dense 96 elu -> Dropout 0.2 -> Dense 7."""
    model = keras.Sequential([
        keras.Input((300,)),
        keras.layers.Dense(96, activation="elu"),
        keras.layers.Dropout(0.2),
        keras.layers.Dense(7),
    ])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], **KERAS_SETTINGS)
    return model


def seed000_data(n, rng):
    return rng.poisson(0.3, size=(n, 300)).astype(np.float32), rng.integers(0, 7, n)


def cnn_model():
    """A small CNN on 28x28x1 inputs, 10 classes."""
    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(16, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dense(10),
    ])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], **KERAS_SETTINGS)
    return model


def cnn_data(n, rng):
    return rng.random((n, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, n)


def residual_block(x, filters, stride):
    """conv-BN-relu-conv-BN plus the shortcut (a 1x1 conv-BN where the shape
    changes), relu."""
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = keras.layers.Conv2D(filters, 1, strides=stride, use_bias=False)(x)
        shortcut = keras.layers.BatchNormalization()(shortcut)
    x = keras.layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False)(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
    x = keras.layers.BatchNormalization()(x)
    return keras.layers.ReLU()(keras.layers.Add()([x, shortcut]))


def resnet_model():
    """A residual CNN on CIFAR-shaped 32x32x3 inputs, 10 classes: a conv-BN
    stem, 3 stages (16, 32, 64 filters) of 2 residual blocks, global
    pooling, Dense 10; 47 trainable variables."""
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(16, 3, padding="same", use_bias=False)(inputs)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
    for stage, filters in enumerate((16, 32, 64)):
        for block in range(2):
            x = residual_block(x, filters, 2 if stage and not block else 1)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return _compiled(keras.Model(inputs, keras.layers.Dense(10)(x), name="resnet"))


def _compiled(model):
    """`model` compiled as every realistic model of the benchmark."""
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], **KERAS_SETTINGS)
    return model


def resnet_data(n, rng):
    return rng.random((n, 32, 32, 3), dtype=np.float32), rng.integers(0, 10, n)


SEQUENCE, VOCABULARY = 32, 1000


class TokenAndPositionEmbedding(keras.layers.Layer):
    def __init__(self, width, **kwargs):
        super().__init__(**kwargs)
        self.tokens = keras.layers.Embedding(VOCABULARY, width)
        self.positions = keras.layers.Embedding(SEQUENCE, width)

    def call(self, x):
        return self.tokens(x) + self.positions(keras.ops.arange(keras.ops.shape(x)[-1]))


def transformer_model(blocks=6, width=32, heads=4):
    """A Transformer encoder classifying sequences of 32 tokens (vocabulary
    1000) into 4 classes: token + position embeddings, `blocks` post-norm
    blocks of MultiHeadAttention + LayerNorm + MLP (width 32, 4 heads, MLP
    64), mean pooling, Dense 4; 100 trainable variables."""
    inputs = keras.Input((SEQUENCE,), dtype="int32")
    x = TokenAndPositionEmbedding(width)(inputs)
    for _ in range(blocks):
        attention = keras.layers.MultiHeadAttention(heads, width // heads)(x, x)
        x = keras.layers.LayerNormalization()(x + keras.layers.Dropout(0.1)(attention))
        mlp = keras.layers.Dense(2 * width, activation="gelu")(x)
        mlp = keras.layers.Dense(width)(mlp)
        x = keras.layers.LayerNormalization()(x + keras.layers.Dropout(0.1)(mlp))
    x = keras.layers.GlobalAveragePooling1D()(x)
    return _compiled(keras.Model(inputs, keras.layers.Dense(4)(x), name="transformer"))


def transformer_data(n, rng):
    return rng.integers(0, VOCABULARY, (n, SEQUENCE)).astype(np.int32), rng.integers(0, 4, n)


# Targets on whole-fit wall ratios (default, every step): the tiny models are
# the worst case (a record is a large share of their ~2-6 ms steps); the
# realistic ones are what users train.
TINY_TARGETS = (1.03, 1.20)
REALISTIC_TARGETS = (1.02, 1.05)

MODELS = {
    "mlp": ("seed000 MLP: 300 -> Dense 96 elu -> Dropout 0.2 -> Dense 7", seed000_model,
            seed000_data, 512, TINY_TARGETS),
    "cnn": ("small CNN: 28x28x1 -> Conv 8 -> Pool -> Conv 16 -> Pool -> Dense 10",
            cnn_model, cnn_data, 128, TINY_TARGETS),
    "resnet": ("residual CNN: 32x32x3 -> conv-BN stem -> 3 stages x 2 residual blocks "
               "(16/32/64 filters, BN) -> Dense 10", resnet_model, resnet_data, 32,
               REALISTIC_TARGETS),
    "transformer": ("Transformer encoder: 32 tokens -> token + position embeddings -> 6 x "
                    "(MultiHeadAttention 4 heads + LayerNorm + MLP 64, width 32) -> Dense 4",
                    transformer_model, transformer_data, 32, REALISTIC_TARGETS),
}

# Without the callback, but with the optimizer, compiled loss and metrics
# built before fit, as the callback builds them (Keras's own symbolic build):
# otherwise Keras creates their variables while it traces the first train
# step, and traces that step a second time. The ratio of these fits to plain
# ones is the part of the callback's ratios that is this saving.
PREBUILT = "state built before fit"

# name -> HealthCallback kwargs (None: no callback; PREBUILT: see above)
SETTINGS = [
    ("without callback", None),
    ("no callback, " + PREBUILT, PREBUILT),
    ("default (every 50 steps)", dict(log_every_n_steps=50)),
    ("every step", dict(log_every_n_steps=1)),
    ("default, report_findings=False", dict(log_every_n_steps=50, report_findings=False)),
    ("every step, report_findings=False", dict(log_every_n_steps=1, report_findings=False)),
]
TARGETS = ("default (every 50 steps)", "every step")  # the settings with a target

# --without-call-options: the same two settings with tf_internals's Grappler
# call options off (function_call_options returning None, as on a
# TensorFlow that lays them out differently), to see what that private API
# buys (compared with the settings above in the same repeat).
NO_CALL_OPTIONS = ", no Grappler call options"
WITHOUT_CALL_OPTIONS = [(name + NO_CALL_OPTIONS, dict(kwargs, call_options=False))
                        for name, kwargs in SETTINGS if name in TARGETS]


def targets(key):
    """{setting name: whole-fit ratio target} of model `key`."""
    return dict(zip(TARGETS, MODELS[key][4]))


def clocks():
    """(wall seconds, CPU seconds of this process, all threads)."""
    return time.perf_counter(), time.process_time()


class PhaseTimer(keras.callbacks.Callback):
    """Train-phase wall and CPU time of every epoch (epoch begin -> validation
    begin), and the first epoch's wall time."""

    def on_train_begin(self, logs=None):
        self.train_times, self.train_cpu, self.epoch_times = [], [], []

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = clocks()
        self._t_val = None

    def on_test_begin(self, logs=None):
        if self._t_val is None:
            self._t_val = clocks()

    def on_epoch_end(self, epoch, logs=None):
        end = clocks()
        val = self._t_val or end
        self.train_times.append(val[0] - self._t0[0])
        self.train_cpu.append(val[1] - self._t0[1])
        self.epoch_times.append(end[0] - self._t0[0])


class StepTimer(keras.callbacks.Callback):
    """Wall time of every train step (batch begin -> batch end)."""

    def on_train_begin(self, logs=None):
        self.times = []

    def on_train_batch_begin(self, batch, logs=None):
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter() - self._t0)


def interleaved_step_cost(make_model, data, batch, epochs, logdir):
    """(median logged step, median unlogged step) in seconds, from one fit
    that logs every other step: the two kinds of steps alternate, so the
    machine's drift (the noise of whole-fit ratios) hits both alike. Epochs
    2+ only (the first traces the train function)."""
    x, y, xv, yv = data
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    model = make_model()
    timer = StepTimer()
    callbacks = [timer, HealthCallback(logdir, log_every_n_steps=2, report_findings=False)]
    model.fit(x, y, batch_size=batch, epochs=epochs, validation_data=(xv, yv), shuffle=False,
              verbose=0, callbacks=callbacks)
    per_epoch = len(timer.times) // epochs
    times = list(enumerate(timer.times))[per_epoch:]  # (optimizer step, seconds)
    logged = [t for step, t in times if step % 2 == 0]
    unlogged = [t for step, t in times if step % 2 == 1]
    return statistics.median(logged), statistics.median(unlogged)


class _AlternatingHooks(TrainStepHooks):
    """The recording installed with train steps that alternate between
    Keras's plain train function and the one with the recording behind its
    conds (what short runs on CPU use, see
    TrainStepHooks.use_single_function), with the time of every call. The
    calls with the conds run with the recording's Grappler call options, as
    in a fit with the callback."""

    times = None  # {"plain": [seconds], "conds": [seconds]} of the last fit

    def use_single_function(self):
        return True

    def install_train_functions(self, model):
        times = _AlternatingHooks.times = {"plain": [], "conds": []}
        recorder = self._recorder
        functions = {}
        for kind, recording in (("plain", False), ("conds", True)):
            model.make_train_function(force=True)
            functions[kind] = (model.train_function, recording)
        calls = [0]
        lean = self._lean_options

        def train_function(iterator):
            calls[0] += 1
            kind = "conds" if calls[0] % 2 else "plain"
            function, recorder.recording = functions[kind]
            options = lean if kind == "conds" else None
            start = time.perf_counter()
            with tf_internals.calls_with(options):
                out = function(iterator)
            times[kind].append(time.perf_counter() - start)
            return out

        model.train_function = train_function


def cond_step_cost(make_model, data, batch, epochs, logdir):
    """(median call with the conds, median plain call) in seconds, on steps
    that are not logged, alternating in one fit (epochs 2+)."""
    x, y, _, _ = data
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    model = make_model()
    # Log step 0 only, to time the unlogged steps.
    callback = HealthCallback(logdir, log_every_n_steps=10**9, report_findings=False)
    with mock.patch.object(tb_plugin.callback, "TrainStepHooks", _AlternatingHooks):
        model.fit(x, y, batch_size=batch, epochs=epochs, shuffle=False, verbose=0,
                  callbacks=[callback])
    times = _AlternatingHooks.times
    skip = len(x) // batch // 2  # the first epoch's calls of each kind
    return (statistics.median(times["conds"][skip:]),
            statistics.median(times["plain"][skip:]))


def dir_bytes(path):
    return sum(os.path.getsize(f) for f in glob.glob(os.path.join(path, "**", "*"),
                                                     recursive=True) if os.path.isfile(f))


def one_fit(make_model, data, batch, epochs, kwargs, logdir):
    x, y, xv, yv = data
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    model = make_model()
    timer = PhaseTimer()
    callbacks = [timer]
    call_options = contextlib.nullcontext()
    if kwargs is not None and kwargs != PREBUILT:
        kwargs = dict(kwargs)
        if not kwargs.pop("call_options", True):
            call_options = mock.patch.object(tf_internals, "function_call_options",
                                             lambda **rewrite: None)
        callbacks.append(HealthCallback(logdir, **kwargs))
    gc.collect()
    err = io.StringIO()  # the callback prints its findings on stderr
    t, c = clocks()
    if kwargs == PREBUILT:  # timed: the callback builds the state inside fit
        model._symbolic_build(data_batch=(x[:batch], y[:batch]))
    with contextlib.redirect_stderr(err), call_options:
        model.fit(x, y, batch_size=batch, epochs=epochs, validation_data=(xv, yv),
                  shuffle=False, verbose=0, callbacks=callbacks)
    t2, c2 = clocks()
    FINDINGS.update(line.split(":", 2)[1].strip() for line in err.getvalue().splitlines()
                    if line.startswith("tb_plugin:"))
    rest = slice(1, None) if epochs > 1 else slice(0, None)
    return {
        "total": t2 - t,
        "total_cpu": c2 - c,
        "steady": statistics.median(timer.train_times[rest]),
        "steady_cpu": statistics.median(timer.train_cpu[rest]),
        "first": timer.epoch_times[0],
    }


def fresh_process_fit(key, setting, steps, epochs, val_batches, threads):
    """Wall seconds of one fit run in a new Python process (this script with
    --one-fit), as a script that trains once sees them."""
    out = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--one-fit", key, str(setting),
         "--steps", str(steps), "--epochs", str(epochs), "--val-batches", str(val_batches),
         "--threads", str(threads)],
        check=True, capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def one_fit_main(key, setting, steps, epochs, val_batches):
    """--one-fit: prints the wall seconds of one fit of `setting` (its index
    in SETTINGS) in this fresh process."""
    _, make_model, make_data, batch, _ = MODELS[key]
    rng = np.random.default_rng(0)
    x, y = make_data(steps * batch, rng)
    xv, yv = make_data(val_batches * batch, rng)
    tmp = tempfile.mkdtemp(prefix="tb_health_bench_")
    try:
        result = one_fit(make_model, (x, y, xv, yv), batch, epochs, SETTINGS[setting][1],
                         os.path.join(tmp, "run"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(result["total"])


def fresh_process_ratios(key, steps, epochs, val_batches, pairs, threads):
    """{setting name: per-pair wall ratios} of single fits in fresh processes,
    with and without the callback side by side (order alternating)."""
    out = {}
    for name in TARGETS:
        index = [n for n, _ in SETTINGS].index(name)
        ratios = []
        for r in range(pairs):
            order = [index, 0] if r % 2 else [0, index]
            t = {i: fresh_process_fit(key, i, steps, epochs, val_batches, threads)
                 for i in order}
            ratios.append(t[index] / t[0])
        out[name] = ratios
    return out


def quartiles(values):
    q = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
    return q[0], q[2]


def median_interval(values, level=0.9, draws=4000):
    """Bootstrap `level` confidence interval of the median of `values`."""
    values = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(0)
    medians = np.median(rng.choice(values, size=(draws, values.size)), axis=1)
    lo, hi = np.quantile(medians, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def verdict(ratios, target):
    """(word, text): "meets" when the 90% interval of the median ratio lies
    at or under `target`, "MISSES" when above it, "undecided" when it spans
    the target (the machine's noise is larger than the distance to it)."""
    lo, hi = median_interval(ratios)
    interval = "90%% CI of the median %.3f-%.3f" % (lo, hi)
    if hi <= target:
        return "meets", interval
    if lo > target:
        return "MISSES", interval
    return "undecided", interval + " spans it"


def bench(key, steps, epochs, repeats, val_batches, tmp, fresh_pairs, threads,
          targets_only=False, without_call_options=False):
    """Pairs: every fit with the callback runs next to a fit without it (the
    order alternates), and each setting's ratios are the medians of its
    per-pair ratios, so that load changes on a shared machine between pairs
    cancel out. The quartiles of the per-pair wall ratios show the noise.
    `targets_only`: just the settings with a target (more pairs in the same
    time, for a verdict)."""
    title, make_model, make_data, batch, _ = MODELS[key]
    settings = [(name, kwargs) for name, kwargs in SETTINGS
                if not targets_only or kwargs is None or name in TARGETS]
    if without_call_options:
        settings += WITHOUT_CALL_OPTIONS
    rng = np.random.default_rng(0)
    x, y = make_data(steps * batch, rng)
    xv, yv = make_data(val_batches * batch, rng)
    data = (x, y, xv, yv)
    # Warm-up (process-wide first-use costs of TF, tb_plugin, TensorBoard's
    # loader), not counted.
    for name, kwargs in settings:
        one_fit(make_model, (x[: 4 * batch], y[: 4 * batch], xv[:batch], yv[:batch]), batch, 2,
                kwargs, os.path.join(tmp, "warm_%s_%d" % (key, len(os.listdir(tmp)))))
    pairs = {name: [] for name, kwargs in settings if kwargs is not None}
    bases = []
    sizes = {}
    for r in range(repeats):
        for i, (name, kwargs) in enumerate(settings):
            if kwargs is None:
                continue
            logdir = os.path.join(tmp, "%s_%d_%d" % (key, i, r))
            if (r + i) % 2:
                with_cb = one_fit(make_model, data, batch, epochs, kwargs, logdir)
                without = one_fit(make_model, data, batch, epochs, None, None)
            else:
                without = one_fit(make_model, data, batch, epochs, None, None)
                with_cb = one_fit(make_model, data, batch, epochs, kwargs, logdir)
            pairs[name].append((with_cb, without))
            bases.append(without)
            if isinstance(kwargs, dict) and kwargs.get("report_findings", True):
                sizes[kwargs["log_every_n_steps"]] = (
                    dir_bytes(os.path.join(logdir, "train")),
                    dir_bytes(os.path.join(logdir, "validation")),
                )
    interleaved = [interleaved_step_cost(make_model, data, batch, epochs,
                                         os.path.join(tmp, "%s_interleaved_%d" % (key, r)))
                   for r in range(min(5, max(1, repeats // 2)))]
    conds = [cond_step_cost(make_model, data, batch, epochs,
                            os.path.join(tmp, "%s_conds_%d" % (key, r)))
             for r in range(min(5, max(1, repeats // 2)))]
    total_steps = steps * epochs
    logged = {1: total_steps, 50: len(range(0, total_steps, 50))}
    per_logged = (sizes[1][0] - sizes[50][0]) / (logged[1] - logged[50])
    per_validation = sizes[50][1] / epochs

    print("\n%s, batch %d" % (title, batch))
    print("  %d epochs x %d steps (+ %d validation batches per epoch); %d pairs per setting"
          % (epochs, steps, val_batches, repeats))
    print("  (fits with / without callback side by side, order alternating; medians and "
          "quartiles of the per-pair ratios)")
    print("  %-34s %6s %7s %13s %7s %7s | %7s | %7s %7s | %6s  %s" % (
        "", "fit", "fit", "fit ratio", "best", "", "fit CPU", "step", "step", "epoch1", ""))
    print("  %-34s %6s %7s %13s %7s %7s | %7s | %7s %7s | %6s  %s" % (
        "setting", "wall s", "ratio", "quartiles", "ratio", "target", "ratio", "ratio", "CPU rt",
        "wall s", "verdict (fit wall ratio)"))
    med = statistics.median
    base_total = [b["total"] for b in bases]
    q1, q3 = quartiles(base_total)
    print("  %-34s %6.2f %6.3fx %13s %7s %7s | %6.3fx | %6.3fx %6.3fx | %6.2f" % (
        "without callback (all pairs)", med(base_total), 1.0,
        "[%.3f-%.3f]" % (q1 / med(base_total), q3 / med(base_total)), "", "", 1.0, 1.0,
        1.0, med(b["first"] for b in bases)))
    verdicts = []
    for name, kwargs in settings:
        if kwargs is None:
            continue

        def ratio(field):
            return [w[field] / wo[field] for w, wo in pairs[name]]

        wall = med(ratio("total"))
        q1, q3 = quartiles(ratio("total"))
        cpu = med(ratio("total_cpu"))
        target = targets(key).get(name)
        outcome = ""
        if target is not None:
            word, interval = verdict(ratio("total"), target)
            outcome = "%s (%s)" % (word, interval)
            verdicts.append((key, name, wall, cpu, target, word, interval))
        best = (min(w["total"] for w, _ in pairs[name])
                / min(wo["total"] for _, wo in pairs[name]))
        print("  %-34s %6.2f %6.3fx %13s %6.3fx %7s | %6.3fx | %6.3fx %6.3fx | %6.2f  %s" % (
            name, med(w["total"] for w, _ in pairs[name]), wall,
            "[%.3f-%.3f]" % (q1, q3), best, "<=%.2fx" % target if target else "", cpu,
            med(ratio("steady")), med(ratio("steady_cpu")),
            med(w["first"] for w, _ in pairs[name]), outcome))
    prebuilt = pairs.get("no callback, " + PREBUILT)
    if prebuilt:
        print("  over fits without callback whose state is built before fit (the same repeat; "
              "the callback's own cost): %s" % "; ".join(
                  "%s %.3fx [90%% CI %.3f-%.3f]" % ((name, med(own)) + median_interval(own))
                  for name, own in (
                      (name, [w["total"] / p["total"]
                              for (w, _), (p, _) in zip(pairs[name], prebuilt)])
                      for name in TARGETS)))
    for name in TARGETS:
        if name + NO_CALL_OPTIONS in pairs:
            ratios = [w["total"] / o["total"] for (w, _), (o, _)
                      in zip(pairs[name], pairs[name + NO_CALL_OPTIONS])]
            print("  %s: fit with tf_internals's Grappler call options / without them (the same "
                  "repeat): %.3fx [90%% CI %.3f-%.3f]; first epoch %.2f s / %.2f s" % (
                      (name, med(ratios)) + median_interval(ratios) + (
                          med(w["first"] for w, _ in pairs[name]),
                          med(o["first"] for o, _ in pairs[name + NO_CALL_OPTIONS]))))
    record_cost = med(a - b for a, b in interleaved)
    call = med(b for _, b in interleaved)
    fit_step = med(b["steady"] for b in bases) / steps
    print("  cost of one record, from %d fit(s) logging every other step (logged vs unlogged "
          "steps side by side): +%.3f ms on a train function call of %.3f ms; a step of a "
          "fit without callback (Keras's loop included) takes %.3f ms: logging every step "
          "adds %.0f%% to the steady epochs" % (len(interleaved), record_cost * 1e3, call * 1e3,
                                                fit_step * 1e3, 100 * record_cost / fit_step))
    cond_cost = med(a - b for a, b in conds)
    print("  steps not logged, with the recording behind conds in Keras's train function (the "
          "default for runs of < %d steps on CPU), from %d fit(s) alternating it with the plain "
          "train function: %+.1f us per call of %.3f ms (%+.1f%%)" % (
              HealthCallback.SINGLE_FUNCTION_MAX_STEPS, len(conds), cond_cost * 1e6,
              med(b for _, b in conds) * 1e3, 100 * cond_cost / med(b for _, b in conds)))
    print("  bytes per logged train step: %.0f (predictions + gradients of %d variables); "
          "per validation record: %.0f" % (per_logged, len(make_model().trainable_variables),
                                           per_validation))
    if fresh_pairs:
        fresh = fresh_process_ratios(key, steps, epochs, val_batches, fresh_pairs, threads)
        print("  a single fit in a fresh process (%d pairs, the first fit's one-time costs "
              "included): %s" % (fresh_pairs, "; ".join(
                  "%s %.3fx [%.3f-%.3f]" % ((name, med(r)) + quartiles(r))
                  for name, r in fresh.items())))
    return verdicts


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--steps", type=int, default=150, help="train steps per epoch")
    parser.add_argument("--val-batches", type=int, default=10)
    parser.add_argument("--models", default="mlp,cnn,resnet,transformer")
    parser.add_argument("--threads", type=int, default=0,
                        help="TensorFlow intra/inter-op threads (0: TensorFlow's default); "
                             "1 is steadier on a busy shared machine")
    parser.add_argument("--targets-only", action="store_true",
                        help="only the two settings with a target (more pairs for a verdict)")
    parser.add_argument("--without-call-options", action="store_true",
                        help="also the settings with a target without tf_internals's Grappler "
                             "call options (what that private API buys)")
    parser.add_argument("--fresh-pairs", type=int, default=3,
                        help="pairs of single fits in fresh processes per setting (0: none)")
    parser.add_argument("--one-fit", nargs=2, metavar=("MODEL", "SETTING"),
                        help=argparse.SUPPRESS)  # a fresh process's fit, see fresh_process_fit
    args = parser.parse_args()
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    if args.one_fit:
        one_fit_main(args.one_fit[0], int(args.one_fit[1]), args.steps, args.epochs,
                     args.val_batches)
        return
    gpus = tf.config.list_physical_devices("GPU")
    print("HealthCallback overhead on whole model.fit wall time (with / without callback)")
    print("TensorFlow %s, Keras %s, Python %s, %s, %d CPUs visible%s" % (
        tf.__version__, keras.__version__, platform.python_version(), platform.machine(),
        os.cpu_count(), ", GPU: %s" % gpus[0].name if gpus else ", no GPU"))
    print("Keras settings for every fit (with and without callback): %s; TensorFlow threads: %s"
          % (", ".join("%s=%s" % kv for kv in KERAS_SETTINGS.items()),
             args.threads or "default"))
    tmp = tempfile.mkdtemp(prefix="tb_health_bench_")
    verdicts = []
    try:
        for key in args.models.split(","):
            verdicts += bench(key, args.steps, args.epochs, args.repeats, args.val_batches,
                              tmp, args.fresh_pairs, args.threads, args.targets_only,
                              args.without_call_options)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if FINDINGS:
        print("\n(the callback's online diagnosis reported, as expected on random labels: %s)"
              % "; ".join(sorted(FINDINGS)))
    print("\nVerdict (targets on whole-fit ratios: default <= %.2fx, every step <= %.2fx on "
          "the tiny models, <= %.2fx and <= %.2fx on the realistic ones; a verdict needs the "
          "90%% confidence interval of the median pair ratio on one side of the target):"
          % (TINY_TARGETS + REALISTIC_TARGETS))
    for key, name, ratio, cpu_ratio, target, word, interval in verdicts:
        print("  %-4s %-25s wall %.3fx (CPU %.3fx; %s): %s the %.2fx target" % (
            key, name, ratio, cpu_ratio, interval,
            {"meets": "meets", "MISSES": "MISSES"}.get(word, "undecided on"), target))


if __name__ == "__main__":
    main()
