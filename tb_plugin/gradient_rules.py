"""Diagnosis rules on gradient records: NaN/Inf gradients, vanishing and
exploding gradients, a learning rate far too high, dead units, and a model
that has converged (nothing left to learn).

Pure Python + numpy; imports no TensorFlow.
"""

import warnings

import numpy as np

from tb_plugin import metadata
from tb_plugin.findings import (
    Finding, KIND_CONVERGED, KIND_DEAD_UNITS, KIND_EXPLODING, KIND_LEARNING_RATE, KIND_NONFINITE,
    KIND_VANISHING, SEVERITY_ERROR, SEVERITY_INFO, SEVERITY_WARNING)
from tb_plugin.prediction_rules import above_baseline
from tb_plugin.rule_support import (
    Pooled, fmt, is_kernel, layer_of, nanmedian, pct, put_median, round_sig, short_path, streaks,
    sustained, what, window_finding)


def kernel_paths(grad):
    return [p for p in grad.variables if is_kernel(p, grad.shapes.get(p))]


def nonfinite_gradients(grad, span, th):
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
            % (what(grad, "gradients"), first, len(first_by_var), len(grad.variables),
               short_path(culprit)),
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
    has = np.array([p in ratios and is_kernel(p, grad.shapes.get(p))
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
    kernels = [p for p in kernel_paths(grad) if p in grad.stats.get(metadata.GRAD_NORM, {})]
    if len(kernels) < 2:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    norm = grad.matrix(metadata.GRAD_NORM)
    i = grad.variables.index(kernels[0])
    present, out = _output_gradient_norm(grad)
    keep = present & norm.present[i]
    with np.errstate(divide="ignore", invalid="ignore"):
        return grad.steps[keep], norm.values[i, keep] / out[keep]


def vanishing(run, grad, span, th):
    norms = grad.stats.get(metadata.GRAD_NORM, {})
    zeros = grad.stats.get(metadata.GRAD_ZERO_FRACTION, {})
    ratios = grad.stats.get(metadata.GRAD_UPDATE_RATIO, {})
    kernels = [p for p in kernel_paths(grad) if p in norms]
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
    last_layer = layer_of(kernels[-1])
    last_present, last_norm = _output_gradient_norm(grad)
    if not last_present.any():
        return []
    silent = _silent_output(grad)
    fits = _fits_training_data(run, grad, th)
    later_all, later_max, later_count = _later_update_ratios(grad)
    hits = []
    for p in kernels:
        if layer_of(p) == last_layer:
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
        hit = sustained(steps, cond, span, th)
        if hit is None:
            continue
        a, b = hit
        ev = {
            "norm": round_sig(nanmedian(n_p[a:b + 1])),
            "norm_ratio_to_last": round_sig(nanmedian(rel[a:b + 1])),
        }
        if u_p is not None:
            ev["update_ratio"] = round_sig(nanmedian(u_p[a:b + 1]))
            ev["max_later_update_ratio"] = round_sig(nanmedian(u_max[a:b + 1]))
        hits.append((p, int(steps[a]), int(steps[b]), ev))
    if not hits:
        return []
    first_var = hits[0][0]
    first = min(h[1] for h in hits)
    lastst = max(h[2] for h in hits)
    evidence = {
        "last_layer": last_layer,
        "last_layer": last_layer,
        "last_layer_norm": round_sig(nanmedian(last_norm[last_present])),
        "vanishing_ratio_threshold": th.vanishing_ratio,
        "update_ratio_low": th.update_ratio_low,
        "update_ratio_guideline": th.update_ratio_guideline,
        "layers": {h[0]: h[3] for h in hits},
    }
    ev0 = hits[0][3]
    detail = "a gradient %s the size of the output layer's" % fmt(ev0["norm_ratio_to_last"])
    if "update_ratio" in ev0:
        detail += " and an update/weight ratio of %s (guideline ~%s)" % (
            fmt(ev0["update_ratio"]), fmt(th.update_ratio_guideline))
    names = ", ".join(short_path(h[0]) for h in hits)
    return [
        Finding(
            kind=KIND_VANISHING,
            severity=SEVERITY_ERROR,
            layer=first_var,
            first_step=first,
            last_step=lastst,
            evidence=evidence,
            message="Gradients vanish before reaching the early layers (%s): %s gets "
            "%s, so it barely learns." % (names, short_path(first_var), detail),
            suggestion="Use Glorot/He initialisation instead of a tiny one, ReLU-family "
            "activations instead of stacked sigmoid/tanh, batch normalisation or "
            "residual connections, and/or an adaptive optimiser (Adam).",
        )
    ]


def learned_anyway(run, th):
    """Whether the run's last train prediction window is clearly above the
    base rate: a model that learns despite large first steps is working."""
    for pred in run.predictions.values():
        pool = Pooled(pred, th)
        if len(pool) and above_baseline(pool, th)[-1]:
            return True
    return False


def learning_rate_too_high(run, grad, span, th):
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
    kernels = [p for p in kernel_paths(grad) if p in ratios and p in wnorms]
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
    for a, b in streaks(large):
        if b > a and early[a] and (hit is None or b - a > hit[1] - hit[0]):
            hit = (a, b)
    if hit is None or learned_anyway(run, th):
        return []
    a, b = hit
    seg = upd.values[rows][:, a:b + 1]
    seg = seg[np.isfinite(seg)]  # a weight that was exactly 0 gives an infinite ratio
    evidence = {
        "update_ratio_max": round_sig(float(seg.max())) if seg.size else float("inf"),
        "update_ratio_high": th.update_ratio_high,
        "update_ratio_guideline": th.update_ratio_guideline,
        "kernels": len(kernels),
        "records": int(b - a + 1),
    }
    return [
        window_finding(
            KIND_LEARNING_RATE, steps, a, b, evidence,
            message="From step %d the weights change by up to %s of their size in "
            "one step (update/weight ratio, guideline ~%s): the steps are far too "
            "large for these weights." % (steps[a], pct(evidence["update_ratio_max"]),
                                          fmt(th.update_ratio_guideline)),
            suggestion="Lower the learning rate (by 10-100x), or use a schedule with "
            "warm-up; if the weights were initialised tiny, use Glorot/He "
            "initialisation instead.",
        )
    ]


def exploding(grad, span, th):
    norms = grad.stats.get(metadata.GRAD_NORM, {})
    kernels = [p for p in kernel_paths(grad) if p in norms] or [
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
        grown = cond_growth | cond_abs
        # Overflow is the end point of an explosion: non-finite records right
        # after exploding ones continue its streak (a NaN out of nowhere, e.g.
        # from the data, is reported by nonfinite only).
        cond = grown.copy()
        for j in range(1, len(cond)):
            if not fin[j] and cond[j - 1]:
                cond[j] = True
        hit = sustained(s.steps, cond, span, th, state=False)
        if hit is None:
            continue
        a, b = hit
        if not grown[a:b + 1].any():
            continue
        seg = v[a:b + 1][fin[a:b + 1]]
        peak = float(np.max(seg)) if seg.size else float("inf")
        overflow = np.flatnonzero(~fin[a:b + 1])
        if overflow.size:
            b = a + int(overflow[0])  # report up to the first overflow
        hits.append((p, int(s.steps[a]), int(s.steps[b]), {
            "baseline_norm": round_sig(base),
            "max_norm": round_sig(peak),
            "growth": round_sig(peak / base),
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
    put_median(evidence, "first_last_ratio",
                grad.scalars.get(metadata.GRAD_FIRST_LAST_RATIO), first, lastst)
    worst = max(hits, key=lambda h: h[3]["max_norm"])
    if all_layers:
        layer = None
        msg = ("The gradients of every layer explode together (from step %d, up to "
               "norm %s, %sx their starting size); the first/last ratio stays normal, "
               "so ratio-based checks miss it."
               % (first, fmt(worst[3]["max_norm"]), fmt(worst[3]["growth"])))
    else:
        layer = hits[0][0]
        msg = ("The gradients of %s explode (from step %d, up to norm %s, %sx their "
               "starting size)." % (", ".join(short_path(h[0]) for h in hits), first,
                                    fmt(worst[3]["max_norm"]), fmt(worst[3]["growth"])))
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
    kernels = kernel_paths(grad) or list(grad.variables)
    if not kernels:
        return []
    layer = layer_of(kernels[-1])
    return [i for i, p in enumerate(grad.variables) if layer_of(p) == layer]


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


def converged(run, grad, span, th):
    """Info: the output layer gets no gradient while the predictions are
    right; zero gradients are then not dead or vanishing layers."""
    done = _silent_output(grad) & _fits_training_data(run, grad, th)
    steps = grad.steps
    hit = sustained(steps, done, span, th, state=False)
    if hit is None:
        return []
    a, b = hit
    evidence = {"records": int(done.sum()), "accuracy_at_least": th.converged_accuracy}
    return [
        window_finding(
            KIND_CONVERGED, steps, a, b, evidence, severity=SEVERITY_INFO,
            message="From step %d the training batches are (nearly) all predicted right "
            "and the loss sends no gradient back: the model fits its training data, "
            "and nothing is left to learn from it." % steps[a],
            suggestion="Nothing to fix in training itself. If the validation accuracy "
            "is lower, the model is memorising: add data, augmentation or "
            "regularisation, or stop earlier.",
        )
    ]


def dead_units(run, grad, span, th):
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
        hit = sustained(s.steps, cond, span, th)
        if hit is None:
            continue
        a, b = hit
        frac = nanmedian(s.values[a:b + 1][cond[a:b + 1]])
        dead_layers.append((p, a, b, frac, s))
    for i, (p, a, b, frac, s) in enumerate(dead_layers):
        shape = grad.shapes.get(p) or []
        units = int(shape[0]) if shape else None
        evidence = {
            "zero_gradient_fraction": round_sig(frac),
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
                       % (short_path(layer_of(p)), short_path(layer_of(later_dead[0]))))
        else:
            message = ("%s of the units of layer %s%s get exactly zero gradient on every "
                       "example: they are dead and stop learning."
                       % (pct(frac), short_path(layer_of(p)),
                          " (%d of %d)" % (evidence["dead_units"], units) if units else ""))
        findings.append(
            window_finding(
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
