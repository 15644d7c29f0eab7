"""Writing results into a workdir without ever leaving a half-written file.

Whole files are written to a temporary name in the same directory and
renamed over the target, which is atomic on POSIX file systems. The metrics
log is appended to, one JSON line per record and fsynced; a line cut short
by a crash is skipped when the log is read back.
"""

import json
import os
import pathlib
import tempfile
from typing import Any, Iterable

from dlcore.errors import ConfigError


def prepare_workdir(workdir: str | os.PathLike) -> pathlib.Path:
  """Creates ``workdir`` if needed and checks that it is writable."""
  path = pathlib.Path(workdir)
  try:
    path.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
      pass
  except OSError as e:
    raise ConfigError(
        f"workdir {str(path)!r} is not writable ({e.strerror or e}); "
        "choose another with option workdir") from None
  return path


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
  """Writes ``data`` to ``path`` through a temporary file and a rename."""
  path = pathlib.Path(path)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    pathlib.Path(tmp).unlink(missing_ok=True)
    raise


def write_json(path: str | os.PathLike, obj: Any) -> None:
  write_atomic(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
  """The records of a JSON-lines file; a last line cut short by a crash is skipped."""
  path = pathlib.Path(path)
  if not path.exists():
    return []
  records = []
  for line in path.read_text().splitlines():
    try:
      records.append(json.loads(line))
    except json.JSONDecodeError:
      continue  # Only an unfinished last line can be malformed.
  return records


def write_jsonl(path: str | os.PathLike, records: Iterable[dict[str, Any]]) -> None:
  """Rewrites ``path`` with ``records``, one JSON object per line, atomically."""
  text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)
  write_atomic(path, text.encode())


def append_jsonl(path: str | os.PathLike, records: Iterable[dict[str, Any]]) -> None:
  """Appends ``records`` to ``path``, one JSON object per line, and fsyncs."""
  text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)
  with open(path, "a", encoding="utf-8") as f:
    f.write(text)
    f.flush()
    os.fsync(f.fileno())
