"""Running an experiment script: bad input gets one sentence, not a traceback.

Usage (the whole of a script's ``main``)::

  if __name__ == "__main__":
    cli.run(lambda: train_and_evaluate(parse_args(Config, __doc__), ...))
"""

import sys
from typing import Any, Callable

from dlcore.errors import ConfigError, NonFiniteLossError

EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3


def run(main: Callable[[], Any]) -> Any:
  """Calls ``main``; a ``ConfigError`` or divergence exits with one line on stderr."""
  try:
    return main()
  except ConfigError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(EXIT_BAD_INPUT)
  except NonFiniteLossError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(EXIT_DIVERGED)
