"""tb_plugin.diagnosis on real training runs (tb_plugin.demo, recorded by
HealthCallback): every kind fires on its failing scenario, and the healthy
twins get no finding at all. Plus rule-level checks of persistence, warm-up
and thresholds on hand-built records."""

import dataclasses
import json

import numpy as np
import pytest

from tb_plugin import demo
from tb_plugin import diagnosis
from tb_plugin import reader

ALL_KINDS = {
    diagnosis.KIND_NONFINITE,
    diagnosis.KIND_PREDICTION_COLLAPSE,
    diagnosis.KIND_CLASS_COLLAPSE,
    diagnosis.KIND_SKEWED_CLASS_WEIGHTS,
    diagnosis.KIND_TIED_PREDICTIONS,
    diagnosis.KIND_VANISHING,
    diagnosis.KIND_EXPLODING,
    diagnosis.KIND_DEAD_UNITS,
    diagnosis.KIND_OUTPUT_ACTIVATION,
    diagnosis.KIND_LEARNING_RATE,
    diagnosis.KIND_TRAIN_MODE_INACTIVE,
    diagnosis.KIND_TRAINING_ARG_MISSING,
}


def _findings(log_dir):
    """{run: (records, [Finding], [Finding] from read_for_diagnosis)} of one
    scenario dir ("train" and "validation")."""
    provider, eid = reader.open_logdir(str(log_dir))
    out = {}
    for run in reader.health_runs(provider, None, eid):
        records = reader.read_run(provider, None, eid, run)
        narrow = diagnosis.read_for_diagnosis(provider, None, eid, run)
        out[run] = (records, diagnosis.diagnose(records), diagnosis.diagnose(narrow))
    return out


@pytest.fixture(scope="module")
def diagnosed(demo_logs):
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = _findings(demo_logs(name))
        return cache[name]

    return get


def _by_kind(findings):
    out = {}
    for f in findings:
        out.setdefault(f.kind, []).append(f)
    return out


def test_every_kind_has_a_failing_scenario_and_a_healthy_twin():
    covered = set()
    for s in demo.SCENARIOS.values():
        covered |= s.train | s.validation
        if not s.healthy:
            assert s.twin in demo.SCENARIOS and demo.SCENARIOS[s.twin].healthy, s.name
    assert covered == ALL_KINDS


@pytest.mark.parametrize("name", list(demo.SCENARIOS))
def test_scenario_gets_exactly_its_expected_findings(diagnosed, name):
    scenario = demo.SCENARIOS[name]
    runs = diagnosed(name)
    splits = {"train": scenario.train, "validation": scenario.validation}
    seeds = ["seed%d/" % s for s in scenario.seeds] or [""]  # every seed of a seed study
    assert set(runs) == {seed + split for seed in seeds for split in splits}
    for run in sorted(runs):
        expected = splits[run.rpartition("/")[2]]
        records, findings, from_narrow_read = runs[run]
        # Info findings (e.g. converged) leave a run healthy.
        kinds = {f.kind for f in findings if f.severity != "info"}
        assert kinds == set(expected), (run, [f.to_json() for f in findings])
        # The rules read no histogram beyond diagnosis.HISTOGRAMS_READ.
        assert [f.to_json() for f in from_narrow_read] == [f.to_json() for f in findings]
        status = diagnosis.run_status(records, findings)
        assert status == ("healthy" if not expected else "unhealthy")
        for f in findings:
            assert f.severity in ("error", "warning", "info")
            assert isinstance(f.message, str) and f.message.endswith(".")
            assert f.suggestion
            assert f.first_step is not None and f.last_step >= f.first_step
            json.dumps(f.to_json(), allow_nan=False)  # JSON-able, no bare NaN


def test_seed000_relu_on_logits(diagnosed):
    records, findings, _ = diagnosed("seed000_relu_logits")["train"]
    kinds = _by_kind(findings)
    (mismatch,) = kinds["output_activation_mismatch"]
    assert mismatch.severity == "error"
    assert mismatch.layer == "seed000/logits/kernel"
    assert mismatch.evidence["activation"] == "relu"
    assert mismatch.evidence["from_logits"] is True
    assert "relu" in mismatch.message and "from_logits=True" in mismatch.message
    (collapse,) = kinds["prediction_collapse"]
    # Margins, not this machine's figures: oneDNN and the instruction set
    # move the step at which the logits die.
    assert collapse.evidence["normalized_entropy"] >= 0.98
    assert collapse.evidence["zero_logit_fraction"] >= 0.5
    assert collapse.evidence["num_classes"] == 7
    (ties,) = kinds["tied_predictions"]
    # The seed's symptom: in_top_k-style accuracy ~100%, argmax accuracy ~1/7.
    assert ties.evidence["tie_tolerant_accuracy"] >= 0.8
    assert ties.evidence["accuracy"] <= 0.4
    assert ties.evidence["tie_fraction"] >= 0.5
    # The ties last to the end of the run (pooled windows of records may
    # end a few steps short of the last record).
    last = records.predictions["predictions"].scalars["tie_fraction"].steps[-1]
    assert ties.first_step > 0 and ties.last_step >= 0.9 * last
    (dead,) = kinds["dead_units"]
    assert dead.layer == "seed000/logits/bias"
    # The cause comes first, its symptoms right after it, naming it and its fix.
    order = [f.kind for f in findings]
    assert order[:3] == ["output_activation_mismatch", "prediction_collapse", "tied_predictions"]
    for symptom in (collapse, ties):
        assert symptom.caused_by == "output_activation_mismatch"
        assert mismatch.suggestion in symptom.suggestion
        assert symptom.to_json()["caused_by"] == "output_activation_mismatch"
    assert mismatch.caused_by is None and dead.caused_by is None
    # The validation run shows the same ties without a manifest or gradients.
    _, val, _ = diagnosed("seed000_relu_logits")["validation"]
    vt = _by_kind(val)["tied_predictions"][0]
    assert vt.evidence["tie_tolerant_accuracy"] - vt.evidence["accuracy"] >= 0.5


def test_seed002_tiny_init(diagnosed):
    _, findings, _ = diagnosed("seed002_tiny_init")["train"]
    kinds = _by_kind(findings)
    (van,) = kinds["vanishing_gradients"]
    assert van.layer == "seed002/W/kernel"  # the first layer is named
    assert "seed002/W1/kernel" in van.evidence["layers"]
    assert "W/kernel" in van.message and "W1/kernel" in van.message
    first = van.evidence["layers"]["seed002/W/kernel"]
    assert first["norm_ratio_to_last"] < 1e-3
    assert first["update_ratio"] < 1e-5
    assert van.first_step == 0
    (collapse,) = kinds["prediction_collapse"]
    assert collapse.evidence["std_ratio"] < 0.01
    assert "constant" in collapse.message


def test_deep_sigmoid_names_the_early_layers(diagnosed):
    _, findings, _ = diagnosed("deep_sigmoid")["train"]
    (van,) = _by_kind(findings)["vanishing_gradients"]
    layers = list(van.evidence["layers"])
    assert van.layer == layers[0] == "deep_sigmoid/dense_0/kernel"
    assert "deep_sigmoid/dense_7/kernel" not in layers  # next to the output: fine


def test_exploding_every_layer_at_once(diagnosed):
    _, findings, _ = diagnosed("exploding_sgd")["train"]
    kinds = _by_kind(findings)
    (exp,) = kinds["exploding_gradients"]
    assert exp.layer is None  # every layer, not one
    assert exp.evidence["layers_exploding"] == exp.evidence["layers"] == 3
    # The first/last ratio stays ordinary: a ratio rule (AUTOTRAINER's > 70)
    # would not see this.
    assert exp.evidence["first_last_ratio"] < 70
    (nonfinite,) = [f for f in kinds["nonfinite"] if f.layer is not None]
    assert exp.first_step < nonfinite.first_step
    assert exp.last_step == nonfinite.first_step  # reported up to the overflow
    assert nonfinite.severity == "error"


def test_nan_in_data_is_nonfinite_not_exploding(diagnosed):
    _, findings, _ = diagnosed("nan_in_data")["train"]
    kinds = _by_kind(findings)
    assert "exploding_gradients" not in kinds
    (nf,) = kinds["nonfinite"]
    assert nf.layer == "binary/hidden/kernel" and nf.severity == "error"
    assert nf.first_step == nf.evidence["first_step"]


def test_dead_units_name_the_layer(diagnosed):
    _, findings, _ = diagnosed("dead_relu")["train"]
    dead = {f.layer: f for f in _by_kind(findings)["dead_units"]}
    f = dead["mlp/dense2/bias"]
    assert f.evidence["zero_gradient_fraction"] >= 0.9
    assert f.evidence["units"] == 64
    # The layer before it gets no gradient because dense2 is dead.
    assert dead["mlp/dense1/bias"].evidence.get("blocked_by") == "mlp/dense2/bias"


def test_class_collapse(diagnosed):
    _, findings, _ = diagnosed("class_weight_bug")["validation"]
    (cc,) = _by_kind(findings)["class_collapse"]
    assert cc.evidence["predicted_class"] == 0
    assert cc.evidence["prediction_share"] >= 0.95
    assert cc.evidence["label_share"] <= 0.5


# ---------------------------------------------------------------------------
# Rule mechanics on hand-built records


def _series(steps, values):
    return reader.Series(np.asarray(steps, np.int64), np.asarray(values, np.float64))


def _classifier_run(entropy, steps=None, k=7):
    steps = np.arange(len(entropy)) * 10 if steps is None else np.asarray(steps)
    pred = reader.PredictionRecords(
        name="predictions", task="multiclass", num_classes=k, from_logits=True,
        has_labels=False, scalars={"entropy": _series(steps, entropy)}, histograms={})
    return reader.RunRecords(run="r", manifest=None, predictions={"predictions": pred},
                             gradients={})


def test_early_near_uniform_predictions_are_ordinary():
    # Near-uniform for the first 20% of training, then learning.
    entropy = [0.999] * 8 + list(np.linspace(0.9, 0.2, 32))
    assert diagnosis.diagnose(_classifier_run(entropy)) == []


def test_collapse_needs_persistence():
    blip = [0.5] * 20 + [0.999] * 2 + [0.5] * 18  # two records only
    assert diagnosis.diagnose(_classifier_run(blip)) == []
    stuck = [0.5] * 10 + [0.999] * 30
    (f,) = diagnosis.diagnose(_classifier_run(stuck))
    assert f.kind == "prediction_collapse" and f.first_step == 100 and f.last_step == 390


def test_thresholds_are_used():
    entropy = [0.95] * 40
    assert diagnosis.diagnose(_classifier_run(entropy)) == []
    th = diagnosis.Thresholds(collapse_entropy=0.9)
    assert [f.kind for f in diagnosis.diagnose(_classifier_run(entropy), th)] == [
        "prediction_collapse"]


def test_thresholds_are_documented_numbers():
    th = diagnosis.Thresholds()
    for field in dataclasses.fields(th):
        assert isinstance(getattr(th, field.name), (int, float)), field.name
    json.dumps(th.to_json(), allow_nan=False)
    assert th.vanishing_ratio == 1e-3 and th.update_ratio_guideline == 1e-3


def _gradient_run(norms_by_var, steps, shapes):
    stats = {"norm": {p: _series(steps, v) for p, v in norms_by_var.items()}}
    grad = reader.GradientRecords(name="gradients", variables=list(norms_by_var),
                                  shapes=shapes, stats=stats, log10_histograms={},
                                  scalars={})
    return reader.RunRecords(run="r", manifest=None, predictions={},
                             gradients={"gradients": grad})


def test_nonfinite_needs_no_persistence_and_reports_first_step():
    steps = np.arange(20) * 5
    first = np.ones(20)
    last = np.ones(20)
    first[13] = np.nan
    run = _gradient_run({"m/d/kernel": first, "m/o/kernel": last}, steps,
                        {"m/d/kernel": [4, 4], "m/o/kernel": [4, 1]})
    (f,) = diagnosis.diagnose(run)
    assert (f.kind, f.layer, f.first_step, f.severity) == ("nonfinite", "m/d/kernel", 65,
                                                           "error")
    json.dumps(f.to_json(), allow_nan=False)


def test_finding_json_encodes_non_finite_numbers_as_strings():
    f = diagnosis.Finding(kind="k", severity="error", layer=None, first_step=np.int64(1),
                          last_step=2, evidence={"a": float("nan"), "b": np.float32(np.inf),
                                                 "c": [-np.inf, 1.5], "d": np.int64(3)},
                          message="m.", suggestion="s")
    j = f.to_json()
    assert j["evidence"] == {"a": "NaN", "b": "Infinity", "c": ["-Infinity", 1.5], "d": 3}
    assert set(j) == {"kind", "severity", "layer", "first_step", "last_step", "evidence",
                      "message", "suggestion", "caused_by"}
    json.dumps(j, allow_nan=False)


def test_json_floats_encodes_non_finite_and_absent_cells():
    a = np.array([[1.0, np.nan], [np.inf, -np.inf]])
    present = np.array([[True, True], [False, True]])
    assert diagnosis.json_floats(a, present) == [[1.0, "NaN"], [None, "-Infinity"]]
    assert diagnosis.json_floats(np.float32(np.inf)) == "Infinity"
    assert diagnosis.json_floats(np.zeros((2, 0))) == [[], []]
    assert diagnosis.json_safe({"m": np.array([0.5, np.nan]), "b": b"x"}) == {
        "m": [0.5, "NaN"], "b": "x"}


@pytest.mark.parametrize("activation,from_logits,loss,bad", [
    ("relu", True, "SparseCategoricalCrossentropy", True),
    ("softmax", True, "CategoricalCrossentropy", True),
    ("sigmoid", True, "BinaryCrossentropy", True),
    (None, True, "SparseCategoricalCrossentropy", False),
    ("linear", True, "BinaryCrossentropy", False),
    ("softmax", False, "SparseCategoricalCrossentropy", False),
    ("sigmoid", False, "binary_crossentropy", False),
    (None, False, "SparseCategoricalCrossentropy", True),
    ("relu", False, "categorical_crossentropy", True),
    ("relu", None, "MeanSquaredError", False),
    ("softmax", False, "BinaryCrossentropy", True),
])
def test_output_activation_rules(activation, from_logits, loss, bad):
    manifest = {"layers": [{"name": "out", "class": "Dense", "activation": activation}],
                "output_layer": "out",
                "loss": {"class": loss, "name": loss, "from_logits": from_logits}}
    run = reader.RunRecords(run="r", manifest=manifest, predictions={}, gradients={})
    kinds = [f.kind for f in diagnosis.diagnose(run)]
    assert kinds == (["output_activation_mismatch"] if bad else [])


def test_run_status_no_data():
    empty = reader.RunRecords(run="r", manifest=None, predictions={}, gradients={})
    assert diagnosis.run_status(empty, []) == "no_data"
    assert diagnosis.diagnose(empty) == []


def test_thresholds_from_and_validate_kinds():
    th = diagnosis.thresholds_from({"collapse_entropy": "0.9", "persist_records": 4.0,
                                    "explode_abs_norm": "inf"})
    assert th == diagnosis.Thresholds(collapse_entropy=0.9, persist_records=4,
                                      explode_abs_norm=float("inf"))
    assert isinstance(th.persist_records, int)
    assert diagnosis.thresholds_from(None) == diagnosis.Thresholds()
    for bad, words in [({"nope": 1}, ["'nope'", "warmup_fraction"]),
                       ({"persist_records": "2.5"}, ["persist_records", "'2.5'"]),
                       ({"tie_fraction": float("nan")}, ["tie_fraction", "nan"]),
                       ({"tie_fraction": -1}, ["tie_fraction", "-1"]),
                       ({"tie_fraction": True}, ["tie_fraction", "True"])]:
        with pytest.raises(ValueError) as e:
            diagnosis.thresholds_from(bad)
        assert all(w in str(e.value) for w in words), str(e.value)
    assert diagnosis.validate_kinds(["nonfinite"], "stop_on") == ("nonfinite",)
    with pytest.raises(ValueError, match="stop_on.*'x'.*valid kinds: nonfinite"):
        diagnosis.validate_kinds(("x",), "stop_on")


def test_mixed_fits_from_steps_that_start_over():
    # Written order 0..9 then 0..9 again (a second, fresh fit): steps go back
    # once; the second fit's points replace the first's, as TensorBoard's data
    # server keeps them.
    fresh = reader._series([_Datum(s, 32.0 + (i >= 10)) for i, s in enumerate(list(range(10)) * 2)])
    assert fresh.restarts == 1 and list(fresh.steps) == list(range(10))
    assert set(fresh.values) == {33.0}
    resumed = reader._series([_Datum(s, 32.0) for s in range(20)])
    assert resumed.restarts == 0

    def run(series):
        pred = reader.PredictionRecords(
            name="predictions", task="multiclass", num_classes=7, from_logits=True,
            has_labels=False, scalars={"count": series}, histograms={})
        return reader.RunRecords(run="r", manifest=None, predictions={"predictions": pred},
                                 gradients={})

    def mixed(series):
        return [f for f in diagnosis.diagnose(run(series)) if f.kind == "mixed_fits"]

    (f,) = mixed(fresh)
    assert (f.severity, f.first_step, f.last_step) == ("warning", 0, 9)
    assert f.evidence["fits"] == 2
    assert mixed(resumed) == []


class _Datum:
    def __init__(self, step, value):
        self.step, self.value = step, value


def test_learning_rate_too_high_with_an_infinite_update_ratio():
    # A weight that was exactly 0 before a huge step gives an infinite
    # update ratio: the finding must still be made (it once crashed the
    # whole run's diagnosis into "no_data").
    steps = np.arange(20)
    paths = ["m/d0/kernel", "m/out/kernel"]
    ratio = {"m/d0/kernel": [np.inf, 2.0, 1.5] + [0.0] * 17,
             "m/out/kernel": [0.9, 0.8, 0.5] + [0.0] * 17}
    stats = {
        "norm": {p: _series(steps, [1.0] * 20) for p in paths},
        "weight_norm": {p: _series(steps, [3.0] * 20) for p in paths},
        "update_ratio": {p: _series(steps, ratio[p]) for p in paths},
    }
    grad = reader.GradientRecords(name="gradients", variables=paths,
                                  shapes={p: [8, 8] for p in paths}, stats=stats,
                                  log10_histograms={}, scalars={})
    run = reader.RunRecords(run="r", manifest=None, predictions={},
                            gradients={"gradients": grad})
    (f,) = [f for f in diagnosis.diagnose(run) if f.kind == "learning_rate_too_high"]
    assert f.first_step == 0 and f.evidence["update_ratio_max"] == 2.0
    assert "200%" in f.message
