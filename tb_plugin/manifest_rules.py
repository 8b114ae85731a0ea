"""Diagnosis rules on the manifest alone (known at train begin): an output
activation that does not fit the loss, and outputs whose predictions were
not recorded.

Pure Python + numpy; imports no TensorFlow.
"""


from tb_plugin import metadata
from tb_plugin.findings import (
    Finding, KIND_NOT_COVERED, KIND_OUTPUT_ACTIVATION, SEVERITY_ERROR, SEVERITY_WARNING)
from tb_plugin.rule_support import is_kernel, layer_of, round_sig, run_rule
from tb_plugin.thresholds import Thresholds


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
                  if layer_of(p).rsplit("/", 1)[-1] == out.get("name")
                  and is_kernel(p, None)), out.get("name"))
    evidence = {
        "output_layer": out.get("name"),
        "activation": act,
        "loss": loss_name,
        "from_logits": from_logits,
    }
    for pred in run.predictions.values():
        z = pred.scalars.get(metadata.PRED_ZERO_LOGIT_FRACTION)
        if z is not None and len(z):
            evidence["zero_logit_fraction_last"] = round_sig(float(z.values[-1]))
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


class ManifestOnly:
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
    if run.gradients or isinstance(run, ManifestOnly):
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


def manifest_findings(run, span, th):
    """The rules that read the run's manifest (kinds MANIFEST_KINDS); the
    records, when there are any, only add evidence (or show that a model
    without a `training` parameter was called in training mode after all)."""
    from tb_plugin import train_mode_rules

    return (run_rule(run, _output_activation, run, span, th)
            + run_rule(run, train_mode_rules.manifest_findings, run, span, th)
            + run_rule(run, _not_covered, run, span, th))


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
    return manifest_findings(ManifestOnly(manifest), None, thresholds or Thresholds())
