"""The statistics of ``tb-health compare`` (see :mod:`tb_plugin.compare`).

Distributions, tests and the bootstrap come from scipy.stats (imported
lazily: the viewing install may lack it, see :func:`scipy_stats`); this
module only arranges them:

* :func:`band`: per step, the mean of the runs of a group with a band: the
  95% Student-t confidence interval of the mean (default), the standard
  deviation, the standard error or min-max.
* :func:`summarize`: n, mean, SD, 95% t-CI, median, interquartile mean of a
  group's final values.
* :func:`welch`: Welch's t-test with its 95% CI of the difference of means
  (vectorized over trailing axes, so that the simulation tests are fast).
* :func:`compare_pair`: the comparison of two groups' final values and the
  verdict in words.
* :func:`min_detectable_difference`, :func:`seeds_needed`: the power of a
  two-sided two-sample t test (alpha 0.05, power 0.8), from the noncentral t.

Every function takes and returns plain numbers and numpy arrays; NaN stands
for "undefined" (fewer than two values, no spread).
"""

import inspect
import math
import warnings

import numpy as np

LEVEL = 0.95
ALPHA = 0.05
POWER = 0.8
BAND_KINDS = ("ci", "sd", "se", "minmax")
BOOTSTRAP_RESAMPLES = 2000
# seeds_needed() gives up (returns None) beyond this many seeds per group.
MAX_SEEDS = 100_000
# The interquartile mean is reported from this many values on.
IQM_MIN_N = 8

OUTCOME_A = "a_better"
OUTCOME_B = "b_better"
OUTCOME_NONE = "no_detectable_difference"
OUTCOME_TOO_FEW = "too_few_runs"


def scipy_stats():
    """scipy.stats, or ImportError telling the user how to install it."""
    try:
        from scipy import stats
    except ImportError as e:
        raise ImportError(
            "comparing runs needs scipy, which is not installed: "
            'pip install "tb-plugin-health[compare]"') from e
    return stats


def _t_quantile(df):
    """The two-sided `LEVEL` quantile of Student's t with `df` degrees of
    freedom (NaN where df < 1)."""
    df = np.asarray(df, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.where(df >= 1, scipy_stats().t.ppf(0.5 + LEVEL / 2, np.maximum(df, 1)),
                        np.nan)


def _moments(values, axis=0):
    """(n, mean, sd with ddof 1) of the finite values along `axis`; mean NaN
    where n = 0, sd NaN where n < 2."""
    x = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(x)
    n = finite.sum(axis=axis)
    x0 = np.where(finite, x, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = x0.sum(axis=axis) / n
        dev = np.where(finite, x - np.expand_dims(mean, axis), 0.0)
        sd = np.sqrt((dev ** 2).sum(axis=axis) / (n - 1))
    sd = np.where(n >= 2, sd, np.nan)
    return n, mean, sd


def band(matrix, kind="ci"):
    """Per column of `matrix` (runs x steps, NaN where a run has no value):
    ``(n, mean, low, high)`` arrays. `kind`: "ci" (95% Student-t confidence
    interval of the mean, t(0.975, n-1) * SD / sqrt(n)), "sd" (mean +- SD),
    "se" (mean +- SD / sqrt(n)) or "minmax". low and high are NaN where n < 2."""
    if kind not in BAND_KINDS:
        raise ValueError("band must be one of %s, got %r" % (", ".join(BAND_KINDS), kind))
    x = np.asarray(matrix, dtype=np.float64)
    n, mean, sd = _moments(x, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        if kind == "minmax":
            finite = np.isfinite(x)
            low = np.where(finite, x, np.inf).min(axis=0)
            high = np.where(finite, x, -np.inf).max(axis=0)
        else:
            half = {"sd": sd, "se": sd / np.sqrt(n),
                    "ci": _t_quantile(n - 1) * sd / np.sqrt(n)}[kind]
            low, high = mean - half, mean + half
    few = n < 2
    return n, mean, np.where(few, np.nan, low), np.where(few, np.nan, high)


def summarize(values):
    """A dict of n, mean, sd, ci_low, ci_high (95% t), median, iqm (the
    interquartile mean, scipy.stats.trim_mean(x, 0.25), from IQM_MIN_N values
    on, else None), min, max of the finite `values`."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    n, mean, low, high = band(x[:, None], "ci")
    _, _, sd = _moments(x)
    empty = len(x) == 0
    return {
        "n": int(n[0]),
        "mean": float(mean[0]),
        "sd": float(sd),
        "ci_low": float(low[0]),
        "ci_high": float(high[0]),
        "median": float("nan") if empty else float(np.median(x)),
        "iqm": float(scipy_stats().trim_mean(x, 0.25)) if len(x) >= IQM_MIN_N else None,
        "min": float("nan") if empty else float(x.min()),
        "max": float("nan") if empty else float(x.max()),
    }


def _quietly(test, *args, **kwargs):
    """scipy test `test` without its warnings about too few values or no
    spread (the result is NaN then)."""
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        return test(*args, **kwargs)


def welch(a, b):
    """Welch's unequal-variance t-test of mean(a) - mean(b) along axis 0 of
    finite values.

    Returns a dict of arrays (shape: the trailing axes): difference, df
    (Welch-Satterthwaite), ci_low, ci_high (95%), p_value (two-sided, from
    scipy.stats.ttest_ind(equal_var=False)).
    """
    stats = scipy_stats()
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    na, ma, sa = _moments(a)
    nb, mb, sb = _moments(b)
    with np.errstate(invalid="ignore", divide="ignore"):
        va, vb = sa ** 2 / na, sb ** 2 / nb
        se = np.sqrt(va + vb)
        df = (va + vb) ** 2 / (va ** 2 / (na - 1) + vb ** 2 / (nb - 1))
        half = _t_quantile(df) * se
    p = _quietly(stats.ttest_ind, a, b, axis=0, equal_var=False).pvalue
    diff = ma - mb
    return {"difference": diff, "df": df, "ci_low": diff - half, "ci_high": diff + half,
            "p_value": p}


def hedges_g(a, b):
    """Hedges' g of mean(a) - mean(b): Cohen's d with the pooled SD times the
    exact small-sample correction J = G(m/2) / (sqrt(m/2) G((m-1)/2)), m =
    na + nb - 2 (NaN when undefined)."""
    na, ma, sa = _moments(a)
    nb, mb, sb = _moments(b)
    m = na + nb - 2
    if na < 2 or nb < 2:
        return float("nan")
    pooled = math.sqrt(((na - 1) * sa ** 2 + (nb - 1) * sb ** 2) / m)
    if pooled == 0:
        return float("nan")
    j = math.exp(math.lgamma(m / 2) - math.lgamma((m - 1) / 2)) / math.sqrt(m / 2)
    return float(j * (ma - mb) / pooled)


def _rng_argument(function, seed):
    # scipy >= 1.15 names the generator `rng`; older versions `random_state`.
    name = "rng" if "rng" in inspect.signature(function).parameters else "random_state"
    return {name: np.random.default_rng(seed)}


def probability_of_superiority(a, b, higher_is_better=True, seed=0):
    """P(a run of `a` beats a run of `b`), ties counting one half: the
    Mann-Whitney U of `a` over (na * nb), with a seeded 95% percentile
    bootstrap CI (scipy.stats.bootstrap, BOOTSTRAP_RESAMPLES resamples of
    each group). Returns (p, ci_low, ci_high); lower values win when not
    `higher_is_better`."""
    stats = scipy_stats()
    sign = 1.0 if higher_is_better else -1.0
    a = sign * np.asarray(a, dtype=np.float64)
    b = sign * np.asarray(b, dtype=np.float64)

    def statistic(x, y, axis=-1):
        u = stats.mannwhitneyu(x, y, axis=axis, method="asymptotic").statistic
        return u / (x.shape[axis] * y.shape[axis])

    p = float(statistic(a, b))
    res = stats.bootstrap((a, b), statistic, n_resamples=BOOTSTRAP_RESAMPLES,
                          vectorized=True, method="percentile",
                          confidence_level=LEVEL, **_rng_argument(stats.bootstrap, seed))
    ci = res.confidence_interval
    return p, float(ci.low), float(ci.high)


def paired(a, b):
    """The paired analysis of matched values (same seeds): a dict of n,
    difference (mean of a - b), ci_low, ci_high (95% t) and p_value
    (scipy.stats.ttest_rel); None with fewer than two pairs."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if len(a) < 2:
        return None
    d = summarize(a - b)
    p = float(_quietly(scipy_stats().ttest_rel, a, b).pvalue)
    return {"n": len(a), "difference": d["mean"], "ci_low": d["ci_low"],
            "ci_high": d["ci_high"], "p_value": p}


def power(effect, na, nb):
    """Power of the two-sided two-sample t test at ALPHA for a true
    difference of `effect` SDs with na and nb values: noncentral t with df =
    na + nb - 2 and noncentrality effect * sqrt(na nb / (na + nb))."""
    stats = scipy_stats()
    df = na + nb - 2
    nc = abs(effect) * math.sqrt(na * nb / (na + nb))
    t = stats.t.ppf(1 - ALPHA / 2, df)
    # The lower tail is negligible and scipy returns NaN for it at large nc.
    lower = float(stats.nct.cdf(-t, df, nc))
    return float(stats.nct.sf(t, df, nc)) + (0.0 if math.isnan(lower) else lower)


def min_detectable_difference(na, nb):
    """The smallest true difference, in SDs, that a two-sided test at ALPHA
    detects with power POWER with na and nb values (NaN if na + nb < 3)."""
    if na < 1 or nb < 1 or na + nb < 3:
        return float("nan")
    from scipy import optimize

    return float(optimize.brentq(lambda d: power(d, na, nb) - POWER, 1e-6, 1e3, xtol=1e-8))


def seeds_needed(effect):
    """The smallest n per group at which a true difference of `effect` SDs
    is detected with power POWER (equal groups); None above MAX_SEEDS or for
    no difference."""
    effect = abs(effect)
    if not effect > 0 or power(effect, MAX_SEEDS, MAX_SEEDS) < POWER:
        return None
    lo, hi = 1, 2  # power(lo) < POWER <= power(hi)
    while power(effect, hi, hi) < POWER:
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if power(effect, mid, mid) < POWER else (lo, mid)
    return hi


def _fmt(x):
    return "%.3g" % x


def _n_text(na, nb):
    return "n = %d per group" % na if na == nb else "n = %d and %d" % (na, nb)


def verdict(name_a, name_b, n_a, n_b, test, g, higher_is_better):
    """(outcome, text) of a comparison: OUTCOME_A / OUTCOME_B when Welch's
    p < ALPHA (the better group by `higher_is_better`), else OUTCOME_NONE
    with the minimum detectable difference and the seeds that the observed
    |g| would need; OUTCOME_TOO_FEW with fewer than two runs in a group."""
    if n_a < 2 or n_b < 2:
        return OUTCOME_TOO_FEW, ("not enough runs: a comparison needs at least 2 runs per "
                                 "group (%s has %d, %s has %d)" % (name_a, n_a, name_b, n_b))
    diff, p = test["difference"], test["p_value"]
    # Welch's df is undefined when every run of each group has the same value.
    no_spread = math.isnan(test["df"]) and diff != 0
    if no_spread or p < ALPHA:
        a_wins = (diff > 0) == higher_is_better
        why = ("every run of each group has the same value" if no_spread else
               "95%% CI %s to %s, p = %s" % (_fmt(test["ci_low"]), _fmt(test["ci_high"]),
                                             _fmt(p)))
        return (OUTCOME_A if a_wins else OUTCOME_B, "%s is better (difference %s, %s)"
                % (name_a if a_wins else name_b, _fmt(diff), why))
    mdd = min_detectable_difference(n_a, n_b)
    needed = None if math.isnan(g) else seeds_needed(g)
    if needed is not None:
        need = ("about %d seeds per group would be needed to detect the difference "
                "observed (%s SD)" % (needed, _fmt(abs(g))))
    elif not math.isnan(g) and g != 0:
        need = ("more than %d seeds per group would be needed to detect the difference "
                "observed (%s SD)" % (MAX_SEEDS, _fmt(abs(g))))
    else:
        need = "the groups' means do not differ"
    return OUTCOME_NONE, ("no detectable difference: with %s this comparison can only "
                          "detect differences larger than %.1f SD; %s"
                          % (_n_text(n_a, n_b), mdd, need))


def compare_pair(name_a, a, name_b, b, higher_is_better, seeds_a=None, seeds_b=None, seed=0):
    """The comparison of final values `a` (group `name_a`) and `b`: a dict
    of difference, ci_low, ci_high, df, p_value (Welch), hedges_g,
    p_a_beats_b with its bootstrap CI (p_a_beats_b_ci_low/high),
    min_detectable_sd, seeds_needed, paired (see :func:`paired`, over the
    seeds that `seeds_a` and `seeds_b` share; None without shared seeds) and
    verdict {"outcome", "text"}. Non-finite values are left out."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    a_f, b_f = a[np.isfinite(a)], b[np.isfinite(b)]
    enough = len(a_f) >= 2 and len(b_f) >= 2
    nan = float("nan")
    test = ({k: float(v) for k, v in welch(a_f, b_f).items()} if enough else
            {"difference": float(a_f.mean() - b_f.mean()) if len(a_f) and len(b_f) else nan,
             "df": nan, "ci_low": nan, "ci_high": nan, "p_value": nan})
    g = hedges_g(a_f, b_f)
    out = dict(test, hedges_g=g)
    if enough:
        p, lo, hi = probability_of_superiority(a_f, b_f, higher_is_better, seed)
    else:
        p = lo = hi = nan
    out.update(p_a_beats_b=p, p_a_beats_b_ci_low=lo, p_a_beats_b_ci_high=hi)
    out["min_detectable_sd"] = min_detectable_difference(len(a_f), len(b_f))
    out["seeds_needed"] = None if math.isnan(g) else seeds_needed(g)
    out["paired"] = None
    if seeds_a is not None and seeds_b is not None:
        by_seed_b = {s: v for s, v in zip(seeds_b, b) if s is not None and math.isfinite(v)}
        shared = [(v, by_seed_b[s]) for s, v in zip(seeds_a, a)
                  if s in by_seed_b and math.isfinite(v)]
        if shared:
            out["paired"] = paired([x for x, _ in shared], [y for _, y in shared])
    outcome, text = verdict(name_a, name_b, len(a_f), len(b_f), test, g, higher_is_better)
    out["verdict"] = {"outcome": outcome, "text": text}
    return out
