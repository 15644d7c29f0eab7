"""Running an experiment script: bad input gets one sentence, not a traceback.

Usage (the whole of a script's ``main``)::

  if __name__ == "__main__":
    cli.run(lambda: train_and_evaluate(parse_args(Config, __doc__), ...))

Library errors name options by their config field (``option optimizer.lr``);
the one line printed here names the flag instead (``--optimizer.lr``).
"""

import sys
from typing import Any, Callable

from dlcore.config import with_flags
from dlcore.errors import ConfigError, DiskFull, NonFiniteLossError, Preempted

EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3
EXIT_DISK_FULL = 74  # EX_IOERR.
EXIT_PREEMPTED = 75  # EX_TEMPFAIL: stopped early on request; resume later.


def run(main: Callable[[], Any]) -> Any:
  """Calls ``main``; bad input, divergence or preemption exits with one line on stderr."""
  exits = ((ConfigError, EXIT_BAD_INPUT), (NonFiniteLossError, EXIT_DIVERGED),
           (DiskFull, EXIT_DISK_FULL), (Preempted, EXIT_PREEMPTED))
  try:
    return main()
  except tuple(error for error, _ in exits) as e:
    print(f"error: {with_flags(str(e))}", file=sys.stderr)
    sys.exit(next(code for error, code in exits if isinstance(e, error)))
