"""Every number the diagnosis rules compare against (:class:`Thresholds`),
each with where its default comes from, and overrides by name.

Pure Python + numpy; imports no TensorFlow.
"""

import dataclasses


@dataclasses.dataclass
class Thresholds:
    """Every number the rules compare against. Override any by keyword.

    The comment on each field says where its default comes from.
    """

    # --- persistence (all "state" rules) ---
    # Records before this fraction of the run's step range are not judged for
    # state rules. AUTOTRAINER (Zhang et al., ICSE'21) likewise judges
    # training-state issues only after judgment_point = 0.3 of training.
    warmup_fraction: float = 0.3
    # A state must hold on at least this many records ("several")...
    persist_records: int = 3
    # ...or on records holding this many examples together (two validation
    # records that each sum 2,000 examples are strong evidence).
    persist_examples: int = 1000
    # The state's streak must cover this fraction of the examples after the
    # warm-up, so a passing transient is not reported (our choice: a
    # majority of the run).
    persist_fraction: float = 0.5
    # Within the streak, isolated records that dip (noise of a small batch)
    # do not break it while the state holds on this fraction of them.
    persist_density: float = 0.8
    # Prediction records are pooled into windows of at least this many
    # examples before they are judged (batch sizes 1-32 make per-record
    # shares 0, 1 or noise).
    window_examples: int = 64

    # --- prediction_collapse ---
    # Mean normalised entropy (entropy / log K; 1 = uniform). All logits 0
    # (seed 000) gives exactly 1. Our choice: 0.98 is still nearly uniform
    # (e.g. K=7 with logits of std ~0.3), while a classifier that has trained
    # for 30% of its steps is far below it.
    collapse_entropy: float = 0.98
    # Regression: output std / target std over the recorded batch. Below 1%
    # the outputs do not follow the inputs (seed 002: "output constant
    # regardless of input"). Our choice; a freshly initialised regression net
    # is at ~0.1-1.
    collapse_std_ratio: float = 0.01

    # --- tied_predictions ---
    # Fraction of rows whose top-1 value occurs more than once. Exact float
    # ties practically never happen in a healthy model, so 10% is already
    # pathological (seed 000: 100%). Our choice.
    tie_fraction: float = 0.1
    # Tie-tolerant accuracy (tf.nn.in_top_k k=1, seed 000's metric) minus
    # argmax accuracy: above 5 points the reported accuracy is overstated.
    tie_accuracy_gap: float = 0.05

    # --- class_collapse ---
    # Share of predictions going to a single class...
    class_collapse_fraction: float = 0.95
    # ...while the labels give that class at most this share (our choice:
    # a 95%-vs-70% gap is far beyond a classifier leaning to the majority).
    class_collapse_label_share: float = 0.7

    # --- class_bias (one class over-predicted, short of class_collapse) ---
    # A class predicted at least this many times as often as it occurs: then
    # at most 1/ratio of its predictions can be right (precision <= l/p),
    # whatever the model's accuracy; a classifier whose errors spread over
    # the classes stays near each label share...
    class_bias_ratio: float = 2.0
    # ...and by at least this share of all examples above its label share:
    # that many inputs are necessarily wrongly given to that one class (the
    # excess alone costs 25 points of accuracy), and it is 4 standard errors
    # of a share even in a window of 64 examples (sd <= 0.5/sqrt(64)).
    # Together they leave out small classes (2% -> 5%) and the binary
    # balanced case (50% -> 100% is class_collapse). Our choice.
    class_bias_excess: float = 0.25

    # --- no_better_than_baseline ---
    # Argmax accuracy within this of the most frequent label's share counts
    # as no better than it (our choice: 2 points)...
    baseline_margin: float = 0.02
    # ...or within this many standard errors of that share, for the
    # examples of the window (sampling noise of small windows).
    baseline_noise_sd: float = 2.0

    # --- not_generalising (train beats the base rate, validation does not) ---
    # Validation examples after the run's midpoint needed to judge: at 256
    # the standard error of an accuracy is <= 3 points, so "at the base
    # rate" is measured, not guessed (2 records of batch 128 or 240 suffice,
    # where the persistence rule wants 3 records or 1,000 examples). Ours.
    generalisation_examples: int = 256
    # Train accuracy above the validation accuracy by at least this over the
    # same steps: the model knows its training examples (our choice).
    generalisation_gap: float = 0.1

    # --- vanishing_gradients ---
    # Gradient norm of an earlier kernel / that of the last kernel.
    # AUTOTRAINER's vanishing rule: first/last < beta_1 = 1e-3.
    vanishing_ratio: float = 1e-3
    # Update-to-weight ratio ||dw|| / ||w||: CS231n (Karpathy, "Neural
    # Networks Part 3": ratio of updates to values "somewhere around 1e-3").
    update_ratio_guideline: float = 1e-3
    # A layer whose update ratio is two orders of magnitude below that
    # guideline...
    update_ratio_low: float = 1e-5
    # ...and 100x below the update ratio of the output layer is not learning
    # (plain low learning rates slow every layer alike; our choice).
    vanishing_update_gap: float = 1e-2

    # --- learning_rate_too_high ---
    # A kernel changing by this share of its norm per step, two records in a row:
    # 300x the guideline (our choice; healthy fits measured at 0.005-0.02
    # with Adam 3e-3, diverging ones at 0.3-5 in their first steps).
    update_ratio_high: float = 0.3

    # --- exploding_gradients ---
    # AUTOTRAINER's exploding rule: first/last gradient norm ratio > beta_3 =
    # 70. Shown by the plugin as a reference band; not a trigger on its own:
    # a ratio cannot see every layer exploding at once.
    exploding_ratio: float = 70.0
    # Growth of a kernel's gradient norm over its own baseline (median of its
    # first records): three orders of magnitude (our choice; healthy runs
    # change gradient norms by ~10x at most, diverging SGD grows them
    # geometrically).
    explode_growth: float = 1e3
    # Records used for the baseline of the growth rule (at least; 10% of a
    # kernel's records when that is more).
    explode_baseline_records: int = 3
    # The baseline is at least this norm, so an explosion is also large in
    # absolute terms: gradients waking up from ~0 (zero-initialised weights)
    # and peaking at 1-200 are not "exploding".
    explode_min_norm: float = 1.0
    # Absolute gradient L2 norm of any kernel: far beyond usual clipping
    # thresholds (clipnorm ~1-10, Pascanu et al. 2013), catches a run that
    # starts exploded (e.g. a huge init) where there is no growth to see.
    explode_abs_norm: float = 1e6

    # --- dead_units ---
    # Fraction of a layer's bias gradient entries that are exactly zero, i.e.
    # units that got no gradient from any example of the batch.
    # AUTOTRAINER's dying-ReLU rule: zero-gradient ratio >= gamma = 0.7.
    dead_fraction: float = 0.7
    # At or above this the layer is (nearly) entirely dead: severity error.
    dead_error_fraction: float = 0.99

    # --- converged (info) ---
    # Train accuracy at or above this while the output layer gets no
    # gradient: nothing is left to learn (our choice).
    converged_accuracy: float = 0.99

    # --- train_mode_inactive (statistical evidence) ---
    # A Dropout that received training=True counts as not dropping when its
    # output's zero fraction is below the expected z_in + (1 - z_in) * rate
    # by this many standard errors of the subsample (our choice: a healthy
    # layer is 6 SE short about once in 10^9 records)...
    train_mode_sd: float = 6.0
    # ...and by at least this share of the expected drops (a large margin in
    # absolute terms too: half the dropout missing).
    train_mode_deficit: float = 0.5

    def to_json(self):
        return dataclasses.asdict(self)


def thresholds_from(overrides=None):
    """A :class:`Thresholds` with `overrides` (a mapping name -> value; values
    may be strings, e.g. from a command line) replacing the defaults.

    Raises ValueError for an unknown name (listing the valid ones) or a bad
    value: integer fields take integers >= 1, the others numbers >= 0 (NaN
    is refused; "inf" turns a rule's threshold off).
    """
    if overrides is None:
        return Thresholds()
    if not hasattr(overrides, "items"):
        raise ValueError("thresholds must be a mapping name -> value, got %r" % (overrides,))
    fields = {f.name: type(f.default) for f in dataclasses.fields(Thresholds)}
    values = {}
    for name, raw in overrides.items():
        if name not in fields:
            raise ValueError("unknown threshold %r; valid names: %s"
                             % (name, ", ".join(fields)))
        try:
            x = None if isinstance(raw, bool) else float(
                raw.strip() if isinstance(raw, str) else raw)
        except (TypeError, ValueError):
            x = None
        if fields[name] is int:
            ok, want = x is not None and x.is_integer() and x >= 1, "an integer >= 1"
        else:
            ok, want = x is not None and x >= 0, "a number >= 0"
        if not ok:
            raise ValueError("threshold %s must be %s, got %r" % (name, want, raw))
        values[name] = int(x) if fields[name] is int else x
    return Thresholds(**values)
