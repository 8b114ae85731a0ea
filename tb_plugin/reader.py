"""Reads the records of the Health plugin back from a TensorBoard data provider.

This is the read side of the on-disk format described in
:mod:`tb_plugin.metadata`: the ``health`` index summaries say which record
families a run holds (predictions, gradients and, for gradients, the
variables in depth order); the numbers and distributions are series
summaries under ``health/...`` tags, of plugin ``health`` (formats 2 and
3) or ``scalars`` and ``histograms`` (format 1, told by the index's
metadata). A gradient family of format 3 keeps its per-variable series in
two tensors a record; they are read into the same per-variable series.

Reading a run costs four provider calls, whatever its size: one
``list_tensors`` and one ``read_tensors`` of the run's ``health`` index
summaries (index + manifest, INDEX_POINTS points each), then one ``read_scalars``
and one ``read_tensors`` (histograms) whose ``run_tag_filter`` names exactly
the run's health tags (one more of each for a run holding both formats).
Every stored point of a series is returned (``downsample`` is larger than any
reservoir).
:func:`read_run` can narrow the read to some record families, variables or
kinds of series, so that a view of one part of a run reads only that part.
The provider over a log directory on disk comes from
:func:`tb_plugin.event_files.load_logdir` (re-exported here with
:func:`open_logdir` and :class:`ReadProblem`).

This module imports no TensorFlow.
"""

import collections
import dataclasses
import functools
import json
import logging
import math
import numbers
from typing import Dict, List, Optional

import numpy as np

from tensorboard import context as tb_context
from tensorboard.data import provider as provider_lib

from tb_plugin import metadata
# Loading a log directory lives in tb_plugin.event_files; callers and tests use
# these names from here too.
from tb_plugin.event_files import Logdir  # noqa: F401
from tb_plugin.event_files import ReadProblem  # noqa: F401
from tb_plugin.event_files import load_logdir  # noqa: F401
from tb_plugin.event_files import open_logdir  # noqa: F401

logger = logging.getLogger(__name__)

# Larger than any reservoir of either loader (metadata.SAMPLES_KEPT points per
# tag by default; users may raise it with --samples_per_plugin).
DOWNSAMPLE_ALL = 10**9
# Points read of each index summary (written with every record; the newest
# readable one is used, and the loaders always return the newest).
INDEX_POINTS = 10

# Every statistic the recording side may write, by record kind. Tags that a
# run does not have are simply absent from the provider's answer.
PREDICTION_SCALAR_STATS = (
    metadata.PRED_ENTROPY,
    metadata.PRED_TIE_FRACTION,
    metadata.PRED_ZERO_LOGIT_FRACTION,
    metadata.PRED_NONFINITE,
    metadata.PRED_ACCURACY,
    metadata.PRED_TIE_TOLERANT_ACCURACY,
    metadata.PRED_OUTPUT_STD,
    metadata.PRED_TARGET_STD,
    metadata.PRED_COUNT,
    metadata.PRED_OUTPUT_STD_RATIO_MAX,
    metadata.PRED_OUTPUT_STD_RATIO_MIN,
    metadata.PRED_INVALID_LABELS,
)
PREDICTION_HISTOGRAM_STATS = (
    metadata.PRED_TOP1_HIST,
    metadata.PRED_CLASS_PROB_HIST,
    metadata.PRED_PREDICTED_CLASSES,
    metadata.PRED_LABEL_CLASSES,
    metadata.PRED_LABEL_WEIGHTS,
    metadata.PRED_OUTPUT_HIST,
)
GRADIENT_VARIABLE_STATS = metadata.GRADIENT_VARIABLE_STATS
GRADIENT_SCALAR_STATS = (metadata.GRAD_FIRST_LAST_RATIO,)


@dataclasses.dataclass
class Series:
    """One number per record, sorted by step."""

    steps: np.ndarray  # int64 (n,)
    values: np.ndarray  # float64 (n,)
    # Times the step went back in the order the points were written: a later
    # fit of a fresh model (steps from 0 again) wrote into the same run.
    restarts: int = 0

    def __len__(self):
        return int(self.steps.shape[0])


@dataclasses.dataclass
class HistogramSeries:
    """One histogram per record, sorted by step.

    ``edges`` are the bin edges of the last record. Where the edges differ
    between records (e.g. regression output histograms, whose range follows
    the batch), ``step_edges`` holds the edges of every record, shape
    ``(n, bins + 1)``; it is ``None`` when all records share ``edges``.
    """

    steps: np.ndarray  # int64 (n,)
    edges: np.ndarray  # float64 (bins + 1,)
    counts: np.ndarray  # float64 (n, bins)
    step_edges: Optional[np.ndarray] = None

    def __len__(self):
        return int(self.steps.shape[0])


@dataclasses.dataclass
class PredictionRecords:
    name: str
    task: str
    num_classes: int
    from_logits: Optional[bool]
    has_labels: bool
    scalars: Dict[str, Series]
    histograms: Dict[str, HistogramSeries]
    # The family's index as written (optional fields such as
    # metadata.INDEX_LABELS, metadata.INDEX_OUTPUT_DIMS).
    index: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class VariableMatrix:
    """One per-variable statistic of a gradient family on the family's steps.

    Row i is variable i of :attr:`GradientRecords.variables`, column j is step
    j of :attr:`GradientRecords.steps`. A cell holds the variable's last value
    at that step; where it has none, NaN and ``present`` False.
    """

    values: np.ndarray  # float64 (variables, steps)
    present: np.ndarray  # bool (variables, steps)


@dataclasses.dataclass
class GradientRecords:
    name: str
    variables: List[str]  # depth order, input to output
    shapes: Dict[str, List[int]]
    stats: Dict[str, Dict[str, Series]]  # stat -> variable path -> Series
    log10_histograms: Dict[str, HistogramSeries]  # variable path -> histograms
    scalars: Dict[str, Series]  # first_last_ratio
    _matrices: Dict[str, VariableMatrix] = dataclasses.field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @functools.cached_property
    def steps(self):
        """Every step of the per-variable series, sorted and unique (int64)."""
        parts = [s.steps for per_var in self.stats.values() for s in per_var.values()]
        if not parts:
            return np.zeros(0, dtype=np.int64)
        return np.unique(np.concatenate(parts)).astype(np.int64, copy=False)

    def matrix(self, stat):
        """Per-variable statistic `stat` as a :class:`VariableMatrix` (cached)."""
        m = self._matrices.get(stat)
        if m is not None:
            return m
        per_var = self.stats.get(stat, {})
        grid = self.steps
        values = np.full((len(self.variables), len(grid)), np.nan)
        present = np.zeros(values.shape, dtype=bool)
        rows = [(i, per_var[p]) for i, p in enumerate(self.variables) if p in per_var]
        if rows:
            row = np.concatenate([np.full(len(s), i, dtype=np.int64) for i, s in rows])
            col = np.searchsorted(grid, np.concatenate([s.steps for _, s in rows]))
            val = np.concatenate([s.values for _, s in rows])
            # Steps are sorted within a series: keep the last point of a step.
            last = np.ones(len(row), dtype=bool)
            last[:-1] = (row[1:] != row[:-1]) | (col[1:] != col[:-1])
            values[row[last], col[last]] = val[last]
            present[row[last], col[last]] = True
        m = self._matrices[stat] = VariableMatrix(values=values, present=present)
        return m


@dataclasses.dataclass
class TrainModeRecords:
    """What the layers that behave differently in training ran with (see
    tb_plugin.train_mode): `layers` are the index's entries (path, class,
    kind, rate, flag, caller, trainable, ...) in model order, `stats` maps a
    statistic (``metadata.TRAIN_MODE_STATS``) to {layer path: Series}."""

    name: str
    layers: List[dict]
    stats: Dict[str, Dict[str, Series]]

    def series(self, stat, path):
        return self.stats.get(stat, {}).get(path)


@dataclasses.dataclass
class RunRecords:
    run: str
    manifest: Optional[dict]
    predictions: Dict[str, PredictionRecords]
    gradients: Dict[str, GradientRecords]
    # Problems met while reading (bad JSON, odd tensors); the run is still
    # returned with whatever could be read.
    warnings: List[str] = dataclasses.field(default_factory=list)
    train_mode: Dict[str, TrainModeRecords] = dataclasses.field(default_factory=dict)

    @property
    def has_data(self):
        return bool(self.predictions or self.gradients or self.train_mode)

    @property
    def has_points(self):
        """Whether any statistic of the run holds a data point (an index
        without them is not enough)."""
        return any(self._points_by_family().values())

    def families_without_points(self):
        """Sorted names of the record families the run's index lists whose
        statistics hold no data point."""
        return sorted(name for name, has in self._points_by_family().items() if not has)

    def _points_by_family(self):
        """{family name: whether any of its statistics holds a data point}."""
        groups = {name: [p.scalars, p.histograms] for name, p in self.predictions.items()}
        groups.update({name: [g.scalars, g.log10_histograms, *g.stats.values()]
                       for name, g in self.gradients.items()})
        groups.update({name: list(t.stats.values()) for name, t in self.train_mode.items()})
        return {name: any(len(s) for group in series for s in group.values())
                for name, series in groups.items()}


def _ctx(ctx):
    # Provider calls require a RequestContext; callers outside a request
    # (the CLI, tests) may pass None.
    return ctx if ctx is not None else tb_context.RequestContext()


def health_runs(provider, ctx, experiment_id):
    """Sorted names of the runs having any ``health`` summary."""
    ctx = _ctx(ctx)
    try:
        index = provider.list_tensors(
            ctx, experiment_id=experiment_id, plugin_name=metadata.PLUGIN_NAME
        )
    except Exception as e:  # a broken provider must not break the caller
        logger.warning("listing health runs failed: %s", e)
        return []
    return sorted(run for run, tags in index.items() if tags)


def _decode_json(datum_numpy):
    value = datum_numpy
    if isinstance(value, np.ndarray):
        if value.size != 1:
            raise ValueError("expected a scalar string tensor, got shape %s" % (value.shape,))
        value = value.reshape(()).item()
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if not isinstance(value, str):
        raise ValueError("expected a string, got %r" % type(value))
    return json.loads(value)


def _latest(data):
    """The points of one series (in the order they were written) that
    TensorBoard's data server keeps: a point replaces the earlier points at
    its step and after (a restarted fit's records replace the earlier fit's).
    TensorBoard's Python loader keeps them all; applying this rule to what it
    returns makes both loaders show the same points. Sorted by step."""
    kept = []
    for d in data:
        while kept and kept[-1].step >= d.step:
            kept.pop()
        kept.append(d)
    return kept


def _steps(data):
    """The steps of a list of data in the order they were written (int64)."""
    return np.fromiter((d.step for d in data), dtype=np.int64, count=len(data))


def _increasing(steps):
    """Whether `steps` (int64) strictly increase: :func:`_latest` keeps every
    point then (the usual case, checked without a Python loop)."""
    return bool(np.all(steps[1:] > steps[:-1]))


def _series(data):
    """A Series from a list of ScalarDatum in the order they were written
    (see :func:`_latest`)."""
    written = _steps(data)
    if _increasing(written):
        kept, steps = data, written
    else:
        kept = _latest(data)
        steps = _steps(kept)
    return Series(steps=steps,
                  values=np.fromiter((d.value for d in kept), dtype=np.float64,
                                     count=len(kept)),
                  restarts=int(np.count_nonzero(written[1:] < written[:-1])))


def _histogram_series(data):
    """A HistogramSeries from a list of TensorDatum of [bins, 3] tensors in
    the order they were written (see :func:`_latest`).

    If the bin count changes between records, records with the last
    record's bin count are kept.
    """
    kept = data if _increasing(_steps(data)) else _latest(data)
    rows = [(int(d.step), np.asarray(d.numpy, dtype=np.float64)) for d in kept]
    if not rows:
        return None
    bins = rows[-1][1].shape[0]
    rows = [r for r in rows if r[1].shape[0] == bins]
    steps = np.array([r[0] for r in rows], dtype=np.int64)
    stacked = np.stack([r[1] for r in rows])  # [records, bins, (left, right, count)]
    all_edges = np.concatenate([stacked[:, :, 0], stacked[:, -1:, 1]], axis=1)
    counts = stacked[:, :, 2]
    same = np.all(all_edges == all_edges[-1:], axis=None)
    return HistogramSeries(
        steps=steps,
        edges=all_edges[-1].copy(),
        counts=counts,
        step_edges=None if same else all_edges,
    )


def _index_values(tensors_for_run):
    """Latest decoded JSON per health tag: ``({tag: (step, value)},
    [warning])``, one warning per tag with records that are not JSON."""
    out = {}
    bad = []
    for tag, data in sorted(tensors_for_run.items()):
        errors = []
        # Newest first, so that a single bad record does not hide the others.
        for d in reversed(_latest(data)):
            try:
                out[tag] = (int(d.step), _decode_json(d.numpy))
                break
            except RecursionError:
                errors.append((d.step, "nested too deeply"))
            except (ValueError, TypeError, UnicodeDecodeError) as e:
                errors.append((d.step, e))
        if errors:
            bad.append("unreadable health summary %s %s: %s%s" % (
                tag, _steps_text([step for step, _ in errors]), errors[0][1],
                "" if tag in out else "; ignored"))
    return out, bad


def _steps_text(steps):
    """'at step 5', 'in 3 records (steps 1-9)'."""
    if len(steps) == 1:
        return "at step %d" % steps[0]
    return "in %d records (steps %d-%d)" % (len(steps), min(steps), max(steps))


def _is_number(datum):
    # A float (what both loaders return) is checked first: the ABC check
    # costs more per point.
    return type(datum.value) is float or isinstance(datum.value, numbers.Real)


def _is_histogram(datum):
    """Whether a TensorDatum holds a [bins, 3] numeric tensor."""
    a = np.asarray(datum.numpy)
    return a.dtype.kind in "biuf" and a.ndim == 2 and a.shape[1] == 3 and a.shape[0] > 0


def _parse_index(values, warnings):
    """(manifest, {name: prediction index}, {name: _IndexVariables}) from the
    decoded ``health`` summaries; problems are appended to `warnings`."""
    manifest = None
    if metadata.MANIFEST_TAG in values:
        manifest = values.pop(metadata.MANIFEST_TAG)[1]
        if not isinstance(manifest, dict):
            warnings.append("manifest is not a JSON object; ignored")
            manifest = None

    pred_index = {}
    grad_vars = {}
    prefix = metadata.TAG_PREFIX + "/"
    for tag, (_, value) in sorted(values.items()):
        if not tag.startswith(prefix) or not isinstance(value, dict):
            warnings.append("health summary %s is not an index; ignored" % tag)
            continue
        name = tag[len(prefix):]
        kind = value.get("kind")
        if kind == metadata.KIND_PREDICTIONS:
            pred_index[name] = value
        elif kind == metadata.KIND_GRADIENTS:
            variables = value.get("variables")
            if not isinstance(variables, list):
                warnings.append("gradient index %s has no variable list; ignored" % tag)
                continue
            grad_vars[name] = _gradient_variables(variables)
        else:
            warnings.append("health summary %s has unknown kind %r; ignored" % (tag, kind))
    return manifest, pred_index, grad_vars


def _pop_train_mode_index(values):
    """{name: [layer entries with a "path"]} of the train-mode index
    summaries in `values` (removed from it)."""
    out = {}
    prefix = metadata.TAG_PREFIX + "/"
    for tag in sorted(values):
        value = values[tag][1]
        if (tag.startswith(prefix) and isinstance(value, dict)
                and value.get("kind") == metadata.KIND_TRAIN_MODE):
            del values[tag]
            layers = value.get("layers")
            out[tag[len(prefix):]] = [e for e in layers if isinstance(e, dict)
                                      and isinstance(e.get("path"), str)] \
                if isinstance(layers, list) else []
    return out


def _num_classes(name, index, warnings):
    """The class count of prediction index `index` (1 when it has none, or
    with a warning, when it is not a positive whole number)."""
    n = index.get("num_classes")
    if n is None:
        return 1
    if isinstance(n, numbers.Real) and not isinstance(n, bool) and math.isfinite(n) \
            and n >= 1 and n == int(n):
        return int(n)
    warnings.append("prediction index %s: num_classes %r is not a class count; read as 1"
                    % (metadata.index_tag(name), n))
    return 1


class _IndexVariables(collections.namedtuple("_IndexVariables",
                                              "paths shapes no_update rows count")):
    """A gradient index's variables: `paths` (depth order), {path: shape},
    the paths without an update_ratio, {path: row} (its row in the family's
    per-variable tensors) and `count`, the entries of the index's list (the
    tensors' rows)."""


def _gradient_variables(variables):
    """The _IndexVariables of a gradient index's variable list, which may
    hold {"path", "shape"} objects or bare paths (an entry that is neither
    keeps its row, unread)."""
    paths, shapes, no_update, rows = [], {}, set(), {}
    for row, v in enumerate(variables):
        if isinstance(v, dict) and isinstance(v.get("path"), str):
            path = v["path"]
            shape = v.get("shape")
            shapes[path] = list(shape) if isinstance(shape, list) else []
            if v.get(metadata.INDEX_NO_UPDATE) is True:
                no_update.add(path)
        elif isinstance(v, str):
            path = v
            shapes[v] = []
        else:
            continue
        paths.append(path)
        rows[path] = row
    return _IndexVariables(paths, shapes, no_update, rows, len(variables))


def _narrowed(index_variables, wanted):
    """`index_variables` (_IndexVariables) with only the paths in `wanted`."""
    paths = [p for p in index_variables.paths if p in wanted]
    return index_variables._replace(
        paths=paths, shapes={p: index_variables.shapes[p] for p in paths})


def _health_contents(provider, ctx, experiment_id, run, tags):
    """({tag: metadata content} of `run`'s ``health`` index and manifest
    summaries, {tag: metadata content} of its ``health`` tensor series),
    of the tags among `tags` (None: all)."""
    listing = provider.list_tensors(
        ctx, experiment_id=experiment_id, plugin_name=metadata.PLUGIN_NAME,
        run_tag_filter=provider_lib.RunTagFilter(runs=[run], tags=tags),
    ).get(run, {})
    index, series = {}, {}
    for tag, ts in listing.items():
        kind = metadata.series_kind(ts.plugin_content)
        (index if kind is None else series)[tag] = ts.plugin_content
    return index, series


def _read(method, ctx, experiment_id, run, plugin_name, tags, warnings,
          downsample=DOWNSAMPLE_ALL):
    """Every point (at most `downsample`) of `run`'s `tags` of one plugin:
    {tag: [datum]}.

    When the provider fails on the whole read (TensorBoard's Python loader
    does when one tag's points cannot be converted, e.g. a vector under a
    scalar tag), the `tags` are read one by one and those that fail are left
    out with a warning (appended to `warnings`).
    """
    def read(tags):
        return method(
            ctx,
            experiment_id=experiment_id,
            plugin_name=plugin_name,
            downsample=downsample,
            run_tag_filter=provider_lib.RunTagFilter(runs=[run], tags=tags),
        ).get(run, {})

    try:
        return read(tags)
    except Exception:  # noqa: BLE001 - retried tag by tag below
        if len(tags) < 2:
            raise
    out = {}
    for tag in sorted(tags):
        try:
            out.update(read([tag]))
        except Exception as e:  # noqa: BLE001 - one tag, not the run
            warnings.append("%s: cannot be read (%s); left out" % (tag, e))
    return out


def _collect(data_by_tag, tag_by_key, make, usable, warnings):
    """{key: make(data)} for the keys whose tag has data that `make` accepts
    (returns non-None for), of the points `usable` accepts; the others are
    left out with a warning (one per tag)."""
    out = {}
    for key, tag in tag_by_key.items():
        data = data_by_tag.get(tag) or []
        good = [d for d in data if usable(d)]
        if len(good) < len(data):
            bad = [d.step for d in data if not usable(d)]
            warnings.append("%s: not %s %s; left out" % (
                tag, "a number" if usable is _is_number else "a histogram",
                _steps_text(bad)))
        if good:
            value = make(good)
            if value is not None:
                out[key] = value
    return out


# The per-record tensors of a compact gradient family (metadata.compact_gradients).
_COMPACT_GRADIENT = (metadata.GRAD_VARIABLE_STATS, metadata.GRAD_LOG10_HIST)


def _variable_tensors(tag, data, rows, warnings):
    """(steps, values [records, rows, columns] float64, restarts) of a
    per-variable tensor series (TensorDatum in the order written, see
    :func:`_latest`), or None when no record holds a numeric ``[rows, n]``
    tensor (one warning for the records left out; records whose column
    count differs from the last good one's are left out too)."""
    written = _steps(data)
    kept = data if _increasing(written) else _latest(data)
    arrays = [np.asarray(d.numpy) for d in kept]
    good = [a.dtype.kind in "biuf" and a.ndim == 2 and a.shape[0] == rows for a in arrays]
    if any(good):
        columns = [a for a, ok in zip(arrays, good) if ok][-1].shape[1]
        good = [ok and a.shape[1] == columns for a, ok in zip(arrays, good)]
    if not all(good):
        warnings.append("%s: not one row for each of the index's %d variables %s; left out"
                        % (tag, rows, _steps_text([d.step for d, ok in zip(kept, good)
                                                   if not ok])))
    if not any(good):
        return None
    steps = np.array([d.step for d, ok in zip(kept, good) if ok], dtype=np.int64)
    values = np.stack([a for a, ok in zip(arrays, good) if ok]).astype(np.float64)
    return steps, values, int(np.count_nonzero(written[1:] < written[:-1]))


def _compact_gradient_series(index_variables, tags, tensors, contents, warnings):
    """({stat: {path: Series}}, {path: HistogramSeries}) of a compact
    gradient family's variables (`index_variables`, an _IndexVariables)
    from its per-record tensors (`tags`: {GRAD_VARIABLE_STATS or
    GRAD_LOG10_HIST: tag} of those read; `tensors`: {tag: [TensorDatum]};
    `contents`: {tag: series metadata content})."""
    rows = index_variables.count
    stats, log10 = {}, {}
    tag = tags.get(metadata.GRAD_VARIABLE_STATS)
    read = _variable_tensors(tag, tensors.get(tag) or [], rows, warnings) if tag else None
    if read is not None:
        steps, values, restarts = read
        columns = metadata.series_fields(contents.get(tag)).get("columns")
        if not isinstance(columns, list) or len(columns) != values.shape[2]:
            warnings.append("%s: its metadata does not name its %d columns; left out"
                            % (tag, values.shape[2]))
            columns = []
        for j, stat in enumerate(columns):
            if stat not in GRADIENT_VARIABLE_STATS:
                continue  # a statistic of a later version
            stats[stat] = {
                p: Series(steps=steps, values=values[:, index_variables.rows[p], j],
                          restarts=restarts)
                for p in index_variables.paths
                if not (stat == metadata.GRAD_UPDATE_RATIO and p in index_variables.no_update)}
    tag = tags.get(metadata.GRAD_LOG10_HIST)
    read = _variable_tensors(tag, tensors.get(tag) or [], rows, warnings) if tag else None
    if read is not None:
        steps, counts, _ = read
        span = metadata.series_fields(contents.get(tag)).get("range")
        if (isinstance(span, list) and len(span) == 2
                and all(isinstance(x, numbers.Real) and math.isfinite(x) for x in span)
                and span[0] < span[1]):
            edges = np.linspace(float(span[0]), float(span[1]), counts.shape[2] + 1)
            log10 = {p: HistogramSeries(steps=steps, edges=edges,
                                        counts=counts[:, index_variables.rows[p], :])
                     for p in index_variables.paths}
        else:
            warnings.append("%s: its metadata has no bin range; left out" % tag)
    return stats, log10


def read_run(provider, ctx, experiment_id, run, names=None, variables=None,
             include_manifest=True, include_scalars=True, histograms=None):
    """The health records of `run`, as a :class:`RunRecords`.

    `ctx` is the request's RequestContext (None: a fresh one). By default
    everything is read; the other arguments narrow the read, and the tags the
    provider is asked for, to what a caller shows or uses: `names` lists the
    record families to read (None: all), `variables` the gradient variables
    (None: all), `include_manifest` whether to read the manifest,
    `include_scalars` whether to read the scalar series (False: histograms
    only) and `histograms` which histogram statistics to read (a collection
    of PREDICTION_HISTOGRAM_STATS / ``metadata.GRAD_LOG10_HIST``; None: all).
    """
    ctx = _ctx(ctx)
    if names is None:
        health_tags = None
    else:
        health_tags = {metadata.index_tag(n) for n in names}
        health_tags |= {metadata.stat_tag(n, s) for n in names for s in _COMPACT_GRADIENT}
        if include_manifest:
            health_tags.add(metadata.MANIFEST_TAG)
    health, contents, series_contents, read_warnings = {}, {}, {}, []
    if health_tags is None or health_tags:
        contents, series_contents = _health_contents(provider, ctx, experiment_id, run,
                                                     health_tags)
    if contents:
        health = _read(provider.read_tensors, ctx, experiment_id, run,
                       metadata.PLUGIN_NAME, set(contents), read_warnings, INDEX_POINTS)
    values, warnings = _index_values(health)
    warnings = read_warnings + warnings
    train_mode_index = _pop_train_mode_index(values)
    manifest, pred_index, grad_vars = _parse_index(values, warnings)
    if not include_manifest:
        manifest = None
    if variables is not None:
        grad_vars = {name: _narrowed(v, set(variables)) for name, v in grad_vars.items()}
    read_hist = histograms is None or metadata.GRAD_LOG10_HIST in set(histograms)
    compact = {name for name in grad_vars
               if metadata.compact_gradients(contents.get(metadata.index_tag(name)))}

    # The tag of every series to read, keyed by where its data goes.
    pred_tags = {
        name: ({s: metadata.stat_tag(name, s) for s in PREDICTION_SCALAR_STATS},
               {s: metadata.stat_tag(name, s) for s in PREDICTION_HISTOGRAM_STATS})
        for name in pred_index
    }
    grad_tags = {
        name: ({} if name in compact else
               {(s, p): metadata.variable_tag(name, p, s)
                for s in GRADIENT_VARIABLE_STATS for p in v.paths},
               {s: metadata.stat_tag(name, s) for s in GRADIENT_SCALAR_STATS},
               {} if name in compact else
               {p: metadata.variable_tag(name, p, metadata.GRAD_LOG10_HIST) for p in v.paths})
        for name, v in grad_vars.items()
    }
    # Per-variable tensors of compact families: {name: {stat: tag}}.
    compact_tags = {name: {s: metadata.stat_tag(name, s) for s in _COMPACT_GRADIENT
                           if (s == metadata.GRAD_VARIABLE_STATS and include_scalars)
                           or (s == metadata.GRAD_LOG10_HIST and read_hist)}
                    for name in compact if grad_vars[name].paths}
    if not include_scalars:
        pred_tags = {name: ({}, hists) for name, (_, hists) in pred_tags.items()}
        grad_tags = {name: ({}, {}, hists) for name, (_, _, hists) in grad_tags.items()}
    if histograms is not None:
        wanted_hists = set(histograms)
        pred_tags = {name: (scal, {s: t for s, t in hists.items() if s in wanted_hists})
                     for name, (scal, hists) in pred_tags.items()}
        if not read_hist:
            grad_tags = {name: (var_scal, scal, {})
                         for name, (var_scal, scal, _) in grad_tags.items()}
    tm_tags = {
        name: {(s, e["path"]): metadata.variable_tag(name, e["path"], s)
               for s in metadata.TRAIN_MODE_STATS for e in layers}
        for name, layers in train_mode_index.items()
    } if include_scalars else {}
    # The tags to read, by the plugin that holds them (the family's format).
    scalar_tags, hist_tags = collections.defaultdict(set), collections.defaultdict(set)

    def want(name, scalar_maps, hist_maps):
        scalar_plugin, hist_plugin = metadata.series_plugins(
            contents.get(metadata.index_tag(name)))
        for tags in scalar_maps:
            scalar_tags[scalar_plugin].update(tags.values())
        for tags in hist_maps:
            hist_tags[hist_plugin].update(tags.values())

    for name, tags in tm_tags.items():
        want(name, [tags], [])
    for name, (scal, hists) in pred_tags.items():
        want(name, [scal], [hists])
    for name, (var_scal, scal, hists) in grad_tags.items():
        want(name, [var_scal, scal], [hists, compact_tags.get(name, {})])
    scalars, histograms = {}, {}
    for plugin, tags in sorted(scalar_tags.items()):
        if tags:
            scalars.update(_read(provider.read_scalars, ctx, experiment_id, run, plugin,
                                 tags, warnings))
    for plugin, tags in sorted(hist_tags.items()):
        if tags:
            histograms.update(_read(provider.read_tensors, ctx, experiment_id, run, plugin,
                                    tags, warnings))

    predictions = {}
    for name, value in pred_index.items():
        scal, hists = pred_tags[name]
        num_classes = _num_classes(name, value, warnings)
        from_logits = value.get("from_logits")
        predictions[name] = PredictionRecords(
            name=name,
            task=str(value.get("task") or metadata.TASK_MULTICLASS),
            num_classes=num_classes,
            from_logits=None if from_logits is None else bool(from_logits),
            has_labels=bool(value.get("has_labels")),
            scalars=_collect(scalars, scal, _series, _is_number, warnings),
            histograms=_collect(histograms, hists, _histogram_series, _is_histogram,
                                warnings),
            index=dict(value),
        )

    gradients = {}
    for name, v in grad_vars.items():
        var_scal, scal, hists = grad_tags[name]
        if name in compact_tags:
            stats, log10_histograms = _compact_gradient_series(
                v, compact_tags[name], histograms, series_contents, warnings)
        else:  # format 1 or 2 (or a compact family without variables): a tag a series
            stats = {}
            for (s, p), series in _collect(scalars, var_scal, _series, _is_number,
                                           warnings).items():
                stats.setdefault(s, {})[p] = series
            log10_histograms = _collect(histograms, hists, _histogram_series,
                                        _is_histogram, warnings)
        gradients[name] = GradientRecords(
            name=name,
            variables=v.paths,
            shapes=v.shapes,
            stats=stats,
            log10_histograms=log10_histograms,
            scalars=_collect(scalars, scal, _series, _is_number, warnings),
        )

    train_mode = {}
    for name, layers in train_mode_index.items():
        stats = {}
        for (s, p), series in _collect(scalars, tm_tags.get(name, {}), _series, _is_number,
                                       warnings).items():
            stats.setdefault(s, {})[p] = series
        train_mode[name] = TrainModeRecords(name=name, layers=layers, stats=stats)

    for w in warnings:
        logger.warning("run %s: %s", run, w)
    return RunRecords(
        run=run,
        manifest=manifest,
        predictions=predictions,
        gradients=gradients,
        warnings=warnings,
        train_mode=train_mode,
    )
