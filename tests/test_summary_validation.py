"""Arguments of the public summary functions (issue 18, item 8): every bad
argument is refused with a ValueError that names it and shows what it got,
the same call with that argument fixed still writes, variables that share a
path stay apart, reserved family names are refused, and labels that cannot
be scored raise eagerly and are counted inside tf.function."""

import functools
import warnings

import numpy as np
import pytest

import tensorflow as tf

import tb_plugin.summary as health
from recorded_events import summary_values  # noqa: E402
from tb_plugin import metadata
from tb_plugin import reader


def read_scalars(logdir):
    """{tag: [(step, value)]} of every event file under `logdir`."""
    out = {}
    for step, tag, value, _, _ in summary_values(logdir):
        out.setdefault(tag, []).append((step, value))
    return out


def read_records(logdir):
    """The RunRecords of the run written at `logdir` itself."""
    provider, eid = reader.open_logdir(str(logdir))
    runs = reader.health_runs(provider, None, eid)
    assert len(runs) == 1, runs
    return reader.read_run(provider, None, eid, runs[0])


@pytest.fixture
def writer(tmp_path):
    w = tf.summary.create_file_writer(str(tmp_path))
    with w.as_default():
        yield w
    w.close()


def _variable(shape=(2, 3)):
    return tf.Variable(tf.ones(shape), name="w")


def _circular():
    d = {"a": [1, 2]}
    d["a"].append(d)
    return d


def _deep(depth):
    return functools.reduce(lambda inner, _: {"x": inner}, range(depth), {})


# Each case: (function, the good keyword arguments, the argument made bad,
# its bad value, what the message must show of it). Checks that predate
# issue 18 (shapes, dtypes, task) are in test_summary.py.
_OUT = np.zeros((4, 3), np.float32)
_PRED = dict(name="p", outputs=_OUT, step=1, labels=np.array([0, 1, 2, 1]),
             from_logits=True)
_GRAD = dict(name="g", gradients="GRADS", variables="VARS", step=1)
_MAN = dict(data={"model": "m", "layers": [{"name": "d", "shape": [None, 3]}]}, step=0)

CASES = [
    # prediction_distribution
    (health.prediction_distribution, _PRED, "name", None, "None"),
    (health.prediction_distribution, _PRED, "name", "", "''"),
    (health.prediction_distribution, _PRED, "name", 7, "7 (int)"),
    (health.prediction_distribution, _PRED, "name", "manifest", "'manifest'"),
    (health.prediction_distribution, _PRED, "step", "abc", "'abc' (str)"),
    (health.prediction_distribution, _PRED, "step", 1.5, "1.5 (float)"),
    (health.prediction_distribution, _PRED, "step", -3, "-3"),
    (health.prediction_distribution, _PRED, "step", True, "True"),
    (health.prediction_distribution, _PRED, "step", "FLOAT_TENSOR", "float32"),
    (health.prediction_distribution, _PRED, "step", "VECTOR_TENSOR", "shape=(2,)"),
    (health.prediction_distribution, _PRED, "from_logits", "yes", "'yes' (str)"),
    (health.prediction_distribution, _PRED, "from_logits", 1, "1 (int)"),
    (health.prediction_distribution, _PRED, "outputs", None, "None"),
    (health.prediction_distribution, _PRED, "labels", np.array([0, 7, 1, 2]), "[7]"),
    (health.prediction_distribution, _PRED, "labels", np.array([0, -1, 1, 2]), "[-1]"),
    (health.prediction_distribution, _PRED, "labels",
     np.array([0.0, np.nan, 1.0, 2.0]), "[nan]"),
    (health.prediction_distribution, _PRED, "labels", np.array([0.0, 1.5, 1.0, 2.0]),
     "[1.5]"),
    (health.prediction_distribution, _PRED, "labels", object(), "object"),
    (health.prediction_distribution, _PRED, "description", 5, "5 (int)"),
    # gradient_magnitudes
    (health.gradient_magnitudes, _GRAD, "name", None, "None"),
    (health.gradient_magnitudes, _GRAD, "name", "manifest", "'manifest'"),
    (health.gradient_magnitudes, _GRAD, "gradients", 5, "5 (int)"),
    (health.gradient_magnitudes, _GRAD, "gradients", "NOT_A_LIST_TENSOR", "EagerTensor"),
    (health.gradient_magnitudes, _GRAD, "gradients", [object()], "object"),
    (health.gradient_magnitudes, _GRAD, "variables", [None], "None"),
    (health.gradient_magnitudes, _GRAD, "variables", 3, "3 (int)"),
    (health.gradient_magnitudes, _GRAD, "updates", [tf.ones([5])], "(5,)"),
    (health.gradient_magnitudes, _GRAD, "updates", 5, "5 (int)"),
    (health.gradient_magnitudes, _GRAD, "updates", [object()], "object"),
    (health.gradient_magnitudes, _GRAD, "step", "abc", "'abc'"),
    (health.gradient_magnitudes, _GRAD, "step", 2.5, "2.5"),
    (health.gradient_magnitudes, _GRAD, "description", ["d"], "['d']"),
    # manifest
    (health.manifest, _MAN, "data", [1, 2], "[1, 2] (list)"),
    (health.manifest, _MAN, "data", "CIRCULAR", "circular"),
    (health.manifest, _MAN, "data", {1: "a", "b": 2}, "key 1 (int)"),
    (health.manifest, _MAN, "data", {"layers": [{("a", "b"): 1}]}, "('a', 'b') (tuple)"),
    (health.manifest, _MAN, "data", "DEEP", "nested more than"),
    (health.manifest, _MAN, "step", "0", "'0' (str)"),
    (health.manifest, _MAN, "step", 0.0, "0.0 (float)"),
]


def _kwargs(base, **override):
    """The keyword arguments of a case, placeholders filled in."""
    variable = _variable()
    special = {
        "GRADS": [tf.ones([2, 3])],
        "VARS": [variable],
        "FLOAT_TENSOR": tf.constant(1.0),
        "VECTOR_TENSOR": tf.constant([1, 2], tf.int64),
        "NOT_A_LIST_TENSOR": tf.ones([2, 3]),
        "CIRCULAR": _circular(),
        "DEEP": _deep(150),
    }
    out = dict(base, **override)
    return {k: special[v] if isinstance(v, str) and v in special else v
            for k, v in out.items()}


@pytest.mark.parametrize(
    "fn,base,arg,bad,shown", CASES,
    ids=["%s-%s-%d" % (c[0].__name__, c[2], i) for i, c in enumerate(CASES)])
def test_bad_argument_is_named_and_the_fixed_call_writes(
        tmp_path, writer, fn, base, arg, bad, shown):
    with pytest.raises(ValueError) as caught:
        fn(**_kwargs(base, **{arg: bad}))
    message = str(caught.value)
    assert message.startswith(arg), message
    assert shown in message, message
    assert len(message) < 600, message
    # The same call with the argument as it should be still writes.
    assert bool(fn(**_kwargs(base)))
    writer.flush()
    assert read_scalars(str(tmp_path))


def test_good_variants_of_each_argument_write(tmp_path, writer):
    """Kinds of values the functions accept: integer scalar tensors, numpy
    and tf.Variable steps, numpy bools, one-hot and soft labels, None updates,
    tuples and numpy scalars in a manifest. Classification records with
    labels say how many could not be scored (none here)."""
    v = _variable()
    step_var = tf.Variable(4, dtype=tf.int64)
    onehot = np.eye(3, dtype=np.float32)[[0, 1, 2, 1]]
    assert bool(health.prediction_distribution(
        "p", _OUT, step=np.int64(1), labels=onehot, from_logits=np.bool_(True)))
    assert bool(health.prediction_distribution(
        "b", np.full(4, 0.4, np.float32), step=tf.constant(2, tf.int64),
        labels=np.array([0.0, 0.9, 1.0, 0.1], np.float32)))
    assert bool(health.prediction_distribution(
        "r", _OUT, step=step_var, labels=np.full((4, 3), np.nan, np.float32),
        task="regression", description="regression outputs"))
    assert bool(health.gradient_magnitudes(
        "g", (tf.ones([2, 3]),), (v,), step=np.int32(3), updates=[None]))
    assert bool(health.manifest({"layers": ({"shape": (None, 3)},), "lr": np.float32(0.5),
                                 "nested": _deep(90)}, step=tf.constant(0, tf.int64)))
    tf.summary.experimental.set_step(6)
    try:
        assert bool(health.gradient_magnitudes("g", [tf.ones([2, 3])], [v]))
    finally:
        tf.summary.experimental.set_step(None)
    writer.flush()
    records = read_records(tmp_path)
    assert set(records.predictions) == {"p", "b", "r"}
    assert records.gradients["g"].steps.tolist() == [3, 6]
    assert records.manifest["lr"] == "0.5"
    ev = read_scalars(str(tmp_path))
    for name in ("p", "b"):
        assert float(ev[metadata.stat_tag(name, metadata.PRED_INVALID_LABELS)][0][1]) == 0.0
    assert metadata.stat_tag("r", metadata.PRED_INVALID_LABELS) not in ev


def test_reserved_name_does_not_overwrite_the_manifest(tmp_path, writer):
    health.manifest({"model": "mine"}, step=0)
    for call in (
        lambda: health.prediction_distribution("manifest", _OUT, step=0),
        lambda: health.gradient_magnitudes(
            "manifest", [tf.ones([2, 3])], [_variable()], step=0),
    ):
        with pytest.raises(ValueError, match=r"^name 'manifest' is reserved"):
            call()
    writer.flush()
    assert read_records(tmp_path).manifest == {"model": "mine"}


def test_variables_sharing_a_path_are_recorded_apart(tmp_path, writer):
    """Two unnamed tf.Variables are both 'Variable': a vanishing layer beside
    a healthy one must not merge into one healthy-looking series."""
    first, last = tf.Variable(tf.ones([4, 4])), tf.Variable(tf.ones([4, 2]))
    assert first.name == last.name
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(3):
            health.gradient_magnitudes(
                "gradients", [tf.fill([4, 4], 1e-9), tf.ones([4, 2])], [first, last],
                step=step)
    messages = [str(w.message) for w in caught if "share a path" in str(w.message)]
    assert len(messages) == 1 and "Variable -> Variable#2" in messages[0], messages
    writer.flush()
    grad = read_records(tmp_path).gradients["gradients"]
    assert grad.variables == ["Variable", "Variable#2"]
    norms = grad.stats[metadata.GRAD_NORM]
    assert np.allclose(norms["Variable"].values, 4e-9)
    assert np.allclose(norms["Variable#2"].values, np.sqrt(8))
    assert len(norms["Variable"]) == len(norms["Variable#2"]) == 3


def test_renamed_paths_keep_their_leaf_and_avoid_real_paths():
    """A repeated Keras path is renamed at its layer (``bias`` stays the leaf,
    which the diagnosis reads), never onto a path that is already taken."""
    from tb_plugin import summary_args

    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        paths = summary_args.unique_paths(
            "g", ["dense/bias", "dense/bias", "dense#2/bias", "Variable", "Variable"])
    assert paths == ["dense/bias", "dense#3/bias", "dense#2/bias", "Variable", "Variable#2"]


def test_invalid_labels_are_counted_inside_tf_function(tmp_path, writer):
    @tf.function
    def record(labels, step):
        return health.prediction_distribution(
            "p", tf.one_hot([0, 1, 2, 1], 3) * 5.0, step=step, labels=labels,
            from_logits=True)

    record(tf.constant([0, 7, -1, 1]), tf.constant(1, tf.int64))
    record(tf.constant([0, 1, 2, 1]), tf.constant(2, tf.int64))
    binary = tf.function(lambda y: health.prediction_distribution(
        "b", tf.constant([0.9, 0.1, 0.8]), step=1, labels=y))
    binary(tf.constant([1.0, float("nan"), 3.0]))
    writer.flush()
    ev = read_scalars(str(tmp_path))
    tag = metadata.stat_tag("p", metadata.PRED_INVALID_LABELS)
    assert [(s, float(v)) for s, v in ev[tag]] == [(1, 2.0), (2, 0.0)]
    # The two valid rows of step 1 are both right.
    assert float(ev[metadata.stat_tag("p", metadata.PRED_ACCURACY)][0][1]) == 1.0
    assert float(ev[metadata.stat_tag("b", metadata.PRED_INVALID_LABELS)][0][1]) == 2.0
    # The diagnosis says so, once per family, from the step it began.
    from tb_plugin import diagnosis

    (run,) = diagnosis.check_logdir(str(tmp_path))["runs"]
    found = {f["evidence"]["invalid_labels"]: f for f in run["findings"]
             if f["kind"] == "invalid_labels"}
    assert set(found) == {2} and len([f for f in run["findings"]
                                      if f["kind"] == "invalid_labels"]) == 2, run
    assert all(f["severity"] == "error" and f["first_step"] == 1 for f in found.values())
