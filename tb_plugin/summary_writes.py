"""How a record's values become one summary write.

A record (every statistic of one family at one step) is written by one
WriteRawProtoSummary op: each statistic becomes a serialized Summary proto
holding one value (tag, metadata, tensor), exactly the bytes WriteSummary
would produce (:func:`one_write`, :func:`write_rows`, :func:`write_json`),
with the headline numbers of the families written together
(:func:`add_headline`); plus the gating of a record on
``tf.summary.record_if`` (:func:`gated`) and the functional conds that hold
it (:func:`lazy_cond`). Used by :mod:`tb_plugin.summary_v2` and the
callback's recording.
"""

import collections
import contextlib
import json
import threading

import numpy as np

# summary_args raises a clear ImportError when TensorFlow is missing.
from tb_plugin import summary_args  # noqa: F401  (first, for that error)

import tensorflow as tf  # noqa: E402

from tb_plugin import metadata
from tb_plugin import tf_internals

# ---------------------------------------------------------------------------
# Metadata and low-level writes

_md_cache = {}


def metadata_bytes(kind, description):
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


def summary_writer_resource():
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


def tensor_header(shape, dtype):
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
        tensor_bytes = tensor_header(row_shape, dtype) + marker
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
    summary metadata (see one_write's `written`)."""


def _serialized_rows(tags, values, kind, description):
    """The Summary protos (one per tag) of the rows of `values`.

    `values`: a numpy array or a tensor stacked on axis 0. Returns a list of
    bytes (numpy values) or _TensorRows (tensors, serialized when written).
    """
    md = metadata_bytes(kind, description)
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
        position = offset + len(tensor_header([total], dtype))
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
    """What one one_write collects: Summary protos (`parts`) and the values
    of the headline statistics ({stat: [values]}, see add_headline)."""

    def __init__(self):
        self.parts = []
        self.headline = collections.defaultdict(list)


@contextlib.contextmanager
def one_write(step, writer=None, written=None):
    """Collects the rows written inside (by write_rows / write_json) and
    writes them all, with the headline statistics of the record families
    written (see _write_headline), with one op on normal exit. Nested inside another
    one_write (same step, no tf.cond in between: the callback writes a
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


def add_headline(stat, value):
    """Adds a family's `value` (a scalar tensor or number; None: none) of
    headline statistic `stat` to the write in progress (one_write)."""
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
        write_scalars(tags, rows, step, kind="headline")
        return
    rows = []
    for s in stats_:
        vs = [tf.reshape(tf.cast(v, tf.float32), []) for v in values[s]]
        rows.append(vs[0] if len(vs) == 1 else _HEADLINE_REDUCE[s][1](tf.stack(vs)))
    write_scalars(tags, rows, step, kind="headline")


def _write_serialized(parts, step, writer=None, written=None):
    """Writes Summary protos (lists of bytes and _TensorRows) with one op
    (`writer`, `written`: see one_write)."""
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
        resource = writer if writer is not None else summary_writer_resource()
        if resource is None:
            tf.summary.experimental.write_raw_pb(summaries, step=step)
        else:
            tf.raw_ops.WriteRawProtoSummary(
                writer=resource, step=tf.cast(step, tf.int64), tensor=summaries
            )
        if written is not None:
            written.assign(True)


def write_rows(tags, values, step, kind, description=None):
    """Writes ``values[i]`` under ``tags[i]`` to the default writer.

    `values` is a tensor or numpy array stacked on axis 0 (one row per tag),
    or a list of them. Inside ``one_write`` the rows join that write;
    otherwise they are written at once. The caller gates the family on
    ``should_record_summaries()`` (see :func:`gated`).
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


def write_scalars(tags, values, step, description=None, kind="scalar"):
    """Scalars ``values[i]`` (a list of scalars, a [n] tensor or a numpy
    array) under ``tags[i]``: series of their record family (`kind`
    "scalar") or headline statistics ("headline")."""
    if isinstance(values, np.ndarray):
        values = values.astype(np.float32)  # serialized on the host
    else:
        if isinstance(values, (list, tuple)):
            values = tf.stack([tf.reshape(tf.cast(v, tf.float32), []) for v in values])
        values = tf.cast(values, tf.float32)
    write_rows(tags, values, step, kind, description)


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
                metadata_bytes("index", description)),
            # what serialize_tensor makes of a string scalar
            tensor=tensor_pb2.TensorProto(
                dtype=tf.string.as_datatype_enum,
                tensor_shape=tensor_shape_pb2.TensorShapeProto(),
                string_val=[text.encode("utf-8")]),
        )]).SerializeToString()
    return _layouts[key]


def write_json(tag, obj, step, description=None):
    text = json.dumps(obj, sort_keys=True, default=str)
    part = [_json_summary(tag, text, description)]
    stack = getattr(_local, "stack", None)
    if stack:
        stack[-1].parts.append(part)
    else:
        _write_serialized([part], step)
    return tf.constant(True)


def replica_context():
    """The replica context when running in a multi-replica `strategy.run`."""
    if not tf.distribute.has_strategy() or tf.distribute.in_cross_replica_context():
        return None
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync <= 1:
        return None
    return ctx

def scope_name(name):
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
    if tf.executing_eagerly() or replica_context() is not None:
        return tf.cond(pred, true_fn, false_fn, name=name)
    graph = tf.compat.v1.get_default_graph()
    before = len(graph.get_operations())
    out = tf.cond(pred, true_fn, false_fn, name=name)
    try:
        tf_internals.keep_functional_ifs(graph.get_operations()[before:])
    except Exception:  # noqa: BLE001 - an optimisation only
        pass
    return out


def gated(fn):
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
