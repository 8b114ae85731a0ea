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
                "suggestion"}
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
        assert set(r) == {"run", "status", "findings"}
        assert r["status"] in ("healthy", "unhealthy", "no_data")
        assert (r["status"] == "unhealthy") == bool(r["findings"])
        for f in r["findings"]:
            assert set(f) == FINDING_KEYS
            assert f["severity"] in ("error", "warning")
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
            assert run["status"] == "healthy" and run["findings"] == [], run


def test_human_table_for_seed000(logdir):
    out = tb_health("check", logdir, "--run", "^seed000_relu_logits/")
    assert out.returncode == 1, out.stderr
    text = out.stdout
    assert "Run seed000_relu_logits/train: UNHEALTHY" in text
    assert "Run seed000_relu_logits/validation: UNHEALTHY" in text
    assert "seed000_fixed" not in text
    for word in ("SEVERITY", "KIND", "LAYER", "STEPS", "MESSAGE", "output_activation_mismatch",
                 "tied_predictions", "prediction_collapse", "seed000/logits/kernel",
                 "Suggestion:"):
        assert word in text, word
    row = next(line for line in text.splitlines() if "output_activation_mismatch" in line)
    assert row.split()[0] == "error" and "seed000/logits/kernel" in row


def test_human_table_for_seed002(logdir):
    out = tb_health("check", logdir, "--run", "seed002_tiny_init/train$")
    assert out.returncode == 1
    rows = [line for line in out.stdout.splitlines() if "vanishing_gradients" in line]
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
    assert all(r["status"] == "healthy" and not r["findings"] for r in doc["runs"])
    table = tb_health("check", logdir, "--run", regex)
    assert table.returncode == 0
    assert "UNHEALTHY" not in table.stdout and "SEVERITY" not in table.stdout
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


def test_empty_logdir_exits_0(tmp_path, capsys):
    assert cli.main(["check", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"logdir": str(tmp_path), "runs": []}
    assert cli.main(["check", str(tmp_path)]) == 0
    assert "No run with health records" in capsys.readouterr().out


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
