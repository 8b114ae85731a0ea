"""Compare configurations across seeds: groups of runs, bands, final values.

The one implementation behind ``tb-health compare`` and the plugin's Compare
view. :func:`compare` takes a TensorBoard data provider, :func:`compare_logdir`
a log directory; both return the JSON-safe dict below, and
:func:`format_report` turns it into the text the CLI prints. The statistics
are in :mod:`tb_plugin.compare_stats` (scipy; no TensorFlow anywhere).

**Runs** are TensorBoard run names (``cfgA/seed3/validation``). A run is a
member when it has scalar `tag` (any scalar: Keras's ``epoch_loss``, ours)
and, with `run_filter`, its name matches that regex (``re.search``). Every
member belongs to one *training run*, its name without a final ``/train`` or
``/validation`` component (``cfgA/seed3``): its health findings, manifest and
HParams are those of the runs of that training run.

**Groups.** With `group_regex` (``re.search`` over the full run name), the
named group ``group`` or else the first capture group is the group key; a
run that does not match is left out. A member's *seed* is the named group
``seed`` if the regex has one, else the matched text without the key
(``(.*)/seed\\d+`` on ``cfgA/seed3/validation``: group ``cfgA``, seed
``/seed3``). Two members of one group with the same seed are an error
(:class:`CompareError`): typically the regex matches both the train and the
validation run of a seed; anchor it (``(.*)/seed\\d+/validation$``).
Without `group_regex`, runs are grouped by their TensorBoard HParams when
any member's training run has them (hparams whose name contains "seed" are
the seed, not the configuration), else by the manifest that
HealthCallback records, equal except for names (``model``, ``name``,
``path``, ``output_layer``), ``seed`` fields and ``versions``; the seed is
then the seed hparams or a ``seed<N>`` part of the run name. A group is
named by what sets it apart (``lr=0.01, opt=adam``), or ``config N`` when
that is longer than 60 characters.

**Alignment.** A group's band is drawn at every step that any of its runs
logged. At such a step a run counts with its last value at or before that
step, within its own first and last step (never before it started or after
it stopped); ``n`` says how many runs count at each step. A step logged more
than once (a restarted fit) keeps the value written last. Non-finite values
do not count.

**Final values** per run: ``last`` (the value at the last step), ``best``
(the minimum or maximum: lower is better when the tag name contains "loss"
or "error", unless `higher_is_better` says otherwise) or ``mean_last`` (the
mean of the last `k` records). A non-finite final value leaves the run out
of the statistics (its ``excluded`` says why).

**Statistics** (:mod:`tb_plugin.compare_stats`, scipy.stats): per group n,
mean, SD, 95% Student-t CI, median and, from 8 runs, the interquartile mean.
Per pair (A, B): mean(A) - mean(B) with Welch's 95% CI and two-sided p,
Hedges' g, P(a run of A beats a run of B) (Mann-Whitney U / (nA nB), ties
one half, the better side by the direction above) with a seeded percentile
bootstrap CI, and a paired t analysis over the seeds both groups have. The
verdict: A or B is better when Welch's p < 0.05; else "no detectable
difference" with the smallest difference (in SDs) that n runs per group
detect at 80% power (two-sided two-sample t, alpha 0.05, noncentral t) and
the seeds per group that the observed |g| would need.

**Health first.** Members' training runs are diagnosed
(:mod:`tb_plugin.diagnosis`); when a finding kind (error or warning) is in
a larger share of one group's runs than another's, ``health.warnings`` says
so, and the CLI prints it before any statistics. ``health.groups`` counts,
per kind, the training runs having it, with one run's message.

Schema (``"schema": "tb-health-compare/1"``; numbers are null where
undefined, e.g. a band with fewer than two runs)::

    {"schema", "logdir": str|null, "tag": str,
     "grouping": {"by": "regex"|"hparams"|"manifest", "regex": str|null,
                  "run_filter": str|null},
     "final": {"method": "last"|"best"|"mean_last", "k": int|null,
               "higher_is_better": bool, "direction": "tag_name"|"argument"},
     "band": {"kind": "ci"|"sd"|"se"|"minmax", "level": 0.95},
     "health": {"compared": bool, "differs": bool, "warnings": [str],
                "groups": {name: {"runs": int, "with_records": int,
                           "kinds": {kind: {"runs": int, "severity": str,
                                            "message": str}}}}},
     "groups": [{"name", "label" (what sets a configuration group apart, in full),
                 "runs": [{"run", "seed": str|null, "final": num|null,
                           "excluded": str|null,
                           "steps": [int], "values": [num|null]}],  # with include_runs
                 "series": {"steps": [int], "n": [int], "mean": [num|null],
                            "low": [num|null], "high": [num|null]},
                 "final": {"n", "mean", "sd", "ci_low", "ci_high", "median",
                           "iqm" (n >= 8), "min", "max"}}],
     "pairs": [{"a", "b", "difference" (mean a - mean b), "ci_low", "ci_high",
                "df", "p_value" (Welch), "hedges_g", "p_a_beats_b",
                "p_a_beats_b_ci_low", "p_a_beats_b_ci_high",
                "min_detectable_sd", "seeds_needed": int|null,
                "paired": null|{"n", "difference", "ci_low", "ci_high", "p_value"},
                "health_differs": bool,
                "verdict": {"outcome": "a_better"|"b_better"|
                            "no_detectable_difference"|"too_few_runs", "text"}}],
     "notes": [str]}

Groups are sorted by name; pairs are every two groups in that order.
p-values are not corrected for multiple comparisons.
"""

import itertools
import logging
import math
import re

import numpy as np

from tb_plugin import compare_groups
from tb_plugin import compare_stats
from tb_plugin.compare_groups import CompareError, training_run

logger = logging.getLogger(__name__)

SCHEMA = "tb-health-compare/1"
FINAL_METHODS = ("last", "best", "mean_last")
BAND_KINDS = compare_stats.BAND_KINDS


def lower_is_better_tag(tag):
    """Whether lower values of `tag` are better: its name holds "loss" or "error"."""
    return any(w in tag.lower() for w in ("loss", "error"))


def _num(x):
    return float(x) if x is not None and math.isfinite(x) else None


def _nums(a):
    return [_num(x) for x in np.asarray(a, dtype=np.float64).tolist()]


def _jsonable(obj):
    """`obj` (dicts, lists, numbers, strings) with floats made finite or None."""
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return _num(float(obj))
    return obj


# ---------------------------------------------------------------------------
# Reading


def _read_tag(provider, ctx, eid, tag, run_filter):
    """{run: (steps, values)} of every run with scalar `tag`, sorted by step,
    one value per step (the last written)."""
    from tensorboard.data import provider as provider_lib

    from tb_plugin import reader

    listing = provider.list_scalars(ctx, experiment_id=eid, plugin_name="scalars",
                                    run_tag_filter=provider_lib.RunTagFilter(tags=[tag]))
    runs = sorted(r for r, tags in listing.items() if tag in tags
                  and (run_filter is None or re.search(run_filter, r)))
    if not runs:
        return {}
    data = provider.read_scalars(
        ctx, experiment_id=eid, plugin_name="scalars", downsample=reader.DOWNSAMPLE_ALL,
        run_tag_filter=provider_lib.RunTagFilter(runs=runs, tags=[tag]))
    out = {}
    for run in runs:
        points = data.get(run, {}).get(tag) or []
        if points:
            steps = np.array([p.step for p in points], dtype=np.int64)[::-1]
            values = np.array([p.value for p in points], dtype=np.float64)[::-1]
            steps, first = np.unique(steps, return_index=True)  # first of reversed = last written
            out[run] = (steps, values[first])
    return out


def scalar_tags(provider, ctx, eid):
    """(tags, runs): the scalar tags of the log directory, sorted with those
    of tb_plugin (``health/``) last, and the runs that have scalars, sorted."""
    listing = provider.list_scalars(ctx, experiment_id=eid, plugin_name="scalars")
    tags = {t for tags in listing.values() for t in tags}
    return (sorted(tags, key=lambda t: (t.startswith("health/"), t)),
            sorted(r for r, tags in listing.items() if tags))


def _hparams(provider, ctx, eid):
    """{training run: {hparam: value}} from the HParams plugin's session
    start info."""
    from tensorboard.plugins.hparams import metadata as hp_metadata

    out = {}
    listing = provider.list_tensors(ctx, experiment_id=eid, plugin_name=hp_metadata.PLUGIN_NAME)
    for run, tags in listing.items():
        series = tags.get(hp_metadata.SESSION_START_INFO_TAG)
        if series is None:
            continue
        try:
            info = hp_metadata.parse_session_start_info_plugin_data(series.plugin_content)
        except Exception:  # noqa: BLE001 - another version's data: no hparams
            continue
        values = {}
        for name, value in info.hparams.items():
            kind = value.WhichOneof("kind")
            v = getattr(value, kind) if kind else None
            if kind == "number_value" and float(v).is_integer():
                v = int(v)  # HParams store every number as a double
            elif kind not in ("number_value", "string_value", "bool_value"):
                v = None if kind in (None, "null_value") else str(v)
            values[name] = v
        out[training_run(run)] = values
    return out


def diagnose_runs(provider, ctx, eid, owners):
    """:func:`health_of` the health runs of the training runs `owners` (a
    set), each read (what the rules use) and diagnosed beside its
    validation sibling."""
    from tb_plugin import diagnosis, reader

    health_runs = [r for r in reader.health_runs(provider, ctx, eid)
                   if training_run(r) in owners]
    records = {}
    for run in health_runs:
        try:
            records[run] = diagnosis.read_for_diagnosis(provider, ctx, eid, run)
        except Exception as e:  # noqa: BLE001 - one odd run must not hide the others
            logger.warning("run %s could not be read for its health: %s", run, e)
    diagnosed = {}
    for run, rec in records.items():
        try:
            findings = diagnosis.diagnose(
                rec, validation=records.get(diagnosis.validation_sibling(run, records)))
        except Exception as e:  # noqa: BLE001
            logger.warning("run %s could not be diagnosed: %s", run, e)
            diagnosed[run] = (False, [], None)
            continue
        diagnosed[run] = (diagnosis.run_status(rec, findings) != diagnosis.STATUS_NO_DATA,
                          [f.to_json() for f in findings], rec.manifest)
    return health_of(diagnosed)


def health_of(diagnosed):
    """({training run: {"records": bool, "kinds": {kind: finding dict}}},
    {training run: manifest}) from {health run: (has records, [finding
    dicts], manifest or None)}: per training run, whether one of its runs
    has records, its first error or warning of each kind, its first
    manifest."""
    from tb_plugin import diagnosis

    health, manifests = {}, {}
    for run in sorted(diagnosed):
        has_records, findings, manifest = diagnosed[run]
        owner = training_run(run)
        entry = health.setdefault(owner, {"records": False, "kinds": {}})
        entry["records"] |= has_records
        for f in findings:
            if f["severity"] != diagnosis.SEVERITY_INFO:
                entry["kinds"].setdefault(f["kind"], f)
        if isinstance(manifest, dict):
            manifests.setdefault(owner, manifest)
    return health, manifests


# ---------------------------------------------------------------------------
# Series and final values


def align(series):
    """(steps, matrix) of a group's runs `series` [(steps, values)]: steps
    is the union of their steps, matrix[i, j] run i's last value at or
    before steps[j] within its own range, else NaN."""
    steps = np.unique(np.concatenate([s for s, _ in series]))
    rows = []
    for s, v in series:
        at = np.searchsorted(s, steps, side="right") - 1
        inside = (steps >= s[0]) & (steps <= s[-1])
        rows.append(np.where(inside, v[np.clip(at, 0, None)], np.nan))
    return steps, np.array(rows)


def parse_final(text):
    """(method, k) of a final-value option as the CLI and the plugin spell it:
    ``last``, ``best`` or ``mean-last-K`` (K >= 1); raises ValueError."""
    m = re.fullmatch(r"last|best|mean-last-([1-9][0-9]{0,5})", text)
    if m is None:
        raise ValueError("final must be last, best or mean-last-K (K >= 1)")
    return ("mean_last", int(m.group(1))) if m.group(1) else (text, 1)


def final_value(values, method="last", k=1, higher_is_better=False):
    """The final value of one run's `values` (sorted by step)."""
    if method == "last":
        return float(values[-1])
    if method == "mean_last":
        return float(np.mean(values[-k:]))
    if method == "best":
        finite = values[np.isfinite(values)]
        if not len(finite):
            return float("nan")
        return float(finite.max() if higher_is_better else finite.min())
    raise ValueError("final must be one of %s, got %r" % (", ".join(FINAL_METHODS), method))


# ---------------------------------------------------------------------------
# Health


def _health_summary(members, health):
    """The "health" part of the result from {group: [training runs]}."""
    groups = {}
    for g, owners in members.items():
        kinds = {}
        for o in owners:
            for kind, f in health.get(o, {}).get("kinds", {}).items():
                entry = kinds.setdefault(kind, {"runs": 0, "severity": f["severity"],
                                                "message": f["message"]})
                entry["runs"] += 1
        groups[g] = {"runs": len(owners), "kinds": kinds,
                     "with_records": sum(health.get(o, {}).get("records", False)
                                         for o in owners)}
    compared = any(v["with_records"] for v in groups.values())
    warnings = []
    for kind in sorted({k for v in groups.values() for k in v["kinds"]}):
        share = {g: v["kinds"].get(kind, {}).get("runs", 0) / max(v["runs"], 1)
                 for g, v in groups.items()}
        for g, v in groups.items():
            if kind in v["kinds"] and share[g] > min(share.values()):
                others = ", ".join("%s: %d of %d" % (o, groups[o]["kinds"].get(kind, {})
                                                     .get("runs", 0), groups[o]["runs"])
                                   for o in groups if o != g)
                warnings.append(
                    "group %s: %d of %d runs have %s (%s), against %s: the difference may "
                    "be a bug, not the configuration"
                    % (g, v["kinds"][kind]["runs"], v["runs"], kind,
                       v["kinds"][kind]["severity"], others))
    return {"compared": compared, "differs": bool(warnings), "warnings": warnings,
            "groups": groups}


def _health_differs(groups, a, b):
    """Whether some finding kind is in a different share of a's and b's runs."""
    ga, gb = groups[a], groups[b]
    return any(ga["kinds"].get(k, {}).get("runs", 0) * gb["runs"]
               != gb["kinds"].get(k, {}).get("runs", 0) * ga["runs"]
               for k in set(ga["kinds"]) | set(gb["kinds"]))


# ---------------------------------------------------------------------------
# The comparison


def compare(provider, ctx, experiment_id, tag, group_regex=None, run_filter=None,
            final="last", k=1, band="ci", higher_is_better=None, include_runs=False,
            seed=0, diagnose=diagnose_runs):
    """The comparison of the groups of runs of a data provider (see the
    module docstring for the arguments' meaning and the schema).

    `ctx`: a RequestContext (None: a fresh one); `k`: the records averaged by
    ``final="mean_last"``; `include_runs`: add each run's series; `seed`:
    of the bootstrap; `diagnose`: :func:`diagnose_runs` or a function like
    it (the plugin's answers from its cached diagnoses). Raises CompareError (bad regex, a
    seed counted twice), ValueError (bad `final`/`band`/`k`), ImportError
    without scipy.
    """
    compare_stats.scipy_stats()
    if final not in FINAL_METHODS:
        raise ValueError("final must be one of %s, got %r" % (", ".join(FINAL_METHODS), final))
    if band not in BAND_KINDS:
        raise ValueError("band must be one of %s, got %r" % (", ".join(BAND_KINDS), band))
    if final == "mean_last" and k < 1:
        raise ValueError("k must be at least 1, got %r" % k)
    if run_filter is not None:
        try:
            re.compile(run_filter)
        except re.error as e:
            raise CompareError("bad --run regular expression %r: %s" % (run_filter, e))
    if ctx is None:
        from tensorboard import context as tb_context

        ctx = tb_context.RequestContext()
    direction = "tag_name" if higher_is_better is None else "argument"
    if higher_is_better is None:
        higher_is_better = not lower_is_better_tag(tag)

    data = _read_tag(provider, ctx, experiment_id, tag, run_filter)
    notes, labels = [], {}
    if group_regex is not None:
        by, assignment = "regex", compare_groups.group_by_regex(data, group_regex)
        compare_groups.check_seeds(assignment, by)
    health, manifests = diagnose(provider, ctx, experiment_id,
                                 {training_run(r) for r in data})
    if group_regex is None:
        assignment, labels, by, notes = compare_groups.group_by_config(
            data, _hparams(provider, ctx, experiment_id), manifests)
        compare_groups.check_seeds(assignment, by)
    if not data:
        tags, _ = scalar_tags(provider, ctx, experiment_id)
        notes.append("no run%s has scalar tag %r; scalar tags: %s" % (
            " matching --run %r" % run_filter if run_filter else "", tag,
            ", ".join(tags[:15]) + (", ..." if len(tags) > 15 else "") if tags else "none"))
    elif not assignment and group_regex is not None:
        notes.append("no run with tag %r matches --group %r" % (tag, group_regex))

    members = {}
    for run in sorted(assignment):
        members.setdefault(assignment[run][0], []).append(run)
    groups, finals = [], {}
    for name in sorted(members):
        runs = members[name]
        steps, matrix = align([data[r] for r in runs])
        n, mean, low, high = compare_stats.band(matrix, band)
        finals[name] = [final_value(data[r][1], final, k, higher_is_better) for r in runs]
        entries = []
        for r, value in zip(runs, finals[name]):
            entry = {"run": r, "seed": assignment[r][1], "final": _num(value),
                     "excluded": None if math.isfinite(value) else "final value is %s" % value}
            if include_runs:
                entry.update(steps=data[r][0].tolist(), values=_nums(data[r][1]))
            entries.append(entry)
        groups.append({
            "name": name, "label": labels.get(name, name), "runs": entries,
            "series": {"steps": steps.tolist(), "n": n.tolist(), "mean": _nums(mean),
                       "low": _nums(low), "high": _nums(high)},
            "final": _jsonable(compare_stats.summarize(finals[name])),
        })
    health_part = _health_summary({g: sorted({training_run(r) for r in runs})
                                   for g, runs in members.items()}, health)
    pairs = []
    for a, b in itertools.combinations(sorted(members), 2):
        result = compare_stats.compare_pair(
            a, finals[a], b, finals[b], higher_is_better,
            [assignment[r][1] for r in members[a]], [assignment[r][1] for r in members[b]],
            seed)
        pairs.append(dict({"a": a, "b": b}, **_jsonable(result),
                          health_differs=_health_differs(health_part["groups"], a, b)))
    if len(groups) == 1:
        notes.append("only one group (%s): nothing to compare" % groups[0]["name"])
    if groups and not health_part["compared"]:
        notes.append("no health records (tb_plugin.HealthCallback) for these runs: "
                     "health not compared")
    return {
        "schema": SCHEMA, "logdir": None, "tag": tag,
        "grouping": {"by": by, "regex": group_regex, "run_filter": run_filter},
        "final": {"method": final, "k": k if final == "mean_last" else None,
                  "higher_is_better": bool(higher_is_better), "direction": direction},
        "band": {"kind": band, "level": compare_stats.LEVEL},
        "health": health_part, "groups": groups, "pairs": pairs, "notes": notes,
    }


def compare_logdir(logdir, tag, **kwargs):
    """:func:`compare` over the runs of `logdir` (keyword arguments as
    there); raises FileNotFoundError if it is not a directory."""
    from tb_plugin import reader

    provider, eid = reader.open_logdir(logdir)
    result = compare(provider, None, eid, tag, **kwargs)
    result["logdir"] = str(logdir)
    return result


# ---------------------------------------------------------------------------
# Text


def _f(x):
    return "-" if x is None else "%.4g" % x


def format_report(result):
    """The comparison as text for a terminal: health first, then a table of
    final values per group, then each pair with its verdict."""
    fin = result["final"]
    what = {"last": "last value", "best": "best value",
            "mean_last": "mean of the last %s records" % fin["k"]}[fin["method"]]
    grouping = result["grouping"]
    how = ("regex %r" % grouping["regex"] if grouping["by"] == "regex"
           else "identical %s" % grouping["by"])
    count = len(result["groups"])
    lines = ["Comparing %s (%s; %s is better) across %d group%s, grouped by %s."
             % (result["tag"], what, "higher" if fin["higher_is_better"] else "lower",
                count, "" if count == 1 else "s", how)]
    if result["health"]["warnings"]:
        lines += ["", "Health first:"] + ["  ! " + w for w in result["health"]["warnings"]]
    rows = [("GROUP", "RUNS", "MEAN", "SD", "95% CI", "MEDIAN", "IQM")]
    for g in result["groups"]:
        s = g["final"]
        rows.append((g["name"], str(s["n"]), _f(s["mean"]), _f(s["sd"]),
                     "%s to %s" % (_f(s["ci_low"]), _f(s["ci_high"])), _f(s["median"]),
                     _f(s["iqm"])))
    if result["groups"]:
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines.append("")
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    for g in result["groups"]:
        for r in g["runs"]:
            if r["excluded"]:
                lines.append("  (%s left out: %s)" % (r["run"], r["excluded"]))
    for p in result["pairs"]:
        lines += ["", "%s vs %s: difference %s (95%% CI %s to %s), Welch p = %s, Hedges' g = %s"
                  % (p["a"], p["b"], _f(p["difference"]), _f(p["ci_low"]), _f(p["ci_high"]),
                     _f(p["p_value"]), _f(p["hedges_g"])),
                  "  P(a run of %s beats a run of %s) = %s (95%% CI %s to %s)"
                  % (p["a"], p["b"], _f(p["p_a_beats_b"]), _f(p["p_a_beats_b_ci_low"]),
                     _f(p["p_a_beats_b_ci_high"]))]
        if p["paired"]:
            q = p["paired"]
            lines.append("  paired over %d shared seeds: difference %s (95%% CI %s to %s), p = %s"
                         % (q["n"], _f(q["difference"]), _f(q["ci_low"]), _f(q["ci_high"]),
                            _f(q["p_value"])))
        if p["health_differs"]:
            lines.append("  ! the groups differ in health findings (see above)")
        lines.append("  Verdict: " + p["verdict"]["text"])
    if result["notes"]:
        lines += [""] + ["Note: " + n for n in result["notes"]]
    return "\n".join(lines) + "\n"
