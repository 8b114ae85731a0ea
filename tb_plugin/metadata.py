"""Plugin name, tag layout and summary metadata of the Health plugin.

Everything tb_plugin records lands in ordinary TensorBoard event files:

* numbers per record (entropy, tie fraction, first/last gradient ratio, ...)
  are *series* summaries of plugin ``health``, data class SCALAR (a float32
  scalar), and distributions per record (top-1 probability, predicted-class
  counts, ...) series summaries of plugin ``health``, data class TENSOR
  holding a float64 ``[bins, 3]`` tensor of ``(left_edge, right_edge, count)``
  rows (the ``histograms`` plugin's layout). TensorBoard's Scalars,
  Histograms and Time Series list their own plugins' tags only, so these
  show in the Health tab alone;
* a gradient record's per-variable numbers are one float32 ``[variables,
  statistics]`` tensor (:data:`SERIES_VARIABLE_STATS`, the statistics named
  in its metadata) and its log10|g| histograms one float32 ``[variables,
  bins]`` tensor of counts (:data:`SERIES_VARIABLE_HISTOGRAMS`, the bins'
  range in its metadata), rows in the order of the family's index: two
  tensors a record instead of seven summaries a variable, so that a run of a
  model with hundreds of variables is read (and listed) in milliseconds;
* a few *headline* numbers per record (:data:`HEADLINE_STATS`, at most 8
  tags per run, each aggregated over the record families written together)
  are ``scalars`` summaries under ``health/<stat>``, so that they plot in
  Time Series beside the loss;
* one ``health`` summary per recorded name (the *index* tag, see
  :func:`index_tag`) carries a JSON description of that record family: its
  kind and, for gradients, the variables in depth order. The manifest (model
  architecture, loss, optimizer, versions) is one more ``health`` summary.
  The Health plugin is active exactly when some run has a ``health`` summary.

Series and index summaries are told apart by their metadata's content
(:func:`series_kind`). Retention: TensorBoard's loaders keep a tag's points
per plugin name, and for ``health`` only 10 (Python loader) or 100 tensors
(Rust data server) by default; the plugin's loader
(:class:`tb_plugin.health_plugin.HealthLoader`) raises it to
:data:`SAMPLES_KEPT` unless ``--samples_per_plugin health=N`` says otherwise,
so every series keeps 1000 points on both loaders.

Format 1 (index content ``{"version": 1}``) stored the series as
``scalars`` and ``histograms`` summaries under the same tags; format 2 as
``health`` series, with one scalar summary per variable and statistic
(``health/<name>/<variable>/<stat>``, see :func:`variable_tag`) and one
histogram per variable. :func:`series_plugins` says where a family's series
are, :func:`compact_gradients` whether its gradients are two tensors a
record, and the reader reads every format.

This module imports no TensorFlow.
"""

import json
import math

from tensorboard.compat.proto import summary_pb2
from tensorboard.plugins.histogram import metadata as histogram_metadata
from tensorboard.plugins.scalar import metadata as scalar_metadata

PLUGIN_NAME = "health"
FORMAT_VERSION = 3
# Points kept per health tag by both TensorBoard loaders (see HealthLoader).
SAMPLES_KEPT = 1000

# Series kinds (the "series" field of a series summary's metadata content).
SERIES_SCALAR = "scalar"
SERIES_HISTOGRAM = "histogram"
# float32 [variables, statistics]: one row per variable of the family's index
# (content field "columns": the statistics, GRADIENT_VARIABLE_STATS names).
SERIES_VARIABLE_STATS = "variable_stats"
# float32 [variables, bins]: counts over equal bins of the content's "range".
SERIES_VARIABLE_HISTOGRAMS = "variable_histograms"
SERIES_KINDS = (SERIES_SCALAR, SERIES_HISTOGRAM, SERIES_VARIABLE_STATS,
                SERIES_VARIABLE_HISTOGRAMS)
HISTOGRAM_SERIES = (SERIES_HISTOGRAM, SERIES_VARIABLE_HISTOGRAMS)

TAG_PREFIX = "health"
MANIFEST_TAG = "health/manifest"
# Headline statistics: ``scalars`` summaries under headline_tag(stat), one
# value per record, aggregated over the record families written together
# (HealthCallback writes a step's families together; each call of a
# tb_plugin.summary writer is one write).
HEADLINE_ENTROPY = "entropy"  # mean normalised entropy of the classifiers
HEADLINE_TIE_FRACTION = "tie_fraction"  # largest tie fraction
HEADLINE_ACCURACY_GAP = "accuracy_gap"  # largest tie_tolerant_accuracy - accuracy
HEADLINE_OUTPUT_NONFINITE = "output_nonfinite"  # NaN/Inf outputs
HEADLINE_FIRST_LAST_RATIO = "first_last_ratio"  # smallest first / last kernel norm
HEADLINE_MAX_UPDATE_RATIO = "max_update_ratio"  # largest ||update|| / ||weight||
HEADLINE_GRADIENT_NONFINITE = "gradient_nonfinite"  # NaN/Inf gradient entries
HEADLINE_STATS = (HEADLINE_ENTROPY, HEADLINE_TIE_FRACTION, HEADLINE_ACCURACY_GAP,
                  HEADLINE_OUTPUT_NONFINITE, HEADLINE_FIRST_LAST_RATIO,
                  HEADLINE_MAX_UPDATE_RATIO, HEADLINE_GRADIENT_NONFINITE)

# Record family names whose index tag (index_tag(name)) is taken.
RESERVED_NAMES = frozenset(("manifest",) + HEADLINE_STATS)

# Record kinds named in an index summary.
KIND_PREDICTIONS = "predictions"
KIND_GRADIENTS = "gradients"
KIND_TRAIN_MODE = "train_mode"  # layers that behave differently in training

# Prediction tasks.
TASK_MULTICLASS = "multiclass"
TASK_BINARY = "binary"
TASK_REGRESSION = "regression"

# Optional fields of a prediction index (besides kind, task, num_classes,
# from_logits, has_labels).
INDEX_LABELS = "labels"  # binary with K > 1 outputs per row: multi-label, K binary problems
INDEX_OUTPUT_DIMS = "output_dims"  # regression: D output dimensions, judged one by one
# Manifest fields (HealthCallback) saying what the prediction records cover.
MANIFEST_RECORDED = "recorded_predictions"  # the prediction families recorded
MANIFEST_NOT_RECORDED = "not_recorded"  # [{"output": name, "reason": why}] outputs left out

# Scalar statistics of a prediction record (suffixes under index_tag(name)).
PRED_ENTROPY = "entropy"  # mean entropy / log K, in [0, 1]
PRED_TIE_FRACTION = "tie_fraction"  # rows whose top-1 value is tied
PRED_ZERO_LOGIT_FRACTION = "zero_logit_fraction"  # logits exactly 0
PRED_NONFINITE = "nonfinite"  # count of NaN/Inf outputs
PRED_ACCURACY = "accuracy"  # argmax accuracy, lowest index wins ties
PRED_TIE_TOLERANT_ACCURACY = "tie_tolerant_accuracy"  # in_top_k(k=1) style
PRED_OUTPUT_STD = "output_std"  # regression: std of outputs over the batch
PRED_TARGET_STD = "target_std"  # regression: std of targets over the batch
# Regression with D > 1 output dimensions (the last axis, targets laid out
# alike): std(output_d) / std(target_d) over the record's rows, per dimension,
# reduced to the largest and the smallest (dimensions whose target is
# constant left out). Every output constant over the inputs: the max is
# tiny; one of them: the min.
PRED_OUTPUT_STD_RATIO_MAX = "output_std_ratio_max"
PRED_OUTPUT_STD_RATIO_MIN = "output_std_ratio_min"
PRED_COUNT = "count"  # rows in the record
# Labels that cannot be scored (class ids out of [0, K) or not whole, binary
# or one-hot values out of [0, 1], NaN), counted by prediction_distribution
# inside tf.function (eagerly they raise a ValueError).
PRED_INVALID_LABELS = "invalid_labels"
# Histogram statistics of a prediction record.
PRED_TOP1_HIST = "top1_probability"  # bins over [0, 1]
PRED_CLASS_PROB_HIST = "class_probability"  # all class probabilities
PRED_PREDICTED_CLASSES = "predicted_classes"  # one bin per class [i, i+1)
PRED_LABEL_CLASSES = "label_classes"  # one bin per class [i, i+1)
# Sum of the sample weights of each class's rows, one bin per class (train
# records of multiclass outputs given per-row sample weights, e.g. class_weight).
PRED_LABEL_WEIGHTS = "label_weights"
PRED_OUTPUT_HIST = "outputs"  # regression outputs

# Statistics of a gradient record, per variable: the columns of the
# GRAD_VARIABLE_STATS tensor (format 2: suffixes under variable_tag(name, path)).
GRAD_NORM = "norm"  # L2 norm of the gradient
GRAD_MAX_ABS = "max_abs"
GRAD_ZERO_FRACTION = "zero_fraction"  # entries exactly 0
GRAD_NONFINITE = "nonfinite"  # count of NaN/Inf entries
GRAD_WEIGHT_NORM = "weight_norm"  # L2 norm of the variable
GRAD_UPDATE_RATIO = "update_ratio"  # ||update|| / ||weight before it||, when known
GRADIENT_VARIABLE_STATS = (GRAD_NORM, GRAD_MAX_ABS, GRAD_ZERO_FRACTION, GRAD_NONFINITE,
                           GRAD_WEIGHT_NORM, GRAD_UPDATE_RATIO)
# Histogram of log10|g| over nonzero entries: per variable, the rows of the
# tensor under stat_tag(name, GRAD_LOG10_HIST) (format 2: a suffix under
# variable_tag(name, path)).
GRAD_LOG10_HIST = "log10_abs"
# Per-record tensors and numbers of all variables (suffixes under index_tag(name)).
GRAD_VARIABLE_STATS = "variable_stats"  # the per-variable statistics, SERIES_VARIABLE_STATS
GRAD_FIRST_LAST_RATIO = "first_last_ratio"  # first kernel norm / last
# An index entry's field saying the variable has no update_ratio (its row of
# the statistics holds 0 there).
INDEX_NO_UPDATE = "no_update"

# Statistics of a train-mode record, per layer (suffixes under
# variable_tag(name, layer path); see tb_plugin.train_mode). Flags are 1/0.
TM_TRAINING = "training"  # the training flag the layer's call received (1: True)
TM_ROOT_TRAINING = "root_training"  # the flag the model itself ran with
TM_BY_CALLER = "inference_by_caller"  # 1: an enclosing layer was called with training=False
TM_ZERO_IN = "zero_in"  # dropout family: zero fraction of the input (subsample)
TM_ZERO_OUT = "zero_out"  # ... of the output, same elements
TM_CHANGED = "changed"  # ... fraction of elements the layer changed (out != in)
TM_UNITS = "units"  # ... independent dropout units in the subsample
TM_MEAN_CHANGE = "mean_change"  # BatchNormalization: max |moving_mean change| since the last record
TM_VARIANCE_CHANGE = "variance_change"  # ... max |moving_variance change|
TRAIN_MODE_STATS = (TM_TRAINING, TM_ROOT_TRAINING, TM_BY_CALLER, TM_ZERO_IN, TM_ZERO_OUT,
                    TM_CHANGED, TM_UNITS, TM_MEAN_CHANGE, TM_VARIANCE_CHANGE)

PROBABILITY_BINS = 40  # bins over [0, 1] for probability histograms
# The log10|g| histogram has one bin per power of two (binary order of
# magnitude: read from the float32 exponent), from 2**-40 (~1e-12) to 2**14
# (~1.6e4); values outside are clipped into the end bins.
LOG2_RANGE = (-40, 14)
LOG10_BINS = LOG2_RANGE[1] - LOG2_RANGE[0]
LOG10_RANGE = (LOG2_RANGE[0] * math.log10(2.0), LOG2_RANGE[1] * math.log10(2.0))


def index_tag(name):
    """The tag of the ``health`` index summary of record family `name`."""
    return "%s/%s" % (TAG_PREFIX, name)


def stat_tag(name, stat):
    """The tag of statistic `stat` of record family `name`."""
    return "%s/%s/%s" % (TAG_PREFIX, name, stat)


def variable_tag(name, variable_path, stat):
    """The tag of per-variable statistic `stat` in gradient family `name`."""
    return "%s/%s/%s/%s" % (TAG_PREFIX, name, variable_path, stat)


def headline_tag(stat):
    """The tag of headline statistic `stat` (one of HEADLINE_STATS)."""
    return "%s/%s" % (TAG_PREFIX, stat)


def tensor_size_guidance():
    """Points kept per tag, by plugin name, by TensorBoard's Python loader
    with default flags and this plugin installed (see SAMPLES_KEPT)."""
    from tensorboard.backend.event_processing import data_ingester

    return dict(data_ingester.DEFAULT_TENSOR_SIZE_GUIDANCE, **{PLUGIN_NAME: SAMPLES_KEPT})


def create_index_metadata(description=""):
    """SummaryMetadata for an index or manifest summary (a JSON string)."""
    return _health_metadata({"version": FORMAT_VERSION}, summary_pb2.DATA_CLASS_TENSOR,
                            description)


def create_series_metadata(kind, description="", **fields):
    """SummaryMetadata for a per-record number (`kind` SERIES_SCALAR),
    distribution (SERIES_HISTOGRAM) or per-variable tensor
    (SERIES_VARIABLE_STATS with ``columns=``, SERIES_VARIABLE_HISTOGRAMS
    with ``range=``) of a record family."""
    data_class = (summary_pb2.DATA_CLASS_SCALAR if kind == SERIES_SCALAR
                  else summary_pb2.DATA_CLASS_TENSOR)
    return _health_metadata(dict(fields, version=FORMAT_VERSION, series=kind), data_class,
                            description)


def create_headline_metadata(description=""):
    """SummaryMetadata for a headline number, in the ``scalars`` format."""
    metadata = scalar_metadata.create_summary_metadata(
        display_name=None, description=description
    )
    metadata.data_class = summary_pb2.DATA_CLASS_SCALAR
    return metadata


def _health_metadata(content, data_class, description):
    return summary_pb2.SummaryMetadata(
        summary_description=description,
        plugin_data=summary_pb2.SummaryMetadata.PluginData(
            plugin_name=PLUGIN_NAME, content=json.dumps(content).encode("utf-8")
        ),
        data_class=data_class,
    )


def _content(content):
    """The JSON object of a ``health`` summary's metadata content ({} when
    it is not one)."""
    try:
        value = json.loads(content)
    except (ValueError, TypeError):  # bad JSON or bytes that are not UTF-8
        return {}
    return value if isinstance(value, dict) else {}


def series_kind(content):
    """One of SERIES_KINDS for the metadata content of a ``health`` series
    summary; None for an index or manifest."""
    kind = _content(content).get("series")
    return kind if kind in SERIES_KINDS else None


def series_fields(content):
    """The JSON object of a series summary's metadata content (its
    ``columns`` or ``range``); {} when it has none."""
    return _content(content)


def compact_gradients(index_content):
    """Whether the gradient family whose index summary has metadata content
    `index_content` stores its per-variable series as two tensors a record
    (format 3 and later)."""
    version = _content(index_content).get("version")
    return isinstance(version, int) and version >= 3


def series_plugins(index_content):
    """(scalar plugin, histogram plugin): where the series of the family whose
    index summary has metadata content `index_content` are stored."""
    version = _content(index_content).get("version")
    if isinstance(version, int) and version >= 2:
        return PLUGIN_NAME, PLUGIN_NAME
    return scalar_metadata.PLUGIN_NAME, histogram_metadata.PLUGIN_NAME


def parse_index(value):
    """Decodes the JSON carried by an index or manifest summary value."""
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    return json.loads(value)
