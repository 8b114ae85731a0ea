"""What HealthCallback changes on a model for one fit, undone whatever ends it.

The callback wraps instance attributes (the model's ``compute_loss`` and
train / test functions, the optimizer's ``apply``, the ``call`` of train-mode
layers) and may turn ``jit_compile`` off. Keras 3's ``fit`` has no
try/finally around its callbacks: an exception or Ctrl-C inside ``fit``
skips ``on_train_end``. :class:`FitPatches` keeps what was changed and
undoes it (:meth:`FitPatches.restore`):

- when an exception leaves the train function, a hook of the fit's
  callbacks (``keras.callbacks.CallbackList``) or a validation run
  (:meth:`FitPatches.call_guarded`): where nearly all of a fit's time is
  spent, so a Ctrl-C is almost always caught there;
- otherwise (an exception in Keras's own code between those) before the
  model's next ``fit``, ``evaluate``, ``predict``, ``train_on_batch``... or
  ``save`` (:meth:`FitPatches.guard_model`).

The callback's wrappers call through to the originals once the fit they
were installed for no longer runs (:meth:`FitPatches.live`), so a wrapper
left behind never records.
"""

import sys

import keras
import tensorflow as tf

# The model's methods that restore what a fit that died left behind first.
GUARDED_METHODS = ("fit", "evaluate", "predict", "train_on_batch", "test_on_batch",
                   "predict_on_batch", "save")
# The fit's CallbackList hooks whose exceptions restore at once.
GUARDED_HOOKS = ("on_epoch_begin", "on_epoch_end", "on_train_batch_begin",
                 "on_train_batch_end", "on_test_begin", "on_test_end",
                 "on_test_batch_begin", "on_test_batch_end", "on_train_end")
# How an epoch of unknown length ends: not the end of the fit.
END_OF_DATA = (StopIteration, tf.errors.OutOfRangeError)


# Attribute of the values FitPatches sets: (the FitPatches, what it replaced).
_UNDO = "_tb_plugin_undo"


def override(obj, attr, value, owner=None):
    """Sets `attr` on the instance `obj` (not its class); returns what
    restore_attr needs to undo it. `owner`: the FitPatches that sets it."""
    saved = (obj, attr, attr in obj.__dict__, obj.__dict__.get(attr))
    if owner is not None:
        setattr(value, _UNDO, (owner, saved))
    object.__setattr__(obj, attr, value)
    return saved


def restore_attr(saved):
    """Undoes one `override`. What it replaced may be the value of another
    fit's patches, restored since (two callbacks wrapping the same
    attribute): then what that one replaced."""
    obj, attr, had, old = saved
    undo = getattr(old, _UNDO, None) if had else None
    while undo is not None and undo[0].restored:
        _, _, had, old = undo[1]
        undo = getattr(old, _UNDO, None) if had else None
    if had:
        object.__setattr__(obj, attr, old)
    elif attr in obj.__dict__:
        object.__delattr__(obj, attr)


class FitPatches:
    """The changes one fit's callback made to `model`, and their undoing.

    `on_restore`: called once, after the model is restored (the callback's
    own teardown: flush and close its writers).
    """

    def __init__(self, model, on_restore=None):
        self.model = model
        self._on_restore = on_restore
        self._saved = []
        self._jit = None
        self._frame = fit_frame(model)
        self.restored = False

    def override(self, obj, attr, value):
        """Sets `attr` of the instance `obj` (to a function) until restore()."""
        self._saved.append((override(obj, attr, value, owner=self), value))

    def adopt(self, saved):
        """Takes over entries of `override` made elsewhere (train-mode layers)."""
        self._saved.extend((item, None) for item in saved)

    def disable_jit(self):
        """Turns the model's jit_compile off until restore()."""
        if getattr(self.model, "jit_compile", False):
            self._jit = self.model.jit_compile
            self.model.jit_compile = False

    def running(self):
        """Whether the Keras fit that installed the patches still runs (on
        some thread's stack: replicas of a distribution strategy trace on
        threads of their own). True when it could not be found."""
        frame = self._frame
        if frame is None:
            return True
        current = sys._getframe(1)
        if _holds(current, frame):
            return True
        return any(_holds(top, frame) for top in sys._current_frames().values())

    def live(self):
        """Whether the wrappers may record: not restored, fit still running."""
        return not self.restored and self.running()

    def restore(self):
        """Undoes every change (once; never raises). The model's train and
        test functions are rebuilt when a fit still runs (it calls them
        next), else dropped (the next fit builds them)."""
        if self.restored:
            return
        running = self.running()
        self.restored = True
        for saved, value in reversed(self._saved):
            obj, attr = saved[:2]
            if value is not None and obj.__dict__.get(attr) is not value:
                continue  # wrapped since: the wrapper on top restores past ours
            try:
                restore_attr(saved)
            except Exception:  # noqa: BLE001 - undo the others
                pass
        self._saved = []
        self._frame = None
        model = self.model
        try:
            if self._jit is not None:
                model.jit_compile = self._jit
            if running:
                model.make_train_function(force=True)
                model.make_test_function(force=True)
            else:
                model.train_function = None
                model.test_function = None
        except Exception:  # noqa: BLE001 - Keras rebuilds them on next use
            pass
        if self._on_restore is not None:
            try:
                self._on_restore()
            except Exception:  # noqa: BLE001
                pass

    def call_guarded(self, fn, *args, **kwargs):
        """`fn(*args, **kwargs)`, restoring when an exception (other than the
        end of an epoch's data) or Ctrl-C leaves it."""
        try:
            return fn(*args, **kwargs)
        except END_OF_DATA:
            raise
        except BaseException:
            self.restore()
            raise

    def guard_model(self):
        """Wraps the model's GUARDED_METHODS (instance attributes): inside
        the fit they restore on an exception; after a fit that died they
        restore first."""
        for name in GUARDED_METHODS:
            original = getattr(self.model, name, None)
            if original is not None:
                self.override(self.model, name, self._guarded_method(original))

    def _guarded_method(self, original):
        def method(*args, **kwargs):
            if not self.live():
                self.restore()
                return original(*args, **kwargs)
            return self.call_guarded(original, *args, **kwargs)

        return method

    def guard_callbacks(self, callback):
        """Wraps the hooks of the CallbackList of the running fit that holds
        `callback` (found on the stack; nothing when it is not there)."""
        callbacks = _callback_list(callback, self._frame)
        if callbacks is None:
            return
        for name in GUARDED_HOOKS:
            original = getattr(callbacks, name, None)
            if original is not None:
                self.override(callbacks, name, self._guarded_hook(original))

    def _guarded_hook(self, original):
        def hook(*args, **kwargs):
            return self.call_guarded(original, *args, **kwargs)

        return hook


def guarded_by(model):
    """The FitPatches of a running fit that guard `model` (another
    callback's, in this fit), or None."""
    undo = getattr(model.__dict__.get("fit"), _UNDO, None)
    if undo is not None and undo[0].live():
        return undo[0]
    return None


def _holds(frame, target):
    """Whether `target` is `frame` or one of its callers."""
    while frame is not None:
        if frame is target:
            return True
        frame = frame.f_back
    return False


def fit_frame(model):
    """The frame of the innermost ``fit`` of `model` on the current stack,
    or None (a callback driven by hand)."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "fit" and frame.f_locals.get("self") is model:
            return frame
        frame = frame.f_back
    return None


def _callback_list(callback, fit):
    """The CallbackList holding `callback` among the callers up to the fit
    frame `fit` (Keras calls a callback's hooks from its CallbackList)."""
    if fit is None:
        return None
    frame = sys._getframe(1)
    while frame is not None:
        owner = frame.f_locals.get("self")
        if isinstance(owner, keras.callbacks.CallbackList) and any(
                c is callback for c in owner.callbacks):
            return owner
        if frame is fit:
            return None
        frame = frame.f_back
    return None
