"""How ``tb-health compare`` puts runs into groups (see :mod:`tb_plugin.compare`
for the rules): by a regular expression over run names, or by the recorded
configuration (TensorBoard HParams, else tb_plugin's manifest) with the seed
left out. Pure Python.
"""

import json
import re

_SPLITS = ("train", "validation")
# Manifest fields that name things or vary with the seed, not the configuration.
_NOT_CONFIG = frozenset({"seed", "model", "name", "path", "output_layer", "versions"})
_SEED_IN_NAME = re.compile(r"seed[_=-]?\d+", re.IGNORECASE)
# A configuration group's name lists what sets it apart up to this length.
_MAX_NAME = 60


class CompareError(ValueError):
    """A comparison that cannot be made as asked (bad regex, a seed counted twice)."""


def training_run(run):
    """`run` without a final ``/train`` or ``/validation`` component."""
    head, sep, tail = run.rpartition("/")
    return head if sep and tail in _SPLITS else run


def group_by_regex(runs, regex):
    """{run: (group, seed)} of the `runs` that `regex` matches: the group is
    the named group ``group`` or else the first capture group; the seed the
    named group ``seed`` or else the matched text without the group. Raises
    CompareError."""
    try:
        pattern = re.compile(regex)
    except re.error as e:
        raise CompareError("bad --group regular expression %r: %s" % (regex, e))
    if pattern.groups == 0:
        raise CompareError("the --group regular expression %r needs a capture group, whose "
                           "text names the group, e.g. '(.*)/seed\\d+'" % regex)
    key = "group" if "group" in pattern.groupindex else 1
    out = {}
    for run in runs:
        m = pattern.search(run)
        if m is None or m.group(key) is None:
            continue
        if "seed" in pattern.groupindex:
            seed = m.group("seed")
        else:
            a, b = m.span(key)
            seed = m.string[m.start():a] + m.string[b:m.end()]
        out[run] = (m.group(key), seed)
    return out


def _flatten(obj, prefix=""):
    """{dotted path: value} of a JSON-like object, without _NOT_CONFIG keys."""
    if isinstance(obj, dict):
        items = [(k, v) for k, v in obj.items() if k not in _NOT_CONFIG]
        return {p: v for k, v in sorted(items)
                for p, v in _flatten(v, "%s.%s" % (prefix, k) if prefix else k).items()}
    if isinstance(obj, list):
        return {p: v for i, x in enumerate(obj)
                for p, v in _flatten(x, "%s[%d]" % (prefix, i)).items()}
    return {prefix: obj}


def _config_names(configs):
    """{frozen config: (group name, label)}: the label lists the fields that
    vary between `configs`; the name is the label, or "config N" if long."""
    varying = sorted({k for c in configs for k in dict(c)
                      if len({dict(o).get(k, "-") for o in configs}) > 1})
    names = {}
    for i, c in enumerate(sorted(configs, key=lambda c: json.dumps(c, default=str))):
        d = dict(c)
        label = ", ".join("%s=%s" % (k, d.get(k, "-")) for k in varying) or "all runs"
        names[c] = (label if len(label) <= _MAX_NAME else "config %d" % (i + 1), label)
    return names


def group_by_config(runs, hparams, manifests):
    """({run: (group, seed)}, {group: label}, "hparams"|"manifest", notes):
    the `runs` grouped by the hparams or manifests of their training runs."""
    owners = {r: training_run(r) for r in runs}
    by = "hparams" if any(o in hparams for o in owners.values()) else "manifest"
    configs, seeds, notes = {}, {}, []
    for run, owner in owners.items():
        if by == "hparams" and owner in hparams:
            hp = hparams[owner]
            seed_keys = sorted(k for k in hp if "seed" in k.lower())
            configs[run] = tuple(sorted((k, v) for k, v in hp.items() if k not in seed_keys))
            seeds[run] = ", ".join("%s=%s" % (k, hp[k]) for k in seed_keys) or None
        elif by == "manifest" and owner in manifests:
            configs[run] = tuple(_flatten(manifests[owner]).items())
            seeds[run] = None
        if run in configs and seeds[run] is None:
            m = _SEED_IN_NAME.search(run)
            seeds[run] = m.group(0) if m else None
    left_out = sorted(set(runs) - set(configs))
    if left_out:
        notes.append("%d run(s) without recorded %s left out: %s; group them with --group"
                     % (len(left_out), by, ", ".join(left_out)))
    names = _config_names(set(configs.values()))
    return ({r: (names[c][0], seeds[r]) for r, c in configs.items()},
            dict(names.values()), by, notes)


def check_seeds(assignment, by):
    """Raises CompareError when a group counts one seed (or training run) twice."""
    seen = {}
    for run in sorted(assignment):
        group, seed = assignment[run]
        key = (group, seed if by == "regex" else training_run(run))
        if key in seen:
            hint = ("anchor --group so that it matches one run per seed, e.g. "
                    "'(.*)/seed\\d+/validation$'" if by == "regex" else
                    "keep one of them with --run, e.g. --run '/validation$'")
            raise CompareError("runs %s and %s of group %s are the same seed (%r): %s"
                               % (seen[key], run, group, key[1], hint))
        seen[key] = run
