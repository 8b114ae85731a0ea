"""tb-health compare: the statistics (simulations and reference values), the
grouping, the alignment of steps, health first, and the CLI end to end on
event files written without TensorFlow."""

import json
import math
import shutil
import subprocess
import sys
import textwrap
import urllib.parse
from pathlib import Path

import numpy as np
import pytest

from tb_plugin import cli, compare, compare_groups, compare_stats

ROOT = Path(__file__).resolve().parents[1]
DEMO_LOGS = ROOT / "demo_logs"

# Simulation sizes. With N draws, a rate p has binomial SE sqrt(p (1 - p) / N):
# coverage 0.95 with N = 4000: SE 0.0034, so the 0.93-0.97 window is +-5.8 SE;
# a type-I error of 0.05 with N = 10000: SE 0.0022, so 0.06 is 4.6 SE above it.
# A z interval (1.96 instead of t) covers 0.88 at n = 3 and fails.
COVERAGE_DRAWS = 4000
TYPE_ONE_DRAWS = 10000
SIM_NS = (3, 4, 5, 8, 10, 15, 20, 30)


def _strict_json(text):
    def no_constants(name):
        raise AssertionError("bare %s in JSON" % name)

    return json.loads(text, parse_constant=no_constants)


def _write(logdir, run, tag, steps, values):
    from tensorboard.summary import Writer

    writer = Writer(str(Path(logdir) / run))
    for step, value in zip(steps, values):
        writer.add_scalar(tag, float(value), int(step))
    writer.close()


# ---------------------------------------------------------------------------
# Simulations


@pytest.mark.parametrize("n", SIM_NS)
def test_ci_band_covers_the_mean_95_percent(n):
    rng = np.random.default_rng(1000 + n)
    mu = 1.5
    runs = rng.normal(mu, 2.0, size=(n, COVERAGE_DRAWS))  # each column: one experiment
    count, _, low, high = compare_stats.band(runs, "ci")
    assert (count == n).all()
    coverage = np.mean((low <= mu) & (mu <= high))
    assert 0.93 <= coverage <= 0.97, coverage


@pytest.mark.parametrize("na,nb,sd_b", [(n, n, 1.0) for n in SIM_NS] + [(3, 8, 3.0),
                                                                         (30, 5, 0.3)])
def test_welch_type_one_error_and_ci_coverage(na, nb, sd_b):
    rng = np.random.default_rng(2000 + 100 * na + nb)
    a = rng.normal(0.7, 1.0, size=(na, TYPE_ONE_DRAWS))
    b = rng.normal(0.7, sd_b, size=(nb, TYPE_ONE_DRAWS))  # same mean: H0 holds
    test = compare_stats.welch(a, b)
    type_one = np.mean(test["p_value"] < 0.05)
    assert 0.03 <= type_one <= 0.06, type_one  # Welch is a little conservative at n = 3
    covered = np.mean((test["ci_low"] <= 0) & (0 <= test["ci_high"]))
    assert 0.93 <= covered <= 0.97, covered


# ---------------------------------------------------------------------------
# Reference values


def test_t_band_matches_textbook_quantiles():
    # mean 2, SD 1 at n = 3; t(0.975, 2) = 4.303 (textbook table)
    n, mean, low, high = compare_stats.band(np.array([[1.0], [2.0], [3.0]]), "ci")
    assert n[0] == 3 and mean[0] == 2.0
    assert high[0] - 2.0 == pytest.approx(4.303 / math.sqrt(3), abs=1e-3)
    assert low[0] == pytest.approx(2.0 - 4.303 / math.sqrt(3), abs=1e-3)
    # n = 5, 10: t = 2.776, 2.262
    for values, t in ((np.arange(5.0), 2.776), (np.arange(10.0), 2.262)):
        _, mean, _, high = compare_stats.band(values[:, None], "ci")
        sd = np.sqrt(np.sum((values - values.mean()) ** 2) / (len(values) - 1))
        assert high[0] - mean[0] == pytest.approx(t * sd / math.sqrt(len(values)), abs=1e-3)


def test_band_kinds_by_hand():
    m = np.array([[1.0, 4.0, 7.0],
                  [3.0, np.nan, 9.0],
                  [8.0, 6.0, np.nan]])
    n, mean, low, high = compare_stats.band(m, "sd")
    assert n.tolist() == [3, 2, 2]
    assert mean.tolist() == [4.0, 5.0, 8.0]
    sd0 = math.sqrt(((1 - 4) ** 2 + (3 - 4) ** 2 + (8 - 4) ** 2) / 2)
    assert high[0] == pytest.approx(4 + sd0) and low[0] == pytest.approx(4 - sd0)
    _, _, low, high = compare_stats.band(m, "se")
    assert high[1] == pytest.approx(5 + math.sqrt(2) / math.sqrt(2))
    _, _, low, high = compare_stats.band(m, "minmax")
    assert low.tolist() == [1.0, 4.0, 7.0] and high.tolist() == [8.0, 6.0, 9.0]
    n, mean, low, high = compare_stats.band(np.array([[5.0], [np.nan]]), "ci")
    assert n[0] == 1 and mean[0] == 5.0 and math.isnan(low[0]) and math.isnan(high[0])
    with pytest.raises(ValueError):
        compare_stats.band(m, "iqr")


def test_summary_by_hand():
    values = [1, 2, 3, 4, 5, 6, 7, 8, 100]
    s = compare_stats.summarize(values)
    x = np.array(values, dtype=float)
    assert s["n"] == 9 and s["mean"] == pytest.approx(x.mean())
    assert s["sd"] == pytest.approx(x.std(ddof=1))
    assert s["median"] == 5
    assert s["iqm"] == pytest.approx(np.mean([3, 4, 5, 6, 7]))  # 2 of 9 cut at each end
    half = 2.306 * x.std(ddof=1) / 3  # t(0.975, 8) = 2.306
    assert s["ci_high"] == pytest.approx(x.mean() + half, abs=1e-2)
    assert compare_stats.summarize(values[:7])["iqm"] is None
    assert compare_stats.summarize([1.0, np.nan, 3.0])["n"] == 2


def test_welch_hedges_superiority_paired_by_hand():
    a, b = [1.0, 2.0, 3.0], [4.0, 5.0, 6.0]
    # Each group: variance 1, so SE sqrt(2/3) and Welch df 4; t(0.975, 4) = 2.776.
    r = compare_stats.compare_pair("A", a, "B", b, higher_is_better=True)
    se = math.sqrt(2 / 3)
    assert r["difference"] == -3.0 and r["df"] == pytest.approx(4.0)
    assert r["ci_low"] == pytest.approx(-3 - 2.776 * se, abs=1e-3)
    assert r["ci_high"] == pytest.approx(-3 + 2.776 * se, abs=1e-3)
    assert r["p_value"] == pytest.approx(0.02131, abs=1e-4)  # t = -3.674, df 4
    # J(4) = G(2) / (sqrt(2) G(1.5)) = 0.79788; d = -3 / 1
    assert r["hedges_g"] == pytest.approx(-3 * 0.797885, abs=1e-5)
    assert r["p_a_beats_b"] == 0.0
    assert r["paired"] is None
    assert r["verdict"]["outcome"] == compare_stats.OUTCOME_B
    assert r["verdict"]["text"].startswith("B is better")

    # P(a beats b): pairs where a > b, ties one half.
    p, lo, hi = compare_stats.probability_of_superiority([1, 3, 5], [2, 4], True, seed=3)
    assert p == pytest.approx(3 / 6) and 0 <= lo <= p <= hi <= 1
    assert compare_stats.probability_of_superiority([1, 3, 5], [2, 4], True, seed=3) == \
        (p, lo, hi)
    p, _, _ = compare_stats.probability_of_superiority([1, 2, 2], [2, 3], True)
    assert p == pytest.approx(1 / 6)
    p, _, _ = compare_stats.probability_of_superiority([1, 2, 2], [2, 3], False)
    assert p == pytest.approx(5 / 6)

    # Paired over shared seeds, whatever the order: differences 1, 1, 3.
    r = compare_stats.compare_pair("A", [1.0, 2.0, 4.0], "B", [1.0, 0.0, 1.0], True,
                                   seeds_a=["s1", "s2", "s3"], seeds_b=["s3", "s1", "s2"])
    q = r["paired"]
    assert q["n"] == 3 and q["difference"] == pytest.approx(5 / 3)
    sd = math.sqrt(((1 - 5 / 3) ** 2 * 2 + (3 - 5 / 3) ** 2) / 2)
    assert q["ci_high"] == pytest.approx(5 / 3 + 4.303 * sd / math.sqrt(3), abs=1e-3)
    assert q["p_value"] == pytest.approx(0.1296, abs=1e-3)  # t = 2.5, df 2


@pytest.mark.parametrize("n,expected", [(3, 3.07), (5, 2.02), (10, 1.32), (20, 0.91)])
def test_minimum_detectable_difference_matches_the_issue(n, expected):
    assert compare_stats.min_detectable_difference(n, n) == pytest.approx(expected, abs=0.02)


def test_seeds_needed():
    assert compare_stats.seeds_needed(1.0) == 17
    assert compare_stats.power(1.0, 16, 16) < 0.8 <= compare_stats.power(1.0, 17, 17)
    mdd = compare_stats.min_detectable_difference(5, 5)
    assert compare_stats.seeds_needed(-(mdd + 1e-6)) == 5
    assert compare_stats.seeds_needed(mdd - 1e-3) == 6
    assert compare_stats.seeds_needed(0.0) is None


def test_no_detectable_difference_verdict_text():
    a, b = [0.50, 0.61, 0.43], [0.52, 0.58, 0.47]
    r = compare_stats.compare_pair("A", a, "B", b, higher_is_better=True)
    text = r["verdict"]["text"]
    assert r["verdict"]["outcome"] == compare_stats.OUTCOME_NONE
    assert text.startswith("no detectable difference: with n = 3 per group this comparison "
                           "can only detect differences larger than 3.1 SD; about ")
    assert "about %d seeds per group" % compare_stats.seeds_needed(r["hedges_g"]) in text
    assert r["seeds_needed"] == compare_stats.seeds_needed(r["hedges_g"]) > 3
    r = compare_stats.compare_pair("A", [1.0], "B", [2.0, 3.0], True)
    assert r["verdict"]["outcome"] == compare_stats.OUTCOME_TOO_FEW


# ---------------------------------------------------------------------------
# Grouping and alignment


def test_group_by_regex():
    runs = ["cfgA/seed1/validation", "cfgA/seed2/validation", "cfgB/seed1/validation",
            "other/validation"]
    got = compare_groups.group_by_regex(runs, r"(.*)/seed\d+")
    assert got == {"cfgA/seed1/validation": ("cfgA", "/seed1"),
                   "cfgA/seed2/validation": ("cfgA", "/seed2"),
                   "cfgB/seed1/validation": ("cfgB", "/seed1")}
    got = compare_groups.group_by_regex(runs, r"^(?P<group>cfg\w)/seed(?P<seed>\d+)")
    assert got["cfgB/seed1/validation"] == ("cfgB", "1")
    with pytest.raises(compare.CompareError, match="capture group"):
        compare_groups.group_by_regex(runs, r"cfg.")
    with pytest.raises(compare.CompareError, match="bad --group"):
        compare_groups.group_by_regex(runs, r"(cfg")
    both = compare_groups.group_by_regex(runs + ["cfgA/seed1/train"], r"(.*)/seed\d+")
    with pytest.raises(compare.CompareError, match="same seed"):
        compare_groups.check_seeds(both, "regex")


def test_group_by_manifest_ignores_names_and_seeds():
    def manifest(model, lr, seed):
        return {"model": model, "versions": {"tensorflow": "x"},
                "layers": [{"name": model + "_dense", "class": "Dense",
                            "kernel_initializer": {"config": {"seed": seed}}}],
                "optimizer": {"class": "Adam", "learning_rate": lr}}

    manifests = {"a/seed1": manifest("m1", 0.1, 1), "a/seed2": manifest("m7", 0.1, 2),
                 "b/seed1": manifest("m3", 0.01, 1)}
    runs = ["a/seed1/validation", "a/seed2/validation", "b/seed1/validation", "c/validation"]
    assignment, labels, by, notes = compare_groups.group_by_config(runs, {}, manifests)
    assert by == "manifest"
    assert assignment == {"a/seed1/validation": ("optimizer.learning_rate=0.1", "seed1"),
                          "a/seed2/validation": ("optimizer.learning_rate=0.1", "seed2"),
                          "b/seed1/validation": ("optimizer.learning_rate=0.01", "seed1")}
    assert "c/validation" in notes[0]


def test_align_carries_values_forward_within_each_run():
    a = (np.array([0, 2, 4]), np.array([10.0, 12.0, 14.0]))
    b = (np.array([1, 2, 3, 4, 5]), np.array([21.0, 22.0, 23.0, 24.0, 25.0]))
    steps, m = compare.align([a, b])
    assert steps.tolist() == [0, 1, 2, 3, 4, 5]
    np.testing.assert_array_equal(m[0], [10, 10, 12, 12, 14, np.nan])
    np.testing.assert_array_equal(m[1], [np.nan, 21, 22, 23, 24, 25])
    n, mean, _, _ = compare_stats.band(m, "ci")
    assert n.tolist() == [1, 2, 2, 2, 2, 1]
    assert mean.tolist() == [10, 15.5, 17, 17.5, 19, 25]


def test_final_values():
    v = np.array([3.0, 1.0, 2.0, 4.0])
    assert compare.final_value(v, "last") == 4.0
    assert compare.final_value(v, "best", higher_is_better=False) == 1.0
    assert compare.final_value(v, "best", higher_is_better=True) == 4.0
    assert compare.final_value(v, "mean_last", k=2) == 3.0
    assert compare.lower_is_better_tag("epoch_loss") and compare.lower_is_better_tag("val_Error")
    assert not compare.lower_is_better_tag("epoch_accuracy")


# ---------------------------------------------------------------------------
# Through a log directory


def test_steps_differ_and_repeated_steps_keep_the_last_value(tmp_path):
    _write(tmp_path, "A/seed1", "acc", [0, 1, 2, 0, 1], [0.1, 0.2, 0.3, 0.5, 0.6])
    _write(tmp_path, "A/seed2", "acc", [0, 2, 4], [0.2, 0.4, 0.8])
    _write(tmp_path, "B/seed1", "acc", [0, 1, 2], [0.1, 0.1, 0.1])
    r = compare.compare_logdir(tmp_path, "acc", group_regex=r"(\w)/seed\d", band="minmax",
                               include_runs=True)
    g = {x["name"]: x for x in r["groups"]}
    assert g["A"]["runs"][0]["steps"] == [0, 1, 2]
    assert g["A"]["runs"][0]["values"] == pytest.approx([0.5, 0.6, 0.3])
    s = g["A"]["series"]
    assert s["steps"] == [0, 1, 2, 4] and s["n"] == [2, 2, 2, 1]
    assert s["mean"] == pytest.approx([0.35, 0.4, 0.35, 0.8])
    assert s["low"][:3] == pytest.approx([0.2, 0.2, 0.3]) and s["low"][3] is None
    assert [x["final"] for x in g["A"]["runs"]] == pytest.approx([0.3, 0.8])
    assert r["final"]["higher_is_better"] is True
    assert r["pairs"][0]["verdict"]["outcome"] == compare_stats.OUTCOME_TOO_FEW


def test_groups_by_hparams(tmp_path):
    import time

    from tensorboard.compat.proto import event_pb2
    from tensorboard.plugins.hparams import summary_v2 as hp
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    for lr, shift in ((0.1, 0.0), (0.01, 1.0)):
        for seed in range(3):
            run = "lr%s_s%d" % (lr, seed)
            writer = EventFileWriter(str(tmp_path / run))
            writer.add_event(event_pb2.Event(
                summary=hp.hparams_pb({"lr": lr, "seed": seed}), wall_time=time.time()))
            writer.close()
            _write(tmp_path, run + "/validation", "epoch_accuracy", [0, 1],
                   [0.5, 0.5 + shift + 0.1 * seed])
    r = compare.compare_logdir(tmp_path, "epoch_accuracy")
    assert r["grouping"]["by"] == "hparams"
    assert [g["name"] for g in r["groups"]] == ["lr=0.01", "lr=0.1"]
    assert [x["seed"] for x in r["groups"][0]["runs"]] == ["seed=0", "seed=1", "seed=2"]
    pair = r["pairs"][0]
    assert pair["paired"]["n"] == 3 and pair["paired"]["difference"] == pytest.approx(1.0)
    assert pair["verdict"]["outcome"] == compare_stats.OUTCOME_A


@pytest.fixture(scope="module")
def health_logdir(tmp_path_factory):
    """bug/seedN: the demo's model whose call takes no `training` (dropout
    inactive); fix/seedN: the fixed one; each with an epoch_accuracy."""
    root = tmp_path_factory.mktemp("health")
    for group, scenario, base in (("bug", "seed001_no_training_arg", 0.9),
                                  ("fix", "seed001_training_arg", 0.8)):
        for seed in range(3):
            shutil.copytree(DEMO_LOGS / scenario, root / group / ("seed%d" % seed))
            _write(root, "%s/seed%d/validation" % (group, seed), "epoch_accuracy",
                   [0, 1, 2], [0.5, 0.6, base + 0.01 * seed])
    return root


def test_health_differences_come_first(health_logdir):
    r = compare.compare_logdir(health_logdir, "epoch_accuracy",
                               group_regex=r"(.*)/seed\d+/validation$")
    assert r["health"]["compared"] and r["health"]["differs"]
    assert any(w.startswith("group bug: 3 of 3 runs have train_mode_inactive (error), "
                            "against fix: 0 of 3: the difference may be a bug, not the "
                            "configuration") for w in r["health"]["warnings"])
    assert not any(w.startswith("group fix") for w in r["health"]["warnings"])
    assert r["pairs"][0]["health_differs"] is True
    assert r["pairs"][0]["verdict"]["text"].startswith("bug is better")
    text = compare.format_report(r)
    assert text.index("Health first:") < text.index("GROUP") < text.index("Verdict")

    # Without --group: by manifest, one group each, the seed from the run name.
    r = compare.compare_logdir(health_logdir, "epoch_accuracy", run_filter="validation$")
    assert r["grouping"]["by"] == "manifest" and len(r["groups"]) == 2
    assert {x["seed"] for g in r["groups"] for x in g["runs"]} == {"seed0", "seed1", "seed2"}
    assert r["health"]["differs"]


# ---------------------------------------------------------------------------
# CLI


FINALS = {  # final epoch_loss of 5 seeds
    "different": ([0.50, 0.52, 0.48, 0.51, 0.49], [0.70, 0.73, 0.69, 0.71, 0.68]),
    "same": ([0.50, 0.52, 0.48, 0.51, 0.49], [0.51, 0.47, 0.50, 0.54, 0.49]),
}


@pytest.fixture(scope="module")
def cli_logdirs(tmp_path_factory):
    out = {}
    for case, (a, b) in FINALS.items():
        root = tmp_path_factory.mktemp(case)
        for group, finals in (("cfgA", a), ("cfgB", b)):
            for seed, final in enumerate(finals):
                for split in ("train", "validation"):
                    steps = np.arange(6)
                    values = final + np.exp(-steps.astype(float)) - math.exp(-5)
                    _write(root, "%s/seed%d/%s" % (group, seed, split), "epoch_loss",
                           steps, values)
        out[case] = root
    return out


def test_cli_known_difference_without_tensorflow(cli_logdirs):
    code = textwrap.dedent("""
        import sys
        sys.modules["tensorflow"] = None  # any `import tensorflow` now fails
        from tb_plugin.cli import main
        code = main(sys.argv[1:])
        assert "tensorflow" not in sys.modules or sys.modules["tensorflow"] is None
        sys.exit(code)
    """)
    out = subprocess.run(
        [sys.executable, "-c", code, "compare", str(cli_logdirs["different"]),
         "--group", r"(.*)/seed\d+/validation$", "--tag", "epoch_loss", "--json"],
        capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    doc = _strict_json(out.stdout)
    assert doc["schema"] == "tb-health-compare/1"
    assert set(doc) == {"schema", "logdir", "tag", "grouping", "final", "band", "health",
                        "groups", "pairs", "notes"}
    assert [g["name"] for g in doc["groups"]] == ["cfgA", "cfgB"]
    a, b = FINALS["different"]
    assert doc["groups"][0]["final"]["mean"] == pytest.approx(np.mean(a))
    assert doc["groups"][0]["series"]["n"] == [5] * 6
    pair = doc["pairs"][0]
    assert pair["difference"] == pytest.approx(np.mean(a) - np.mean(b))
    assert pair["p_a_beats_b"] == 1.0 and pair["paired"]["n"] == 5
    assert pair["verdict"]["outcome"] == "a_better"
    assert pair["verdict"]["text"].startswith("cfgA is better")


def test_cli_no_difference_table(cli_logdirs, capsys):
    code = cli.main(["compare", str(cli_logdirs["same"]), "--group",
                     r"(.*)/seed\d+/validation$", "--tag", "epoch_loss"])
    out = capsys.readouterr().out
    assert code == cli.EXIT_OK
    assert "GROUP" in out and "cfgA" in out and "cfgB" in out
    assert ("Verdict: no detectable difference: with n = 5 per group this comparison can "
            "only detect differences larger than 2.0 SD; about ") in out
    assert "lower is better" in out


@pytest.mark.parametrize("args,code,words", [
    (["--tag", "nope", "--group", r"(.*)/seed\d+"], cli.EXIT_NO_DATA, "scalar tag 'nope'"),
    (["--tag", "epoch_loss", "--group", r"(cfgA)/seed\d+/train"], cli.EXIT_NO_DATA,
     "only one group"),
    (["--tag", "epoch_loss", "--group", r"(.*)/seed\d+"], cli.EXIT_USAGE, "same seed"),
    (["--tag", "epoch_loss", "--group", r"(.*"], cli.EXIT_USAGE, "bad --group"),
    (["--tag", "epoch_loss", "--group", r"(.*)/seed\d+/train", "--final", "mean-last-0"],
     cli.EXIT_USAGE, "--final"),
])
def test_cli_exit_status(cli_logdirs, capsys, args, code, words):
    assert cli.main(["compare", str(cli_logdirs["same"])] + args) == code
    assert words in capsys.readouterr().err


def test_cli_missing_logdir_and_tag(tmp_path, capsys):
    assert cli.main(["compare", str(tmp_path / "nope"), "--tag", "x"]) == cli.EXIT_USAGE
    assert cli.main(["compare", str(tmp_path)]) == cli.EXIT_USAGE


# ---------------------------------------------------------------------------
# The plugin's routes: the same document as the CLI, over both loaders


@pytest.fixture(scope="module", params=["python", "rust"])
def health_tb(request, health_logdir):
    from test_plugin_routes import TB

    tb = TB(str(health_logdir), request.param)
    if request.param == "rust":
        tb.wait_for_runs(["%s/seed%d/%s" % (g, s, split) for g in ("bug", "fix")
                          for s in range(3) for split in ("train", "validation")])
    yield tb
    tb.close()


def _route(tb, path, code=200):
    from test_plugin_routes import get_json

    return get_json(tb, "/data/plugin/health/" + path, code)


def test_compare_route_serves_the_cli_document(health_tb, health_logdir):
    regex = r"(.*)/seed\d+/validation$"
    query = "compare?tag=epoch_accuracy&group=%s&final=mean-last-2&band=sd" % (
        urllib.parse.quote(regex))
    served = _route(health_tb, query)
    expected = compare.compare_logdir(health_logdir, "epoch_accuracy", group_regex=regex,
                                      final="mean_last", k=2, band="sd")
    assert served == json.loads(json.dumps(dict(expected, logdir=None)))
    assert served["health"]["differs"] and served["final"]["k"] == 2
    # The health part comes from the plugin's cached diagnoses; the rest
    # follows the parameters.
    misses = health_tb.plugin._runs.stats["miss"]
    again = _route(health_tb, query.replace("band=sd", "band=minmax") + "&runs=1")
    assert health_tb.plugin._runs.stats["miss"] == misses and misses > 0
    assert again["health"] == served["health"] and again["band"]["kind"] == "minmax"
    assert [len(r["steps"]) for g in again["groups"] for r in g["runs"]] == [3] * 6
    assert "steps" not in served["groups"][0]["runs"][0]


def test_scalar_tags_route(health_tb):
    body = _route(health_tb, "scalar_tags")
    tags = body["tags"]
    plain = [t for t in tags if not t.startswith("health/")]
    # The runs' own scalars first (Keras's epoch_*), ours after them.
    assert "epoch_accuracy" in plain and tags[:len(plain)] == plain, tags
    assert len(plain) < len(tags)
    assert "bug/seed0/validation" in body["runs"] and "fix/seed2/train" in body["runs"]


@pytest.mark.parametrize("query,words", [
    ("compare", "missing parameter 'tag'"),
    ("compare?tag=epoch_accuracy&final=worst", "final must be last, best or mean-last-K"),
    ("compare?tag=epoch_accuracy&final=mean-last-0", "final must be"),
    ("compare?tag=epoch_accuracy&band=iqr", "band must be one of ci, sd, se, minmax"),
    ("compare?tag=epoch_accuracy&runs=yes", "runs must be one of 0, 1"),
    ("compare?tag=epoch_accuracy&better=up", "better must be one of higher, lower"),
    ("compare?tag=epoch_accuracy&group=(.*", "bad --group regular expression"),
    ("compare?tag=epoch_accuracy&group=(.*)/seed", "are the same seed"),
    ("compare?tag=epoch_accuracy&group=" + "x" * 5000, "at most 1000 characters"),
])
def test_compare_route_bad_parameters_400(health_tb, query, words):
    body = _route(health_tb, query, code=400)
    assert words in body["error"]
    assert len(body["error"]) < 400  # bounded: never a whole parameter


def _no_scipy_script():
    from test_plugin_routes import blocked_app_script

    return blocked_app_script(["scipy", "tensorflow"], r"""
r = c.get("/data/plugin/health/compare?tag=epoch_loss")
tags = c.get("/data/plugin/health/scalar_tags")
print(json.dumps({"code": r.status_code, "body": json.loads(r.get_data()),
                  "tags": json.loads(tags.get_data())["tags"]}))
""")


def test_compare_route_without_scipy_says_how_to_install_it(cli_logdirs):
    out = subprocess.run([sys.executable, "-c", _no_scipy_script(), str(cli_logdirs["same"])],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["code"] == 501
    assert result["body"]["error"] == (
        'comparing runs needs scipy, which is not installed: '
        'pip install "tb-plugin-health[compare]"')
    assert result["tags"] == ["epoch_loss"]
