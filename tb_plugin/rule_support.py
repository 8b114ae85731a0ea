"""What every diagnosis rule uses: persistence over records (streaks with
gaps, warm-up), prediction records pooled into windows of examples,
number formatting for messages, variable and layer names, and running a
rule so that its failure hides no other rule's findings.

Pure Python + numpy; imports no TensorFlow.
"""

import logging
import math

import numpy as np

from tb_plugin import metadata
from tb_plugin.findings import Finding, SEVERITY_ERROR

logger = logging.getLogger(__name__)


def round_sig(x, digits=4):
    """A float rounded to `digits` significant digits, for evidence."""
    x = float(x)
    if not math.isfinite(x) or x == 0:
        return x
    return float("%.*g" % (digits, x))


def fmt(x):
    x = float(x)
    if not math.isfinite(x):
        return str(x)
    if x == 0:
        return "0"
    if abs(x) >= 1e4 or abs(x) < 1e-3:
        return "%.1e" % x
    return "%.3g" % x


def what(family, kind="predictions"):
    """How messages name a record family: "predictions", "'probe' predictions"."""
    return kind if family.name == kind else "%r %s" % (family.name, kind)


def pct(x):
    x = float(x)
    return "%d%%" % round(100 * x) if math.isfinite(x) else str(x)


def values_at(series, steps):
    """The values of `series` at or before each of `steps` (0 before its
    first point or without a series)."""
    if series is None or len(series) == 0:
        return np.zeros(len(steps))
    idx = np.searchsorted(series.steps, steps, side="right") - 1
    return np.where(idx >= 0, series.values[np.maximum(idx, 0)], 0.0)


def streaks(cond):
    """Maximal runs of True in a boolean array: list of (start, end) inclusive."""
    edges = np.diff(np.concatenate([[0], np.asarray(cond, dtype=np.int8), [0]]))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1) - 1
    return list(zip(starts.tolist(), ends.tolist()))


class Span:
    """The step range of a run, for warm-up computations."""

    def __init__(self, first, last):
        self.first = int(first)
        self.last = int(last)

    def warmup_step(self, fraction):
        return self.first + fraction * (self.last - self.first)


def fill_gaps(cond, max_gap):
    """`cond` with runs of at most `max_gap` False records between two True
    ones set to True."""
    filled = np.asarray(cond, dtype=bool).copy()
    true = np.flatnonzero(filled)
    for i, j in zip(true[:-1], true[1:]):
        if 1 < j - i <= max_gap + 1:
            filled[i + 1:j] = True
    return filled


def sustained(steps, cond, span, th, state=True, weights=None):
    """The streak over which `cond` is sustained, as (start, end) indices.

    `state` rules ignore the warm-up; their streak may pass over isolated
    records where `cond` dips (up to ~10% of the records after the warm-up
    in a row, while it holds on `persist_density` of the streak), must
    cover `persist_fraction` of the examples after the warm-up, and must
    hold on `persist_records` records or `persist_examples` examples.
    `weights` are the examples per record (1 each by default). Otherwise
    (events such as an explosion, which often ends the run)
    `persist_records` consecutive records anywhere suffice. The returned
    streak is extended backwards over the warm-up while `cond` holds, so
    that its start is when it began.
    """
    n = len(steps)
    cond = np.asarray(cond, dtype=bool)
    if n == 0:
        return None
    if not state:
        best = None
        for a, b in streaks(cond):
            if b - a + 1 >= th.persist_records and (best is None or b - a > best[1] - best[0]):
                best = (a, b)
        return best
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    eligible = steps >= span.warmup_step(th.warmup_fraction)
    n_eligible = int(eligible.sum())
    filled = fill_gaps(cond, max(2, int(math.ceil(0.1 * n_eligible))))
    need = th.persist_fraction * float(w[eligible].sum())
    best = None
    for a, b in streaks(filled & eligible):
        seg = slice(a, b + 1)
        held = cond[seg] & eligible[seg]
        if (float(w[seg][eligible[seg]].sum()) < need
                or held.sum() < th.persist_density * (b - a + 1)
                or (held.sum() < th.persist_records
                    and float(w[seg][held].sum()) < th.persist_examples)):
            continue
        if best is None or b - a > best[1] - best[0]:
            best = (a, b)
    if best is None:
        return None
    a, b = best
    while a > 0 and cond[a - 1]:
        a -= 1
    while b > a and not cond[b]:
        b -= 1
    return a, b


class Pooled:
    """A prediction family's records pooled into windows of consecutive
    records holding at least `window_examples` examples (a record with that
    many is a window of its own): numbers are averaged weighted by examples,
    class counts summed. `steps` is each window's last step, `weights` its
    examples."""

    def __init__(self, pred, th):
        self.pred = pred
        count = pred.scalars.get(metadata.PRED_COUNT)
        grid = count if count is not None and len(count) else next(
            (s for s in pred.scalars.values() if len(s)), None)
        if grid is None:
            self.steps = np.zeros(0, dtype=np.int64)
            self.weights = np.zeros(0)
            self._group = np.zeros(0, dtype=np.int64)
            self._record_steps = self.steps
            self._w = self.weights
            return
        self._record_steps = grid.steps
        if count is not None and len(count):
            w = count.values.astype(np.float64)
            w = np.where(np.isfinite(w) & (w > 0), w, 0.0)
            window = th.window_examples
        else:  # examples unknown: every record is a window of weight 1
            w = np.ones(len(grid))
            window = 1
        self._w = w
        group = np.empty(len(w), dtype=np.int64)
        g, acc = 0, 0.0
        for i, wi in enumerate(w):
            group[i] = g
            acc += wi
            if acc >= window:
                g, acc = g + 1, 0.0
        if 0 < acc and g > 0:  # a short last window joins the one before
            group[group == g] = g - 1
        self._group = group
        n = int(group.max()) + 1 if len(group) else 0
        last = np.zeros(n, dtype=np.int64)
        last[group] = np.arange(len(group))  # the last record of each window
        self.steps = grid.steps[last]
        self.weights = np.bincount(group, weights=w, minlength=n)

    def __len__(self):
        return len(self.steps)

    def scalar(self, stat):
        """Per window: the example-weighted mean of `stat` (NaN where a record
        is not finite), or None without the series."""
        s = self.pred.scalars.get(stat)
        if s is None or len(s) == 0:
            return None
        v = values_at(s, self._record_steps)
        finite = np.isfinite(v)
        w = np.where(finite, self._w + 1e-9, 0.0)  # a record of 0 rows still counts
        n = len(self.steps)
        den = np.bincount(self._group, weights=w, minlength=n)
        num = np.bincount(self._group, weights=np.where(finite, v, 0.0) * w, minlength=n)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = num / den
        # A window with a non-finite record is not judged.
        out[np.bincount(self._group, weights=~finite, minlength=n) > 0] = np.nan
        return out

    def counts(self, stat):
        """Per window: the summed class counts of histogram `stat` (rows),
        or None without it."""
        h = self.pred.histograms.get(stat)
        if h is None or len(h.steps) == 0:
            return None
        idx = np.searchsorted(h.steps, self._record_steps, side="right") - 1
        have = idx >= 0
        rows = np.where(have[:, None], h.counts[np.maximum(idx, 0)], 0.0)
        out = np.zeros((len(self.steps), rows.shape[1]))
        np.add.at(out, self._group, rows)
        return out


def nanmedian(x):
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    return float(np.median(x)) if x.size else float("nan")


def put_median(evidence, key, series, first, last):
    """evidence[key] = median of `series` over steps first..last, if it has any."""
    if series is None or len(series) == 0:
        return
    m = (series.steps >= first) & (series.steps <= last)
    if m.any():
        evidence[key] = round_sig(nanmedian(series.values[m]))


NOT_KERNELS = ("bias", "beta", "gamma", "moving_mean", "moving_variance")


def is_kernel(path, shape):
    leaf = path.rsplit("/", 1)[-1]
    if leaf in NOT_KERNELS:  # MultiHeadAttention's biases are [heads, dim]
        return False
    if shape:
        return len(shape) >= 2
    return leaf in ("kernel", "embeddings", "depthwise_kernel", "pointwise_kernel",
                    "recurrent_kernel", "weight", "weights", "W")


def layer_of(path):
    return path.rsplit("/", 1)[0] if "/" in path else path


def short_path(path):
    """'sequential/dense_1/kernel' -> 'dense_1/kernel' for messages."""
    parts = path.split("/")
    return "/".join(parts[-2:]) if len(parts) > 2 else path


def run_span(run):
    """The step range of the run's prediction scalars and gradient statistics."""
    parts = [s.steps for p in run.predictions.values() for s in p.scalars.values()]
    parts += [g.steps for g in run.gradients.values()]
    parts += [s.steps for t in (getattr(run, "train_mode", None) or {}).values()
              for per_layer in t.stats.values() for s in per_layer.values()]
    parts = [steps for steps in parts if len(steps)]
    if not parts:
        return None
    return Span(min(int(steps.min()) for steps in parts),
                 max(int(steps.max()) for steps in parts))


def window_finding(kind, steps, a, b, evidence, message, suggestion, layer=None,
                    severity=SEVERITY_ERROR):
    """A Finding over the records a..b (indices into `steps`)."""
    return Finding(kind=kind, severity=severity, layer=layer, first_step=int(steps[a]),
                   last_step=int(steps[b]), evidence=evidence, message=message,
                   suggestion=suggestion)




def flagged_records(pred, stat, flag):
    """(series of `stat`, indices of the records `flag(values)` marks, first
    and last step marked), or None when no record is marked."""
    s = pred.scalars.get(stat)
    if s is None or len(s) == 0:
        return None
    idx = np.flatnonzero(flag(s.values))
    if not len(idx):
        return None
    return s, idx, int(s.steps[idx[0]]), int(s.steps[idx[-1]])




def output_layer_name(run):
    if isinstance(run.manifest, dict):
        name = run.manifest.get("output_layer")
        if isinstance(name, str):
            return name
    return None


def run_rule(run, rule, *args):
    """``rule(*args)``: the findings of one rule on `run`. A rule that fails
    gives none and a warning on the run (``run.warnings``, logged), so that
    the other rules' findings stand. Arithmetic on NaN and Inf, which records
    may hold (the nonfinite rules report them), raises no numpy warning."""
    try:
        with np.errstate(all="ignore"):
            return rule(*args)
    except Exception as e:  # noqa: BLE001 - one rule must not hide the others
        warning = "rule %s failed (%s: %s); the findings it makes are missing" % (
            rule.__name__.lstrip("_"), type(e).__name__, e)
        if warning not in run.warnings:
            run.warnings.append(warning)
            logger.warning("run %s: %s", run.run, warning)
        return []
