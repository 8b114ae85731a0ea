"""Links a run's symptom findings to the root cause that explains them.

Collapsed or tied predictions, one class predicted for everything and a
chance-level accuracy are what a broken model *shows*; a ReLU on the logits,
vanishing or exploding gradients, dead units, a learning rate far too high,
NaN/Inf values, labels that cannot be scored or class weights that make one
class dominate the loss are what *breaks* it. When a
run holds both, the symptom names its cause (``caused_by``), its suggestion
becomes the cause's fix, and the run's findings are ordered cause first,
its symptoms right after it.

Pure Python; imports no TensorFlow.
"""

import dataclasses

from tb_plugin import findings as d

# What a model shows when something else is wrong.
SYMPTOM_KINDS = (d.KIND_PREDICTION_COLLAPSE, d.KIND_TIED_PREDICTIONS, d.KIND_CLASS_COLLAPSE,
                 d.KIND_CLASS_BIAS, d.KIND_BASELINE)
# What breaks a model, most specific first: the first one a run holds is the
# cause of its symptoms.
CAUSE_KINDS = (d.KIND_NONFINITE, d.KIND_INVALID_LABELS, d.KIND_SKEWED_CLASS_WEIGHTS,
               d.KIND_OUTPUT_ACTIVATION,
               d.KIND_LEARNING_RATE, d.KIND_EXPLODING, d.KIND_VANISHING, d.KIND_DEAD_UNITS)


def _cause_of(findings):
    """The finding (warning or error) that explains the run's symptoms, or None."""
    for kind in CAUSE_KINDS:
        for f in findings:
            if f.kind == kind and f.severity != d.SEVERITY_INFO:
                return f
    return None


def link(findings):
    """`findings` (one run's, sorted by severity) with each warning or error
    symptom linked to the run's root cause, cause first and its symptoms
    right after it; unchanged when the run holds no cause or no symptom."""
    cause = _cause_of(findings)
    symptoms = [f for f in findings
                if f.kind in SYMPTOM_KINDS and f.severity != d.SEVERITY_INFO]
    if cause is None or not symptoms:
        return findings
    linked = [
        dataclasses.replace(
            f, caused_by=cause.kind,
            suggestion="Fix the %s finding first: this follows from it. %s" % (
                cause.kind, cause.suggestion))
        for f in symptoms
    ]
    group = {id(cause)} | {id(f) for f in symptoms}
    start = min(i for i, f in enumerate(findings) if id(f) in group)
    rest = [f for f in findings[start:] if id(f) not in group]
    return findings[:start] + [cause] + linked + rest
