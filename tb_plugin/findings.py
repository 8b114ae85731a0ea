"""What the diagnosis reports: severities, finding kinds, run statuses, the
:class:`Finding` and its JSON encoding (no bare NaN).

Pure Python + numpy; imports no TensorFlow.
"""

import dataclasses
from typing import Optional

import numpy as np


SEVERITY_ERROR = "error"
SEVERITY_WARNING = "warning"
# Worth knowing, not a problem: a run with only info findings is healthy.
SEVERITY_INFO = "info"

KIND_NONFINITE = "nonfinite"
KIND_INVALID_LABELS = "invalid_labels"
KIND_SKEWED_CLASS_WEIGHTS = "skewed_class_weights"
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
    KIND_SKEWED_CLASS_WEIGHTS,
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
