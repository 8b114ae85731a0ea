"""Reads the records of the Health plugin back from a TensorBoard data provider.

This is the read side of the on-disk format described in
:mod:`tb_plugin.metadata`: the ``health`` index summaries say which record
families a run holds (predictions, gradients and, for gradients, the
variables in depth order); the numbers and distributions are ordinary
``scalars`` and ``histograms`` summaries under ``health/...`` tags.

Reading a run costs three provider calls, whatever its size: one
``read_tensors`` over the run's ``health`` summaries (index + manifest, a
handful of points), then one ``read_scalars`` and one ``read_tensors``
(histograms) whose ``run_tag_filter`` names exactly the run's health tags.
Every stored point is returned (``downsample`` is larger than any reservoir).

This module imports no TensorFlow.
"""

import dataclasses
import json
import logging
import os
from typing import Dict, List, Optional

import numpy as np

from tensorboard import context as tb_context
from tensorboard.data import provider as provider_lib

from tb_plugin import metadata

logger = logging.getLogger(__name__)

# Larger than any reservoir of either loader (scalars keep 1000 points per
# tag by default, histograms 500; users may raise it with --samples_per_plugin).
DOWNSAMPLE_ALL = 10**9

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
)
PREDICTION_HISTOGRAM_STATS = (
    metadata.PRED_TOP1_HIST,
    metadata.PRED_CLASS_PROB_HIST,
    metadata.PRED_PREDICTED_CLASSES,
    metadata.PRED_LABEL_CLASSES,
    metadata.PRED_OUTPUT_HIST,
)
GRADIENT_VARIABLE_STATS = (
    metadata.GRAD_NORM,
    metadata.GRAD_MAX_ABS,
    metadata.GRAD_ZERO_FRACTION,
    metadata.GRAD_NONFINITE,
    metadata.GRAD_WEIGHT_NORM,
    metadata.GRAD_UPDATE_RATIO,
)
GRADIENT_SCALAR_STATS = (metadata.GRAD_FIRST_LAST_RATIO,)


@dataclasses.dataclass
class Series:
    """One number per record, sorted by step."""

    steps: np.ndarray  # int64 (n,)
    values: np.ndarray  # float64 (n,)

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


@dataclasses.dataclass
class GradientRecords:
    name: str
    variables: List[str]  # depth order, input to output
    shapes: Dict[str, List[int]]
    stats: Dict[str, Dict[str, Series]]  # stat -> variable path -> Series
    log10_histograms: Dict[str, HistogramSeries]  # variable path -> histograms
    scalars: Dict[str, Series]  # first_last_ratio


@dataclasses.dataclass
class RunRecords:
    run: str
    manifest: Optional[dict]
    predictions: Dict[str, PredictionRecords]
    gradients: Dict[str, GradientRecords]
    # Problems met while reading (bad JSON, odd tensors); the run is still
    # returned with whatever could be read.
    warnings: List[str] = dataclasses.field(default_factory=list)

    @property
    def has_data(self):
        return bool(self.predictions or self.gradients)


def open_logdir(logdir):
    """A fully loaded Python-loader data provider over `logdir`.

    Returns ``(provider, experiment_id)``. Runs are named as TensorBoard
    names them (their path relative to `logdir`, e.g. ``exp1/train``).
    Raises ``FileNotFoundError`` if `logdir` is not a directory.
    """
    # Imported here: pulling in the multiplexer is the slow part of importing
    # this module and callers that only want the dataclasses should not pay.
    from tensorboard.backend.event_processing import data_ingester
    from tensorboard.backend.event_processing import data_provider
    from tensorboard.backend.event_processing import plugin_event_multiplexer

    logdir = os.path.expanduser(logdir)
    if not os.path.isdir(logdir):
        raise FileNotFoundError("no such log directory: %s" % logdir)
    multiplexer = plugin_event_multiplexer.EventMultiplexer(
        size_guidance=data_ingester.DEFAULT_SIZE_GUIDANCE,
        tensor_size_guidance=dict(data_ingester.DEFAULT_TENSOR_SIZE_GUIDANCE),
        purge_orphaned_data=True,
    )
    multiplexer.AddRunsFromDirectory(logdir)
    multiplexer.Reload()
    return data_provider.MultiplexerDataProvider(multiplexer, logdir), ""


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


def _series(data):
    """A Series from a list of ScalarDatum, sorted by step (stable)."""
    steps = np.array([d.step for d in data], dtype=np.int64)
    values = np.array([d.value for d in data], dtype=np.float64)
    order = np.argsort(steps, kind="stable")
    return Series(steps=steps[order], values=values[order])


def _histogram_series(data):
    """A HistogramSeries from a list of TensorDatum of [bins, 3] tensors.

    Records whose tensor is not [bins, 3] are dropped. If the bin count
    changes between records, records with the last record's bin count are
    kept.
    """
    rows = []
    for d in data:
        arr = np.asarray(d.numpy, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[1] != 3 or arr.shape[0] == 0:
            continue
        rows.append((int(d.step), arr))
    if not rows:
        return None
    rows.sort(key=lambda r: r[0])
    bins = rows[-1][1].shape[0]
    rows = [r for r in rows if r[1].shape[0] == bins]
    steps = np.array([r[0] for r in rows], dtype=np.int64)
    all_edges = np.stack(
        [np.concatenate([r[1][:, 0], r[1][-1:, 1]]) for r in rows]
    )
    counts = np.stack([r[1][:, 2] for r in rows])
    same = np.all(all_edges == all_edges[-1:], axis=None) if len(rows) else True
    return HistogramSeries(
        steps=steps,
        edges=all_edges[-1].copy(),
        counts=counts,
        step_edges=None if same else all_edges,
    )


def _index_values(tensors_for_run):
    """Latest decoded JSON per health tag: {tag: (step, value)}."""
    out = {}
    bad = []
    for tag, data in tensors_for_run.items():
        # Newest first, so that a single bad record does not hide the others.
        for d in sorted(data, key=lambda d: d.step, reverse=True):
            try:
                out[tag] = (int(d.step), _decode_json(d.numpy))
                break
            except (ValueError, TypeError, UnicodeDecodeError) as e:
                bad.append("%s at step %d: %s" % (tag, d.step, e))
    return out, bad


def read_run(provider, ctx, experiment_id, run):
    """All the health records of `run`, as a :class:`RunRecords`.

    `ctx` is the request's RequestContext (None: a fresh one).
    """
    ctx = _ctx(ctx)
    warnings = []
    health = provider.read_tensors(
        ctx,
        experiment_id=experiment_id,
        plugin_name=metadata.PLUGIN_NAME,
        downsample=DOWNSAMPLE_ALL,
        run_tag_filter=provider_lib.RunTagFilter(runs=[run]),
    ).get(run, {})
    values, bad = _index_values(health)
    warnings.extend("unreadable health summary %s" % b for b in bad)

    manifest = None
    if metadata.MANIFEST_TAG in values:
        manifest = values.pop(metadata.MANIFEST_TAG)[1]
        if not isinstance(manifest, dict):
            warnings.append("manifest is not a JSON object; ignored")
            manifest = None

    pred_index = {}
    grad_index = {}
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
            grad_index[name] = value
        else:
            warnings.append("health summary %s has unknown kind %r; ignored" % (tag, kind))

    # Gradient variables: accept both {"path", "shape"} objects and bare paths.
    grad_vars = {}
    for name, value in grad_index.items():
        paths, shapes = [], {}
        for v in value["variables"]:
            if isinstance(v, dict) and isinstance(v.get("path"), str):
                paths.append(v["path"])
                shape = v.get("shape")
                shapes[v["path"]] = list(shape) if isinstance(shape, list) else []
            elif isinstance(v, str):
                paths.append(v)
                shapes[v] = []
        grad_vars[name] = (paths, shapes)

    scalar_tags = set()
    hist_tags = set()
    for name in pred_index:
        scalar_tags.update(metadata.stat_tag(name, s) for s in PREDICTION_SCALAR_STATS)
        hist_tags.update(metadata.stat_tag(name, s) for s in PREDICTION_HISTOGRAM_STATS)
    for name, (paths, _) in grad_vars.items():
        scalar_tags.update(metadata.stat_tag(name, s) for s in GRADIENT_SCALAR_STATS)
        for p in paths:
            scalar_tags.update(
                metadata.variable_tag(name, p, s) for s in GRADIENT_VARIABLE_STATS
            )
            hist_tags.add(metadata.variable_tag(name, p, metadata.GRAD_LOG10_HIST))

    scalars = {}
    if scalar_tags:
        scalars = provider.read_scalars(
            ctx,
            experiment_id=experiment_id,
            plugin_name="scalars",
            downsample=DOWNSAMPLE_ALL,
            run_tag_filter=provider_lib.RunTagFilter(runs=[run], tags=scalar_tags),
        ).get(run, {})
    histograms = {}
    if hist_tags:
        histograms = provider.read_tensors(
            ctx,
            experiment_id=experiment_id,
            plugin_name="histograms",
            downsample=DOWNSAMPLE_ALL,
            run_tag_filter=provider_lib.RunTagFilter(runs=[run], tags=hist_tags),
        ).get(run, {})

    predictions = {}
    for name, value in pred_index.items():
        pred_scalars = {}
        for s in PREDICTION_SCALAR_STATS:
            data = scalars.get(metadata.stat_tag(name, s))
            if data:
                pred_scalars[s] = _series(data)
        pred_hists = {}
        for s in PREDICTION_HISTOGRAM_STATS:
            data = histograms.get(metadata.stat_tag(name, s))
            if data:
                h = _histogram_series(data)
                if h is not None:
                    pred_hists[s] = h
        try:
            num_classes = int(value.get("num_classes") or 1)
        except (TypeError, ValueError):
            num_classes = 1
        from_logits = value.get("from_logits")
        predictions[name] = PredictionRecords(
            name=name,
            task=str(value.get("task") or metadata.TASK_MULTICLASS),
            num_classes=num_classes,
            from_logits=None if from_logits is None else bool(from_logits),
            has_labels=bool(value.get("has_labels")),
            scalars=pred_scalars,
            histograms=pred_hists,
        )

    gradients = {}
    for name, (paths, shapes) in grad_vars.items():
        stats = {}
        for s in GRADIENT_VARIABLE_STATS:
            per_var = {}
            for p in paths:
                data = scalars.get(metadata.variable_tag(name, p, s))
                if data:
                    per_var[p] = _series(data)
            if per_var:
                stats[s] = per_var
        log10 = {}
        for p in paths:
            data = histograms.get(metadata.variable_tag(name, p, metadata.GRAD_LOG10_HIST))
            if data:
                h = _histogram_series(data)
                if h is not None:
                    log10[p] = h
        grad_scalars = {}
        for s in GRADIENT_SCALAR_STATS:
            data = scalars.get(metadata.stat_tag(name, s))
            if data:
                grad_scalars[s] = _series(data)
        gradients[name] = GradientRecords(
            name=name,
            variables=paths,
            shapes=shapes,
            stats=stats,
            log10_histograms=log10,
            scalars=grad_scalars,
        )

    for w in warnings:
        logger.warning("run %s: %s", run, w)
    return RunRecords(
        run=run,
        manifest=manifest,
        predictions=predictions,
        gradients=gradients,
        warnings=warnings,
    )
