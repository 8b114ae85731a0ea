"""The built wheel: carries the frontend, installs without TensorFlow, and
TensorBoard in that fresh environment lists the Health plugin."""

import json
import os
import pathlib
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
DEMO_LOGS = ROOT / "demo_logs"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (path,) = out.glob("*.whl")
    return path


@pytest.fixture(scope="module")
def viewer_venv(tmp_path_factory, wheel):
    """A fresh virtualenv with only the wheel and its declared dependencies."""
    venv = tmp_path_factory.mktemp("viewer") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)],
        check=True,
        capture_output=True,
    )
    return venv


def test_wheel_contains_the_built_frontend(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "tb_plugin/static/index.js" in names
    bundle = zipfile.ZipFile(wheel).read("tb_plugin/static/index.js").decode()
    assert "export" in bundle and "render" in bundle
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[tensorboard_plugins]" in text and "tb_plugin.health_plugin:HealthLoader" in text


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get_json(url, deadline):
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return json.load(response)
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.5)


def test_fresh_install_without_tensorflow_lists_the_plugin(viewer_venv):
    python = str(viewer_venv / "bin" / "python")
    no_tf = subprocess.run([python, "-c", "import tensorflow"], capture_output=True)
    assert no_tf.returncode != 0, "the viewer venv must not have TensorFlow"

    port = _free_port()
    server = subprocess.Popen(
        [str(viewer_venv / "bin" / "tensorboard"), "--logdir", str(DEMO_LOGS),
         "--port", str(port), "--host", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        base = "http://127.0.0.1:%d" % port
        deadline = time.time() + 120
        listing = _get_json(base + "/data/plugins_listing", deadline)
        assert "health" in listing
        assert listing["health"]["enabled"] is True
        assert listing["health"]["tab_name"] == "Health"
        runs = _get_json(base + "/data/plugin/health/runs", deadline)["runs"]
        assert runs, "the plugin found no run in demo_logs"
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_cli_runs_without_tensorflow(viewer_venv):
    result = subprocess.run(
        [str(viewer_venv / "bin" / "tb-health"), "check", str(DEMO_LOGS), "--json"],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert result.returncode in (0, 1), result.stderr
    report = json.loads(result.stdout)
    assert report["runs"]
