"""The run manifest: what a model, its loss and its optimizer are.

One implementation for :class:`tb_plugin.HealthCallback` (which writes it
once per fit) and :func:`tb_plugin.summary.model_manifest` (custom training
loops). The manifest is a JSON-able dict, written under ``health/manifest``
(see :mod:`tb_plugin.metadata`); the manifest rules of
:mod:`tb_plugin.diagnosis` read::

    {
      "model": "m",
      "layers": [{"name", "class", "activation", "kernel_initializer",
                  "bias_initializer", "params", "trainable_params"}, ...],
      "output_layer": "out",          # name of the last layer
      "loss": {"class", "name", "from_logits"},
      "optimizer": {"class", "learning_rate"},
      "versions": {"tensorflow", "keras", "tb_plugin"},
      "train_mode": {"layers", "call_without_training", "inference_calls"},
    }

``train_mode`` (see :func:`tb_plugin.train_mode.manifest_info`): the layers
that behave differently in training (kind, rate, trainable), the model when
its ``call`` takes no ``training`` although it holds such layers, and the
layers a Functional graph calls with an explicit ``training=False``.

Losses are recognised from Keras loss objects and names, the TensorFlow ops
``tf.nn.softmax_cross_entropy_with_logits``,
``tf.nn.sparse_softmax_cross_entropy_with_logits`` (multi-class, logits),
``tf.nn.sigmoid_cross_entropy_with_logits`` and
``tf.nn.weighted_cross_entropy_with_logits`` (binary, logits), and plain
functions by their name (``my_sparse_categorical_crossentropy``,
``masked_mse``, ...). Keras and TensorFlow are imported only to read a model.
"""

import functools
import inspect
import json
import math
import re

from tb_plugin import metadata

_MULTICLASS_LOSSES = {
    "sparsecategoricalcrossentropy",
    "categoricalcrossentropy",
    "categoricalfocalcrossentropy",
    "kldivergence",
    "kld",
    "kullbackleiblerdivergence",
}
_BINARY_LOSSES = {"binarycrossentropy", "binaryfocalcrossentropy", "hinge", "squaredhinge"}
_REGRESSION_LOSSES = {
    "meansquarederror",
    "mse",
    "meanabsoluteerror",
    "mae",
    "huber",
    "huberloss",
    "logcosh",
    "meanabsolutepercentageerror",
    "mape",
    "meansquaredlogarithmicerror",
    "msle",
    "poisson",
    "cosinesimilarity",
}
# TensorFlow ops that take logits, by their public name (TF's functions are
# named with a "_v2" suffix, which the manifest drops).
_LOGITS_OPS = {
    "softmax_cross_entropy_with_logits": metadata.TASK_MULTICLASS,
    "sparse_softmax_cross_entropy_with_logits": metadata.TASK_MULTICLASS,
    "sigmoid_cross_entropy_with_logits": metadata.TASK_BINARY,
    "weighted_cross_entropy_with_logits": metadata.TASK_BINARY,
}
# Plain functions: parts of their normalised name (see _norm_name) ...
_NAME_PARTS = (
    ("categoricalcrossentropy", metadata.TASK_MULTICLASS),
    ("softmaxcrossentropy", metadata.TASK_MULTICLASS),
    ("binarycrossentropy", metadata.TASK_BINARY),
    ("sigmoidcrossentropy", metadata.TASK_BINARY),
    ("meansquarederror", metadata.TASK_REGRESSION),
    ("meanabsoluteerror", metadata.TASK_REGRESSION),
    ("meansquaredlogarithmicerror", metadata.TASK_REGRESSION),
    ("logcosh", metadata.TASK_REGRESSION),
)
# ... or words of it ("masked_mse").
_REGRESSION_WORDS = {"mse", "rmse", "mae", "msle", "mape", "huber", "logcosh"}


def _norm_name(name):
    return "".join(c for c in str(name).lower() if c.isalnum())


def _table_task(name):
    n = _norm_name(name)
    if n in _MULTICLASS_LOSSES:
        return metadata.TASK_MULTICLASS
    if n in _BINARY_LOSSES:
        return metadata.TASK_BINARY
    if n in _REGRESSION_LOSSES:
        return metadata.TASK_REGRESSION
    return None


def _name_task(name):
    """The task of a plain function's name, or None."""
    n = _norm_name(name)
    for part, task in _NAME_PARTS:
        if part in n:
            return task
    if set(re.split(r"[^a-z0-9]+", str(name).lower())) & _REGRESSION_WORDS:
        return metadata.TASK_REGRESSION
    return None


def _function_info(fn):
    """(name, task, from_logits) of a plain loss function; from_logits None
    when unknown."""
    keywords = {}
    while isinstance(fn, functools.partial):
        keywords = dict(fn.keywords or {}, **keywords)
        fn = fn.func
    name = getattr(fn, "__name__", None) or type(fn).__name__
    module = getattr(fn, "__module__", None) or ""
    if module.startswith("tensorflow"):
        public = re.sub(r"(_v2)?(_helper)?$", "", name)
        if public in _LOGITS_OPS:
            return public, _LOGITS_OPS[public], True
    exact = _table_task(name)
    task = exact or _name_task(name)
    from_logits = keywords.get("from_logits")
    if from_logits is None:
        try:
            param = inspect.signature(fn).parameters.get("from_logits")
        except (TypeError, ValueError):
            param = None
        if param is not None and isinstance(param.default, bool):
            from_logits = param.default
        elif "logits" in name.lower():
            from_logits = True
        elif exact:
            from_logits = False  # Keras's loss functions' default
    return name, task, None if from_logits is None else bool(from_logits)


def loss_info(loss, from_logits=None):
    """(info dict for the manifest, task or None, from_logits or None) of a loss.

    `loss`: a ``keras.losses.Loss``, a Keras loss name, a TensorFlow op such
    as ``tf.nn.sparse_softmax_cross_entropy_with_logits`` or a plain function
    (also a ``functools.partial``). `from_logits` (a bool) overrides what the
    loss says.
    """
    if isinstance(loss, (list, tuple, dict)):
        return {"class": type(loss).__name__, "name": None, "from_logits": None}, None, None
    logits = False
    if isinstance(loss, str):
        cls = name = loss
        task = _table_task(loss)
    elif _is_keras_loss(loss):
        cls, name = type(loss).__name__, getattr(loss, "name", None)
        task = _table_task(cls) or _table_task(name)
        try:
            config = loss.get_config()
        except Exception:  # noqa: BLE001 - custom losses
            config = None
        if isinstance(config, dict) and "from_logits" in config:
            logits = bool(config["from_logits"])
        else:  # Keras's losses without the option take what the model outputs
            logits = False if task and config is not None else None
    elif callable(loss):
        name, task, logits = _function_info(loss)
        cls = name
    else:
        return {"class": None, "name": None, "from_logits": None}, None, None
    if from_logits is not None:
        logits = bool(from_logits)
    if task == metadata.TASK_REGRESSION:
        logits = None
    return {"class": cls, "name": name, "from_logits": logits}, task, logits


def _is_keras_loss(loss):
    try:
        import keras
    except ImportError:  # pragma: no cover - recording needs Keras
        return False
    return isinstance(loss, keras.losses.Loss)


def _jsonable(obj):
    return json.loads(json.dumps(obj, default=str))


def _activation_name(config):
    act = config.get("activation")
    if act is None:
        return None
    if isinstance(act, dict):
        return act.get("config", {}).get("name") or act.get("class_name")
    return str(act)


def _iter_layers(model):
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.Model) and layer.layers:
            yield from _iter_layers(layer)
        else:
            yield layer


def build_manifest(model, loss=None, optimizer=None, from_logits=None):
    """The run manifest (see the module docstring) of a Keras model.

    `loss` and `optimizer` default to the compiled ones (``model.loss``,
    ``model.optimizer``); `from_logits` overrides what the loss says (see
    :func:`loss_info`).
    """
    import keras
    import tensorflow as tf

    import tb_plugin

    layers = []
    for layer in _iter_layers(model):
        try:
            config = layer.get_config()
        except Exception:  # noqa: BLE001 - layers without get_config
            config = {}
        params = sum(int(math.prod(w.shape)) for w in layer.weights)
        trainable = sum(int(math.prod(w.shape)) for w in layer.trainable_weights)
        layers.append(
            {
                "name": layer.name,
                "class": type(layer).__name__,
                "activation": _activation_name(config),
                "kernel_initializer": _jsonable(config.get("kernel_initializer")),
                "bias_initializer": _jsonable(config.get("bias_initializer")),
                "params": params,
                "trainable_params": trainable,
            }
        )
    info, _, _ = loss_info(loss if loss is not None else getattr(model, "loss", None),
                           from_logits)
    opt = optimizer if optimizer is not None else getattr(model, "optimizer", None)
    lr = None
    if opt is not None:
        try:
            value = opt.learning_rate
            value = value.numpy() if hasattr(value, "numpy") else keras.ops.convert_to_numpy(value)
            lr = float(value)
        except Exception:  # noqa: BLE001 - schedules etc.
            lr = None
    inner = getattr(opt, "inner_optimizer", None)
    try:
        from tb_plugin import train_mode

        modes = train_mode.manifest_info(model)
    except Exception:  # noqa: BLE001 - the rest of the manifest still helps
        modes = None
    return {
        "model": model.name,
        "layers": layers,
        "output_layer": layers[-1]["name"] if layers else None,
        "loss": info,
        "optimizer": {
            "class": type(inner or opt).__name__ if opt is not None else None,
            "learning_rate": lr,
        },
        "versions": {
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "tb_plugin": tb_plugin.__version__,
        },
        "train_mode": modes,
    }
