"""One run per workdir: a lock that names its holder and dies with it.

Usage::

  with WorkdirLock(workdir):   # ConfigError if another run holds it
    ...train...

The lock is ``fcntl.flock`` on ``workdir/.lock``. The kernel releases it
when the holding process ends, however it ends (SIGKILL included), so a
lock left by a dead run is stale by construction and simply taken over.
The file records the holder (process id, host, start time) for the message
the next run prints. ``flock`` is advisory and local to one machine's
kernel (and NFS clients that emulate it); runs on other machines sharing
a file system are not excluded.
"""

import datetime
import fcntl
import json
import os
import pathlib
import socket

from dlcore.errors import ConfigError

LOCK_FILE = ".lock"


def _holder(fd: int) -> str:
  """The holder recorded in the lock file, in words."""
  try:
    info = json.loads(os.pread(fd, 4096, 0) or b"{}")
    return (f"process {info['pid']} on {info['host']}, started "
            f"{info['started']}")
  except (ValueError, KeyError, TypeError):
    return "another process"


class WorkdirLock:
  """Holds ``workdir`` for this process while the ``with`` block runs."""

  def __init__(self, workdir: str | os.PathLike):
    self.path = pathlib.Path(workdir) / LOCK_FILE
    self._fd: int | None = None

  def __enter__(self) -> "WorkdirLock":
    fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = _holder(fd)
      os.close(fd)
      raise ConfigError(
          f"workdir {str(self.path.parent)!r} is in use by another run "
          f"({holder}); wait for it to end or choose another option "
          "workdir") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps({
        "pid": os.getpid(), "host": socket.gethostname(),
        "started": datetime.datetime.now().isoformat(timespec="seconds"),
    }).encode(), 0)
    self._fd = fd
    return self

  def __exit__(self, *exc) -> None:
    if self._fd is not None:
      os.close(self._fd)  # Releases the lock.
      self._fd = None


def check_free(workdir: str | os.PathLike) -> None:
  """Raises ``ConfigError`` now if another run holds ``workdir`` (before any work is done)."""
  if (pathlib.Path(workdir) / LOCK_FILE).exists():
    with WorkdirLock(workdir):
      pass
