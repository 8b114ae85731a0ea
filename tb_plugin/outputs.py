"""Which outputs of a Keras model HealthCallback records, and how.

A model with one output is recorded as one prediction family (named
``predictions`` by default). A model with several outputs (a dict or list of
outputs, with a loss per output or one loss for all) is recorded as one
family per output, ``predictions/<output name>``, each with the task and
``from_logits`` of its own loss. Binary outputs of shape ``[batch, K]``
(multi-label, binary cross-entropy) are recorded as K binary problems (see
:func:`tb_plugin.stats.binary_sums`).

What cannot be recorded (an output without a loss, a loss whose task or
``from_logits`` is unknown, outputs of a shape the statistics do not take)
is listed with the reason under ``not_recorded`` in the run manifest (see
``metadata.MANIFEST_NOT_RECORDED``), and :mod:`tb_plugin.diagnosis` reports
it as a ``not_covered`` warning: a run whose outputs were not all recorded
is never called healthy.
"""

import re

import tensorflow as tf

from tb_plugin import metadata
from tb_plugin import summary_args
from tb_plugin.manifest import loss_info


class Head:
    """One recorded output: its record family, where it sits in the model's
    outputs (and labels), its task and from_logits; what the train step's
    trace found (`spec`, `extra`) and its validation accumulators."""

    def __init__(self, name, output, index, task, from_logits):
        self.name = name  # the record family
        self.output = output  # the output's name; None: the model's only output
        self.index = index  # its position among the model's outputs, or None
        self.task = task
        self.from_logits = from_logits
        # (task, k, has_labels, y_pred shape, y shape, y_pred dtype, y dtype)
        # of the traced train step, and its optional index fields.
        self.spec = None
        self.extra = {}
        self.acc = self.acc_spec = self.acc_count = self.range = None

    def __repr__(self):
        return "Head(%r, task=%r)" % (self.name, self.task)


def family_name(prefix, output):
    """The record family of output `output` (None: the only output)."""
    if output is None:
        return prefix
    return "%s/%s" % (prefix, re.sub(r"[^A-Za-z0-9_.-]", "_", str(output)) or "output")


def output_names(model):
    names = getattr(model, "output_names", None)
    try:
        return [str(n) for n in names] if names else []
    except TypeError:
        return []


def _static_outputs(model):
    try:
        outputs = model.outputs
    except Exception:  # noqa: BLE001 - subclassed / unbuilt models
        return None
    return list(outputs) if outputs else None


def _loss_entries(model):
    """[(output name or None, index or None, loss)] and the names of the
    outputs that have no loss."""
    loss = getattr(model, "loss", None)
    names = output_names(model)
    outputs = _static_outputs(model)
    n = len(outputs) if outputs is not None else len(names)
    if isinstance(loss, dict):
        order = [k for k in names if k in loss] + [k for k in loss if k not in names]
        entries = [(k, names.index(k) if k in names else None, loss[k]) for k in order]
        missing = [k for k in names if k not in loss]
    elif isinstance(loss, (list, tuple)):
        entries = [(names[i] if i < len(names) else str(i), i, l) for i, l in enumerate(loss)]
        missing = names[len(loss):]
    elif n > 1:
        entries = [(names[i] if i < len(names) else str(i), i, loss) for i in range(n)]
        missing = []
    else:
        return [(None, None, loss)], []
    if len(entries) == 1 and n <= 1 and not missing:
        return [(None, None, entries[0][2])], []  # one output: the plain family
    return entries, missing


def _shape_problem(tensor, task):
    """Why outputs like the symbolic `tensor` cannot be recorded as `task`
    (None: they can, or their shape is not known before the step runs)."""
    try:
        shape = tf.TensorShape(tensor.shape)
        dtype = tf.as_dtype(getattr(tensor, "dtype", None) or "float32")
    except Exception:  # noqa: BLE001 - checked when the step is traced instead
        return None
    try:
        with tf.Graph().as_default():
            summary_args.check_outputs(tf.compat.v1.placeholder(dtype, shape), None, task)
    except ValueError as e:
        return str(e)
    except Exception:  # noqa: BLE001
        return None
    return None


def plan(model, prefix, task=None, from_logits=None):
    """(heads, not_recorded) of `model` compiled with its loss: a Head per
    output that can be recorded, and [{"output", "reason"}] for the others.

    `task` / `from_logits` (HealthCallback's arguments) override what the
    loss of a model with one output says; with several outputs they fill in
    only what an output's own loss does not say.
    """
    entries, missing = _loss_entries(model)
    names = output_names(model)
    outputs = _static_outputs(model)
    single = len(entries) == 1 and entries[0][0] is None
    heads, not_recorded = [], []
    for output in missing:
        not_recorded.append({"output": output, "reason": "it has no loss"})
    for output, index, loss in entries:
        label = output if output is not None else (names[0] if len(names) == 1 else None)
        if loss is None:
            not_recorded.append({"output": label, "reason": "it has no loss"})
            continue
        _, t, fl = loss_info(loss)
        if single:
            t = task or t
            fl = from_logits if from_logits is not None else fl
            if task is not None and fl is None:
                fl = False
        else:
            t = t or task
            fl = fl if fl is not None else from_logits
        if t is None:
            reason = ("cannot infer the task from the loss %r (pass task= and from_logits=)"
                      % (loss,))
        elif t != metadata.TASK_REGRESSION and fl is None:
            reason = "cannot infer from_logits from the loss %r (pass from_logits=)" % (loss,)
        else:
            reason = None
            symbolic = None
            if outputs is not None:
                if single and len(outputs) == 1:
                    symbolic = outputs[0]
                elif index is not None and index < len(outputs):
                    symbolic = outputs[index]
            if symbolic is not None:
                reason = _shape_problem(symbolic, t)
        if reason is not None:
            not_recorded.append({"output": label, "reason": reason})
            continue
        heads.append(Head(family_name(prefix, output), output, index, t, fl))
    return heads, not_recorded


def _single(struct, what):
    if isinstance(struct, (list, tuple, dict)):
        if len(struct) != 1:
            if what == "labels":
                return None  # recorded without labels
            raise ValueError("%s of several outputs, but the loss is for one" % what)
        return list(struct.values())[0] if isinstance(struct, dict) else struct[0]
    return struct


def _pick(struct, head, what):
    if isinstance(struct, dict):
        if head.output in struct:
            return struct[head.output]
        raise ValueError("no %s for output %r (keys: %s)"
                         % (what, head.output, ", ".join(map(str, struct))))
    if isinstance(struct, (list, tuple)):
        if head.index is not None and head.index < len(struct):
            return struct[head.index]
        raise ValueError("no %s for output %r among %d" % (what, head.output, len(struct)))
    raise ValueError("one %s tensor for a model with several outputs" % what)


def select(head, y, y_pred):
    """(labels or None, outputs) of `head` from compute_loss's y and y_pred."""
    if head.output is None:
        return (None if y is None else _single(y, "labels")), _single(y_pred, "outputs")
    return (None if y is None else _pick(y, head, "labels")), _pick(y_pred, head, "outputs")


def select_weights(head, sample_weight):
    """The per-row sample weights compute_loss applies to `head`'s loss (one
    tensor is applied to every output, a structure like y's to each its
    own), or None when they cannot be matched to it."""
    if sample_weight is None or not isinstance(sample_weight, (list, tuple, dict)):
        return sample_weight
    if head.output is None:
        return _single(sample_weight, "labels")
    try:
        return _pick(sample_weight, head, "sample weights")
    except ValueError:
        return None


def coverage(heads, not_recorded):
    """The manifest fields (metadata.MANIFEST_*) saying what is recorded."""
    return {
        metadata.MANIFEST_RECORDED: [h.name for h in heads],
        metadata.MANIFEST_NOT_RECORDED: [dict(e) for e in not_recorded],
    }


def describe(not_recorded):
    """'output 'aux' (it has no loss), ...' for messages."""
    parts = []
    for e in not_recorded:
        what = "output %r" % e["output"] if e.get("output") else "the model's output"
        parts.append("%s (%s)" % (what, e.get("reason")))
    return "; ".join(parts)
