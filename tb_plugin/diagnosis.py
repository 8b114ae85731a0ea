"""Turns the recorded health statistics of a run into findings.

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

This module runs the rules (:func:`diagnose`, :func:`check_logdir`); they
live in the modules of their records: :mod:`tb_plugin.prediction_rules`,
:mod:`tb_plugin.gradient_rules`, :mod:`tb_plugin.manifest_rules`,
:mod:`tb_plugin.validation_rules`, :mod:`tb_plugin.train_mode_rules`, with
:mod:`tb_plugin.findings` (kinds, :class:`Finding`),
:mod:`tb_plugin.thresholds` and :mod:`tb_plugin.rule_support` (persistence,
windows); :mod:`tb_plugin.root_causes` links symptoms to their cause.

Pure Python + numpy; imports no TensorFlow.
"""

import logging
import re

import numpy as np

from tb_plugin import metadata, root_causes
from tb_plugin.findings import (  # noqa: F401 - the diagnosis' public names
    Finding, JSON_INFINITY, JSON_MAX_DEPTH, JSON_NAN, JSON_NEGATIVE_INFINITY, JSON_TOO_DEEP, KINDS,
    KIND_BASELINE, KIND_CLASS_BIAS, KIND_CLASS_COLLAPSE, KIND_CONVERGED, KIND_DEAD_UNITS,
    KIND_DROPOUT_RATE_ZERO, KIND_EXPLODING, KIND_FROZEN_BATCHNORM, KIND_INVALID_LABELS,
    KIND_LEARNING_RATE, KIND_MIXED_FITS, KIND_NONFINITE, KIND_NOT_COVERED, KIND_NOT_GENERALISING,
    KIND_OUTPUT_ACTIVATION, KIND_PREDICTION_COLLAPSE, KIND_SKEWED_CLASS_WEIGHTS,
    KIND_TIED_PREDICTIONS,
    KIND_TRAINING_ARG_MISSING, KIND_TRAIN_MODE_INACTIVE, KIND_TRAIN_MODE_OVERRIDDEN,
    KIND_VANISHING, MANIFEST_KINDS, SEVERITY_ERROR, SEVERITY_INFO, SEVERITY_WARNING,
    STATUS_HEALTHY, STATUS_NO_DATA, STATUS_UNHEALTHY, STATUS_UNREADABLE, json_floats, json_safe,
    validate_kinds)
from tb_plugin.gradient_rules import (
    converged, dead_units, exploding, first_layer_gradient_ratio, learning_rate_too_high,
    nonfinite_gradients, vanishing)
from tb_plugin.manifest_rules import diagnose_manifest, manifest_findings
from tb_plugin.prediction_rules import (
    class_bias, class_collapse, invalid_labels, no_better_than_baseline, nonfinite_predictions,
    prediction_collapse, skewed_class_weights, tied_predictions)
from tb_plugin.rule_support import Pooled, output_layer_name, run_rule, run_span
from tb_plugin.thresholds import Thresholds, thresholds_from
from tb_plugin.validation_rules import not_generalising, overrule_by_validation, validation_sibling

logger = logging.getLogger(__name__)


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


# The histogram statistics the rules read. A read for the diagnosis alone
# (tb-health check, the callback's online diagnosis) skips the others: the
# probability and log10|g| histograms are most of a record's bytes.
HISTOGRAMS_READ = frozenset({metadata.PRED_PREDICTED_CLASSES, metadata.PRED_LABEL_CLASSES,
                             metadata.PRED_LABEL_WEIGHTS})


def read_for_diagnosis(provider, ctx, experiment_id, run):
    """What :func:`diagnose` reads of `run`: its records without the
    histograms no rule looks at (see HISTOGRAMS_READ)."""
    from tb_plugin import reader

    return reader.read_run(provider, ctx, experiment_id, run, histograms=HISTOGRAMS_READ)


def pooled_prediction_findings(pred, validation, span, th, out_layer):
    """The rules on a prediction family's pooled windows: collapse, ties and
    class collapse, else no better than the baseline (the more specific kinds
    explain a chance-level accuracy), and class bias where class collapse did
    not fire; `validation` (the family's records in
    the validation sibling, or None) overrules some of them."""
    pool = Pooled(pred, th)
    found = (prediction_collapse(pool, span, th, out_layer)
             + tied_predictions(pool, span, th) + class_collapse(pool, span, th))
    collapsed = any(f.kind == KIND_CLASS_COLLAPSE for f in found)
    if not found:
        found = no_better_than_baseline(pool, span, th)
    if not collapsed:  # a partial bias, short of class_collapse
        found += class_bias(pool, span, th)
    if not any(f.kind == KIND_BASELINE for f in found):
        found += not_generalising(pool, validation, span, th)
    return overrule_by_validation(found, validation, th)


def diagnose(run, thresholds=None, validation=None):
    """All findings for one run (a :class:`tb_plugin.reader.RunRecords`).

    `validation`: the records of the run's validation sibling (see
    :func:`validation_sibling`), when `run` is a train run that has one;
    what they show overrules some findings on train predictions. A rule that
    fails adds a warning to ``run.warnings`` instead of its findings.
    """
    th = thresholds or Thresholds()
    span = run_span(run)
    findings = []
    findings += manifest_findings(run, span, th)
    if span is None:
        return findings
    out_layer = output_layer_name(run)
    for name in sorted(run.predictions):
        pred = run.predictions[name]
        findings += run_rule(run, nonfinite_predictions, pred, span, th)
        findings += run_rule(run, invalid_labels, pred, span, th)
        findings += run_rule(run, skewed_class_weights, pred, span, th)
        findings += run_rule(
            run, pooled_prediction_findings, pred,
            validation.predictions.get(name) if validation is not None else None,
            span, th, out_layer)
    for name in sorted(run.gradients):
        grad = run.gradients[name]
        findings += run_rule(run, nonfinite_gradients, grad, span, th)
        findings += run_rule(run, learning_rate_too_high, run, grad, span, th)
        findings += run_rule(run, exploding, grad, span, th)
        findings += run_rule(run, vanishing, run, grad, span, th)
        findings += run_rule(run, dead_units, run, grad, span, th)
        findings += run_rule(run, converged, run, grad, span, th)
    from tb_plugin import train_mode_rules

    findings += run_rule(run, train_mode_rules.record_findings, run, span, th)
    findings += run_rule(run, _mixed_fits, run, span, th)
    order = {k: i for i, k in enumerate(KINDS)}
    rank = {SEVERITY_ERROR: 0, SEVERITY_WARNING: 1, SEVERITY_INFO: 2}
    findings.sort(key=lambda f: (rank.get(f.severity, 3),
                                 order.get(f.kind, 99),
                                 f.first_step if f.first_step is not None else -1))
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
