"""Per-run reads and diagnoses of the Health plugin, cached by data version.

:class:`RunCache` reads a run as ``tb-health check`` does
(:func:`tb_plugin.diagnosis.read_for_diagnosis`) and diagnoses it; the
result is kept until the run's health data changes (its version: the max
step and wall time of its ``health`` tags; an index summary is written with
every record). Stale runs are read in parallel. Detail routes reuse that
read when it holds what they show, or read only their own part, cached on
its own.

This module imports no TensorFlow.
"""

import collections
import concurrent.futures
import logging
import threading

import numpy as np

from tensorboard.data import provider

from tb_plugin import diagnosis
from tb_plugin import metadata
from tb_plugin import reader
from tb_plugin import route_json

logger = logging.getLogger(__name__)
CACHE_SIZE = 512
# Runs read (and diagnosed) at once when the overview finds several stale.
READ_THREADS = 4


class NoHealthData(LookupError):
    """`run` has no health data (`cause`: None) or none that can be read
    (`cause`: the exception)."""

    def __init__(self, run, cause=None):
        super().__init__(run if cause is None else "%s: %s" % (run, cause))
        self.run = run
        self.cause = cause


class _Entry:
    """One run's records and diagnosis, valid for one data version of the
    run and, for a train run, `sibling`: (its validation run, that run's
    version), whose records the diagnosis also reads."""

    __slots__ = ("version", "sibling", "records", "findings", "status", "error",
                 "summary")

    def __init__(self, version, records, findings, status, error, summary, sibling=None):
        self.version = version
        self.sibling = sibling
        self.records = records
        self.findings = findings
        self.status = status
        self.error = error
        self.summary = summary


class RunCache:
    """The runs of a data provider, read and diagnosed, cached by version."""

    def __init__(self, data_provider):
        self._data_provider = data_provider
        self._cache = collections.OrderedDict()  # (eid, run) -> _Entry
        # Partial reads for detail routes: (eid, run, name, variable) ->
        # (version, RunRecords).
        self._partial = collections.OrderedDict()
        self._cache_lock = threading.Lock()
        self._run_locks = {}  # (eid, run) -> Lock: one reader per run at a time
        self.stats = collections.Counter()  # cache hits/misses, for tests

    def versions(self, ctx, eid, runs=None):
        """{run: version} for the runs with health data.

        The version is built from the max step and wall time of the run's
        ``health`` tags. An index summary is written with every record, so the
        version changes whenever a record arrives.
        """
        if self._data_provider is None:
            return {}
        run_tag_filter = provider.RunTagFilter(runs=runs) if runs else None
        listing = self._data_provider.list_tensors(
            ctx,
            experiment_id=eid,
            plugin_name=metadata.PLUGIN_NAME,
            run_tag_filter=run_tag_filter,
        )
        out = {}
        for run, tags in (listing or {}).items():
            if not tags:
                continue
            out[run] = tuple(
                sorted(
                    (tag, ts.max_step, ts.max_wall_time) for tag, ts in tags.items()
                )
            )
        return out

    def _run_lock(self, key):
        with self._cache_lock:
            lock = self._run_locks.get(key)
            if lock is None:
                lock = self._run_locks[key] = threading.Lock()
            return lock

    def entry(self, ctx, eid, run, version, sibling=None):
        """The cached read+diagnosis of `run`, (re)computed if stale.
        `sibling`: see _sibling."""
        key = (eid, run)
        with self._cache_lock:
            entry = self._cache.get(key)
            if _current(entry, version, sibling):
                self._cache.move_to_end(key)
                self.stats["hit"] += 1
                return entry
        with self._run_lock(key):
            with self._cache_lock:
                entry = self._cache.get(key)
                if _current(entry, version, sibling):
                    self.stats["hit"] += 1
                    return entry
            self.stats["miss"] += 1
            entry = self._compute(ctx, eid, run, version, sibling)
            if entry.version is not None:
                with self._cache_lock:
                    self._cache[key] = entry
                    self._cache.move_to_end(key)
                    while len(self._cache) > CACHE_SIZE:
                        old_key, _ = self._cache.popitem(last=False)
                        self._run_locks.pop(old_key, None)
            return entry

    def entries(self, ctx, eid, versions):
        """{run: _Entry or the exception raised}, stale runs read in parallel.

        The Rust data server answers concurrent reads in parallel; with the
        Python loader the threads mostly take turns.
        """
        def one(run):
            try:
                return self.entry(ctx, eid, run, versions[run], _sibling(run, versions))
            except Exception as e:  # reported per run by the caller
                return e

        with self._cache_lock:
            stale = [
                run for run in versions
                if not _current(self._cache.get((eid, run)), versions[run],
                                _sibling(run, versions))
            ]
        out = {}
        if len(stale) > 1 and READ_THREADS > 1:
            with concurrent.futures.ThreadPoolExecutor(
                max_workers=min(READ_THREADS, len(stale)),
                thread_name_prefix="health-read",
            ) as pool:
                out.update(zip(stale, pool.map(one, stale)))
        for run in versions:
            if run not in out:
                out[run] = one(run)
        return out

    def _compute(self, ctx, eid, run, version, sibling=None):
        try:
            records = diagnosis.read_for_diagnosis(self._data_provider, ctx, eid, run)
        except Exception as e:  # a broken run must not break the others
            logger.warning("Health: reading run %r failed", run, exc_info=True)
            return _Entry(
                None, None, [], "no_data", "could not read run: %s" % e,
                route_json.empty_summary(run),
            )
        summary = route_json.run_summary(records, run)
        try:
            validation = None
            if sibling is not None:
                # Its own cache entry: read once for both runs.
                validation = self.entry(ctx, eid, *sibling).records
            found = diagnosis.diagnose(records, validation=validation)
            status = diagnosis.run_status(records, found)
        except Exception as e:
            logger.warning("Health: diagnosing run %r failed", run, exc_info=True)
            return _Entry(
                None, records, [], "no_data", "could not diagnose run: %s" % e,
                summary,
            )
        findings = [f.to_json() for f in found]
        if not _complete(records, version):
            # The loader is part way through this run's newest record: answer
            # with what there is, but read again next time.
            version = None
        return _Entry(version, records, findings, status, None, summary, sibling)

    def records(self, ctx, eid, run, name=None, variable=None):
        """The RunRecords a detail route needs (NoHealthData: none).

        The overview's cached read of the run is used when it is current
        and holds what the route shows (see _overview_serves). Otherwise only
        what the route shows is read: the record
        family `name` (and of it only `variable`), or just the manifest when
        `name` is None; that partial read is cached on its own.
        """
        versions = self.versions(ctx, eid, runs=[run])
        if run not in versions:
            raise NoHealthData(run)
        version = versions[run]
        with self._cache_lock:
            entry = self._cache.get((eid, run))
            if (entry is not None and entry.version == version
                    and entry.records is not None
                    and _overview_serves(entry.records, name, variable)):
                self.stats["hit"] += 1
                return entry.records
        if name is not None and metadata.index_tag(name) not in {t for t, _, _ in version}:
            return _no_records(run)
        key = (eid, run, name, variable)
        with self._cache_lock:
            # A read of the whole family serves one variable of it too.
            for k in ((key, (eid, run, name, None)) if variable is not None else (key,)):
                cached = self._partial.get(k)
                if cached is not None and cached[0] == version:
                    self._partial.move_to_end(k)
                    self.stats["hit"] += 1
                    return cached[1]
        self.stats["partial_miss"] += 1
        try:
            records = reader.read_run(
                self._data_provider, ctx, eid, run,
                names=[] if name is None else [name],
                variables=None if variable is None else [variable],
                include_manifest=name is None,
                include_scalars=variable is None,
            )
        except Exception as e:
            logger.warning("Health: reading run %r failed", run, exc_info=True)
            raise NoHealthData(run, e)
        if _complete(records, version):
            with self._cache_lock:
                self._partial[key] = (version, records)
                self._partial.move_to_end(key)
                while len(self._partial) > CACHE_SIZE:
                    self._partial.popitem(last=False)
        return records


def _overview_serves(records, name, variable):
    """Whether the overview's read of a run (diagnosis.read_for_diagnosis:
    without the histograms no rule reads) holds what a detail request of
    record family `name` (None: the manifest) and `variable` shows: the
    manifest, a train-mode family, a gradient family's matrix (not its
    log10|g| histograms); not a prediction family (its probability
    histograms)."""
    return name is None or (variable is None
                            and (name in records.gradients or name in records.train_mode))


def _no_records(run):
    return reader.RunRecords(run=run, manifest=None, predictions={}, gradients={})


def _max_step_of(obj):
    """The largest step in the series/histograms of one record family."""
    best = None
    containers = []
    for attr in ("scalars", "histograms", "log10_histograms"):
        d = getattr(obj, attr, None)
        if d:
            containers.extend(d.values())
    stats = getattr(obj, "stats", None)
    if stats:
        for per_var in stats.values():
            containers.extend(per_var.values())
    for series in containers:
        steps = np.asarray(getattr(series, "steps", []))
        if len(steps):
            m = int(steps.max())
            best = m if best is None else max(best, m)
    return best


def _sibling(run, versions):
    """(validation run, its version) for a train run that has one (its
    diagnosis reads it, see diagnosis.validation_sibling), else None."""
    sibling = diagnosis.validation_sibling(run, versions)
    return None if sibling is None else (sibling, versions[sibling])


def _current(entry, version, sibling):
    """Whether cached `entry` is the diagnosis for these data versions."""
    return entry is not None and entry.version == version and entry.sibling == sibling


def _complete(records, version):
    """Whether every record family has data up to its index summary's step."""
    try:
        index_steps = {tag: step for tag, step, _ in version}
        families = (list(records.predictions.items()) + list(records.gradients.items())
                    + list(getattr(records, "train_mode", {}).items()))
        for name, rec in families:
            want = index_steps.get(metadata.index_tag(name))
            have = _max_step_of(rec)
            if want is None or have is None:
                continue
            if have < want:
                return False
        return True
    except Exception:
        return True
