"""The Health tab: a TensorBoard dynamic plugin.

The backend reads everything through ``context.data_provider`` (so it works
with both TensorBoard loaders, ``--load_fast=true`` included, under
``--path_prefix`` and under ``/experiment/<id>/``), turns it into
:class:`tb_plugin.reader.RunRecords` with :func:`tb_plugin.reader.read_run`
and diagnoses each run with :func:`tb_plugin.diagnosis.diagnose`, the same
code that ``tb-health check --json`` runs (the overview reads a run as it
does, with :func:`tb_plugin.diagnosis.read_for_diagnosis`: without the
histograms no rule reads). The frontend is an ES module
(``static/index.js``) that TensorBoard loads into an iframe.

Routes, under ``data/plugin/health/`` (see CONTRACT in the docs):

* ``runs``: every run with health data, its status and findings;
* ``predictions?run=R&name=N[&width=W]``: prediction statistics;
* ``gradients?run=R&name=N[&width=W]``: per-variable gradient statistics as
  ``[variable][step]`` matrices;
* ``gradient_histogram?run=R&name=N&variable=P[&width=W]``: log10|g| histograms
  of one variable;
* ``train_mode?run=R&name=N[&width=W]``: per layer that behaves differently
  in training (Dropout, BatchNormalization, ...), the training flag it ran
  with, a Dropout's expected and observed zero fraction (with its standard
  error), BatchNormalization's moving-statistics movement, over the steps;
* ``manifest?run=R``: the model description recorded at step 0;
* ``scalar_tags``: the scalar tags of the runs (any plugin's, ``health/`` last)
  and the runs that have scalars, for the Compare view;
* ``compare?tag=T[&group=REGEX][&run=REGEX][&final=last|best|mean-last-K]
  [&band=ci|sd|se|minmax][&better=higher|lower][&runs=1]``: groups of runs
  (configurations x seeds) compared on scalar T, the document of
  :func:`tb_plugin.compare.compare` (schema ``tb-health-compare/1``); without
  ``group``, runs are grouped by HParams or recorded configuration; 501 when
  scipy is not installed;
* ``index.js`` and other static files of the package's ``static`` folder.

All answers are JSON (``application/json``, ``nosniff``); non-finite numbers are
sent as the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``. Missing or
malformed parameters give 400 (``width``: ASCII digits only), unknown runs,
names and variables 404, methods other than GET and HEAD 405 (with
``Allow``), each with ``{"error": message}``; a message shows at most
MAX_ECHO characters of a parameter.

This module imports no TensorFlow.
"""

import collections
import concurrent.futures
import functools
import json
import logging
import mimetypes
import os
import posixpath
import threading
import urllib.parse

import numpy as np
from werkzeug import wrappers

from tensorboard.backend import http_util
from tensorboard.data import provider
from tensorboard.plugins import base_plugin
from tensorboard import plugin_util

from tb_plugin import compare
from tb_plugin import diagnosis
from tb_plugin import metadata
from tb_plugin import reader

logger = logging.getLogger(__name__)

_JSON = "application/json"
_PLUGIN_ROUTE_PREFIX = "/data/plugin/%s/" % metadata.PLUGIN_NAME
_STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")

DEFAULT_WIDTH = 500
MAX_WIDTH = 100000
# Every route is read-only: other methods are answered 405.
ALLOWED_METHODS = ("GET", "HEAD")
# Characters of a request's parameter shown back in an error message.
MAX_ECHO = 100
# Characters of the compare route's tag and regular expressions (its error
# messages show them whole).
MAX_PATTERN = 1000
# Read+diagnosis results kept per (experiment, run); least recently used go.
CACHE_SIZE = 512
# Runs read (and diagnosed) at once when the overview finds several stale.
READ_THREADS = 4

# Per-variable gradient statistics sent by the gradients route, in order.
GRADIENT_MATRIX_STATS = (
    metadata.GRAD_NORM,
    metadata.GRAD_MAX_ABS,
    metadata.GRAD_ZERO_FRACTION,
    metadata.GRAD_UPDATE_RATIO,
    metadata.GRAD_WEIGHT_NORM,
    metadata.GRAD_NONFINITE,
)
# Statistics for which a downsampled cell shows the largest value of the steps
# it stands for rather than the last one, so that no event is hidden.
_MAX_IN_BUCKET_STATS = frozenset([metadata.GRAD_NONFINITE, metadata.PRED_NONFINITE])

_FALLBACK_INDEX_JS = (
    "export function render() {\n"
    "  const p = document.createElement('p');\n"
    "  p.setAttribute('data-testid', 'error-state');\n"
    "  p.textContent = 'The Health frontend is not built: run "
    "`cd frontend && npm install && npm run build`.';\n"
    "  document.body.appendChild(p);\n"
    "}\n"
)


class _HttpError(Exception):
    """An error answered as JSON ``{"error": message}`` with a status code."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


# --------------------------------------------------------------------------
# JSON: numbers without NaN/Infinity tokens (diagnosis.json_floats encodes
# them as strings, for the routes and the CLI alike).


def _int_list(values):
    return np.asarray(values, dtype=np.int64).tolist()


def _dumps(obj):
    try:
        return json.dumps(obj, allow_nan=False, separators=(",", ":"))
    except ValueError:
        # A stray non-finite float somewhere.
        return json.dumps(
            diagnosis.json_safe(obj), allow_nan=False, separators=(",", ":")
        )


def _respond_json(request, obj, code=200, headers=None):
    return http_util.Respond(request, _dumps(obj), _JSON, code=code, headers=headers)


def _shown(value):
    """A request's value as an error message shows it: its repr, at most
    MAX_ECHO characters of it (a message never echoes a whole input)."""
    text = repr(value[:MAX_ECHO])
    if len(value) > MAX_ECHO:
        text += "... (%d characters)" % len(value)
    return text


def _route(handler):
    """A plugin route (a WSGI app taking a werkzeug Request): read-only, so
    methods other than ALLOWED_METHODS are answered 405 with ``Allow``."""

    @wrappers.Request.application
    @functools.wraps(handler)
    def route(self, request):
        if request.method not in ALLOWED_METHODS:
            return _respond_json(
                request,
                {"error": "method %s not allowed: the Health routes are read-only"
                          % _shown(request.method)},
                code=405, headers=[("Allow", ", ".join(ALLOWED_METHODS))])
        return handler(self, request)

    return route


# --------------------------------------------------------------------------
# Downsampling.


def downsample_indices(n, width):
    """Indices of at most `width` of `n` points, evenly spread, keeping the
    first and the last."""
    if n <= width:
        return np.arange(n)
    if width <= 1:
        return np.array([n - 1])
    idx = np.round(np.linspace(0, n - 1, width)).astype(np.int64)
    return np.unique(idx)


def _series_json(series, width):
    steps = np.asarray(series.steps)
    values = np.asarray(series.values, dtype=np.float64)
    idx = downsample_indices(len(steps), width)
    return {"steps": _int_list(steps[idx]),
            "values": diagnosis.json_floats(values[idx])}


def _histogram_json(hist, width):
    steps = np.asarray(hist.steps)
    counts = np.asarray(hist.counts, dtype=np.float64)
    idx = downsample_indices(len(steps), width)
    if counts.ndim == 2 and len(steps):
        rows = counts[idx]
    else:
        rows = np.zeros((0, max(len(np.asarray(hist.edges)) - 1, 0)))
    out = {
        "edges": diagnosis.json_floats(hist.edges),
        "steps": _int_list(steps[idx]),
        "counts": diagnosis.json_floats(rows),
    }
    step_edges = getattr(hist, "step_edges", None)
    if step_edges is not None and len(steps):
        # Edges that change from record to record (regression outputs): the
        # edges of each returned record; "edges" holds the last record's.
        out["step_edges"] = diagnosis.json_floats(np.asarray(step_edges)[idx])
    return out


def _bucket_values(series, columns, use_max):
    """Values of `series` at the column steps of a matrix.

    Column j stands for the steps in (columns[j-1], columns[j]] (the first
    column: steps <= columns[0]). The cell holds the series' last point in that
    interval (or its largest when `use_max`), and is empty when none falls in
    it: the loaders may keep different steps for different tags.
    """
    steps = np.asarray(series.steps)
    values = np.asarray(series.values, dtype=np.float64)
    ncol = len(columns)
    out = np.full(ncol, np.nan)
    present = np.zeros(ncol, dtype=bool)
    if len(steps) == 0 or ncol == 0:
        return out, present
    hi = np.searchsorted(steps, columns, side="right")  # end of bucket j
    lo = np.concatenate([[0], hi[:-1]])  # start of bucket j
    present = hi > lo
    if not present.any():
        return out, present
    if use_max:
        # Buckets are contiguous (lo[j+1] == hi[j]) and the last column is
        # the largest step, so reduceat over the non-empty buckets' starts
        # covers exactly each bucket. np.maximum keeps NaN.
        starts = lo[present]
        if hi[-1] < len(values):
            values = values[:hi[-1]]
        out[present] = np.maximum.reduceat(values, starts)
    else:
        out[present] = values[hi[present] - 1]
    return out, present


# --------------------------------------------------------------------------
# The plugin.


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


class HealthLoader(base_plugin.TBLoader):
    """What TensorBoard loads (the package's ``tensorboard_plugins`` entry
    point): the Health plugin, with the points its series need kept.

    TensorBoard's loaders keep a tag's points per plugin name, and only 10
    (Python loader) or 100 tensors (Rust data server) for a plugin they do
    not know; TensorBoard hands every plugin loader its parsed flags before
    it starts a loader, so ``fix_flags`` asks both for
    ``metadata.SAMPLES_KEPT`` points per ``health`` tag, unless the user set
    ``--samples_per_plugin health=N``.

    ``HealthCallback`` and ``keras.callbacks.TensorBoard`` write two event
    files into one run directory at once. The Rust data server follows every
    file of a run; the Python loader follows only the newest unless
    ``--reload_multifile`` is true, so ``fix_flags`` turns it on unless the
    user set it (the Keras curves would stop updating otherwise).
    """

    def fix_flags(self, flags):
        samples = getattr(flags, "samples_per_plugin", None)
        if isinstance(samples, dict):
            samples.setdefault(metadata.PLUGIN_NAME, metadata.SAMPLES_KEPT)
        if getattr(flags, "reload_multifile", False) is None:  # not set by the user
            flags.reload_multifile = True

    def load(self, context):
        return HealthPlugin(context)


class HealthPlugin(base_plugin.TBPlugin):
    """The Health tab of TensorBoard."""

    plugin_name = metadata.PLUGIN_NAME

    def __init__(self, context):
        self._data_provider = context.data_provider
        self._cache = collections.OrderedDict()  # (eid, run) -> _Entry
        # Partial reads for detail routes: (eid, run, name, variable) ->
        # (version, RunRecords).
        self._partial = collections.OrderedDict()
        self._cache_lock = threading.Lock()
        self._run_locks = {}  # (eid, run) -> Lock: one reader per run at a time
        self._stats = collections.Counter()  # cache hits/misses, for tests

    # -- TBPlugin ----------------------------------------------------------

    def get_plugin_apps(self):
        return {
            "/runs": self._runs_route,
            "/predictions": self._predictions_route,
            "/gradients": self._gradients_route,
            "/gradient_histogram": self._gradient_histogram_route,
            "/train_mode": self._train_mode_route,
            "/manifest": self._manifest_route,
            "/scalar_tags": self._scalar_tags_route,
            "/compare": self._compare_route,
            "/index.js": self._index_js_route,
            "/static/*": self._static_route,
            "/*": self._static_route,
        }

    def is_active(self):
        # TensorBoard lists the tab when some run has data of a plugin named
        # by data_plugin_names(); that check uses the data provider's
        # list_plugins, cheap with both loaders.
        return False

    def data_plugin_names(self):
        return (metadata.PLUGIN_NAME,)

    def frontend_metadata(self):
        return base_plugin.FrontendMetadata(
            es_module_path="/index.js", tab_name="Health"
        )

    # -- data access ---------------------------------------------------------

    def _list_health(self, ctx, eid, runs=None):
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

    def _entry(self, ctx, eid, run, version, sibling=None):
        """The cached read+diagnosis of `run`, (re)computed if stale.
        `sibling`: see _sibling."""
        key = (eid, run)
        with self._cache_lock:
            entry = self._cache.get(key)
            if _current(entry, version, sibling):
                self._cache.move_to_end(key)
                self._stats["hit"] += 1
                return entry
        with self._run_lock(key):
            with self._cache_lock:
                entry = self._cache.get(key)
                if _current(entry, version, sibling):
                    self._stats["hit"] += 1
                    return entry
            self._stats["miss"] += 1
            entry = self._compute(ctx, eid, run, version, sibling)
            if entry.version is not None:
                with self._cache_lock:
                    self._cache[key] = entry
                    self._cache.move_to_end(key)
                    while len(self._cache) > CACHE_SIZE:
                        old_key, _ = self._cache.popitem(last=False)
                        self._run_locks.pop(old_key, None)
            return entry

    def _entries(self, ctx, eid, versions):
        """{run: _Entry or the exception raised}, stale runs read in parallel.

        The Rust data server answers concurrent reads in parallel; with the
        Python loader the threads mostly take turns.
        """
        def one(run):
            try:
                return self._entry(ctx, eid, run, versions[run], _sibling(run, versions))
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
                _empty_summary(run),
            )
        summary = _run_summary(records, run)
        try:
            validation = None
            if sibling is not None:
                # Its own cache entry: read once for both runs.
                validation = self._entry(ctx, eid, *sibling).records
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

    def _records(self, request, run, name=None, variable=None):
        """The RunRecords a detail route needs, or a 404 _HttpError.

        The overview's cached read of the run is used when it is current
        and holds what the route shows (see _overview_serves). Otherwise only
        what the route shows is read: the record
        family `name` (and of it only `variable`), or just the manifest when
        `name` is None; that partial read is cached on its own.
        """
        ctx = plugin_util.context(request.environ)
        eid = plugin_util.experiment_id(request.environ)
        versions = self._list_health(ctx, eid, runs=[run])
        if run not in versions:
            raise _HttpError(404, "no health data for run %s" % _shown(run))
        version = versions[run]
        with self._cache_lock:
            entry = self._cache.get((eid, run))
            if (entry is not None and entry.version == version
                    and entry.records is not None
                    and _overview_serves(entry.records, name, variable)):
                self._stats["hit"] += 1
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
                    self._stats["hit"] += 1
                    return cached[1]
        self._stats["partial_miss"] += 1
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
            raise _HttpError(404, "run %s has no readable health data (could not "
                             "read run: %s)" % (_shown(run), _shown(str(e))))
        if _complete(records, version):
            with self._cache_lock:
                self._partial[key] = (version, records)
                self._partial.move_to_end(key)
                while len(self._partial) > CACHE_SIZE:
                    self._partial.popitem(last=False)
        return records

    # -- routes ----------------------------------------------------------------

    @_route
    def _runs_route(self, request):
        return self._guard(request, self._runs_impl)

    def _runs_impl(self, request):
        ctx = plugin_util.context(request.environ)
        eid = plugin_util.experiment_id(request.environ)
        versions = self._list_health(ctx, eid)
        entries = self._entries(ctx, eid, versions)
        runs = []
        for run in sorted(versions):
            try:
                entry = entries[run]
                if isinstance(entry, Exception):
                    raise entry
                item = dict(entry.summary)
                item["status"] = entry.status
                item["findings"] = entry.findings
                if entry.error:
                    item["error"] = entry.error
            except Exception as e:
                logger.warning("Health: run %r failed", run, exc_info=True)
                item = _empty_summary(run)
                item["status"] = "no_data"
                item["findings"] = []
                item["error"] = "could not read run: %s" % e
            # What changes when a record arrives (the frontend's auto-reload
            # re-renders only then).
            item["last_step"] = max(step for _, step, _ in versions[run])
            item["last_wall_time"] = max(wall for _, _, wall in versions[run])
            runs.append(item)
        return {"runs": runs}

    @_route
    def _predictions_route(self, request):
        return self._guard(request, self._predictions_impl)

    def _family(self, request, kind, with_variable=False):
        """(run, name, variable, width, records of family `name` of `kind`)
        named by a detail request; 400/404 _HttpError when they are not."""
        run = _required(request, "run")
        name = _required(request, "name")
        variable = _required(request, "variable") if with_variable else None
        width = _width(request)
        records = self._records(request, run, name, variable)
        rec = getattr(records, kind).get(name)
        if rec is None:
            raise _HttpError(
                404, "no %s named %s in run %s" % (kind, _shown(name), _shown(run)))
        return run, name, variable, width, rec

    def _predictions_impl(self, request):
        run, name, _, width, rec = self._family(request, "predictions")
        return {
            "run": run,
            "name": name,
            "task": rec.task,
            "num_classes": rec.num_classes,
            "from_logits": rec.from_logits,
            "has_labels": rec.has_labels,
            "scalars": {
                stat: _series_json(series, width)
                for stat, series in sorted(rec.scalars.items())
            },
            "histograms": {
                stat: _histogram_json(hist, width)
                for stat, hist in sorted(rec.histograms.items())
            },
        }

    @_route
    def _gradients_route(self, request):
        return self._guard(request, self._gradients_impl)

    def _gradients_impl(self, request):
        run, name, _, width, rec = self._family(request, "gradients")
        variables = list(rec.variables)
        # Columns: the steps of all per-variable series, downsampled.
        columns = rec.steps[downsample_indices(len(rec.steps), width)]
        matrix = {}
        for stat in GRADIENT_MATRIX_STATS:
            per_var = rec.stats.get(stat)
            if not per_var:
                continue
            values = np.full((len(variables), len(columns)), np.nan)
            present = np.zeros((len(variables), len(columns)), dtype=bool)
            for i, path in enumerate(variables):
                series = per_var.get(path)
                if series is None:
                    continue
                values[i], present[i] = _bucket_values(
                    series, columns, stat in _MAX_IN_BUCKET_STATS
                )
            matrix[stat] = diagnosis.json_floats(values, present)
        # The quantity vanishing_gradients judges, not the recorded
        # kernel/kernel scalar: the chart and the rule must agree.
        flr = reader.Series(*diagnosis.first_layer_gradient_ratio(rec))
        return {
            "run": run,
            "name": name,
            "variables": variables,
            "shapes": {p: list(rec.shapes.get(p, [])) for p in variables},
            "steps": _int_list(columns),
            "matrix": matrix,
            "first_last_ratio": _series_json(flr, width),
            "thresholds": _gradient_thresholds(),
        }

    @_route
    def _gradient_histogram_route(self, request):
        return self._guard(request, self._gradient_histogram_impl)

    def _gradient_histogram_impl(self, request):
        run, name, variable, width, rec = self._family(
            request, "gradients", with_variable=True
        )
        hist = rec.log10_histograms.get(variable)
        if hist is None:
            if variable in rec.variables:
                raise _HttpError(
                    404, "no log10|g| histogram for variable %s" % _shown(variable)
                )
            raise _HttpError(
                404, "no variable %s in gradients %s of run %s"
                % (_shown(variable), _shown(name), _shown(run))
            )
        out = {"run": run, "name": name, "variable": variable}
        out.update(_histogram_json(hist, width))
        return out

    @_route
    def _train_mode_route(self, request):
        return self._guard(request, self._train_mode_impl)

    def _train_mode_impl(self, request):
        run, name, _, width, rec = self._family(request, "train_mode")
        return {"run": run, "name": name,
                "layers": [_train_mode_layer_json(rec, entry, width) for entry in rec.layers]}

    @_route
    def _manifest_route(self, request):
        return self._guard(request, self._manifest_impl)

    def _manifest_impl(self, request):
        run = _required(request, "run")
        records = self._records(request, run)
        return {"run": run, "manifest": diagnosis.json_safe(records.manifest)}

    @_route
    def _scalar_tags_route(self, request):
        return self._guard(request, self._scalar_tags_impl)

    def _scalar_tags_impl(self, request):
        tags, runs = compare.scalar_tags(self._data_provider,
                                         plugin_util.context(request.environ),
                                         plugin_util.experiment_id(request.environ))
        return {"tags": tags, "runs": runs}

    @_route
    def _compare_route(self, request):
        return self._guard(request, self._compare_impl)

    def _compare_impl(self, request):
        kwargs = _compare_args(request)
        try:
            return compare.compare(self._data_provider, plugin_util.context(request.environ),
                                   plugin_util.experiment_id(request.environ),
                                   diagnose=self._compare_diagnose, **kwargs)
        except compare.CompareError as e:  # a bad regex, a seed counted twice
            raise _HttpError(400, str(e))
        except ImportError as e:  # scipy is not installed
            raise _HttpError(501, str(e))

    def _compare_diagnose(self, data_provider, ctx, eid, owners):
        """compare.diagnose_runs from the overview's diagnoses of the health
        runs of the training runs `owners` (cached per run and data version;
        stale ones read and diagnosed now): most of a comparison's time."""
        versions = {run: v for run, v in self._list_health(ctx, eid).items()
                    if compare.training_run(run) in owners}
        return compare.health_of({
            run: (e.status != diagnosis.STATUS_NO_DATA, e.findings,
                  e.records.manifest if e.records is not None else None)
            for run, e in self._entries(ctx, eid, versions).items()
            if not isinstance(e, Exception)})

    def _guard(self, request, impl):
        try:
            body = impl(request)
        except _HttpError as e:
            return _respond_json(request, {"error": e.message}, code=e.code)
        except Exception:
            # Not expected: log it, never send a traceback.
            logger.error("Health: %s failed", request.path, exc_info=True)
            return _respond_json(
                request, {"error": "internal error, see the TensorBoard log"},
                code=500,
            )
        return _respond_json(request, body)

    # -- static files --------------------------------------------------------

    @_route
    def _index_js_route(self, request):
        path = _index_js_path()
        if not os.path.isfile(path):
            return http_util.Respond(request, _FALLBACK_INDEX_JS, "text/javascript")
        return self._serve_file(request, path)

    @_route
    def _static_route(self, request):
        path = request.environ.get("PATH_INFO", request.path)
        pos = path.find(_PLUGIN_ROUTE_PREFIX)
        rel = path[pos + len(_PLUGIN_ROUTE_PREFIX):] if pos >= 0 else ""
        if rel.startswith("static/"):
            rel = rel[len("static/"):]
        resolved = _safe_static_path(rel)
        if resolved is None:
            return _respond_json(request, {"error": "not found"}, code=404)
        if resolved == _index_js_path() and not os.path.isfile(resolved):
            return http_util.Respond(request, _FALLBACK_INDEX_JS, "text/javascript")
        if not os.path.isfile(resolved):
            return _respond_json(request, {"error": "not found"}, code=404)
        return self._serve_file(request, resolved)

    def _serve_file(self, request, path):
        mimetype = _static_mimetype(path)
        with open(path, "rb") as f:
            content = f.read()
        return http_util.Respond(request, content, mimetype)


def _index_js_path():
    """The frontend's ES module (absent until the frontend is built)."""
    return os.path.join(os.path.realpath(_STATIC_DIR), "index.js")


def _static_mimetype(path):
    ext = os.path.splitext(path)[1].lower()
    known = {
        ".js": "text/javascript",
        ".mjs": "text/javascript",
        ".css": "text/css",
        ".json": "application/json",
        ".map": "application/json",
        ".svg": "image/svg+xml",
        ".png": "image/png",
        ".html": "text/html",
        ".woff2": "font/woff2",
    }
    if ext in known:
        return known[ext]
    return mimetypes.guess_type(path)[0] or "application/octet-stream"


def _safe_static_path(rel):
    """The file under the static folder named by `rel`, or None.

    `rel` is a request path relative to the plugin (already percent-decoded
    by the WSGI server); it is decoded once more so that double-encoded
    traversal attempts are refused too.
    """
    if not rel:
        return None
    for candidate in (rel, urllib.parse.unquote(rel)):
        if "\x00" in candidate or "\\" in candidate or ":" in candidate:
            return None
        if candidate.startswith("/") or candidate.startswith("~"):
            return None
        parts = candidate.split("/")
        if any(p in ("..", ".") for p in parts):
            return None
    norm = posixpath.normpath(rel)
    if norm.startswith("..") or posixpath.isabs(norm):
        return None
    static_root = os.path.realpath(_STATIC_DIR)
    full = os.path.realpath(os.path.join(static_root, *norm.split("/")))
    if os.path.commonpath([static_root, full]) != static_root or full == static_root:
        return None
    return full


# --------------------------------------------------------------------------
# Request parameters.


def _required(request, name):
    value = request.args.get(name)
    if value is None:
        raise _HttpError(400, "missing parameter %r" % name)
    if value == "":
        raise _HttpError(400, "empty parameter %r" % name)
    return value


def _compare_args(request):
    """The keyword arguments of compare.compare named by a compare request:
    ``tag``, ``group`` and ``run`` (regular expressions; empty: none), ``final``
    (last, best or mean-last-K), ``band`` (ci, sd, se, minmax), ``better``
    (higher, lower; default: from the tag's name), ``runs=1`` (each run's
    series too); 400 _HttpError when malformed."""
    kwargs = {"tag": _required(request, "tag")}
    for name, key in (("tag", "tag"), ("group", "group_regex"), ("run", "run_filter")):
        value = request.args.get(name) or None
        if value is not None and len(value) > MAX_PATTERN:
            raise _HttpError(400, "%s must be at most %d characters, got %s"
                             % (name, MAX_PATTERN, _shown(value)))
        kwargs[key] = value
    raw = request.args.get("final", "last")
    try:
        kwargs["final"], kwargs["k"] = compare.parse_final(raw)
    except ValueError as e:
        raise _HttpError(400, "%s, got %s" % (e, _shown(raw)))
    choices = {"band": compare.BAND_KINDS, "better": ("higher", "lower"), "runs": ("0", "1")}
    for name, allowed in choices.items():
        value = request.args.get(name)
        if value is not None and value not in allowed:
            raise _HttpError(400, "%s must be one of %s, got %s"
                             % (name, ", ".join(allowed), _shown(value)))
    kwargs["band"] = request.args.get("band", "ci")
    better = request.args.get("better")
    kwargs["higher_is_better"] = None if better is None else better == "higher"
    kwargs["include_runs"] = request.args.get("runs") == "1"
    return kwargs


def _width(request):
    """The `width` parameter: ASCII digits only (no sign, space, underscore
    or other scripts' digits), 1 to MAX_WIDTH."""
    raw = request.args.get("width")
    if raw is None:
        return DEFAULT_WIDTH
    if not (raw.isascii() and raw.isdigit()):
        raise _HttpError(400, "width must be a positive integer, got %s" % _shown(raw))
    digits = raw.lstrip("0")
    if len(digits) > len(str(MAX_WIDTH)) or not 1 <= int(digits or "0") <= MAX_WIDTH:
        raise _HttpError(
            400, "width must be between 1 and %d, got %s" % (MAX_WIDTH, _shown(raw))
        )
    return int(digits)


# --------------------------------------------------------------------------
# Run summaries.


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


def _empty_summary(run):
    return {
        "run": run,
        "predictions": [],
        "gradients": [],
        "has_manifest": False,
        "train_mode": [],
    }


def _run_summary(records, run):
    return {
        "run": run,
        "predictions": [
            {"name": name, "task": rec.task, "num_classes": rec.num_classes}
            for name, rec in sorted(records.predictions.items())
        ],
        "gradients": [
            {"name": name, "variables": list(rec.variables)}
            for name, rec in sorted(records.gradients.items())
        ],
        "has_manifest": records.manifest is not None,
        "train_mode": [
            {"name": name, "layers": [e["path"] for e in rec.layers]}
            for name, rec in sorted(getattr(records, "train_mode", {}).items())
        ],
    }


def _train_mode_layer_json(rec, entry, width):
    """One layer of a train-mode family: its index entry and its series
    (flags 1/0; for the Dropout family the expected zero fraction (had it
    trained), the observed one and its standard error; for
    BatchNormalization the moving statistics' movement between records)."""
    path = entry["path"]
    out = {k: entry.get(k) for k in ("path", "class", "kind", "rate", "flag", "caller",
                                     "trainable", "momentum")}
    series = {}
    names = {metadata.TM_TRAINING: "training", metadata.TM_ROOT_TRAINING: "root_training",
             metadata.TM_BY_CALLER: "inference_by_caller", metadata.TM_ZERO_IN: "zero_in",
             metadata.TM_ZERO_OUT: "observed_zero_fraction",
             metadata.TM_CHANGED: "changed_fraction", metadata.TM_MEAN_CHANGE: "mean_change",
             metadata.TM_VARIANCE_CHANGE: "variance_change"}
    for stat, key in names.items():
        s = rec.series(stat, path)
        if s is not None and len(s):
            series[key] = _series_json(s, width)
    zin, units = rec.series(metadata.TM_ZERO_IN, path), rec.series(metadata.TM_UNITS, path)
    rate = entry.get("rate")
    if (entry.get("kind") == "dropout" and isinstance(rate, (int, float)) and zin is not None
            and units is not None and len(zin) and len(units) == len(zin)):
        z = np.asarray(zin.values, dtype=np.float64)
        n = np.maximum(np.asarray(units.values, dtype=np.float64), 1.0)
        expected = z + (1.0 - z) * rate
        se = np.sqrt(np.maximum((1.0 - z) * rate * (1.0 - rate), 0.0) / n)
        series["expected_zero_fraction"] = _series_json(
            reader.Series(steps=zin.steps, values=expected), width)
        series["standard_error"] = _series_json(reader.Series(steps=zin.steps, values=se), width)
        # What the layer itself dropped: the share of its nonzero inputs it
        # zeroed (its input's own zeros, e.g. after a ReLU, are not its doing),
        # against `rate`; the picture that shows a Dropout that never drops.
        zout = rec.series(metadata.TM_ZERO_OUT, path)
        if zout is not None and np.array_equal(zout.steps, zin.steps):
            live = np.maximum(1.0 - z, 1e-12)
            dropped = np.clip((np.asarray(zout.values, dtype=np.float64) - z) / live, 0.0, 1.0)
            series["dropped_fraction"] = _series_json(
                reader.Series(steps=zin.steps, values=dropped), width)
            series["dropped_standard_error"] = _series_json(
                reader.Series(steps=zin.steps, values=se / live), width)
    out["series"] = series
    return out


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


def _gradient_thresholds():
    t = diagnosis.Thresholds()
    return {
        "update_ratio_guideline": t.update_ratio_guideline,
        "vanishing_ratio": t.vanishing_ratio,
        "exploding_ratio": t.exploding_ratio,
        "update_ratio_low": t.update_ratio_low,
    }
