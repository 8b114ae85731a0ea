"""Diagnosis rules on prediction records: NaN/Inf outputs, labels that cannot
be scored, class weights that make one class dominate the loss, collapsed,
tied or one-class predictions, a class over-predicted, and an accuracy no
better than the base rate.

Pure Python + numpy; imports no TensorFlow.
"""

import math

import numpy as np

from tb_plugin import metadata
from tb_plugin.findings import (
    Finding, KIND_BASELINE, KIND_CLASS_BIAS, KIND_CLASS_COLLAPSE, KIND_INVALID_LABELS,
    KIND_NONFINITE, KIND_PREDICTION_COLLAPSE, KIND_SKEWED_CLASS_WEIGHTS, KIND_TIED_PREDICTIONS,
    SEVERITY_ERROR,
    SEVERITY_WARNING)
from tb_plugin.rule_support import (
    flagged_records, fmt, nanmedian, pct, put_median, round_sig, sustained, values_at, what,
    window_finding)


def nonfinite_predictions(pred, span, th):
    flagged = flagged_records(pred, metadata.PRED_NONFINITE,
                               lambda v: ~np.isfinite(v) | (v > 0))
    if flagged is None:
        return []
    s, idx, first, last = flagged
    count = pred.scalars.get(metadata.PRED_COUNT)
    evidence = {
        "first_step": first,
        "records_with_nonfinite": len(idx),
        "records": int(len(s)),
        "nonfinite_outputs_first": round_sig(float(s.values[idx[0]])),
    }
    if count is not None and len(count):
        evidence["rows_per_record"] = round_sig(nanmedian(count.values))
    return [
        Finding(
            kind=KIND_NONFINITE,
            severity=SEVERITY_ERROR,
            layer=None,
            first_step=first,
            last_step=last,
            evidence=evidence,
            message="The model's %s contain NaN or Inf from step %d on."
            % (what(pred), first),
            suggestion="Find the first non-finite value: check the input data for "
            "NaN/Inf, lower the learning rate, add gradient clipping (clipnorm), "
            "and guard log/division/sqrt in custom losses with an epsilon.",
        )
    ]


def invalid_labels(pred, span, th):
    """Labels that cannot be scored (counted by the recording inside
    tf.function; eagerly they raise): a loss fed such labels is silently
    wrong (binary cross-entropy takes a 2 as it is)."""
    flagged = flagged_records(pred, metadata.PRED_INVALID_LABELS,
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
        evidence["labels_in_those_records"] = int(np.nansum(values_at(count, s.steps[idx])))
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
            "targets." % (evidence["invalid_labels"], what(pred),
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


def regression_collapse(pool, span, th, output_layer):
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
    hit = sustained(steps, cond, span, th, weights=pool.weights)
    partial = False
    if hit is None and r_min is not None:
        cond = np.isfinite(r_min) & (r_min < th.collapse_std_ratio)
        hit = sustained(steps, cond, span, th, weights=pool.weights)
        partial = True
    if hit is None:
        return []
    a, b = hit
    evidence = {}
    if o is not None and t is not None:
        evidence["output_std"] = round_sig(nanmedian(o[a:b + 1]))
        evidence["target_std"] = round_sig(nanmedian(t[a:b + 1]))
    # std_ratio: the ratio judged (per dimension: the largest, or the
    # smallest for one constant output).
    evidence["std_ratio"] = round_sig(nanmedian((r_min if partial else ratio)[a:b + 1]))
    if r_max is not None:
        evidence["std_ratio_max"] = round_sig(nanmedian(r_max[a:b + 1]))
        if r_min is not None:
            evidence["std_ratio_min"] = round_sig(nanmedian(r_min[a:b + 1]))
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
                   % (of_dims, what(pred), fmt(evidence["std_ratio_min"]),
                      fmt(evidence["std_ratio_max"])))
    elif r_max is not None:
        message = ("Every one of %s of the %s is nearly constant: even the largest "
                   "std(output) / std(target) over the output dimensions is %s, so the "
                   "outputs do not depend on the input."
                   % (of_dims, what(pred), fmt(evidence["std_ratio_max"])))
    else:
        message = ("The %s are nearly constant: their std is %s against the targets' %s "
                   "(ratio %s), so the output does not depend on the input."
                   % (what(pred), fmt(evidence["output_std"]),
                      fmt(evidence["target_std"]), fmt(evidence["std_ratio"])))
    return [
        window_finding(
            KIND_PREDICTION_COLLAPSE, steps, a, b, evidence, message=message,
            suggestion=_COLLAPSE_SUGGESTION,
            severity=SEVERITY_WARNING if partial else SEVERITY_ERROR,
        )
    ]


def prediction_collapse(pool, span, th, output_layer):
    pred = pool.pred
    steps = pool.steps
    if pred.task == metadata.TASK_REGRESSION:
        return regression_collapse(pool, span, th, output_layer)

    ent = pool.scalar(metadata.PRED_ENTROPY)
    if ent is None:
        return []
    cond = np.isfinite(ent) & (ent >= th.collapse_entropy) & ~above_baseline(pool, th)
    hit = sustained(steps, cond, span, th, weights=pool.weights)
    if hit is None:
        return []
    a, b = hit
    k = 2 if pred.task == metadata.TASK_BINARY else pred.num_classes
    evidence = {
        "normalized_entropy": round_sig(nanmedian(ent[a:b + 1])),
        "threshold": th.collapse_entropy,
        "num_classes": int(k),
        "uniform_probability": round_sig(1.0 / k),
        "examples": int(pool.weights[a:b + 1].sum()),
    }
    for stat in (metadata.PRED_ZERO_LOGIT_FRACTION, metadata.PRED_TIE_FRACTION,
                 metadata.PRED_ACCURACY, metadata.PRED_TIE_TOLERANT_ACCURACY):
        put_median(evidence, stat, pred.scalars.get(stat), steps[a], steps[b])
    if output_layer:
        evidence["output_layer"] = output_layer
    zero = evidence.get(metadata.PRED_ZERO_LOGIT_FRACTION)
    detail = ""
    if isinstance(zero, float) and zero >= 0.5:
        detail = "; %s of the logits are exactly 0" % pct(zero)
    return [
        window_finding(
            KIND_PREDICTION_COLLAPSE, steps, a, b, evidence,
            message="The %s are nearly uniform over the %d classes "
            "(normalised entropy %s, every class ~%s%s): the model is not telling the "
            "classes apart." % (what(pred), k, fmt(evidence["normalized_entropy"]),
                                fmt(1.0 / k), detail),
            suggestion="Look for the cause among this run's other findings. Common ones: "
            "an activation (ReLU) on logits fed to a from_logits=True loss, dead or "
            "vanishing layers, a bad initialisation or learning rate.",
        )
    ]


def tied_predictions(pool, span, th):
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
    hit = sustained(steps, cond, span, th, weights=pool.weights)
    if hit is None:
        return []
    a, b = hit
    evidence = {
        "tie_fraction": round_sig(nanmedian(t[a:b + 1])),
        "threshold": th.tie_fraction,
        "examples": int(pool.weights[a:b + 1].sum()),
    }
    if gap is not None:
        evidence["accuracy"] = round_sig(nanmedian(a_[a:b + 1]))
        evidence["tie_tolerant_accuracy"] = round_sig(nanmedian(b_[a:b + 1]))
        evidence["accuracy_gap"] = round_sig(nanmedian(gap[a:b + 1]))
        message = ("%s of the %s are ties for the top class, so a "
                   "tie-tolerant accuracy (tf.nn.in_top_k) reports %s while the argmax "
                   "accuracy is %s." % (pct(evidence["tie_fraction"]), what(pred),
                                        pct(evidence["tie_tolerant_accuracy"]),
                                        pct(evidence["accuracy"])))
    else:
        message = ("%s of the %s are ties for the top class; any "
                   "tie-tolerant metric (tf.nn.in_top_k) overstates accuracy."
                   % (pct(evidence["tie_fraction"]), what(pred)))
    return [
        window_finding(
            KIND_TIED_PREDICTIONS, steps, a, b, evidence,
            message=message,
            suggestion="Measure accuracy with argmax (tf.argmax(logits, 1) == labels), "
            "not tf.nn.in_top_k(k=1), and fix what makes the outputs tie (often all "
            "logits 0 after a ReLU on the output layer).",
        )
    ]


def _weight_skew(weights, labels, th):
    """Per row of per-class sums (sample weights, label counts): the class
    carrying the largest share of the weight, its share, and whether it is
    skewed: share >= class_bias_ratio / K and >= 1/K + class_bias_excess,
    its rows weighing class_bias_ratio times the others' on average."""
    k = weights.shape[1]
    cls = np.argmax(weights, axis=1)
    i = np.arange(len(cls))
    w_tot, l_tot = weights.sum(axis=1), labels.sum(axis=1)
    w_c, l_c = weights[i, cls], labels[i, cls]
    with np.errstate(divide="ignore", invalid="ignore"):
        share = w_c / w_tot
        mean_c = w_c / l_c
        mean_rest = (w_tot - w_c) / (l_tot - l_c)
    skewed = ((w_tot > 0) & (l_c > 0) & (l_tot > l_c)
              & (share >= th.class_bias_ratio / k) & (share >= 1.0 / k + th.class_bias_excess)
              & (mean_c >= th.class_bias_ratio * mean_rest))
    return cls, share, mean_c, mean_rest, skewed


def skewed_class_weights(pred, span, th):
    """Sample weights (class_weight) that give one class most of the loss,
    pooled over the run's records (per-class weights rarely change): known
    from the first record, before the predictions bend to that class.
    first_step is the first record from which the pooled sums show it."""
    lw = pred.histograms.get(metadata.PRED_LABEL_WEIGHTS)
    lc = pred.histograms.get(metadata.PRED_LABEL_CLASSES)
    if lw is None or lc is None or not len(lw.steps) or not len(lc.steps):
        return []
    pos = np.clip(np.searchsorted(lc.steps, lw.steps), 0, len(lc.steps) - 1)
    keep = ((lc.steps[pos] == lw.steps) & np.isfinite(lw.counts).all(axis=1)
            & (lw.counts >= 0).all(axis=1))
    if not keep.any() or lw.counts.shape[1] < 2 or lw.counts.shape != lc.counts.shape:
        return []
    steps = lw.steps[keep]
    weights = np.cumsum(lw.counts[keep].astype(np.float64), axis=0)
    labels = np.cumsum(lc.counts[pos[keep]].astype(np.float64), axis=0)
    cls, share, mean_c, mean_rest, skewed = _weight_skew(weights, labels, th)
    if not skewed[-1]:
        return []
    c = int(cls[-1])
    first = int(np.flatnonzero(skewed & (cls == c))[0])
    evidence = {
        "class": c,
        "weight_share": round_sig(share[-1]),
        "label_share": round_sig(labels[-1, c] / labels[-1].sum()),
        "mean_weight": round_sig(mean_c[-1]),
        "mean_weight_others": round_sig(mean_rest[-1]),
        "num_classes": int(weights.shape[1]),
        "ratio_threshold": th.class_bias_ratio,
        "excess_threshold": th.class_bias_excess,
        "examples": int(labels[-1].sum()),
        "records": int(len(steps)),
    }
    return [
        Finding(
            kind=KIND_SKEWED_CLASS_WEIGHTS,
            severity=SEVERITY_WARNING,
            layer=None,
            first_step=int(steps[first]),
            last_step=int(steps[-1]),
            evidence=evidence,
            message="Class %d carries %s of the sample weight of the %s although it is "
            "%s of the labels (its rows weigh %s, the others' %s on average): the loss "
            "is dominated by one class, which pushes predictions to it."
            % (c, pct(evidence["weight_share"]), what(pred), pct(evidence["label_share"]),
               fmt(evidence["mean_weight"]), fmt(evidence["mean_weight_others"])),
            suggestion="Check class_weight / sample weights for a typo (50 for 5.0 or "
            "0.5); to compensate an imbalance, weight each class by about 1 / its label "
            "share (n / (K * count)), which gives every class the same weighted share.",
        )
    ]


def class_shares(pool):
    """Per window: (predicted counts, label counts) as [windows, K] arrays,
    or None when the family has no class counts."""
    if pool.pred.task == metadata.TASK_REGRESSION:
        return None
    pc = pool.counts(metadata.PRED_PREDICTED_CLASSES)
    lc = pool.counts(metadata.PRED_LABEL_CLASSES)
    if pc is None or lc is None or pc.shape[1] < 2 or pc.shape != lc.shape:
        return None
    return pc, lc


def not_uniform(pool, th):
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


def above_baseline(pool, th):
    """Windows whose argmax accuracy is clearly above the most frequent
    label's share (by baseline_margin and baseline_noise_sd standard
    errors): the model tells classes apart, however unsure its
    probabilities (heavy dropout, a slow start)."""
    shares = class_shares(pool)
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


def _class_evidence(pool, a, b, cls, num_classes, prediction_share, label_share,
                    **thresholds):
    """Evidence of a finding about class `cls` over windows a..b of `pool`."""
    evidence = {
        "predicted_class": cls,
        "prediction_share": round_sig(prediction_share),
        "label_share": round_sig(label_share),
        **thresholds,
        "num_classes": int(num_classes),
        "examples": int(pool.weights[a:b + 1].sum()),
    }
    put_median(evidence, "accuracy", pool.pred.scalars.get(metadata.PRED_ACCURACY),
               pool.steps[a], pool.steps[b])
    return evidence


def class_collapse(pool, span, th):
    shares = class_shares(pool)
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
            & (lshare <= th.class_collapse_label_share) & not_uniform(pool, th))
    hit = sustained(steps, cond, span, th, weights=pool.weights)
    if hit is None:
        return []
    a, b = hit
    cls = int(np.bincount(top[a:b + 1]).argmax())
    evidence = _class_evidence(
        pool, a, b, cls, pc.shape[1], pc[a:b + 1, cls].sum() / max(ptot[a:b + 1].sum(), 1),
        lc[a:b + 1, cls].sum() / max(ltot[a:b + 1].sum(), 1),
        threshold=th.class_collapse_fraction)
    return [
        window_finding(
            KIND_CLASS_COLLAPSE, steps, a, b, evidence,
            message="%s of the %s are class %d, which is only %s of the "
            "labels: the model predicts one class for (nearly) every input."
            % (pct(evidence["prediction_share"]), what(pool.pred), cls,
               pct(evidence["label_share"])),
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


def class_bias(pool, span, th):
    """One class predicted far more often than it occurs, sustained, short
    of class_collapse: e.g. a class_weight that favours it (partial after
    the first steps), a label encoding that maps two classes to one."""
    shares = class_shares(pool)
    if shares is None:
        return []
    pc, lc = shares
    steps = pool.steps
    top, biased = _biased_to(pc, lc, th)
    hit = sustained(steps, biased & not_uniform(pool, th), span, th, weights=pool.weights)
    if hit is None:
        return []
    a, b = hit
    cls = int(np.bincount(top[a:b + 1][biased[a:b + 1]]).argmax())
    p = pc[a:b + 1, cls].sum() / max(pc[a:b + 1].sum(), 1)
    l = lc[a:b + 1, cls].sum() / max(lc[a:b + 1].sum(), 1)
    # Pooled over the streak, the class must still meet both thresholds.
    if not (p >= th.class_bias_ratio * l and p >= l + th.class_bias_excess):
        return []
    evidence = _class_evidence(pool, a, b, cls, pc.shape[1], p, l,
                               ratio_threshold=th.class_bias_ratio,
                               excess_threshold=th.class_bias_excess)
    return [
        window_finding(
            KIND_CLASS_BIAS, steps, a, b, evidence, severity=SEVERITY_WARNING,
            message="%s of the %s are class %d, which is only %s of the labels: "
            "the model over-predicts that class (at least %s of the inputs are "
            "given to it wrongly)."
            % (pct(p), what(pool.pred), cls, pct(l), pct(p - l)),
            suggestion="Check class_weight / sample weights (a weight far above the "
            "others pushes predictions to its class) and the label encoding (two "
            "classes mapped to one).",
        )
    ]


def no_better_than_baseline(pool, span, th):
    """Accuracy not above the share of the most frequent label: the model
    learned the prior only (or the labels carry no information)."""
    shares = class_shares(pool)
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
    # Near-uniform or tied windows are no better than the base rate either
    # (their argmax is an accident): they continue the state, so that a
    # model hovering around collapse_entropy, at chance, is not split
    # between two rules that each see too little.
    cond = (n > 0) & np.isfinite(acc) & ((acc <= base + margin) | ~not_uniform(pool, th))
    hit = sustained(steps, cond, span, th, weights=pool.weights)
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
        "accuracy": round_sig(float(np.nansum(acc[a:b + 1] * w) / max(w.sum(), 1))),
        "majority_class": cls,
        "majority_label_share": round_sig(total[cls] / max(total.sum(), 1)),
        "margin": th.baseline_margin,
        "examples": int(w.sum()),
    }
    constant = evidence["majority_label_share"] >= 0.999
    if constant:
        message = ("Every label of the %s is class %d: there is nothing to learn, and "
                   "the %s accuracy says nothing." % (what(pool.pred), cls, pct(
                       evidence["accuracy"])))
        suggestion = ("Check how the labels are loaded and encoded (a constant "
                      "label column, labels taken from the wrong field).")
    else:
        message = ("The %s are right %s of the time, no better than always answering "
                   "the most frequent class %d (%s of the labels): the model has "
                   "learned the class frequencies, not the task."
                   % (what(pool.pred), pct(evidence["accuracy"]), cls,
                      pct(evidence["majority_label_share"])))
        suggestion = ("Check that labels line up with their inputs (shuffled "
                      "separately?), and that the inputs carry the signal (normalised, "
                      "not constant); for imbalanced classes, judge per-class recall or "
                      "balanced accuracy, and consider class_weight.")
    return [
        window_finding(KIND_BASELINE, steps, a, b, evidence, message=message,
                        suggestion=suggestion, severity=SEVERITY_WARNING)
    ]
