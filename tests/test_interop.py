"""HealthCallback beside keras.callbacks.TensorBoard on one log_dir: a real
TensorBoard subprocess, polled while `fit` runs and after it ends, on both
loaders with default flags, shows the Keras curves and the health series
growing together; neither disappears."""

import threading
import time
import urllib.parse

import pytest

from tb_plugin import demo
from tb_plugin.callback import HealthCallback
from test_browser import TensorBoardProcess

tf, keras = demo._tf()

EPOCHS = 8


def _scalar_points(tb, run, tag):
    """Points of `tag` in `run` served by TensorBoard's Scalars plugin (0
    while the tag is not listed)."""
    tags = tb.get_json("data/plugin/scalars/tags").get(run, {})
    if tag not in tags:
        return 0
    query = urllib.parse.urlencode({"run": run, "tag": tag})
    return len(tb.get_json("data/plugin/scalars/scalars?" + query))


@pytest.mark.parametrize("flags", [[], ["--load_fast", "false"]], ids=["default", "python"])
def test_keras_tensorboard_and_health_callback_share_a_log_dir(tmp_path, flags):
    tb = TensorBoardProcess(str(tmp_path), flags + ["--reload_interval", "1"])
    try:
        keras.utils.set_random_seed(0)
        x, y = demo.blobs(n=512, classes=4, seed=0)
        model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(16, activation="relu"),
                                  keras.layers.Dense(4)])
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        slow = keras.callbacks.LambdaCallback(on_epoch_end=lambda *_: time.sleep(1.5))
        callbacks = [keras.callbacks.TensorBoard(str(tmp_path)),
                     HealthCallback(str(tmp_path), report_findings=False), slow]
        fit = threading.Thread(target=model.fit, args=(x, y), kwargs=dict(
            epochs=EPOCHS, batch_size=64, verbose=0, callbacks=callbacks))
        fit.start()
        live = set()
        while fit.is_alive():
            loss = _scalar_points(tb, "train", "epoch_loss")
            entropy = _scalar_points(tb, "train", "health/entropy")
            if 0 < loss < EPOCHS and entropy > 0:
                live.add((loss, entropy))
            time.sleep(0.5)
        fit.join()
        # Live: both series were served together while the fit ran, and grew.
        assert len({loss for loss, _ in live}) >= 2, live
        assert len({entropy for _, entropy in live}) >= 2, live
        # After the fit: every epoch's loss and every health record.
        deadline = time.time() + 60
        while (_scalar_points(tb, "train", "epoch_loss") < EPOCHS
               or _scalar_points(tb, "train", "health/entropy") < max(e for _, e in live)):
            assert time.time() < deadline, "".join(tb.output[-30:])
            time.sleep(1)
    finally:
        tb.stop()
