"""``tb-health``: diagnose the health records of a TensorBoard log directory.

    tb-health check LOGDIR [--run REGEX] [--json] [--set NAME=VALUE ...]
                           [--thresholds FILE]
    tb-health compare LOGDIR --tag TAG [--group REGEX] [--run REGEX]
                             [--final last|best|mean-last-K] [--band ci|sd|se|minmax]
                             [--better higher|lower] [--json]
    tb-health --version

Exit status of check: 0 when no run has an error finding, 1 when at least one
does, 2 on bad usage (including an unknown threshold name or a bad value) or a
log directory that does not exist or cannot be read, 3 when no run (matching
--run) has health records, so that a CI gate pointed at the wrong path fails,
4 when no run has an error finding but some event files or run directories
could not be read intact (named on stderr; the rest was diagnosed).
Of compare (see tb_plugin.compare): 0 when at least two groups were compared,
2 on bad usage (a bad regex, a seed counted twice, scipy missing) or an
unreadable LOGDIR, 3 when fewer than two groups have values of TAG.
LOGDIR is a local path or a URL (``s3://``, ``gs://``, any fsspec protocol;
see tb_plugin.event_files.gfile). Needs TensorBoard and numpy only (no
TensorFlow).
"""

import argparse
import json
import logging
import os
import re
import shutil
import sys
import textwrap

EXIT_OK = 0
EXIT_ERRORS = 1
EXIT_USAGE = 2
EXIT_NO_DATA = 3
EXIT_INCOMPLETE = 4


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    # Report usage errors by exception, so main() returns 2 instead of exiting.
    def error(self, message):
        raise _UsageError(message)


def _version():
    try:
        from importlib import metadata as importlib_metadata

        return importlib_metadata.version("tb-plugin-health")
    except Exception:  # not installed (run from a source tree)
        return "unknown"


_LOGDIR_HELP = ("TensorBoard log directory: a local path or a URL read through "
                "TensorBoard's file system layer (s3:// needs boto3, gs:// gcsfs; any "
                "fsspec protocol)")


def _build_parser():
    parser = _Parser(
        prog="tb-health",
        description="Catch neural networks that fail silently: diagnose the records "
        "written by tb_plugin.HealthCallback in a TensorBoard log directory.",
    )
    parser.add_argument("--version", action="version",
                        version="tb-health (tb-plugin-health) %s" % _version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    check = sub.add_parser(
        "check",
        help="diagnose every run of LOGDIR that has health records",
        description="Diagnose every run of LOGDIR that has health records. Exit "
        "status 0: no error finding; 1: at least one error finding; 2: bad usage "
        "(including a bad threshold) or unreadable LOGDIR; 3: no run (matching --run) "
        "has health records; 4: no error finding, but some runs could not be read "
        "intact (damaged or unreadable event files or directories).",
    )
    check.add_argument("logdir", metavar="LOGDIR", help=_LOGDIR_HELP)
    check.add_argument(
        "--run",
        metavar="REGEX",
        default=None,
        help="only runs whose name (as TensorBoard shows it, e.g. exp1/train) "
        "matches this regular expression (re.search)",
    )
    check.add_argument(
        "--json",
        action="store_true",
        help="print one JSON document instead of a table",
    )
    check.add_argument(
        "--set",
        metavar="NAME=VALUE",
        action="append",
        default=[],
        help="override one threshold of tb_plugin.diagnosis.Thresholds, e.g. "
        "--set collapse_entropy=0.95 (repeatable; wins over --thresholds)",
    )
    check.add_argument(
        "--thresholds",
        metavar="FILE",
        default=None,
        help='a JSON object of threshold overrides, e.g. {"dead_fraction": 0.8}',
    )
    compare = sub.add_parser(
        "compare",
        help="compare groups of runs (configurations x seeds) on a scalar tag",
        description="Compare configurations across seeds: per group the mean of TAG with "
        "a band over steps and the final values, per pair of groups the difference, its "
        "95% CI, Welch's p, Hedges' g, P(a run of A beats a run of B) and a verdict; "
        "health findings that differ between groups first. Exit status 0: compared; 2: "
        "bad usage or unreadable LOGDIR; 3: fewer than two groups have values of TAG.",
    )
    compare.add_argument("logdir", metavar="LOGDIR", help=_LOGDIR_HELP)
    compare.add_argument("--tag", required=True, help="the scalar tag, e.g. epoch_loss")
    compare.add_argument(
        "--group", metavar="REGEX", default=None,
        help="group runs by this regular expression over the full run name (re.search): "
        "its named group 'group' or first capture group names the group, e.g. "
        "'(.*)/seed\\d+/validation$'; default: by HParams or the recorded manifest")
    compare.add_argument("--run", metavar="REGEX", default=None,
                         help="only runs whose name matches this regular expression")
    compare.add_argument(
        "--final", default="last", metavar="last|best|mean-last-K",
        help="each run's final value: the last value (default), the best one, or the "
        "mean of its last K records")
    compare.add_argument("--band", default="ci", choices=("ci", "sd", "se", "minmax"),
                         help="band around the mean over steps (JSON): 95%% t-CI "
                         "(default), SD, SE or min-max")
    compare.add_argument("--better", choices=("higher", "lower"), default=None,
                         help="which values are better (default: lower when TAG contains "
                         "'loss' or 'error', else higher)")
    compare.add_argument("--json", action="store_true",
                         help="print the JSON document of tb_plugin.compare")
    return parser


def _thresholds(args):
    """The Thresholds of --thresholds FILE then --set NAME=VALUE; raises
    _UsageError with the message for the user."""
    from tb_plugin import diagnosis

    overrides = {}
    if args.thresholds is not None:
        where = "--thresholds %s" % args.thresholds
        try:
            with open(args.thresholds, encoding="utf-8") as f:
                doc = json.load(f)
        except OSError as e:
            raise _UsageError("cannot read %s: %s" % (where, e.strerror or e))
        except ValueError as e:
            raise _UsageError("%s is not valid JSON: %s" % (where, e))
        if not isinstance(doc, dict):
            raise _UsageError("%s must hold a JSON object of name -> value, got %s"
                              % (where, type(doc).__name__))
        try:
            diagnosis.thresholds_from(doc)
        except ValueError as e:
            raise _UsageError("%s: %s" % (where, e))
        overrides.update(doc)
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise _UsageError("--set expects NAME=VALUE, got %r" % item)
        try:
            diagnosis.thresholds_from({name.strip(): value})
        except ValueError as e:
            raise _UsageError("--set %s: %s" % (item, e))
        overrides[name.strip()] = value
    return diagnosis.thresholds_from(overrides)


def _steps(f):
    a, b = f.get("first_step"), f.get("last_step")
    if a is None:
        return "-"
    if b is None or b == a:
        return str(a)
    return "%d-%d" % (a, b)


def _count(n, word):
    """'1 error', '2 errors'."""
    return "%d %s%s" % (n, word, "" if n == 1 else "s")


def _format_human(result, out):
    runs = result["runs"]
    width = shutil.get_terminal_size((100, 24)).columns  # COLUMNS, the terminal, else 100
    counts = {"error": 0, "warning": 0}
    status_counts = {}
    for r in runs:
        status_counts[r["status"]] = status_counts.get(r["status"], 0) + 1
        findings = r["findings"]
        label = {"healthy": "healthy", "unhealthy": "UNHEALTHY", "no_data": "no data",
                 "unreadable": "UNREADABLE"}.get(
            r["status"], r["status"])
        word = "note" if all(f["severity"] == "info" for f in findings) else "finding"
        out.write("Run %s: %s%s\n" % (
            r["run"], label, " (%s)" % _count(len(findings), word) if findings else ""))
        if not findings:
            continue
        rows = [("SEVERITY", "KIND", "LAYER", "STEPS")]
        for f in findings:
            counts[f["severity"]] = counts.get(f["severity"], 0) + 1
            rows.append((f["severity"], f["kind"], f["layer"] or "-", _steps(f)))
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        indent = " " * (2 + sum(widths) + 2 * 4)
        if width - len(indent) < 40:  # too narrow beside the columns: below them
            indent = " " * 4
        header = "  ".join(c.ljust(w) for c, w in zip(rows[0], widths))
        out.write(("  " + header + ("  MESSAGE" if len(indent) > 4 else "")).rstrip() + "\n")
        msg_width = max(20, width - len(indent))
        for f, row in zip(findings, rows[1:]):
            lead = "  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  "
            lines = textwrap.wrap(f["message"], msg_width) or [""]
            if len(indent) == len(lead):
                out.write(lead + lines.pop(0) + "\n")
            else:
                out.write(lead.rstrip() + "\n")
            for line in lines:
                out.write(indent + line + "\n")
            sugg = textwrap.wrap("Suggestion: " + f["suggestion"], msg_width)
            for line in sugg:
                out.write(indent + line + "\n")
    out.write(
        "\n%s: %d unhealthy, %d healthy, %d without data%s; %s, %s.\n"
        % (_count(len(runs), "run"),
           status_counts.get("unhealthy", 0), status_counts.get("healthy", 0),
           status_counts.get("no_data", 0),
           ", %d unreadable" % status_counts["unreadable"] if "unreadable" in status_counts
           else "",
           _count(counts.get("error", 0), "error"), _count(counts.get("warning", 0), "warning"))
    )


def _logdir_error(logdir):
    """Why LOGDIR cannot be read, for the user; None if it can. A URL is
    looked up through TensorBoard's file system layer."""
    from tb_plugin import event_files

    if event_files.is_url(logdir):
        try:
            event_files.require_directory(logdir)
        except FileNotFoundError:
            return "log directory does not exist: %s" % logdir
        except OSError as e:
            return "cannot reach the log directory %s" % e
        return None
    if not os.path.exists(logdir):
        return "log directory does not exist: %s" % logdir
    if not os.path.isdir(logdir):
        return "not a directory: %s" % logdir
    if not os.access(logdir, os.R_OK | os.X_OK):
        return "log directory is not readable: %s" % logdir
    return None


def _check(args, out, err):
    logdir = args.logdir
    problem = _logdir_error(logdir)
    if problem is not None:
        err.write("tb-health: error: %s\n" % problem)
        return EXIT_USAGE
    if args.run is not None:
        try:
            re.compile(args.run)
        except re.error as e:
            err.write("tb-health: error: bad --run regular expression %r: %s\n"
                      % (args.run, e))
            return EXIT_USAGE

    try:
        thresholds = _thresholds(args)
    except _UsageError as e:
        err.write("tb-health: error: %s\n" % e)
        return EXIT_USAGE

    from tb_plugin import diagnosis

    try:
        result = diagnosis.check_logdir(logdir, run_regex=args.run, thresholds=thresholds)
    except OSError as e:
        err.write("tb-health: error: cannot read %s: %s\n" % (logdir, e))
        return EXIT_USAGE
    if args.json:
        out.write(json.dumps(result, indent=2, allow_nan=False) + "\n")
    elif result["runs"]:
        _format_human(result, out)
    has_error = any(
        f.get("severity") == "error" for r in result["runs"] for f in r["findings"]
    )
    incomplete = [r["run"] for r in result["runs"] if not r["intact"]]
    if incomplete:
        err.write("tb-health: incomplete: %s under %s could not be read intact (%s); "
                  "the findings cover what could be read (see the warnings above)\n"
                  % (_count(len(incomplete), "run"), logdir, ", ".join(incomplete)))
    if has_error:
        return EXIT_ERRORS
    if incomplete:
        return EXIT_INCOMPLETE
    if all(r["status"] == diagnosis.STATUS_NO_DATA for r in result["runs"]):
        matching = " matching --run %r" % args.run if args.run is not None else ""
        if result["runs"]:
            what = "the %s with health summaries%s hold no readable records" % (
                _count(len(result["runs"]), "run"), matching)
        else:
            what = "no run%s has health records" % matching
        err.write("tb-health: no health data: %s under %s (searched it and its "
                  "subdirectories for event files written by tb_plugin.HealthCallback)\n"
                  % (what, logdir))
        return EXIT_NO_DATA
    return EXIT_OK


def _compare(args, out, err):
    problem = _logdir_error(args.logdir)
    if problem is not None:
        err.write("tb-health: error: %s\n" % problem)
        return EXIT_USAGE
    from tb_plugin import compare

    try:
        final, k = compare.parse_final(args.final)
    except ValueError as e:
        err.write("tb-health: error: --%s, got %r\n" % (e, args.final))
        return EXIT_USAGE
    try:
        result = compare.compare_logdir(
            args.logdir, args.tag, group_regex=args.group, run_filter=args.run,
            final=final, k=k, band=args.band,
            higher_is_better=None if args.better is None else args.better == "higher")
    except (compare.CompareError, ImportError) as e:
        err.write("tb-health: error: %s\n" % e)
        return EXIT_USAGE
    except OSError as e:
        err.write("tb-health: error: cannot read %s: %s\n" % (args.logdir, e))
        return EXIT_USAGE
    out.write(json.dumps(result, indent=2, allow_nan=False) + "\n" if args.json
              else compare.format_report(result))
    if sum(g["final"]["n"] > 0 for g in result["groups"]) < 2:
        err.write("tb-health: nothing to compare: %s\n"
                  % ("; ".join(result["notes"]) or "fewer than two groups have values"))
        return EXIT_NO_DATA
    return EXIT_OK


def _use_tensorboard_without_tensorflow():
    # TensorBoard imports TensorFlow (when installed) only for file I/O; its
    # own TF-free stub does the same (locally, on s3:// and fsspec URLs), starts seconds
    # faster and keeps TF's start-up chatter off stderr. Marking the
    # "no_tensorflow" variant of tensorboard.compat selects the stub.
    if "tensorflow" not in sys.modules:
        import types

        sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("notf"))


def _quiet_tensorboard_logging():
    # TensorBoard's loaders log at INFO/WARNING through the "tensorboard" logger
    # (via absl when present); keep stderr for real problems.
    logging.getLogger("tensorboard").setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("tb-health: warning: %(message)s"))
    ours = logging.getLogger("tb_plugin")
    if not ours.handlers:
        ours.addHandler(handler)
    ours.setLevel(logging.WARNING)
    ours.propagate = False


class _Stdout:
    """Standard output that goes quiet when its reader goes away
    (``tb-health check LOGDIR | head``): no BrokenPipeError traceback, and
    the exit status still tells what the command found."""

    def __init__(self, stream):
        self._stream = stream
        self._gone = False

    def write(self, text):
        if self._gone:
            return
        try:
            self._stream.write(text)
            self._stream.flush()
        except BrokenPipeError:
            self._gone = True
            # Python flushes stdout at exit: point it at /dev/null first.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)


def main(argv=None):
    """Entry point of ``tb-health``; returns the exit status."""
    out, err = _Stdout(sys.stdout), sys.stderr
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as e:
        parser.print_usage(err)
        err.write("tb-health: error: %s\n" % e)
        return EXIT_USAGE
    except SystemExit as e:  # --help / --version
        return int(e.code or 0) if isinstance(e.code, int) else EXIT_USAGE
    if args.command not in ("check", "compare"):
        parser.print_usage(err)
        err.write("tb-health: error: a command is required (check or compare)\n")
        return EXIT_USAGE
    _quiet_tensorboard_logging()
    _use_tensorboard_without_tensorflow()
    return (_compare if args.command == "compare" else _check)(args, out, err)


if __name__ == "__main__":
    sys.exit(main())
