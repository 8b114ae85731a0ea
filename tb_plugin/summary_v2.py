"""Summary writers of tb_plugin, in the style of ``tf.summary``.

Each function writes to the default summary writer at `step` (or
``tf.summary.experimental.get_step()``), honours ``tf.summary.record_if``,
works eagerly and inside ``tf.function``, and returns a boolean tensor that is
true when the record was written. The tags and formats are those of
:mod:`tb_plugin.metadata`: per-record numbers and distributions are series
summaries of plugin "health" (shown in the Health tab only), an index summary
(``health/<name>``, plugin "health") describes the record family, and each
write adds a few headline numbers (``health/<stat>``, ``scalars`` summaries,
plotted in Time Series; see ``metadata.HEADLINE_STATS``) aggregated over the
families it writes: one family per call of these functions.

Under ``tf.distribute`` (replica context, more than one replica) the
statistics are all-reduced across replicas before they are written, and TF
writes summaries from replica 0 only, so exactly one record is written, of the
global batch / aggregated gradients.

Cost: a record is computed with a few ops per variable (see
:func:`tb_plugin.stats.gradient_stats_many`) and written by a single op as a
single event holding one summary value per tag; each value is byte-for-byte
what ``tf.summary.write`` would write (same tag, metadata and tensor).
"""

import collections
import contextlib
import json
import logging
import threading
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
from tb_plugin import stats
from tb_plugin import tf_internals

logger = logging.getLogger("tb_plugin")

_TASKS = (metadata.TASK_MULTICLASS, metadata.TASK_BINARY, metadata.TASK_REGRESSION)
_warned = set()


def _warn_once(key, message):
    if key in _warned:
        return
    _warned.add(key)
    warnings.warn(message, stacklevel=3)


# ---------------------------------------------------------------------------
# Argument validation: every public argument is checked here, on Python
# values only (free at trace time); tensor values are checked only where
# noted (labels, when a record is written). Errors are ValueErrors that name
# the argument and show what it got.

MAX_MANIFEST_DEPTH = 100  # nesting of a manifest's dicts and lists


def _short(text, limit=100):
    """`text` cut to `limit` characters."""
    if len(text) > limit:
        text = text[:limit] + "...(%d characters)" % len(text)
    return text


def _got(value):
    """What an argument got, for an error message: its (cut) repr and type."""
    return "%s (%s)" % (_short(repr(value)), type(value).__name__)


def _check_name(name, arg="name"):
    """A record family name: a non-empty string, not a reserved one."""
    if not isinstance(name, str) or not name:
        raise ValueError("%s must be a non-empty string, got %s" % (arg, _got(name)))
    if name in metadata.RESERVED_NAMES:
        raise ValueError("%s %r is reserved (its tag %s holds the %s); choose another name"
                         % (arg, name, metadata.index_tag(name), name))
    return name


def _check_description(description):
    if description is not None and not isinstance(description, str):
        raise ValueError("description must be a string or None, got %s" % _got(description))
    return description


def _check_bool(value, arg):
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError("%s must be True or False, got %s" % (arg, _got(value)))
    return bool(value)


def _resolve_step(step):
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
        raise ValueError("%s must be an integer, got %s" % (arg, _got(step)))
    if isinstance(step, (int, np.integer)):
        value = step
    elif hasattr(step, "dtype") and hasattr(step, "shape"):
        try:
            dtype, shape = tf.as_dtype(step.dtype), tf.TensorShape(step.shape)
        except (TypeError, ValueError):
            dtype = shape = None
        if dtype is None or not dtype.is_integer or shape.rank not in (0, None):
            raise ValueError("%s must be an integer scalar, got %s" % (arg, _got(step)))
        value = tf.get_static_value(step) if isinstance(step, tf.Tensor) else None
    else:
        raise ValueError("%s must be a non-negative integer or an integer scalar tensor, "
                         "got %s" % (arg, _got(step)))
    if value is not None and value < 0:
        raise ValueError("%s must be non-negative, got %s" % (arg, _got(step)))
    return step


def _as_tensor(value, arg, allow_bool=False):
    """`value` as a numeric tensor (IndexedSlices densified)."""
    try:
        if isinstance(value, tf.IndexedSlices):
            value = tf.convert_to_tensor(value)
        tensor = None if value is None else tf.convert_to_tensor(value)
    except (TypeError, ValueError):
        tensor = None
    if tensor is None:
        raise ValueError("%s must be a numeric tensor, got %s" % (arg, _got(value)))
    if not (tensor.dtype.is_floating or tensor.dtype.is_integer
            or (allow_bool and tensor.dtype == tf.bool)):
        raise ValueError("%s must be a numeric tensor, got dtype %s with shape %s"
                         % (arg, tensor.dtype.name, tensor.shape))
    return tensor


def _as_list(value, arg):
    """A list from a list, tuple or other iterable that is not a tensor,
    array, string or dict."""
    if value is None or isinstance(value, (str, bytes, dict)) or hasattr(value, "shape"):
        raise ValueError("%s must be a list, got %s" % (arg, _got(value)))
    try:
        return list(value)
    except TypeError as e:
        raise ValueError("%s must be a list, got %s" % (arg, _got(value))) from e


def _check_variable(variable, i):
    """A tf.Variable or Keras Variable (anything with assign and a shape)."""
    if not (callable(getattr(variable, "assign", None)) and hasattr(variable, "shape")):
        raise ValueError("variables[%d] must be a tf.Variable or a Keras Variable, got %s"
                         % (i, _got(variable)))
    return variable


def _check_same_shape(tensor, variable, arg, i, path):
    """`tensor` (a gradient or update) has the shape of `variables[i]`."""
    vshape = tf.TensorShape(variable.shape)
    if not tensor.shape.is_compatible_with(vshape):
        raise ValueError("%s[%d] has shape %s but variables[%d] (%s) has shape %s"
                         % (arg, i, tensor.shape, i, path, list(variable.shape)))


def _unique_paths(name, paths):
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
    _warn_once(("duplicate_paths", name, tuple(paths)),
               "tb_plugin: variables of %r share a path (e.g. unnamed tf.Variables are all "
               "'Variable'); recorded as: %s. Name the variables to choose their paths."
               % (name, ", ".join(renamed)))
    return out


def _check_manifest_data(data, arg="data"):
    """A manifest: a dict of JSON-able values with string keys, no cycles,
    nested at most MAX_MANIFEST_DEPTH deep (other leaves are written as
    ``str(value)``)."""
    if not isinstance(data, dict):
        raise ValueError("%s must be a dict, got %s" % (arg, _got(data)))

    def walk(node, where, depth, active):
        if id(node) in active:
            raise ValueError("%s is circular: %s contains itself" % (arg, where))
        if depth > MAX_MANIFEST_DEPTH:
            raise ValueError("%s is nested more than %d deep (at %s)"
                             % (arg, MAX_MANIFEST_DEPTH, _short(where)))
        active.add(id(node))
        if isinstance(node, dict):
            items = []
            for key, value in node.items():
                if not isinstance(key, str):
                    raise ValueError("%s must have string keys, got key %s in %s"
                                     % (arg, _got(key), _short(where)))
                items.append((key, value))
        else:
            items = list(enumerate(node))
        for key, value in items:
            if isinstance(value, (dict, list, tuple)):
                walk(value, "%s[%s]" % (where, _short(repr(key), 40)), depth + 1, active)
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


def _invalid_label_count(labels, task, num_classes):
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
                % (what, bad.sum(), bad.size, _short(repr(laid_out.numpy()[bad][:3].tolist()))))
    return tf.reduce_sum(tf.cast(mask, tf.float32))


# ---------------------------------------------------------------------------
# Metadata and low-level writes

_md_cache = {}


def _metadata_bytes(kind, description):
    """Serialized SummaryMetadata of `kind`: "scalar", "histogram",
    "headline", "index", or (SERIES_VARIABLE_STATS, columns) /
    (SERIES_VARIABLE_HISTOGRAMS, (lo, hi))."""
    key = (kind, description or "")
    if key not in _md_cache:
        d = description or ""
        if kind == "headline":
            md = metadata.create_headline_metadata(d)
        elif kind == "index":
            md = metadata.create_index_metadata(d)
        elif kind in ("scalar", "histogram"):
            md = metadata.create_series_metadata(
                metadata.SERIES_SCALAR if kind == "scalar" else metadata.SERIES_HISTOGRAM, d)
        elif kind[0] == metadata.SERIES_VARIABLE_STATS:
            md = metadata.create_series_metadata(kind[0], d, columns=list(kind[1]))
        else:
            md = metadata.create_series_metadata(kind[0], d, range=list(kind[1]))
        _md_cache[key] = md.SerializeToString()
    return _md_cache[key]


def _summary_writer_resource():
    """The resource handle of the default summary writer, or None.

    tf.summary.write costs ~6 graph ops and a few ms of Python per call (its
    own record_if cond, an identity, a constant); a logged step writes tens
    of tags, so the writes below call the WriteSummary op directly, inside a
    branch that is already gated by ``should_record_summaries()``. None (fall
    back to tf.summary.write) when there is no default writer or it is not a
    plain resource writer (DTensor, no-op writer, another TF version).
    """
    return tf_internals.default_writer_resource()


@contextlib.contextmanager
def writer_scope(writer):
    """Makes `writer` the default summary writer, like ``writer.as_default()``
    but without flushing it on exit (as_default's exit adds a flush op to a
    traced function: one file write per logged step). The callback flushes
    at epoch ends instead."""
    state = tf_internals.summary_state()
    try:
        old = state.writer
    except AttributeError:  # pragma: no cover - other TF layouts (state: None)
        with writer.as_default():
            yield writer
        return
    state.writer = writer
    try:
        yield writer
    finally:
        state.writer = old


# A record (every statistic of one family at one step) is written by one
# WriteRawProtoSummary op: each statistic becomes a serialized Summary proto
# holding one value (tag, metadata, tensor), exactly the bytes WriteSummary
# would produce, assembled in the graph from one serialize_tensor of all the
# values of a dtype plus constant prefixes/suffixes. One op instead of one
# WriteSummary (plus its inputs) per tag: tens of ops less per record to
# trace, place and run.

_layouts = {}
_local = threading.local()


def _tensor_header(shape, dtype):
    """Bytes of the TensorProto of a numeric tensor of `shape`/`dtype` before
    its raw content, as serialize_tensor / WriteSummary encode it (dtype,
    shape, then the content; built here rather than with an eager op, which
    costs more the first time in a process)."""
    key = ("header", tuple(shape), dtype.name)
    if key not in _layouts:
        from tensorboard.compat.proto import tensor_pb2
        from tensorboard.compat.proto import tensor_shape_pb2

        content = int(np.prod(shape, dtype=np.int64)) * dtype.size
        blob = tensor_pb2.TensorProto(
            dtype=dtype.as_datatype_enum,
            tensor_shape=tensor_shape_pb2.TensorShapeProto(
                dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=int(d)) for d in shape]),
            tensor_content=b"\x01" * content,
        ).SerializeToString()
        _layouts[key] = blob[: len(blob) - content] if content else blob
    return _layouts[key]


def _value_layout(tag, row_shape, dtype, md):
    """(prefix, suffix, content length): a serialized Summary with one value
    `tag`/`md` (serialized metadata; None: no metadata field) holding a
    tensor of `row_shape`/`dtype` is prefix + the tensor's raw content +
    suffix."""
    key = ("value", tag, tuple(row_shape), dtype.name, md)
    if key not in _layouts:
        from tensorboard.compat.proto import summary_pb2
        from tensorboard.compat.proto import tensor_pb2

        content_len = int(np.prod(row_shape, dtype=np.int64)) * dtype.size
        marker = bytes((7 * i + 1) % 251 for i in range(content_len))
        tensor_bytes = _tensor_header(row_shape, dtype) + marker
        value = summary_pb2.Summary.Value(
            tag=tag, tensor=tensor_pb2.TensorProto.FromString(tensor_bytes))
        if md is not None:
            value.metadata.CopyFrom(summary_pb2.SummaryMetadata.FromString(md))
        summary = summary_pb2.Summary(value=[value]).SerializeToString()
        at = summary.find(tensor_bytes)
        if at < 0 or summary.find(tensor_bytes, at + 1) >= 0:
            raise ValueError("cannot lay out the summary of %r" % tag)
        start = at + len(tensor_bytes) - content_len
        _layouts[key] = (summary[:start], summary[start + content_len:], content_len)
    return _layouts[key]


class _TensorRows(collections.namedtuple(
        "_TensorRows", "prefixes suffixes plain_prefixes plain_suffixes content_len values")):
    """The Summary protos of the rows of a tensor, before serialization:
    row i is ``prefixes[i]`` + its raw content + ``suffixes[i]`` (see
    _value_layout and _write_serialized); ``plain_*``: the same without the
    summary metadata (see _one_write's `written`)."""


def _serialized_rows(tags, values, kind, description):
    """The Summary protos (one per tag) of the rows of `values`.

    `values`: a numpy array or a tensor stacked on axis 0. Returns a list of
    bytes (numpy values) or _TensorRows (tensors, serialized when written).
    """
    md = _metadata_bytes(kind, description)
    if isinstance(values, np.ndarray):
        dtype = tf.as_dtype(values.dtype)
        out = []
        for tag, row in zip(tags, values):
            prefix, suffix, _ = _value_layout(tag, row.shape, dtype, md)
            out.append(prefix + np.ascontiguousarray(row).astype(
                row.dtype.newbyteorder("<"), copy=False).tobytes() + suffix)
        return out
    values = tf.convert_to_tensor(values)
    shape = values.shape[1:].as_list()
    layouts = [_value_layout(tag, shape, values.dtype, md) for tag in tags]
    plain = [_value_layout(tag, shape, values.dtype, None) for tag in tags]
    return _TensorRows([p for p, _, _ in layouts], [x for _, x, _ in layouts],
                       [p for p, _, _ in plain], [x for _, x, _ in plain],
                       layouts[0][2], values)


def _without_metadata(summary):
    """A serialized Summary, its values' metadata removed."""
    key = ("plain", summary)
    if key not in _layouts:
        from tensorboard.compat.proto import summary_pb2

        proto = summary_pb2.Summary.FromString(summary)
        for value in proto.value:
            value.ClearField("metadata")
        _layouts[key] = proto.SerializeToString()
    return _layouts[key]


def _with_metadata_until(seen, with_metadata, plain):
    """[n] string tensor: `with_metadata` while `seen` (a bool tensor, or
    None) is false, then `plain`."""
    if seen is None:
        return tf.constant(with_metadata, tf.string)
    # Select (v1) with a scalar condition forwards one input, copying nothing.
    return tf.raw_ops.Select(condition=seen, x=tf.constant(plain, tf.string),
                             y=tf.constant(with_metadata, tf.string))


def _serialize_tensor_rows(rows, seen=None):
    """[n] string tensor of the Summary protos of `rows` (_TensorRows): one
    serialize_tensor of the concatenated values per dtype, one substr for
    every row's raw content, one join with the constant prefixes/suffixes
    (the plain ones once `seen`, see _with_metadata_until)."""
    by_dtype = {}
    for r in rows:
        by_dtype.setdefault(r.values.dtype, []).append(r)
    blobs, starts, lengths = [], [], []
    prefixes, suffixes, plain_prefixes, plain_suffixes = [], [], [], []
    offset = 0
    flat_shape = tf.constant([-1])
    for dtype, group in by_dtype.items():
        total = sum(len(r.prefixes) * r.content_len for r in group) // dtype.size
        position = offset + len(_tensor_header([total], dtype))
        for r in group:
            for _ in r.prefixes:
                starts.append(position)
                lengths.append(r.content_len)
                position += r.content_len
            prefixes += r.prefixes
            suffixes += r.suffixes
            plain_prefixes += r.plain_prefixes
            plain_suffixes += r.plain_suffixes
        flat = [tf.reshape(r.values, flat_shape) for r in group]
        blobs.append(tf.io.serialize_tensor(flat[0] if len(flat) == 1 else tf.concat(flat, 0)))
        offset = position
    blob = blobs[0] if len(blobs) == 1 else tf.strings.join(blobs)
    content = tf.strings.substr(blob, tf.constant(starts, tf.int32), tf.constant(lengths, tf.int32))
    return tf.strings.join([
        _with_metadata_until(seen, prefixes, plain_prefixes),
        content,
        _with_metadata_until(seen, suffixes, plain_suffixes),
    ])


class _Batch:
    """What one _one_write collects: Summary protos (`parts`) and the values
    of the headline statistics ({stat: [values]}, see _add_headline)."""

    def __init__(self):
        self.parts = []
        self.headline = collections.defaultdict(list)


@contextlib.contextmanager
def _one_write(step, writer=None, written=None):
    """Collects the rows written inside (by _write_rows / _write_json) and
    writes them all, with the headline statistics of the record families
    written (see _write_headline), with one op on normal exit. Nested inside another
    _one_write (same step, no tf.cond in between: the callback writes a
    step's prediction and gradient records together), the rows join the
    outer write.

    `writer`: the resource handle of the summary writer (default: the
    default writer's). `written`: a boolean variable that says this write
    has run before (the write sets it); the values then carry their summary
    metadata only until it has (later records hold just tags and tensors,
    ~6% fewer bytes and ~15-20% less work for the write op, as
    tf.compat.v1's FileWriter writes them). Both TensorBoard loaders take a
    tag's metadata from its first value in a run, so give one variable per
    writer, and to one write (one set of tags) only.
    """
    stack = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    if stack:
        yield
        return
    batch = _Batch()
    stack.append(batch)
    try:
        yield
        _write_headline(batch.headline, step)
    finally:
        stack.pop()
    _write_serialized(batch.parts, step, writer, written)


# How each headline statistic aggregates the values of the families written
# together: (numpy, TensorFlow) reductions.
_HEADLINE_REDUCE = {
    metadata.HEADLINE_ENTROPY: (np.mean, tf.reduce_mean),
    metadata.HEADLINE_TIE_FRACTION: (np.max, tf.reduce_max),
    metadata.HEADLINE_ACCURACY_GAP: (np.max, tf.reduce_max),
    metadata.HEADLINE_OUTPUT_NONFINITE: (np.sum, tf.reduce_sum),
    metadata.HEADLINE_FIRST_LAST_RATIO: (np.min, tf.reduce_min),
    metadata.HEADLINE_MAX_UPDATE_RATIO: (np.max, tf.reduce_max),
    metadata.HEADLINE_GRADIENT_NONFINITE: (np.sum, tf.reduce_sum),
}


def _add_headline(stat, value):
    """Adds a family's `value` (a scalar tensor or number; None: none) of
    headline statistic `stat` to the write in progress (_one_write)."""
    if value is not None:
        _local.stack[-1].headline[stat].append(value)


def _write_headline(values, step):
    """Writes the headline statistics ({stat: [values]}) as ``scalars``
    summaries, each aggregated over its values (_HEADLINE_REDUCE)."""
    stats_ = [s for s in metadata.HEADLINE_STATS if values.get(s)]
    if not stats_:
        return
    tags = [metadata.headline_tag(s) for s in stats_]
    if not any(tf.is_tensor(v) for s in stats_ for v in values[s]):
        rows = np.array([_HEADLINE_REDUCE[s][0](np.asarray(values[s], np.float64))
                         for s in stats_], np.float32)
        _write_scalars(tags, rows, step, kind="headline")
        return
    rows = []
    for s in stats_:
        vs = [tf.reshape(tf.cast(v, tf.float32), []) for v in values[s]]
        rows.append(vs[0] if len(vs) == 1 else _HEADLINE_REDUCE[s][1](tf.stack(vs)))
    _write_scalars(tags, rows, step, kind="headline")


def _write_serialized(parts, step, writer=None, written=None):
    """Writes Summary protos (lists of bytes and _TensorRows) with one op
    (`writer`, `written`: see _one_write)."""
    constants = [b for p in parts if isinstance(p, list) for b in p]
    rows = [p for p in parts if isinstance(p, _TensorRows)]
    if not constants and not rows:
        return
    with tf.device("cpu:0"):
        seen = None if written is None else written.read_value()
        tensors = []
        if constants:
            plain = None if written is None else [_without_metadata(b) for b in constants]
            tensors.append(_with_metadata_until(seen, constants, plain))
        if rows:
            tensors.append(_serialize_tensor_rows(rows, seen))
        summaries = tensors[0] if len(tensors) == 1 else tf.concat(tensors, axis=0)
        resource = writer if writer is not None else _summary_writer_resource()
        if resource is None:
            tf.summary.experimental.write_raw_pb(summaries, step=step)
        else:
            tf.raw_ops.WriteRawProtoSummary(
                writer=resource, step=tf.cast(step, tf.int64), tensor=summaries
            )
        if written is not None:
            written.assign(True)


def _write_rows(tags, values, step, kind, description=None):
    """Writes ``values[i]`` under ``tags[i]`` to the default writer.

    `values` is a tensor or numpy array stacked on axis 0 (one row per tag),
    or a list of them. Inside ``_one_write`` the rows join that write;
    otherwise they are written at once. The caller gates the family on
    ``should_record_summaries()`` (see :func:`_gated`).
    """
    tags = list(tags)
    if not tags:
        return
    parts = []
    if isinstance(values, (list, tuple)):
        for tag, value in zip(tags, values):
            if isinstance(value, np.ndarray):
                parts.append(_serialized_rows([tag], value[None], kind, description))
            else:
                with tf.device("cpu:0"):
                    parts.append(_serialized_rows([tag], tf.expand_dims(value, 0), kind,
                                                  description))
    else:
        if isinstance(values, np.ndarray):
            parts.append(_serialized_rows(tags, values, kind, description))
        else:
            with tf.device("cpu:0"):
                parts.append(_serialized_rows(tags, values, kind, description))
    stack = getattr(_local, "stack", None)
    if stack:
        stack[-1].parts.extend(parts)
    else:
        _write_serialized(parts, step)


def _write_scalars(tags, values, step, description=None, kind="scalar"):
    """Scalars ``values[i]`` (a list of scalars, a [n] tensor or a numpy
    array) under ``tags[i]``: series of their record family (`kind`
    "scalar") or headline statistics ("headline")."""
    if isinstance(values, np.ndarray):
        values = values.astype(np.float32)  # serialized on the host
    else:
        if isinstance(values, (list, tuple)):
            values = tf.stack([tf.reshape(tf.cast(v, tf.float32), []) for v in values])
        values = tf.cast(values, tf.float32)
    _write_rows(tags, values, step, kind, description)


def _json_summary(tag, text, description):
    """The serialized Summary of a string scalar (constant bytes)."""
    key = ("json", tag, text, description or "")
    if key not in _layouts:
        if len(_layouts) > 10000:  # manifests of many fits in one process
            _layouts.clear()
        from tensorboard.compat.proto import summary_pb2
        from tensorboard.compat.proto import tensor_pb2
        from tensorboard.compat.proto import tensor_shape_pb2

        _layouts[key] = summary_pb2.Summary(value=[summary_pb2.Summary.Value(
            tag=tag,
            metadata=summary_pb2.SummaryMetadata.FromString(
                _metadata_bytes("index", description)),
            # what serialize_tensor makes of a string scalar
            tensor=tensor_pb2.TensorProto(
                dtype=tf.string.as_datatype_enum,
                tensor_shape=tensor_shape_pb2.TensorShapeProto(),
                string_val=[text.encode("utf-8")]),
        )]).SerializeToString()
    return _layouts[key]


def _write_json(tag, obj, step, description=None):
    text = json.dumps(obj, sort_keys=True, default=str)
    part = [_json_summary(tag, text, description)]
    stack = getattr(_local, "stack", None)
    if stack:
        stack[-1].parts.append(part)
    else:
        _write_serialized([part], step)
    return tf.constant(True)


def _replica_context():
    """The replica context when running in a multi-replica `strategy.run`."""
    if not tf.distribute.has_strategy() or tf.distribute.in_cross_replica_context():
        return None
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync <= 1:
        return None
    return ctx


# ---------------------------------------------------------------------------
# Predictions


def _check_outputs(outputs, labels, task):
    """(outputs, labels, task) as tensors and the task inferred when None,
    checked against each other (ValueErrors naming the argument)."""
    outputs = _as_tensor(outputs, "outputs")
    rank = outputs.shape.rank
    if task is not None and task not in _TASKS:
        raise ValueError("task must be one of %s or None, got %s" % (_TASKS, _got(task)))
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
        labels = _as_tensor(labels, "labels", allow_bool=True)
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
    w = _as_tensor(sample_weight, "sample_weight")
    rank = w.shape.rank
    if rank not in (1, 2) or (rank == 2 and w.shape[-1] != 1):
        raise ValueError("sample_weight must have shape [batch] or [batch, 1], got shape %s"
                         % w.shape)
    if None not in (w.shape[0], outputs.shape[0]) and w.shape[0] != outputs.shape[0]:
        raise ValueError("sample_weight must have the batch size of outputs (%d), got shape %s"
                         % (outputs.shape[0], w.shape))
    return w


def index_extra(task, outputs_shape, labels_shape=None):
    """The optional prediction-index fields (see metadata.INDEX_*) of outputs
    of `outputs_shape` (and labels of `labels_shape`): the number of labels
    of a multi-label binary output, the output dimensions of a regression
    whose spread is recorded per dimension."""
    shape = tf.TensorShape(outputs_shape)
    if task == metadata.TASK_BINARY and shape.rank is not None and shape.rank > 1:
        k = shape[1:].num_elements()
        if k is not None and k > 1:
            return {metadata.INDEX_LABELS: int(k)}
    if task == metadata.TASK_REGRESSION:
        d = stats.regression_dims(shape, labels_shape)
        if d > 1:
            return {metadata.INDEX_OUTPUT_DIMS: d}
    return {}


def prediction_sums(outputs, labels=None, from_logits=False, task=None, hist_range=None,
                    sample_weight=None):
    """Validated additive statistics (see :mod:`tb_plugin.stats`) of one batch.

    Returns ``(sums, task, num_classes)``. For regression `hist_range`
    (lo, hi) fixes the outputs histogram range (default: the batch's range).
    `sample_weight` (per row) is summed per class for multiclass outputs
    with labels, and ignored otherwise.
    """
    outputs, labels, task = _check_outputs(outputs, labels, task)
    if sample_weight is not None:
        sample_weight = check_sample_weight(sample_weight, outputs)
    if task == metadata.TASK_MULTICLASS:
        return (
            stats.multiclass_sums(outputs, labels, from_logits, sample_weight),
            task,
            int(outputs.shape[-1]),
        )
    if task == metadata.TASK_BINARY:
        return stats.binary_sums(outputs, labels, from_logits), task, 1
    lo, hi = hist_range if hist_range is not None else (None, None)
    return stats.regression_sums(outputs, labels, lo, hi), task, 1


def _prediction_index(task, num_classes, from_logits, has_labels, extra=None):
    index = {
        "kind": metadata.KIND_PREDICTIONS,
        "task": task,
        "num_classes": int(num_classes),
        "from_logits": None if task == metadata.TASK_REGRESSION else bool(from_logits),
        "has_labels": bool(has_labels),
    }
    index.update(extra or {})
    return index


def write_prediction_sums(
    name, sums, task, num_classes, step, from_logits=False, hist_range=None,
    description=None, index_extra=None,
):
    """Writes one prediction record from (accumulated) sufficient statistics.

    Used by :func:`prediction_distribution` and by the callback for
    validation (sums accumulated over all validation batches). `hist_range`
    is the (lo, hi) of the regression outputs histogram; `index_extra` the
    optional index fields (:func:`index_extra`). Honours
    ``tf.summary.record_if`` (and, under tf.distribute, writes from replica 0
    only); returns a boolean tensor, true if written.
    """
    step = _resolve_step(step)
    return _gated(
        lambda: _write_prediction_sums(
            name, sums, task, num_classes, step, from_logits, hist_range, description,
            index_extra=index_extra,
        )
    )


def _write_prediction_sums(
    name, sums, task, num_classes, step, from_logits, hist_range, description,
    backend="tf", index_extra=None,
):
    """write_prediction_sums, in a branch already gated by _gated.

    ``backend="numpy"``: `sums` are numpy arrays (eager callers), finalized on
    the host and written with one eager op.
    """
    with _one_write(step):
        return _write_prediction_sums_rows(
            name, sums, task, num_classes, step, from_logits, hist_range, description,
            backend, index_extra,
        )


def _write_prediction_sums_rows(
    name, sums, task, num_classes, step, from_logits, hist_range, description, backend,
    index_extra=None,
):
    scalars, hists = stats.finalize_prediction_sums(sums, task, num_classes, backend)
    numpy = backend == "numpy"
    names = sorted(scalars)
    values = [scalars[stat] for stat in names]
    if numpy:
        values = np.array(values, dtype=np.float32).reshape([-1])
    _write_scalars([metadata.stat_tag(name, stat) for stat in names], values, step, description)
    _add_headline(metadata.HEADLINE_ENTROPY, scalars.get(metadata.PRED_ENTROPY))
    _add_headline(metadata.HEADLINE_TIE_FRACTION, scalars.get(metadata.PRED_TIE_FRACTION))
    _add_headline(metadata.HEADLINE_OUTPUT_NONFINITE, scalars.get(metadata.PRED_NONFINITE))
    if metadata.PRED_ACCURACY in scalars and metadata.PRED_TIE_TOLERANT_ACCURACY in scalars:
        _add_headline(metadata.HEADLINE_ACCURACY_GAP,
                      scalars[metadata.PRED_TIE_TOLERANT_ACCURACY]
                      - scalars[metadata.PRED_ACCURACY])
    tags, tensors = [], []
    for stat in sorted(hists):
        counts = hists[stat]
        if stat in (metadata.PRED_PREDICTED_CLASSES, metadata.PRED_LABEL_CLASSES,
                    metadata.PRED_LABEL_WEIGHTS):
            tensor = (stats.class_histogram_array if numpy else stats.class_histogram_tensor)(
                counts
            )
        else:
            lo, hi = hist_range if stat == metadata.PRED_OUTPUT_HIST else (0.0, 1.0)
            if numpy:
                tensor = stats.histogram_array(counts, float(lo), float(hi))
            else:
                tensor = stats.histogram_tensor(counts, lo, hi)
        tags.append(metadata.stat_tag(name, stat))
        tensors.append(tensor)
    _write_rows(tags, tensors, step, "histogram", description)
    has_labels = stats.S_LABELED in sums
    return _write_json(
        metadata.index_tag(name),
        _prediction_index(task, num_classes, from_logits, has_labels, index_extra),
        step,
        description,
    )


def write_prediction_sums_numpy(
    name, sums, task, num_classes, step, from_logits=False, hist_range=None,
    description=None, index_extra=None,
):
    """Eager :func:`write_prediction_sums` from numpy sums (e.g. the
    accumulated validation sums), finalized on the host."""
    step = _resolve_step(step)
    return _gated(
        lambda: _write_prediction_sums(
            name, sums, task, num_classes, step, from_logits, hist_range, description,
            backend="numpy", index_extra=index_extra,
        )
    )


def all_reduce_sums(ctx, sums):
    """Sums a dict of statistics across replicas (one all-reduce per dtype)."""
    out = {}
    for dtype in sorted({v.dtype for v in sums.values()}, key=lambda d: d.name):
        keys = sorted(k for k, v in sums.items() if v.dtype == dtype)
        reduced = ctx.all_reduce(tf.distribute.ReduceOp.SUM, [sums[k] for k in keys])
        out.update(zip(keys, reduced))
    return out


def _regression_range(outputs, ctx):
    lo, hi = stats.finite_range(outputs)
    if ctx is not None:
        both = ctx.all_gather(tf.reshape(tf.stack([lo, -hi]), [1, 2]), axis=0)
        both = tf.reduce_min(tf.reshape(both, [-1, 2]), axis=0)
        lo, hi = both[0], -both[1]
    return lo, hi


def prediction_distribution(
    name, outputs, step=None, labels=None, from_logits=False, task=None,
    description=None, sample_weight=None,
):
    """Writes the health statistics of one batch of model outputs.

    Args:
      name: record family name, a non-empty string other than "manifest",
        e.g. "predictions" (tags ``health/<name>/...``).
      outputs: a numeric tensor (or array): multiclass ``[batch, K]`` logits
        or probabilities; binary ``[batch]`` or ``[batch, 1]`` (or, with
        ``task="binary"``, multi-label ``[batch, K, ...]``: every entry a
        binary problem, the statistics taken over all entries together);
        regression any ``[batch, ...]``.
      step: a non-negative int or integer scalar tensor / variable; default
        ``tf.summary.experimental.get_step()``.
      labels: optional class ids in [0, K) ``[batch]`` / ``[batch, 1]`` or
        one-hot ``[batch, K]`` (multiclass), values in [0, 1] shaped like the
        outputs (binary, thresholded at 0.5), targets (regression). Invalid
        class labels (out of range, not whole, NaN) raise a ValueError when
        the record is written eagerly; inside a ``tf.function`` they are
        counted in the record's ``invalid_labels`` scalar instead (and left
        out of the accuracy, multiclass).
      from_logits: True or False: whether `outputs` are logits (softmax /
        sigmoid applied here) rather than probabilities.
      task: "multiclass", "binary", "regression", or None to infer from the
        shape ([batch, K>1] -> multiclass, else binary).
      description: optional string stored in the summary metadata.
      sample_weight: optional per-row weights ``[batch]`` / ``[batch, 1]``
        given to the loss (e.g. from ``class_weight``); with multiclass
        labels, their sum per class is written as ``label_weights`` (used
        to spot class weights that make one class dominate the loss).
        Ignored for binary and regression outputs.

    Written stats (see :mod:`tb_plugin.metadata`): count, nonfinite and, for
    classification, entropy, tie_fraction, zero_logit_fraction (logits
    only), accuracy, tie_tolerant_accuracy and invalid_labels (with labels)
    as numbers;
    top1_probability, class_probability, predicted_classes, label_classes
    (with labels), label_weights (with labels and sample_weight) as
    histograms. Regression: output_std, target_std (with
    labels) and the outputs histogram; with labels and D > 1 output
    dimensions (last axis), output_std_ratio_max / output_std_ratio_min, the
    largest and smallest std(output_d) / std(target_d). Plus the index
    summary ``health/<name>`` and the headline numbers ``health/entropy``,
    ``health/tie_fraction``, ``health/accuracy_gap`` (classification, the
    last with labels) and ``health/output_nonfinite``.

    Returns:
      A boolean scalar tensor, true if the record was written.

    Raises:
      ValueError: naming the argument and what it got, for any argument not
        as above (a family name that is empty or reserved, outputs / labels
        of the wrong rank, batch size or dtype, a step that is not a
        non-negative integer, a from_logits that is not a bool).
    """
    name = _check_name(name)
    step = _resolve_step(step)
    from_logits = _check_bool(from_logits, "from_logits")
    description = _check_description(description)
    outputs, labels, task = _check_outputs(outputs, labels, task)
    if sample_weight is not None:
        sample_weight = check_sample_weight(sample_weight, outputs)
    ctx = _replica_context()
    extra = index_extra(task, outputs.shape, None if labels is None else labels.shape)

    def compute():
        hist_range = None
        if task == metadata.TASK_REGRESSION:
            hist_range = _regression_range(outputs, ctx)
        sums, _, k = prediction_sums(outputs, labels, from_logits, task, hist_range,
                                     sample_weight)
        invalid = _invalid_label_count(labels, task, k)
        if ctx is not None:
            sums = all_reduce_sums(ctx, sums)
            if invalid is not None:
                invalid = ctx.all_reduce(tf.distribute.ReduceOp.SUM, invalid)
        return sums, k, hist_range, invalid

    def write_record(sums, k, hist_range, invalid):
        with _one_write(step):
            if invalid is not None:
                _write_scalars([metadata.stat_tag(name, metadata.PRED_INVALID_LABELS)],
                               [invalid], step, description)
            return _write_prediction_sums(
                name, sums, task, k, step, from_logits, hist_range, description,
                index_extra=extra,
            )

    if ctx is not None:
        # Collective ops must run on every replica; only the write is gated.
        computed = compute()

        def write():
            return write_record(*computed)
    else:

        def write():
            return write_record(*compute())

    with tf.name_scope("health_" + _scope_name(name)):
        return _gated(write)


def _scope_name(name):
    return "".join(c if c.isalnum() or c in "_-." else "_" for c in name)


def lazy_cond(pred, true_fn, false_fn, name="health_cond"):
    """tf.cond that stays a functional If op in the graph (not lowered).

    TF lowers tf.cond inside tf.function to Switch/Merge, and then every op
    of the branch not taken is still visited (as a dead node) on every step.
    Recording branches have hundreds of ops and run on few steps, so the
    functional If, which runs only the branch taken, is much cheaper on the
    other steps. Eagerly, and in a multi-replica context (where a branch may
    touch resources of several devices, which one If op cannot be placed
    with), this is plain tf.cond.
    """
    if tf.executing_eagerly() or _replica_context() is not None:
        return tf.cond(pred, true_fn, false_fn, name=name)
    graph = tf.compat.v1.get_default_graph()
    before = len(graph.get_operations())
    out = tf.cond(pred, true_fn, false_fn, name=name)
    try:
        tf_internals.keep_functional_ifs(graph.get_operations()[before:])
    except Exception:  # noqa: BLE001 - an optimisation only
        pass
    return out


def _gated(fn):
    """Runs `fn` only when summaries would be recorded (lazily in graphs).

    A statically known condition (``record_if(True)``, replica 1 of a
    MirroredStrategy, no default writer) builds no tf.cond.
    """
    static = _static_should_record()
    if static is not None:
        return tf.cast(fn(), tf.bool) if static else tf.constant(False)
    should = tf.summary.should_record_summaries()
    if tf.executing_eagerly():
        return tf.cast(fn(), tf.bool) if bool(should) else tf.constant(False)
    static = tf.get_static_value(should)
    if static is not None:
        return tf.cast(fn(), tf.bool) if bool(static) else tf.constant(False)
    return lazy_cond(should, lambda: tf.cast(fn(), tf.bool), lambda: tf.constant(False))


def _static_should_record():
    """``should_record_summaries()`` as a Python bool when it is known while
    tracing (no writer, ``record_if(True/False)``, a MirroredStrategy replica's
    id), else None. (should_record_summaries() itself returns a LogicalAnd of
    the two conditions, which tf.get_static_value cannot see through, so a
    cond would be built even under record_if(True).)"""
    state = tf_internals.summary_state()
    try:
        writer = state.writer
        recording = state.is_recording
        distributed = state.is_recording_distribution_strategy
    except AttributeError:  # pragma: no cover - other TF layouts (state: None)
        return None
    if writer is None:
        return False
    values = []
    for cond in (recording, distributed):
        if callable(cond):
            cond = cond()
        if cond is None:
            cond = True  # should_record_summaries()'s default
        if not isinstance(cond, (bool, np.bool_)):
            cond = tf.get_static_value(cond)
            if cond is None:
                return None
        values.append(bool(cond))
    return all(values)


# ---------------------------------------------------------------------------
# Gradients


def variable_path(variable):
    """Keras 3 ``variable.path``, else the tf.Variable name without ':0'."""
    path = getattr(variable, "path", None)
    if isinstance(path, str) and path:
        return path
    name = getattr(variable, "name", None) or "variable"
    if name.endswith(":0"):
        name = name[:-2]
    return name


def _variable_value(variable):
    value = getattr(variable, "value", None)
    if value is not None and not callable(value):
        variable = value  # Keras 3 Variable -> backing tf.Variable
    return tf.convert_to_tensor(variable)


def gradient_magnitudes(
    name, gradients, variables, step=None, updates=None, description=None
):
    """Writes per-variable gradient statistics of one step.

    Args:
      name: record family name, a non-empty string other than "manifest",
        e.g. "gradients".
      gradients: a list of gradient tensors (or IndexedSlices, or None:
        skipped with one warning), aligned with `variables`, each shaped
        like its variable.
      variables: a list of tf.Variables or Keras Variables, in model depth
        order (input to output); each is named by its Keras 3 ``path``
        (``name`` for a tf.Variable). Variables that share a path (unnamed
        tf.Variables are all "Variable") are recorded under unique paths
        (``Variable#2``, ``dense#2/kernel``), with one warning.
      step: a non-negative int or integer scalar tensor / variable; default
        ``tf.summary.experimental.get_step()``.
      updates: optional list aligned with `variables` of the change just
        applied, ``w_after - w_before`` (call after the optimizer step),
        each shaped like its variable (None: unknown); gives update_ratio =
        ||update|| / ||w_before||.
      description: optional string stored in the summary metadata.

    Writes ``health/<name>/variable_stats``, one row per variable: norm,
    max_abs, zero_fraction, nonfinite, weight_norm and, with updates,
    update_ratio; ``health/<name>/log10_abs``, one log10|g| histogram per
    variable; ``health/<name>/first_last_ratio``; the index summary
    ``health/<name>`` listing the variables (the rows' order); and the
    headline numbers ``health/first_last_ratio``, ``health/gradient_nonfinite``
    and ``health/max_update_ratio`` (with updates).

    Returns:
      A boolean scalar tensor, true if the record was written.

    Raises:
      ValueError: naming the argument and what it got, for any argument not
        as above.
    """
    name = _check_name(name)
    step = _resolve_step(step)
    description = _check_description(description)
    gradients = _as_list(gradients, "gradients")
    variables = _as_list(variables, "variables")
    if len(gradients) != len(variables):
        raise ValueError(
            "gradients and variables must have the same length, got %d gradients "
            "and %d variables" % (len(gradients), len(variables))
        )
    if updates is not None:
        updates = _as_list(updates, "updates")
        if len(updates) != len(variables):
            raise ValueError(
                "updates must have the length of variables (%d), got %d"
                % (len(variables), len(updates))
            )
    entries = gradient_entries(name, gradients, variables, updates)
    ctx = _replica_context()
    if ctx is not None and entries:
        reduced = ctx.all_reduce(
            tf.distribute.ReduceOp.SUM, [stats.to_float(g) for _, g, _, _ in entries]
        )
        entries = [(p, r, v, u) for (p, _, v, u), r in zip(entries, reduced)]

    def write():
        return _write_gradient_stats(name, entries, step, description)

    with tf.name_scope("health_" + _scope_name(name)):
        return _gated(write)


def gradient_entries(name, gradients, variables, updates=None):
    """The (unique path, gradient tensor, variable, update tensor or None)
    of each variable with a gradient, validated (see gradient_magnitudes);
    None gradients are skipped with one warning per family and set of
    variables."""
    paths = _unique_paths(name, [variable_path(_check_variable(v, i))
                                 for i, v in enumerate(variables)])
    entries = []
    skipped = []
    for i, (g, v, path) in enumerate(zip(gradients, variables, paths)):
        if g is None:
            skipped.append(path)
            continue
        g = _as_tensor(g, "gradients[%d] (%s)" % (i, path))
        _check_same_shape(g, v, "gradients", i, path)
        u = updates[i] if updates is not None else None
        if u is not None:
            u = _as_tensor(u, "updates[%d] (%s)" % (i, path))
            _check_same_shape(u, v, "updates", i, path)
        entries.append((path, g, v, u))
    if skipped:
        _warn_once(
            ("none_gradients", name, tuple(skipped)),
            "tb_plugin: no gradient for %d variable(s) of %r, skipped: %s"
            % (len(skipped), name, ", ".join(skipped)),
        )
    return entries


def _write_gradient_stats(name, entries, step, description=None):
    """Computes (vectorised, see stats.gradient_stats_many) and writes the
    statistics of `entries` [(path, gradient, variable, update or None)]."""
    layout = [(p, g.shape) for p, g, _, _ in entries]
    st, has_update = {}, []
    if entries:
        st, has_update = _gradient_statistics(
            [g for _, g, _, _ in entries],
            [_variable_value(v) for _, _, v, _ in entries],
            [u for _, _, _, u in entries])
    with _one_write(step):
        return _write_gradient_rows(name, layout, st, has_update, step, description)


def _gradient_statistics(gradients, weights=None, updates=None, grad_stats=None):
    """(statistics by name, whether each variable has an update_ratio) of
    the gradients (stats.gradient_stats_many; `grad_stats`: those, already
    computed) and, given the weights, of the weights and their `updates`
    (a list aligned with them; None entries: no update known)."""
    st = dict(grad_stats if grad_stats is not None else stats.gradient_stats_many(gradients))
    has_update = [False] * int(st[metadata.GRAD_NORM].shape[0])
    if weights is not None:
        if updates is not None:
            has_update = [u is not None for u in updates]
        filled = None
        if any(has_update):
            filled = [u if u is not None else tf.zeros_like(stats.to_float(w))
                      for u, w in zip(updates, weights)]
        st.update(stats.weight_stats_many(weights, filled))
    return st, has_update


def _write_gradient_rows(name, layout, st, has_update, step, description):
    """The rows of a gradient record: `layout` [(variable path, gradient
    shape)], `st` and `has_update` from _gradient_statistics. The
    per-variable statistics are one [variables, statistics] tensor and the
    log10|g| histograms one [variables, bins] tensor (see metadata)."""
    if layout:
        columns = [s for s in metadata.GRADIENT_VARIABLE_STATS if s in st
                   and (s != metadata.GRAD_UPDATE_RATIO or any(has_update))]
        matrix = tf.stack([tf.cast(st[s], tf.float32) for s in columns], axis=1)
        _write_rows([metadata.stat_tag(name, metadata.GRAD_VARIABLE_STATS)], matrix[None],
                    step, (metadata.SERIES_VARIABLE_STATS, tuple(columns)), description)
        ratio = stats.first_last_ratio_many(
            st[metadata.GRAD_NORM], [len(shape) for _, shape in layout]
        )
        if ratio is not None:
            _write_scalars([metadata.stat_tag(name, metadata.GRAD_FIRST_LAST_RATIO)],
                           tf.reshape(ratio, [1]), step, description)
        _add_headline(metadata.HEADLINE_FIRST_LAST_RATIO, ratio)
        _add_headline(metadata.HEADLINE_GRADIENT_NONFINITE,
                      tf.reduce_sum(st[metadata.GRAD_NONFINITE]))
        updated = [i for i, has in enumerate(has_update) if has]
        if updated:  # the largest ratio known (NaN: a weight of norm 0)
            ratios = tf.gather(st[metadata.GRAD_UPDATE_RATIO], updated)
            top = tf.reduce_max(tf.where(tf.math.is_nan(ratios), -np.inf, ratios))
            _add_headline(metadata.HEADLINE_MAX_UPDATE_RATIO,
                          tf.where(top > -np.inf, top, np.nan))
        _write_rows([metadata.stat_tag(name, metadata.GRAD_LOG10_HIST)],
                    tf.cast(st[metadata.GRAD_LOG10_HIST], tf.float32)[None], step,
                    (metadata.SERIES_VARIABLE_HISTOGRAMS, metadata.LOG10_RANGE), description)
    variables = []
    for i, (p, shape) in enumerate(layout):
        entry = {"path": p, "shape": [int(d) if d is not None else None for d in shape]}
        if any(has_update) and not has_update[i]:
            entry[metadata.INDEX_NO_UPDATE] = True
        variables.append(entry)
    index = {"kind": metadata.KIND_GRADIENTS, "variables": variables}
    return _write_json(metadata.index_tag(name), index, step, description)


# ---------------------------------------------------------------------------
# Manifest


def manifest(data, step=0):
    """Writes the run manifest under ``health/manifest``.

    Args:
      data: a dict of JSON values (dicts with string keys, lists, strings,
        numbers, bools, None; other values are written as ``str(value)``),
        without cycles, nested at most MAX_MANIFEST_DEPTH deep.
      step: a non-negative int or integer scalar tensor (None: the default
        step).

    Returns:
      A boolean tensor, true when the manifest was written.

    Raises:
      ValueError: naming the argument and what it got, for `data` or `step`
        not as above.
    """
    data = _check_manifest_data(data)
    step = _resolve_step(step)
    return _gated(lambda: _write_json(metadata.MANIFEST_TAG, data, step))


def model_manifest(model, loss, optimizer=None, step=0, from_logits=None):
    """Writes the manifest of a Keras model trained by a custom loop.

    The manifest (layers with their activations and initialisers, the output
    layer, the loss and whether it takes logits, the optimizer) is what the
    root-cause lint of :mod:`tb_plugin.diagnosis` reads, e.g. a ReLU on the
    logits of a ``from_logits=True`` loss (``output_activation_mismatch``),
    reported by ``tb-health check`` and the Health tab from step 0.
    ``HealthCallback`` writes the same manifest (one implementation:
    :func:`tb_plugin.manifest.build_manifest`). Write it once per run, before
    the loop, with the run's writer as the default::

        import tensorflow as tf
        from tb_plugin import summary as health

        model = keras.Sequential([keras.Input((20,)),
                                  keras.layers.Dense(64, activation="relu"),
                                  keras.layers.Dense(10)])
        loss_fn = tf.nn.sparse_softmax_cross_entropy_with_logits
        optimizer = keras.optimizers.Adam(1e-3)
        writer = tf.summary.create_file_writer("logs/custom/train")
        with writer.as_default():
            health.model_manifest(model, loss_fn, optimizer)
        # ... the training loop, then: tb-health check logs

    Args:
      model: a ``keras.Model`` (built, so that its parameters are counted).
      loss: the loss: a ``keras.losses.Loss`` instance, a Keras loss name
        (``"sparse_categorical_crossentropy"``), a TensorFlow op
        (``tf.nn.sparse_softmax_cross_entropy_with_logits`` and
        ``tf.nn.softmax_cross_entropy_with_logits``: multi-class on logits;
        ``tf.nn.sigmoid_cross_entropy_with_logits``: binary on logits) or a
        plain function, recognised by its name (``my_categorical_crossentropy``,
        ``masked_mse``; a ``functools.partial`` passes on its ``from_logits``).
        None: the model's compiled loss.
      optimizer: a ``keras.optimizers.Optimizer``; None: the model's, if any.
      step: the step to write the manifest at (a non-negative int or integer
        scalar tensor).
      from_logits: whether the model outputs logits, for a plain function
        whose name or signature does not say it (it overrides what the loss
        says); None: inferred (unknown stays unknown, and the output lint is
        then skipped).

    Returns:
      A boolean tensor, true when the manifest was written (as
      :func:`manifest`).

    Raises:
      ValueError: naming the argument, when one is not of the kinds above.
    """
    import keras

    from tb_plugin import manifest as manifest_lib

    if not isinstance(model, keras.Model):
        raise ValueError("model must be a keras.Model, got %s" % _got(model))
    if loss is None:
        loss = getattr(model, "loss", None)
        if loss is None:
            raise ValueError("loss is None and the model is not compiled with a loss: "
                             "pass the loss function")
    if not (isinstance(loss, str) or callable(loss)):
        raise ValueError(
            "loss must be a keras.losses.Loss, a loss name, a tf.nn loss function or "
            "a function, got %s" % _got(loss))
    if optimizer is not None and not isinstance(optimizer, keras.optimizers.Optimizer):
        raise ValueError("optimizer must be a keras.optimizers.Optimizer or None, got %s"
                         % _got(optimizer))
    if from_logits is not None:
        from_logits = _check_bool(from_logits, "from_logits")
    step = _resolve_step(step)
    data = manifest_lib.build_manifest(model, loss, optimizer, from_logits)
    return manifest(data, step=step)
