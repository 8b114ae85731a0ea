"""What the layers that behave differently in training actually ran with.

Dropout (and its family), BatchNormalization and every other layer whose
``call`` takes ``training`` do something else in training than in inference.
When the flag does not reach them (a subclassed model whose ``call`` has no
``training`` parameter: ``fit`` then calls it without one; a custom loop that
calls ``model(x)``; a layer that passes ``training=None`` on), they silently
run in inference mode while the model trains, and nothing fails.

The recording wraps the ``call`` of each such layer instance (an instance
attribute, restored afterwards) and notes, while the train step is traced,
the training flag Keras resolved and passed to it (``Layer.__call__`` takes
it from the call's arguments, else the enclosing layer's call context, else
the signature's default), the flag the model itself ran with, and whether an
enclosing layer was explicitly called with ``training=False`` (inference by
design). Those are trace-time facts: constants in the record. On logged
steps only, from tensors the step already has, the record adds:

* for the Dropout family, on a subsample of the layer's input and output
  (the first rows of the batch, ~4k elements): the zero fraction of the
  input and of the output and the fraction of elements the layer changed,
  and the number of independent dropout units in it (channels for
  SpatialDropout), from which the expected zero fraction
  ``z_in + (1 - z_in) * rate`` and its standard error follow;
* for BatchNormalization: how far its moving mean and variance moved since
  the last record (max |change|), against a copy kept at each record.

Cost per logged step: 3 reductions over the subsample per Dropout-family
layer, 2 reductions and 2 assigns per BatchNormalization, one write op for
the record; nothing on the steps that are not logged, and nothing in the
forward pass (the notes are taken while tracing, the statistics are computed
in the record's branch).

Two users: :class:`tb_plugin.HealthCallback` (no change to the user's code)
and custom training loops through :func:`train_mode_probe` /
:func:`train_mode` (re-exported by :mod:`tb_plugin.summary`)::

    probe = health.train_mode_probe(model)
    with tf.GradientTape() as tape:
        with probe:
            logits = model(x, training=True)
        loss = loss_fn(y, logits)
    ...
    with writer.as_default(step=step), tf.summary.record_if(step % 50 == 0):
        health.train_mode(probe)

The records are read by :mod:`tb_plugin.reader` (``RunRecords.train_mode``)
and judged by :mod:`tb_plugin.train_mode_rules`.
"""

import contextlib
import inspect
import json
import math
import threading
import weakref

import keras
import numpy as np
import tensorflow as tf

from tb_plugin import metadata
from tb_plugin import summary_v2
from tb_plugin import summary_args
from tb_plugin import summary_writes
from tb_plugin import tf_internals

KIND_DROPOUT = "dropout"  # Dropout, SpatialDropout1D/2D/3D: zeroes a share `rate`
KIND_NOISE = "noise"  # GaussianDropout, GaussianNoise, AlphaDropout: change every element
KIND_BATCHNORM = "batchnorm"
KIND_OTHER = "other"  # any other layer whose call takes `training`

# The subsample of a Dropout-family layer's input and output: the first rows
# of the batch holding at least this many elements (at most SAMPLE_MAX_ROWS).
SAMPLE_ELEMENTS = 4096
SAMPLE_MAX_ROWS = 256
SAMPLE_ROWS_UNKNOWN = 8  # rows whose size is unknown while tracing

_MARK = "_tb_plugin_train_mode"  # attribute of the call wrappers

# Keras layers whose call takes `training` without behaving differently in
# training (Dense and EinsumDense take it for their LoRA/quantized paths).
_NOT_TRAIN_MODE = frozenset({
    "Dense", "EinsumDense", "Lambda", "Resizing", "CenterCrop", "MaxNumBoundingBoxes",
    "Pipeline", "TFSMLayer", "JaxLayer", "FlaxLayer", "TorchModuleWrapper",
})


def _noise_classes():
    names = ("GaussianDropout", "GaussianNoise", "AlphaDropout")
    return tuple(getattr(keras.layers, n) for n in names if hasattr(keras.layers, n))


def _children(layer):
    try:
        children = tf_internals.child_layers(layer)
    except Exception:  # noqa: BLE001 - not a Keras 3 layer, or the private API is gone
        # Public, for models only: a layer's own sublayers are then not seen.
        children = getattr(layer, "layers", None) or []
    return [c for c in children if not isinstance(c, keras.layers.InputLayer)]


def layer_kind(layer, has_children=None):
    """KIND_* of a layer whose behaviour depends on the training flag, or None."""
    if isinstance(layer, keras.layers.BatchNormalization):
        return KIND_BATCHNORM
    if isinstance(layer, keras.layers.Dropout):
        return KIND_DROPOUT
    if isinstance(layer, _noise_classes()):
        return KIND_NOISE
    if isinstance(layer, keras.Model):
        return None
    if has_children is None:
        has_children = bool(_children(layer))
    if has_children or not getattr(layer, "_call_has_training_arg", False):
        return None
    owner = next((k for k in type(layer).__mro__ if "call" in vars(k)), None)
    if (owner is not None and (owner.__module__ or "").startswith("keras.")
            and owner.__name__ in _NOT_TRAIN_MODE):
        return None
    return KIND_OTHER


def layer_rate(layer, kind):
    """The drop rate (GaussianNoise: the stddev) of a Dropout-family layer."""
    if kind not in (KIND_DROPOUT, KIND_NOISE):
        return None
    value = getattr(layer, "rate", None)
    if value is None:
        value = getattr(layer, "stddev", None)
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def layer_tree(model):
    """[(layer, path, parent path, has children)] of `model` and every layer
    inside it (nested models and the sub-layers of subclassed layers), depth
    first in the order they were added, each layer once. Paths join layer
    names with "/" from the model's name ("m/block/dropout")."""
    out, seen = [], set()

    def visit(layer, path, parent):
        if id(layer) in seen:
            return
        seen.add(id(layer))
        children = _children(layer)
        out.append((layer, path, parent, bool(children)))
        for child in children:
            visit(child, path + "/" + child.name, path)

    visit(model, model.name, None)
    return out


def _is_subclassed(model):
    from keras.src.models.functional import Functional

    return isinstance(model, keras.Model) and not isinstance(
        model, (Functional, keras.Sequential))


def _inference_calls(layer, path):
    """Layers of the Functional graph of `layer` that the graph calls with
    an explicit training=False: [{"path", "class", "caller"}]."""
    out = []
    nodes = getattr(layer, "_nodes_by_depth", None)
    if not isinstance(nodes, dict) or isinstance(layer, keras.Sequential):
        return out
    for depth in sorted(nodes, reverse=True):
        for node in nodes[depth]:
            args = getattr(node, "arguments", None)
            kwargs = getattr(args, "kwargs", None) or {}
            op = getattr(node, "operation", None)
            if op is None or op is layer or kwargs.get("training", None) is not False:
                continue
            out.append({"path": path + "/" + op.name, "class": type(op).__name__,
                        "caller": path})
    return out


def manifest_info(model):
    """The manifest's ``train_mode`` entry (see tb_plugin.manifest)::

        {"layers": [{"path", "class", "kind", "rate", "trainable", "internal"}, ...],
         "call_without_training": [{"path", "class", "layers": [paths]}],
         "inference_calls": [{"path", "class", "caller"}]}

    `layers`: the layers that behave differently in training (KIND_*).
    `call_without_training`: the model, when it is subclassed, its ``call``
    takes no ``training`` and it holds such layers: ``fit`` then calls it
    without the flag, and they fall back to inference. (A nested layer
    without ``training`` is not listed: Keras 3 passes the flag of the
    enclosing call on through its call context.) `inference_calls`: the
    layers a Functional graph calls with an explicit ``training=False``
    (Keras <= 3.15.1 overrides it with the outer call's flag).
    """
    layers, inference_calls = [], []
    tree = layer_tree(model)
    by_path = {path: layer for layer, path, _, _ in tree}
    for layer, path, parent, has_children in tree:
        kind = layer_kind(layer, has_children)
        if kind is not None:
            entry = {"path": path, "class": type(layer).__name__, "kind": kind,
                     "trainable": bool(layer.trainable)}
            owner = by_path.get(parent)
            if (owner is not None and not isinstance(owner, keras.Model)
                    and type(owner).__module__.startswith("keras.")):
                # Part of a Keras layer (MultiHeadAttention's attention
                # dropout): its rate is that layer's argument, not a leftover.
                entry["internal"] = True
            rate = layer_rate(layer, kind)
            if rate is not None:
                entry["rate"] = rate
            if kind == KIND_BATCHNORM:
                entry["momentum"] = _float(getattr(layer, "momentum", None))
            layers.append(entry)
        if has_children:
            inference_calls += _inference_calls(layer, path)
    missing = []
    if layers and _is_subclassed(model) and not getattr(model, "_call_has_training_arg", True):
        missing.append({"path": model.name, "class": type(model).__name__,
                        "layers": [e["path"] for e in layers]})
    return {"layers": layers, "call_without_training": missing,
            "inference_calls": inference_calls}


def _float(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


# ---------------------------------------------------------------------------
# Recording


def _flag_repr(flag):
    if flag is None or isinstance(flag, (bool, np.bool_)):
        return str(None if flag is None else bool(flag))
    return "tensor"


def _flag_value(flag):
    """1.0 / 0.0 (Python) for a Python flag, a float32 tensor for a tensor."""
    if flag is None:
        return 0.0
    if isinstance(flag, (bool, np.bool_, int, np.integer)):
        return 1.0 if flag else 0.0
    return tf.cast(tf.convert_to_tensor(flag), tf.float32)


def _call_context_training():
    try:
        from keras.src.backend.common import global_state

        ctx = global_state.get_global_attribute("current_call_ctx")
    except Exception:  # noqa: BLE001 - another Keras layout
        return None
    return None if ctx is None else ctx.get_value("training")


def _root_graph():
    """The graph being built, outside the branches of control flow (a
    tf.cond branch or while body is traced in a graph of its own)."""
    g = tf.compat.v1.get_default_graph()
    while type(g).__name__ in ("CondBranchFuncGraph", "WhileCondFuncGraph",
                               "WhileBodyFuncGraph") and getattr(g, "outer_graph", None):
        g = g.outer_graph
    return g


def _usable(tensor):
    """Whether `tensor` can be read in the graph being built (it belongs to
    it or to a graph it captures from)."""
    if not tf.is_tensor(tensor) or isinstance(tensor, tf.SparseTensor):
        return False
    if tf.executing_eagerly():
        return True
    g = tf.compat.v1.get_default_graph()
    while g is not None:
        if tensor.graph is g:
            return True
        g = getattr(g, "outer_graph", None)
    return False


class _Note:
    """What one train-mode layer ran with in one forward pass."""

    __slots__ = ("flag", "root", "by_caller", "caller", "calls", "inputs", "outputs")

    def __init__(self, flag, root, by_caller, caller, inputs, outputs):
        self.flag, self.root, self.by_caller, self.caller = flag, root, by_caller, caller
        self.calls = 1
        self.inputs, self.outputs = inputs, outputs


class Recorder:
    """Notes what the train-mode layers of `model` run with (see the module
    docstring). `install()` wraps their ``call`` (and that of the layers
    holding them, for the call stack); notes are taken only inside
    `capture()`; `take()` returns the notes of the forward pass traced in the
    current graph; `record_values(notes)` computes the record's values."""

    def __init__(self, model):
        self.model = model
        self._local = threading.local()
        self.layers = []  # (layer, path, kind)
        self._wrapped = []  # (layer, path, kind or None)
        for layer, path, _, has_children in layer_tree(model):
            kind = layer_kind(layer, has_children)
            if kind is not None:
                self.layers.append((layer, path, kind))
            if kind is not None or has_children:
                self._wrapped.append((layer, path, kind))
        self._order = {id(layer): i for i, (layer, _, _) in enumerate(self.layers)}
        self._bn_prev = {}
        self._notes = {}  # root graph -> {layer id: _Note}
        self._capturing = 0
        self.create_variables()

    # -- state ---------------------------------------------------------------

    def _stack(self):
        stack = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        return stack

    def create_variables(self):
        """The copies of the BatchNormalization moving statistics (created
        eagerly, once the layers are built)."""
        for layer, path, kind in self.layers:
            if kind != KIND_BATCHNORM or id(layer) in self._bn_prev:
                continue
            mm = getattr(layer, "moving_mean", None)
            mv = getattr(layer, "moving_variance", None)
            if mm is None or mv is None:
                continue  # not built yet
            with tf.init_scope():
                self._bn_prev[id(layer)] = (
                    tf.Variable(summary_v2.variable_value(mm), trainable=False,
                                name="health_bn_prev_mean"),
                    tf.Variable(summary_v2.variable_value(mv), trainable=False,
                                name="health_bn_prev_variance"))

    @contextlib.contextmanager
    def capture(self):
        """Notes are taken inside (the train step's forward pass)."""
        self._capturing += 1
        try:
            yield self
        finally:
            self._capturing -= 1

    def begin(self):
        """Forgets the notes of the current graph (a new forward pass)."""
        self._notes.pop(_root_graph(), None)

    def clear(self):
        self._notes = {}

    def take(self):
        """The notes of the forward pass in the current graph, in model
        order: [(layer, path, kind, _Note)] (and forgets them)."""
        notes = self._notes.pop(_root_graph(), None) or {}
        return [(layer, path, kind, notes[id(layer)]) for layer, path, kind in self.layers
                if id(layer) in notes]

    # -- the call wrappers ------------------------------------------------------

    def install(self):
        """Wraps the ``call`` of the train-mode layers and the layers holding
        them (instance attributes); returns what `uninstall` needs."""
        saved = []
        for layer, path, kind in self._wrapped:
            current = layer.__dict__.get("call")
            if getattr(current, _MARK, None) is not None:
                _unwrap(layer)  # left by a fit that ended without cleaning up
            saved.append((layer, "call" in layer.__dict__, layer.__dict__.get("call")))
            wrapper = self._wrapper(layer, path, kind, layer.call)
            setattr(wrapper, _MARK, saved[-1])
            object.__setattr__(layer, "call", wrapper)
        return saved

    @staticmethod
    def uninstall(saved):
        for layer, had, old in reversed(saved):
            try:
                if had:
                    object.__setattr__(layer, "call", old)
                elif "call" in layer.__dict__:
                    object.__delattr__(layer, "call")
            except Exception:  # noqa: BLE001
                pass

    def _wrapper(self, layer, path, kind, original):
        try:
            params = list(inspect.signature(original).parameters.values())
        except (TypeError, ValueError):
            params = []
        names = [p.name for p in params]
        has_param = "training" in names
        position = names.index("training") if has_param else None
        positional = has_param and all(
            p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params[:position + 1])
        default = params[position].default if has_param else None
        if default is inspect.Parameter.empty:
            default = None
        recorder = self

        def call(*args, **kwargs):
            if not recorder._capturing:
                return original(*args, **kwargs)
            if "training" in kwargs:
                flag = kwargs["training"]
            elif positional and len(args) > position:
                flag = args[position]
            elif has_param:
                flag = default
            else:  # the flag Keras passes on to the layers inside
                flag = _call_context_training()
            stack = recorder._stack()
            root = stack[0][1] if stack else flag
            # Inference by design: while the model trains, an enclosing layer
            # (or this one, when False is not its default) got training=False.
            by_caller = root is True and (
                any(f is False for _, f in stack[1:])
                or (kind is not None and stack and flag is False and default is not False))
            caller = stack[-1][0] if stack else None
            stack.append((path, flag))
            try:
                outputs = original(*args, **kwargs)
            finally:
                stack.pop()
            if kind is not None:
                try:
                    recorder._note(layer, flag, root, by_caller, caller,
                                   args[0] if args else None, outputs)
                except Exception:  # noqa: BLE001 - never break the forward pass
                    pass
            return outputs

        return call

    def _note(self, layer, flag, root, by_caller, caller, inputs, outputs):
        notes = self._notes.setdefault(_root_graph(), {})
        while len(self._notes) > 8:  # graphs traced and never recorded (symbolic builds)
            self._notes.pop(next(iter(self._notes)))
        note = notes.get(id(layer))
        if note is None:
            notes[id(layer)] = _Note(flag, root, by_caller, caller, inputs, outputs)
            return
        # A layer called several times: any call in inference counts.
        note.calls += 1
        if _flag_repr(flag) != "True" and _flag_repr(note.flag) == "True":
            note.flag, note.root, note.by_caller, note.caller = flag, root, by_caller, caller

    # -- the record ---------------------------------------------------------------

    def record_values(self, notes):
        """(index, tags' stats layout, float32 values) of a record of `notes`
        (see take); computed where called (the record's branch)."""
        self.create_variables()
        replicas = summary_writes.replica_context() is not None
        entries, layout, values = [], [], []
        for layer, path, kind, note in notes:
            entry = {"path": path, "class": type(layer).__name__, "kind": kind,
                     "flag": _flag_repr(note.flag), "caller": note.caller,
                     "calls": note.calls, "trainable": bool(layer.trainable)}
            rate = layer_rate(layer, kind)
            if rate is not None:
                entry["rate"] = rate
            stats = [(metadata.TM_TRAINING, _flag_value(note.flag)),
                     (metadata.TM_ROOT_TRAINING, _flag_value(note.root)),
                     (metadata.TM_BY_CALLER, 1.0 if note.by_caller else 0.0)]
            if kind in (KIND_DROPOUT, KIND_NOISE):
                stats += _dropout_stats(layer, note.inputs, note.outputs)
            elif kind == KIND_BATCHNORM and not replicas:
                entry["momentum"] = _float(getattr(layer, "momentum", None))
                stats += self._batchnorm_stats(layer)
            entries.append(entry)
            for stat, value in stats:
                layout.append((path, stat))
                values.append(value)
        index = {"kind": metadata.KIND_TRAIN_MODE, "layers": entries}
        if not values:
            return index, (), None
        if all(isinstance(v, float) for v in values):
            return index, tuple(layout), tf.constant(values, tf.float32)
        return index, tuple(layout), tf.stack(
            [tf.reshape(tf.cast(v, tf.float32), []) for v in values])

    def _batchnorm_stats(self, layer):
        prev = self._bn_prev.get(id(layer))
        if prev is None:
            return []
        out = []
        for stat, var, copy in ((metadata.TM_MEAN_CHANGE, layer.moving_mean, prev[0]),
                                (metadata.TM_VARIANCE_CHANGE, layer.moving_variance, prev[1])):
            now = tf.cast(summary_v2.variable_value(var), tf.float32)
            change = tf.reduce_max(tf.abs(now - copy.read_value()))
            with tf.control_dependencies([change]):
                assign = copy.assign(now)
            with tf.control_dependencies([assign]):
                out.append((stat, tf.identity(change)))
        return out


def _unwrap(layer):
    wrapper = layer.__dict__.get("call")
    saved = getattr(wrapper, _MARK, None)
    if saved is None:
        return
    Recorder.uninstall([saved])


def _units_per_row(layer, x):
    """Independent dropout units per row of `x` (its noise shape), or None."""
    dims = x.shape.as_list()[1:]
    if any(d is None for d in dims):
        return None
    shape = None
    getter = getattr(layer, "_get_noise_shape", None)
    try:
        shape = getter(x) if getter is not None else getattr(layer, "noise_shape", None)
    except Exception:  # noqa: BLE001
        shape = None
    if shape is None:
        return int(np.prod(dims)) if dims else 1
    shape = list(shape)[1:]
    if len(shape) != len(dims):
        return None
    return int(np.prod([1 if (isinstance(s, int) and s == 1) else d
                        for s, d in zip(shape, dims)])) if dims else 1


def _dropout_stats(layer, inputs, outputs):
    """Zero fractions of a subsample of a Dropout-family layer's input and
    output, the share of elements it changed and its dropout units."""
    if isinstance(outputs, (list, tuple)) and len(outputs) == 1:
        outputs = outputs[0]
    if not (_usable(inputs) and _usable(outputs)):
        return []
    if inputs.shape.rank is None or inputs.shape.rank < 1 or outputs.shape.rank != inputs.shape.rank:
        return []
    dims = inputs.shape.as_list()[1:]
    row = int(np.prod(dims)) if all(d is not None for d in dims) else None
    rows = (min(SAMPLE_MAX_ROWS, max(1, math.ceil(SAMPLE_ELEMENTS / max(row, 1))))
            if row is not None else SAMPLE_ROWS_UNKNOWN)
    x = tf.reshape(inputs[:rows], [-1])
    y = tf.reshape(outputs[:rows], [-1])
    if x.dtype != y.dtype:
        y = tf.cast(y, x.dtype)
    n = tf.cast(tf.size(x), tf.float32)
    zero_in = tf.reduce_mean(tf.cast(tf.equal(x, 0), tf.float32))
    zero_out = tf.reduce_mean(tf.cast(tf.equal(y, 0), tf.float32))
    changed = tf.reduce_mean(tf.cast(tf.not_equal(x, y), tf.float32))
    per_row = _units_per_row(layer, inputs)
    if per_row is None or row is None:
        units = n
    else:
        units = n / float(row) * float(per_row)
    return [(metadata.TM_ZERO_IN, zero_in), (metadata.TM_ZERO_OUT, zero_out),
            (metadata.TM_CHANGED, changed), (metadata.TM_UNITS, units)]


def write_values(name, index, layout, values, step, description=None):
    """Writes a train-mode record (from Recorder.record_values) as one
    event: the per-layer scalars ``health/<name>/<layer path>/<stat>`` and
    the index ``health/<name>``."""
    with summary_writes.one_write(step):
        if layout:
            tags = [metadata.variable_tag(name, path, stat) for path, stat in layout]
            summary_writes.write_scalars(tags, values, step, description)
        return summary_writes.write_json(metadata.index_tag(name), index, step, description)


class FitRecording:
    """The train-mode part of HealthCallback's recording: the layers' call
    wrappers, notes taken while the recording train step is traced (inside
    `step_scope`), and the record, written with the step's gradient record
    (same cond) by its own write op."""

    def __init__(self, model, name="train_mode"):
        self.recorder = Recorder(model)
        self.name = name
        # Created eagerly (see StepRecorder._write_record in step_recording): the
        # record's values carry their summary metadata until it has been written
        # once.
        self.written = tf.Variable(False, trainable=False, name="health_train_mode_written")
        self._metadata_key = None

    def install(self):
        """Wraps the layers' call; returns entries for fit_guard.restore_attr."""
        return [(layer, "call", had, old) for layer, had, old in self.recorder.install()]

    @contextlib.contextmanager
    def step_scope(self):
        """Around a call of the recording train function: notes are taken
        while it is traced; none are kept after it."""
        self.recorder.create_variables()  # eagerly, before a first trace
        self.recorder.clear()
        try:
            with self.recorder.capture():
                yield
        finally:
            self.recorder.clear()

    def take(self):
        return self.recorder.take()

    def write(self, step, notes, shared_function):
        """Writes the record of `notes` with the default writer (the
        statistics and the write traced here; the write op through
        `shared_function`, traced once per process and layout)."""
        index, layout, values = self.recorder.record_values(notes)
        if values is None:
            values = tf.zeros([0], tf.float32)
        key = ("train_mode_record", self.name, json.dumps(index, sort_keys=True), layout)
        if self._metadata_key is None:
            self._metadata_key = key
        written = None
        if key == self._metadata_key and summary_writes.replica_context() is None:
            written = self.written
        name = self.name

        def impl(step, writer, written, values):
            with summary_writes.one_write(step, writer, written):
                if layout:
                    summary_writes.write_scalars(
                        [metadata.variable_tag(name, p, s) for p, s in layout], values, step)
                summary_writes.write_json(metadata.index_tag(name), index, step)
            return tf.constant(True)

        writer = summary_writes.summary_writer_resource()
        fn = impl if writer is None else shared_function(key, impl)
        return summary_writes.gated(lambda: fn(step, writer, written, values))


# ---------------------------------------------------------------------------
# Custom training loops


class TrainModeProbe:
    """Notes what the train-mode layers of a model run with in the forward
    pass inside ``with probe:`` (see :func:`train_mode_probe`)."""

    def __init__(self, model):
        if not isinstance(model, keras.layers.Layer):
            raise ValueError("model must be a keras.Model (or layer), got %s"
                             % type(model).__name__)
        self.model = model
        self.recorder = Recorder(model)
        self._saved = []
        self._depth = 0

    def __enter__(self):
        if self._depth == 0:
            self.recorder.begin()
            self._saved = self.recorder.install()
        self._depth += 1
        self._scope = self.recorder.capture()
        self._scope.__enter__()
        return self

    def __exit__(self, *exc):
        self._scope.__exit__(*exc)
        self._depth -= 1
        if self._depth == 0:
            Recorder.uninstall(self._saved)
            self._saved = []
        return False


_probes = weakref.WeakKeyDictionary()


def train_mode_probe(model):
    """The probe of `model` (one per model, created on first use): use it as
    a context manager around the training forward pass, then write what it
    saw with :func:`train_mode`::

        import tb_plugin.summary as health

        probe = health.train_mode_probe(model)      # once, or in the step: same probe

        @tf.function
        def train_step(x, y, step):
            with tf.GradientTape() as tape:
                with probe:
                    logits = model(x, training=True)
                loss = loss_fn(y, logits)
            grads = tape.gradient(loss, model.trainable_variables)
            with writer.as_default(step=step), tf.summary.record_if(step % 50 == 0):
                health.train_mode(probe)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))

    Inside ``with probe:`` the ``call`` of every layer of the model whose
    behaviour depends on ``training`` (Dropout family, BatchNormalization,
    any layer whose ``call`` takes ``training``) is wrapped to note the flag
    it receives (and the tensors the record's statistics are computed from);
    on exit the layers are as before. Create it before a ``tf.function``
    traces it when the model has BatchNormalization layers that are already
    built (the probe keeps a copy of their moving statistics); it works
    eagerly and inside ``tf.function``.
    """
    probe = _probes.get(model)
    if probe is None:
        probe = _probes[model] = TrainModeProbe(model)
    return probe


def train_mode(probe, step=None, name="train_mode", description=None):
    """Writes what the train-mode layers ran with in the last forward pass
    inside ``with probe:`` (see :func:`train_mode_probe`).

    Per layer, ``health/<name>/<layer path>/<stat>`` scalars: ``training``
    (1 when its call received training=True), ``root_training`` (the model's
    own flag), ``inference_by_caller`` (1 when an enclosing layer was called
    with training=False: inference by design); for the Dropout family
    ``zero_in``, ``zero_out``, ``changed``, ``units`` (on a subsample); for
    BatchNormalization ``mean_change``, ``variance_change`` (max |change| of
    its moving statistics since the last record); and the index
    ``health/<name>`` (layer classes, rates, the flag as received, the
    calling layer). Call it in the same ``tf.function`` (or eagerly, in the
    same step) as the forward pass, under the writer and ``record_if`` of
    the other records; the statistics run only when the record is written.

    Returns:
      A boolean tensor, true when the record was written.
    """
    if not isinstance(probe, TrainModeProbe):
        raise ValueError("probe must come from train_mode_probe(model), got %s"
                         % type(probe).__name__)
    step = summary_args.resolve_step(step)
    notes = probe.recorder.take()
    if not notes:
        summary_args.warn_once(
            ("train_mode_empty", id(probe)),
            "tb_plugin: train_mode(): no train-mode layer ran inside `with probe:` in this "
            "step (call the model inside it, in the same tf.function); nothing written")
        return tf.constant(False)

    def write():
        index, layout, values = probe.recorder.record_values(notes)
        return write_values(name, index, layout, values, step, description)

    with tf.name_scope("health_" + summary_writes.scope_name(name)):
        return summary_writes.gated(write)
