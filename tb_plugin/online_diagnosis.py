"""HealthCallback's online diagnosis: findings printed while the model trains.

What the manifest alone shows is printed at train begin; what the records
show, at epoch ends, read from the callback's own event files (see
:mod:`tb_plugin.health_event_store`) and diagnosed by
:mod:`tb_plugin.diagnosis`, as ``tb-health check`` would. Each finding is
printed once per kind and layer; a finding whose kind is in ``stop_on``
stops training. The diagnosis is held to a small share of the training
time: an epoch end that comes too soon after the last diagnosis is skipped,
and the fit's end diagnoses what was skipped.
"""

import sys
import time


class OnlineDiagnosis:
    """The online diagnosis of one HealthCallback, across its fits.

    `callback` gives the settings (``report_findings``, ``stop_on``,
    ``thresholds``), the model to stop, and the time share
    (``ONLINE_DIAGNOSIS_SHARE``, ``FIRST_DIAGNOSIS_SECONDS``, read at each
    use so that they can be set per callback); `warn(key, message)` says
    once per key what could not be diagnosed.
    """

    def __init__(self, callback, warn):
        self._callback = callback
        self._warn = warn
        self.reported = set()  # finding_key of the findings printed
        self.store = None  # the HealthEventStore of the current fit
        self._event_files = {}  # run -> the event file (or directory) it reads
        self._diagnosed_at = None
        self._seconds = callback.FIRST_DIAGNOSIS_SECONDS
        self.undiagnosed = False  # an epoch end was skipped since the last diagnosis
        # A worker other than the chief prints nothing; in a multi-worker
        # fit every worker diagnoses every epoch end for stop_on (from the
        # same all-reduced records: all workers stop at the same epoch).
        self.quiet = False
        self.lockstep = False

    @property
    def wanted(self):
        cb = self._callback
        return bool((cb.report_findings and not self.quiet) or cb.stop_on)

    def fit_begins(self):
        # The first online diagnosis is held to its share of the training
        # time too, at an assumed cost (a stop_on kind diagnoses from the
        # first epoch end): fits shorter than that cost / the share are
        # diagnosed once, at their end.
        cb = self._callback
        self._diagnosed_at = None if cb.stop_on else time.perf_counter()
        self._seconds = cb.FIRST_DIAGNOSIS_SECONDS
        self.undiagnosed = False

    def watch(self, event_files):
        """Reads the runs of `event_files` ({run: event file or run
        directory}, filled as the fit's writers are created), from scratch."""
        self._event_files = event_files
        self.store = None

    def fit_ended(self):
        self.store = None

    def epoch_end(self):
        """Diagnoses now, unless the last diagnosis (or the start of fit)
        is too recent for the diagnosis to stay within its time share."""
        if not self.wanted:
            return
        if (not (self.lockstep and self._callback.stop_on)
                and self._diagnosed_at is not None
                and time.perf_counter() - self._diagnosed_at
                < self._seconds / self._callback.ONLINE_DIAGNOSIS_SHARE):
            self.undiagnosed = True
        else:
            self.run()

    def run(self):
        """Prints the new findings of the records (see report), timed."""
        start = time.perf_counter()
        try:
            self.report()
        except Exception as e:  # noqa: BLE001
            self._warn("findings", "could not diagnose (%s: %s)" % (type(e).__name__, e))
        self._diagnosed_at = time.perf_counter()
        self._seconds = self._diagnosed_at - start
        self.undiagnosed = False

    def provider(self):
        """A data provider over the callback's own runs, kept for the whole
        fit and reloaded incrementally: each epoch end parses only the
        events written since the previous one (see HealthEventStore)."""
        if self.store is None:
            from tb_plugin import diagnosis
            from tb_plugin.health_event_store import HealthEventStore

            self.store = HealthEventStore(histograms=diagnosis.HISTOGRAMS_READ)
        store = self.store
        for run, path in sorted(self._event_files.items()):
            store.add_run(run, path)
        store.reload()
        return store.provider(), ""

    def report(self):
        """Prints new findings of tb_plugin.diagnosis; stops on `stop_on` kinds."""
        try:
            from tb_plugin import diagnosis
            from tb_plugin import reader
        except ImportError:
            return []
        from tensorboard import context

        provider, experiment_id = self.provider()
        ctx = context.RequestContext()
        runs = reader.health_runs(provider, ctx, experiment_id)
        records = {run: diagnosis.read_for_diagnosis(provider, ctx, experiment_id, run)
                   for run in runs}
        new = []
        for run in runs:
            validation = records.get(diagnosis.validation_sibling(run, runs))
            new += self.report_new(run, diagnosis.diagnose(
                records[run], self._callback.thresholds, validation=validation))
        return new

    def report_new(self, run, findings):
        """Prints the findings of `run` not printed yet (once per kind and
        layer) and stops training on their `stop_on` kinds; returns them."""
        cb = self._callback
        new = []
        for finding in findings:
            key = finding_key(finding)
            if key in self.reported:
                continue
            self.reported.add(key)
            new.append(finding)
            if not self.quiet:
                where = " [%s]" % finding.layer if finding.layer else ""
                print(
                    "tb_plugin: %s %s%s (%s, step %s): %s"
                    % (finding.severity, finding.kind, where, run, finding.first_step,
                       finding.message),
                    file=sys.stderr,
                )
            if stops_training(finding, cb.stop_on):
                cb.model.stop_training = True
        return new

    def report_manifest(self, manifest):
        """What the manifest alone shows (tb_plugin.diagnosis.diagnose_manifest:
        e.g. ReLU on the logits) is known before the first step: printed at
        train begin, as the online diagnosis prints (which then does not print
        it again); a `stop_on` kind among them stops fit after its first step."""
        from tb_plugin import diagnosis

        cb = self._callback
        findings = diagnosis.diagnose_manifest(manifest, cb.thresholds)
        new = self.report_new("train", findings)
        if any(f.kind in cb.stop_on for f in findings):
            cb.model.stop_training = True  # also when printed by an earlier fit
        return new


def stops_training(finding, stop_on):
    """Whether `finding` stops training under `stop_on`: its kind is among
    them, and it is a problem (warning or error) or of a kind that is info
    by nature (converged). A train finding that its validation run
    overruled (made info, see tb_plugin.diagnosis) does not stop training."""
    from tb_plugin import diagnosis

    return finding.kind in stop_on and (finding.severity != diagnosis.SEVERITY_INFO
                                        or finding.kind == diagnosis.KIND_CONVERGED)


def finding_key(finding):
    """What a finding is printed once per. A manifest finding names the output
    layer by its kernel's variable path once gradients are recorded, by the
    layer's name before (train begin): one key for both."""
    from tb_plugin import diagnosis

    if finding.kind in diagnosis.MANIFEST_KINDS:
        return finding.kind, (finding.evidence or {}).get("output_layer", finding.layer)
    return finding.kind, finding.layer
