"""The summary values of a run's event files, for tests that check what was
written, value by value.

A gradient record stores its per-variable series as two tensors (see
tb_plugin.metadata: ``health/<name>/variable_stats``, one row per variable,
and ``health/<name>/log10_abs``). :func:`summary_values` gives those as they
are and, besides, one value per variable and statistic under
``health/<name>/<path>/<stat>`` (row taken by the index summary written in
the same event), so that a test can name one variable's series.
"""

import glob
import json
import os

import numpy as np

from tensorboard.backend.event_processing import event_file_loader
from tensorboard.util import tensor_util

from tb_plugin import metadata


def summary_values(run_dir):
    """[(step, tag, ndarray, plugin_name, data_class)] of every summary value
    in `run_dir`'s event files, in the order written, with the per-variable
    values of each gradient record after its event's values."""
    out = []
    contents = {}  # tag -> metadata content of its first value
    for path in sorted(glob.glob(os.path.join(run_dir, "events.out.tfevents.*"))):
        for event in event_file_loader.EventFileLoader(path).Load():
            values = {}
            for v in event.summary.value:
                if v.metadata.plugin_data.plugin_name:
                    contents.setdefault(v.tag, v.metadata.plugin_data.content)
                arr = tensor_util.make_ndarray(v.tensor)
                values[v.tag] = arr
                out.append((event.step, v.tag, arr, v.metadata.plugin_data.plugin_name,
                            v.metadata.data_class))
            out += [(event.step, tag, arr, metadata.PLUGIN_NAME, None)
                    for tag, arr in _per_variable(values, contents)]
    return out


def _per_variable(values, contents):
    """(tag, value) per variable and statistic of the compact gradient
    tensors among one event's `values` ({tag: ndarray})."""
    out = []
    for tag, arr in values.items():
        name, _, suffix = tag[len(metadata.TAG_PREFIX) + 1:].rpartition("/")
        index = values.get(metadata.index_tag(name))
        if index is None or suffix not in (metadata.GRAD_VARIABLE_STATS,
                                           metadata.GRAD_LOG10_HIST):
            continue
        entries = json.loads(index.reshape(()).item())["variables"]
        fields = json.loads(contents[tag])
        for row, entry in enumerate(entries):
            if suffix == metadata.GRAD_LOG10_HIST:
                lo, hi = fields["range"]
                edges = np.linspace(lo, hi, arr.shape[1] + 1)
                hist = np.stack([edges[:-1], edges[1:], arr[row]], axis=1)
                out.append((metadata.variable_tag(name, entry["path"], suffix), hist))
                continue
            for j, stat in enumerate(fields["columns"]):
                if stat == metadata.GRAD_UPDATE_RATIO and entry.get(metadata.INDEX_NO_UPDATE):
                    continue
                out.append((metadata.variable_tag(name, entry["path"], stat), arr[row, j]))
    return out
