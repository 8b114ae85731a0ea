"""Rules about the layers that behave differently in training (Dropout,
BatchNormalization, ...): part of :mod:`tb_plugin.diagnosis`.

From the manifest (known before the first step, see
:func:`tb_plugin.train_mode.manifest_info`):

* ``training_arg_missing`` (error): a subclassed model whose ``call`` takes
  no ``training`` while it holds such layers; ``fit`` calls it without the
  flag and they run in inference mode.
* ``dropout_rate_zero`` (warning): a Dropout-family layer with rate 0.
* ``frozen_batchnorm`` (info): a BatchNormalization with ``trainable=False``
  (it then normalises with its moving statistics, as in inference).

From the train-mode records (see :mod:`tb_plugin.train_mode`):

* ``train_mode_inactive`` (error): layers that ran in inference mode while
  the model trained: their call received training False/None (a fact noted
  when the step was traced), or a Dropout that received training=True
  zeroed far fewer outputs than its rate (by ``train_mode_sd`` standard
  errors and ``train_mode_deficit`` of the expected drops), or a noise
  layer that changed nothing. Layers an enclosing layer explicitly called
  with ``training=False`` (inference by design) are not reported.
* ``train_mode_overridden`` (error when a BatchNormalization's moving
  statistics moved, else warning): layers of a nested model that a
  Functional graph calls with ``training=False`` ran in training mode (Keras
  <= 3.15.1 passes the outer call's flag on to it).

Pure Python + numpy; imports no TensorFlow.
"""

import math

import numpy as np

from tb_plugin import metadata
from tb_plugin.findings import (
    Finding, KIND_DROPOUT_RATE_ZERO, KIND_FROZEN_BATCHNORM, KIND_TRAINING_ARG_MISSING, KIND_TRAIN_MODE_INACTIVE, KIND_TRAIN_MODE_OVERRIDDEN, SEVERITY_ERROR, SEVERITY_INFO, SEVERITY_WARNING)
from tb_plugin.rule_support import fmt, round_sig, sustained

DROPOUT, NOISE, BATCHNORM, OTHER = "dropout", "noise", "batchnorm", "other"


def _info(run):
    m = run.manifest if isinstance(getattr(run, "manifest", None), dict) else {}
    info = m.get("train_mode")
    return info if isinstance(info, dict) else {}


def _entries(info, key):
    items = info.get(key)
    return [e for e in items if isinstance(e, dict) and isinstance(e.get("path"), str)] \
        if isinstance(items, list) else []


def _short(path):
    """'m/block/drop' -> 'block/drop' (the model's name dropped)."""
    parts = path.split("/")
    return "/".join(parts[1:]) if len(parts) > 1 else path


def _names(paths, limit=4):
    names = [_short(p) for p in paths]
    if len(names) > limit:
        return ", ".join(names[:limit]) + " and %d more" % (len(names) - limit)
    return ", ".join(names)


def _steps(span):
    return (span.first, span.last) if span is not None else (0, 0)


# ---------------------------------------------------------------------------
# Manifest rules


def _records_show_training(run, model_path):
    """Whether train-mode records exist and every layer under `model_path`
    ran with the model in training mode on every record (a custom loop that
    calls a model without a `training` parameter as model(x, training=True):
    Keras passes the flag on through its call context)."""
    seen = False
    for tm in (getattr(run, "train_mode", None) or {}).values():
        for path, series in tm.stats.get(metadata.TM_ROOT_TRAINING, {}).items():
            if path != model_path and not path.startswith(model_path + "/"):
                continue
            if len(series) == 0:
                continue
            seen = True
            if not np.all(series.values >= 0.5):
                return False
    return seen


def manifest_findings(run, span, th):
    """training_arg_missing, dropout_rate_zero, frozen_batchnorm."""
    info = _info(run)
    if not info:
        return []
    first, last = _steps(span)
    layers = _entries(info, "layers")
    out = []
    for entry in _entries(info, "call_without_training"):
        if _records_show_training(run, entry["path"]):
            continue
        inside = [p for p in entry.get("layers") or [] if isinstance(p, str)]
        by_path = {e["path"]: e for e in layers}
        shown = [p for p in inside if by_path.get(p, {}).get("kind") != OTHER] or inside
        cls = entry.get("class") or entry["path"]
        kinds = {by_path.get(p, {}).get("kind") for p in shown}
        effects = []
        if kinds & {DROPOUT, NOISE}:
            effects.append("dropout never drops")
        if BATCHNORM in kinds:
            effects.append("BatchNormalization normalises with its moving statistics and "
                           "never updates them")
        out.append(Finding(
            kind=KIND_TRAINING_ARG_MISSING, severity=SEVERITY_ERROR, layer=entry["path"],
            first_step=first, last_step=last,
            evidence={"model": entry["path"], "class": cls, "layers": shown},
            message="%s.call does not accept `training`, so fit calls the model without it "
            "and its layers that behave differently in training (%s) run in inference mode%s."
            % (cls, _names(shown), (": " + ", ".join(effects)) if effects else ""),
            suggestion="Add `training=None` to %s.call and pass it on to the layers that "
            "take it (self.dropout(x, training=training)); fit then calls the model with "
            "training=True." % cls,
        ))
    zero = [e for e in layers if e.get("kind") in (DROPOUT, NOISE) and not e.get("internal")
            and isinstance(e.get("rate"), (int, float)) and e["rate"] == 0]
    if zero:
        out.append(Finding(
            kind=KIND_DROPOUT_RATE_ZERO, severity=SEVERITY_WARNING, layer=zero[0]["path"],
            first_step=first, last_step=last,
            evidence={"layers": {e["path"]: {"class": e.get("class"), "rate": e["rate"]}
                                 for e in zero}},
            message="%s %s rate 0, so %s nothing in training (left from an experiment?)."
            % (_names([e["path"] for e in zero]), "has" if len(zero) == 1 else "have",
               "it does" if len(zero) == 1 else "they do"),
            suggestion="Set the rate you meant (commonly 0.1-0.5) or remove the layer.",
        ))
    frozen = [e for e in layers if e.get("kind") == BATCHNORM and e.get("trainable") is False]
    if frozen:
        out.append(Finding(
            kind=KIND_FROZEN_BATCHNORM, severity=SEVERITY_INFO, layer=frozen[0]["path"],
            first_step=first, last_step=last,
            evidence={"layers": [e["path"] for e in frozen]},
            message="BatchNormalization %s %s frozen (trainable=False): %s in inference mode "
            "even during training, normalising with %s moving statistics, which stay as "
            "they are." % (_names([e["path"] for e in frozen]),
                           "is" if len(frozen) == 1 else "are",
                           "it runs" if len(frozen) == 1 else "they run",
                           "its" if len(frozen) == 1 else "their"),
            suggestion="That is what you want when fine-tuning a pretrained model; otherwise "
            "set trainable=True so that it learns and tracks the statistics of the new data.",
        ))
    return out


# ---------------------------------------------------------------------------
# Record rules


def _at(tm, stat, path, steps, default):
    series = tm.series(stat, path)
    if series is None or len(series) == 0:
        return np.full(len(steps), float(default))
    idx = np.searchsorted(series.steps, steps, side="right") - 1
    return np.where(idx >= 0, series.values[np.maximum(idx, 0)], float(default))


def _dropout_evidence(tm, entry, steps, sel):
    """Pooled zero fractions of a Dropout-family layer over the records `sel`."""
    path, rate = entry["path"], entry.get("rate")
    units = _at(tm, metadata.TM_UNITS, path, steps, np.nan)[sel]
    zin = _at(tm, metadata.TM_ZERO_IN, path, steps, np.nan)[sel]
    zout = _at(tm, metadata.TM_ZERO_OUT, path, steps, np.nan)[sel]
    changed = _at(tm, metadata.TM_CHANGED, path, steps, np.nan)[sel]
    ok = np.isfinite(units) & np.isfinite(zin) & np.isfinite(zout) & (units > 0)
    if not ok.any() or not isinstance(rate, (int, float)):
        return {}
    w = units[ok]
    total = float(w.sum())
    z_in = float(np.average(zin[ok], weights=w))
    z_out = float(np.average(zout[ok], weights=w))
    expected = z_in + (1.0 - z_in) * rate
    se = math.sqrt(max((1.0 - z_in) * rate * (1.0 - rate), 0.0) / total)
    r = round_sig
    ev = {"rate": rate, "input_zero_fraction": r(z_in), "expected_zero_fraction": r(expected),
          "observed_zero_fraction": r(z_out), "standard_error": r(se),
          "sampled_units": int(total)}
    if np.isfinite(changed[ok]).any():
        ev["changed_fraction"] = r(float(np.nanmean(changed[ok])))
    return ev


def _layer_hit(tm, entry, th):
    """(boolean array of inactive records, steps, flag-based mask) of a layer, or None."""
    path, kind = entry["path"], entry.get("kind")
    training = tm.series(metadata.TM_TRAINING, path)
    if training is None or len(training) == 0:
        return None
    steps = training.steps
    flag = training.values
    by_caller = _at(tm, metadata.TM_BY_CALLER, path, steps, 0.0)
    flag_off = (flag < 0.5) & (by_caller < 0.5)
    stat_off = np.zeros(len(steps), dtype=bool)
    rate = entry.get("rate")
    if isinstance(rate, (int, float)) and (
            (kind == DROPOUT and 0 < rate < 1) or (kind == NOISE and rate > 0)):
        units = _at(tm, metadata.TM_UNITS, path, steps, np.nan)
        zin = _at(tm, metadata.TM_ZERO_IN, path, steps, np.nan)
        enough = np.isfinite(units) & np.isfinite(zin) & (units * (1 - zin) >= 20)
        if kind == DROPOUT:
            zout = _at(tm, metadata.TM_ZERO_OUT, path, steps, np.nan)
            expected = zin + (1 - zin) * rate
            with np.errstate(invalid="ignore", divide="ignore"):
                se = np.sqrt(np.maximum((1 - zin) * rate * (1 - rate), 0) / units)
            deficit = expected - zout
            stat_off = (enough & (flag >= 0.5) & (deficit > th.train_mode_sd * se)
                        & (deficit > th.train_mode_deficit * (1 - zin) * rate))
        else:  # an active noise layer changes (nearly) every nonzero element
            changed = _at(tm, metadata.TM_CHANGED, path, steps, np.nan)
            stat_off = enough & (flag >= 0.5) & (changed == 0)
    cond = flag_off | stat_off
    if not cond.any():
        return None
    if not flag_off.any():
        # Statistical evidence only: it must hold on consecutive records.
        hit = sustained(steps, stat_off, None, th, state=False)
        if hit is None:
            return None
        cond = np.zeros(len(steps), dtype=bool)
        cond[hit[0]:hit[1] + 1] = stat_off[hit[0]:hit[1] + 1]
    return cond, steps, flag_off


def _cause(tm, entry, steps, cond, flag_off, missing):
    path = entry["path"]
    root = _at(tm, metadata.TM_ROOT_TRAINING, path, steps, 1.0)
    if not flag_off[cond].any():
        return "ignored", None
    if np.all(root[cond & flag_off] < 0.5):
        for m in missing:
            if path.startswith(m["path"] + "/"):
                return "model_call", m
        return "not_training", None
    return "dropped", entry.get("caller")


def _describe(tm, entry, ev):
    name = _short(entry["path"])
    flag = entry.get("flag")
    kind = entry.get("kind")
    got = "training=%s" % flag if flag in ("False", "None") else "training=True"
    if kind == DROPOUT and "observed_zero_fraction" in ev:
        # What the layer itself dropped: zeros it added to its nonzero
        # inputs (its input's own zeros, e.g. after a ReLU, are not its doing).
        live = 1.0 - float(ev.get("input_zero_fraction") or 0.0)
        dropped = (ev["observed_zero_fraction"] - (1.0 - live)) / live if live > 0 else 0.0
        return ("%s (%s) dropped %s of its inputs where rate=%s drops %s (its outputs: %s "
                "zeros, %s expected, SE %s)"
                % (name, got, _pct(max(dropped, 0.0)), ev.get("rate"),
                   _pct(ev.get("rate") or 0.0), _pct(ev["observed_zero_fraction"]),
                   _pct(ev["expected_zero_fraction"]), "%.2g%%" % (100 * ev["standard_error"])))
    if kind == NOISE and "changed_fraction" in ev:
        return "%s (%s) changed %s of its inputs" % (name, got, _pct(ev["changed_fraction"]))
    if kind == BATCHNORM and "moving_mean_change_max" in ev:
        moved = ev["moving_mean_change_max"] > 0 or ev.get("moving_variance_change_max", 0) > 0
        return "%s (%s) %s" % (name, got, "normalised with its batch statistics" if moved
                                else "kept its moving statistics unchanged")
    return "%s (%s)" % (name, got)


def _pct(x, digits=0):
    x = 100.0 * float(x)
    return ("%.*f%%" % (digits, x)) if digits or x >= 1 or x == 0 else "%.1f%%" % x


def _inactive(run, tm, span, th, missing):
    groups = {}
    for entry in tm.layers:
        if entry.get("kind") == BATCHNORM and entry.get("trainable") is False \
                and entry.get("flag") == "True":
            continue  # frozen: inference by design (frozen_batchnorm)
        hit = _layer_hit(tm, entry, th)
        if hit is None:
            continue
        cond, steps, flag_off = hit
        cause, detail = _cause(tm, entry, steps, cond, flag_off, missing)
        key = (cause, detail["path"] if isinstance(detail, dict) else detail)
        groups.setdefault(key, []).append((entry, steps, cond, detail))
    out = []
    for (cause, _), items in groups.items():
        real = [it for it in items if it[0].get("kind") != OTHER]
        if not real:
            continue  # a layer that only takes `training` is reported with the others
        evidence_layers = {}
        descriptions = []
        first = min(int(steps[cond][0]) for _, steps, cond, _ in items)
        last = max(int(steps[cond][-1]) for _, steps, cond, _ in items)
        for entry, steps, cond, _ in items:
            ev = {"class": entry.get("class"), "kind": entry.get("kind"),
                  "flag": entry.get("flag"), "caller": entry.get("caller"),
                  "records": int(cond.sum())}
            if entry.get("kind") in (DROPOUT, NOISE):
                ev.update(_dropout_evidence(tm, entry, steps, cond))
            if entry.get("kind") == BATCHNORM:
                for stat, key in ((metadata.TM_MEAN_CHANGE, "moving_mean_change_max"),
                                  (metadata.TM_VARIANCE_CHANGE, "moving_variance_change_max")):
                    v = _at(tm, stat, entry["path"], steps, np.nan)[cond]
                    if np.isfinite(v).any():
                        ev[key] = round_sig(float(np.nanmax(v)))
            evidence_layers[entry["path"]] = ev
            if entry.get("kind") != OTHER:
                descriptions.append(_describe(tm, entry, ev))
        paths = [e["path"] for e, _, _, _ in real]
        others = [e["path"] for e, _, _, _ in items if e.get("kind") == OTHER]
        names = _names(paths) + ("" if not others else " (and %s)" % _names(others, 2))
        detail = items[0][3]
        if cause == "model_call":
            cls = detail.get("class") or detail["path"]
            why = ("%s.call does not accept `training`, so fit calls the model without it "
                   "and they fall back to their defaults" % cls)
            fix = ("Add `training=None` to %s.call and pass it on to the layers that take "
                   "it (self.dropout(x, training=training)); fit then calls the model with "
                   "training=True." % cls)
        elif cause == "not_training":
            why = "the model itself was called without training=True in the train step"
            fix = ("Call the model as model(x, training=True) inside the GradientTape of "
                   "the training step (in a custom train_step: self(x, training=True)); "
                   "keep training=False for evaluation.")
        elif cause == "dropped":
            caller = _short(detail) if isinstance(detail, str) else "the calling layer"
            why = ("the model ran with training=True but %s did not pass it on" % caller)
            fix = ("Accept `training=None` in %s.call and call its layers with "
                   "training=training (passing training=None, or calling layer.call(x) "
                   "directly, drops the flag; after an explicit training=None Keras also "
                   "drops it for the layers called next)." % caller)
        else:
            why = ("%s training=True, yet %s no dropout"
                   % ("it received" if len(items) == 1 else "they received",
                      "its output shows" if len(items) == 1 else "their outputs show"))
            fix = ("Check the layer's call: it must apply its dropout when training is true "
                   "(a custom call that ignores `training`?).")
        evidence = {"cause": cause, "layers": evidence_layers}
        if cause == "model_call":
            evidence["model"] = detail["path"]
        what = ("did not drop during training" if cause == "ignored"
                else "ran in inference mode during training")
        out.append(Finding(
            kind=KIND_TRAIN_MODE_INACTIVE, severity=SEVERITY_ERROR, layer=paths[0],
            first_step=first, last_step=last, evidence=evidence,
            message="%s %s from step %d: %s (%s)."
            % (names, what, first, why, "; ".join(descriptions[:3])
               + ("; ..." if len(descriptions) > 3 else "")),
            suggestion=fix,
        ))
    return out


def _overridden(run, tm, span, th, calls, versions):
    out = []
    for call in calls:
        prefix = call["path"] + "/"
        affected, moved = {}, False
        first = last = None
        for entry in tm.layers:
            path, kind = entry["path"], entry.get("kind")
            if not path.startswith(prefix) or kind == OTHER:
                continue
            training = tm.series(metadata.TM_TRAINING, path)
            if training is None or len(training) == 0:
                continue
            on = training.values >= 0.5
            if not on.any():
                continue
            steps = training.steps
            ev = {"class": entry.get("class"), "kind": kind, "records_in_training": int(on.sum())}
            effect = False
            if kind == BATCHNORM and entry.get("trainable") is not False:
                v = _at(tm, metadata.TM_MEAN_CHANGE, path, steps, np.nan)[on]
                w = _at(tm, metadata.TM_VARIANCE_CHANGE, path, steps, np.nan)[on]
                if np.isfinite(v).any():
                    ev["moving_mean_change_max"] = round_sig(float(np.nanmax(v)))
                    ev["moving_mean_change_sum"] = round_sig(float(np.nansum(v)))
                    effect = effect or float(np.nanmax(v)) > 0
                if np.isfinite(w).any():
                    ev["moving_variance_change_max"] = round_sig(float(np.nanmax(w)))
                    effect = effect or float(np.nanmax(w)) > 0
                moved = moved or effect
            elif kind in (DROPOUT, NOISE) and (entry.get("rate") or 0) > 0:
                ev.update(_dropout_evidence(tm, entry, steps, on))
                effect = True
            if not effect:
                continue
            affected[path] = ev
            s = steps[on]
            first = int(s[0]) if first is None else min(first, int(s[0]))
            last = int(s[-1]) if last is None else max(last, int(s[-1]))
        if not affected:
            continue
        name = _short(call["path"])
        details = []
        for path, ev in affected.items():
            if "moving_mean_change_max" in ev:
                details.append("%s's moving mean moved by up to %s between records"
                               % (_short(path), fmt(ev["moving_mean_change_max"])))
            else:
                details.append("%s dropped" % _short(path))
        keras_version = versions.get("keras") if isinstance(versions, dict) else None
        out.append(Finding(
            kind=KIND_TRAIN_MODE_OVERRIDDEN,
            severity=SEVERITY_ERROR if moved else SEVERITY_WARNING,
            layer=next(iter(affected)), first_step=first, last_step=last,
            evidence={"called_with": "training=False", "nested": call["path"],
                      "caller": call.get("caller"), "keras": keras_version,
                      "layers": affected},
            message="%s is called with training=False in %s, but its layers ran in training "
            "mode from step %d (Keras%s passes the outer call's training=True on to it): %s."
            % (name, _short(call.get("caller") or "") or "the model", first,
               " " + keras_version if keras_version else "", "; ".join(details)),
            suggestion="To keep %s in inference mode, freeze it (%s.trainable = False before "
            "compile: its BatchNormalization layers then use their moving statistics and "
            "stop updating them); to fine-tune it in training mode, drop training=False."
            % (name, call["path"].rsplit("/", 1)[-1]),
        ))
    return out


def record_findings(run, span, th):
    """train_mode_inactive and train_mode_overridden of the run's records."""
    families = getattr(run, "train_mode", None) or {}
    if not families:
        return []
    info = _info(run)
    missing = _entries(info, "call_without_training")
    calls = _entries(info, "inference_calls")
    versions = (run.manifest or {}).get("versions") if isinstance(run.manifest, dict) else None
    out = []
    for name in sorted(families):
        tm = families[name]
        out += _inactive(run, tm, span, th, missing)
        out += _overridden(run, tm, span, th, calls, versions)
    return out
