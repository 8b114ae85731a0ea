"""Damaged logs through `tb-health check` and both TensorBoard loaders (issue 18).

Every log directory here is built from runs recorded for real (the demo
scenarios of tb_plugin.demo, trained at most once per session by the
`demo_logs` fixture) and then damaged on disk the way full disks, killed
writers, bit flips, permissions and hostile users damage them: a record
header claiming 2**40 bytes, a checksum error mid-file, a record that is not
an event, a file cut short, empty and garbage event files, unreadable files
and directories, steps that go back, NaN/Inf values, zero-count histograms,
bad metadata, bad index fields, deep manifests.

"Both loaders": what `tb-health check` reads (reader.load_logdir) is compared
with TensorBoard's data server (the Rust loader of `--load_fast`, read
through its gRPC provider, as test_loaders.py starts it) and, where a file
itself is intact, with TensorBoard's Python loader (`--load_fast=false`).
"""

import glob
import json
import logging
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
import pytest

from tensorboard.compat.proto import event_pb2
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c

from tb_plugin import cli
from tb_plugin import diagnosis
from tb_plugin import metadata
from tb_plugin import reader

SICK = "seed000_relu_logits"  # train: collapse, ties, dead logits (errors)
HEALTHY = "seed000_fixed"
HUGE = 2**40
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------------------------------
# Event files, record by record


def event_file(run_dir):
    (path,) = glob.glob(os.path.join(str(run_dir), "*tfevents*"))
    return path


def records(path):
    """[(offset, payload)] of an intact event file."""
    with open(path, "rb") as f:
        data = f.read()
    offset, out = 0, []
    while offset < len(data):
        (length,) = struct.unpack("<Q", data[offset:offset + 8])
        out.append((offset, data[offset + 12:offset + 12 + length]))
        offset += 16 + length
    return out


def frame(payload):
    """`payload` as a record with valid checksums."""
    head = struct.pack("<Q", len(payload))
    return (head + struct.pack("<I", masked_crc32c(head)) + payload
            + struct.pack("<I", masked_crc32c(payload)))


def rewrite(run_dir, edit):
    """Writes the run's events back through ``edit(event) -> [events]``."""
    path = event_file(run_dir)
    events = [event_pb2.Event.FromString(p) for _, p in records(path)]
    with open(path, "wb") as f:
        f.write(b"".join(frame(e.SerializeToString()) for ev in events for e in edit(ev)))


def edit_values(edit):
    """An `edit` for rewrite() that calls ``edit(value)`` on every summary value."""
    def go(event):
        for value in event.summary.value:
            edit(value)
        return [event]
    return go


def middle(run_dir):
    """(path, offset of the middle record, last step before it)."""
    path = event_file(run_dir)
    recs = records(path)
    i = len(recs) // 2
    return path, recs[i][0], event_pb2.Event.FromString(recs[i - 1][1]).step


def patch(path, offset, data):
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def flip_data_checksum(run_dir):
    """The middle record's data checksum is wrong; the record still parses."""
    path, offset, _ = middle(run_dir)
    (length,) = struct.unpack("<Q", open(path, "rb").read()[offset:offset + 8])
    patch(path, offset + 12 + length, b"\0\0\0\0")
    return path, offset


def huge_length(run_dir):
    """The middle record's header claims 2**40 bytes, with a valid length checksum."""
    path, offset, step = middle(run_dir)
    head = struct.pack("<Q", HUGE)
    patch(path, offset, head + struct.pack("<I", masked_crc32c(head)))
    return path, offset, step


def bad_length_checksum(run_dir):
    path, offset, step = middle(run_dir)
    patch(path, offset + 8, b"\0\0\0\0")
    return path, offset, step


def not_an_event(run_dir):
    """The middle record's data starts with an invalid protobuf wire type."""
    path, offset, step = middle(run_dir)
    patch(path, offset + 12, b"\x07")
    return path, offset, step


def cut_short(run_dir):
    path, offset, step = middle(run_dir)
    os.truncate(path, offset + 100)
    return path, offset, step


# ---------------------------------------------------------------------------
# Log directories, the CLI and the loaders


class Logs:
    """Copies of recorded demo runs under a scratch directory that an
    unprivileged user can traverse (pytest's own tmp dirs are private to
    their owner)."""

    def __init__(self, demo_logs):
        self._demo_logs = demo_logs
        self.root = tempfile.mkdtemp(prefix="tb-health-damaged-")
        os.chmod(self.root, 0o755)

    def logdir(self, name):
        path = os.path.join(self.root, name)
        os.makedirs(path)
        return path

    def copy(self, scenario, logdir, name, splits=("train", "validation")):
        """Copies `scenario`'s runs into `logdir`/`name`; returns that directory."""
        src = str(self._demo_logs(scenario))
        for split in splits:
            shutil.copytree(os.path.join(src, split), os.path.join(logdir, name, split))
        return os.path.join(logdir, name)

    def remove(self):
        for directory, subdirs, files in os.walk(self.root):
            for name in subdirs + files:
                os.chmod(os.path.join(directory, name), 0o755, follow_symlinks=False)
        shutil.rmtree(self.root)


@pytest.fixture(scope="module")
def logs(demo_logs):
    made = Logs(demo_logs)
    yield made
    made.remove()


def strict_json(text):
    def reject(name):
        raise AssertionError("bare %s in JSON output" % name)

    return json.loads(text, parse_constant=reject)


def check(capsys, logdir, *args):
    """`tb-health check LOGDIR --json ARGS` in this process: (exit status,
    {run: entry}, stderr lines)."""
    logger = logging.getLogger("tb_plugin")
    saved = logger.handlers[:], logger.level, logger.propagate
    logger.handlers.clear()  # main() adds its stderr handler: this test's capture
    try:
        code = cli.main(["check", str(logdir), "--json", *args])
    finally:
        logger.handlers[:], logger.level, logger.propagate = saved
    out = capsys.readouterr()
    doc = strict_json(out.out)
    return code, {r["run"]: r for r in doc["runs"]}, out.err.splitlines()


def unprivileged():
    """The command prefix that runs a command that `chmod 000` stops: none
    when this process is not root; when it is, setpriv keeps root but drops
    the capabilities that bypass file permissions (another user could not
    reach a checkout in a private directory, e.g. one made by mktemp -d)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: chmod 000 cannot stop this process")
    return [setpriv, "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search"]


def check_as_user(logdir, *args):
    """`tb-health check LOGDIR --json ARGS` in a process that permissions
    stop: (exit status, {run: entry}, stderr lines)."""
    out = subprocess.run(
        unprivileged() + [sys.executable, "-m", "tb_plugin.cli", "check", str(logdir),
                          "--json", *args],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    doc = strict_json(out.stdout)
    return out.returncode, {r["run"]: r for r in doc["runs"]}, out.stderr.splitlines()


def view(provider, eid=""):
    """{run: {"status", "kinds" (besides mixed_fits), "steps" {series: steps}}
    or {"error"}} of the health runs a provider serves, read and diagnosed as
    the Health tab does."""
    return {run: _view_run(provider, eid, run) for run in reader.health_runs(provider, None, eid)}


def _view_run(provider, eid, run):
    try:
        records_ = diagnosis.read_for_diagnosis(provider, None, eid, run)
        findings = diagnosis.diagnose(records_)
    except Exception as e:  # noqa: BLE001 - the tests compare what each reader makes of it
        return {"error": repr(e)}
    steps = {"%s/%s" % (name, stat): s.steps.tolist()
             for name, pred in records_.predictions.items() for stat, s in pred.scalars.items()}
    steps.update({"%s/%s/%s" % (name, path, stat): s.steps.tolist()
                  for name, grad in records_.gradients.items()
                  for stat, per_var in grad.stats.items() for path, s in per_var.items()})
    return {
        "status": diagnosis.run_status(records_, findings),
        "kinds": sorted({f.kind for f in findings if f.severity != "info"}
                        - {diagnosis.KIND_MIXED_FITS}),
        "steps": steps,
    }


def python_loader(logdir):
    """TensorBoard's own Python loader over `logdir` (``--load_fast=false``)."""
    from tensorboard.backend.event_processing import data_ingester
    from tensorboard.backend.event_processing import data_provider
    from tensorboard.backend.event_processing import plugin_event_multiplexer

    # The retention `tensorboard --logdir` has with the Health plugin installed.
    multiplexer = plugin_event_multiplexer.EventMultiplexer(
        size_guidance=data_ingester.DEFAULT_SIZE_GUIDANCE,
        tensor_size_guidance=metadata.tensor_size_guidance())
    multiplexer.AddRunsFromDirectory(logdir)
    multiplexer.Reload()
    return data_provider.MultiplexerDataProvider(multiplexer, logdir)


def data_server_view(logdir, runs):
    """view() of TensorBoard's data server once it has loaded `runs` of `logdir`."""
    from tensorboard import context
    from tensorboard.data import server_ingester
    from tensorboard.util import grpc_util

    ingester = server_ingester.SubprocessServerDataIngester(
        server_binary=server_ingester.get_server_binary(), logdir=logdir, reload_interval=0,
        channel_creds_type=grpc_util.ChannelCredsType.LOCAL,
        samples_per_plugin={metadata.PLUGIN_NAME: metadata.SAMPLES_KEPT})
    ingester.start()
    try:
        provider, ctx = ingester.data_provider, context.RequestContext()
        seen, deadline = None, time.time() + 120
        while time.time() < deadline:  # the server loads asynchronously
            listing = provider.list_scalars(ctx, experiment_id="",
                                            plugin_name=metadata.PLUGIN_NAME)
            now = {run: sorted((t, s.max_step) for t, s in tags.items())
                   for run, tags in listing.items()}
            if set(runs) <= set(now) and now == seen:
                break
            seen = now
            time.sleep(1)
        return view(provider)
    finally:
        ingester._stdin_handle.close()  # the server exits when its stdin closes


# ---------------------------------------------------------------------------
# One log directory of damaged copies of the sick train run, read once by
# tb-health check's reader, the data server and TensorBoard's Python loader.


def _steps_back(event):
    """Steps 50 down to -49."""
    event.step = 50 - event.step
    return [event]


def _twice(event):
    return [event, event]


def _index_field(tag, field, value):
    def edit(v):
        if v.tag == tag:
            index = json.loads(v.tensor.string_val[0])
            index[field] = value
            v.tensor.string_val[0] = json.dumps(index).encode()
    return edit_values(edit)


def _string_value(tag, text=b"oops"):
    def edit(v):
        if v.tag == tag:
            v.tensor.Clear()
            v.tensor.dtype = 7  # DT_STRING
            v.tensor.string_val.append(text)
    return edit_values(edit)


def _vector_value(tag):
    def edit(v):
        if v.tag == tag:
            v.tensor.tensor_shape.dim.add(size=2)
            v.tensor.tensor_content = v.tensor.tensor_content * 2
    return edit_values(edit)


def _manifest_depth(depth):
    def edit(v):
        if v.tag == "health/manifest":
            v.tensor.string_val[0] = ('{"a": %s%s}' % ("[" * depth, "]" * depth)).encode()
    return edit_values(edit)


def _index_text(tag, text):
    def edit(v):
        if v.tag == tag:
            v.tensor.string_val[0] = text
    return edit_values(edit)


def _nonfinite(v):
    """NaN in every gradient norm, Inf in every entropy, both in histogram
    counts and edges."""
    content = v.tensor.tensor_content
    if len(content) == 4 and v.tag.endswith("/entropy"):
        v.tensor.tensor_content = struct.pack("<f", np.inf)
    elif v.tag.endswith("/" + metadata.GRAD_VARIABLE_STATS):
        a = np.frombuffer(content, "<f4").copy().reshape(-1, len(metadata.GRADIENT_VARIABLE_STATS))
        a[:, metadata.GRADIENT_VARIABLE_STATS.index(metadata.GRAD_NORM)] = np.nan
        v.tensor.tensor_content = a.tobytes()
    elif v.tensor.dtype in (1, 2) and content and v.tensor.tensor_shape.dim:
        a = np.frombuffer(content, "<f8" if v.tensor.dtype == 2 else "<f4").copy()
        a[::7], a[1::11] = np.nan, np.inf
        v.tensor.tensor_content = a.tobytes()


def _zero_counts(v):
    if v.tensor.dtype == 2 and v.tensor.tensor_content:
        a = np.frombuffer(v.tensor.tensor_content, "<f8").copy().reshape(-1, 3)
        a[:, 2] = 0
        v.tensor.tensor_content = a.tobytes()
    elif v.tag.endswith("/" + metadata.GRAD_LOG10_HIST):  # [variables, bins] counts
        v.tensor.tensor_content = bytes(len(v.tensor.tensor_content))


def _bad_metadata(v):
    """The first record of each predictions statistic: garbage plugin content
    and a data class that is not a scalar's or a tensor's."""
    if v.HasField("metadata") and v.tag.startswith("health/predictions/"):
        v.metadata.plugin_data.content = b"\xff\xfe garbage"
        v.metadata.data_class = 3  # DATA_CLASS_BLOB_SEQUENCE


def _append_second_fit(run_dir):
    """The run's records written again after them, steps from 0 again: a
    second fit of a fresh model into the same log_dir."""
    path = event_file(run_dir)
    again = b"".join(frame(p) for _, p in records(path)[1:])
    with open(path, "ab") as f:
        f.write(again)


# name -> damage of a copy of the sick train run, which becomes run
# "<name>/train". The first four damage the file itself: TensorBoard's Python
# loader reads less of them than the data server, and is not compared.
DAMAGES = {
    "checksum": flip_data_checksum,
    "length_checksum": bad_length_checksum,
    "not_an_event": not_an_event,
    "cut_short": cut_short,
    "steps_back": lambda d: rewrite(d, _steps_back),
    "steps_twice": lambda d: rewrite(d, _twice),
    "two_fits": _append_second_fit,
    "num_classes_inf": lambda d: rewrite(d, _index_field(
        "health/predictions", "num_classes", float("inf"))),
    "string_scalar": lambda d: rewrite(d, _string_value("health/predictions/entropy")),
    "vector_scalar": lambda d: rewrite(d, _vector_value("health/predictions/entropy")),
    "string_histogram": lambda d: rewrite(
        d, _string_value("health/predictions/predicted_classes")),
    "index_not_json": lambda d: rewrite(d, _index_text("health/gradients", b"{not json")),
    "manifest_5000_deep": lambda d: rewrite(d, _manifest_depth(5000)),
    "nonfinite": lambda d: rewrite(d, edit_values(_nonfinite)),
    "zero_counts": lambda d: rewrite(d, edit_values(_zero_counts)),
    "bad_metadata": lambda d: rewrite(d, edit_values(_bad_metadata)),
}


class Damaged:
    """The shared damaged log directory and what each reader makes of it."""

    def __init__(self, logs):
        self.logdir = logs.logdir("shared")
        self.where = {}  # name -> what the damage returned
        for name, damage in DAMAGES.items():
            run_dir = os.path.join(logs.copy(SICK, self.logdir, name, ("train",)), "train")
            self.where[name] = damage(run_dir)
        runs = ["%s/train" % name for name in self.where]
        self.check = {r["run"]: r for r in diagnosis.check_logdir(self.logdir)["runs"]}
        self.ours = view(*reader.open_logdir(self.logdir))
        self.data_server = data_server_view(self.logdir, runs)
        self.python = view(python_loader(self.logdir))


@pytest.fixture(scope="module")
def damaged(logs):
    return Damaged(logs)


@pytest.fixture(scope="module")
def sick(demo_logs):
    """view() of the undamaged sick train run."""
    return view(*reader.open_logdir(str(demo_logs(SICK))))["train"]


def warnings_about(entry, text):
    return [w for w in entry["warnings"] if text in w]


# ---------------------------------------------------------------------------
# Tests


def test_huge_record_length_costs_only_the_rest_of_its_file(logs, capsys):
    # A header claiming 2**40 bytes (valid length checksum) made TensorBoard's
    # Python loader raise MemoryError: no run was diagnosed, exit status 1.
    logdir = logs.logdir("huge")
    logs.copy(HEALTHY, logdir, "intact")
    path, offset, step = huge_length(os.path.join(logs.copy(HEALTHY, logdir, "corrupt"), "train"))
    code, runs, err = check(capsys, logdir)
    assert code == cli.EXIT_INCOMPLETE == 4
    assert sorted(runs) == ["corrupt/train", "corrupt/validation", "intact/train",
                            "intact/validation"]
    assert all(r["status"] == "healthy" for r in runs.values())
    corrupt = runs["corrupt/train"]
    assert corrupt["intact"] is False
    (warning,) = corrupt["warnings"]
    assert warning.startswith(os.path.relpath(path, logdir) + ": damaged at byte %d (after step %d)"
                              % (offset, step))
    assert "claims %d bytes" % HUGE in warning and "the rest of the file" in warning
    others = [r for run, r in runs.items() if run != "corrupt/train"]
    assert all(r["intact"] and not r["warnings"] for r in others)
    assert all(line.startswith("tb-health: ") for line in err), err
    assert any(warning in line for line in err)
    assert "corrupt/train" in err[-1] and "could not be read intact" in err[-1]


def test_mixed_logdir_diagnoses_the_readable_runs_and_names_the_others(logs):
    # The "done when" of issue 18: a corrupt-length run, an unreadable run
    # directory (and an unreadable event file), a mid-file checksum error,
    # a healthy and a sick run, read by a user whom permissions stop. Today's
    # main stopped at the unreadable directory (exit 2, nothing diagnosed).
    logdir = logs.logdir("mixed")
    logs.copy(HEALTHY, logdir, "healthy")
    logs.copy(SICK, logdir, "sick")
    huge_length(os.path.join(logs.copy(HEALTHY, logdir, "corrupt"), "train"))
    crc_path, crc_offset = flip_data_checksum(os.path.join(logs.copy(SICK, logdir, "crc"), "train"))
    os.chmod(os.path.join(logs.copy(HEALTHY, logdir, "locked_dir"), "train"), 0)
    locked_file = event_file(os.path.join(logs.copy(HEALTHY, logdir, "locked_file"), "train"))
    os.chmod(locked_file, 0)

    code, runs, err = check_as_user(logdir)
    assert code == cli.EXIT_ERRORS, err  # the sick runs' errors win over 4
    for run in ("healthy/train", "healthy/validation", "corrupt/validation",
                "locked_dir/validation", "locked_file/validation"):
        assert runs[run]["status"] == "healthy" and runs[run]["intact"], runs[run]
    assert runs["sick/train"]["status"] == "unhealthy" and runs["sick/train"]["intact"]
    assert runs["corrupt/train"]["status"] == "healthy" and not runs["corrupt/train"]["intact"]
    crc = runs["crc/train"]
    kinds = {run: {f["kind"] for f in runs[run]["findings"]} for run in runs}
    assert kinds["crc/train"] == kinds["sick/train"]
    assert not crc["intact"]
    assert warnings_about(crc, "fails its checksum at byte %d" % crc_offset)
    for run, why in [("locked_dir/train", "cannot list the directory (Permission denied)"),
                     ("locked_file/train", "cannot be read (Permission denied)")]:
        assert runs[run]["status"] == "unreadable" and not runs[run]["intact"]
        assert runs[run]["findings"] == [] and warnings_about(runs[run], why), runs[run]
    assert warnings_about(runs["locked_file/train"], os.path.relpath(locked_file, logdir))
    assert all(line.startswith("tb-health: ") for line in err), err
    for run in ("corrupt/train", "crc/train", "locked_dir/train", "locked_file/train"):
        assert run in err[-1]

    # Without the sick runs: no error finding, so the documented status 4.
    code, runs, err = check_as_user(logdir, "--run", "^(healthy|corrupt|locked_)")
    assert code == cli.EXIT_INCOMPLETE, err
    assert len(runs) == 8 and "could not be read intact" in err[-1]


def test_mid_file_checksum_error_reads_on_like_the_data_server(damaged, sick):
    # TensorBoard's Python loader stopped at the record (steps 0-49 of 0-99,
    # no prediction_collapse); the data server reads past it, and so do we.
    path, offset = damaged.where["checksum"]
    entry = damaged.check["checksum/train"]
    assert damaged.ours["checksum/train"] == damaged.data_server["checksum/train"] == sick
    assert "prediction_collapse" in {f["kind"] for f in entry["findings"]}
    (warning,) = entry["warnings"]
    assert warning.startswith(os.path.relpath(path, damaged.logdir) + ": a record fails "
                              "its checksum at byte %d (step " % offset)
    assert entry["intact"] is False


@pytest.mark.parametrize("name,why", [
    ("length_checksum", "the record's length fails its checksum"),
    ("not_an_event", "the record is not an event"),
])
def test_damage_that_ends_a_file_ends_it_for_both_loaders(damaged, name, why):
    path, offset, step = damaged.where[name]
    run = "%s/train" % name
    ours = damaged.ours[run]
    assert ours == damaged.data_server[run]
    assert max(max(s) for s in ours["steps"].values()) == step
    (warning,) = damaged.check[run]["warnings"]
    assert warning == ("%s: damaged at byte %d (after step %d): %s; the rest of the file "
                       "(%d bytes) was not read (TensorBoard does not read past it either)"
                       % (os.path.relpath(path, damaged.logdir), offset, step, why,
                          os.path.getsize(path) - offset))
    assert damaged.check[run]["intact"] is False


def test_a_file_cut_short_is_read_up_to_the_cut_with_a_warning(damaged):
    path, offset, step = damaged.where["cut_short"]
    entry = damaged.check["cut_short/train"]
    assert damaged.ours["cut_short/train"] == damaged.data_server["cut_short/train"]
    assert max(max(s) for s in damaged.ours["cut_short/train"]["steps"].values()) == step
    assert entry["warnings"] == ["%s: ends inside a record at byte %d (after step %d): cut "
                                 "short, or still being written; read up to there"
                                 % (os.path.relpath(path, damaged.logdir), offset, step)]
    assert entry["intact"] is True  # what a live writer leaves: no exit status 4


@pytest.mark.parametrize("name", ["steps_back", "steps_twice", "two_fits"])
def test_steps_that_go_back_read_the_same_on_every_loader(damaged, name):
    # The data server keeps, per series, the latest record at a step and drops
    # the later steps a record goes back over; TensorBoard's Python loader
    # keeps every record. The reader applies the data server's rule to both.
    run = "%s/train" % name
    assert damaged.ours[run] == damaged.data_server[run] == damaged.python[run]
    kinds = {f["kind"] for f in damaged.check[run]["findings"]}
    went_back = name in ("steps_back", "two_fits")
    assert (diagnosis.KIND_MIXED_FITS in kinds) == went_back
    steps = damaged.ours[run]["steps"]["predictions/entropy"]
    assert steps == sorted(set(steps))
    assert steps[0] == (-49 if name == "steps_back" else 0)


@pytest.mark.parametrize("name,tag,kept", [
    ("num_classes_inf", "health/predictions: num_classes inf is not a class count",
     "dead_units"),
    ("string_scalar", "health/predictions/entropy: not a number in 100 records (steps 0-99)",
     "tied_predictions"),
    ("vector_scalar", "health/predictions/entropy: cannot be read", "dead_units"),
    ("string_histogram", "health/predictions/predicted_classes: not a histogram in 100 "
     "records (steps 0-99)", "prediction_collapse"),
    ("index_not_json", "unreadable health summary health/gradients in 10 records",
     "prediction_collapse"),
    ("manifest_5000_deep", "unreadable health summary health/manifest at step 0: nested "
     "too deeply", "dead_units"),
])
def test_one_bad_summary_costs_only_itself(damaged, name, tag, kept):
    # Each of these hid the whole run as no_data (or repeated one warning per
    # record); now the summary is left out with one warning, the rest is
    # diagnosed, and both loaders agree.
    run = "%s/train" % name
    entry = damaged.check[run]
    assert entry["status"] == "unhealthy" and entry["intact"]
    assert kept in {f["kind"] for f in entry["findings"]}
    assert [w for w in entry["warnings"] if tag in w] == entry["warnings"], entry["warnings"]
    assert len(entry["warnings"]) == 1
    assert damaged.ours[run] == damaged.data_server[run] == damaged.python[run]


def test_nonfinite_values_zero_counts_and_bad_metadata(damaged, logs, capsys):
    for name in ("nonfinite", "zero_counts", "bad_metadata"):
        run = "%s/train" % name
        assert damaged.ours[run] == damaged.data_server[run] == damaged.python[run], name
        assert damaged.check[run]["status"] == "unhealthy"
    assert "nonfinite" in {f["kind"] for f in damaged.check["nonfinite/train"]["findings"]}
    assert damaged.check["zero_counts/train"]["warnings"] == []
    # The predictions' statistics are not scalars any more: the family is empty.
    assert damaged.check["bad_metadata/train"]["warnings"] == [
        "no data points in the record family 'predictions' that the run's health index lists"]
    # NaN arithmetic in the rules printed numpy RuntimeWarnings on stderr.
    logdir = logs.logdir("nonfinite")
    rewrite(os.path.join(logs.copy(SICK, logdir, "run", ("train",)), "train"),
            edit_values(_nonfinite))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, runs, err = check(capsys, logdir)
    assert code == cli.EXIT_ERRORS and err == [] and [str(w.message) for w in caught] == []


def _events_tensorboard_fails_on(event):
    """Before step 50's records: a legacy histogram whose bucket counts and
    limits disagree (TensorBoard's compatibility layer cannot convert it) and
    a meta graph that does not parse (its accumulator cannot load it)."""
    if event.step != 50 or not event.summary.value or event.summary.value[0].tag != \
            "health/predictions":
        return [event]
    histogram = event_pb2.Event(step=50, wall_time=event.wall_time)
    value = histogram.summary.value.add(tag="legacy/histogram")
    value.histo.bucket_limit.extend([0.5])
    value.histo.bucket.extend([1, 2, 3])
    graph = event_pb2.Event(step=50, wall_time=event.wall_time, meta_graph_def=b"\x07 garbage")
    return [histogram, graph, event]


def test_events_tensorboard_fails_on_cost_only_themselves(logs, capsys, demo_logs):
    # TensorBoard's Python loader raises on either (its reload stops; the
    # CLI printed a traceback).
    logdir = logs.logdir("unloadable")
    rewrite(os.path.join(logs.copy(HEALTHY, logdir, "run", ("train",)), "train"),
            _events_tensorboard_fails_on)
    with pytest.raises(ValueError):
        python_loader(logdir)
    code, runs, err = check(capsys, logdir)
    assert code == cli.EXIT_INCOMPLETE
    (warning,) = runs["run/train"]["warnings"]
    assert "TensorBoard cannot load 2 events (the first at step 50)" in warning
    assert view(*reader.open_logdir(logdir))["run/train"] == \
        view(*reader.open_logdir(str(demo_logs(HEALTHY))))["train"]


def test_empty_and_garbage_event_files_are_named(logs, capsys):
    # They were skipped without a word (exit status 0).
    logdir = logs.logdir("garbage")
    train = os.path.join(logs.copy(HEALTHY, logdir, "mixed"), "train")
    open(os.path.join(train, "events.out.tfevents.1.empty"), "wb").close()
    garbage = bytes(range(256)) * 16
    with open(os.path.join(train, "events.out.tfevents.2.garbage"), "wb") as f:
        f.write(garbage)
    os.makedirs(os.path.join(logdir, "garbage_only"))
    shutil.copy(os.path.join(train, "events.out.tfevents.2.garbage"),
                os.path.join(logdir, "garbage_only"))
    code, runs, err = check(capsys, logdir)
    assert code == cli.EXIT_INCOMPLETE
    assert sorted(runs) == ["garbage_only", "mixed/train", "mixed/validation"]
    mixed = runs["mixed/train"]
    assert mixed["status"] == "healthy" and not mixed["intact"]
    assert mixed["warnings"] == [
        "mixed/train/events.out.tfevents.1.empty: empty event file (no records)",
        "mixed/train/events.out.tfevents.2.garbage: damaged at byte 0 (before any event): "
        "the record's length fails its checksum; the rest of the file (%d bytes) was not "
        "read (TensorBoard does not read past it either)" % len(garbage)]
    assert runs["garbage_only"]["status"] == "unreadable"
    assert all(line.startswith("tb-health: ") for line in err), err


def test_index_without_data_points_is_not_healthy(logs, capsys):
    # It showed as "healthy" (exit status 0).
    logdir = logs.logdir("index_only")
    run_dir = os.path.join(logs.copy(HEALTHY, logdir, "run", ("train",)), "train")

    def index_only(event):
        kept = [v for v in event.summary.value if v.tag in (
            "health/predictions", "health/gradients", "health/train_mode", "health/manifest")]
        del event.summary.value[:]
        event.summary.value.extend(kept)
        return [event]

    rewrite(run_dir, index_only)
    code, runs, err = check(capsys, logdir)
    assert code == cli.EXIT_NO_DATA
    entry = runs["run/train"]
    assert entry["status"] == "no_data" and entry["findings"] == []
    (warning,) = entry["warnings"]
    assert warning.startswith("no data points in the record families ")
    assert "'predictions'" in warning and "'gradients'" in warning


def test_a_manifest_nested_500_deep_is_served_cut(logs):
    # diagnosis.json_safe raised RecursionError (the manifest route answered 500).
    logdir = logs.logdir("deep")
    rewrite(os.path.join(logs.copy(SICK, logdir, "run", ("train",)), "train"),
            _manifest_depth(500))
    provider, eid = reader.open_logdir(logdir)
    manifest = reader.read_run(provider, None, eid, "run/train").manifest
    served = json.loads(json.dumps(diagnosis.json_safe(manifest)))
    depth, inner = 0, served["a"]
    while isinstance(inner, list):
        depth, inner = depth + 1, inner[0]
    assert inner == diagnosis.JSON_TOO_DEEP and depth == diagnosis.JSON_MAX_DEPTH - 1
    (run,) = [r for r in diagnosis.check_logdir(logdir)["runs"] if r["run"] == "run/train"]
    assert run["status"] == "unhealthy" and run["warnings"] == []


def test_a_failing_rule_costs_only_its_own_findings(demo_logs):
    # A rule that raised turned the whole run into no_data. Here a series
    # whose steps and values disagree in length (a RunRecords built by hand)
    # breaks the prediction rules; the gradient rules still report.
    provider, eid = reader.open_logdir(str(demo_logs(SICK)))
    records_ = diagnosis.read_for_diagnosis(provider, None, eid, "train")
    entropy = records_.predictions["predictions"].scalars["entropy"]
    records_.predictions["predictions"].scalars["entropy"] = reader.Series(
        steps=entropy.steps, values=entropy.values[:3])
    findings = diagnosis.diagnose(records_)
    kinds = {f.kind for f in findings}
    assert {"dead_units", "learning_rate_too_high", "output_activation_mismatch"} <= kinds
    assert "prediction_collapse" not in kinds
    assert diagnosis.run_status(records_, findings) == "unhealthy"
    (warning,) = records_.warnings
    assert warning.startswith("rule pooled_prediction_findings failed (")
