"""Every private TensorFlow and Keras API that tb_plugin's recording uses.

Nothing outside this module reaches into ``tensorflow.python``, TensorFlow's
protocol buffers or a private attribute of a Keras model, optimizer or
layer. Each use is either an optimisation that falls back to TensorFlow's
default when this TensorFlow lays things out differently (the call options
of the steps that hold the recording, the summary writer's state, the
functional ``If``), or a read of state that Keras keeps private (the
optimizer's batch counter and accumulated gradients, a layer's children,
the model's symbolic build).

TensorFlow is imported only inside the functions: the module itself can be
imported without it.
"""

import contextlib


# -- tf.function call options (Grappler) ---------------------------------------


def function_call_options(**rewrite):
    """The current tf.function call options with `rewrite` (RewriterConfig
    fields of Grappler, TensorFlow's graph optimizer) set; None if this
    TensorFlow lays them out differently."""
    try:
        from tensorflow.core.protobuf import config_pb2
        from tensorflow.python.eager import context

        old = context.context().function_call_options
        config = config_pb2.ConfigProto()
        if isinstance(old.config_proto_serialized, bytes):
            config.ParseFromString(old.config_proto_serialized)
        for field, value in rewrite.items():
            setattr(config.graph_options.rewrite_options, field, value)
        return context.FunctionCallOptions(executor_type=old.executor_type,
                                           config_proto=config)
    except Exception:  # noqa: BLE001 - an optimisation only (another TF layout)
        return None


@contextlib.contextmanager
def calls_with(options):
    """tf.function calls (eager) and call ops (traced) inside use `options`
    (from function_call_options; None: unchanged)."""
    if options is None:
        yield
        return
    from tensorflow.python.eager import context

    ctx = context.context()
    old = ctx.function_call_options
    ctx.function_call_options = options
    try:
        yield
    finally:
        ctx.function_call_options = old


def unoptimized_calls():
    """The calls of tf.functions traced inside skip Grappler when the train
    step that holds them first runs.

    Every fit's train step is a new function, and Grappler optimized the
    statistics and record writes in it again each time: ~50 ms per fit on
    the benchmark's MLP, more than all the records of a default fit, for
    graphs that are already small and lean (a record costs the same
    without it). The rest of the step is optimized as usual.
    """
    return calls_with(function_call_options(disable_meta_optimizer=True))


def lean_step_options():
    """Call options for the train and test steps that hold the recording:
    Grappler without its TFG (MLIR) module pipeline and function optimizer.

    Both walk the whole function library of a step, which with the
    recording holds its statistics and write functions: 50-130 ms more in
    the first train and test calls of every fit on the benchmark's MLP
    (TF_CPP_VMODULE=meta_optimizer=1), to optimize nothing (the statistics run
    unoptimized, see unoptimized_calls; the TFG pipeline changes no node
    of Keras's own step either, and the function optimizer has no call of
    it to work on). Grappler's other passes (remapper, constant folding,
    arithmetic, layout...) still optimize the step.
    """
    try:
        from tensorflow.core.protobuf import rewriter_config_pb2
    except ImportError:  # an optimisation only (another TF layout)
        return None
    return function_call_options(
        disable_tfg_optimizer=True,
        function_optimization=rewriter_config_pb2.RewriterConfig.OFF)


# -- tf.summary's state and ops ------------------------------------------------


def summary_state():
    """tf.summary's thread-local state (the default writer, the record_if
    conditions), or None if this TensorFlow lays it out differently."""
    try:
        from tensorflow.python.ops import summary_ops_v2
    except ImportError:  # pragma: no cover - other TF layouts
        return None
    return getattr(summary_ops_v2, "_summary_state", None)


def default_writer_resource():
    """The resource handle of the default summary writer; None when there is
    none or it is not a plain resource writer (DTensor, no-op writer,
    another TF version)."""
    writer = getattr(summary_state(), "writer", None)
    if writer is None or getattr(writer, "_mesh", None) is not None:
        return None
    return getattr(writer, "_resource", None)


def keep_functional_ifs(ops):
    """Marks the ``If`` ops among `ops` to stay functional ops (run only the
    branch taken) instead of being lowered to Switch/Merge. Raises on
    another TensorFlow layout (callers treat it as an optimisation)."""
    from tensorflow.core.framework import attr_value_pb2

    for op in ops:
        if op.type in ("If", "StatelessIf"):
            op._set_attr(  # pylint: disable=protected-access
                "_lower_using_switch_merge", attr_value_pb2.AttrValue(b=False)
            )


# -- Keras's private state -----------------------------------------------------


def batch_counter(optimizer):
    """The optimizer's count of train batches (a variable); with gradient
    accumulation ``iterations`` counts updates only."""
    return optimizer._iterations


def accumulated_gradient(optimizer, variable):
    """The gradient `optimizer` accumulated so far for `variable` (gradient
    accumulation), read before it resets its accumulators."""
    return optimizer._accumulated_gradients[optimizer._get_variable_index(variable)]


def child_layers(layer):
    """The direct children of a Keras 3 layer (raises for other objects)."""
    return layer._flatten_layers(include_self=False, recursive=False)


def strategy_set(model):
    """Whether the model was compiled under an explicit distribution
    strategy (Keras then builds it symbolically itself)."""
    return getattr(model, "_distribute_strategy", None) is not None


def symbolic_build(model, iterator):
    """Keras's own symbolic build of the compiled loss and metrics from the
    first batch's element_spec (what it does under a distribution strategy),
    when they are not built yet: variables created while a step is traced
    make tf.function trace it a second time. An optimisation only."""
    try:
        spec = getattr(iterator, "element_spec", None)
        build = getattr(model, "_symbolic_build", None)
        if spec is None or build is None:
            return
        unbuilt = [
            getattr(model, attr, None) is not None
            and not getattr(model, attr).built
            for attr in ("_compile_loss", "_compile_metrics")
        ]
        if not any(unbuilt):
            return
        with model.distribute_strategy.scope():
            build(data_batch=spec)
    except Exception:  # noqa: BLE001 - an optimisation only
        pass
