"""The outputs one fit of HealthCallback records, and the manifest naming them.

The run manifest (layers, initialisers, loss, optimizer, versions; see
:mod:`tb_plugin.manifest`) is written to the train run at step 0 with the
outputs recorded and those that are not, with why (see
:mod:`tb_plugin.outputs`). An output whose predictions cannot be traced is
dropped during the fit, with a warning, and the manifest is written again at
the next epoch end (the reader takes the newest).
"""

import tensorflow as tf

from tb_plugin import outputs as outputs_lib
from tb_plugin import summary_v2
from tb_plugin import summary_writes
from tb_plugin.manifest import build_manifest
from tb_plugin.manifest import loss_info


class RecordedOutputs:
    """The outputs recorded in one fit of `model` (`heads`, a list the
    recording shares) and the others (`not_recorded`: [{"output",
    "reason"}]); `warn(key, message)` says once per key what is lost."""

    def __init__(self, model, *, record_predictions, predictions_name, task, from_logits,
                 record_gradients, warn):
        self._model = model
        self._record_predictions = record_predictions
        self._from_logits = from_logits
        self._record_gradients = record_gradients
        self._warn = warn
        # One prediction family per output that can be recorded; the others
        # are named in the manifest.
        self.heads, self.not_recorded = [], []
        if record_predictions:
            self.heads, self.not_recorded = outputs_lib.plan(
                model, predictions_name, task, from_logits)
        self._coverage_written = len(self.not_recorded)
        self.manifest = None

    def write_manifest(self, writers):
        """Writes the manifest at step 0 with `writers` (the fit's
        tb_plugin.record_writers.RecordWriters)."""
        _, _, from_logits = loss_info(getattr(self._model, "loss", None))
        with summary_writes.writer_scope(writers.train), tf.summary.record_if(True):
            # from_logits= fills in what the loss does not say (a plain
            # function); it does not hide what the loss says.
            self.manifest = build_manifest(
                self._model, from_logits=self._from_logits if from_logits is None else None)
            if self._record_predictions:
                self.manifest.update(outputs_lib.coverage(self.heads, self.not_recorded))
            summary_v2.manifest(self.manifest, step=0)
        writers.writes["train"] += 1
        writers.train.flush()
        if self.not_recorded:
            self.warn_not_covered()

    def warn_not_covered(self):
        """Warns (once per list) which outputs are not recorded and what the
        findings still cover."""
        covered = []
        if self.heads:
            covered.append("the predictions %s" % ", ".join(repr(h.name) for h in self.heads))
        if self._record_gradients:
            covered.append("the gradients")
        self._warn(
            ("not_covered", len(self.not_recorded)),
            "predictions not recorded for %s; the findings cover only %s"
            % (outputs_lib.describe(self.not_recorded), " and ".join(covered) or "nothing"))

    def drop(self, head, error):
        """An output whose predictions could not be traced: recorded no more,
        named in the manifest (rewritten at the next epoch end)."""
        if head in self.heads:
            self.heads.remove(head)
        self.not_recorded.append({
            "output": head.output or (outputs_lib.output_names(self._model) or [None])[0],
            "reason": "%s: %s" % (type(error).__name__, error)})
        self.warn_not_covered()

    def update_manifest(self, writers, optimizer):
        """Writes the manifest again, at `optimizer`'s step, when outputs
        were dropped since it was written (the reader takes the newest)."""
        if (self.manifest is None or writers.train is None
                or len(self.not_recorded) == self._coverage_written):
            return
        try:
            self.manifest.update(outputs_lib.coverage(self.heads, self.not_recorded))
            with summary_writes.writer_scope(writers.train), tf.summary.record_if(True):
                summary_v2.manifest(self.manifest, step=int(optimizer.iterations.numpy()))
            writers.writes["train"] += 1
            self._coverage_written = len(self.not_recorded)
        except Exception as e:  # noqa: BLE001 - never break training
            self._warn("coverage", "could not update the manifest (%s: %s)"
                       % (type(e).__name__, e))
