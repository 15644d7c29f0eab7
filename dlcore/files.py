"""Writing results into a workdir without ever leaving a half-written file.

Whole files are written to a temporary name in the same directory and
renamed over the target, which is atomic on POSIX file systems. The metrics
log is appended to, one JSON line per record and fsynced; a line cut short
by a crash is skipped when the log is read back.

Everything is strict JSON (RFC 8259): a NaN or infinite number is written
as ``null`` and its key listed under ``"non_finite"`` in the same object,
never as the ``NaN``/``Infinity`` tokens that other JSON readers reject.
"""

import json
import math
import os
import pathlib
import tempfile
from typing import Any, Iterable

from dlcore import lock
from dlcore.errors import ConfigError

NON_FINITE = "non_finite"


def prepare_workdir(workdir: str | os.PathLike) -> pathlib.Path:
  """Creates ``workdir`` if needed; checks that it is writable and no run holds it.

  ``ConfigError`` says what the path is when it cannot be one: empty, a
  regular file, a dangling symbolic link or a loop of them, or not
  writable.
  """
  if not str(workdir).strip():
    raise ConfigError("option workdir is empty; give a directory for the "
                      "run's results")
  path = pathlib.Path(workdir)
  what = _unusable(path)
  if what:
    raise ConfigError(f"workdir {str(path)!r} {what}; choose another with "
                      "option workdir")
  try:
    path.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
      pass
  except OSError as e:
    raise ConfigError(
        f"workdir {str(path)!r} is not writable ({e.strerror or e}); "
        "choose another with option workdir") from None
  lock.check_free(path)
  return path


def _unusable(path: pathlib.Path) -> str | None:
  """Why ``path`` (or the first of its parents that exists) cannot hold a directory, or None."""
  for part in [path, *path.parents]:
    if part.is_symlink():
      try:
        part.resolve(strict=True)
      except RuntimeError:
        return f"is a loop of symbolic links ({str(part)!r})"
      except OSError:
        return (f"is a symbolic link to {os.readlink(part)!r}, which does "
                "not exist" if part == path else
                f"lies under a symbolic link {str(part)!r} to "
                f"{os.readlink(part)!r}, which does not exist")
    if part.exists():
      if not part.is_dir():
        return ("is a file, not a directory" if part == path else
                f"lies under {str(part)!r}, which is a file")
      return None
  return None


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
  """Writes ``data`` to ``path`` through a temporary file and a rename."""
  path = pathlib.Path(path)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
  try:
    os.fchmod(fd, 0o644)  # Readable like any result; mkstemp makes it 0600.
    with os.fdopen(fd, "wb") as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    pathlib.Path(tmp).unlink(missing_ok=True)
    raise


def _finite(obj: Any, name: str, non_finite: list[str]) -> Any:
  """``obj`` with NaN and infinite floats as None, their dotted names appended."""
  if isinstance(obj, float) and not math.isfinite(obj):
    non_finite.append(name)
    return None
  if isinstance(obj, dict):
    return {k: _finite(v, f"{name}.{k}" if name else str(k), non_finite)
            for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [_finite(v, f"{name}[{i}]", non_finite) for i, v in enumerate(obj)]
  return obj


def strict(obj: Any) -> Any:
  """``obj`` made strict JSON: non-finite numbers become None, named under ``non_finite``."""
  non_finite: list[str] = []
  clean = _finite(obj, "", non_finite)
  if non_finite and isinstance(clean, dict):
    clean[NON_FINITE] = non_finite
  return clean


def dumps(obj: Any, **kwargs) -> str:
  """Strict JSON text of ``obj`` (see ``strict``)."""
  return json.dumps(strict(obj), allow_nan=False, **kwargs)


def write_json(path: str | os.PathLike, obj: Any) -> None:
  write_atomic(path, (dumps(obj, indent=2, sort_keys=True) + "\n").encode())


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
  text = "".join(dumps(r, sort_keys=True) + "\n" for r in records)
  write_atomic(path, text.encode())


def append_jsonl(path: str | os.PathLike, records: Iterable[dict[str, Any]]) -> None:
  """Appends ``records`` to ``path``, one JSON object per line, and fsyncs."""
  text = "".join(dumps(r, sort_keys=True) + "\n" for r in records)
  with open(path, "a", encoding="utf-8") as f:
    f.write(text)
    f.flush()
    os.fsync(f.fileno())
