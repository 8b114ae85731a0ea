"""Rules that turn the recorded health statistics into findings.

Each rule looks at one TensorBoard run (:class:`tb_plugin.reader.RunRecords`)
and reports what it sees as :class:`Finding` objects: a kind, a severity, the
variable concerned (if any), the steps over which the problem held, the
numbers that support it and one sentence for the user plus a suggestion.

Precision matters as much as recall: a healthy run must get no finding. So
every rule that describes a *state* of training (collapse, vanishing
gradients, dead units) needs the condition to hold for several consecutive
records, after a warm-up, over a good part of the run — the start of ordinary
training (near-uniform predictions of a freshly initialised classifier,
small gradients of a zero-initialised layer) never qualifies. Non-finite
values and a misconfigured output layer need no persistence: they are never
ordinary.

Pure Python + numpy; imports no TensorFlow.
"""

import dataclasses
import logging
import math
import re
import warnings
from typing import Optional

import numpy as np

from tb_plugin import metadata

logger = logging.getLogger(__name__)

SEVERITY_ERROR = "error"
SEVERITY_WARNING = "warning"
# Worth knowing, not a problem: a run with only info findings is healthy.
SEVERITY_INFO = "info"

KIND_NONFINITE = "nonfinite"
KIND_INVALID_LABELS = "invalid_labels"
KIND_PREDICTION_COLLAPSE = "prediction_collapse"
KIND_CLASS_COLLAPSE = "class_collapse"
KIND_CLASS_BIAS = "class_bias"
KIND_BASELINE = "no_better_than_baseline"
KIND_NOT_GENERALISING = "not_generalising"
KIND_TIED_PREDICTIONS = "tied_predictions"
KIND_VANISHING = "vanishing_gradients"
KIND_EXPLODING = "exploding_gradients"
KIND_LEARNING_RATE = "learning_rate_too_high"
KIND_DEAD_UNITS = "dead_units"
KIND_OUTPUT_ACTIVATION = "output_activation_mismatch"
KIND_CONVERGED = "converged"
KIND_MIXED_FITS = "mixed_fits"
# Layers that behave differently in training (see tb_plugin.train_mode_rules).
KIND_TRAIN_MODE_INACTIVE = "train_mode_inactive"
KIND_TRAIN_MODE_OVERRIDDEN = "train_mode_overridden"
KIND_TRAINING_ARG_MISSING = "training_arg_missing"
KIND_DROPOUT_RATE_ZERO = "dropout_rate_zero"
KIND_FROZEN_BATCHNORM = "frozen_batchnorm"
# Outputs whose predictions were not recorded (see tb_plugin.outputs).
KIND_NOT_COVERED = "not_covered"

KINDS = (
    KIND_NONFINITE,
    KIND_INVALID_LABELS,
    KIND_OUTPUT_ACTIVATION,
    KIND_PREDICTION_COLLAPSE,
    KIND_TIED_PREDICTIONS,
    KIND_CLASS_COLLAPSE,
    KIND_CLASS_BIAS,
    KIND_BASELINE,
    KIND_NOT_GENERALISING,
    KIND_LEARNING_RATE,
    KIND_EXPLODING,
    KIND_VANISHING,
    KIND_DEAD_UNITS,
    KIND_MIXED_FITS,
    KIND_CONVERGED,
    KIND_TRAIN_MODE_INACTIVE,
    KIND_TRAIN_MODE_OVERRIDDEN,
    KIND_TRAINING_ARG_MISSING,
    KIND_DROPOUT_RATE_ZERO,
    KIND_FROZEN_BATCHNORM,
    KIND_NOT_COVERED,
)
# Kinds that the manifest alone shows (see diagnose_manifest): known at step 0.
MANIFEST_KINDS = (KIND_OUTPUT_ACTIVATION, KIND_TRAINING_ARG_MISSING, KIND_DROPOUT_RATE_ZERO,
                  KIND_FROZEN_BATCHNORM, KIND_NOT_COVERED)

STATUS_HEALTHY = "healthy"
STATUS_UNHEALTHY = "unhealthy"
STATUS_NO_DATA = "no_data"
# tb-health check only: a run directory whose event files could not be read
# (see tb_plugin.reader.ReadProblem) and showed no health record.
STATUS_UNREADABLE = "unreadable"


# ---------------------------------------------------------------------------
# Thresholds


@dataclasses.dataclass
class Thresholds:
    """Every number the rules compare against. Override any by keyword.

    The comment on each field says where its default comes from.
    """

    # --- persistence (all "state" rules) ---
    # Records before this fraction of the run's step range are not judged for
    # state rules. AUTOTRAINER (Zhang et al., ICSE'21) likewise judges
    # training-state issues only after judgment_point = 0.3 of training.
    warmup_fraction: float = 0.3
    # A state must hold on at least this many records ("several")...
    persist_records: int = 3
    # ...or on records holding this many examples together (two validation
    # records that each sum 2,000 examples are strong evidence).
    persist_examples: int = 1000
    # The state's streak must cover this fraction of the examples after the
    # warm-up, so a passing transient is not reported (our choice: a
    # majority of the run).
    persist_fraction: float = 0.5
    # Within the streak, isolated records that dip (noise of a small batch)
    # do not break it while the state holds on this fraction of them.
    persist_density: float = 0.8
    # Prediction records are pooled into windows of at least this many
    # examples before they are judged (batch sizes 1-32 make per-record
    # shares 0, 1 or noise).
    window_examples: int = 64

    # --- prediction_collapse ---
    # Mean normalised entropy (entropy / log K; 1 = uniform). All logits 0
    # (seed 000) gives exactly 1. Our choice: 0.98 is still nearly uniform
    # (e.g. K=7 with logits of std ~0.3), while a classifier that has trained
    # for 30% of its steps is far below it.
    collapse_entropy: float = 0.98
    # Regression: output std / target std over the recorded batch. Below 1%
    # the outputs do not follow the inputs (seed 002: "output constant
    # regardless of input"). Our choice; a freshly initialised regression net
    # is at ~0.1-1.
    collapse_std_ratio: float = 0.01

    # --- tied_predictions ---
    # Fraction of rows whose top-1 value occurs more than once. Exact float
    # ties practically never happen in a healthy model, so 10% is already
    # pathological (seed 000: 100%). Our choice.
    tie_fraction: float = 0.1
    # Tie-tolerant accuracy (tf.nn.in_top_k k=1, seed 000's metric) minus
    # argmax accuracy: above 5 points the reported accuracy is overstated.
    tie_accuracy_gap: float = 0.05

    # --- class_collapse ---
    # Share of predictions going to a single class...
    class_collapse_fraction: float = 0.95
    # ...while the labels give that class at most this share (our choice:
    # a 95%-vs-70% gap is far beyond a classifier leaning to the majority).
    class_collapse_label_share: float = 0.7

    # --- class_bias (one class over-predicted, short of class_collapse) ---
    # A class predicted at least this many times as often as it occurs: then
    # at most 1/ratio of its predictions can be right (precision <= l/p),
    # whatever the model's accuracy; a classifier whose errors spread over
    # the classes stays near each label share...
    class_bias_ratio: float = 2.0
    # ...and by at least this share of all examples above its label share:
    # that many inputs are necessarily wrongly given to that one class (the
    # excess alone costs 25 points of accuracy), and it is 4 standard errors
    # of a share even in a window of 64 examples (sd <= 0.5/sqrt(64)).
    # Together they leave out small classes (2% -> 5%) and the binary
    # balanced case (50% -> 100% is class_collapse). Our choice.
    class_bias_excess: float = 0.25

    # --- no_better_than_baseline ---
    # Argmax accuracy within this of the most frequent label's share counts
    # as no better than it (our choice: 2 points)...
    baseline_margin: float = 0.02
    # ...or within this many standard errors of that share, for the
    # examples of the window (sampling noise of small windows).
    baseline_noise_sd: float = 2.0

    # --- not_generalising (train beats the base rate, validation does not) ---
    # Validation examples after the run's midpoint needed to judge: at 256
    # the standard error of an accuracy is <= 3 points, so "at the base
    # rate" is measured, not guessed (2 records of batch 128 or 240 suffice,
    # where the persistence rule wants 3 records or 1,000 examples). Ours.
    generalisation_examples: int = 256
    # Train accuracy above the validation accuracy by at least this over the
    # same steps: the model knows its training examples (our choice).
    generalisation_gap: float = 0.1

    # --- vanishing_gradients ---
    # Gradient norm of an earlier kernel / that of the last kernel.
    # AUTOTRAINER's vanishing rule: first/last < beta_1 = 1e-3.
    vanishing_ratio: float = 1e-3
    # Update-to-weight ratio ||dw|| / ||w||: CS231n (Karpathy, "Neural
    # Networks Part 3": ratio of updates to values "somewhere around 1e-3").
    update_ratio_guideline: float = 1e-3
    # A layer whose update ratio is two orders of magnitude below that
    # guideline...
    update_ratio_low: float = 1e-5
    # ...and 100x below the update ratio of the output layer is not learning
    # (plain low learning rates slow every layer alike; our choice).
    vanishing_update_gap: float = 1e-2

    # --- learning_rate_too_high ---
    # A kernel changing by this share of its norm per step, two records in a row:
    # 300x the guideline (our choice; healthy fits measured at 0.005-0.02
    # with Adam 3e-3, diverging ones at 0.3-5 in their first steps).
    update_ratio_high: float = 0.3

    # --- exploding_gradients ---
    # AUTOTRAINER's exploding rule: first/last gradient norm ratio > beta_3 =
    # 70. Shown by the plugin as a reference band; not a trigger on its own:
    # a ratio cannot see every layer exploding at once.
    exploding_ratio: float = 70.0
    # Growth of a kernel's gradient norm over its own baseline (median of its
    # first records): three orders of magnitude (our choice; healthy runs
    # change gradient norms by ~10x at most, diverging SGD grows them
    # geometrically).
    explode_growth: float = 1e3
    # Records used for the baseline of the growth rule (at least; 10% of a
    # kernel's records when that is more).
    explode_baseline_records: int = 3
    # The baseline is at least this norm, so an explosion is also large in
    # absolute terms: gradients waking up from ~0 (zero-initialised weights)
    # and peaking at 1-200 are not "exploding".
    explode_min_norm: float = 1.0
    # Absolute gradient L2 norm of any kernel: far beyond usual clipping
    # thresholds (clipnorm ~1-10, Pascanu et al. 2013), catches a run that
    # starts exploded (e.g. a huge init) where there is no growth to see.
    explode_abs_norm: float = 1e6

    # --- dead_units ---
    # Fraction of a layer's bias gradient entries that are exactly zero, i.e.
    # units that got no gradient from any example of the batch.
    # AUTOTRAINER's dying-ReLU rule: zero-gradient ratio >= gamma = 0.7.
    dead_fraction: float = 0.7
    # At or above this the layer is (nearly) entirely dead: severity error.
    dead_error_fraction: float = 0.99

    # --- converged (info) ---
    # Train accuracy at or above this while the output layer gets no
    # gradient: nothing is left to learn (our choice).
    converged_accuracy: float = 0.99

    # --- train_mode_inactive (statistical evidence) ---
    # A Dropout that received training=True counts as not dropping when its
    # output's zero fraction is below the expected z_in + (1 - z_in) * rate
    # by this many standard errors of the subsample (our choice: a healthy
    # layer is 6 SE short about once in 10^9 records)...
    train_mode_sd: float = 6.0
    # ...and by at least this share of the expected drops (a large margin in
    # absolute terms too: half the dropout missing).
    train_mode_deficit: float = 0.5

    def to_json(self):
        return dataclasses.asdict(self)


def thresholds_from(overrides=None):
    """A :class:`Thresholds` with `overrides` (a mapping name -> value; values
    may be strings, e.g. from a command line) replacing the defaults.

    Raises ValueError for an unknown name (listing the valid ones) or a bad
    value: integer fields take integers >= 1, the others numbers >= 0 (NaN
    is refused; "inf" turns a rule's threshold off).
    """
    if overrides is None:
        return Thresholds()
    if not hasattr(overrides, "items"):
        raise ValueError("thresholds must be a mapping name -> value, got %r" % (overrides,))
    fields = {f.name: type(f.default) for f in dataclasses.fields(Thresholds)}
    values = {}
    for name, raw in overrides.items():
        if name not in fields:
            raise ValueError("unknown threshold %r; valid names: %s"
                             % (name, ", ".join(fields)))
        try:
            x = None if isinstance(raw, bool) else float(
                raw.strip() if isinstance(raw, str) else raw)
        except (TypeError, ValueError):
            x = None
        if fields[name] is int:
            ok, want = x is not None and x.is_integer() and x >= 1, "an integer >= 1"
        else:
            ok, want = x is not None and x >= 0, "a number >= 0"
        if not ok:
            raise ValueError("threshold %s must be %s, got %r" % (name, want, raw))
        values[name] = int(x) if fields[name] is int else x
    return Thresholds(**values)


def validate_kinds(kinds, argument="kinds"):
    """`kinds` as a tuple, each one of :data:`KINDS`; else ValueError naming
    `argument` (a single string is refused: pass a list or tuple)."""
    if isinstance(kinds, (str, bytes)):
        raise ValueError("%s must be a list or tuple of finding kinds, not the string %r "
                         "(e.g. %s=(%r,))" % (argument, kinds, argument, kinds))
    try:
        kinds = tuple(kinds)
    except TypeError:
        raise ValueError("%s must be a list or tuple of finding kinds, got %r"
                         % (argument, kinds)) from None
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError("%s: unknown finding kind %s; valid kinds: %s"
                         % (argument, ", ".join(map(repr, unknown)), ", ".join(KINDS)))
    return kinds


# ---------------------------------------------------------------------------
# Findings


# JSON has no NaN or infinities: they are sent as these strings (by the
# plugin's routes and tb-health check --json alike).
JSON_NAN = "NaN"
JSON_INFINITY = "Infinity"
JSON_NEGATIVE_INFINITY = "-Infinity"


def json_floats(values, present=None):
    """Floats (a number or an array of any shape) as JSON-able Python values.

    Non-finite values become "NaN", "Infinity" or "-Infinity"; with a
    boolean `present` of the same shape, the cells where it is False become
    None.
    """
    a = np.asarray(values, dtype=np.float64)
    absent = None if present is None else ~np.asarray(present, dtype=bool)
    if np.isfinite(a).all() and (absent is None or not absent.any()):
        return a.tolist()
    out = a.astype(object)
    out[np.isnan(a)] = JSON_NAN
    out[a == np.inf] = JSON_INFINITY
    out[a == -np.inf] = JSON_NEGATIVE_INFINITY
    if absent is not None:
        out[absent] = None
    return out.tolist()


# json_safe cuts containers nested deeper than this (a manifest is a few
# levels deep; a hostile one must not exhaust the stack of whoever sends it).
JSON_MAX_DEPTH = 64
JSON_TOO_DEEP = "(nested more than %d levels deep)" % JSON_MAX_DEPTH


def json_safe(obj):
    """`obj` with numpy scalars/arrays made Python, non-finite floats strings
    (see :func:`json_floats`), bytes decoded, other objects str() and
    containers nested deeper than JSON_MAX_DEPTH replaced by JSON_TOO_DEEP."""
    return _json_safe(obj, JSON_MAX_DEPTH)


def _json_safe(obj, depth):
    if isinstance(obj, (dict, list, tuple, np.ndarray)) and depth == 0:
        return JSON_TOO_DEEP
    if isinstance(obj, dict):
        return {str(k): _json_safe(v, depth - 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v, depth - 1) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_floats(obj) if obj.dtype.kind == "f" else _json_safe(obj.tolist(), depth)
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return json_floats(obj)
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "replace")
    if obj is None or isinstance(obj, str):
        return obj
    return str(obj)


@dataclasses.dataclass
class Finding:
    kind: str
    severity: str  # "error" | "warning"
    layer: Optional[str]  # variable path (or output layer) or None
    first_step: Optional[int]
    last_step: Optional[int]
    evidence: dict
    message: str
    suggestion: str
    # The kind of the run's finding that explains this symptom (see
    # tb_plugin.root_causes), or None.
    caused_by: Optional[str] = None

    def to_json(self):
        """A JSON-able dict; non-finite numbers become "NaN"/"Infinity"/"-Infinity"."""
        return {
            "kind": self.kind,
            "severity": self.severity,
            "layer": self.layer,
            "first_step": None if self.first_step is None else int(self.first_step),
            "last_step": None if self.last_step is None else int(self.last_step),
            "evidence": json_safe(self.evidence),
            "message": self.message,
            "suggestion": self.suggestion,
            "caused_by": self.caused_by,
        }


# ---------------------------------------------------------------------------
# Helpers


def _r(x, digits=4):
    """A float rounded to `digits` significant digits, for evidence."""
    x = float(x)
    if not math.isfinite(x) or x == 0:
        return x
    return float("%.*g" % (digits, x))


def _fmt(x):
    x = float(x)
    if not math.isfinite(x):
        return str(x)
    if x == 0:
        return "0"
    if abs(x) >= 1e4 or abs(x) < 1e-3:
        return "%.1e" % x
    return "%.3g" % x


def _what(family, kind="predictions"):
    """How messages name a record family: "predictions", "'probe' predictions"."""
    return kind if family.name == kind else "%r %s" % (family.name, kind)


def _pct(x):
    x = float(x)
    return "%d%%" % round(100 * x) if math.isfinite(x) else str(x)


def _values_at(series, steps):
    """The values of `series` at or before each of `steps` (0 before its
    first point or without a series)."""
    if series is None or len(series) == 0:
        return np.zeros(len(steps))
    idx = np.searchsorted(series.steps, steps, side="right") - 1
    return np.where(idx >= 0, series.values[np.maximum(idx, 0)], 0.0)


def _streaks(cond):
    """Maximal runs of True in a boolean array: list of (start, end) inclusive."""
    edges = np.diff(np.concatenate([[0], np.asarray(cond, dtype=np.int8), [0]]))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1) - 1
    return list(zip(starts.tolist(), ends.tolist()))


class _Span:
    """The step range of a run, for warm-up computations."""

    def __init__(self, first, last):
        self.first = int(first)
        self.last = int(last)

    def warmup_step(self, fraction):
        return self.first + fraction * (self.last - self.first)


def _fill_gaps(cond, max_gap):
    """`cond` with runs of at most `max_gap` False records between two True
    ones set to True."""
    filled = np.asarray(cond, dtype=bool).copy()
    true = np.flatnonzero(filled)
    for i, j in zip(true[:-1], true[1:]):
        if 1 < j - i <= max_gap + 1:
            filled[i + 1:j] = True
    return filled


def _sustained(steps, cond, span, th, state=True, weights=None):
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
        for a, b in _streaks(cond):
            if b - a + 1 >= th.persist_records and (best is None or b - a > best[1] - best[0]):
                best = (a, b)
        return best
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    eligible = steps >= span.warmup_step(th.warmup_fraction)
    n_eligible = int(eligible.sum())
    filled = _fill_gaps(cond, max(2, int(math.ceil(0.1 * n_eligible))))
    need = th.persist_fraction * float(w[eligible].sum())
    best = None
    for a, b in _streaks(filled & eligible):
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


class _Pooled:
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
        v = _values_at(s, self._record_steps)
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


def _nanmedian(x):
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    return float(np.median(x)) if x.size else float("nan")


def _put_median(evidence, key, series, first, last):
    """evidence[key] = median of `series` over steps first..last, if it has any."""
    if series is None or len(series) == 0:
        return
    m = (series.steps >= first) & (series.steps <= last)
    if m.any():
        evidence[key] = _r(_nanmedian(series.values[m]))


_NOT_KERNELS = ("bias", "beta", "gamma", "moving_mean", "moving_variance")


def _is_kernel(path, shape):
    leaf = path.rsplit("/", 1)[-1]
    if leaf in _NOT_KERNELS:  # MultiHeadAttention's biases are [heads, dim]
        return False
    if shape:
        return len(shape) >= 2
    return leaf in ("kernel", "embeddings", "depthwise_kernel", "pointwise_kernel",
                    "recurrent_kernel", "weight", "weights", "W")


def _layer_of(path):
    return path.rsplit("/", 1)[0] if "/" in path else path


def _short(path):
    """'sequential/dense_1/kernel' -> 'dense_1/kernel' for messages."""
    parts = path.split("/")
    return "/".join(parts[-2:]) if len(parts) > 2 else path


def _run_span(run):
    """The step range of the run's prediction scalars and gradient statistics."""
    parts = [s.steps for p in run.predictions.values() for s in p.scalars.values()]
    parts += [g.steps for g in run.gradients.values()]
    parts += [s.steps for t in (getattr(run, "train_mode", None) or {}).values()
              for per_layer in t.stats.values() for s in per_layer.values()]
    parts = [steps for steps in parts if len(steps)]
    if not parts:
        return None
    return _Span(min(int(steps.min()) for steps in parts),
                 max(int(steps.max()) for steps in parts))


def _window_finding(kind, steps, a, b, evidence, message, suggestion, layer=None,
                    severity=SEVERITY_ERROR):
    """A Finding over the records a..b (indices into `steps`)."""
    return Finding(kind=kind, severity=severity, layer=layer, first_step=int(steps[a]),
                   last_step=int(steps[b]), evidence=evidence, message=message,
                   suggestion=suggestion)


# ---------------------------------------------------------------------------
# Rules: predictions


def _flagged_records(pred, stat, flag):
    """(series of `stat`, indices of the records `flag(values)` marks, first
    and last step marked), or None when no record is marked."""
    s = pred.scalars.get(stat)
    if s is None or len(s) == 0:
        return None
    idx = np.flatnonzero(flag(s.values))
    if not len(idx):
        return None
    return s, idx, int(s.steps[idx[0]]), int(s.steps[idx[-1]])


def _nonfinite_predictions(pred, span, th):
    flagged = _flagged_records(pred, metadata.PRED_NONFINITE,
                               lambda v: ~np.isfinite(v) | (v > 0))
    if flagged is None:
        return []
    s, idx, first, last = flagged
    count = pred.scalars.get(metadata.PRED_COUNT)
    evidence = {
        "first_step": first,
        "records_with_nonfinite": len(idx),
        "records": int(len(s)),
        "nonfinite_outputs_first": _r(float(s.values[idx[0]])),
    }
    if count is not None and len(count):
        evidence["rows_per_record"] = _r(_nanmedian(count.values))
    return [
        Finding(
            kind=KIND_NONFINITE,
            severity=SEVERITY_ERROR,
            layer=None,
            first_step=first,
            last_step=last,
            evidence=evidence,
            message="The model's %s contain NaN or Inf from step %d on."
            % (_what(pred), first),
            suggestion="Find the first non-finite value: check the input data for "
            "NaN/Inf, lower the learning rate, add gradient clipping (clipnorm), "
            "and guard log/division/sqrt in custom losses with an epsilon.",
        )
    ]


def _invalid_labels(pred, span, th):
    """Labels that cannot be scored (counted by the recording inside
    tf.function; eagerly they raise): a loss fed such labels is silently
    wrong (binary cross-entropy takes a 2 as it is)."""
    flagged = _flagged_records(pred, metadata.PRED_INVALID_LABELS,
                               lambda v: np.isfinite(v) & (v > 0))
    if flagged is None:
        return []
    s, idx, first, last = flagged
    evidence = {
        "invalid_labels": int(s.values[idx].sum()),
        "records_with_invalid_labels": len(idx),
        "records": int(len(s)),
    }
    count = pred.scalars.get(metadata.PRED_COUNT)
    if count is not None and len(count):
        evidence["labels_in_those_records"] = int(np.nansum(_values_at(count, s.steps[idx])))
    return [
        Finding(
            kind=KIND_INVALID_LABELS,
            severity=SEVERITY_ERROR,
            layer=None,
            first_step=first,
            last_step=last,
            evidence=evidence,
            message="%d labels given with the %s cannot be scored (class ids outside "
            "[0, %d) or not whole numbers, binary or one-hot values outside [0, 1], "
            "NaN), from step %d on: the loss and the accuracy are computed on wrong "
            "targets." % (evidence["invalid_labels"], _what(pred),
                          max(int(pred.num_classes), 2), first),
            suggestion="Check the label encoding: class ids must be 0..K-1 (remap e.g. "
            "1..K or -1/1), binary labels 0/1, one-hot rows of 0/1; drop or fill "
            "missing labels.",
        )
    ]


_COLLAPSE_SUGGESTION = (
    "Check the weight initialisation (a tiny init such as N(0, 1e-3) starves the "
    "signal; use Glorot/He), look for vanishing gradients, and check that the inputs "
    "actually reach the model.")


def _regression_collapse(pool, span, th, output_layer):
    """Regression outputs that do not follow the inputs: std(output) /
    std(target) < collapse_std_ratio. With D > 1 output dimensions recorded
    one by one (output_std_ratio_max/min), every dimension's ratio tiny (the
    largest) is a collapse (error), and one dimension's (the smallest) a
    warning; older records hold the flattened ratio only, which the spread
    between the dimensions' means inflates."""
    pred = pool.pred
    steps = pool.steps
    o = pool.scalar(metadata.PRED_OUTPUT_STD)
    t = pool.scalar(metadata.PRED_TARGET_STD)
    r_max = pool.scalar(metadata.PRED_OUTPUT_STD_RATIO_MAX)
    r_min = pool.scalar(metadata.PRED_OUTPUT_STD_RATIO_MIN)
    dims = (getattr(pred, "index", None) or {}).get(metadata.INDEX_OUTPUT_DIMS)
    if r_max is not None:
        ratio = r_max
        cond = np.isfinite(r_max) & (r_max < th.collapse_std_ratio)
    elif o is not None and t is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = o / t
        cond = np.isfinite(ratio) & (t > 0) & (ratio < th.collapse_std_ratio)
    else:
        return []
    hit = _sustained(steps, cond, span, th, weights=pool.weights)
    partial = False
    if hit is None and r_min is not None:
        cond = np.isfinite(r_min) & (r_min < th.collapse_std_ratio)
        hit = _sustained(steps, cond, span, th, weights=pool.weights)
        partial = True
    if hit is None:
        return []
    a, b = hit
    evidence = {}
    if o is not None and t is not None:
        evidence["output_std"] = _r(_nanmedian(o[a:b + 1]))
        evidence["target_std"] = _r(_nanmedian(t[a:b + 1]))
    # std_ratio: the ratio judged (per dimension: the largest, or the
    # smallest for one constant output).
    evidence["std_ratio"] = _r(_nanmedian((r_min if partial else ratio)[a:b + 1]))
    if r_max is not None:
        evidence["std_ratio_max"] = _r(_nanmedian(r_max[a:b + 1]))
        if r_min is not None:
            evidence["std_ratio_min"] = _r(_nanmedian(r_min[a:b + 1]))
        if dims:
            evidence["output_dims"] = dims
    evidence["threshold"] = th.collapse_std_ratio
    evidence["examples"] = int(pool.weights[a:b + 1].sum())
    if output_layer:
        evidence["output_layer"] = output_layer
    of_dims = "the %d outputs" % dims if dims else "the outputs"
    if partial:
        message = ("At least one of %s of the %s is nearly constant: its std is %s of its "
                   "target's (the largest ratio over the output dimensions is %s), so that "
                   "output does not depend on the input."
                   % (of_dims, _what(pred), _fmt(evidence["std_ratio_min"]),
                      _fmt(evidence["std_ratio_max"])))
    elif r_max is not None:
        message = ("Every one of %s of the %s is nearly constant: even the largest "
                   "std(output) / std(target) over the output dimensions is %s, so the "
                   "outputs do not depend on the input."
                   % (of_dims, _what(pred), _fmt(evidence["std_ratio_max"])))
    else:
        message = ("The %s are nearly constant: their std is %s against the targets' %s "
                   "(ratio %s), so the output does not depend on the input."
                   % (_what(pred), _fmt(evidence["output_std"]),
                      _fmt(evidence["target_std"]), _fmt(evidence["std_ratio"])))
    return [
        _window_finding(
            KIND_PREDICTION_COLLAPSE, steps, a, b, evidence, message=message,
            suggestion=_COLLAPSE_SUGGESTION,
            severity=SEVERITY_WARNING if partial else SEVERITY_ERROR,
        )
    ]


def _prediction_collapse(pool, span, th, output_layer):
    pred = pool.pred
    steps = pool.steps
    if pred.task == metadata.TASK_REGRESSION:
        return _regression_collapse(pool, span, th, output_layer)

    ent = pool.scalar(metadata.PRED_ENTROPY)
    if ent is None:
        return []
    cond = np.isfinite(ent) & (ent >= th.collapse_entropy) & ~_above_baseline(pool, th)
    hit = _sustained(steps, cond, span, th, weights=pool.weights)
    if hit is None:
        return []
    a, b = hit
    k = 2 if pred.task == metadata.TASK_BINARY else pred.num_classes
    evidence = {
        "normalized_entropy": _r(_nanmedian(ent[a:b + 1])),
        "threshold": th.collapse_entropy,
        "num_classes": int(k),
        "uniform_probability": _r(1.0 / k),
        "examples": int(pool.weights[a:b + 1].sum()),
    }
    for stat in (metadata.PRED_ZERO_LOGIT_FRACTION, metadata.PRED_TIE_FRACTION,
                 metadata.PRED_ACCURACY, metadata.PRED_TIE_TOLERANT_ACCURACY):
        _put_median(evidence, stat, pred.scalars.get(stat), steps[a], steps[b])
    if output_layer:
        evidence["output_layer"] = output_layer
    zero = evidence.get(metadata.PRED_ZERO_LOGIT_FRACTION)
    detail = ""
    if isinstance(zero, float) and zero >= 0.5:
        detail = "; %s of the logits are exactly 0" % _pct(zero)
    return [
        _window_finding(
            KIND_PREDICTION_COLLAPSE, steps, a, b, evidence,
            message="The %s are nearly uniform over the %d classes "
            "(normalised entropy %s, every class ~%s%s): the model is not telling the "
            "classes apart." % (_what(pred), k, _fmt(evidence["normalized_entropy"]),
                                _fmt(1.0 / k), detail),
            suggestion="Look for the cause among this run's other findings. Common ones: "
            "an activation (ReLU) on logits fed to a from_logits=True loss, dead or "
            "vanishing layers, a bad initialisation or learning rate.",
        )
    ]


def _tied_predictions(pool, span, th):
    pred = pool.pred
    if pred.task == metadata.TASK_REGRESSION:
        return []
    t = pool.scalar(metadata.PRED_TIE_FRACTION)
    if t is None:
        return []
    steps = pool.steps
    a_ = pool.scalar(metadata.PRED_ACCURACY)
    b_ = pool.scalar(metadata.PRED_TIE_TOLERANT_ACCURACY)
    if a_ is not None and b_ is not None:
        gap = b_ - a_
        cond = (np.isfinite(t) & (t >= th.tie_fraction) & np.isfinite(gap)
                & (gap >= th.tie_accuracy_gap))
    else:
        gap = None
        cond = np.isfinite(t) & (t >= max(th.tie_fraction, 0.5))
    hit = _sustained(steps, cond, span, th, weights=pool.weights)
    if hit is None:
        return []
    a, b = hit
    evidence = {
        "tie_fraction": _r(_nanmedian(t[a:b + 1])),
        "threshold": th.tie_fraction,
        "examples": int(pool.weights[a:b + 1].sum()),
    }
    if gap is not None:
        evidence["accuracy"] = _r(_nanmedian(a_[a:b + 1]))
        evidence["tie_tolerant_accuracy"] = _r(_nanmedian(b_[a:b + 1]))
        evidence["accuracy_gap"] = _r(_nanmedian(gap[a:b + 1]))
        message = ("%s of the %s are ties for the top class, so a "
                   "tie-tolerant accuracy (tf.nn.in_top_k) reports %s while the argmax "
                   "accuracy is %s." % (_pct(evidence["tie_fraction"]), _what(pred),
                                        _pct(evidence["tie_tolerant_accuracy"]),
                                        _pct(evidence["accuracy"])))
    else:
        message = ("%s of the %s are ties for the top class; any "
                   "tie-tolerant metric (tf.nn.in_top_k) overstates accuracy."
                   % (_pct(evidence["tie_fraction"]), _what(pred)))
    return [
        _window_finding(
            KIND_TIED_PREDICTIONS, steps, a, b, evidence,
            message=message,
            suggestion="Measure accuracy with argmax (tf.argmax(logits, 1) == labels), "
            "not tf.nn.in_top_k(k=1), and fix what makes the outputs tie (often all "
            "logits 0 after a ReLU on the output layer).",
        )
    ]


def _class_shares(pool):
    """Per window: (predicted counts, label counts) as [windows, K] arrays,
    or None when the family has no class counts."""
    if pool.pred.task == metadata.TASK_REGRESSION:
        return None
    pc = pool.counts(metadata.PRED_PREDICTED_CLASSES)
    lc = pool.counts(metadata.PRED_LABEL_CLASSES)
    if pc is None or lc is None or pc.shape[1] < 2 or pc.shape != lc.shape:
        return None
    return pc, lc


def _not_uniform(pool, th):
    """Windows whose predictions are neither tied nor near-uniform: there
    the argmax says what the model prefers (ties go to the lowest index, and
    near-uniform probabilities make it an accident of tiny differences;
    those are tied_predictions and prediction_collapse)."""
    ok = np.ones(len(pool), dtype=bool)
    for stat, limit in ((metadata.PRED_TIE_FRACTION, th.tie_fraction),
                        (metadata.PRED_ENTROPY, th.collapse_entropy)):
        v = pool.scalar(stat)
        if v is not None:
            ok &= ~(np.isfinite(v) & (v >= limit))
    return ok


def _above_baseline(pool, th):
    """Windows whose argmax accuracy is clearly above the most frequent
    label's share (by baseline_margin and baseline_noise_sd standard
    errors): the model tells classes apart, however unsure its
    probabilities (heavy dropout, a slow start)."""
    shares = _class_shares(pool)
    acc = pool.scalar(metadata.PRED_ACCURACY)
    if shares is None or acc is None:
        return np.zeros(len(pool), dtype=bool)
    lc = shares[1]
    n = lc.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        base = lc.max(axis=1) / n
        noise = np.sqrt(base * (1.0 - base) / n)
        return (n > 0) & np.isfinite(acc) & (
            acc > base + np.maximum(th.baseline_margin, th.baseline_noise_sd * noise))


def _class_collapse(pool, span, th):
    shares = _class_shares(pool)
    if shares is None:
        return []
    pc, lc = shares
    steps = pool.steps
    ptot = pc.sum(axis=1)
    ltot = lc.sum(axis=1)
    top = np.argmax(pc, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        pshare = pc[np.arange(len(top)), top] / ptot
        lshare = lc[np.arange(len(top)), top] / ltot
    cond = ((ptot > 0) & (ltot > 0) & (pshare >= th.class_collapse_fraction)
            & (lshare <= th.class_collapse_label_share) & _not_uniform(pool, th))
    hit = _sustained(steps, cond, span, th, weights=pool.weights)
    if hit is None:
        return []
    a, b = hit
    cls = int(np.bincount(top[a:b + 1]).argmax())
    evidence = {
        "predicted_class": cls,
        "prediction_share": _r(pc[a:b + 1, cls].sum() / max(ptot[a:b + 1].sum(), 1)),
        "label_share": _r(lc[a:b + 1, cls].sum() / max(ltot[a:b + 1].sum(), 1)),
        "threshold": th.class_collapse_fraction,
        "num_classes": int(pc.shape[1]),
        "examples": int(pool.weights[a:b + 1].sum()),
    }
    _put_median(evidence, "accuracy", pool.pred.scalars.get(metadata.PRED_ACCURACY),
                steps[a], steps[b])
    return [
        _window_finding(
            KIND_CLASS_COLLAPSE, steps, a, b, evidence,
            message="%s of the %s are class %d, which is only %s of the "
            "labels: the model predicts one class for (nearly) every input."
            % (_pct(evidence["prediction_share"]), _what(pool.pred), cls,
               _pct(evidence["label_share"])),
            suggestion="Check class_weight / sample weights and the label encoding, "
            "look for dead units or saturated activations, and try a lower learning "
            "rate.",
        )
    ]


def _biased_to(pc, lc, th):
    """Per row of class counts (predicted, labels): the over-predicted class
    (the one with the largest excess of predicted over label share) and
    whether it meets class_bias_ratio and class_bias_excess."""
    ptot = pc.sum(axis=1, keepdims=True)
    ltot = lc.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        ps = pc / ptot
        ls = lc / ltot
    top = np.argmax(np.nan_to_num(ps - ls, nan=-1.0), axis=1)
    i = np.arange(len(top))
    p, l = ps[i, top], ls[i, top]
    ok = ((ptot[:, 0] > 0) & (ltot[:, 0] > 0)
          & (p >= th.class_bias_ratio * l) & (p >= l + th.class_bias_excess))
    return top, ok


def _class_bias(pool, span, th):
    """One class predicted far more often than it occurs, sustained, short
    of class_collapse: e.g. a class_weight that favours it (partial after
    the first steps), a label encoding that maps two classes to one."""
    shares = _class_shares(pool)
    if shares is None:
        return []
    pc, lc = shares
    steps = pool.steps
    top, biased = _biased_to(pc, lc, th)
    hit = _sustained(steps, biased & _not_uniform(pool, th), span, th, weights=pool.weights)
    if hit is None:
        return []
    a, b = hit
    cls = int(np.bincount(top[a:b + 1][biased[a:b + 1]]).argmax())
    p = pc[a:b + 1, cls].sum() / max(pc[a:b + 1].sum(), 1)
    l = lc[a:b + 1, cls].sum() / max(lc[a:b + 1].sum(), 1)
    # Pooled over the streak, the class must still meet both thresholds.
    if not (p >= th.class_bias_ratio * l and p >= l + th.class_bias_excess):
        return []
    evidence = {
        "predicted_class": cls,
        "prediction_share": _r(p),
        "label_share": _r(l),
        "ratio_threshold": th.class_bias_ratio,
        "excess_threshold": th.class_bias_excess,
        "num_classes": int(pc.shape[1]),
        "examples": int(pool.weights[a:b + 1].sum()),
    }
    _put_median(evidence, "accuracy", pool.pred.scalars.get(metadata.PRED_ACCURACY),
                steps[a], steps[b])
    return [
        _window_finding(
            KIND_CLASS_BIAS, steps, a, b, evidence, severity=SEVERITY_WARNING,
            message="%s of the %s are class %d, which is only %s of the labels: "
            "the model over-predicts that class (at least %s of the inputs are "
            "given to it wrongly)."
            % (_pct(p), _what(pool.pred), cls, _pct(l), _pct(p - l)),
            suggestion="Check class_weight / sample weights (a weight far above the "
            "others pushes predictions to its class) and the label encoding (two "
            "classes mapped to one).",
        )
    ]


def _no_better_than_baseline(pool, span, th):
    """Accuracy not above the share of the most frequent label: the model
    learned the prior only (or the labels carry no information)."""
    shares = _class_shares(pool)
    acc = pool.scalar(metadata.PRED_ACCURACY)
    if shares is None or acc is None:
        return []
    _, lc = shares
    steps = pool.steps
    n = lc.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        base = lc.max(axis=1) / n
        # Sampling noise of a window's accuracy around the base rate.
        noise = np.sqrt(base * (1.0 - base) / n)
    margin = np.maximum(th.baseline_margin, th.baseline_noise_sd * noise)
    cond = (n > 0) & np.isfinite(acc) & (acc <= base + margin) & _not_uniform(pool, th)
    hit = _sustained(steps, cond, span, th, weights=pool.weights)
    if hit is None:
        return []
    a, b = hit
    # A model that got past the baseline by the end has learned (slowly):
    # the streak must reach the last tenth of the run.
    if b < len(steps) - 1 - len(steps) // 10:
        return []
    # Over the whole streak (thousands of examples) the accuracy must not be
    # significantly above the base rate: a window's noise is no excuse there.
    w = pool.weights[a:b + 1]
    seen = lc[a:b + 1].sum(axis=0)
    streak_base = seen.max() / max(seen.sum(), 1)
    streak_acc = float(np.nansum(acc[a:b + 1] * w) / max(w.sum(), 1))
    streak_noise = math.sqrt(streak_base * (1 - streak_base) / max(w.sum(), 1))
    if streak_acc > streak_base + max(th.baseline_margin, th.baseline_noise_sd * streak_noise):
        return []
    total = lc[a:b + 1].sum(axis=0)
    cls = int(np.argmax(total))
    w = pool.weights[a:b + 1]
    evidence = {
        "accuracy": _r(float(np.nansum(acc[a:b + 1] * w) / max(w.sum(), 1))),
        "majority_class": cls,
        "majority_label_share": _r(total[cls] / max(total.sum(), 1)),
        "margin": th.baseline_margin,
        "examples": int(w.sum()),
    }
    constant = evidence["majority_label_share"] >= 0.999
    if constant:
        message = ("Every label of the %s is class %d: there is nothing to learn, and "
                   "the %s accuracy says nothing." % (_what(pool.pred), cls, _pct(
                       evidence["accuracy"])))
        suggestion = ("Check how the labels are loaded and encoded (a constant "
                      "label column, labels taken from the wrong field).")
    else:
        message = ("The %s are right %s of the time, no better than always answering "
                   "the most frequent class %d (%s of the labels): the model has "
                   "learned the class frequencies, not the task."
                   % (_what(pool.pred), _pct(evidence["accuracy"]), cls,
                      _pct(evidence["majority_label_share"])))
        suggestion = ("Check that labels line up with their inputs (shuffled "
                      "separately?), and that the inputs carry the signal (normalised, "
                      "not constant); for imbalanced classes, judge per-class recall or "
                      "balanced accuracy, and consider class_weight.")
    return [
        _window_finding(KIND_BASELINE, steps, a, b, evidence, message=message,
                        suggestion=suggestion, severity=SEVERITY_WARNING)
    ]


# ---------------------------------------------------------------------------
# Rules: gradients


def _kernels(grad):
    return [p for p in grad.variables if _is_kernel(p, grad.shapes.get(p))]


def _nonfinite_gradients(grad, span, th):
    per_var = grad.stats.get(metadata.GRAD_NONFINITE, {})
    norms = grad.stats.get(metadata.GRAD_NORM, {})
    wnorms = grad.stats.get(metadata.GRAD_WEIGHT_NORM, {})
    first_by_var = {}
    last_step = None
    for p in grad.variables:
        steps_bad = []
        s = per_var.get(p)
        if s is not None and len(s):
            bad = ~np.isfinite(s.values) | (s.values > 0)
            steps_bad.extend(s.steps[bad].tolist())
        for src in (norms.get(p), wnorms.get(p)):
            if src is not None and len(src):
                steps_bad.extend(src.steps[~np.isfinite(src.values)].tolist())
        if steps_bad:
            first_by_var[p] = int(min(steps_bad))
            last_step = max(last_step or 0, int(max(steps_bad)))
    if not first_by_var:
        return []
    first = min(first_by_var.values())
    # Depth order among the variables hit first.
    culprit = next(p for p in grad.variables if first_by_var.get(p) == first)
    evidence = {
        "first_step": first,
        "variables_affected": len(first_by_var),
        "variables": len(grad.variables),
        "first_nonfinite_step": {p: first_by_var[p] for p in grad.variables
                                 if p in first_by_var},
    }
    return [
        Finding(
            kind=KIND_NONFINITE,
            severity=SEVERITY_ERROR,
            layer=culprit,
            first_step=first,
            last_step=last_step,
            evidence=evidence,
            message="The %s (or weights) contain NaN or Inf from step %d on, "
            "in %d of %d variables, first in %s."
            % (_what(grad, "gradients"), first, len(first_by_var), len(grad.variables),
               _short(culprit)),
            suggestion="Check the input data for NaN/Inf, lower the learning rate, "
            "add gradient clipping (clipnorm), and guard log/division/sqrt in the loss.",
        )
    ]


def _later_update_ratios(grad):
    """For each variable (row), over the later kernels that have an update
    ratio, per step of ``grad.steps``: (whether all of them have a value, the
    largest finite one or NaN, how many there are)."""
    ratios = grad.stats.get(metadata.GRAD_UPDATE_RATIO, {})
    upd = grad.matrix(metadata.GRAD_UPDATE_RATIO)
    # Kernels only: a zero-initialised bias moves fast relative to its tiny
    # norm, which says nothing about the layers before it.
    has = np.array([p in ratios and _is_kernel(p, grad.shapes.get(p))
                    for p in grad.variables], dtype=bool)[:, None]
    ok = np.where(has, upd.present, True)
    vals = np.where(has & np.isfinite(upd.values), upd.values, -np.inf)
    # Suffix reductions over rows i+1.. (the last row: over nothing).
    ok = np.logical_and.accumulate(ok[::-1], axis=0)[::-1]
    vals = np.maximum.accumulate(vals[::-1], axis=0)[::-1]
    later_all = np.concatenate([ok[1:], np.ones_like(ok[:1])])
    later_max = np.concatenate([vals[1:], np.full_like(vals[:1], -np.inf)])
    later_max[~np.isfinite(later_max)] = np.nan
    count = np.cumsum(has[::-1, 0])[::-1] - has[:, 0]
    return later_all, later_max, count


def _output_gradient_norm(grad):
    """Per step of grad.steps: (whether every output-layer variable has a
    norm, the L2 norm of the output layer's whole gradient, kernel and bias
    together). That is the error signal the loss sends in: when the signal
    is starved (seed 002) the output bias takes nearly all of it."""
    norm = grad.matrix(metadata.GRAD_NORM)
    rows = [i for i in _output_layer_rows(grad)
            if grad.variables[i] in grad.stats.get(metadata.GRAD_NORM, {})]
    if not rows:
        n = len(grad.steps)
        return np.zeros(n, dtype=bool), np.full(n, np.nan)
    return (norm.present[rows].all(axis=0),
            np.sqrt(np.sum(np.square(norm.values[rows]), axis=0)))


def first_layer_gradient_ratio(grad):
    """(steps, ratios): the first kernel's gradient norm over the output
    layer's (see _output_gradient_norm), the quantity vanishing_gradients
    judges (every earlier kernel against vanishing_ratio); the dashboard
    plots this one. Empty arrays with fewer than two kernels."""
    kernels = [p for p in _kernels(grad) if p in grad.stats.get(metadata.GRAD_NORM, {})]
    if len(kernels) < 2:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    norm = grad.matrix(metadata.GRAD_NORM)
    i = grad.variables.index(kernels[0])
    present, out = _output_gradient_norm(grad)
    keep = present & norm.present[i]
    with np.errstate(divide="ignore", invalid="ignore"):
        return grad.steps[keep], norm.values[i, keep] / out[keep]


def _vanishing(run, grad, span, th):
    norms = grad.stats.get(metadata.GRAD_NORM, {})
    zeros = grad.stats.get(metadata.GRAD_ZERO_FRACTION, {})
    ratios = grad.stats.get(metadata.GRAD_UPDATE_RATIO, {})
    kernels = [p for p in _kernels(grad) if p in norms]
    if len(kernels) < 2:
        return []
    # Every series on the family's common steps: a variable's values at the
    # steps where all the series a comparison needs have a value.
    grid = grad.steps
    norm = grad.matrix(metadata.GRAD_NORM)
    zero = grad.matrix(metadata.GRAD_ZERO_FRACTION)
    upd = grad.matrix(metadata.GRAD_UPDATE_RATIO)
    row = {}
    for i, p in enumerate(grad.variables):
        row.setdefault(p, i)
    last_layer = _layer_of(kernels[-1])
    last_present, last_norm = _output_gradient_norm(grad)
    if not last_present.any():
        return []
    silent = _silent_output(grad)
    fits = _fits_training_data(run, grad, th)
    later_all, later_max, later_count = _later_update_ratios(grad)
    hits = []
    for p in kernels:
        if _layer_of(p) == last_layer:
            continue
        i = row[p]
        common = norm.present[i] & last_present
        has_zero = p in zeros
        if has_zero:
            common &= zero.present[i]
        has_upd = p in ratios and later_count[i] > 0
        if has_upd:
            common &= upd.present[i] & later_all[i]
        if not common.any():
            continue
        steps = grid[common]
        n_p, n_l = norm.values[i, common], last_norm[common]
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = n_p / n_l
        finite = np.isfinite(n_p) & np.isfinite(n_l) & (n_l > 0)
        alive = np.ones_like(finite)
        if has_zero:
            # An entirely zero gradient is dead/disconnected, not vanishing:
            # that is reported by dead_units.
            z = zero.values[i, common]
            alive = np.isfinite(z) & (z < 1.0)
        # No gradient at the output (nothing left to learn, or a dead output
        # layer, reported by dead_units) says nothing about this layer; nor
        # do small gradients while the batch is predicted right (attention
        # query/key kernels of a Transformer that has learned its task).
        alive &= ~silent[common] & ~fits[common]
        cond = finite & alive & (rel < th.vanishing_ratio)
        u_p = u_max = None
        if has_upd:
            u_p = upd.values[i, common]
            u_max = later_max[i, common]
            # An adaptive optimiser (Adam) rescales small gradients: a layer
            # that still moves at the guideline rate is learning, whatever
            # its gradient norm.
            cond &= ~(np.isfinite(u_p) & (u_p >= th.update_ratio_guideline))
            # Update ratio far below the guideline while a later layer moves
            # 100x faster: this layer is left behind (a plain low learning
            # rate slows every layer alike and is not reported).
            with np.errstate(invalid="ignore"):
                cond |= (alive & np.isfinite(u_p) & np.isfinite(u_max)
                         & (u_p < th.update_ratio_low)
                         & (u_p < th.vanishing_update_gap * u_max))
        hit = _sustained(steps, cond, span, th)
        if hit is None:
            continue
        a, b = hit
        ev = {
            "norm": _r(_nanmedian(n_p[a:b + 1])),
            "norm_ratio_to_last": _r(_nanmedian(rel[a:b + 1])),
        }
        if u_p is not None:
            ev["update_ratio"] = _r(_nanmedian(u_p[a:b + 1]))
            ev["max_later_update_ratio"] = _r(_nanmedian(u_max[a:b + 1]))
        hits.append((p, int(steps[a]), int(steps[b]), ev))
    if not hits:
        return []
    first_var = hits[0][0]
    first = min(h[1] for h in hits)
    lastst = max(h[2] for h in hits)
    evidence = {
        "last_layer": last_layer,
        "last_layer": last_layer,
        "last_layer_norm": _r(_nanmedian(last_norm[last_present])),
        "vanishing_ratio_threshold": th.vanishing_ratio,
        "update_ratio_low": th.update_ratio_low,
        "update_ratio_guideline": th.update_ratio_guideline,
        "layers": {h[0]: h[3] for h in hits},
    }
    ev0 = hits[0][3]
    detail = "a gradient %s the size of the output layer's" % _fmt(ev0["norm_ratio_to_last"])
    if "update_ratio" in ev0:
        detail += " and an update/weight ratio of %s (guideline ~%s)" % (
            _fmt(ev0["update_ratio"]), _fmt(th.update_ratio_guideline))
    names = ", ".join(_short(h[0]) for h in hits)
    return [
        Finding(
            kind=KIND_VANISHING,
            severity=SEVERITY_ERROR,
            layer=first_var,
            first_step=first,
            last_step=lastst,
            evidence=evidence,
            message="Gradients vanish before reaching the early layers (%s): %s gets "
            "%s, so it barely learns." % (names, _short(first_var), detail),
            suggestion="Use Glorot/He initialisation instead of a tiny one, ReLU-family "
            "activations instead of stacked sigmoid/tanh, batch normalisation or "
            "residual connections, and/or an adaptive optimiser (Adam).",
        )
    ]


def _learned_anyway(run, th):
    """Whether the run's last train prediction window is clearly above the
    base rate: a model that learns despite large first steps is working."""
    for pred in run.predictions.values():
        pool = _Pooled(pred, th)
        if len(pool) and _above_baseline(pool, th)[-1]:
            return True
    return False


def _learning_rate_too_high(run, grad, span, th):
    """A kernel's weights change by a large part of their size at each step
    (the largest update/weight ratio of the kernels >= update_ratio_high on
    two consecutive records; a learning rate far too high blows the weights
    up in a few steps, after which its ReLUs often die and nothing moves):
    the step is far too large for the weights, from the start of training
    (before the warm-up ends), in a model that then does not learn (a
    classifier still at its base rate at the end). Kernels far smaller than
    the others are left out (growing from 0, any step is large next to
    them)."""
    ratios = grad.stats.get(metadata.GRAD_UPDATE_RATIO, {})
    wnorms = grad.stats.get(metadata.GRAD_WEIGHT_NORM, {})
    kernels = [p for p in _kernels(grad) if p in ratios and p in wnorms]
    if not kernels:
        return []
    upd = grad.matrix(metadata.GRAD_UPDATE_RATIO)
    wn = grad.matrix(metadata.GRAD_WEIGHT_NORM)
    rows = [grad.variables.index(p) for p in kernels]
    sizes = np.array([float(np.prod(grad.shapes.get(p) or [1])) for p in kernels])
    # Root mean square of each kernel's entries; a kernel far smaller than
    # the others is growing from ~0 (zero-initialised), where any step is
    # large next to its size.
    rms = wn.values[rows] / np.sqrt(sizes)[:, None]
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # steps without any weight norm
        grown = rms >= 0.25 * np.nanmedian(rms, axis=0)
        large = (upd.present[rows] & grown
                 & (np.nan_to_num(upd.values[rows], nan=0.0) >= th.update_ratio_high)
                 ).any(axis=0)
    steps = grad.steps
    # A learning rate far too high shows in the first steps; a later pair of
    # large steps (an RMSprop spike that training recovers from) is no proof.
    early = steps < span.warmup_step(th.warmup_fraction)
    hit = None
    for a, b in _streaks(large):
        if b > a and early[a] and (hit is None or b - a > hit[1] - hit[0]):
            hit = (a, b)
    if hit is None or _learned_anyway(run, th):
        return []
    a, b = hit
    seg = upd.values[rows][:, a:b + 1]
    seg = seg[np.isfinite(seg)]  # a weight that was exactly 0 gives an infinite ratio
    evidence = {
        "update_ratio_max": _r(float(seg.max())) if seg.size else float("inf"),
        "update_ratio_high": th.update_ratio_high,
        "update_ratio_guideline": th.update_ratio_guideline,
        "kernels": len(kernels),
        "records": int(b - a + 1),
    }
    return [
        _window_finding(
            KIND_LEARNING_RATE, steps, a, b, evidence,
            message="From step %d the weights change by up to %s of their size in "
            "one step (update/weight ratio, guideline ~%s): the steps are far too "
            "large for these weights." % (steps[a], _pct(evidence["update_ratio_max"]),
                                          _fmt(th.update_ratio_guideline)),
            suggestion="Lower the learning rate (by 10-100x), or use a schedule with "
            "warm-up; if the weights were initialised tiny, use Glorot/He "
            "initialisation instead.",
        )
    ]


def _exploding(grad, span, th):
    norms = grad.stats.get(metadata.GRAD_NORM, {})
    kernels = [p for p in _kernels(grad) if p in norms] or [
        p for p in grad.variables if p in norms]
    hits = []
    for p in kernels:
        s = norms[p]
        v = s.values
        fin = np.isfinite(v)
        if fin.sum() == 0:
            continue
        # The baseline: the median of the first records (10% of them, at
        # least explode_baseline_records), and at least explode_min_norm, so
        # near-zero first gradients (zero-initialised weights) are no base.
        first = v[fin][: max(th.explode_baseline_records, int(0.1 * fin.sum()))]
        base = max(float(np.median(first)), th.explode_min_norm)
        growth = v / base
        cond_growth = fin & (growth >= th.explode_growth)
        cond_abs = fin & (v >= th.explode_abs_norm)
        exploding = cond_growth | cond_abs
        # Overflow is the end point of an explosion: non-finite records right
        # after exploding ones continue its streak (a NaN out of nowhere, e.g.
        # from the data, is reported by nonfinite only).
        cond = exploding.copy()
        for j in range(1, len(cond)):
            if not fin[j] and cond[j - 1]:
                cond[j] = True
        hit = _sustained(s.steps, cond, span, th, state=False)
        if hit is None:
            continue
        a, b = hit
        if not exploding[a:b + 1].any():
            continue
        seg = v[a:b + 1][fin[a:b + 1]]
        peak = float(np.max(seg)) if seg.size else float("inf")
        overflow = np.flatnonzero(~fin[a:b + 1])
        if overflow.size:
            b = a + int(overflow[0])  # report up to the first overflow
        hits.append((p, int(s.steps[a]), int(s.steps[b]), {
            "baseline_norm": _r(base),
            "max_norm": _r(peak),
            "growth": _r(peak / base),
            "overflowed": bool(overflow.size),
        }))
    if not hits:
        return []
    first = min(h[1] for h in hits)
    lastst = max(h[2] for h in hits)
    all_layers = len(hits) == len(kernels) and len(kernels) > 1
    evidence = {
        "growth_threshold": th.explode_growth,
        "abs_norm_threshold": th.explode_abs_norm,
        "layers_exploding": len(hits),
        "layers": len(kernels),
        "per_layer": {h[0]: h[3] for h in hits},
    }
    _put_median(evidence, "first_last_ratio",
                grad.scalars.get(metadata.GRAD_FIRST_LAST_RATIO), first, lastst)
    worst = max(hits, key=lambda h: h[3]["max_norm"])
    if all_layers:
        layer = None
        msg = ("The gradients of every layer explode together (from step %d, up to "
               "norm %s, %sx their starting size); the first/last ratio stays normal, "
               "so ratio-based checks miss it."
               % (first, _fmt(worst[3]["max_norm"]), _fmt(worst[3]["growth"])))
    else:
        layer = hits[0][0]
        msg = ("The gradients of %s explode (from step %d, up to norm %s, %sx their "
               "starting size)." % (", ".join(_short(h[0]) for h in hits), first,
                                    _fmt(worst[3]["max_norm"]), _fmt(worst[3]["growth"])))
    return [
        Finding(
            kind=KIND_EXPLODING,
            severity=SEVERITY_ERROR,
            layer=layer,
            first_step=first,
            last_step=lastst,
            evidence=evidence,
            message=msg,
            suggestion="Lower the learning rate, clip gradients (clipnorm=1.0), "
            "normalise inputs and targets, and check the initialisation scale.",
        )
    ]


# An output-layer gradient this many times below its first records' is no
# gradient: float32 losses that have nothing left to teach decay to ~1e-16.
SILENT_OUTPUT_DROP = 1e-7


def _output_layer_rows(grad):
    """Rows of grad.variables that belong to the output layer (the layer of
    the last kernel, or of the last variable)."""
    kernels = _kernels(grad) or list(grad.variables)
    if not kernels:
        return []
    layer = _layer_of(kernels[-1])
    return [i for i, p in enumerate(grad.variables) if _layer_of(p) == layer]


def _silent_output(grad):
    """Per step of grad.steps: whether the loss sent (next to) no gradient
    into the output layer: its bias gradient is entirely zero, or the output
    layer's gradient norm is below SILENT_OUTPUT_DROP times its first
    records' (a saturated cross-entropy decays to ~1e-16 rather than 0).
    The layers before it then get none either: not their fault."""
    rows = _output_layer_rows(grad)
    silent = np.zeros(len(grad.steps), dtype=bool)
    if not rows:
        return silent
    zero = grad.matrix(metadata.GRAD_ZERO_FRACTION)
    bias = [i for i in rows if grad.variables[i].rsplit("/", 1)[-1] == "bias"]
    if bias:
        silent |= zero.present[bias[-1]] & (zero.values[bias[-1]] >= 1.0)
    present, out = _output_gradient_norm(grad)
    start = out[present & np.isfinite(out)][:3]
    if start.size:
        with np.errstate(invalid="ignore"):
            silent |= present & (out <= SILENT_OUTPUT_DROP * float(np.median(start)))
    return silent


def _fits_training_data(run, grad, th):
    """Per step of grad.steps: whether the train predictions recorded at that
    step are (nearly) all right: the loss has nothing left to teach."""
    fits = np.zeros(len(grad.steps), dtype=bool)
    for pred in run.predictions.values():
        acc = pred.scalars.get(metadata.PRED_ACCURACY)
        if acc is None or len(acc) == 0 or pred.task == metadata.TASK_REGRESSION:
            continue
        idx = np.searchsorted(acc.steps, grad.steps)
        ok = idx < len(acc)
        hit = np.zeros(len(grad.steps), dtype=bool)
        hit[ok] = acc.steps[idx[ok]] == grad.steps[ok]
        vals = np.where(hit, acc.values[np.minimum(idx, len(acc) - 1)], np.nan)
        fits |= np.isfinite(vals) & (vals >= th.converged_accuracy)
    return fits


def _converged(run, grad, span, th):
    """Info: the output layer gets no gradient while the predictions are
    right; zero gradients are then not dead or vanishing layers."""
    done = _silent_output(grad) & _fits_training_data(run, grad, th)
    steps = grad.steps
    hit = _sustained(steps, done, span, th, state=False)
    if hit is None:
        return []
    a, b = hit
    evidence = {"records": int(done.sum()), "accuracy_at_least": th.converged_accuracy}
    return [
        _window_finding(
            KIND_CONVERGED, steps, a, b, evidence, severity=SEVERITY_INFO,
            message="From step %d the training batches are (nearly) all predicted right "
            "and the loss sends no gradient back: the model fits its training data, "
            "and nothing is left to learn from it." % steps[a],
            suggestion="Nothing to fix in training itself. If the validation accuracy "
            "is lower, the model is memorising: add data, augmentation or "
            "regularisation, or stop earlier.",
        )
    ]


def _dead_units(run, grad, span, th):
    zeros = grad.stats.get(metadata.GRAD_ZERO_FRACTION, {})
    findings = []
    grid = grad.steps
    silent = _silent_output(grad)
    fits = _fits_training_data(run, grad, th)
    output_rows = set(_output_layer_rows(grad))
    # Bias gradients: a unit's bias gets exactly zero gradient only when no
    # example of the batch passed gradient through it (input sparsity, which
    # zeroes rows of kernel gradients, does not affect biases).
    biases = [p for p in grad.variables
              if p.rsplit("/", 1)[-1] == "bias" and p in zeros]
    dead_layers = []
    for p in biases:
        s = zeros[p]
        # A layer before the output gets no gradient when the output gets
        # none (reported on the output layer); the output layer gets none
        # when the predictions are right (nothing left to learn).
        at = np.searchsorted(grid, s.steps)
        # When (nearly) every training example is predicted right, most
        # examples send ~0 gradient: units idle on the rest are not dead.
        excused = fits[at] | (silent[at] if grad.variables.index(p) not in output_rows
                              else False)
        cond = np.isfinite(s.values) & (s.values >= th.dead_fraction) & ~excused
        hit = _sustained(s.steps, cond, span, th)
        if hit is None:
            continue
        a, b = hit
        frac = _nanmedian(s.values[a:b + 1][cond[a:b + 1]])
        dead_layers.append((p, a, b, frac, s))
    for i, (p, a, b, frac, s) in enumerate(dead_layers):
        shape = grad.shapes.get(p) or []
        units = int(shape[0]) if shape else None
        evidence = {
            "zero_gradient_fraction": _r(frac),
            "threshold": th.dead_fraction,
            "records": int(b - a + 1),
        }
        if units:
            evidence["units"] = units
            evidence["dead_units"] = int(round(frac * units))
        later_dead = [d[0] for d in dead_layers[i + 1:] if d[3] >= th.dead_error_fraction]
        if frac >= th.dead_error_fraction and later_dead:
            evidence["blocked_by"] = later_dead[0]
            message = ("No gradient reaches layer %s: every unit gets exactly zero "
                       "gradient because the later layer %s is dead."
                       % (_short(_layer_of(p)), _short(_layer_of(later_dead[0]))))
        else:
            message = ("%s of the units of layer %s%s get exactly zero gradient on every "
                       "example: they are dead and stop learning."
                       % (_pct(frac), _short(_layer_of(p)),
                          " (%d of %d)" % (evidence["dead_units"], units) if units else ""))
        findings.append(
            _window_finding(
                KIND_DEAD_UNITS, s.steps, a, b, evidence,
                severity=SEVERITY_ERROR if frac >= th.dead_error_fraction else SEVERITY_WARNING,
                layer=p,
                message=message,
                suggestion="Dead ReLUs: lower the learning rate, initialise biases at 0 "
                "(or slightly positive) with He init, or use LeakyReLU/ELU; a ReLU on "
                "the output layer kills logits that should be negative.",
            )
        )
    return findings


# ---------------------------------------------------------------------------
# Rules: manifest

_LINEAR = {None, "", "linear", "none", "identity"}
_PROBABILITY = {"softmax", "sigmoid", "log_softmax"}
_CLASS_ACTIVATION = {"ReLU": "relu", "Softmax": "softmax", "ELU": "elu",
                     "LeakyReLU": "leaky_relu", "PReLU": "prelu"}
_PROB_LOSSES = {
    "binarycrossentropy": "binary",
    "binary_crossentropy": "binary",
    "binaryfocalcrossentropy": "binary",
    "binary_focal_crossentropy": "binary",
    "categoricalcrossentropy": "categorical",
    "categorical_crossentropy": "categorical",
    "sparsecategoricalcrossentropy": "categorical",
    "sparse_categorical_crossentropy": "categorical",
    "categoricalfocalcrossentropy": "categorical",
    "categorical_focal_crossentropy": "categorical",
    # TensorFlow ops (tf.nn.*, see tb_plugin.manifest): they take logits.
    "softmax_cross_entropy_with_logits": "categorical",
    "sparse_softmax_cross_entropy_with_logits": "categorical",
    "sigmoid_cross_entropy_with_logits": "binary",
    "weighted_cross_entropy_with_logits": "binary",
}
# Parts of other names, alphanumerics only (plain loss functions such as
# "masked_sparse_categorical_crossentropy"), tried in this order.
_PROB_LOSS_PARTS = (
    ("categoricalcrossentropy", "categorical"),
    ("softmaxcrossentropy", "categorical"),
    ("binarycrossentropy", "binary"),
    ("sigmoidcrossentropy", "binary"),
)


def _loss_family(loss):
    keys = [k for k in (loss.get("class"), loss.get("name")) if isinstance(k, str)]
    for key in keys:
        if key.lower() in _PROB_LOSSES:
            return _PROB_LOSSES[key.lower()]
    for key in keys:
        n = "".join(c for c in key.lower() if c.isalnum())
        for part, family in _PROB_LOSS_PARTS:
            if part in n:
                return family
    return None


def _output_activation(run, span, th):
    m = run.manifest
    if not isinstance(m, dict):
        return []
    layers = m.get("layers") or []
    out_name = m.get("output_layer")
    loss = m.get("loss") or {}
    if not isinstance(loss, dict) or not isinstance(layers, list):
        return []
    out = None
    for layer in layers:
        if isinstance(layer, dict) and layer.get("name") == out_name:
            out = layer
    if out is None and layers and isinstance(layers[-1], dict):
        out = layers[-1]
    if out is None:
        return []
    act = out.get("activation")
    if act is None and out.get("class") in _CLASS_ACTIVATION:
        act = _CLASS_ACTIVATION[out["class"]]
    act_l = act.lower() if isinstance(act, str) else None
    family = _loss_family(loss)
    from_logits = loss.get("from_logits")
    loss_name = loss.get("class") or loss.get("name") or "loss"
    problem = None
    suggestion = None
    if family and from_logits is True and act_l not in _LINEAR:
        if act_l in _PROBABILITY:
            problem = ("applies %s but the loss %s has from_logits=True, so %s is "
                       "applied twice" % (act, loss_name, act))
            suggestion = ("Remove the activation from the output layer (keep "
                          "from_logits=True) or set from_logits=False.")
        else:
            problem = ("applies %s to the logits of a from_logits=True loss (%s); "
                       "logits must be able to go negative" % (act, loss_name))
            suggestion = ("Remove the activation from the output layer "
                          "(activation=None): %s clips the logits, which can collapse "
                          "them to 0 and the softmax to uniform." % act)
    elif family and from_logits is False and act_l not in _PROBABILITY:
        problem = ("is %s but the loss %s has from_logits=False, so it expects "
                   "probabilities" % ("linear" if act_l in _LINEAR else act, loss_name))
        suggestion = ("Pass from_logits=True to the loss, or end the model with "
                      "%s." % ("sigmoid" if family == "binary" else "softmax"))
    elif family == "binary" and act_l == "softmax":
        problem = ("applies softmax before a binary cross-entropy (%s); on a single "
                   "unit softmax is always 1" % loss_name)
        suggestion = "Use sigmoid on a single output unit for binary classification."
    if problem is None:
        return []
    gradient_paths = [p for g in run.gradients.values() for p in g.variables]
    layer = next((p for p in gradient_paths
                  if _layer_of(p).rsplit("/", 1)[-1] == out.get("name")
                  and _is_kernel(p, None)), out.get("name"))
    evidence = {
        "output_layer": out.get("name"),
        "activation": act,
        "loss": loss_name,
        "from_logits": from_logits,
    }
    for pred in run.predictions.values():
        z = pred.scalars.get(metadata.PRED_ZERO_LOGIT_FRACTION)
        if z is not None and len(z):
            evidence["zero_logit_fraction_last"] = _r(float(z.values[-1]))
            break
    return [
        Finding(
            kind=KIND_OUTPUT_ACTIVATION,
            severity=SEVERITY_ERROR,
            layer=layer,
            first_step=span.first if span else 0,
            last_step=span.last if span else 0,
            evidence=evidence,
            message="The output layer %r %s." % (out.get("name"), problem),
            suggestion=suggestion,
        )
    ]


# ---------------------------------------------------------------------------
# Rules: the run as a whole


def _mixed_fits(run, span, th):
    """Fits of fresh models written into one run directory: each starts its
    steps over, so the run's series step back in write order (see
    reader.Series.restarts); a resumed fit keeps counting up."""
    series = [s for p in run.predictions.values() for s in p.scalars.values()]
    series += [s for g in run.gradients.values() for per_var in g.stats.values()
               for s in per_var.values()]
    series += [s for g in run.gradients.values() for s in g.scalars.values()]
    worst = max(series, key=lambda s: s.restarts, default=None)
    if worst is None or worst.restarts == 0:
        return []
    fits = worst.restarts + 1
    steps, counts = np.unique(worst.steps, return_counts=True)
    shared = steps[counts > 1]
    first, last = (int(shared[0]), int(shared[-1])) if shared.size else (span.first, span.last)
    return [
        Finding(
            kind=KIND_MIXED_FITS,
            severity=SEVERITY_WARNING,
            layer=None,
            first_step=first,
            last_step=last,
            evidence={"fits": fits, "steps_recorded_more_than_once": int(shared.size),
                      "records": len(worst)},
            message="This run holds the records of %d fits whose steps overlap (the "
            "step count starts over; steps %d-%d hold records of more than one fit), so "
            "its findings blend them." % (fits, first, last),
            suggestion="Give each fit its own log_dir (e.g. logs/run1, logs/run2); a fit "
            "that continues training the same model (steps keep counting up) can share "
            "one.",
        )
    ]


# ---------------------------------------------------------------------------
# Entry points


def _output_layer_name(run):
    if isinstance(run.manifest, dict):
        name = run.manifest.get("output_layer")
        if isinstance(name, str):
            return name
    return None


# The histogram statistics the rules read. A read for the diagnosis alone
# (tb-health check, the callback's online diagnosis) skips the others: the
# probability and log10|g| histograms are most of a record's bytes.
HISTOGRAMS_READ = frozenset({metadata.PRED_PREDICTED_CLASSES, metadata.PRED_LABEL_CLASSES})


def read_for_diagnosis(provider, ctx, experiment_id, run):
    """What :func:`diagnose` reads of `run`: its records without the
    histograms no rule looks at (see HISTOGRAMS_READ)."""
    from tb_plugin import reader

    return reader.read_run(provider, ctx, experiment_id, run, histograms=HISTOGRAMS_READ)


class _ManifestOnly:
    """A run that has a manifest and no records yet."""

    def __init__(self, manifest):
        self.run = None
        self.manifest = manifest
        self.predictions = {}
        self.gradients = {}
        self.train_mode = {}
        self.warnings = []


def _not_covered(run, span, th):
    """Warning: outputs whose predictions HealthCallback could not record
    (the manifest's ``not_recorded``, see tb_plugin.outputs): the prediction
    rules saw nothing of them, so the run is not called healthy."""
    manifest = run.manifest if isinstance(run.manifest, dict) else {}
    missing = manifest.get(metadata.MANIFEST_NOT_RECORDED)
    if not isinstance(missing, list) or not missing:
        return []
    missing = [e for e in missing if isinstance(e, dict)]
    if not missing:
        return []
    recorded = manifest.get(metadata.MANIFEST_RECORDED)
    recorded = [str(r) for r in recorded] if isinstance(recorded, list) else []
    names = [str(e["output"]) if e.get("output") else None for e in missing]
    what = ", ".join("output %r" % n if n else "the model's output" for n in names)
    reasons = "; ".join(("%s: %s" % (n or "output", e.get("reason"))) if len(missing) > 1
                        else str(e.get("reason")) for n, e in zip(names, missing))
    covered = []
    if recorded:
        covered.append("the predictions %s" % ", ".join(repr(r) for r in recorded))
    if run.gradients or isinstance(run, _ManifestOnly):
        covered.append("the gradients")
    return [
        Finding(
            kind=KIND_NOT_COVERED,
            severity=SEVERITY_WARNING,
            layer=", ".join(n or "output" for n in names),
            first_step=span.first if span else 0,
            last_step=span.last if span else 0,
            evidence={"not_recorded": missing, "recorded_predictions": recorded},
            message="The predictions of %s were not recorded (%s), so no prediction "
            "finding covers them; the findings cover only %s."
            % (what, reasons, " and ".join(covered) or "the rest of the run"),
            suggestion="Compile the model with a recognised loss per output (a Keras loss "
            "object or name), or pass task= and from_logits= to HealthCallback; outputs "
            "of other shapes can be recorded with tb_plugin.summary.prediction_distribution "
            "in a custom loop.",
        )
    ]


def _manifest_findings(run, span, th):
    """The rules that read the run's manifest (kinds MANIFEST_KINDS); the
    records, when there are any, only add evidence (or show that a model
    without a `training` parameter was called in training mode after all)."""
    from tb_plugin import train_mode_rules

    return (_run_rule(run, _output_activation, run, span, th)
            + _run_rule(run, train_mode_rules.manifest_findings, run, span, th)
            + _run_rule(run, _not_covered, run, span, th))


def diagnose_manifest(manifest, thresholds=None):
    """The findings a run manifest alone shows, before any record: a
    misconfigured output layer, a model whose ``call`` takes no ``training``
    around Dropout/BatchNormalization, a dropout of rate 0, frozen
    BatchNormalization (kinds :data:`MANIFEST_KINDS`), at step 0.

    `manifest`: the dict :func:`tb_plugin.summary.model_manifest` writes
    (:func:`tb_plugin.manifest.build_manifest`). :func:`diagnose` reports the
    same findings for a run with this manifest (naming the output layer by its
    kernel's variable path once gradients are recorded).
    """
    return _manifest_findings(_ManifestOnly(manifest), None, thresholds or Thresholds())


def validation_sibling(run, runs):
    """The validation run recorded beside train run `run` (``x/train`` ->
    ``x/validation``, as HealthCallback and Keras's TensorBoard lay them out)
    if it is among `runs`, else None."""
    head, sep, tail = run.rpartition("/")
    if tail != "train":
        return None
    sibling = head + sep + "validation"
    return sibling if sibling in runs else None


def _learned_by_validation(finding, validation, th):
    """The evidence that inference-mode validation predictions contradict a
    train-predictions `finding`: None, or the validation record at (or else
    just after) the finding's last step, where the argmax is right clearly
    more often than the base rate, without ties (however unsure the
    probabilities: heavy dropout keeps them flat at inference too)."""
    pool = _Pooled(validation, th)
    if not len(pool) or finding.last_step is None:
        return None
    later = np.nonzero(pool.steps >= finding.last_step)[0]
    i = int(later[0]) if len(later) else len(pool) - 1
    ties = pool.scalar(metadata.PRED_TIE_FRACTION)
    tied = ties is not None and not ties[i] < th.tie_fraction
    if tied or not _above_baseline(pool, th)[i]:
        return None
    _, lc = _class_shares(pool)
    return {
        "validation_step": int(pool.steps[i]),
        "validation_accuracy": _r(pool.scalar(metadata.PRED_ACCURACY)[i]),
        "validation_majority_label_share": _r(lc[i].max() / max(lc[i].sum(), 1)),
        "validation_examples": int(pool.weights[i]),
    }


def _unbiased_by_validation(finding, validation, th):
    """The evidence that validation predictions contradict a train-predictions
    class_bias `finding`: None, or the validation windows over the finding's
    steps (or else the first one after), pooled, where its class is not
    over-predicted by class_bias_ratio and class_bias_excess. Validation
    biased as well means the bias is real."""
    pool = _Pooled(validation, th)
    shares = _class_shares(pool)
    if not len(pool) or shares is None or finding.last_step is None:
        return None
    pc, lc = shares
    cls = finding.evidence.get("predicted_class")
    if cls is None or cls >= pc.shape[1]:
        return None
    sel = np.nonzero((pool.steps >= finding.first_step) & (pool.steps <= finding.last_step))[0]
    if not len(sel):
        later = np.nonzero(pool.steps >= finding.last_step)[0]
        sel = later[:1] if len(later) else np.array([len(pool) - 1])
    p = pc[sel, cls].sum() / max(pc[sel].sum(), 1)
    l = lc[sel, cls].sum() / max(lc[sel].sum(), 1)
    if pc[sel].sum() == 0 or (p >= th.class_bias_ratio * l and p >= l + th.class_bias_excess):
        return None
    return {
        "validation_steps": [int(pool.steps[sel[0]]), int(pool.steps[sel[-1]])],
        "validation_prediction_share": _r(p),
        "validation_label_share": _r(l),
        "validation_examples": int(pool.weights[sel].sum()),
    }


# Kinds judged on train-step predictions that validation predictions can
# overrule: dropout and noisy batches make the predictions of a train step
# less sure and less right than the model is (heavy dropout keeps them
# near-uniform; a model learning late stays at the base rate for most of a
# short fit).
_OVERRULED_BY_VALIDATION = (KIND_PREDICTION_COLLAPSE, KIND_BASELINE)


def _overrule_by_validation(findings, validation, th):
    """`findings` of a train run's prediction family, those of
    _OVERRULED_BY_VALIDATION that the family's validation records contradict
    made info findings that say so."""
    if validation is None or validation.task == metadata.TASK_REGRESSION:
        return findings
    out = []
    for f in findings:
        if f.kind == KIND_CLASS_BIAS:
            seen = _unbiased_by_validation(f, validation, th)
            if seen is not None:
                f = dataclasses.replace(
                    f, severity=SEVERITY_INFO, evidence=dict(f.evidence, **seen),
                    message="%s Yet the validation predictions over those steps give "
                    "class %d %s of the time against a label share of %s: the train "
                    "steps' predictions (dropout, noisy batches) overstate the bias."
                    % (f.message, f.evidence["predicted_class"],
                       _pct(seen["validation_prediction_share"]),
                       _pct(seen["validation_label_share"])),
                    suggestion="Nothing to fix if the validation score is what you "
                    "expect. " + f.suggestion)
            out.append(f)
            continue
        seen = (_learned_by_validation(f, validation, th)
                if f.kind in _OVERRULED_BY_VALIDATION else None)
        if seen is not None:
            f = dataclasses.replace(
                f, severity=SEVERITY_INFO, evidence=dict(f.evidence, **seen),
                message="%s Yet the validation predictions at step %d are right %s "
                "of the time against a base rate of %s: the model learned, and the "
                "train steps' predictions (dropout, noisy batches) understate it."
                % (f.message, seen["validation_step"],
                   _pct(seen["validation_accuracy"]),
                   _pct(seen["validation_majority_label_share"])),
                suggestion="Nothing to fix if the validation score is what you "
                "expect. " + f.suggestion)
        out.append(f)
    return out


def _accuracy_vs_base(pool, sel):
    """(accuracy, base rate, standard error of that base rate, examples) of
    `pool`'s windows `sel` pooled, weighted by examples; the base rate is the
    most frequent label's share over all of the family's records (the
    larger sample: the top share of a few hundred labels overstates it)."""
    _, lc = _class_shares(pool)
    acc = pool.scalar(metadata.PRED_ACCURACY)[sel]
    w = pool.weights[sel]
    ok = np.isfinite(acc)
    n = float(w[ok].sum())
    seen = lc.sum(axis=0)
    base = float(seen.max() / max(seen.sum(), 1))
    return (float((acc[ok] * w[ok]).sum() / max(n, 1)), base,
            math.sqrt(base * (1 - base) / max(n, 1)), n)


def _not_generalising(pool, validation, span, th):
    """Train predictions right clearly more often than the base rate while
    the validation predictions of the second half of the run are not: the
    model memorises its training examples and what it learns does not carry
    over (labels shuffled against the inputs, validation data prepared
    differently). Needs fewer validation records than the persistence rule:
    generalisation_examples examples whose accuracy sits at the base rate."""
    if validation is None or _class_shares(pool) is None:
        return []
    vpool = _Pooled(validation, th)
    if (not len(vpool) or _class_shares(vpool) is None
            or vpool.scalar(metadata.PRED_ACCURACY) is None
            or pool.scalar(metadata.PRED_ACCURACY) is None):
        return []
    half = span.warmup_step(0.5)
    vsel = np.nonzero(vpool.steps >= half)[0]
    tsel = np.nonzero(pool.steps >= half)[0]
    if not len(vsel) or not len(tsel):
        return []
    v_acc, v_base, v_sd, v_n = _accuracy_vs_base(vpool, vsel)
    t_acc, t_base, t_sd, _ = _accuracy_vs_base(pool, tsel)
    last = vsel[-1:]  # and still at the base rate at the end
    l_acc, l_base, l_sd, _ = _accuracy_vs_base(vpool, last)
    if (v_n < th.generalisation_examples
            or v_acc > v_base + max(th.baseline_margin, th.baseline_noise_sd * v_sd)
            or l_acc > l_base + max(th.baseline_margin, th.baseline_noise_sd * l_sd)
            or t_acc <= t_base + max(th.baseline_margin, th.baseline_noise_sd * t_sd)
            or t_acc < v_acc + th.generalisation_gap):
        return []
    evidence = {
        "train_accuracy": _r(t_acc),
        "train_majority_label_share": _r(t_base),
        "validation_accuracy": _r(v_acc),
        "validation_majority_label_share": _r(v_base),
        "validation_examples": int(v_n),
        "validation_steps": [int(vpool.steps[vsel[0]]), int(vpool.steps[vsel[-1]])],
    }
    return [
        Finding(
            kind=KIND_NOT_GENERALISING, severity=SEVERITY_WARNING, layer=None,
            first_step=int(pool.steps[tsel[0]]), last_step=int(pool.steps[tsel[-1]]),
            evidence=evidence,
            message="The training %s are right %s of the time (base rate %s), the "
            "validation ones %s, no better than always answering the most frequent "
            "class (%s): the model memorises its training examples and learns "
            "nothing that carries over to new inputs."
            % (_what(pool.pred), _pct(t_acc), _pct(t_base), _pct(v_acc), _pct(v_base)),
            suggestion="Check that the labels line up with their inputs (x and y "
            "shuffled or sorted separately?) and that the validation data is "
            "loaded and preprocessed exactly like the training data.",
        )
    ]


def _run_rule(run, rule, *args):
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


def _pooled_prediction_findings(pred, validation, span, th, out_layer):
    """The rules on a prediction family's pooled windows: collapse, ties and
    class collapse, else no better than the baseline (the more specific kinds
    explain a chance-level accuracy), and class bias where class collapse did
    not fire; `validation` (the family's records in
    the validation sibling, or None) overrules some of them."""
    pool = _Pooled(pred, th)
    found = (_prediction_collapse(pool, span, th, out_layer)
             + _tied_predictions(pool, span, th) + _class_collapse(pool, span, th))
    collapsed = any(f.kind == KIND_CLASS_COLLAPSE for f in found)
    if not found:
        found = _no_better_than_baseline(pool, span, th)
    if not collapsed:  # a partial bias, short of class_collapse
        found += _class_bias(pool, span, th)
    if not any(f.kind == KIND_BASELINE for f in found):
        found += _not_generalising(pool, validation, span, th)
    return _overrule_by_validation(found, validation, th)


def diagnose(run, thresholds=None, validation=None):
    """All findings for one run (a :class:`tb_plugin.reader.RunRecords`).

    `validation`: the records of the run's validation sibling (see
    :func:`validation_sibling`), when `run` is a train run that has one;
    what they show overrules some findings on train predictions. A rule that
    fails adds a warning to ``run.warnings`` instead of its findings.
    """
    th = thresholds or Thresholds()
    span = _run_span(run)
    findings = []
    findings += _manifest_findings(run, span, th)
    if span is None:
        return findings
    out_layer = _output_layer_name(run)
    for name in sorted(run.predictions):
        pred = run.predictions[name]
        findings += _run_rule(run, _nonfinite_predictions, pred, span, th)
        findings += _run_rule(run, _invalid_labels, pred, span, th)
        findings += _run_rule(
            run, _pooled_prediction_findings, pred,
            validation.predictions.get(name) if validation is not None else None,
            span, th, out_layer)
    for name in sorted(run.gradients):
        grad = run.gradients[name]
        findings += _run_rule(run, _nonfinite_gradients, grad, span, th)
        findings += _run_rule(run, _learning_rate_too_high, run, grad, span, th)
        findings += _run_rule(run, _exploding, grad, span, th)
        findings += _run_rule(run, _vanishing, run, grad, span, th)
        findings += _run_rule(run, _dead_units, run, grad, span, th)
        findings += _run_rule(run, _converged, run, grad, span, th)
    from tb_plugin import train_mode_rules

    findings += _run_rule(run, train_mode_rules.record_findings, run, span, th)
    findings += _run_rule(run, _mixed_fits, run, span, th)
    order = {k: i for i, k in enumerate(KINDS)}
    rank = {SEVERITY_ERROR: 0, SEVERITY_WARNING: 1, SEVERITY_INFO: 2}
    findings.sort(key=lambda f: (rank.get(f.severity, 3),
                                 order.get(f.kind, 99),
                                 f.first_step if f.first_step is not None else -1))
    from tb_plugin import root_causes

    return root_causes.link(findings)


def run_status(run, findings):
    """"unhealthy" if any error or warning finding (info findings leave a
    run healthy, a manifest's findings count before any record), else
    "no_data" when the run holds no data point (no records, or an index and a
    manifest only), else "healthy"."""
    if run is None:
        return STATUS_NO_DATA
    if any(f.severity != SEVERITY_INFO for f in findings):
        return STATUS_UNHEALTHY
    return STATUS_HEALTHY if run.has_points else STATUS_NO_DATA


def check_logdir(logdir, run_regex=None, thresholds=None):
    """Diagnoses every health run of `logdir` whose name matches `run_regex`.

    Returns ``{"logdir": str, "runs": [{"run", "status", "findings": [dict],
    "warnings": [str], "intact": bool}]}`` with findings as
    :meth:`Finding.to_json` dicts. `warnings` says what kept the run from
    being read or diagnosed completely (each also logged); `intact` is False
    when records of the run were lost or may be wrong (a damaged or
    unreadable event file, see :class:`tb_plugin.reader.ReadProblem`): its
    findings cover what could be read. A run directory that could not be
    read and showed no health record is listed with status "unreadable"; a
    run that cannot be diagnosed gets status "no_data". Neither affects the
    others. Raises FileNotFoundError if `logdir` is not a directory and
    re.error for a bad `run_regex`.
    """
    from tb_plugin import reader

    pattern = re.compile(run_regex) if run_regex else None
    loaded = reader.load_logdir(logdir)
    runs = reader.health_runs(loaded.provider, None, loaded.experiment_id)
    # Unreadable directories (and runs whose every event file is) may have
    # held health records: they are named with the health runs.
    unreadable = {run for run, problems in loaded.problems.items()
                  if run not in runs and any(p.damaged for p in problems)}
    result = {"logdir": str(logdir), "runs": []}
    siblings = {}  # validation runs read for their train run, kept for their own turn
    for run in sorted(set(runs) | unreadable):
        if pattern is not None and not pattern.search(run):
            continue
        problems = loaded.problems.get(run, [])
        if run in unreadable:
            findings, status, warnings = [], STATUS_UNREADABLE, []
        else:
            findings, status, warnings = _check_run(loaded, run, runs, siblings, thresholds)
        result["runs"].append({
            "run": run,
            "status": status,
            "findings": [f.to_json() for f in findings],
            "warnings": [str(p) for p in problems] + warnings,
            "intact": not any(p.damaged for p in problems),
        })
    return result


def _check_run(loaded, run, runs, siblings, thresholds):
    """(findings, status, warnings) of health run `run` of the loaded log
    directory `loaded` (a :class:`tb_plugin.reader.Logdir`); `siblings`
    keeps the validation runs read for their train run."""
    provider, eid = loaded.provider, loaded.experiment_id
    try:
        records = siblings.pop(run, None) or read_for_diagnosis(provider, None, eid, run)
        sibling = validation_sibling(run, runs)
        validation = None
        if sibling is not None:
            try:
                validation = siblings[sibling] = read_for_diagnosis(
                    provider, None, eid, sibling)
            except Exception:  # noqa: BLE001 - reported on its own turn
                pass
        findings = diagnose(records, thresholds, validation=validation)
    except Exception as e:  # one odd run must not hide the others
        warning = "could not be diagnosed: %s" % e
        logger.warning("run %s %s", run, warning)
        return [], STATUS_NO_DATA, [warning]
    status = run_status(records, findings)
    return findings, status, records.warnings + _point_warnings(records)


def _point_warnings(records):
    """Warnings (also logged) for what the run's health summaries announce
    but hold no data point of: record families its index lists, or the
    whole run."""
    empty = records.families_without_points()
    warnings = []
    if empty:
        warnings.append("no data points in the record famil%s %s that the run's health "
                        "index lists" % ("y" if len(empty) == 1 else "ies",
                                         ", ".join(repr(name) for name in empty)))
    elif not records.has_points:
        warnings.append("no data points: the run holds health summaries but no records")
    for warning in warnings:
        logger.warning("run %s: %s", records.run, warning)
    return warnings
