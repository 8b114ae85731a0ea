"""The recording's traced functions, shared by all fits of the process.

Tracing the statistics and record writes is Python work of tens of ms, paid
once per process and key instead of once per fit: a fit's train step only
calls them, unoptimized (see tf_internals.unoptimized_calls).
"""

import collections

import tensorflow as tf

from tb_plugin import tf_internals

# Least recently used first; keys that name variables (the record writes)
# change with every model built without keras.backend.clear_session().
SHARED_FUNCTIONS = collections.OrderedDict()
SHARED_FUNCTIONS_MAX = 64


def shared_function(key, impl, args=None):
    """The tf.function of `impl` kept under `key` in SHARED_FUNCTIONS, as a
    callable that calls it unoptimized (see tf_internals.unoptimized_calls).
    With `args`, traced at once for them with their batch dimension left
    open (the last, smaller batch of an epoch then needs no trace of its
    own)."""
    fn = SHARED_FUNCTIONS.get(key)
    if fn is None:
        fn = tf.function(impl, autograph=False)
        if args is not None:
            fn.get_concrete_function(*[
                tf.TensorSpec([None] + a.shape.as_list()[1:] if a.shape.rank else [], a.dtype)
                for a in args])
        SHARED_FUNCTIONS[key] = fn
        while len(SHARED_FUNCTIONS) > SHARED_FUNCTIONS_MAX:
            SHARED_FUNCTIONS.popitem(last=False)
    else:
        SHARED_FUNCTIONS.move_to_end(key)

    def call(*call_args):
        with tf_internals.unoptimized_calls():
            return fn(*call_args)

    return call
