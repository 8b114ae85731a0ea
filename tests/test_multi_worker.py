"""HealthCallback under MultiWorkerMirroredStrategy: two real worker
processes on localhost (TF_CONFIG); only the chief writes, one copy per step,
equal to a single-process fit on the same global batch."""

import glob
import json
import os
import socket
import subprocess
import sys
import time

import numpy as np

from test_summary import read_events
from tb_plugin import metadata

GLOBAL_BATCH = 32
STEPS = 3

# Fits a small MLP on the same global batch every step, under
# MultiWorkerMirroredStrategy when TF_CONFIG is set, else in one process.
WORKER = r"""
import json, os, sys
import numpy as np
import tensorflow as tf
strategy = (tf.distribute.MultiWorkerMirroredStrategy() if "TF_CONFIG" in os.environ
            else tf.distribute.get_strategy())
import keras
from tb_plugin.callback import HealthCallback

log_dir, batch, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
stop_on = tuple(sys.argv[4:])
rng = np.random.default_rng(0)
x = rng.normal(size=(batch, 6)).astype("float32")
y = rng.integers(0, 3, batch)


# Keras 3 cannot fit under MWMS as is (keras-team/keras#20585): its logs are
# reduced with strategy.reduce(axis=0), which needs rank >= 1, and a model
# created under strategy.scope() has its (x, y) batch reduced eagerly, which
# MWMS rejects. So the logs are given rank 1, and the model is created
# outside the scope, then built and fitted inside.
class Net(keras.Sequential):
    def train_step(self, data):
        return {k: tf.reshape(v, [1]) for k, v in super().train_step(data).items()}


model = Net([keras.layers.Dense(8, activation="tanh"),
             keras.layers.Dense(3, activation="relu", name="out")], name="m")
cb = HealthCallback(log_dir, log_every_n_steps=1, stop_on=stop_on)
with strategy.scope():
    model.build((None, 6))
    model.set_weights([rng.normal(scale=0.5, size=w.shape).astype("float32")
                       for w in model.get_weights()])
    model.compile(keras.optimizers.SGD(0.1),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(np.tile(x, (steps, 1)), np.tile(y, steps), batch_size=batch, epochs=1,
              shuffle=False, verbose=0, callbacks=[cb])
temporary = cb._writers.temporary
print("RESULT" + json.dumps({"steps": int(model.optimizer.iterations.numpy()),
                             "labels": np.bincount(y, minlength=3).tolist(),
                             "temporary": temporary,
                             "temporary_left": bool(temporary and os.path.exists(temporary))}))
"""


def free_ports(n):
    """`n` localhost ports free now."""
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def launch(script, log_dir, tf_config=None, stop_on=()):
    """The worker script in a process of its own, on CPU."""
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return subprocess.Popen(
        [sys.executable, str(script), str(log_dir), str(GLOBAL_BATCH), str(STEPS), *stop_on],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def launch_workers(script, log_dir, stop_on=()):
    """Two MultiWorkerMirroredStrategy workers on localhost (TF_CONFIG)."""
    cluster = {"worker": ["localhost:%d" % p for p in free_ports(2)]}
    return [launch(script, log_dir, {"cluster": cluster, "task": {"type": "worker", "index": i}},
                   stop_on=stop_on) for i in range(2)]


def finish(procs, timeout):
    """[(RESULT dict, stderr)] of `procs` ({name: process}), which must all
    succeed within `timeout` seconds; any left running is killed."""
    deadline = time.monotonic() + timeout
    results = []
    try:
        for name, proc in procs.items():
            try:
                out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
                raise AssertionError(
                    "%s did not finish in %d s (MultiWorkerMirroredStrategy over gRPC on "
                    "localhost hung?); stderr:\n%s" % (name, timeout, err[-3000:]))
            assert proc.returncode == 0 and "RESULT" in out, (
                "%s failed (rc %s); stderr:\n%s" % (name, proc.returncode, err[-3000:]))
            results.append((json.loads(out.split("RESULT", 1)[1]), err))
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    return results


def records(run_dir):
    """{tag: [(step, value)]} of the numeric values of every event file."""
    out = {tag: [(step, value) for step, value, *_ in values if value.dtype.kind in "fiub"]
           for tag, values in read_events(str(run_dir)).items()}
    return {tag: values for tag, values in out.items() if values}


def test_only_the_chief_writes_the_global_batch_statistics(tmp_path):
    """One copy per step, in log_dir, equal to a single-process fit's."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    log_dir, ref_dir = tmp_path / "logs", tmp_path / "ref"
    workers = launch_workers(script, log_dir)
    (chief, chief_err), (other, other_err), (ref, _) = finish(
        {"worker 0": workers[0], "worker 1": workers[1],
         "the single-process fit": launch(script, ref_dir)}, timeout=420)

    assert chief["steps"] == other["steps"] == ref["steps"] == STEPS
    # The chief writes to log_dir; worker 1 to a temporary directory, removed.
    assert chief["temporary"] is None
    assert other["temporary"] and not other["temporary"].startswith(str(log_dir))
    assert not other["temporary_left"]
    assert sorted(os.listdir(log_dir)) == ["train"]
    assert len(glob.glob(str(log_dir / "train" / "*tfevents*"))) == 1
    # Findings (the ReLU on the logits) are printed by the chief only.
    assert "tb_plugin: " in chief_err
    assert "tb_plugin: " not in other_err

    got, want = records(log_dir / "train"), records(ref_dir / "train")
    # update_ratio is not recorded under a multi-replica strategy: the
    # per-variable tensor has one column less; its other columns are
    # compared variable by variable below (see recorded_events).
    compact = metadata.stat_tag("gradients", metadata.GRAD_VARIABLE_STATS)
    assert got.pop(compact)[0][1].shape[1] == want.pop(compact)[0][1].shape[1] - 1
    assert set(got) == {tag for tag in want if "update_ratio" not in tag}
    for tag, values in got.items():
        assert [s for s, _ in values] == list(range(STEPS)), tag  # one copy per step
        for (step, value), (_, expected) in zip(values, want[tag]):
            np.testing.assert_allclose(value, expected, rtol=1e-4, atol=1e-6,
                                       err_msg="%s at step %d" % (tag, step))
    assert [int(v) for _, v in got["health/predictions/count"]] == [GLOBAL_BATCH] * STEPS
    # The global batch's labels: (left, right, count) per class.
    assert [v[:, 2].tolist() for _, v in got["health/predictions/label_classes"]] == [
        chief["labels"]] * STEPS
    assert "health/gradients/m/out/kernel/norm" in got


def test_cluster_role():
    """The chief is task "chief", else worker 0; one task is not multi-worker."""
    import tensorflow as tf

    from tb_plugin.record_writers import cluster_role

    def role(cluster, task_type, task_id):
        return cluster_role(tf.distribute.cluster_resolver.SimpleClusterResolver(
            tf.train.ClusterSpec(cluster), task_type=task_type, task_id=task_id))

    workers = {"worker": ["localhost:1", "localhost:2"]}
    with_chief = dict(workers, chief=["localhost:3"])
    assert role(workers, "worker", 0) == (True, True)
    assert role(workers, "worker", 1) == (False, True)
    assert role(with_chief, "worker", 0) == (False, True)
    assert role(with_chief, "chief", 0) == (True, True)
    assert role({"worker": ["localhost:1"]}, "worker", 0) == (True, False)
    assert cluster_role(None) == (True, False)


def test_workers_stop_together_on_a_stop_on_finding(tmp_path):
    """stop_on: every worker diagnoses (the chief alone prints) and stops at
    the same step (a worker going on alone would fail or hang)."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    workers = launch_workers(script, tmp_path / "logs", stop_on=("output_activation_mismatch",))
    (chief, chief_err), (other, other_err) = finish(
        {"worker 0": workers[0], "worker 1": workers[1]}, timeout=300)
    assert chief["steps"] == other["steps"] == 1
    assert "output_activation_mismatch" in chief_err
    assert "tb_plugin: " not in other_err
