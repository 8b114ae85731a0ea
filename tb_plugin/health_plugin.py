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

import functools
import json
import logging
import mimetypes
import os
import posixpath
import urllib.parse

from werkzeug import wrappers

from tensorboard.backend import http_util
from tensorboard.plugins import base_plugin
from tensorboard import plugin_util

from tb_plugin import compare
from tb_plugin import diagnosis
from tb_plugin import metadata
from tb_plugin import route_json
from tb_plugin import run_cache

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
# The plugin.


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
        self._runs = run_cache.RunCache(context.data_provider)

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

    # -- routes ----------------------------------------------------------------

    @_route
    def _runs_route(self, request):
        return self._guard(request, self._runs_impl)

    def _runs_impl(self, request):
        ctx = plugin_util.context(request.environ)
        eid = plugin_util.experiment_id(request.environ)
        versions = self._runs.versions(ctx, eid)
        entries = self._runs.entries(ctx, eid, versions)
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
                item = route_json.empty_summary(run)
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

    def _records(self, request, run, name=None, variable=None):
        """The records a detail route shows (see RunCache.records), or a
        404 _HttpError."""
        try:
            return self._runs.records(plugin_util.context(request.environ),
                                      plugin_util.experiment_id(request.environ),
                                      run, name, variable)
        except run_cache.NoHealthData as e:
            if e.cause is None:
                raise _HttpError(404, "no health data for run %s" % _shown(run))
            raise _HttpError(404, "run %s has no readable health data (could not read "
                                  "run: %s)" % (_shown(run), _shown(str(e.cause))))

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
        return route_json.predictions_json(run, name, rec, width)

    @_route
    def _gradients_route(self, request):
        return self._guard(request, self._gradients_impl)

    def _gradients_impl(self, request):
        run, name, _, width, rec = self._family(request, "gradients")
        return route_json.gradients_json(run, name, rec, width)

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
        out.update(route_json.histogram_json(hist, width))
        return out

    @_route
    def _train_mode_route(self, request):
        return self._guard(request, self._train_mode_impl)

    def _train_mode_impl(self, request):
        run, name, _, width, rec = self._family(request, "train_mode")
        return {"run": run, "name": name,
                "layers": [route_json.train_mode_layer_json(rec, entry, width) for entry in rec.layers]}

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
        versions = {run: v for run, v in self._runs.versions(ctx, eid).items()
                    if compare.training_run(run) in owners}
        return compare.health_of({
            run: (e.status != diagnosis.STATUS_NO_DATA, e.findings,
                  e.records.manifest if e.records is not None else None)
            for run, e in self._runs.entries(ctx, eid, versions).items()
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

