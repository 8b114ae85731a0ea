"""Log directories at URLs, read through TensorBoard's file system layer:
``tb-health check`` / ``compare`` on ``s3://`` against a local S3 server
(moto's, over HTTP) in a process without TensorFlow, and the reader on an
fsspec URL (``memory://``)."""

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import boto3
import fsspec
import pytest
from moto.server import ThreadedMotoServer

from tb_plugin import cli
from tb_plugin import diagnosis
from tb_plugin import reader

DEMO = Path(__file__).resolve().parent.parent / "demo_logs"
SCENARIO = "seed002_tiny_init"  # committed, unhealthy: check exits 1
# tb-health in a process where `import tensorflow` fails.
WITHOUT_TF = textwrap.dedent("""
    import sys
    sys.modules["tensorflow"] = None
    from tb_plugin.cli import main
    code = main(sys.argv[1:])
    assert sys.modules["tensorflow"] is None
    sys.exit(code)
""")


def _upload(put, local_root, prefix):
    """Calls put(key, bytes) for every file under `local_root`, keyed
    `prefix/<its path relative to local_root>`."""
    for root, _, files in os.walk(local_root):
        for name in files:
            path = Path(root) / name
            put("%s/%s" % (prefix, path.relative_to(local_root).as_posix()), path.read_bytes())


def _compare_runs(root):
    """Two configurations x three seeds of `epoch_loss` under `root`, cfgB lower."""
    from tensorboard.summary import Writer

    for group, final in (("cfgA", 0.9), ("cfgB", 0.3)):
        for seed in range(3):
            writer = Writer(str(root / group / ("seed%d" % seed) / "validation"))
            for step in range(4):
                writer.add_scalar("epoch_loss", final + 0.01 * seed + math.exp(-step), step)
            writer.close()


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A local S3 server with bucket ``logs``: ``demo/`` holds the demo
    scenario, ``compare/`` runs to compare. Yields the environment that points
    boto3 (and TensorBoard's s3:// layer) at it."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    home = tmp_path_factory.mktemp("aws")
    env = dict(os.environ, S3_ENDPOINT="http://%s:%d" % (host, port),
               AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
               AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true",
               AWS_CONFIG_FILE=str(home / "config"),
               AWS_SHARED_CREDENTIALS_FILE=str(home / "credentials"))
    client = boto3.client("s3", endpoint_url=env["S3_ENDPOINT"], region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    client.create_bucket(Bucket="logs")

    def put(key, data):
        client.put_object(Bucket="logs", Key=key, Body=data)

    _upload(put, DEMO / SCENARIO, "demo/" + SCENARIO)
    compare_root = tmp_path_factory.mktemp("compare")
    _compare_runs(compare_root)
    _upload(put, compare_root, "compare")
    yield env
    server.stop()


def _tb_health(env, *args):
    return subprocess.run([sys.executable, "-c", WITHOUT_TF, *args], env=env,
                          capture_output=True, text=True, timeout=300)


def _by_run(result, prefix=""):
    """{run less `prefix`: the rest of its entry} of the runs under `prefix`
    of a check_logdir result (as JSON)."""
    return {r["run"][len(prefix):]: {k: v for k, v in r.items() if k != "run"}
            for r in json.loads(json.dumps(result))["runs"] if r["run"].startswith(prefix)}


@pytest.fixture(scope="module")
def local_check():
    """check_logdir of the demo scenario on disk, by run."""
    return _by_run(diagnosis.check_logdir(str(DEMO / SCENARIO)))


def test_check_s3_without_tensorflow_finds_what_a_local_check_finds(s3, local_check):
    out = _tb_health(s3, "check", "s3://logs/demo", "--json")
    assert out.returncode == cli.EXIT_ERRORS, out.stderr
    remote = json.loads(out.stdout)
    assert remote["logdir"] == "s3://logs/demo"
    assert set(local_check) == {"train", "validation"}
    assert _by_run(remote, SCENARIO + "/") == local_check


def test_compare_s3_without_tensorflow(s3):
    out = _tb_health(s3, "compare", "s3://logs/compare/", "--tag", "epoch_loss",
                     "--group", r"(.*)/seed\d+/validation$", "--json")
    assert out.returncode == cli.EXIT_OK, out.stderr
    doc = json.loads(out.stdout)
    assert {g["name"]: g["final"]["n"] for g in doc["groups"]} == {"cfgA": 3, "cfgB": 3}
    (pair,) = doc["pairs"]
    mean = {"cfgA": 0.9, "cfgB": 0.3}
    assert pair["difference"] == pytest.approx(mean[pair["a"]] - mean[pair["b"]], abs=1e-5)


@pytest.mark.parametrize("url,endpoint,words", [
    ("s3://logs/nope", None, "log directory does not exist: s3://logs/nope"),
    ("s3://nobucket/logs", None, "cannot reach the log directory s3://nobucket/logs"),
    ("s3://logs/demo", "http://127.0.0.1:9", "cannot reach the log directory s3://logs/demo"),
])
def test_missing_or_unreachable_url_is_named(s3, url, endpoint, words):
    env = dict(s3, AWS_MAX_ATTEMPTS="1")
    if endpoint is not None:
        env["S3_ENDPOINT"] = endpoint  # nothing listens on the discard port
    out = _tb_health(env, "check", url)
    assert out.returncode == cli.EXIT_USAGE
    assert "tb-health: error: " + words in out.stderr


@pytest.fixture
def memory_logdir(request):
    """The demo scenario, and a copy with its train event file cut short, in
    fsspec's in-memory file system (this process only)."""
    fs = fsspec.filesystem("memory")
    root = "/%s" % request.node.name
    _upload(fs.pipe, DEMO / SCENARIO, root + "/intact")
    _upload(fs.pipe, DEMO / SCENARIO, root + "/cut")
    (train,) = fs.glob(root + "/cut/train/*tfevents*")
    fs.pipe(train, fs.cat(train)[:-100])
    yield "memory://" + root
    fs.rm(root, recursive=True)


def test_reader_reads_an_fsspec_url_as_a_local_directory(memory_logdir, local_check):
    assert _by_run(diagnosis.check_logdir(memory_logdir), "intact/") == local_check
    (problem,) = reader.load_logdir(memory_logdir).problems["cut/train"]
    assert problem.path.startswith("cut/train/events.out.tfevents.")
    assert "cut short" in problem.message and not problem.damaged


def test_check_fsspec_url_in_process(memory_logdir, capsys):
    assert cli.main(["check", memory_logdir + "/intact", "--run", "validation"]) == 1
    assert "Run validation: UNHEALTHY" in capsys.readouterr().out
    assert cli.main(["check", memory_logdir + "/nope"]) == cli.EXIT_USAGE
    assert ("log directory does not exist: %s/nope" % memory_logdir
            in capsys.readouterr().err)


def _fit_reporting(log_dir, capsys):
    """The findings that HealthCallback's online diagnosis prints while a
    ReLU-on-logits model trains into `log_dir` (it reads the event files
    written there)."""
    import keras

    from tb_plugin.callback import HealthCallback
    from test_callback import data, small_model

    x, y = data(n=256, d=20, k=7)
    model = small_model(k=7, out_activation="relu")
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    cb = HealthCallback(log_dir, log_every_n_steps=1)
    model.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0, callbacks=[cb])
    return [line for line in capsys.readouterr().err.splitlines()
            if line.startswith("tb_plugin:")]


def test_callback_writes_and_diagnoses_a_tensorflow_url(tmp_path, monkeypatch, capsys):
    """ram:// is TensorFlow's in-memory file system (TensorFlow 2.21 has no
    s3://; gs:// needs the network)."""
    import tensorflow as tf

    monkeypatch.chdir(tmp_path)  # a URL taken for a path would show up here
    url = "ram://%s/run" % tmp_path.name
    local = _fit_reporting(str(tmp_path / "run"), capsys)
    assert _fit_reporting(url, capsys) == local
    assert os.listdir(tmp_path) == ["run"]
    assert any("no_better_than_baseline" in line for line in local), local  # from records
    assert sorted(tf.io.gfile.listdir(url)) == ["train"]
    assert (_by_run(diagnosis.check_logdir(url))
            == _by_run(diagnosis.check_logdir(str(tmp_path / "run"))))
