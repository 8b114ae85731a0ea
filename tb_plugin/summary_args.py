"""Validation of the arguments of tb_plugin's summary writers.

Every public argument of :mod:`tb_plugin.summary_v2` (and of
``HealthCallback``) is checked here, on Python values only (free at trace
time); tensor values are checked only where noted (labels, when a record is
written). Errors are ValueErrors that name the argument and show what it
got.
"""

import collections
import warnings

import numpy as np

try:
    import tensorflow as tf
except ImportError as e:  # pragma: no cover - exercised without TF only
    raise ImportError(
        "tb_plugin's recording API needs TensorFlow: pip install tensorflow "
        "(viewing with TensorBoard and the tb-health CLI does not)"
    ) from e

from tb_plugin import metadata

TASKS = (metadata.TASK_MULTICLASS, metadata.TASK_BINARY, metadata.TASK_REGRESSION)
_warned = set()


def warn_once(key, message):
    if key in _warned:
        return
    _warned.add(key)
    warnings.warn(message, stacklevel=3)


MAX_MANIFEST_DEPTH = 100  # nesting of a manifest's dicts and lists


def short(text, limit=100):
    """`text` cut to `limit` characters."""
    if len(text) > limit:
        text = text[:limit] + "...(%d characters)" % len(text)
    return text


def got(value):
    """What an argument got, for an error message: its (cut) repr and type."""
    return "%s (%s)" % (short(repr(value)), type(value).__name__)


def check_name(name, arg="name"):
    """A record family name: a non-empty string, not a reserved one."""
    if not isinstance(name, str) or not name:
        raise ValueError("%s must be a non-empty string, got %s" % (arg, got(name)))
    if name in metadata.RESERVED_NAMES:
        raise ValueError("%s %r is reserved (its tag %s holds the %s); choose another name"
                         % (arg, name, metadata.index_tag(name), name))
    return name


def check_description(description):
    if description is not None and not isinstance(description, str):
        raise ValueError("description must be a string or None, got %s" % got(description))
    return description


def check_bool(value, arg):
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError("%s must be True or False, got %s" % (arg, got(value)))
    return bool(value)


def resolve_step(step):
    """`step`, or the default step when None: a non-negative integer or an
    integer scalar tensor / variable (negative values refused when known)."""
    arg = "step"
    if step is None:
        step = tf.summary.experimental.get_step()
        if step is None:
            raise ValueError(
                "step is None and no default step is set: pass step= or use "
                "tf.summary.experimental.set_step()")
        arg = "step (tf.summary.experimental.get_step())"
    if isinstance(step, (bool, np.bool_)):
        raise ValueError("%s must be an integer, got %s" % (arg, got(step)))
    if isinstance(step, (int, np.integer)):
        value = step
    elif hasattr(step, "dtype") and hasattr(step, "shape"):
        try:
            dtype, shape = tf.as_dtype(step.dtype), tf.TensorShape(step.shape)
        except (TypeError, ValueError):
            dtype = shape = None
        if dtype is None or not dtype.is_integer or shape.rank not in (0, None):
            raise ValueError("%s must be an integer scalar, got %s" % (arg, got(step)))
        value = tf.get_static_value(step) if isinstance(step, tf.Tensor) else None
    else:
        raise ValueError("%s must be a non-negative integer or an integer scalar tensor, "
                         "got %s" % (arg, got(step)))
    if value is not None and value < 0:
        raise ValueError("%s must be non-negative, got %s" % (arg, got(step)))
    return step


def as_tensor(value, arg, allow_bool=False):
    """`value` as a numeric tensor (IndexedSlices densified)."""
    try:
        if isinstance(value, tf.IndexedSlices):
            value = tf.convert_to_tensor(value)
        tensor = None if value is None else tf.convert_to_tensor(value)
    except (TypeError, ValueError):
        tensor = None
    if tensor is None:
        raise ValueError("%s must be a numeric tensor, got %s" % (arg, got(value)))
    if not (tensor.dtype.is_floating or tensor.dtype.is_integer
            or (allow_bool and tensor.dtype == tf.bool)):
        raise ValueError("%s must be a numeric tensor, got dtype %s with shape %s"
                         % (arg, tensor.dtype.name, tensor.shape))
    return tensor


def as_list(value, arg):
    """A list from a list, tuple or other iterable that is not a tensor,
    array, string or dict."""
    if value is None or isinstance(value, (str, bytes, dict)) or hasattr(value, "shape"):
        raise ValueError("%s must be a list, got %s" % (arg, got(value)))
    try:
        return list(value)
    except TypeError as e:
        raise ValueError("%s must be a list, got %s" % (arg, got(value))) from e


def check_variable(variable, i):
    """A tf.Variable or Keras Variable (anything with assign and a shape)."""
    if not (callable(getattr(variable, "assign", None)) and hasattr(variable, "shape")):
        raise ValueError("variables[%d] must be a tf.Variable or a Keras Variable, got %s"
                         % (i, got(variable)))
    return variable


def check_same_shape(tensor, variable, arg, i, path):
    """`tensor` (a gradient or update) has the shape of `variables[i]`."""
    vshape = tf.TensorShape(variable.shape)
    if not tensor.shape.is_compatible_with(vshape):
        raise ValueError("%s[%d] has shape %s but variables[%d] (%s) has shape %s"
                         % (arg, i, tensor.shape, i, path, list(variable.shape)))


def unique_paths(name, paths):
    """`paths` with duplicates renamed (``layer#2/kernel``, ``Variable#2``),
    with one warning naming them: records of different variables under one
    path would merge into one series."""
    if len(set(paths)) == len(paths):
        return paths
    used, seen, out, renamed = set(paths), collections.Counter(), [], []
    for path in paths:
        seen[path] += 1
        if seen[path] == 1:
            out.append(path)
            continue
        head, sep, leaf = path.rpartition("/")
        n = seen[path]
        while True:
            new = "%s#%d%s%s" % (head, n, sep, leaf) if sep else "%s#%d" % (path, n)
            if new not in used:
                break
            n += 1
        used.add(new)
        out.append(new)
        renamed.append("%s -> %s" % (path, new))
    warn_once(("duplicate_paths", name, tuple(paths)),
               "tb_plugin: variables of %r share a path (e.g. unnamed tf.Variables are all "
               "'Variable'); recorded as: %s. Name the variables to choose their paths."
               % (name, ", ".join(renamed)))
    return out


def check_manifest_data(data, arg="data"):
    """A manifest: a dict of JSON-able values with string keys, no cycles,
    nested at most MAX_MANIFEST_DEPTH deep (other leaves are written as
    ``str(value)``)."""
    if not isinstance(data, dict):
        raise ValueError("%s must be a dict, got %s" % (arg, got(data)))

    def walk(node, where, depth, active):
        if id(node) in active:
            raise ValueError("%s is circular: %s contains itself" % (arg, where))
        if depth > MAX_MANIFEST_DEPTH:
            raise ValueError("%s is nested more than %d deep (at %s)"
                             % (arg, MAX_MANIFEST_DEPTH, short(where)))
        active.add(id(node))
        if isinstance(node, dict):
            items = []
            for key, value in node.items():
                if not isinstance(key, str):
                    raise ValueError("%s must have string keys, got key %s in %s"
                                     % (arg, got(key), short(where)))
                items.append((key, value))
        else:
            items = list(enumerate(node))
        for key, value in items:
            if isinstance(value, (dict, list, tuple)):
                walk(value, "%s[%s]" % (where, short(repr(key), 40)), depth + 1, active)
        active.discard(id(node))

    walk(data, arg, 1, set())
    return data


def _invalid_labels(labels, task, num_classes):
    """(mask, labels laid out like it, what valid labels are) of the labels
    that cannot be scored: class ids outside [0, K) or not whole, one-hot
    rows or binary labels with a value outside [0, 1], NaN and Inf; None
    for regression, whose targets can be any number."""
    if labels is None or task == metadata.TASK_REGRESSION:
        return None
    y = tf.cast(labels, tf.float32)
    if task == metadata.TASK_MULTICLASS:
        if labels.shape.rank == 2 and labels.shape[-1] == num_classes:
            bad = tf.logical_not(tf.logical_and(y >= 0, y <= 1))
            return tf.reduce_any(bad, axis=-1), labels, "one-hot rows of values in [0, 1]"
        y = tf.reshape(y, [-1])
        ok = tf.logical_and(tf.logical_and(y >= 0, y < num_classes), tf.equal(tf.floor(y), y))
        return (tf.logical_not(ok), tf.reshape(labels, [-1]),
                "class ids in [0, %d)" % num_classes)
    y = tf.reshape(y, [-1])
    return (tf.logical_not(tf.logical_and(y >= 0, y <= 1)), tf.reshape(labels, [-1]),
            "values in [0, 1]")


def invalid_label_count(labels, task, num_classes):
    """The number of invalid labels (see _invalid_labels) as a float32
    tensor, None for regression; eagerly, a ValueError when there are any."""
    found = _invalid_labels(labels, task, num_classes)
    if found is None:
        return None
    mask, laid_out, what = found
    if tf.executing_eagerly():
        bad = mask.numpy()
        if bad.any():
            raise ValueError(
                "labels must be %s, got %d invalid of %d, e.g. %s"
                % (what, bad.sum(), bad.size, short(repr(laid_out.numpy()[bad][:3].tolist()))))
    return tf.reduce_sum(tf.cast(mask, tf.float32))


def check_outputs(outputs, labels, task):
    """(outputs, labels, task) as tensors and the task inferred when None,
    checked against each other (ValueErrors naming the argument)."""
    outputs = as_tensor(outputs, "outputs")
    rank = outputs.shape.rank
    if task is not None and task not in TASKS:
        raise ValueError("task must be one of %s or None, got %s" % (TASKS, got(task)))
    if rank is None:
        raise ValueError("outputs must have a known rank, got shape %s" % outputs.shape)
    if task in (metadata.TASK_REGRESSION, metadata.TASK_BINARY):
        if rank < 1:
            raise ValueError(
                "outputs of a %s must have rank >= 1 ([batch, ...]), got "
                "shape %s (rank 0)" % (task, outputs.shape)
            )
    elif rank not in (1, 2):
        raise ValueError(
            "outputs must have shape [batch, num_classes] (multiclass) or [batch] / "
            "[batch, 1] (binary), got shape %s (rank %d)" % (outputs.shape, rank)
        )
    if task is None:
        if rank == 2 and outputs.shape[-1] is not None and outputs.shape[-1] > 1:
            task = metadata.TASK_MULTICLASS
        else:
            task = metadata.TASK_BINARY
    if task == metadata.TASK_MULTICLASS:
        if rank != 2 or outputs.shape[-1] is None or outputs.shape[-1] < 2:
            raise ValueError(
                "multiclass outputs must have shape [batch, num_classes] with a known "
                "num_classes >= 2, got shape %s" % outputs.shape
            )
    if labels is not None:
        labels = as_tensor(labels, "labels", allow_bool=True)
        if labels.dtype == tf.bool:
            labels = tf.cast(labels, tf.int32)
        if labels.shape.rank == 0:
            raise ValueError("labels must have a batch dimension, got shape %s" % labels.shape)
        b_out, b_lab = outputs.shape[0], labels.shape[0] if labels.shape.rank else None
        if b_out is not None and b_lab is not None and b_out != b_lab:
            raise ValueError(
                "labels must have the batch size of outputs (%d), got shape %s"
                % (b_out, labels.shape)
            )
        if task == metadata.TASK_MULTICLASS:
            k = outputs.shape[-1]
            ok = labels.shape.rank == 1 or (
                labels.shape.rank == 2 and labels.shape[-1] in (1, k)
            )
            if not ok:
                raise ValueError(
                    "labels must be class ids [batch] / [batch, 1] or one-hot "
                    "[batch, %d], got shape %s" % (k, labels.shape)
                )
        if task == metadata.TASK_BINARY:
            per_row = outputs.shape[1:].num_elements() if rank > 1 else 1
            label_row = labels.shape[1:].num_elements() if labels.shape.rank > 1 else 1
            if per_row is not None and label_row is not None and per_row != label_row:
                raise ValueError(
                    "labels of binary outputs of shape %s must hold %d values per row, "
                    "got shape %s" % (outputs.shape, per_row, labels.shape)
                )
    return outputs, labels, task


def check_sample_weight(sample_weight, outputs):
    """`sample_weight` as a tensor of one weight per row of `outputs`
    ([batch] or [batch, 1]); a ValueError naming it otherwise."""
    w = as_tensor(sample_weight, "sample_weight")
    rank = w.shape.rank
    if rank not in (1, 2) or (rank == 2 and w.shape[-1] != 1):
        raise ValueError("sample_weight must have shape [batch] or [batch, 1], got shape %s"
                         % w.shape)
    if None not in (w.shape[0], outputs.shape[0]) and w.shape[0] != outputs.shape[0]:
        raise ValueError("sample_weight must have the batch size of outputs (%d), got shape %s"
                         % (outputs.shape[0], w.shape))
    return w
