"""Reading TensorBoard event files robustly, and loading a log directory.

:class:`EventFile` reads one event file record by record, incrementally,
with the rules of TensorBoard's data server (the Rust loader of
``tensorboard --load_fast``): a damaged record costs only what cannot be
read and is reported as a :class:`ReadProblem`. :func:`load_logdir` loads
every run of a log directory through TensorBoard's Python loader (its
multiplexer and event accumulators) from event files read that way, and
returns a data provider over them with what could not be read.

A log directory is a local path or a URL (``gs://``, ``s3://``, any fsspec
protocol), read through TensorBoard's file system layer (see :func:`gfile`).

The records of the Health plugin are read back from such a provider by
:mod:`tb_plugin.reader`. This module imports no TensorFlow.
"""

import dataclasses
import io
import logging
import os
import sys
from typing import Dict, List

from tensorboard.data import provider as provider_lib

from tb_plugin import metadata

logger = logging.getLogger(__name__)

@dataclasses.dataclass(frozen=True)
class ReadProblem:
    """Something that kept a file or directory of a log directory from being
    read completely (or that a reader should know, such as a file cut short).

    `path` is relative to the log directory; `damaged` is True when records
    were lost or may be wrong (an unreadable file or directory, a damaged
    record), False for what a live or interrupted writer leaves (an empty
    file, a last record not written to the end).
    """

    path: str
    message: str
    damaged: bool

    def __str__(self):
        return "%s: %s" % (self.path, self.message)


@dataclasses.dataclass
class Logdir:
    """A log directory loaded by :func:`load_logdir`: a data provider over
    its runs and, per run, what could not be read (``{run: [ReadProblem]}``)."""

    provider: provider_lib.DataProvider
    experiment_id: str
    problems: Dict[str, List[ReadProblem]]


def is_url(path):
    """Whether `path` is a URL (``scheme://...``) rather than a local path."""
    return "://" in path


def gfile(url):
    """TensorBoard's file system layer for `url`: TensorFlow's ``tf.io.gfile``
    where TensorFlow is imported and has the URL's scheme (``gs://``,
    ``ram://``: what TensorBoard uses beside it), else TensorBoard's own,
    which needs no TensorFlow (``s3://`` through boto3, any fsspec protocol,
    e.g. ``gs://`` through gcsfs)."""
    tf_io = getattr(sys.modules.get("tensorflow"), "io", None)
    if tf_io is not None and url.partition("://")[0] in tf_io.gfile.get_registered_schemes():
        return tf_io.gfile
    from tensorboard.compat.tensorflow_stub.io import gfile as stub

    return stub


def _url_error(url, error):
    """An OSError naming `url` for an error of its file system layer (whose
    errors are not OSErrors: TensorFlow's, botocore's, a missing backend)."""
    return OSError("%s (%s: %s)" % (url, type(error).__name__, error))


def _read_url(url, offset):
    """The bytes of the file at `url` from `offset` on (OSError if it cannot
    be read). TensorBoard's own layer cannot seek: it fetches the whole file."""
    try:
        with gfile(url).GFile(url, "rb") as f:
            if hasattr(f, "seek"):  # TensorFlow's
                f.seek(offset)
                return f.read()
            return f.read()[offset:]
    except Exception as e:  # noqa: BLE001 - any layer's error, as an OSError
        raise _url_error(url, e) from e


RECORD_HEADER = 12  # little-endian u64 length, u32 masked CRC-32C of the length
RECORD_FOOTER = 4  # u32 masked CRC-32C of the data
# Protocol buffers are smaller than 2 GiB: a longer record is a damaged header.
_MAX_EVENT_BYTES = 2**31 - 1


class EventFile:
    """One event file, read record by record from where the last read
    stopped, with the rules of TensorBoard's data server (the Rust loader of
    ``tensorboard --load_fast``), so that both agree on what a damaged file
    holds:

    * a record whose length fails its checksum, that claims more than an
      event can hold, that is not an event or whose wall time is NaN stops
      the file: the rest is not read;
    * a record that parses but fails its data checksum is read (the data
      server does not check records that parse) and reported;
    * a last record not written to the end (cut short, or still being
      written) is left for the next read.

    TensorBoard's Python loader stops at the first record that fails either
    checksum, and raises MemoryError on a header that claims a huge length.

    With ``check_data=False`` the data checksums are not computed: the
    same events are read, a bad checksum is not reported. TensorBoard's
    CRC-32C is pure Python (~5 MB/s; 22 MB of records: ~4 s to check, 0.02
    s to read), too slow for the callback's online diagnosis, which reads
    the files it is writing at every epoch end.
    """

    def __init__(self, path, name, check_data=True):
        self.path = path
        self.name = name  # relative to the log directory, for messages
        self._check_data = check_data
        self._offset = 0  # of the next record
        self._last_step = None
        self._damage = None  # why the file was given up (a message)
        self._bad_checksums = []  # (offset, step) of records read despite their checksum
        self._note = None  # (message, damaged) about the last read only

    def events(self):
        """Yields the events written since the last call."""
        if self._damage is not None:
            return
        self._note = None
        try:
            if is_url(self.path):
                data = _read_url(self.path, self._offset)
                yield from self._read_from(io.BytesIO(data), self._offset + len(data))
                return
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                yield from self._read_from(f, os.fstat(f.fileno()).st_size)
        except OSError as e:
            self._note = ("cannot be read (%s)" % (e.strerror or e), True)

    def _read_from(self, f, size):
        """Reads from `f`, positioned at the offset of the next record, in a
        file of `size` bytes."""
        if size == 0:
            self._note = ("empty event file (no records)", False)
        yield from self._read(f, size)

    def _read(self, f, size):
        from google.protobuf.message import DecodeError
        from tensorboard.compat.proto import event_pb2
        from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c

        while True:
            start = self._offset
            header = f.read(RECORD_HEADER)
            if not header:
                return
            if len(header) < RECORD_HEADER:
                return self._cut_short(start)
            length = int.from_bytes(header[:8], "little")
            if masked_crc32c(header[:8]) != int.from_bytes(header[8:], "little"):
                return self._give_up(start, size, "the record's length fails its checksum")
            if length > _MAX_EVENT_BYTES:
                return self._give_up(start, size, "a record claims %d bytes, more than an "
                                     "event can hold" % length)
            body = f.read(length + RECORD_FOOTER)
            if len(body) < length + RECORD_FOOTER:
                return self._cut_short(start)
            data = body[:length]
            try:
                event = event_pb2.Event.FromString(data)
            except DecodeError:
                return self._give_up(start, size, "the record is not an event")
            if event.wall_time != event.wall_time:
                return self._give_up(start, size, "the event at step %d has a NaN wall "
                                     "time" % event.step)
            if self._check_data and masked_crc32c(data) != int.from_bytes(
                    body[length:], "little"):
                self._bad_checksums.append((start, event.step))
            self._offset = start + RECORD_HEADER + length + RECORD_FOOTER
            self._last_step = event.step
            yield event

    def _where(self, offset):
        after = ("after step %d" % self._last_step if self._last_step is not None
                 else "before any event")
        return "at byte %d (%s)" % (offset, after)

    def _cut_short(self, offset):
        self._note = ("ends inside a record %s: cut short, or still being written; read "
                      "up to there" % self._where(offset), False)

    def _give_up(self, offset, size, why):
        self._damage = ("damaged %s: %s; the rest of the file (%d bytes) was not read "
                        "(TensorBoard does not read past it either)"
                        % (self._where(offset), why, size - offset))

    def problems(self):
        """The file's :class:`ReadProblem` s as of the last read."""
        out = []
        if self._damage is not None:
            out.append(ReadProblem(self.name, self._damage, True))
        if self._bad_checksums:
            (offset, step), n = self._bad_checksums[0], len(self._bad_checksums)
            what = ("a record fails its checksum" if n == 1 else
                    "%d records fail their checksums, the first" % n)
            out.append(ReadProblem(self.name, "%s at byte %d (step %d): read anyway, as "
                                   "TensorBoard's data server reads records that parse; the "
                                   "values may be wrong" % (what, offset, step), True))
        if self._note is not None:
            out.append(ReadProblem(self.name, *self._note))
        return out


class _RunEvents:
    """The events of one run directory for TensorBoard's EventAccumulator (a
    replacement of its event generator): the directory's event files in name
    order, each read by :class:`EventFile`, passed through TensorBoard's
    read-time compatibility layers as its own loader does. Each ``Load()``
    yields what was written since the last one."""

    def __init__(self, directory, logdir):
        self._directory = directory
        self._logdir = logdir
        self._files = {}  # path -> (EventFile, initial metadata by tag)
        self._listing = None  # ReadProblem of the last listing, if it failed
        self._loading = None  # (file name, step) of the event being loaded
        self._failed = []  # (file name, step, error) of the events that failed to load

    def _event_files(self):
        from tensorboard.backend.event_processing import io_wrapper

        self._listing = None
        try:
            names = _listdir(self._directory)
        except OSError as e:
            self._listing = _unlistable(self._directory, self._logdir, e)
            return []
        return sorted(_join(self._directory, n) for n in names
                      if io_wrapper.IsSummaryEventsFile(n))

    def Load(self):  # noqa: N802 - the name TensorBoard's accumulator calls
        from tensorboard import data_compat
        from tensorboard import dataclass_compat

        for path in self._event_files():
            if path not in self._files:
                name = os.path.relpath(path, self._logdir)
                self._files[path] = (EventFile(path, name), {})
            event_file, initial_metadata = self._files[path]
            for event in event_file.events():
                self._loading = (event_file.name, event.step)
                yield from dataclass_compat.migrate_event(
                    data_compat.migrate_event(event), initial_metadata)
        self._loading = None

    def failed(self, error):
        """Notes that TensorBoard failed on the event being loaded, which a
        next ``Load()`` goes on after; False if no event was being loaded."""
        if self._loading is None:
            return False
        self._failed.append((*self._loading, error))
        self._loading = None
        return True

    def problems(self):
        """The run's :class:`ReadProblem` s as of the last ``Load()``."""
        out = [self._listing] if self._listing is not None else []
        for event_file, _ in self._files.values():
            out += event_file.problems()
        by_file = {}
        for name, step, error in self._failed:
            by_file.setdefault(name, []).append((step, error))
        for name, failed in sorted(by_file.items()):
            (step, error), n = failed[0], len(failed)
            what = ("the event at step %d" % step if n == 1 else
                    "%d events (the first at step %d)" % (n, step))
            out.append(ReadProblem(name, "TensorBoard cannot load %s (%s: %s); left out"
                                   % (what, type(error).__name__, error), True))
        return out


def _reload(accumulator, events):
    """Loads `events` (a :class:`_RunEvents`) into TensorBoard's
    `accumulator`; an event that TensorBoard fails on (a summary its
    compatibility layers cannot convert, a graph that does not parse) is
    left out, noted by `events`, and loading goes on after it."""
    while True:
        try:
            accumulator.Reload()
            return
        except Exception as e:  # noqa: BLE001 - one event, not the run
            if not events.failed(e):
                raise


def _unlistable(directory, logdir, error):
    return ReadProblem(os.path.relpath(directory, logdir),
                       "cannot list the directory (%s): its event files were not read"
                       % (error.strerror or error), True)


def _join(directory, name):
    return directory.rstrip("/") + "/" + name if is_url(directory) else os.path.join(
        directory, name)


def _listdir(directory):
    """The names in `directory`, a local path or a URL (OSError if it
    cannot be listed)."""
    if not is_url(directory):
        return os.listdir(directory)
    try:
        return [n.rstrip("/") for n in gfile(directory).listdir(directory)]
    except Exception as e:  # noqa: BLE001 - any layer's error, as an OSError
        raise _url_error(directory, e) from e


def _isdir(url):
    """Whether the URL `url` is a directory (OSError if that cannot be told)."""
    try:
        return gfile(url).isdir(url)
    except Exception as e:  # noqa: BLE001 - any layer's error, as an OSError
        raise _url_error(url, e) from e


def _walk_local(logdir, unlistable):
    """``(directory, file names)`` of every directory under local `logdir`,
    following links but not back up the tree."""
    seen = set()
    for directory, subdirs, files in os.walk(
            logdir, onerror=lambda e: unlistable(e.filename, e), followlinks=True):
        real = os.path.realpath(directory)
        if real in seen:  # a link back up the tree
            subdirs[:] = []
            continue
        seen.add(real)
        yield directory, files


def _walk_url(directory, unlistable):
    """``(directory, event file names)`` of every directory under the URL
    `directory`. An entry named as an event file is taken for one; any other
    is looked into only if it is a directory (one request per entry)."""
    from tensorboard.backend.event_processing import io_wrapper

    try:
        names = _listdir(directory)
        files = [n for n in names if io_wrapper.IsSummaryEventsFile(n)]
        subdirs = [n for n in names if not io_wrapper.IsSummaryEventsFile(n)
                   and _isdir(_join(directory, n))]
    except OSError as e:
        unlistable(directory, e)
        return
    yield directory, files
    for name in sorted(subdirs):
        yield from _walk_url(_join(directory, name), unlistable)


def _run_directories(logdir):
    """``({run: directory}, {run: [ReadProblem]})``: the directories under
    `logdir` (itself included, as run ``.``) that hold event files, named as
    TensorBoard names runs, and those that could not be listed."""
    from tensorboard.backend.event_processing import io_wrapper

    runs, problems = {}, {}

    def unlistable(directory, error):
        problems[os.path.relpath(directory, logdir)] = [_unlistable(directory, logdir, error)]

    walk = _walk_url if is_url(logdir) else _walk_local
    for directory, files in walk(logdir, unlistable):
        if any(io_wrapper.IsSummaryEventsFile(f) for f in files):
            runs[os.path.relpath(directory, logdir)] = directory
    return runs, problems


def require_directory(logdir):
    """Raises FileNotFoundError (naming it) unless `logdir`, a local path or
    a URL, is a directory; OSError if its file system cannot be reached."""
    if not (_isdir(logdir) if is_url(logdir) else os.path.isdir(logdir)):
        raise FileNotFoundError("no such log directory: %s" % logdir)


def load_logdir(logdir):
    """Every run of `logdir`, loaded by TensorBoard's Python loader from event
    files read robustly (see :class:`EventFile`): a damaged record, file or
    directory costs only what cannot be read, is reported (each
    :class:`ReadProblem` is also logged as a warning) and does not stop the
    other runs. `logdir` is a local path or a URL (see :func:`gfile`).
    Returns a :class:`Logdir`; raises ``FileNotFoundError`` if `logdir` is
    not a directory, ``OSError`` if its file system cannot be reached.
    """
    # Imported here: pulling in the multiplexer is the slow part of importing
    # this module and callers that only want the dataclasses should not pay.
    from tensorboard.backend.event_processing import data_ingester
    from tensorboard.backend.event_processing import data_provider
    from tensorboard.backend.event_processing import plugin_event_multiplexer

    logdir = os.path.expanduser(logdir)
    require_directory(logdir)
    multiplexer = plugin_event_multiplexer.EventMultiplexer(
        size_guidance=data_ingester.DEFAULT_SIZE_GUIDANCE,
        tensor_size_guidance=metadata.tensor_size_guidance(),
        purge_orphaned_data=True,
    )
    directories, problems = _run_directories(logdir)
    for run, directory in sorted(directories.items()):
        multiplexer.AddRun(directory, run)
        events = _RunEvents(directory, logdir)
        accumulator = multiplexer.GetAccumulator(run)
        accumulator._generator = events  # its own loader stops at the first bad record
        _reload(accumulator, events)
        problems[run] = events.problems()
    problems = {run: found for run, found in problems.items() if found}
    for run in sorted(problems):
        for problem in problems[run]:
            logger.warning("%s", problem)
    return Logdir(provider=data_provider.MultiplexerDataProvider(multiplexer, logdir),
                  experiment_id="", problems=problems)


def open_logdir(logdir):
    """``(provider, experiment_id)`` of :func:`load_logdir`: a fully loaded
    Python-loader data provider over `logdir`. Runs are named as TensorBoard
    names them (their path relative to `logdir`, e.g. ``exp1/train``).
    Raises ``FileNotFoundError`` if `logdir` is not a directory.
    """
    loaded = load_logdir(logdir)
    return loaded.provider, loaded.experiment_id
