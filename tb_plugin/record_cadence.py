"""Which optimizer steps of a fit HealthCallback records.

A fixed ``log_every_n_steps``, or the automatic cadence: about
``AUTO_RECORDS`` records per fit plus its first steps, thinning out as it
goes when the fit's length is unknown. Told in Python (which calls of the
train function hold a logged step) and as the in-graph condition of a step
(when the logged step is picked inside the train function).
"""

import tensorflow as tf

from tb_plugin import tf_internals


def planned_steps(params):
    """Epochs x steps per epoch as Keras tells callbacks (their `params`),
    or None."""
    params = params or {}
    try:
        return int(params.get("epochs")) * int(params.get("steps"))
    except (TypeError, ValueError):
        return None


def batches_done(optimizer, accum):
    """Train batches run so far: the optimizer's steps, or with gradient
    accumulation (`accum` > 1) its count of batches (``iterations`` counts
    updates)."""
    if accum > 1:
        return int(tf_internals.batch_counter(optimizer).numpy())
    return int(optimizer.iterations.numpy())


def step_now(optimizer):
    """The optimizer's step, or None if it cannot be read."""
    try:
        return int(optimizer.iterations.numpy())
    except Exception:  # noqa: BLE001
        return None


class RecordCadence:
    """The recorded steps of one fit of `optimizer` (its inner optimizer
    under loss scaling; `accum`: its gradient_accumulation_steps), given
    `log_every_n_steps` (None: automatic) and the fit's planned length
    (see planned_steps; None: unknown)."""

    # The automatic cadence (log_every_n_steps=None): about AUTO_RECORDS
    # records per fit (every step for fits of up to ~2 * AUTO_RECORDS steps),
    # at most MAX_AUTO_EVERY steps apart. The rules need tens of records to
    # tell a state from noise; a fixed 50 gave a 60-step fit 2 records.
    AUTO_RECORDS = 64
    MAX_AUTO_EVERY = 50
    # In-graph cadence when the fit's length is unknown (several steps per
    # call of the train function pick the logged step in the graph).
    UNKNOWN_LENGTH_EVERY = 10
    # With the automatic cadence the first steps of a fit are all recorded:
    # what goes wrong at once (a learning rate that blows the weights up in
    # two steps) is over before the first multiple of the cadence.
    AUTO_FIRST_STEPS = 8

    def __init__(self, log_every_n_steps, planned, optimizer, accum):
        self.log_every_n_steps = log_every_n_steps
        self._optimizer = optimizer
        self._accum = accum
        self.every = self._every(planned)
        self.first_step = int(optimizer.iterations.numpy())

    def _every(self, planned):
        """Record every N steps; None: a fit of unknown length, recorded on
        a schedule that thins out as it goes (see is_logged)."""
        if self.log_every_n_steps is not None:
            return self.log_every_n_steps
        if planned is None:
            return None
        total = planned // self._accum  # optimizer steps
        return max(1, min(self.MAX_AUTO_EVERY, total // self.AUTO_RECORDS))

    def dense_start(self):
        return self.AUTO_FIRST_STEPS if self.log_every_n_steps is None else 0

    def is_logged(self, step):
        """Whether optimizer step `step` is recorded (Python side)."""
        if step - self.first_step < self.dense_start():
            return True
        if self.every is not None:
            return step % self.every == 0
        # Unknown length: every step for the first 2 x AUTO_RECORDS steps of
        # the fit, then ever sparser, up to MAX_AUTO_EVERY apart.
        done = step - self.first_step
        every = max(1, min(self.MAX_AUTO_EVERY, done // self.AUTO_RECORDS))
        return done % every == 0

    def batch_logged(self, batch):
        """Whether train batch number `batch` (see batches_done) runs a
        logged optimizer step: with gradient accumulation, the last batch
        of each update."""
        n = self._accum
        return (batch + 1) % n == 0 and self.is_logged(batch // n)

    def should_log(self, step):
        """The in-graph condition of a logged step (`step`: the optimizer's)."""
        every = tf.equal(step % (self.every or self.UNKNOWN_LENGTH_EVERY), 0)
        if self.dense_start():
            every = tf.logical_or(every, step < self.first_step + self.dense_start())
        if self._accum > 1:
            batch = tf.cast(tf_internals.batch_counter(self._optimizer), tf.int64)
            every = tf.logical_and(every, tf.equal((batch + 1) % self._accum, 0))
        return every
