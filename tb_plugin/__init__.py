"""tb_plugin: catch neural networks that fail silently while they train.

Recording (needs TensorFlow)::

    import tb_plugin
    model.fit(x, y, callbacks=[tb_plugin.HealthCallback("logs/run1")])

Custom training loops use :mod:`tb_plugin.summary`. Viewing (the TensorBoard
plugin and the ``tb-health`` CLI) needs only TensorBoard.
"""

import importlib

__version__ = "0.1.0"

__all__ = ["HealthCallback", "summary", "__version__"]


def __getattr__(name):
    # The recording API imports TensorFlow; load it only when asked for, so
    # that the plugin and the CLI work on a machine without TensorFlow.
    if name == "HealthCallback":
        from tb_plugin.callback import HealthCallback

        return HealthCallback
    if name == "summary":
        return importlib.import_module("tb_plugin.summary")
    raise AttributeError("module 'tb_plugin' has no attribute %r" % name)
