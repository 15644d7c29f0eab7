"""Errors a user can act on.

A ``ConfigError`` carries one sentence that names the problem and the valid
choices; the experiment scripts print it without a traceback and exit with
status 2. Anything else is a bug and keeps its traceback.
"""


class ConfigError(ValueError):
  """Bad input: an unknown name, an inconsistent dataset, an unusable workdir."""


class NonFiniteLossError(RuntimeError):
  """The loss became NaN or infinite; ``step`` is the first bad step (1-based)."""

  def __init__(self, step: int, name: str = "loss"):
    self.step = step
    super().__init__(
        f"{name} became NaN or infinite at step {step}; training stopped and "
        "the last good checkpoint was kept (resume with --resume after "
        "lowering the learning rate)")
