"""The Health routes' JSON: records and run summaries shaped for the frontend.

Series are downsampled to the chart's width (:func:`downsample_indices`,
keeping the first and last point); non-finite numbers become the strings
``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` (``diagnosis.json_floats``).
Pure functions of :mod:`tb_plugin.reader`'s records; the serving is
:mod:`tb_plugin.health_plugin`'s.

This module imports no TensorFlow.
"""

import numpy as np

from tb_plugin import diagnosis
from tb_plugin import metadata
from tb_plugin import reader

# Per-variable gradient statistics sent by the gradients route, in order.
GRADIENT_MATRIX_STATS = (
    metadata.GRAD_NORM,
    metadata.GRAD_MAX_ABS,
    metadata.GRAD_ZERO_FRACTION,
    metadata.GRAD_UPDATE_RATIO,
    metadata.GRAD_WEIGHT_NORM,
    metadata.GRAD_NONFINITE,
)
# Statistics for which a downsampled cell shows the largest value of the steps
# it stands for rather than the last one, so that no event is hidden.
MAX_IN_BUCKET_STATS = frozenset([metadata.GRAD_NONFINITE, metadata.PRED_NONFINITE])


def int_list(values):
    return np.asarray(values, dtype=np.int64).tolist()




def downsample_indices(n, width):
    """Indices of at most `width` of `n` points, evenly spread, keeping the
    first and the last."""
    if n <= width:
        return np.arange(n)
    if width <= 1:
        return np.array([n - 1])
    idx = np.round(np.linspace(0, n - 1, width)).astype(np.int64)
    return np.unique(idx)


def series_json(series, width):
    steps = np.asarray(series.steps)
    values = np.asarray(series.values, dtype=np.float64)
    idx = downsample_indices(len(steps), width)
    return {"steps": int_list(steps[idx]),
            "values": diagnosis.json_floats(values[idx])}


def histogram_json(hist, width):
    steps = np.asarray(hist.steps)
    counts = np.asarray(hist.counts, dtype=np.float64)
    idx = downsample_indices(len(steps), width)
    if counts.ndim == 2 and len(steps):
        rows = counts[idx]
    else:
        rows = np.zeros((0, max(len(np.asarray(hist.edges)) - 1, 0)))
    out = {
        "edges": diagnosis.json_floats(hist.edges),
        "steps": int_list(steps[idx]),
        "counts": diagnosis.json_floats(rows),
    }
    step_edges = getattr(hist, "step_edges", None)
    if step_edges is not None and len(steps):
        # Edges that change from record to record (regression outputs): the
        # edges of each returned record; "edges" holds the last record's.
        out["step_edges"] = diagnosis.json_floats(np.asarray(step_edges)[idx])
    return out


def bucket_values(series, columns, use_max):
    """Values of `series` at the column steps of a matrix.

    Column j stands for the steps in (columns[j-1], columns[j]] (the first
    column: steps <= columns[0]). The cell holds the series' last point in that
    interval (or its largest when `use_max`), and is empty when none falls in
    it: the loaders may keep different steps for different tags.
    """
    steps = np.asarray(series.steps)
    values = np.asarray(series.values, dtype=np.float64)
    ncol = len(columns)
    out = np.full(ncol, np.nan)
    present = np.zeros(ncol, dtype=bool)
    if len(steps) == 0 or ncol == 0:
        return out, present
    hi = np.searchsorted(steps, columns, side="right")  # end of bucket j
    lo = np.concatenate([[0], hi[:-1]])  # start of bucket j
    present = hi > lo
    if not present.any():
        return out, present
    if use_max:
        # Buckets are contiguous (lo[j+1] == hi[j]) and the last column is
        # the largest step, so reduceat over the non-empty buckets' starts
        # covers exactly each bucket. np.maximum keeps NaN.
        starts = lo[present]
        if hi[-1] < len(values):
            values = values[:hi[-1]]
        out[present] = np.maximum.reduceat(values, starts)
    else:
        out[present] = values[hi[present] - 1]
    return out, present




def predictions_json(run, name, rec, width):
    """A prediction family's series and histograms (reader.PredictionRecords)."""
    return {
        "run": run,
        "name": name,
        "task": rec.task,
        "num_classes": rec.num_classes,
        "from_logits": rec.from_logits,
        "has_labels": rec.has_labels,
        "scalars": {
            stat: series_json(series, width)
            for stat, series in sorted(rec.scalars.items())
        },
        "histograms": {
            stat: histogram_json(hist, width)
            for stat, hist in sorted(rec.histograms.items())
        },
    }

def gradients_json(run, name, rec, width):
    """A gradient family (reader.GradientRecords) as ``[variable][step]``
    matrices of GRADIENT_MATRIX_STATS on common, downsampled steps."""
    variables = list(rec.variables)
    # Columns: the steps of all per-variable series, downsampled.
    columns = rec.steps[downsample_indices(len(rec.steps), width)]
    matrix = {}
    for stat in GRADIENT_MATRIX_STATS:
        per_var = rec.stats.get(stat)
        if not per_var:
            continue
        values = np.full((len(variables), len(columns)), np.nan)
        present = np.zeros((len(variables), len(columns)), dtype=bool)
        for i, path in enumerate(variables):
            series = per_var.get(path)
            if series is None:
                continue
            values[i], present[i] = bucket_values(
                series, columns, stat in MAX_IN_BUCKET_STATS
            )
        matrix[stat] = diagnosis.json_floats(values, present)
    # The quantity vanishing_gradients judges, not the recorded
    # kernel/kernel scalar: the chart and the rule must agree.
    flr = reader.Series(*diagnosis.first_layer_gradient_ratio(rec))
    return {
        "run": run,
        "name": name,
        "variables": variables,
        "shapes": {p: list(rec.shapes.get(p, [])) for p in variables},
        "steps": int_list(columns),
        "matrix": matrix,
        "first_last_ratio": series_json(flr, width),
        "thresholds": gradient_thresholds(),
    }

def train_mode_layer_json(rec, entry, width):
    """One layer of a train-mode family: its index entry and its series
    (flags 1/0; for the Dropout family the expected zero fraction (had it
    trained), the observed one and its standard error; for
    BatchNormalization the moving statistics' movement between records)."""
    path = entry["path"]
    out = {k: entry.get(k) for k in ("path", "class", "kind", "rate", "flag", "caller",
                                     "trainable", "momentum")}
    series = {}
    names = {metadata.TM_TRAINING: "training", metadata.TM_ROOT_TRAINING: "root_training",
             metadata.TM_BY_CALLER: "inference_by_caller", metadata.TM_ZERO_IN: "zero_in",
             metadata.TM_ZERO_OUT: "observed_zero_fraction",
             metadata.TM_CHANGED: "changed_fraction", metadata.TM_MEAN_CHANGE: "mean_change",
             metadata.TM_VARIANCE_CHANGE: "variance_change"}
    for stat, key in names.items():
        s = rec.series(stat, path)
        if s is not None and len(s):
            series[key] = series_json(s, width)
    zin, units = rec.series(metadata.TM_ZERO_IN, path), rec.series(metadata.TM_UNITS, path)
    rate = entry.get("rate")
    if (entry.get("kind") == "dropout" and isinstance(rate, (int, float)) and zin is not None
            and units is not None and len(zin) and len(units) == len(zin)):
        z = np.asarray(zin.values, dtype=np.float64)
        n = np.maximum(np.asarray(units.values, dtype=np.float64), 1.0)
        expected = z + (1.0 - z) * rate
        se = np.sqrt(np.maximum((1.0 - z) * rate * (1.0 - rate), 0.0) / n)
        series["expected_zero_fraction"] = series_json(
            reader.Series(steps=zin.steps, values=expected), width)
        series["standard_error"] = series_json(reader.Series(steps=zin.steps, values=se), width)
        # What the layer itself dropped: the share of its nonzero inputs it
        # zeroed (its input's own zeros, e.g. after a ReLU, are not its doing),
        # against `rate`; the picture that shows a Dropout that never drops.
        zout = rec.series(metadata.TM_ZERO_OUT, path)
        if zout is not None and np.array_equal(zout.steps, zin.steps):
            live = np.maximum(1.0 - z, 1e-12)
            dropped = np.clip((np.asarray(zout.values, dtype=np.float64) - z) / live, 0.0, 1.0)
            series["dropped_fraction"] = series_json(
                reader.Series(steps=zin.steps, values=dropped), width)
            series["dropped_standard_error"] = series_json(
                reader.Series(steps=zin.steps, values=se / live), width)
    out["series"] = series
    return out


def empty_summary(run):
    return {
        "run": run,
        "predictions": [],
        "gradients": [],
        "has_manifest": False,
        "train_mode": [],
    }


def run_summary(records, run):
    return {
        "run": run,
        "predictions": [
            {"name": name, "task": rec.task, "num_classes": rec.num_classes}
            for name, rec in sorted(records.predictions.items())
        ],
        "gradients": [
            {"name": name, "variables": list(rec.variables)}
            for name, rec in sorted(records.gradients.items())
        ],
        "has_manifest": records.manifest is not None,
        "train_mode": [
            {"name": name, "layers": [e["path"] for e in rec.layers]}
            for name, rec in sorted(getattr(records, "train_mode", {}).items())
        ],
    }


def gradient_thresholds():
    t = diagnosis.Thresholds()
    return {
        "update_ratio_guideline": t.update_ratio_guideline,
        "vanishing_ratio": t.vanishing_ratio,
        "exploding_ratio": t.exploding_ratio,
        "update_ratio_low": t.update_ratio_low,
    }
