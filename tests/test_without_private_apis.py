"""Recording works when no private TensorFlow / Keras API is available.

Every function of tb_plugin.tf_internals is replaced by what it does when
the private API it reads is missing (another TensorFlow or Keras layout):
its documented fallback, or the AttributeError of the missing attribute
where it has none (the callers that treat it as an optimisation catch it).
Then a real fit of seed 000's model (ReLU on logits under
``from_logits=True``) must record the same predictions and gradients as with
the private APIs, and ``tb-health check`` must find the same problems. What
is lost: the train-mode records (without a layer's children the model is
one leaf), and gradient accumulation, whose batch counter and accumulated
gradients have no public read (batch_counter, accumulated_gradient: no
fallback).
"""


import keras
import numpy as np

from recorded_events import summary_values  # noqa: E402
from tb_plugin import diagnosis, tf_internals
from tb_plugin.callback import HealthCallback


def _missing(name):
    def fallback(*args, **kwargs):
        raise AttributeError("no private %s in this TensorFlow / Keras" % name)
    return fallback


# name -> what the function does when its private API is missing
FALLBACKS = {
    # Optimisations that return None on another TensorFlow layout; calls_with
    # and unoptimized_calls then leave the call options unchanged.
    "function_call_options": lambda **rewrite: None,
    "lean_step_options": lambda: None,
    "summary_state": lambda: None,
    "default_writer_resource": lambda: None,
    # Raises on another layout; its caller treats it as an optimisation.
    "keep_functional_ifs": _missing("Operation._set_attr"),
    # Raises for objects without Keras 3's private children; the caller
    # treats the layer as a leaf.
    "child_layers": _missing("Layer._flatten_layers"),
    "strategy_set": lambda model: False,  # no model._distribute_strategy
    "symbolic_build": lambda model, iterator: None,  # no model._symbolic_build
    # No fallback: gradient accumulation only (not used by this fit).
    "batch_counter": _missing("optimizer._iterations"),
    "accumulated_gradient": _missing("optimizer._accumulated_gradients"),
}


def test_every_tf_internals_function_has_a_fallback_here():
    public = {name for name in vars(tf_internals)
              if not name.startswith("_") and callable(getattr(tf_internals, name))
              and getattr(getattr(tf_internals, name), "__module__", None)
              == tf_internals.__name__}
    # calls_with / unoptimized_calls only use function_call_options' result.
    assert public - {"calls_with", "unoptimized_calls"} == set(FALLBACKS)


def _seed000_fit(log_dir):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((300,)),
        keras.layers.Dense(96, activation="elu", name="hidden1"),
        keras.layers.Dropout(0.2, name="dropout1"),
        keras.layers.Dense(7, activation="relu", name="logits")], name="seed000")
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x = rng.poisson(0.3, size=(512, 300)).astype(np.float32)
    y = rng.integers(0, 7, 512)
    model.fit(x, y, batch_size=32, epochs=3, validation_data=(x[:64], y[:64]), verbose=0,
              callbacks=[HealthCallback(str(log_dir), log_every_n_steps=4,
                                        report_findings=False)])


def _tags(run_dir):
    tags = {}
    for step, tag, _, _, _ in summary_values(str(run_dir)):
        tags.setdefault(tag, set()).add(step)
    return tags


def _findings(log_dir):
    (run,) = [r for r in diagnosis.check_logdir(str(log_dir))["runs"] if r["run"] == "train"]
    assert run["status"] != "no_data" and run["intact"]
    return {(f["kind"], f["layer"]) for f in run["findings"]}


def test_same_records_and_findings_with_and_without_private_apis(tmp_path, monkeypatch):
    _seed000_fit(tmp_path / "private")
    called = set()
    for name, fallback in FALLBACKS.items():
        def patched(*args, _name=name, _fallback=fallback, **kwargs):
            called.add(_name)
            return _fallback(*args, **kwargs)
        monkeypatch.setattr(tf_internals, name, patched)
    _seed000_fit(tmp_path / "fallbacks")
    # The fit went through every fallback but gradient accumulation's.
    assert called == set(FALLBACKS) - {"batch_counter", "accumulated_gradient"}, called

    private, fallbacks = (_tags(tmp_path / name / "train") for name in ("private", "fallbacks"))
    # Without child_layers, a model's public `layers` still name its Dropout.
    assert any(t.startswith("health/train_mode/seed000/dropout1") for t in private)
    assert fallbacks == private
    steps = list(range(0, 3 * 16, 4))  # 16 steps per epoch, every 4th
    assert sorted(fallbacks["health/predictions/entropy"]) == steps
    gradients = [t for t in fallbacks if t.startswith("health/gradients/")
                 and t.endswith("/logits/kernel/norm")]
    assert gradients and sorted(fallbacks[gradients[0]]) == steps
    assert (_tags(tmp_path / "fallbacks" / "validation").keys()
            == _tags(tmp_path / "private" / "validation").keys())

    found = _findings(tmp_path / "fallbacks")
    assert ("output_activation_mismatch", "seed000/logits/kernel") in found, found
    assert found == _findings(tmp_path / "private")
