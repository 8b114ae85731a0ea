"""Diagnosis rules that weigh a train run against its validation sibling
(``x/train`` -> ``x/validation``): findings on train-step predictions that
validation overrules, and a model that does not generalise.

Pure Python + numpy; imports no TensorFlow.
"""

import dataclasses
import math

import numpy as np

from tb_plugin import metadata
from tb_plugin.findings import (
    Finding, KIND_BASELINE, KIND_CLASS_BIAS, KIND_NOT_GENERALISING, KIND_PREDICTION_COLLAPSE,
    SEVERITY_INFO, SEVERITY_WARNING)
from tb_plugin.prediction_rules import above_baseline, class_shares
from tb_plugin.rule_support import Pooled, pct, round_sig, what


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
    pool = Pooled(validation, th)
    if not len(pool) or finding.last_step is None:
        return None
    later = np.nonzero(pool.steps >= finding.last_step)[0]
    i = int(later[0]) if len(later) else len(pool) - 1
    ties = pool.scalar(metadata.PRED_TIE_FRACTION)
    tied = ties is not None and not ties[i] < th.tie_fraction
    if tied or not above_baseline(pool, th)[i]:
        return None
    _, lc = class_shares(pool)
    return {
        "validation_step": int(pool.steps[i]),
        "validation_accuracy": round_sig(pool.scalar(metadata.PRED_ACCURACY)[i]),
        "validation_majority_label_share": round_sig(lc[i].max() / max(lc[i].sum(), 1)),
        "validation_examples": int(pool.weights[i]),
    }


def _unbiased_by_validation(finding, validation, th):
    """The evidence that validation predictions contradict a train-predictions
    class_bias `finding`: None, or the validation windows over the finding's
    steps (or else the first one after), pooled, where its class is not
    over-predicted by class_bias_ratio and class_bias_excess. Validation
    biased as well means the bias is real."""
    pool = Pooled(validation, th)
    shares = class_shares(pool)
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
        "validation_prediction_share": round_sig(p),
        "validation_label_share": round_sig(l),
        "validation_examples": int(pool.weights[sel].sum()),
    }


# Kinds judged on train-step predictions that validation predictions can
# overrule: dropout and noisy batches make the predictions of a train step
# less sure and less right than the model is (heavy dropout keeps them
# near-uniform; a model learning late stays at the base rate for most of a
# short fit).
_OVERRULED_BY_VALIDATION = (KIND_PREDICTION_COLLAPSE, KIND_BASELINE)


def _overruled(finding, seen, contradiction):
    """`finding` made info: the validation evidence `seen` added, the
    sentence `contradiction` appended to its message."""
    return dataclasses.replace(
        finding, severity=SEVERITY_INFO, evidence=dict(finding.evidence, **seen),
        message="%s %s" % (finding.message, contradiction),
        suggestion="Nothing to fix if the validation score is what you expect. "
        + finding.suggestion)


def overrule_by_validation(findings, validation, th):
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
                f = _overruled(
                    f, seen, "Yet the validation predictions over those steps give "
                    "class %d %s of the time against a label share of %s: the train "
                    "steps' predictions (dropout, noisy batches) overstate the bias."
                    % (f.evidence["predicted_class"], pct(seen["validation_prediction_share"]),
                       pct(seen["validation_label_share"])))
            out.append(f)
            continue
        seen = (_learned_by_validation(f, validation, th)
                if f.kind in _OVERRULED_BY_VALIDATION else None)
        if seen is not None:
            f = _overruled(
                f, seen, "Yet the validation predictions at step %d are right %s "
                "of the time against a base rate of %s: the model learned, and the "
                "train steps' predictions (dropout, noisy batches) understate it."
                % (seen["validation_step"], pct(seen["validation_accuracy"]),
                   pct(seen["validation_majority_label_share"])))
        out.append(f)
    return out


def _accuracy_vs_base(pool, sel, th):
    """(accuracy, base rate, examples, whether the accuracy is clearly above
    the base rate: by baseline_margin and baseline_noise_sd standard errors)
    of `pool`'s windows `sel` pooled, weighted by examples; the base rate is
    the most frequent label's share over all of the family's records (the
    larger sample: the top share of a few hundred labels overstates it)."""
    _, lc = class_shares(pool)
    acc = pool.scalar(metadata.PRED_ACCURACY)[sel]
    w = pool.weights[sel]
    ok = np.isfinite(acc)
    n = float(w[ok].sum())
    seen = lc.sum(axis=0)
    base = float(seen.max() / max(seen.sum(), 1))
    pooled = float((acc[ok] * w[ok]).sum() / max(n, 1))
    noise = math.sqrt(base * (1 - base) / max(n, 1))
    return pooled, base, n, pooled > base + max(th.baseline_margin, th.baseline_noise_sd * noise)


def not_generalising(pool, validation, span, th):
    """Train predictions right clearly more often than the base rate while
    the validation predictions of the second half of the run are not: the
    model memorises its training examples and what it learns does not carry
    over (labels shuffled against the inputs, validation data prepared
    differently). Needs fewer validation records than the persistence rule:
    generalisation_examples examples whose accuracy sits at the base rate."""
    if validation is None or class_shares(pool) is None:
        return []
    vpool = Pooled(validation, th)
    if (not len(vpool) or class_shares(vpool) is None
            or vpool.scalar(metadata.PRED_ACCURACY) is None
            or pool.scalar(metadata.PRED_ACCURACY) is None):
        return []
    half = span.warmup_step(0.5)
    vsel = np.nonzero(vpool.steps >= half)[0]
    tsel = np.nonzero(pool.steps >= half)[0]
    if not len(vsel) or not len(tsel):
        return []
    v_acc, v_base, v_n, v_above = _accuracy_vs_base(vpool, vsel, th)
    t_acc, t_base, _, t_above = _accuracy_vs_base(pool, tsel, th)
    last_above = _accuracy_vs_base(vpool, vsel[-1:], th)[3]  # still at it at the end
    if (v_n < th.generalisation_examples or v_above or last_above or not t_above
            or t_acc < v_acc + th.generalisation_gap):
        return []
    evidence = {
        "train_accuracy": round_sig(t_acc),
        "train_majority_label_share": round_sig(t_base),
        "validation_accuracy": round_sig(v_acc),
        "validation_majority_label_share": round_sig(v_base),
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
            % (what(pool.pred), pct(t_acc), pct(t_base), pct(v_acc), pct(v_base)),
            suggestion="Check that the labels line up with their inputs (x and y "
            "shuffled or sorted separately?) and that the validation data is "
            "loaded and preprocessed exactly like the training data.",
        )
    ]
