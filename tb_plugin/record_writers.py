"""Where HealthCallback's records go, and whether they got there.

One summary writer per run of the log directory (``train``, created at the
start of fit; ``validation``, at the first validation record), flushed at
epoch ends; the event file each writer created (the online diagnosis reads
just those); and a check, at epoch ends and at the end of fit, that every
record given to a writer reached its event file (TensorFlow's writer may
drop records without an error: a full disk, a file-size limit, a log_dir
removed or replaced).

Under a multi-worker strategy only the chief writes to the log directory:
the other workers compute the same (all-reduced) records, as they must run
the same collectives, into a temporary directory removed at the end of fit,
as tf.keras's TensorBoard callback does.
"""

import collections
import contextlib
import glob
import os
import shutil
import struct
import tempfile

import tensorflow as tf

from tb_plugin import event_files
from tb_plugin import summary_args
from tb_plugin import summary_writes


def cluster_role(resolver):
    """(whether this process is the chief, whether the fit has several
    workers) from a strategy's cluster resolver (``strategy.cluster_resolver``,
    None outside a cluster), as tf.keras's distributed_file_utils decides:
    the chief is task "chief", or worker 0 when the cluster has no chief."""
    task_type = getattr(resolver, "task_type", None)
    if task_type is None:
        return True, False
    cluster = resolver.cluster_spec().as_dict()
    tasks = sum(len(v) if isinstance(v, (list, dict)) else 1 for v in cluster.values())
    chief = task_type == "chief" or (
        task_type == "worker" and resolver.task_id == 0 and "chief" not in cluster)
    return chief, tasks > 1


class RecordWriters:
    """The writers of one fit into `log_dir` (created if needed), or, when
    not `chief`, into a temporary directory removed by close; `warn(key,
    message)` says what is lost, once per key."""

    def __init__(self, log_dir, warn, chief=True):
        self.temporary = None if chief else tempfile.mkdtemp(prefix="tb_plugin_worker_")
        log_dir = log_dir if chief else self.temporary
        self.log_dir = log_dir
        self._warn = warn
        if event_files.is_url(log_dir):  # gs://, ram://: TensorFlow's file systems
            tf.io.gfile.makedirs(log_dir)
        else:
            os.makedirs(log_dir, exist_ok=True)
        self.event_files = {}  # run -> its event file, or the run directory
        self._on_disk = {}  # run -> EventFileCheck
        self.writes = collections.Counter()  # run -> records written eagerly
        self.lost = set()  # runs whose loss was reported
        self.validation = None
        self.train = self._create("train")
        # Train records written by the train steps (created eagerly: a
        # variable created while a step is traced makes tf.function trace
        # the step again).
        self.graph_writes = tf.Variable(
            0, dtype=tf.int64, trainable=False, name="health_train_writes")

    def _create(self, run):
        """A file writer for run `run`; remembers the event file it created
        (the online diagnosis reads just that file; check counts its
        records, in a local log_dir)."""
        path = os.path.join(self.log_dir, run)
        url = event_files.is_url(path)
        find = tf.io.gfile.glob if url else glob.glob
        pattern = os.path.join(path if url else glob.escape(path), "*tfevents*")
        before = set(find(pattern))
        writer = tf.summary.create_file_writer(path)
        new = sorted(set(find(pattern)) - before)
        # One new file: ours. Otherwise (another writer created one at the
        # same moment) fall back to reading the directory.
        self.event_files[run] = new[0] if len(new) == 1 else path
        if len(new) == 1 and not url:
            self._on_disk[run] = EventFileCheck(new[0])
        return writer

    def validation_writer(self):
        if self.validation is None:
            self.validation = self._create("validation")
        return self.validation

    @contextlib.contextmanager
    def train_scope(self):
        """Where the train step's records are written: the train writer,
        always recording."""
        with summary_writes.writer_scope(self.train), tf.summary.record_if(True):
            yield

    def count_train_write(self, written):
        """Counts a train record once its write (`written`: the write's
        result) has run: in a step's graph, each time the step writes it
        (see check). Not under a multi-replica strategy."""
        if self.graph_writes is None or summary_writes.replica_context() is not None:
            return
        with tf.control_dependencies([written]):
            self.graph_writes.assign_add(1)

    def flush(self):
        for run, w in (("train", self.train), ("validation", self.validation)):
            if w is None:
                continue
            try:
                w.flush()
            except Exception as e:  # noqa: BLE001 - never break training
                self._warn(("flush", run), "%s records may be lost: could not flush them "
                           "(%s: %s)" % (run, type(e).__name__, summary_args.short(str(e), 300)))

    def check(self, step_now):
        """Warns once per run when records given to its writer are not in
        its event file (`step_now()`: the fit's step, for the message)."""
        for run, check in self._on_disk.items():
            if run in self.lost:
                continue
            written = self.writes[run]
            if run == "train" and self.graph_writes is not None:
                written += int(self.graph_writes.numpy())
            problem = check.problem(written)
            if problem is None:
                continue
            self.lost.add(run)
            self._warn(("lost", check.path), "%s records lost: %s; %s (is the disk full, or the "
                       "log_dir gone?)" % (run, problem, self.on_disk_until(run, step_now())))

    def on_disk_until(self, run, step):
        """Where the records of `run` on disk end, for a warning."""
        check = self._on_disk.get(run)
        last = None if check is None else check.last_step()
        where = "" if last is None else "the last one on disk is from step %d, " % last
        return "%sthe fit is at step %s" % (where, step)

    def close(self):
        for w in (self.train, self.validation):
            if w is not None:
                try:
                    w.close()
                except Exception:  # noqa: BLE001
                    pass
        self.train = self.validation = None
        self.graph_writes = None
        if self.temporary is not None:
            shutil.rmtree(self.temporary, ignore_errors=True)


class EventFileCheck:
    """Whether the records given to a writer reached its event file: counts
    the file's complete records, reading their length headers only, from
    where the previous count stopped."""

    _LENGTH = struct.Struct("<Q")

    def __init__(self, path):
        self.path = path
        self._offset = 0
        self._last = None  # offset of the last complete record
        self._found = 0
        self._scan()
        self._base = self._found  # the file's own first record

    def problem(self, written):
        """What is wrong given `written` records since the file was created
        (and flushed), or None."""
        try:
            cut = self._scan()
        except OSError as e:
            return "%s cannot be read any more (%s)" % (self.path, e.strerror or e)
        found = self._found - self._base
        if cut:
            return ("%s ends with a cut record (%d of the %d records written are in it)"
                    % (self.path, found, written))
        if found < written:
            return "%d of the %d records written are not in %s" % (
                written - found, written, self.path)
        return None

    def _scan(self):
        """Counts the complete records appended; whether a cut one follows."""
        header, footer = event_files.RECORD_HEADER, event_files.RECORD_FOOTER
        with open(self.path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            while self._offset + header <= size:
                f.seek(self._offset)
                (length,) = self._LENGTH.unpack(f.read(8))
                end = self._offset + header + length + footer
                if end > size:
                    break
                self._last, self._offset, self._found = self._offset, end, self._found + 1
        return self._offset < size

    def last_step(self):
        """The step of the file's last complete record (None: none, or the
        file cannot be read)."""
        from tensorboard.compat.proto import event_pb2

        try:
            self._scan()
            if self._last is None:
                return None
            with open(self.path, "rb") as f:
                f.seek(self._last)
                (length,) = self._LENGTH.unpack(f.read(8))
                f.seek(self._last + event_files.RECORD_HEADER)
                return event_pb2.Event.FromString(f.read(length)).step
        except Exception:  # noqa: BLE001 - only for a message
            return None
