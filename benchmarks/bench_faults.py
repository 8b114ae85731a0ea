"""Fault-injection benchmark of the diagnosis: does it find real failures, and
does it stay quiet on healthy runs, with DEFAULT settings?

Every run trains a tiny Keras model on synthetic, learnable data with
``tb_plugin.HealthCallback(log_dir)`` (default settings; only
``report_findings=False`` to keep the output quiet) and is then diagnosed with
``tb_plugin.diagnosis.check_logdir(log_dir)`` (its train and validation runs
together). Nothing else of the package is used, so the benchmark keeps working
while the rules and the callback's defaults change.

* Faulty runs: each fault of FAULTS (below) is injected the way it happens in
  practice, over seeds x 2 architectures (an MLP on a nonlinear mixture of
  Gaussians, a small CNN on 8x8 bar images) x 3 regimes (a short fit of 60
  steps, a fit with batch size 8, a normal fit of 300 steps). Each faulty
  run has a healthy TWIN that differs only in the fault (twins that come out
  identical, e.g. the twin of "ReLU on logits" and of "softmax on logits",
  are trained once).
* Hard healthy runs (HARD_HEALTHY): healthy runs that are easy to misjudge:
  a memorised tiny dataset (training loss ~0), zero-initialised output
  kernel and biases, heavy dropout, imbalanced (90%) labels learned well, a
  model at the edge of underfitting.

Printed: per fault, the runs, the recall (share of faulty runs where an
accepted kind fired with severity warning or error), the median first
detection as a share of training (first_step / total steps), the
correct-layer rate where a layer is expected, the kinds that fired and the
share of faulty runs whose training the fault measurably hurt (held-out
metric below its twin's, a check that the injection works); over healthy
runs (twins + hard healthy): the share with ANY warning or error, by kind and
by group, and every offending run with its kind and message. Targets with a
verdict: recall >= 0.95 per fault, <= 1 in 100 healthy runs with a warning or
error, right layer >= 0.9, median first detection within the first 10% of
training (every fault here is present from the start).

    python benchmarks/bench_faults.py [--workers 2] [--seeds 2] [--quick]
        [--only FAULT[,FAULT...]] [--keep-logs DIR] [--json-out PATH]
        [--regimes short,small_batch,normal] [--archs mlp,cnn]
    python benchmarks/bench_faults.py --rescore results.json   # re-score, no training

Full run: 13 faults x 2 archs x 3 regimes x 3 seeds = 234 faulty runs and
180 healthy runs: their twins (108 once twins that come out identical are
counted once) and 72 hard healthy runs; 414 fits, ~10-20 minutes on 2 cores
with --workers 2. --quick: 1 seed, the short and normal regimes of the MLP and
the short regime of the CNN (a few minutes).
"""

import argparse
import collections
import datetime
import json
import math
import multiprocessing
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
import traceback
import warnings

# ---------------------------------------------------------------------------
# THE TABLE: fault -> finding kinds that count as detecting it, and the layer
# expected for kinds that name one. Adjust here.
#
# Kinds are names as check_logdir reports them. Special entries:
#   "*"         any warning or error except IGNORED_FOR_ANY (for faults whose
#               kind is not settled, e.g. labels shuffled against inputs);
#   "re:PAT"    any kind whose name matches the regular expression PAT.
# Layer roles (resolved per architecture by build_model; layers are named
# explicitly, so a finding's `layer` path is compared by its components):
#   "output"    the output layer (MLP/CNN: "logits", regression: "out");
#   "early"     the first half of the hidden (weighted) layers;
#   "hidden"    any hidden (weighted) layer, not the output;
#   "biased"    the layer given the large negative bias (MLP "h1", CNN "conv1").

BASE_RATE = "re:(base_?rate|baseline|chance|no_better|prior)"
IGNORED_FOR_ANY = {"mixed_fits"}

FAULTS = collections.OrderedDict([
    ("relu_logits", dict(
        accept=["output_activation_mismatch", "prediction_collapse", "tied_predictions"],
        layers={"output_activation_mismatch": "output"},
        doc="activation='relu' on the logits layer, loss from_logits=True")),
    ("softmax_logits", dict(
        accept=["output_activation_mismatch"],
        layers={"output_activation_mismatch": "output"},
        doc="activation='softmax' on the logits layer, loss from_logits=True")),
    ("tiny_init", dict(
        accept=["vanishing_gradients", "prediction_collapse"],
        layers={"vanishing_gradients": "early"},
        doc="every kernel N(0, 1e-3), 3+ weighted layers, SGD (twin: Glorot)")),
    ("deep_sigmoid", dict(
        accept=["vanishing_gradients"],
        layers={"vanishing_gradients": "early"},
        doc="8-9 stacked sigmoid layers, SGD (twin: ReLU + He init)")),
    ("lr_too_high", dict(
        accept=["learning_rate_too_high", "exploding_gradients", "nonfinite"],
        layers={},
        doc="learning rate x100 (SGD 0.05 -> 5) or x300 (Adam 3e-3 -> 1), by seed")),
    ("nonfinite_inputs", dict(
        accept=["nonfinite"],
        layers={},
        doc="1% of the input rows hold a NaN (even seeds) or -Inf (odd) feature")),
    ("dead_relu", dict(
        accept=["dead_units"],
        layers={"dead_units": "biased"},
        doc="bias_initializer=Constant(-5) on the second hidden ReLU layer")),
    ("class_weights", dict(
        accept=["skewed_class_weights", "class_collapse", "class_bias"],
        layers={},
        doc="class_weight={0: 50, others: 1} on balanced, overlapping classes")),
    ("shuffled_labels", dict(
        accept=["*"],
        layers={},
        doc="labels permuted against the inputs (x and y shuffled separately)")),
    ("constant_labels", dict(
        accept=["class_collapse", BASE_RATE],
        layers={},
        doc="every label is class 0 (a label-column bug)")),
    ("regression_collapse", dict(
        accept=["prediction_collapse"],
        layers={},
        doc="regression net, every kernel N(0, 1e-3), SGD (twin: Glorot)")),
    ("majority_only", dict(
        accept=["class_collapse", BASE_RATE],
        layers={},
        doc="90/10 labels (2 classes) the model cannot learn beyond the prior: labels "
            "misaligned with the inputs (even seeds) or L2=1 on every kernel (odd); "
            "twin: the same imbalanced labels, aligned, no L2")),
    ("missing_output_activation", dict(
        accept=["output_activation_mismatch"],
        layers={"output_activation_mismatch": "output"},
        doc="loss from_logits=False with a linear output (even seeds) or the softmax "
            "misplaced on the last hidden layer (odd); twin: softmax output")),
])

# Healthy runs that are easy to misjudge (each over archs x regimes x seeds).
HARD_HEALTHY = collections.OrderedDict([
    ("memorised", "40 examples, wide model, Adam 1e-2: training loss -> ~0"),
    ("zero_init", "output kernel_initializer='zeros', every bias 'zeros'"),
    ("heavy_dropout", "Dropout 0.5/0.6/0.7 (by seed) after the hidden layers"),
    ("imbalanced", "2 classes, 90% of the labels in class 0, learned well"),
    ("underfit_edge", "4-unit/2-filter model on a noisier task: learns, barely"),
])

REGIMES = collections.OrderedDict([
    # n: examples before validation_split=0.2; steps = ceil(0.8 n / batch) x epochs
    ("short", dict(n=1200, batch=32, epochs=2)),         # 60 steps
    ("small_batch", dict(n=1200, batch=8, epochs=2)),    # 240 steps
    ("normal", dict(n=1200, batch=32, epochs=10)),       # 300 steps
])
ARCHS = ("mlp", "cnn")
N_EVAL = 400  # held-out clean examples, to check that training learned
BAR_AMPLITUDE = 1.25  # CNN bars over N(0, 0.5) pixel noise

TARGET_RECALL = 0.95
TARGET_FALSE_ALARM = 0.01
TARGET_LAYER = 0.9
TARGET_FIRST_DETECTION = 0.10
ALARM_SEVERITIES = ("warning", "error")

# ---------------------------------------------------------------------------
# Run specifications: plain JSON-able dicts (sent to the workers, and equal
# specs are trained once).

BASE_MODEL = dict(depth=None, act="relu", kinit=None, out_act=None, hidden_softmax=False,
                  neg_bias=None, dropout=None, width=None, zeros_out=False, l2=None)
BASE_DATA = dict(imbalance=False, labels="ok", nonfinite=None, n=None, hard=False)


def _spec(arch, regime, seed, task="multiclass"):
    return dict(arch=arch, regime=regime, seed=seed, task=task,
                data=dict(BASE_DATA), model=dict(BASE_MODEL),
                opt=dict(name="adam", lr=3e-3), from_logits=True, class_weight=None)


def _copy(spec):
    return json.loads(json.dumps(spec))


def fault_pair(fault, arch, regime, seed):
    """(faulty spec, healthy twin spec) for `fault`."""
    twin = _spec(arch, regime, seed)
    if fault in ("tiny_init", "deep_sigmoid"):
        twin["opt"] = dict(name="sgd", lr=0.05)
    if fault == "deep_sigmoid":
        twin["model"].update(depth=9 if arch == "mlp" else 8, act="relu", kinit="he")
    if fault == "lr_too_high" and seed % 2 == 0:
        twin["opt"] = dict(name="sgd", lr=0.05)
    if fault == "regression_collapse":
        twin = _spec(arch, regime, seed, task="regression")
        twin["opt"] = dict(name="sgd", lr=0.05)
    if fault == "majority_only":
        twin["data"]["imbalance"] = True
        twin["opt"]["lr"] = 1e-2  # the minority class is learned within 60 steps
    if fault == "missing_output_activation":
        twin["from_logits"] = False
        twin["model"]["out_act"] = "softmax"
    f = _copy(twin)
    if fault == "relu_logits":
        f["model"]["out_act"] = "relu"
    elif fault == "softmax_logits":
        f["model"]["out_act"] = "softmax"
    elif fault in ("tiny_init", "regression_collapse"):
        f["model"]["kinit"] = "tiny"
    elif fault == "deep_sigmoid":
        f["model"].update(act="sigmoid", kinit=None)
    elif fault == "lr_too_high":
        f["opt"]["lr"] = f["opt"]["lr"] * (100 if f["opt"]["name"] == "sgd" else 1.0 / 3e-3)
    elif fault == "nonfinite_inputs":
        f["data"]["nonfinite"] = "nan" if seed % 2 == 0 else "-inf"
    elif fault == "dead_relu":
        f["model"]["neg_bias"] = -5.0
    elif fault == "class_weights":
        f["class_weight"] = {"0": 50.0, "1": 1.0, "2": 1.0, "3": 1.0}  # keys: JSON
    elif fault == "shuffled_labels":
        f["data"]["labels"] = "shuffled"
    elif fault == "constant_labels":
        f["data"]["labels"] = "constant"
    elif fault == "majority_only":
        if seed % 2 == 0:
            f["data"]["labels"] = "shuffled"
        else:
            f["model"]["l2"] = 1.0
    elif fault == "missing_output_activation":
        if seed % 2 == 0:
            f["model"]["out_act"] = None
        else:
            f["model"].update(out_act=None, hidden_softmax=True)
    else:
        raise KeyError(fault)
    return f, twin


def hard_spec(name, arch, regime, seed):
    s = _spec(arch, regime, seed)
    if name == "memorised":
        s["data"]["n"] = 40
        s["model"]["width"] = 64
        s["opt"]["lr"] = 1e-2
    elif name == "zero_init":
        s["model"]["zeros_out"] = True
    elif name == "heavy_dropout":
        s["model"]["dropout"] = (0.5, 0.6, 0.7)[seed % 3]
    elif name == "imbalanced":  # = the twin of majority_only
        s["data"]["imbalance"] = True
        s["opt"]["lr"] = 1e-2
    elif name == "underfit_edge":
        s["model"]["width"] = 4 if arch == "mlp" else 2
        s["data"]["hard"] = True
        s["opt"]["lr"] = 1e-2  # capacity-limited, not time-limited
    else:
        raise KeyError(name)
    return s


def twin_label(spec):
    """A short name for the configuration of a healthy twin."""
    if spec["task"] == "regression":
        return "twin: regression, SGD"
    if spec["model"]["depth"]:
        return "twin: deep ReLU stack, SGD"
    if spec["data"]["imbalance"]:
        return "twin: 90/10 labels, Adam 1e-2"
    if not spec["from_logits"]:
        return "twin: softmax output"
    if spec["opt"]["name"] == "sgd":
        return "twin: SGD 0.05"
    return "twin: Adam 3e-3 (base)"


def spec_key(spec):
    return json.dumps(spec, sort_keys=True)


# ---------------------------------------------------------------------------
# Data (numpy only)


def make_data(spec):
    """(x, y, x_eval, y_eval, classes) for a spec; the faults of spec["data"]
    touch the training data only (x_eval, y_eval are clean)."""
    import numpy as np

    d = spec["data"]
    reg = REGIMES[spec["regime"]]
    n = d["n"] or reg["n"]
    rng = np.random.default_rng(1000 + spec["seed"])
    total = n + N_EVAL
    # Imbalanced: two classes, 90/10 (the first two patterns/mixtures).
    classes = 2 if d["imbalance"] else 4
    p = [0.9, 0.1] if d["imbalance"] else None
    if spec["arch"] == "mlp":
        dim = 16 if spec["task"] == "multiclass" else 8
        if spec["task"] == "regression":
            x = rng.normal(0.0, 1.0, size=(total, dim))
            y = np.sin(x[:, 0]) + x[:, 1] * x[:, 2] + 0.5 * x[:, 3] + 0.1 * rng.normal(size=total)
            y = ((y - y.mean()) / y.std())[:, None]
        else:
            # Two Gaussian clusters per class: not linearly separable.
            centres = rng.normal(0.0, 1.0, size=(4, 2, dim))
            noise = 2.0 if d["hard"] else 1.5
            y = rng.choice(classes, size=total, p=p)
            which = rng.integers(0, 2, size=total)
            x = (centres[y, which] + rng.normal(0.0, noise, size=(total, dim))) / math.sqrt(
                1.0 + noise ** 2)  # about unit variance, as after standardisation
    else:
        size = 8
        noise = 0.8 if d["hard"] else 0.5
        x = rng.normal(0.0, noise, size=(total, size, size, 1))
        if spec["task"] == "regression":
            # Target: the row of a horizontal bar of random brightness.
            rows = rng.integers(0, size, size=total)
            amp = rng.uniform(0.7, 1.5, size=total)
            x[np.arange(total), rows, :, 0] += amp[:, None]
            y = ((rows - (size - 1) / 2.0) / 2.3)[:, None]
        else:
            y = rng.choice(classes, size=total, p=p)
            ar = np.arange(size)
            for i, c in enumerate(y):
                k = rng.integers(1, size - 1)
                if c == 0:
                    x[i, k, :, 0] += BAR_AMPLITUDE
                elif c == 1:
                    x[i, :, k, 0] += BAR_AMPLITUDE
                elif c == 2:
                    x[i, ar, ar, 0] += BAR_AMPLITUDE
                else:
                    x[i, ar, size - 1 - ar, 0] += BAR_AMPLITUDE
    x = x.astype("float32")
    y = y.astype("float32") if spec["task"] == "regression" else y.astype("int32")
    x_eval, y_eval = x[n:], y[n:]
    x, y = x[:n].copy(), y[:n].copy()
    if d["labels"] == "shuffled":
        y = y[rng.permutation(n)]
    elif d["labels"] == "constant":
        y[:] = 0
    if d["nonfinite"]:
        rows = rng.choice(n, size=max(1, n // 100), replace=False)
        flat = x.reshape(n, -1)
        cols = rng.integers(0, flat.shape[1], size=len(rows))
        flat[rows, cols] = np.nan if d["nonfinite"] == "nan" else -np.inf
    return x, y, x_eval, y_eval, classes


# ---------------------------------------------------------------------------
# Models (TensorFlow, in the workers)


def build_model(spec, keras, input_shape, classes):
    """(compiled model, {role: [layer names]}) for a spec."""
    m = spec["model"]
    L = keras.layers
    reg = keras.regularizers.l2(m["l2"]) if m["l2"] else None
    regression = spec["task"] == "regression"

    def kinit():
        if m["kinit"] == "tiny":
            return keras.initializers.RandomNormal(0.0, 1e-3)
        if m["kinit"] == "he":
            return "he_normal"
        return "glorot_uniform"

    def dense(units, name, act, bias=None):
        return L.Dense(units, activation=act, kernel_initializer=kinit(),
                       bias_initializer=bias or "zeros", kernel_regularizer=reg, name=name)

    def conv(filters, name, act, bias=None):
        return L.Conv2D(filters, 3, padding="same", activation=act, kernel_initializer=kinit(),
                        bias_initializer=bias or "zeros", kernel_regularizer=reg, name=name)

    neg = keras.initializers.Constant(m["neg_bias"]) if m["neg_bias"] is not None else None
    act = m["act"]
    layers = [keras.Input(input_shape)]
    hidden = []
    if m["depth"]:
        make = dense if spec["arch"] == "mlp" else conv
        for i in range(m["depth"]):
            name = ("h%d" if spec["arch"] == "mlp" else "conv%d") % i
            layers.append(make(32 if spec["arch"] == "mlp" else 8, name, act))
            hidden.append(name)
        if spec["arch"] == "cnn":
            layers.append(L.Flatten(name="flat"))
    elif spec["arch"] == "mlp":
        w = m["width"] or 32
        last_act = "softmax" if m["hidden_softmax"] else act
        layers.append(dense(w, "h0", act))
        if m["dropout"]:
            layers.append(L.Dropout(m["dropout"], name="drop0"))
        layers.append(dense(w, "h1", last_act, bias=neg))
        if m["dropout"]:
            layers.append(L.Dropout(m["dropout"], name="drop1"))
        hidden = ["h0", "h1"]
    else:
        f = m["width"] or 8
        last_act = "softmax" if m["hidden_softmax"] else act
        layers.append(conv(f, "conv0", act))
        layers.append(L.MaxPooling2D(2, name="pool0"))
        if m["dropout"]:
            layers.append(L.Dropout(m["dropout"], name="drop0"))
        layers.append(conv(f, "conv1", act, bias=neg))
        layers.append(L.Flatten(name="flat"))
        layers.append(dense(2 * f if m["width"] else 16, "h2", last_act))
        if m["dropout"]:
            layers.append(L.Dropout(m["dropout"], name="drop1"))
        hidden = ["conv0", "conv1", "h2"]
    out_name = "out" if regression else "logits"
    out = L.Dense(1 if regression else classes, activation=m["out_act"],
                  kernel_initializer="zeros" if m["zeros_out"] else kinit(),
                  bias_initializer="zeros", kernel_regularizer=reg, name=out_name)
    layers.append(out)
    model = keras.Sequential(layers, name="%s_%s" % (spec["arch"], spec["task"]))
    opt = (keras.optimizers.Adam(spec["opt"]["lr"]) if spec["opt"]["name"] == "adam"
           else keras.optimizers.SGD(spec["opt"]["lr"]))
    if regression:
        model.compile(optimizer=opt, loss=keras.losses.MeanSquaredError())
    else:
        model.compile(optimizer=opt, metrics=["accuracy"],
                      loss=keras.losses.SparseCategoricalCrossentropy(
                          from_logits=spec["from_logits"]))
    roles = {
        "output": [out_name],
        "hidden": list(hidden),
        "early": hidden[: max(1, len(hidden) // 2)],
        "biased": [hidden[1]],
    }
    return model, roles


# ---------------------------------------------------------------------------
# Worker

_worker_ready = False


def _init_worker():
    global _worker_ready
    if _worker_ready:
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    # TensorFlow's C++ start-up lines (oneDNN, CUDA) ignore the level above:
    # send the worker's stderr to /dev/null while it imports.
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        sys.stderr.flush()
        os.dup2(devnull, 2)
        import absl.logging
        import tensorflow as tf
        import keras  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)

    absl.logging.set_verbosity(absl.logging.ERROR)
    tf.get_logger().setLevel("ERROR")
    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass
    _worker_ready = True


def _callback_kwargs(cls):
    """report_findings=False if the callback has it (quiet output); every
    other setting stays at its default."""
    import inspect

    try:
        params = inspect.signature(cls.__init__).parameters
    except (TypeError, ValueError):
        return {}
    return {"report_findings": False} if "report_findings" in params else {}


def run_one(job):
    """Trains and diagnoses one run; returns its result dict (never raises)."""
    name, spec, log_root = job["name"], job["spec"], job["log_root"]
    result = dict(name=name, spec=spec, error=None, findings=[], warnings=[])
    t0 = time.perf_counter()
    try:
        _init_worker()
        import numpy as np
        import keras
        import tb_plugin
        from tb_plugin import diagnosis

        keras.backend.clear_session()
        keras.utils.set_random_seed(spec["seed"])
        x, y, x_eval, y_eval, classes = make_data(spec)
        model, roles = build_model(spec, keras, x.shape[1:], classes)
        result["roles"] = roles
        log_dir = os.path.join(log_root, name)
        shutil.rmtree(log_dir, ignore_errors=True)
        reg = REGIMES[spec["regime"]]
        cw = ({int(k): v for k, v in spec["class_weight"].items()}
              if spec["class_weight"] else None)
        cb = tb_plugin.HealthCallback(log_dir, **_callback_kwargs(tb_plugin.HealthCallback))
        # Keras's validation_split=0.2 (the last 20%), made explicit so that a
        # tiny memorised set can be repeated to the regime's steps per epoch
        # (same training as more epochs, without the per-epoch overheads).
        n_train = len(x) - int(len(x) * 0.2)
        x_val, y_val = x[n_train:], y[n_train:]
        x, y = x[:n_train], y[:n_train]
        if spec["data"]["n"]:
            reps = max(1, round(0.8 * reg["n"] / n_train))
            x, y = np.concatenate([x] * reps), np.concatenate([y] * reps)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            hist = model.fit(x, y, batch_size=reg["batch"], epochs=reg["epochs"],
                             validation_data=(x_val, y_val), shuffle=True, verbose=0,
                             class_weight=cw, callbacks=[cb])
        result["warnings"] = sorted({str(w.message)[:300] for w in caught
                                     if "tb_plugin" in str(w.message)})
        result["total_steps"] = int(model.optimizer.iterations.numpy())
        result["fit_seconds"] = round(time.perf_counter() - t0, 2)
        losses = hist.history.get("loss", [float("nan")])
        result["train_loss"] = float(losses[-1])
        pred = model.predict(x_eval, batch_size=512, verbose=0)
        if spec["task"] == "regression":
            if np.isfinite(pred).all():
                mse = float(np.mean((pred - y_eval) ** 2))
                result["eval_metric"] = 1.0 - mse / float(np.var(y_eval))  # R^2
            else:
                result["eval_metric"] = float("nan")
        else:
            if np.isfinite(pred).all():
                yp = pred.argmax(axis=1)
                recalls = [float(np.mean(yp[y_eval == c] == c))
                           for c in range(classes) if (y_eval == c).any()]
                result["eval_metric"] = float(np.mean(recalls))  # balanced accuracy
                result["eval_majority_share"] = float(np.bincount(yp, minlength=classes).max()
                                                      / len(yp))
            else:
                result["eval_metric"] = float("nan")
        t1 = time.perf_counter()
        checked = diagnosis.check_logdir(log_dir)
        result["check_seconds"] = round(time.perf_counter() - t1, 2)
        for run in checked["runs"]:
            for f in run["findings"]:
                result["findings"].append(dict(
                    run=run["run"], kind=f.get("kind"), severity=f.get("severity"),
                    layer=f.get("layer"), first_step=f.get("first_step"),
                    last_step=f.get("last_step"), message=f.get("message")))
        result["statuses"] = {r["run"]: r["status"] for r in checked["runs"]}
        del model, cb
        keras.backend.clear_session()
    except Exception:  # noqa: BLE001 - one broken run must not stop the benchmark
        result["error"] = traceback.format_exc()
    result["seconds"] = round(time.perf_counter() - t0, 2)
    return result


# ---------------------------------------------------------------------------
# Analysis


def kind_matches(kind, accept):
    for a in accept:
        if a == "*":
            if kind not in IGNORED_FOR_ANY:
                return True
        elif a.startswith("re:"):
            if re.search(a[3:], kind or ""):
                return True
        elif a == kind:
            return True
    return False


def alarms(result):
    return [f for f in result["findings"] if f["severity"] in ALARM_SEVERITIES]


def layer_matches(layer, names):
    if not layer:
        return False
    parts = str(layer).split("/")
    return any(n in parts for n in names)


LEARNED_MARGIN = 0.15
LEARNED_R2 = 0.3


def learned(result):
    """Whether a run learned: held-out balanced accuracy >= chance + margin,
    or R^2 >= LEARNED_R2 for regression."""
    em = result.get("eval_metric")
    if em is None or not math.isfinite(em):
        return False
    if result["spec"]["task"] == "regression":
        return em >= LEARNED_R2
    classes = 2 if result["spec"]["data"]["imbalance"] else 4
    return em >= 1.0 / classes + LEARNED_MARGIN


def score_fault(result, fault):
    """Adds detected / first_fraction / layer_ok to a faulty run's result."""
    cfg = FAULTS[fault]
    hits = [f for f in alarms(result) if kind_matches(f["kind"], cfg["accept"])]
    result["detected"] = bool(hits)
    result["detected_by"] = sorted({f["kind"] for f in hits})
    steps = [f["first_step"] for f in hits if f["first_step"] is not None]
    total = result.get("total_steps") or 0
    result["first_fraction"] = (min(steps) / total) if (steps and total) else None
    layered = [f for f in hits if f["kind"] in cfg["layers"]]
    if layered:
        ok = False
        for f in layered:
            names = result.get("roles", {}).get(cfg["layers"][f["kind"]], [])
            ok = ok or layer_matches(f["layer"], names)
        result["layer_ok"] = ok
    else:
        result["layer_ok"] = None


def _median(xs):
    return statistics.median(xs) if xs else None


def _fmt(x, pct=False):
    if x is None:
        return "-"
    return ("%.0f%%" % (100 * x)) if pct else ("%.2f" % x)


def _verdict(ok):
    return "PASS" if ok else "FAIL"


def analyse(results, jobs_meta):
    """Summary dict; prints the report."""
    by_name = {r["name"]: r for r in results}
    faulty = [m for m in jobs_meta if m["group"] == "fault"]
    out = dict(faults={}, healthy={}, errors=[])
    for r in results:
        if r["error"]:
            out["errors"].append(dict(name=r["name"], error=r["error"]))

    # Per fault -------------------------------------------------------------
    print()
    print("FAULTS (recall: share of faulty runs where an accepted kind fired as warning/error;")
    print("        first: median first detection / total steps; layer: right layer where one")
    print("        is expected (n); any: share with ANY warning/error; broke: share whose")
    print("        held-out metric fell >=0.05 below the twin's or went non-finite, i.e. the")
    print("        injection hurt training)")
    cells = ["%s/%s" % (a, g) for a in ARCHS for g in REGIMES]
    head = "%-26s %4s %6s %6s %10s %6s %6s  %s" % ("fault", "runs", "recall", "first",
                                                   "layer(n)", "any", "broke", "verdicts")
    print(head)
    print("-" * len(head))
    matrix_rows = []
    for fault in FAULTS:
        metas = [m for m in faulty if m["fault"] == fault]
        rs = [by_name[m["name"]] for m in metas if m["name"] in by_name
              and not by_name[m["name"]]["error"]]
        if not metas:
            continue
        for m, r in ((m, by_name.get(m["name"])) for m in metas):
            if r is not None and not r["error"]:
                score_fault(r, fault)
                twin = by_name.get(m["twin"])
                tm = twin.get("eval_metric") if twin and not twin["error"] else None
                em = r.get("eval_metric")
                r["broke"] = (em is None or not math.isfinite(em)) or (
                    tm is not None and math.isfinite(tm) and em < tm - 0.05)
        n = len(rs)
        recall = sum(r["detected"] for r in rs) / n if n else None
        fracs = [r["first_fraction"] for r in rs if r["first_fraction"] is not None]
        first = _median(fracs)
        lay = [r["layer_ok"] for r in rs if r["layer_ok"] is not None]
        layer = sum(lay) / len(lay) if lay else None
        broke = sum(r["broke"] for r in rs) / n if n else None
        fired_runs = collections.Counter(k for r in rs for k in {f["kind"] for f in alarms(r)})
        verdicts = ["recall " + _verdict(recall is not None and recall >= TARGET_RECALL)]
        if FAULTS[fault]["layers"]:
            verdicts.append("layer " + (_verdict(layer >= TARGET_LAYER) if layer is not None
                                        else "n/a"))
        verdicts.append("first " + (_verdict(first <= TARGET_FIRST_DETECTION)
                                    if first is not None else "n/a"))
        any_alarm = sum(any(f["kind"] not in IGNORED_FOR_ANY for f in alarms(r))
                        for r in rs) / n if n else None
        print("%-26s %4d %6s %6s %10s %6s %6s  %s" % (
            fault, n, _fmt(recall, True), _fmt(first, True),
            ("%s(%d)" % (_fmt(layer, True), len(lay))) if FAULTS[fault]["layers"] else "n/a",
            _fmt(any_alarm, True), _fmt(broke, True), ", ".join(verdicts)))
        per_cell = {}
        for c in cells:
            a, g = c.split("/")
            sel = [r for r in rs if r["spec"]["arch"] == a and r["spec"]["regime"] == g]
            per_cell[c] = (sum(r["detected"] for r in sel) / len(sel)) if sel else None
        matrix_rows.append((fault, per_cell, fired_runs, n))
        out["faults"][fault] = dict(
            runs=n, recall=recall, median_first_fraction=first, layer_rate=layer,
            any_alarm=any_alarm,
            layer_runs=len(lay), broke=broke, recall_by_cell=per_cell,
            kinds_fired_runs=dict(fired_runs), accept=FAULTS[fault]["accept"],
            doc=FAULTS[fault]["doc"],
            recall_ok=recall is not None and recall >= TARGET_RECALL,
            layer_ok=None if layer is None else layer >= TARGET_LAYER,
            first_ok=None if first is None else first <= TARGET_FIRST_DETECTION,
            missed=[r["name"] for r in rs if not r["detected"]])

    print()
    print("RECALL BY ARCHITECTURE / REGIME")
    print("%-26s " % "fault" + " ".join("%11s" % c for c in cells))
    for fault, per_cell, _, _ in matrix_rows:
        print("%-26s " % fault + " ".join("%11s" % _fmt(per_cell[c], True) for c in cells))

    print()
    print("KINDS FIRED ON FAULTY RUNS (runs with that kind as warning/error)")
    for fault, _, fired_runs, n in matrix_rows:
        text = ", ".join("%s %d" % kv for kv in fired_runs.most_common()) or "(none)"
        print("  %-26s %s" % (fault, text))

    # Healthy ---------------------------------------------------------------
    healthy = [m for m in jobs_meta if m["group"] in ("twin", "hard")]
    hr = [(m, by_name[m["name"]]) for m in healthy
          if m["name"] in by_name and not by_name[m["name"]]["error"]]
    flagged = [(m, r) for m, r in hr if alarms(r)]
    share = len(flagged) / len(hr) if hr else None
    by_kind = collections.Counter(k for _, r in flagged for k in {f["kind"] for f in alarms(r)})
    print()
    print("HEALTHY RUNS (twins + hard healthy): %d runs, %d with a warning or error = %s"
          "  (target <= %s: %s)" % (len(hr), len(flagged), _fmt(share, True),
                                    _fmt(TARGET_FALSE_ALARM, True),
                                    _verdict(share is not None and share <= TARGET_FALSE_ALARM)))
    print("  by kind (runs): " + (", ".join("%s %d" % kv for kv in by_kind.most_common())
                                  or "(none)"))
    groups = collections.OrderedDict()
    twin_of = collections.OrderedDict()
    for m, r in hr:
        groups.setdefault(m["label"], []).append(r)
        if m.get("twin_of"):
            twin_of[m["label"]] = m["twin_of"]
    print("  %-50s %4s %7s %6s %7s" % ("group", "runs", "flagged", "eval", "learned"))
    for label, rs in groups.items():
        ev = [r.get("eval_metric") for r in rs if r.get("eval_metric") is not None
              and math.isfinite(r["eval_metric"])]
        print("  %-50s %4d %7s %6s %7s" % (
            label, len(rs), _fmt(sum(bool(alarms(r)) for r in rs) / len(rs), True),
            _fmt(sum(ev) / len(ev) if ev else None),
            _fmt(sum(learned(r) for r in rs) / len(rs), True)))
    print("  (eval: mean held-out balanced accuracy, or R^2 for regression; learned: share")
    print("   of runs at least %.2f above chance / with R^2 >= %.1f)" % (LEARNED_MARGIN,
                                                                      LEARNED_R2))
    for label, faults in twin_of.items():
        print("  %s: twin of %s" % (label, ", ".join(faults)))
    offenders = []
    print()
    print("HEALTHY RUNS WITH A WARNING OR ERROR (run, kind, severity, layer, steps, message)")
    for m, r in flagged:
        for f in alarms(r):
            offenders.append(dict(run=r["name"], subrun=f["run"], kind=f["kind"],
                                  severity=f["severity"], layer=f["layer"],
                                  first_step=f["first_step"], last_step=f["last_step"],
                                  total_steps=r.get("total_steps"), message=f["message"]))
            print("  %s [%s] %s %s layer=%s steps=%s-%s/%s eval=%s: %s" % (
                r["name"], f["run"], f["kind"], f["severity"], f["layer"], f["first_step"],
                f["last_step"], r.get("total_steps"), _fmt(r.get("eval_metric")),
                (f["message"] or "")[:220]))
    if not flagged:
        print("  (none)")
    out["healthy"] = dict(runs=len(hr), flagged=len(flagged), share=share,
                          by_kind=dict(by_kind), offenders=offenders,
                          ok=share is not None and share <= TARGET_FALSE_ALARM)

    if out["errors"]:
        print()
        print("RUNS THAT FAILED TO RUN (%d):" % len(out["errors"]))
        for e in out["errors"]:
            print("  %s: %s" % (e["name"], e["error"].strip().splitlines()[-1]))

    # Overall verdict -----------------------------------------------------------
    fr = out["faults"].values()
    print()
    print("TARGETS")
    print("  recall >= %.2f for every fault: %s (%d of %d faults)" % (
        TARGET_RECALL, _verdict(all(f["recall_ok"] for f in fr)),
        sum(f["recall_ok"] for f in fr), len(fr)))
    print("  healthy runs with a warning/error <= %s: %s (%s)" % (
        _fmt(TARGET_FALSE_ALARM, True), _verdict(out["healthy"]["ok"]), _fmt(share, True)))
    lay = [f for f in fr if f["layer_ok"] is not None]
    print("  right layer >= %.0f%% where expected: %s (%d of %d faults)" % (
        100 * TARGET_LAYER, _verdict(all(f["layer_ok"] for f in lay)),
        sum(f["layer_ok"] for f in lay), len(lay)))
    fi = [f for f in fr if f["first_ok"] is not None]
    print("  median first detection <= %.0f%% of training: %s (%d of %d detected faults)" % (
        100 * TARGET_FIRST_DETECTION, _verdict(all(f["first_ok"] for f in fi)),
        sum(f["first_ok"] for f in fi), len(fi)))
    return out


# ---------------------------------------------------------------------------
# Main


def plan(args):
    """(jobs, meta): unique specs to train, and one meta row per benchmark
    run (faulty, twin or hard healthy) naming the job that trains it."""
    only = set(args.only.split(",")) if args.only else None
    if only:
        unknown = only - set(FAULTS) - set(HARD_HEALTHY)
        if unknown:
            raise SystemExit("unknown --only %s; faults: %s; hard healthy: %s" % (
                ", ".join(sorted(unknown)), ", ".join(FAULTS), ", ".join(HARD_HEALTHY)))
    jobs = collections.OrderedDict()  # spec key -> name
    meta = []

    def job(spec, name):
        key = spec_key(spec)
        if key not in jobs:
            jobs[key] = dict(name=name, spec=spec)
        return jobs[key]["name"]

    combos = [(a, g, s) for s in range(args.seeds) for a in args.archs for g in args.regimes
              if not (args.quick and (a, g) not in QUICK_CELLS)]
    for fault in FAULTS:
        if only and fault not in only:
            continue
        for a, g, s in combos:
            f, t = fault_pair(fault, a, g, s)
            suffix = "%s__%s__s%d" % (a, g, s)
            fname = job(f, "%s__%s" % (fault, suffix))
            tname = job(t, "twin_%s__%s" % (fault, suffix))
            meta.append(dict(group="fault", fault=fault, name=fname, twin=tname,
                             label=fault))
            meta.append(dict(group="twin", fault=fault, name=tname, label="twin"))
    for hard in HARD_HEALTHY:
        if only and hard not in only:
            continue
        for a, g, s in combos:
            name = job(hard_spec(hard, a, g, s), "hard_%s__%s__%s__s%d" % (hard, a, g, s))
            meta.append(dict(group="hard", fault=None, name=name, label="hard " + hard))
    # A twin shared by several faults, or equal to a hard healthy run, is one
    # healthy run: count it once.
    seen = set()
    unique = []
    for m in meta:
        if m["group"] != "fault":
            if m["name"] in seen:
                continue
            seen.add(m["name"])
        unique.append(m)
    label_twins(unique, {j["name"]: j["spec"] for j in jobs.values()})
    return list(jobs.values()), unique


def label_twins(meta, specs):
    """Sets the label of each twin row of `meta` (its configuration, and the
    hard healthy run it equals, if any) and its twin_of (the faults whose
    twin has that configuration)."""
    twin_of = collections.defaultdict(list)
    for m in meta:
        if m["group"] == "fault" and m["twin"] in specs:
            label = twin_label(specs[m["twin"]])
            if m["fault"] not in twin_of[label]:
                twin_of[label].append(m["fault"])
    for m in meta:
        if m["group"] != "twin" or m["name"] not in specs:
            continue
        spec = specs[m["name"]]
        label = twin_label(spec)
        m["twin_of"] = twin_of[label]
        for hard in HARD_HEALTHY:
            if spec_key(hard_spec(hard, spec["arch"], spec["regime"], spec["seed"])) == \
                    spec_key(spec):
                label = "hard %s = %s" % (hard, label)
        m["label"] = label


QUICK_CELLS = {("mlp", "short"), ("mlp", "normal"), ("cnn", "short")}


def _tree():
    """The source tree measured: git HEAD and whether tb_plugin/ has
    uncommitted changes (read-only git calls; "" outside a checkout)."""
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root,
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "tb_plugin"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.split("\n")
        dirty = [line[3:] for line in dirty if line.strip()]
    except (OSError, subprocess.SubprocessError):
        return "tb_plugin sources %s" % _sources_hash()
    return "tree %s%s, tb_plugin sources %s" % (
        head, (" + uncommitted changes to " + ", ".join(dirty)) if dirty else "",
        _sources_hash())


def _sources_hash():
    """A short hash of tb_plugin/*.py: the code measured (workers import it
    when they start, so a change during a run mixes two versions)."""
    import glob
    import hashlib

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    h = hashlib.sha1()
    for path in sorted(glob.glob(os.path.join(root, "tb_plugin", "*.py"))):
        with open(path, "rb") as fh:
            h.update(os.path.basename(path).encode() + b"\0" + fh.read())
    return h.hexdigest()[:10]


def _strict(obj):
    """`obj` with non-finite floats as null (strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): _strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_strict(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seeds", type=int, default=None,
                   help="seeds per fault x arch x regime (default 3; --quick 1)")
    p.add_argument("--quick", action="store_true",
                   help="1 seed; MLP short+normal and CNN short regimes")
    p.add_argument("--only", default=None,
                   help="comma-separated faults and/or hard-healthy names")
    p.add_argument("--regimes", default=",".join(REGIMES))
    p.add_argument("--archs", default=",".join(ARCHS))
    p.add_argument("--keep-logs", default=None, metavar="DIR",
                   help="keep the runs' log dirs here (default: a temp dir, deleted)")
    p.add_argument("--json-out", default=None, metavar="PATH")
    p.add_argument("--rescore", default=None, metavar="JSON",
                   help="no training: score the runs saved by --json-out again, with "
                   "the tables of this script (e.g. after changing FAULTS' accepted kinds)")
    args = p.parse_args(argv)
    if args.rescore:
        with open(args.rescore) as fh:
            saved = json.load(fh)
        print("bench_faults: rescoring %s (run %s, %s, %s s)" % (
            args.rescore, saved.get("date"), saved.get("tree"), saved.get("wall_seconds")))
        label_twins(saved["runs"], {r["name"]: r["spec"] for r in saved["results"]})
        analyse(saved["results"], saved["runs"])
        return 0
    if args.seeds is None:
        args.seeds = 1 if args.quick else 3
    args.regimes = [g for g in args.regimes.split(",") if g]
    args.archs = [a for a in args.archs.split(",") if a]
    for g in args.regimes:
        if g not in REGIMES:
            raise SystemExit("unknown regime %r" % g)
    for a in args.archs:
        if a not in ARCHS:
            raise SystemExit("unknown arch %r" % a)

    jobs, meta = plan(args)
    if args.keep_logs:
        log_root = os.path.abspath(args.keep_logs)
        os.makedirs(log_root, exist_ok=True)
    else:
        log_root = tempfile.mkdtemp(prefix="bench_faults_")
    # Longest fits first (small batches, deep stacks), for load balance.
    def cost(j):
        s = j["spec"]
        steps = {"short": 1, "small_batch": 4, "normal": 5}[s["regime"]]
        return -(steps * (2 if s["model"]["depth"] else 1) * (1.5 if s["arch"] == "cnn" else 1))
    ordered = sorted(jobs, key=cost)
    n_fault = sum(m["group"] == "fault" for m in meta)
    tree = _tree()
    sources = _sources_hash()
    print("bench_faults: %s" % tree)
    print("bench_faults: %d faulty runs, %d healthy runs (%d twins, %d hard); %d fits; "
          "%d worker(s); logs in %s" % (
              n_fault, len(meta) - n_fault, sum(m["group"] == "twin" for m in meta),
              sum(m["group"] == "hard" for m in meta), len(jobs), args.workers, log_root),
          flush=True)
    t0 = time.time()
    results = []
    payload = [dict(name=j["name"], spec=j["spec"], log_root=log_root) for j in ordered]
    try:
        if args.workers <= 1:
            it = map(run_one, payload)
            pool = None
        else:
            ctx = multiprocessing.get_context("spawn")
            pool = ctx.Pool(args.workers, initializer=_init_worker, maxtasksperchild=60)
            it = pool.imap_unordered(run_one, payload, chunksize=1)
        for i, r in enumerate(it, 1):
            results.append(r)
            status = "ERROR" if r["error"] else ", ".join(
                sorted({f["kind"] for f in alarms(r)})) or "-"
            print("[%d/%d %4.0fs] %-48s %5.1fs  %s" % (i, len(payload), time.time() - t0,
                                                       r["name"], r["seconds"], status),
                  file=sys.stderr, flush=True)
        if pool is not None:
            pool.close()
            pool.join()
    finally:
        if not args.keep_logs:
            shutil.rmtree(log_root, ignore_errors=True)
    wall = time.time() - t0
    if _sources_hash() != sources:
        print("WARNING: tb_plugin/*.py changed during the run (now %s): the runs mix two "
              "versions of the code; run again for a clean measurement." % _sources_hash())
    print("\nbench_faults: %d fits in %.0f s (%d worker(s)); %s" % (
        len(results), wall, args.workers, datetime.date.today().isoformat()))
    summary = analyse(results, meta)
    if args.json_out:
        from tb_plugin import diagnosis

        doc = dict(
            date=datetime.datetime.now().isoformat(timespec="seconds"),
            argv=sys.argv[1:] if argv is None else list(argv),
            wall_seconds=round(wall, 1),
            tree=tree,
            kinds_known=list(getattr(diagnosis, "KINDS", [])),
            faults_table={k: dict(v) for k, v in FAULTS.items()},
            hard_healthy=dict(HARD_HEALTHY),
            regimes=REGIMES,
            targets=dict(recall=TARGET_RECALL, false_alarm=TARGET_FALSE_ALARM,
                         layer=TARGET_LAYER, first_detection=TARGET_FIRST_DETECTION),
            summary=summary,
            runs=meta,
            results=results,
        )
        with open(args.json_out, "w") as fh:
            json.dump(_strict(doc), fh, indent=1, default=str, allow_nan=False)
        print("\nwrote %s" % args.json_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
