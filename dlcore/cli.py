"""Running an experiment script: bad input gets one sentence, not a traceback.

Usage (the whole of a script)::

  from dlcore import cli
  if __name__ == "__main__":
    cli.stop_on_signals()  # Before the heavy imports.
  from dlcore.supervised import ClassifyConfig, train_and_evaluate

  main = cli.main_of(ClassifyConfig, train_and_evaluate, __doc__,
                     report=lambda s: f"test accuracy {s['test_accuracy']:.4f}")
  if __name__ == "__main__":
    cli.run(main)

Library errors name options by their config field (``option optimizer.lr``);
the one line printed here names the flag instead (``--optimizer.lr``).
Exit statuses: 2 bad input, 3 divergence, 74 a full disk, 75 stopped by a
signal (SIGTERM or SIGINT), at any moment from the script's start: during
training the loop saves a checkpoint first; before it, there is nothing to
save and the line says so.
"""

import os
import signal
import sys
from typing import Any, Callable

from dlcore.config import parse_args, with_flags
from dlcore.errors import (ConfigError, DiskFull, Interrupted,
                           NonFiniteLossError, Preempted)

EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3
EXIT_DISK_FULL = 74  # EX_IOERR.
EXIT_PREEMPTED = 75  # EX_TEMPFAIL: stopped early on request; resume later.
EXITS = ((ConfigError, EXIT_BAD_INPUT), (NonFiniteLossError, EXIT_DIVERGED),
         (DiskFull, EXIT_DISK_FULL), (Preempted, EXIT_PREEMPTED),
         (Interrupted, EXIT_PREEMPTED))


def _exit_at_once(signum, frame):
  """While a script imports its modules: one line, exit status 75."""
  del frame
  print(f"error: {Interrupted(signal.Signals(signum).name)}", file=sys.stderr,
        flush=True)
  os._exit(EXIT_PREEMPTED)  # pylint: disable=protected-access


def stop_on_signals() -> None:
  """From here on, SIGTERM and SIGINT stop the script with one line and exit 75.

  A script calls it first, so that the promise holds while it imports
  (nothing is written then; ``run`` takes over for the rest).
  """
  for s in (signal.SIGTERM, signal.SIGINT):
    signal.signal(s, _exit_at_once)


def _interrupted(signum, frame):
  """Outside training, a signal stops the script with ``Interrupted``."""
  del frame
  raise Interrupted(signal.Signals(signum).name)


def _give_up(sentence: str) -> None:
  """Ends the process from a watchdog thread: one line, exit status 2.

  The main thread is then blocked inside ``jax.distributed.initialize``,
  which no Python exception can interrupt, hence ``os._exit``; nothing has
  been written yet (joining is the first thing a script does).
  """
  print(f"error: {with_flags(sentence)}", file=sys.stderr, flush=True)
  os._exit(EXIT_BAD_INPUT)  # pylint: disable=protected-access


def run(main: Callable[[], Any]) -> Any:
  """Calls ``main``; bad input, divergence or a stop exits with one line on stderr.

  SIGTERM and SIGINT stop it from the start (``Interrupted``); the training
  loop installs its own handlers while it runs (``dlcore.loop``).
  """
  previous = {s: signal.signal(s, _interrupted)
              for s in (signal.SIGTERM, signal.SIGINT)}
  try:
    return main()
  except tuple(error for error, _ in EXITS) as e:
    print(f"error: {with_flags(str(e))}", file=sys.stderr)
    sys.exit(next(code for error, code in EXITS if isinstance(e, error)))
  finally:
    for s, handler in previous.items():
      signal.signal(s, handler)


def main_of(config_cls: type, train: Callable[[Any], dict[str, Any]],
            description: str, report: Callable[[dict[str, Any]], str]
            ) -> Callable[..., dict[str, Any]]:
  """A script's ``main(argv=None)``: parse, join the other processes, train, report.

  ``report(summary)`` is the line printed at the end, before ``->
  WORKDIR``.
  """
  def main(argv=None) -> dict[str, Any]:
    from dlcore import distributed  # pylint: disable=import-outside-toplevel
    config = parse_args(config_cls, description, argv)
    distributed.initialize_distributed(config, on_timeout=_give_up)
    summary = train(config)
    print(f"{report(summary)} -> {config.workdir}")
    return summary
  return main
