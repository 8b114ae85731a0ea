"""tb-health check: the console script on real demo runs (subprocess), its
JSON schema, its table, and its exit codes 0 / 1 / 2."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from tb_plugin import cli

SCRIPT = shutil.which("tb-health") or os.path.join(os.path.dirname(sys.executable), "tb-health")
FINDING_KEYS = {"kind", "severity", "layer", "first_step", "last_step", "evidence", "message",
                "suggestion", "caused_by"}
HEALTHY = ["seed000_fixed", "seed002_fixed", "healthy_cnn", "healthy_binary",
           "healthy_regression"]


def tb_health(*args, timeout=300):
    assert os.path.exists(SCRIPT), "console script tb-health is not installed"
    return subprocess.run([SCRIPT, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def _no_bare_nan(text):
    def reject(name):
        raise AssertionError("bare %s in JSON output" % name)

    return json.loads(text, parse_constant=reject)


@pytest.fixture(scope="module")
def logdir(demo_logs):
    return demo_logs.all()


@pytest.fixture(scope="module")
def full_json(logdir):
    out = tb_health("check", logdir, "--json")
    return out


def test_json_schema_and_exit_code_1(full_json, logdir):
    assert full_json.returncode == 1, full_json.stderr
    doc = _no_bare_nan(full_json.stdout)
    assert set(doc) == {"logdir", "runs"} and doc["logdir"] == str(logdir)
    names = [r["run"] for r in doc["runs"]]
    assert names == sorted(names)
    assert "seed000_relu_logits/train" in names and "seed000_relu_logits/validation" in names
    for r in doc["runs"]:
        assert set(r) == {"run", "status", "findings", "warnings", "intact"}
        assert r["status"] in ("healthy", "unhealthy", "no_data")
        assert r["warnings"] == [] and r["intact"] is True
        problems = [f for f in r["findings"] if f["severity"] != "info"]
        assert (r["status"] == "unhealthy") == bool(problems)
        for f in r["findings"]:
            assert set(f) == FINDING_KEYS
            assert f["severity"] in ("error", "warning", "info")
            assert isinstance(f["first_step"], int) and isinstance(f["last_step"], int)
            assert f["layer"] is None or isinstance(f["layer"], str)
            assert isinstance(f["evidence"], dict)


def test_json_names_seed_failures_with_layer_and_step(full_json):
    runs = {r["run"]: r for r in _no_bare_nan(full_json.stdout)["runs"]}
    f000 = {f["kind"]: f for f in runs["seed000_relu_logits/train"]["findings"]}
    assert f000["output_activation_mismatch"]["layer"] == "seed000/logits/kernel"
    assert f000["tied_predictions"]["first_step"] > 0
    f002 = {f["kind"]: f for f in runs["seed002_tiny_init/train"]["findings"]}
    assert f002["vanishing_gradients"]["layer"] == "seed002/W/kernel"
    assert f002["vanishing_gradients"]["first_step"] == 0
    assert f002["prediction_collapse"]["severity"] == "error"
    for name in HEALTHY:
        for split in ("train", "validation"):
            run = runs["%s/%s" % (name, split)]
            assert run["status"] == "healthy", run
            assert all(f["severity"] == "info" for f in run["findings"]), run


def test_human_table_for_seed000(logdir):
    out = tb_health("check", logdir, "--run", "^seed000_relu_logits/")
    assert out.returncode == 1, out.stderr
    text = out.stdout
    assert "Run seed000_relu_logits/train: UNHEALTHY" in text
    assert "Run seed000_relu_logits/validation: UNHEALTHY" in text
    assert "seed000_fixed" not in text
    for word in ("SEVERITY", "KIND", "LAYER", "STEPS", "output_activation_mismatch",
                 "tied_predictions", "prediction_collapse", "seed000/logits/kernel",
                 "Suggestion:"):
        assert word in text, word
    row = next(line for line in text.splitlines() if "output_activation_mismatch" in line)
    assert row.split()[0] == "error" and "seed000/logits/kernel" in row


def test_closed_pipe_keeps_the_exit_status_without_a_traceback(logdir):
    # tb-health check LOGDIR | head -1: the reader goes away after one line.
    proc = subprocess.Popen([SCRIPT, "check", str(logdir), "--run", "^seed000_relu_logits/"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 1, err
    assert first.startswith(b"Run seed000_relu_logits/")
    assert "Traceback" not in err and "BrokenPipe" not in err, err


@pytest.mark.parametrize("columns", [100, 200])
def test_messages_follow_the_terminal_width(logdir, columns):
    out = subprocess.run([SCRIPT, "check", str(logdir), "--run", "^seed000_relu_logits/"],
                         capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, COLUMNS=str(columns)))
    widest = max(len(line) for line in out.stdout.splitlines())
    assert columns - 25 <= widest <= columns, (columns, widest)


def test_human_table_for_seed002(logdir):
    out = tb_health("check", logdir, "--run", "seed002_tiny_init/train$")
    assert out.returncode == 1
    rows = [line for line in out.stdout.splitlines()
            if line.split()[1:2] == ["vanishing_gradients"]]  # SEVERITY KIND LAYER STEPS
    assert len(rows) == 1 and "seed002/W/kernel" in rows[0]
    steps = rows[0].split()[3]
    assert steps.startswith("0-"), rows[0]
    assert "seed002_tiny_init/validation" not in out.stdout


def test_fixes_and_healthy_models_exit_0(logdir):
    regex = "^(%s)/" % "|".join(HEALTHY)
    out = tb_health("check", logdir, "--run", regex, "--json")
    assert out.returncode == 0, out.stdout
    doc = _no_bare_nan(out.stdout)
    assert len(doc["runs"]) == 2 * len(HEALTHY)
    assert all(r["status"] == "healthy" for r in doc["runs"])
    assert all(f["severity"] == "info" for r in doc["runs"] for f in r["findings"])
    table = tb_health("check", logdir, "--run", regex)
    assert table.returncode == 0
    assert "UNHEALTHY" not in table.stdout and "0 errors, 0 warnings" in table.stdout
    assert "Run healthy_cnn/train: healthy" in table.stdout


def test_scenario_directory_as_logdir(logdir):
    out = tb_health("check", logdir / "seed002_fixed", "--json")
    assert out.returncode == 0
    assert [r["run"] for r in _no_bare_nan(out.stdout)["runs"]] == ["train", "validation"]


def test_nonfinite_evidence_is_valid_json(logdir):
    out = tb_health("check", logdir, "--run", "^(nan_in_data|exploding_sgd)/", "--json")
    assert out.returncode == 1
    doc = _no_bare_nan(out.stdout)
    kinds = {f["kind"] for r in doc["runs"] for f in r["findings"]}
    assert "nonfinite" in kinds and "exploding_gradients" in kinds


@pytest.mark.parametrize("args", [
    ("check", "/nonexistent/logdir/xyz"),
    ("check",),
    (),
    ("frobnicate", "."),
    ("check", ".", "--run", "(unclosed"),
    ("check", ".", "--bogus"),
])
def test_usage_errors_exit_2(args):
    out = tb_health(*args)
    assert out.returncode == 2, (args, out.stdout, out.stderr)
    assert "tb-health" in out.stderr and "error" in out.stderr
    assert out.stdout == ""


def test_file_instead_of_directory_exits_2(tmp_path):
    path = tmp_path / "file.txt"
    path.write_text("x")
    out = tb_health("check", path)
    assert out.returncode == 2 and "not a directory" in out.stderr


def test_no_health_data_exits_3(tmp_path, capsys, demo_logs):
    # A CI gate pointed at the wrong path (or a --run that matches nothing) fails.
    assert cli.EXIT_NO_DATA == 3
    assert cli.main(["check", str(tmp_path), "--json"]) == 3
    out = capsys.readouterr()
    assert json.loads(out.out) == {"logdir": str(tmp_path), "runs": []}
    assert "no health data" in out.err and str(tmp_path) in out.err
    assert cli.main(["check", str(tmp_path)]) == 3
    out = capsys.readouterr()
    assert out.out == "" and "no run has health records" in out.err
    scenario = demo_logs("seed002_fixed")
    assert cli.main(["check", str(scenario), "--run", "^nothing$"]) == 3
    assert "--run '^nothing$'" in capsys.readouterr().err
    assert cli.main(["check", str(scenario), "--run", "^train$"]) == 0


def test_set_and_thresholds_file_override_thresholds(demo_logs, tmp_path):
    scenario = demo_logs("seed002_fixed")  # a healthy regression
    assert tb_health("check", scenario, "--json").returncode == 0
    # Any output is "constant" next to the targets under an infinite ratio.
    out = tb_health("check", scenario, "--set", "collapse_std_ratio=inf", "--json")
    assert out.returncode == 1, out.stderr
    kinds = {f["kind"] for r in _no_bare_nan(out.stdout)["runs"] for f in r["findings"]}
    assert kinds == {"prediction_collapse"}
    path = tmp_path / "th.json"
    path.write_text(json.dumps({"collapse_std_ratio": 1e9, "persist_records": 2}))
    assert tb_health("check", scenario, "--thresholds", path).returncode == 1
    # --set wins over the file.
    out = tb_health("check", scenario, "--thresholds", path, "--set", "collapse_std_ratio=0.01")
    assert out.returncode == 0, out.stdout


@pytest.mark.parametrize("args,words", [
    (("--set", "no_such_threshold=1"), ["unknown threshold 'no_such_threshold'",
                                        "collapse_entropy", "dead_fraction"]),
    (("--set", "collapse_entropy=high"), ["collapse_entropy", "'high'"]),
    (("--set", "collapse_entropy=nan"), ["collapse_entropy", "'nan'"]),
    (("--set", "dead_fraction=-0.5"), ["dead_fraction", "'-0.5'"]),
    (("--set", "persist_records=1.5"), ["persist_records", "integer", "'1.5'"]),
    (("--set", "collapse_entropy"), ["NAME=VALUE"]),
    (("--thresholds", "FILE:[0.5]"), ["JSON object"]),
    (("--thresholds", "FILE:{\"bogus\": 1}"), ["unknown threshold 'bogus'"]),
    (("--thresholds", "FILE:{\"tie_fraction\": true}"), ["tie_fraction", "True"]),
    (("--thresholds", "FILE:{oops"), ["not valid JSON"]),
    (("--thresholds", "/nonexistent/th.json"), ["cannot read"]),
])
def test_bad_thresholds_exit_2(tmp_path, capsys, args, words):
    flag, value = args
    if value.startswith("FILE:"):
        (tmp_path / "th.json").write_text(value[5:])
        value = str(tmp_path / "th.json")
    assert cli.main(["check", str(tmp_path), flag, value]) == 2
    out = capsys.readouterr()
    assert out.out == "" and out.err.startswith("tb-health: error: "), out.err
    for word in words:
        assert word in out.err, (word, out.err)


def test_version():
    from importlib import metadata

    out = tb_health("--version")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "tb-health (tb-plugin-health) %s" % metadata.version(
        "tb-plugin-health")


def test_main_returns_codes_in_process(capsys):
    assert cli.main(["check", "/nonexistent/xyz"]) == 2
    assert cli.main([]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_cli_runs_without_tensorflow(logdir):
    code = textwrap.dedent("""
        import sys
        sys.modules["tensorflow"] = None  # any `import tensorflow` now fails
        from tb_plugin.cli import main
        code = main(["check", sys.argv[1], "--json"])
        assert "tensorflow" not in sys.modules or sys.modules["tensorflow"] is None
        sys.exit(code)
    """)
    out = subprocess.run([sys.executable, "-c", code, str(logdir / "seed002_tiny_init")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 1, out.stderr
    runs = {r["run"]: r for r in _no_bare_nan(out.stdout)["runs"]}
    assert runs["train"]["status"] == "unhealthy"
