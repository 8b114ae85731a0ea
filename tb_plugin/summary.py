"""Public recording API of tb_plugin for custom training loops (needs TensorFlow).

Use it like ``tf.summary``::

    import tensorflow as tf
    from tb_plugin import summary as health

    writer = tf.summary.create_file_writer("logs/run1/train")
    with writer.as_default():
        # Once, before the loop: what the model is (for the root-cause lint).
        health.model_manifest(model, loss_fn, optimizer)
        for step, (x, y) in enumerate(dataset):
            with tf.GradientTape() as tape:
                logits = model(x, training=True)
                loss = loss_fn(y, logits)
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            if step % 50 == 0:
                health.prediction_distribution(
                    "predictions", logits, step=step, labels=y, from_logits=True)
                health.gradient_magnitudes(
                    "gradients", grads, model.trainable_variables, step=step)

Every argument is checked before anything is written: a bad one raises a
ValueError that names it and shows what it got (see each function's
docstring for what it accepts; "manifest" is not a family name).

Functions: :func:`prediction_distribution`, :func:`gradient_magnitudes`,
:func:`model_manifest` (the manifest of a Keras model and its loss, see
:mod:`tb_plugin.manifest`), :func:`manifest` (a manifest dict as is); see
:mod:`tb_plugin.summary_v2`. :func:`train_mode_probe` and :func:`train_mode`
record what Dropout / BatchNormalization layers ran with in the training
forward pass (see :mod:`tb_plugin.train_mode`)::

    probe = health.train_mode_probe(model)
    with tf.GradientTape() as tape:
        with probe:
            logits = model(x, training=True)
        ...
    health.train_mode(probe, step=step)
"""

from tb_plugin.summary_v2 import gradient_magnitudes
from tb_plugin.summary_v2 import manifest
from tb_plugin.summary_v2 import model_manifest
from tb_plugin.summary_v2 import prediction_distribution
from tb_plugin.train_mode import train_mode
from tb_plugin.train_mode import train_mode_probe

__all__ = ["prediction_distribution", "gradient_magnitudes", "model_manifest", "manifest",
           "train_mode_probe", "train_mode"]
