"""Training scenarios that fail silently (and their fixes), recorded by HealthCallback.

Each scenario is a function ``scenario(log_dir)`` that trains a tiny Keras
model on synthetic data with a fixed seed and records it with
:class:`tb_plugin.HealthCallback` (the ``seed001_loop_*`` custom loops: with
:mod:`tb_plugin.summary`) into ``log_dir/train`` and ``log_dir/validation``. They are shared by the tests and by the demo logs::

    python -m tb_plugin.demo OUTDIR            # every scenario, OUTDIR/<scenario>/
    python -m tb_plugin.demo OUTDIR --only seed000_relu_logits seed000_fixed

Every scenario takes seconds on two CPU cores. ``SCENARIOS`` maps each name
to its function and the finding kinds it is expected to produce in its
train and validation runs (empty for the healthy ones). The configurations
of seed 001's seed study (``seed001_compare/<configuration>``, for
``tb-health compare`` and the Compare view) are trained once per seed, as
``scenario(log_dir/seed<N>, seed=N)``.

Needs TensorFlow (it trains models); the rest of the package does not.
"""

import argparse
import dataclasses
import os
import shutil
import sys
import time
from typing import Callable, Dict, FrozenSet, Tuple

import numpy as np

# Kinds, spelled out here to avoid importing diagnosis (and its numpy-only
# world) into the expectations table by accident of naming.
NONFINITE = "nonfinite"
PREDICTION_COLLAPSE = "prediction_collapse"
CLASS_COLLAPSE = "class_collapse"
SKEWED_CLASS_WEIGHTS = "skewed_class_weights"
TIED_PREDICTIONS = "tied_predictions"
VANISHING = "vanishing_gradients"
EXPLODING = "exploding_gradients"
LEARNING_RATE = "learning_rate_too_high"
DEAD_UNITS = "dead_units"
OUTPUT_ACTIVATION = "output_activation_mismatch"
TRAIN_MODE_INACTIVE = "train_mode_inactive"
TRAINING_ARG_MISSING = "training_arg_missing"

# Every scenario records with HealthCallback's default cadence (what users
# get); validation records once per epoch.

_tf_configured = False


def _tf():
    """Imports TensorFlow once, single-threaded (deterministic, and polite on
    a shared machine), and returns (tf, keras)."""
    global _tf_configured
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    import keras

    if not _tf_configured:
        _tf_configured = True
        try:
            tf.config.threading.set_intra_op_parallelism_threads(1)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:  # TF already initialised by the caller: fine
            pass
    return tf, keras


def _callback(log_dir, **kwargs):
    from tb_plugin.callback import HealthCallback

    kwargs.setdefault("report_findings", False)  # diagnosed afterwards
    return HealthCallback(log_dir, **kwargs)


def _fit(model, x, y, log_dir, epochs, batch_size, validation_split=0.2,
         callback_kwargs=None, keras_scalars=False, **fit_kwargs):
    """model.fit recorded by HealthCallback; with `keras_scalars`, also by
    keras.callbacks.TensorBoard (epoch_loss etc. in the same runs)."""
    callbacks = [_callback(log_dir, **(callback_kwargs or {}))]
    if keras_scalars:
        _, keras = _tf()
        callbacks.append(keras.callbacks.TensorBoard(log_dir, write_graph=False))
    return model.fit(
        x, y,
        epochs=epochs,
        batch_size=batch_size,
        validation_split=validation_split,
        shuffle=True,
        verbose=0,
        callbacks=callbacks,
        **fit_kwargs,
    )


# ---------------------------------------------------------------------------
# Synthetic data


def bag_of_tokens(n=1600, vocab=300, classes=7, seed=0, background=1.0, signal=10.0):
    """Counts of `vocab` tokens in code snippets of `classes` languages.

    Each language has 12 distinctive tokens (counts ~ Poisson(background +
    signal)) on top of a background of every token (Poisson(background)),
    like seed 000's token counters.
    """
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, size=n)
    rates = np.full((classes, vocab), background)
    for c in range(classes):
        rates[c, rng.choice(vocab, 12, replace=False)] += signal
    x = rng.poisson(rates[y]).astype("float32")
    return x, y.astype("int32")


def identity_signal(n=1600, seed=0):
    """Seed 002's task: reproduce a scalar input in [-1, 1]."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, size=(n, 1)).astype("float32")
    return x, x.copy()


def blobs(n=1200, dim=16, classes=4, spread=1.0, seed=0, weights=None):
    """Gaussian blobs: class c centred at a random unit-scale point."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 1.0, size=(classes, dim)) * 1.5
    y = rng.choice(classes, size=n, p=weights)
    x = centres[y] + rng.normal(0.0, spread, size=(n, dim))
    return x.astype("float32"), y.astype("int32")


def smooth_regression(n=1600, dim=8, seed=0):
    """y = sin(x0) + x1 * x2 + 0.5 x3 + noise, standardised."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, size=(n, dim)).astype("float32")
    y = np.sin(x[:, 0]) + x[:, 1] * x[:, 2] + 0.5 * x[:, 3] + 0.1 * rng.normal(size=n)
    y = (y - y.mean()) / y.std()
    return x, y.astype("float32")[:, None]


def bar_images(n=1200, size=10, seed=0):
    """size x size images of a horizontal bar, vertical bar, diagonal or
    anti-diagonal at a random offset, plus noise (4 classes)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, size=n)
    x = rng.normal(0.0, 0.3, size=(n, size, size, 1))
    for i, c in enumerate(y):
        k = rng.integers(1, size - 1)
        if c == 0:
            x[i, k, :, 0] += 1.0
        elif c == 1:
            x[i, :, k, 0] += 1.0
        elif c == 2:
            x[i, np.arange(size), np.arange(size), 0] += 1.0
        else:
            x[i, np.arange(size), size - 1 - np.arange(size), 0] += 1.0
    return x.astype("float32"), y.astype("int32")


# ---------------------------------------------------------------------------
# Seed 000: ReLU on the logits


def _seed000_model(output_activation):
    tf, keras = _tf()
    reg = keras.regularizers.l2(0.01)
    model = keras.Sequential([
        keras.Input((300,)),
        keras.layers.Dense(96, activation="elu", kernel_regularizer=reg, name="hidden1"),
        keras.layers.Dropout(0.2, name="dropout1"),
        keras.layers.Dense(7, activation=output_activation, kernel_regularizer=reg,
                           name="logits"),
    ], name="seed000")
    model.compile(
        optimizer=keras.optimizers.RMSprop(learning_rate=0.1),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def seed000_relu_logits(log_dir):
    """Seed 000: bag-of-tokens classifier with activation='relu' on the logits
    layer and a from_logits=True loss; RMSprop(0.1) drives every logit to 0,
    the softmax to 1/7 everywhere, and in_top_k-style accuracy to ~100%."""
    _, keras = _tf()
    keras.utils.set_random_seed(0)
    x, y = bag_of_tokens(seed=0)
    return _fit(_seed000_model("relu"), x, y, log_dir, epochs=10, batch_size=128)


def seed000_fixed(log_dir):
    """Seed 000, fixed: no activation on the logits layer (same optimiser)."""
    _, keras = _tf()
    keras.utils.set_random_seed(0)
    x, y = bag_of_tokens(seed=0)
    return _fit(_seed000_model(None), x, y, log_dir, epochs=10, batch_size=128)


# ---------------------------------------------------------------------------
# Seed 002: tiny initialisation


def _seed002_model(init):
    tf, keras = _tf()
    if init == "tiny":
        kinit = lambda: keras.initializers.RandomNormal(0.0, 1e-3)  # noqa: E731
        binit = kinit
    else:  # the accepted answer's fix: Xavier/Glorot weights, biases 0.1
        kinit = lambda: keras.initializers.GlorotUniform()  # noqa: E731
        binit = lambda: keras.initializers.Constant(0.1)  # noqa: E731
    model = keras.Sequential([
        keras.Input((1,)),
        keras.layers.Dense(16, activation="relu", kernel_initializer=kinit(),
                           bias_initializer=binit(), name="W"),
        keras.layers.Dense(16, activation="relu", kernel_initializer=kinit(),
                           bias_initializer=binit(), name="W1"),
        keras.layers.Dense(1, kernel_initializer=kinit(), bias_initializer=binit(),
                           name="W2"),
    ], name="seed002")
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=1e-3), loss="mse")
    return model


def seed002_tiny_init(log_dir):
    """Seed 002: 3-layer ReLU net, N(0, 1e-3) init, SGD(1e-3): first-layer
    gradients ~1000x below the last, output constant whatever the input."""
    _, keras = _tf()
    keras.utils.set_random_seed(2)
    x, y = identity_signal(seed=2)
    return _fit(_seed002_model("tiny"), x, y, log_dir, epochs=6, batch_size=32)


def seed002_fixed(log_dir):
    """Seed 002, fixed: Glorot init, biases 0.1, same optimiser."""
    _, keras = _tf()
    keras.utils.set_random_seed(2)
    x, y = identity_signal(seed=2)
    return _fit(_seed002_model("glorot"), x, y, log_dir, epochs=6, batch_size=32)


# ---------------------------------------------------------------------------
# Deep sigmoid stack (vanishing) and its ReLU twin


def _deep_model(activation, depth=8, width=32):
    tf, keras = _tf()
    layers = [keras.Input((16,))]
    init = "glorot_uniform" if activation == "sigmoid" else "he_normal"
    for i in range(depth):
        layers.append(keras.layers.Dense(width, activation=activation,
                                         kernel_initializer=init, name="dense_%d" % i))
    layers.append(keras.layers.Dense(4, name="logits"))
    model = keras.Sequential(layers, name="deep_" + activation)
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=0.05),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def deep_sigmoid(log_dir):
    """Eight stacked sigmoid layers trained with SGD: the early layers'
    gradients vanish (each sigmoid multiplies them by at most 1/4)."""
    _, keras = _tf()
    keras.utils.set_random_seed(3)
    x, y = blobs(seed=3)
    return _fit(_deep_model("sigmoid"), x, y, log_dir, epochs=6, batch_size=32)


def deep_relu(log_dir):
    """The same depth with ReLU and He init: gradients reach the first layer."""
    _, keras = _tf()
    keras.utils.set_random_seed(3)
    x, y = blobs(seed=3)
    return _fit(_deep_model("relu"), x, y, log_dir, epochs=6, batch_size=32)


# ---------------------------------------------------------------------------
# Healthy models


def healthy_cnn(log_dir):
    """A small CNN on 10x10 bar images (4 classes), Adam."""
    _, keras = _tf()
    keras.utils.set_random_seed(4)
    x, y = bar_images(seed=4)
    model = keras.Sequential([
        keras.Input((10, 10, 1)),
        keras.layers.Conv2D(8, 3, activation="relu", name="conv1"),
        keras.layers.MaxPooling2D(2, name="pool1"),
        keras.layers.Conv2D(16, 3, activation="relu", name="conv2"),
        keras.layers.GlobalAveragePooling2D(name="gap"),
        keras.layers.Dense(4, name="logits"),
    ], name="cnn")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return _fit(model, x, y, log_dir, epochs=6, batch_size=32)


def _binary_data(seed):
    x, y = blobs(n=1200, dim=10, classes=2, spread=1.5, seed=seed)
    return x, y.astype("float32")


def _binary_model():
    tf, keras = _tf()
    model = keras.Sequential([
        keras.Input((10,)),
        keras.layers.Dense(16, activation="relu", name="hidden"),
        keras.layers.Dense(1, activation="sigmoid", name="prob"),
    ], name="binary")
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy",
                  metrics=["accuracy"])
    return model


def healthy_binary(log_dir):
    """A binary classifier: sigmoid output, binary cross-entropy, Adam."""
    _, keras = _tf()
    keras.utils.set_random_seed(5)
    x, y = _binary_data(5)
    return _fit(_binary_model(), x, y, log_dir, epochs=6, batch_size=32)


def _regression_model(lr, optimizer="adam", dropout=0.1):
    tf, keras = _tf()
    model = keras.Sequential([
        keras.Input((8,)),
        keras.layers.Dense(32, activation="relu", name="dense1"),
        keras.layers.Dropout(dropout, name="drop1"),
        keras.layers.Dense(32, activation="relu", name="dense2"),
        keras.layers.Dropout(dropout, name="drop2"),
        keras.layers.Dense(1, name="out"),
    ], name="regression")
    opt = (keras.optimizers.Adam(lr) if optimizer == "adam"
           else keras.optimizers.SGD(lr))
    model.compile(optimizer=opt, loss="mse")
    return model


def healthy_regression(log_dir):
    """A regression MLP with dropout, Adam, standardised targets."""
    _, keras = _tf()
    keras.utils.set_random_seed(6)
    x, y = smooth_regression(seed=6)
    return _fit(_regression_model(3e-3), x, y, log_dir, epochs=6, batch_size=32)


# ---------------------------------------------------------------------------
# Exploding gradients (every layer at once) and nonfinite values


def _linear_regression_model(lr):
    tf, keras = _tf()
    model = keras.Sequential([
        keras.Input((8,)),
        keras.layers.Dense(32, name="dense1"),
        keras.layers.Dense(32, name="dense2"),
        keras.layers.Dense(1, name="out"),
    ], name="linear_regression")
    model.compile(optimizer=keras.optimizers.SGD(lr), loss="mse")
    return model


def exploding_sgd(log_dir):
    """A regression net without activations trained with SGD just above its
    stability limit (lr 0.27): every layer's gradient grows together by
    orders of magnitude within a few steps (the first/last ratio stays
    normal, so ratio rules miss it), then overflows to Inf/NaN while fit
    goes on."""
    _, keras = _tf()
    keras.utils.set_random_seed(7)
    x, y = smooth_regression(seed=7)
    return _fit(_linear_regression_model(0.27), x, y, log_dir, epochs=1, batch_size=32)


def exploding_fixed(log_dir):
    """The same model and data with a sane learning rate (0.05)."""
    _, keras = _tf()
    keras.utils.set_random_seed(7)
    x, y = smooth_regression(seed=7)
    return _fit(_linear_regression_model(0.05), x, y, log_dir, epochs=1, batch_size=32)


def nan_in_data(log_dir):
    """One NaN feature value in the training data: its batch gives NaN
    gradients, which turn the first kernel NaN; ReLU maps the NaN activations
    to 0, so the hidden layer is dead and the output constant from then on,
    while fit goes on without an error."""
    _, keras = _tf()
    keras.utils.set_random_seed(8)
    x, y = _binary_data(8)
    x[17, 3] = np.nan
    return _fit(_binary_model(), x, y, log_dir, epochs=4, batch_size=32)


# ---------------------------------------------------------------------------
# Dead units


def _dead_model(bias):
    tf, keras = _tf()
    model = keras.Sequential([
        keras.Input((16,)),
        keras.layers.Dense(32, activation="relu", name="dense1"),
        keras.layers.Dense(64, activation="relu", name="dense2",
                           bias_initializer=keras.initializers.Constant(bias)),
        keras.layers.Dense(4, name="logits"),
    ], name="mlp")
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=0.05),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def dead_relu(log_dir):
    """A ReLU layer whose biases start at -4: nearly every unit is inactive on
    every example, gets exactly zero gradient, and never recovers."""
    _, keras = _tf()
    keras.utils.set_random_seed(9)
    x, y = blobs(seed=9)
    return _fit(_dead_model(-4.0), x, y, log_dir, epochs=6, batch_size=32)


def dead_relu_fixed(log_dir):
    """The same model with biases starting at 0."""
    _, keras = _tf()
    keras.utils.set_random_seed(9)
    x, y = blobs(seed=9)
    return _fit(_dead_model(0.0), x, y, log_dir, epochs=6, batch_size=32)


# ---------------------------------------------------------------------------
# Class collapse


def _class_weight_model():
    tf, keras = _tf()
    model = keras.Sequential([
        keras.Input((16,)),
        keras.layers.Dense(32, activation="relu", name="hidden"),
        keras.layers.Dense(3, name="logits"),
    ], name="classifier")
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def class_weight_bug(log_dir):
    """Balanced, overlapping classes trained with class_weight={0: 200, 1: 1,
    2: 1} (2.00 typed as 200): the model predicts class 0 for almost every
    input, while the weighted loss looks fine."""
    _, keras = _tf()
    keras.utils.set_random_seed(10)
    x, y = blobs(n=1200, classes=3, spread=4.0, seed=10)
    return _fit(_class_weight_model(), x, y, log_dir, epochs=6, batch_size=32,
                class_weight={0: 200.0, 1: 1.0, 2: 1.0})


def class_weight_fixed(log_dir):
    """The same model and data without the class weights."""
    _, keras = _tf()
    keras.utils.set_random_seed(10)
    x, y = blobs(n=1200, classes=3, spread=4.0, seed=10)
    return _fit(_class_weight_model(), x, y, log_dir, epochs=6, batch_size=32)


# ---------------------------------------------------------------------------
# Seed 001: dropout silently off while the model trains


def _seed001_model(kind):
    """Seed 001's regression MLP (4 x Dense(64, relu) + Dropout(0.05)): as a
    keras.Sequential (`kind` "sequential") or as a subclassed model whose
    call passes `training` on ("training_arg") or takes none
    ("no_training_arg": fit calls it without the flag and every Dropout runs
    in inference mode)."""
    tf, keras = _tf()

    def dense(i):
        return keras.layers.Dense(64, activation="relu", name="dense%d" % i)

    def dropout(i):
        return keras.layers.Dropout(0.05, name="dropout%d" % i)

    class Base(keras.Model):
        def __init__(self):
            super().__init__(name="seed001")
            self.dense = [dense(i) for i in range(4)]
            self.drop = [dropout(i) for i in range(4)]
            self.out = keras.layers.Dense(1, name="out")

    if kind == "sequential":
        model = keras.Sequential(
            [keras.Input((8,))] + [layer for i in range(4) for layer in (dense(i), dropout(i))]
            + [keras.layers.Dense(1, name="out")], name="seed001")
    else:
        if kind == "training_arg":
            class Seed001MLP(Base):
                def call(self, inputs, training=None):
                    x = inputs
                    for d, drop in zip(self.dense, self.drop):
                        x = drop(d(x), training=training)
                    return self.out(x)
        else:
            class Seed001MLP(Base):
                def call(self, inputs):  # no `training`: fit calls it without the flag
                    x = inputs
                    for d, drop in zip(self.dense, self.drop):
                        x = drop(d(x))
                    return self.out(x)
        model = Seed001MLP()
    model.compile(optimizer=keras.optimizers.RMSprop(5e-4), loss="mse")
    return model


def _seed001_fit(kind, log_dir, seed, log_every_n_steps):
    """Seed 001's model `kind` trained with random seed `seed` on the same
    data; keras.callbacks.TensorBoard records its loss beside the health."""
    _, keras = _tf()
    keras.utils.set_random_seed(seed)
    x, y = smooth_regression(seed=1)
    return _fit(_seed001_model(kind), x, y, log_dir, epochs=4, batch_size=32,
                keras_scalars=True,
                callback_kwargs=dict(log_every_n_steps=log_every_n_steps))


def seed001_no_training_arg(log_dir, seed=1, log_every_n_steps=None):
    """Seed 001: a subclassed regression MLP with Dropout(0.05) after every
    hidden layer whose call(self, inputs) takes no `training`: fit calls it
    without the flag, so every Dropout runs in inference mode (the model
    trains, "better", without its dropout)."""
    return _seed001_fit("no_training_arg", log_dir, seed, log_every_n_steps)


def seed001_training_arg(log_dir, seed=1, log_every_n_steps=None):
    """Seed 001, fixed: call(self, inputs, training=None) passes the flag on."""
    return _seed001_fit("training_arg", log_dir, seed, log_every_n_steps)


def seed001_sequential(log_dir, seed=1, log_every_n_steps=None):
    """Seed 001's network as a keras.Sequential model: the same layers, the
    same computation as the fixed subclassed model."""
    return _seed001_fit("sequential", log_dir, seed, log_every_n_steps)


def _custom_loop(log_dir, training, epochs=6, batch_size=32, every=4):
    """A GradientTape loop recorded with tb_plugin.summary: a classifier with
    BatchNormalization and Dropout called as model(x) (`training` False:
    both run in inference mode) or model(x, training=True)."""
    tf, keras = _tf()
    import tb_plugin.summary as health

    keras.utils.set_random_seed(11)
    x, y = blobs(n=1200, classes=4, spread=1.5, seed=11)
    n_val = len(x) // 5
    x_val, y_val, x, y = x[:n_val], y[:n_val], x[n_val:], y[n_val:]
    model = keras.Sequential([
        keras.Input((16,)),
        keras.layers.Dense(64, name="hidden"),
        keras.layers.BatchNormalization(name="bn"),
        keras.layers.ReLU(name="relu"),
        keras.layers.Dropout(0.3, name="dropout"),
        keras.layers.Dense(4, name="logits"),
    ], name="loop")
    optimizer = keras.optimizers.Adam(1e-2)
    loss_fn = tf.nn.sparse_softmax_cross_entropy_with_logits
    train_writer = tf.summary.create_file_writer(os.path.join(log_dir, "train"))
    val_writer = tf.summary.create_file_writer(os.path.join(log_dir, "validation"))
    with train_writer.as_default():
        health.model_manifest(model, loss_fn, optimizer)
    probe = health.train_mode_probe(model)

    @tf.function
    def train_step(xb, yb, step):
        with tf.GradientTape() as tape:
            with probe:
                logits = model(xb, training=True) if training else model(xb)
            loss = tf.reduce_mean(loss_fn(yb, logits))
        variables = model.trainable_variables
        grads = tape.gradient(loss, variables)
        with train_writer.as_default(step=step), tf.summary.record_if(step % every == 0):
            health.prediction_distribution("predictions", logits, labels=yb, from_logits=True)
            health.gradient_magnitudes("gradients", grads, variables)
            health.train_mode(probe)
        optimizer.apply_gradients(zip(grads, variables))
        return loss

    rng = np.random.default_rng(11)
    step = 0
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for i in range(0, len(x), batch_size):
            idx = order[i:i + batch_size]
            train_step(tf.constant(x[idx]), tf.constant(y[idx]), tf.constant(step, tf.int64))
            step += 1
        with val_writer.as_default(step=step):
            health.prediction_distribution("predictions", model(x_val, training=False),
                                           labels=y_val, from_logits=True)
    train_writer.close()
    val_writer.close()
    return model


def seed001_loop_no_training(log_dir):
    """Seed 001 in a custom training loop: the GradientTape step calls
    model(x), so BatchNormalization and Dropout run in inference mode while
    the model trains (recorded with tb_plugin.summary.train_mode)."""
    return _custom_loop(log_dir, training=False)


def seed001_loop_training(log_dir):
    """The same loop calling model(x, training=True)."""
    return _custom_loop(log_dir, training=True)


# ---------------------------------------------------------------------------
# The table


@dataclasses.dataclass(frozen=True)
class Scenario:
    name: str
    fn: Callable
    train: FrozenSet[str]  # finding kinds expected in <scenario>/train
    validation: FrozenSet[str]  # ... and in <scenario>/validation
    twin: str = ""  # the healthy/fixed twin of a failing scenario
    # Trained once per seed, fn(<name>/seed<N>, seed=N), when not empty: a
    # configuration of a seed study (expected kinds: in every seed's runs).
    seeds: Tuple[int, ...] = ()

    @property
    def healthy(self):
        return not self.train and not self.validation

    @property
    def doc(self):
        return " ".join((self.fn.__doc__ or "").split())


def _s(name, fn, train=(), validation=(), twin="", seeds=()):
    return Scenario(name, fn, frozenset(train), frozenset(validation), twin, tuple(seeds))


# Seed 001's second half: configurations x seeds for tb-health compare and the
# Compare view (runs <configuration>/seed<N>/{train,validation}).
COMPARE_SEEDS = range(10)
# Their health records every 10 steps (16 per fit): enough for the health
# findings the comparison puts first, at a quarter of the default's size.
COMPARE_LOG_EVERY = 10
COMPARE = "seed001_compare/"


SCENARIOS: Dict[str, Scenario] = {s.name: s for s in [
    # Seed 000: the ReLU kills every logit (dead_units on the logits layer),
    # the softmax goes uniform, every row ties, in_top_k says ~100%. RMSprop
    # at 0.1 (100x its default) moves the weights by several times their size
    # in the first steps; the fixed twin learns anyway, this one does not.
    _s("seed000_relu_logits", seed000_relu_logits,
       train={OUTPUT_ACTIVATION, PREDICTION_COLLAPSE, TIED_PREDICTIONS, DEAD_UNITS,
              LEARNING_RATE},
       validation={PREDICTION_COLLAPSE, TIED_PREDICTIONS}, twin="seed000_fixed"),
    _s("seed000_fixed", seed000_fixed),
    # Seed 002: starved early layers, constant output; the tiny negative
    # biases also leave most units of the middle ReLU layer dead.
    _s("seed002_tiny_init", seed002_tiny_init,
       train={VANISHING, PREDICTION_COLLAPSE, DEAD_UNITS}, validation={PREDICTION_COLLAPSE},
       twin="seed002_fixed"),
    _s("seed002_fixed", seed002_fixed),
    # The sigmoid stack cannot learn: near-uniform outputs as well.
    _s("deep_sigmoid", deep_sigmoid, train={VANISHING, PREDICTION_COLLAPSE},
       validation={PREDICTION_COLLAPSE}, twin="deep_relu"),
    _s("deep_relu", deep_relu),
    _s("healthy_cnn", healthy_cnn),
    _s("healthy_binary", healthy_binary),
    _s("healthy_regression", healthy_regression),
    _s("exploding_sgd", exploding_sgd, train={EXPLODING, NONFINITE, LEARNING_RATE},
       validation={NONFINITE}, twin="exploding_fixed"),
    _s("exploding_fixed", exploding_fixed),
    # The NaN row turns the first kernel NaN; ReLU maps the NaN activations to
    # 0, so the hidden layer is dead and the output constant from then on.
    _s("nan_in_data", nan_in_data, train={NONFINITE, DEAD_UNITS, PREDICTION_COLLAPSE},
       validation={PREDICTION_COLLAPSE}, twin="healthy_binary"),
    # Dead middle layer: no gradient reaches the first one, output constant.
    _s("dead_relu", dead_relu, train={DEAD_UNITS, PREDICTION_COLLAPSE},
       validation={PREDICTION_COLLAPSE}, twin="dead_relu_fixed"),
    _s("dead_relu_fixed", dead_relu_fixed),
    _s("class_weight_bug", class_weight_bug, train={SKEWED_CLASS_WEIGHTS, CLASS_COLLAPSE},
       validation={CLASS_COLLAPSE}, twin="class_weight_fixed"),
    _s("class_weight_fixed", class_weight_fixed),
    # Seed 001: Dropout (and BatchNormalization) silently in inference mode
    # while the model trains: in fit (call without `training`, also visible
    # in the manifest) and in a custom loop (model(x) in the GradientTape).
    _s("seed001_no_training_arg", seed001_no_training_arg,
       train={TRAINING_ARG_MISSING, TRAIN_MODE_INACTIVE}, twin="seed001_training_arg"),
    _s("seed001_training_arg", seed001_training_arg),
    _s("seed001_loop_no_training", seed001_loop_no_training, train={TRAIN_MODE_INACTIVE},
       twin="seed001_loop_training"),
    _s("seed001_loop_training", seed001_loop_training),
    # The same network twice (a difference within seed noise) and the broken
    # subclassed model (inactive dropout: a difference in health first).
    _s(COMPARE + "sequential", seed001_sequential, seeds=COMPARE_SEEDS),
    _s(COMPARE + "subclassed", seed001_training_arg, seeds=COMPARE_SEEDS),
    _s(COMPARE + "subclassed_no_training", seed001_no_training_arg,
       train={TRAINING_ARG_MISSING, TRAIN_MODE_INACTIVE}, twin=COMPARE + "subclassed",
       seeds=COMPARE_SEEDS),
]}


def run_scenario(name, outdir):
    """Trains scenario `name` into ``outdir/<name>`` (emptied first; one
    ``seed<N>`` directory per seed of a seeded one); returns that directory."""
    scenario = SCENARIOS[name]
    log_dir = os.path.join(outdir, name)
    shutil.rmtree(log_dir, ignore_errors=True)
    os.makedirs(log_dir, exist_ok=True)
    _, keras = _tf()
    if not scenario.seeds:
        keras.backend.clear_session()
        scenario.fn(log_dir)
    for seed in scenario.seeds:
        keras.backend.clear_session()
        scenario.fn(os.path.join(log_dir, "seed%d" % seed), seed=seed,
                    log_every_n_steps=COMPARE_LOG_EVERY)
    return log_dir


def write_all(outdir, names=None, verbose=True):
    """Writes every scenario (or `names`) under `outdir`; returns
    {name: seconds}."""
    os.makedirs(outdir, exist_ok=True)
    timings = {}
    for name in names or list(SCENARIOS):
        t = time.perf_counter()
        run_scenario(name, outdir)
        timings[name] = time.perf_counter() - t
        if verbose:
            print("%-22s %5.1fs  %s" % (name, timings[name], SCENARIOS[name].doc[:70]),
                  flush=True)
    return timings


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m tb_plugin.demo",
        description="Train the demo scenarios and write their TensorBoard logs "
        "(OUTDIR/<scenario>/train and /validation).",
    )
    parser.add_argument("outdir", metavar="OUTDIR")
    parser.add_argument("--only", nargs="+", metavar="SCENARIO", choices=list(SCENARIOS),
                        help="only these scenarios")
    args = parser.parse_args(argv)
    t = time.perf_counter()
    write_all(args.outdir, args.only)
    print("wrote %d scenarios to %s in %.1fs; view them with: tensorboard --logdir %s"
          % (len(args.only or SCENARIOS), args.outdir, time.perf_counter() - t,
             args.outdir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
