"""Overhead of HealthCallback on model.fit wall time.

Prints, from one run, the ratio of fit wall time with the callback to without
it for two models, at the default setting (log_every_n_steps=50) and logging
every step, plus the bytes written per logged step. Runs are interleaved
(baseline, default, every step, baseline, ...) and medians are reported, since
shared machines are noisy. Every fit builds (traces) its train function once,
with or without the callback, as a user's single fit call does.

    python benchmarks/bench_recording_overhead.py [--repeats 5] [--epochs 3]

Targets: default <= 1.03x, every step <= 1.20x.
"""

import argparse
import glob
import os
import shutil
import statistics
import tempfile
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from tb_plugin.callback import HealthCallback  # noqa: E402


def seed000_model():
    """Seed 000: 300 token counts -> Dense 96 elu -> Dropout 0.2 -> Dense 7."""
    model = keras.Sequential([
        keras.Input((300,)),
        keras.layers.Dense(96, activation="elu"),
        keras.layers.Dropout(0.2),
        keras.layers.Dense(7),
    ])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def seed000_data(steps, batch=512):
    rng = np.random.default_rng(0)
    n = steps * batch
    return rng.poisson(0.3, size=(n, 300)).astype(np.float32), rng.integers(0, 7, n), batch


def cnn_model():
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
                  metrics=["accuracy"])
    return model


def cnn_data(steps, batch=128):
    rng = np.random.default_rng(1)
    n = steps * batch
    return rng.random((n, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, n), batch


class EpochTimer(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self._t = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self._t)

    def on_train_begin(self, logs=None):
        self.times = []


def dir_bytes(path):
    return sum(os.path.getsize(f) for f in glob.glob(os.path.join(path, "**", "*"),
                                                     recursive=True) if os.path.isfile(f))


def run_one(model, x, y, batch, epochs, callback):
    model.train_function = None  # every fit traces once, as a user's fit does
    timer = EpochTimer()
    cbs = [timer] + ([callback] if callback is not None else [])
    t = time.perf_counter()
    model.fit(x, y, batch_size=batch, epochs=epochs, shuffle=False, verbose=0, callbacks=cbs)
    total = time.perf_counter() - t
    steady = statistics.median(timer.times[1:]) if len(timer.times) > 1 else timer.times[0]
    return total, steady


def bench(label, make_model, make_data, steps, epochs, repeats, tmp):
    keras.utils.set_random_seed(0)
    x, y, batch = make_data(steps)
    model = make_model()
    init = model.get_weights()
    configs = {"baseline": None, "default (every 50)": 50, "every step": 1,
               "every 50, no findings": (50, False)}
    results = {k: [] for k in configs}
    sizes = {}
    # warm-up (first trace of everything, file system caches)
    run_one(model, x[: batch * 2], y[: batch * 2], batch, 1,
            HealthCallback(os.path.join(tmp, "warm"), report_findings=False))
    for r in range(repeats):
        for name, every in configs.items():
            model.set_weights(init)
            cb = None
            logdir = os.path.join(tmp, "%s_%s_%d" % (label, every, r))
            if isinstance(every, tuple):  # without the per-epoch diagnosis
                cb = HealthCallback(logdir, log_every_n_steps=every[0],
                                    report_findings=every[1])
            elif every is not None:
                cb = HealthCallback(logdir, log_every_n_steps=every)
            results[name].append(run_one(model, x, y, batch, epochs, cb))
            if isinstance(every, int):
                sizes[every] = dir_bytes(os.path.join(logdir, "train"))
    total_steps = steps * epochs
    logged = {1: total_steps, 50: len(range(0, total_steps, 50))}
    per_logged = (sizes[1] - sizes[50]) / (logged[1] - logged[50])
    base_total = statistics.median(t for t, _ in results["baseline"])
    base_steady = statistics.median(s for _, s in results["baseline"])
    print("\n%s: %d steps/epoch x %d epochs, batch %d, %d interleaved repeats"
          % (label, steps, epochs, batch, repeats))
    print("  %-20s %10s %8s %14s %8s" % ("setting", "fit s", "ratio", "epoch s (2nd+)", "ratio"))
    for name in configs:
        total = statistics.median(t for t, _ in results[name])
        steady = statistics.median(s for _, s in results[name])
        print("  %-20s %10.3f %7.3fx %14.3f %7.3fx"
              % (name, total, total / base_total, steady, steady / base_steady))
    print("  bytes written per logged step: %.0f (train run, %d variables)"
          % (per_logged, len(model.trainable_variables)))
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=50, help="steps per epoch")
    args = parser.parse_args()
    print("TensorFlow %s, Keras %s, %d CPU threads visible"
          % (tf.__version__, keras.__version__, os.cpu_count()))
    tmp = tempfile.mkdtemp(prefix="tb_health_bench_")
    try:
        bench("seed000 MLP", seed000_model, seed000_data, args.steps, args.epochs,
              args.repeats, tmp)
        bench("small CNN 28x28", cnn_model, cnn_data, args.steps, args.epochs,
              args.repeats, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
