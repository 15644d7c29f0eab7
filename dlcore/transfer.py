"""Starting a model from another run's weights: load, then merge strictly.

Usage::

  loaded = load_variables("runs/pretrain")       # a workdir, an Orbax
  loaded = load_variables("ckpt/3000")           # checkpoint or an .npz
  init = warm_start(loaded, head=model.head_name, reinit=("HEAD",),
                    remap=("encoder/=",),
                    source="runs/pretrain")
  variables = init({"params": fresh_params, "batch_stats": fresh_stats})
  save_variables("resnet50.npz", variables)      # e.g. converted weights

Variables are ``{"params": tree, "batch_stats": tree}`` (nested dicts of
arrays); flat, they are keyed ``"params/Conv_0/kernel"``,
``"batch_stats/BatchNorm_0/mean"``. Sources:

- a dlcore workdir: the latest checkpoint in its ``checkpoints/``;
- an Orbax ``CheckpointManager`` directory (numbered steps; the latest is
  read), one step of it (with its ``state/`` item), or a directory that
  ``orbax.checkpoint.StandardCheckpointer`` wrote: any pytree holding
  ``params`` (and ``batch_stats``), such as a dlcore ``TrainState``;
- an ``.npz`` file keyed by flat names, read with ``allow_pickle=False``.

``.safetensors`` is not read: it would add a dependency for what ``.npz``
already does without pickle (named arrays, no code), and the files found
online hold PyTorch layouts (``[O, I, kh, kw]`` kernels, ``running_var``)
that need a converter such as ``dlcore.from_torch`` anyway, which then
saves an ``.npz``.

Merging is strict (like big_vision's ``merge_params``): every leaf of the
fresh model is taken from the source, by path and with the same shape,
unless a ``reinit`` pattern fullmatches its path inside its collection
(``"Dense_1/.*"``; ``"HEAD"`` stands for the model's classifier head, the
top-level module its class names as ``head``), in which case it keeps its
fresh value. Any other
leaf missing from the source, any source leaf the model lacks, and any
shape that differs stop the merge with one sentence listing them all.
``remap`` (``"OLD=NEW"``) first renames source paths starting with ``OLD``.
"""

import os
import pathlib
import re
import zipfile
from typing import Any, Callable

import jax
import numpy as np
import orbax.checkpoint as ocp

from dlcore import files
from dlcore.checkpoint import Checkpointer
from dlcore.errors import ConfigError
from dlcore.loop import CHECKPOINT_DIR
from dlcore.optim import path_name

COLLECTIONS = ("params", "batch_stats")
HEAD = "HEAD"
_LISTED = 12  # Offending paths named in one sentence; the rest are counted.

Variables = dict[str, Any]


def flatten(variables: Variables) -> dict[str, Any]:
  """``{"params": {"Conv_0": {"kernel": x}}}`` -> ``{"params/Conv_0/kernel": x}``."""
  return {path_name(path): leaf for path, leaf
          in jax.tree_util.tree_leaves_with_path(variables)}


def unflatten(flat: dict[str, Any]) -> Variables:
  """The inverse of ``flatten``: nested dicts, every collection present."""
  tree: Variables = {name: {} for name in COLLECTIONS}
  for name, leaf in flat.items():
    *parents, last = name.split("/")
    node = tree
    for part in parents:
      node = node.setdefault(part, {})
    node[last] = leaf
  return tree


def save_variables(path: str | os.PathLike, variables: Variables) -> None:
  """Writes ``variables`` as an ``.npz`` keyed by flat names (atomically)."""
  import io  # pylint: disable=import-outside-toplevel
  buffer = io.BytesIO()
  np.savez(buffer, **{k: np.asarray(v) for k, v in flatten(variables).items()})
  files.write_atomic(path, buffer.getvalue())


def load_variables(source: str | os.PathLike) -> Variables:
  """``{"params", "batch_stats"}`` held by ``source``; see the module docstring."""
  path = pathlib.Path(source)
  if not path.exists():
    raise ConfigError(f"option init_from {str(path)!r} does not exist; give "
                      "a dlcore workdir, an Orbax checkpoint directory or "
                      "an .npz parameter file")
  if path.is_file():
    return _from_npz(path)
  tree = _from_orbax(path)
  if not isinstance(tree, dict) or "params" not in tree:
    keys = ", ".join(map(str, tree)) if isinstance(tree, dict) else type(tree)
    raise ConfigError(f"option init_from {str(path)!r} holds a checkpoint "
                      f"without params (it holds {keys}); restore a "
                      "classifier's run")
  variables = {name: tree.get(name) or {} for name in COLLECTIONS}
  for name, value in flatten(variables).items():
    check_weights(name, np.asarray(value), f"option init_from {str(path)!r}")
  return variables


def _from_npz(path: pathlib.Path) -> Variables:
  """An ``.npz`` of weights: keyed ``params/...`` and ``batch_stats/...``, or bare paths (parameters)."""
  not_params = (f"option init_from {str(path)!r} is not a parameter file: "
                "give an .npz of arrays keyed 'params/...' and "
                "'batch_stats/...' (or a workdir or Orbax checkpoint)")
  try:
    loaded = np.load(path, allow_pickle=False)
    if not isinstance(loaded, np.lib.npyio.NpzFile):  # An .npy named .npz.
      raise ConfigError(f"{not_params}; it holds a single .npy array")
    with loaded as npz:
      flat = {name: npz[name] for name in npz.files}
  except ConfigError:
    raise
  except (ValueError, OSError, zipfile.BadZipFile, EOFError):
    raise ConfigError(not_params) from None
  if not flat:
    raise ConfigError(not_params)
  if all("/" in name and name.split("/")[0] not in COLLECTIONS
         for name in flat):  # Bare module paths: parameters.
    flat = {f"params/{name}": value for name, value in flat.items()}
  for name, value in flat.items():
    if name.split("/")[0] not in COLLECTIONS:
      raise ConfigError(f"{not_params}; {name!r} belongs to neither")
    check_weights(name, np.asarray(value), f"option init_from {str(path)!r}")
  return unflatten(flat)


def check_weights(name: str, value: np.ndarray, source: str) -> None:
  """``ConfigError`` unless ``value`` can be a weight: floating point and finite."""
  if not np.issubdtype(value.dtype, np.floating):
    raise ConfigError(f"{source} holds {name} of dtype {value.dtype}, which "
                      "is no weight; weights are floating-point arrays")
  if not np.isfinite(value).all():
    raise ConfigError(f"{source} holds NaN or infinite values in {name}; "
                      "starting from them would train nothing")


def _from_orbax(path: pathlib.Path) -> Any:
  """The pytree of the latest checkpoint under ``path`` (numpy arrays)."""
  for directory in (path / CHECKPOINT_DIR, path):
    if directory.is_dir() and any(p.name.isdigit() for p in directory.iterdir()):
      checkpointer = Checkpointer(directory, read_only=True)
      try:
        restored = checkpointer.restore_latest()
      finally:
        checkpointer.close()
      if restored is not None:
        return restored[0]
  item = path / "state" if (path / "state").is_dir() else path
  try:
    return ocp.StandardCheckpointer().restore(item.absolute())
  except Exception:  # Orbax raises many kinds for "not a checkpoint".
    raise ConfigError(f"option init_from {str(path)!r} holds no checkpoint; "
                      "give a dlcore workdir, an Orbax checkpoint directory "
                      "or an .npz parameter file") from None


def parse_remap(specs: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
  """``("encoder/=",)`` -> ``(("encoder/", ""),)``; ``ConfigError`` if malformed."""
  pairs = []
  for spec in specs:
    old, equals, new = spec.partition("=")
    if not equals or not old:
      raise ConfigError(f"option remap takes 'OLD=NEW' path prefixes such as "
                        f"'encoder/=' or 'layer1=stage1', got {spec!r}")
    pairs.append((old, new))
  return tuple(pairs)


def _remapped(loaded: dict[str, Any], remap: tuple[tuple[str, str], ...]):
  """``loaded`` (flat) with each path inside its collection renamed by ``remap``."""
  out, used = {}, set()
  for name, leaf in loaded.items():
    collection, _, path = name.partition("/")
    for old, new in remap:
      if path.startswith(old):
        path, used = new + path[len(old):], used | {old}
        break
    out[f"{collection}/{path}"] = leaf
  unused = [old for old, _ in remap if old not in used]
  if unused:
    raise ConfigError(f"option remap prefix {unused[0]!r} starts no path of "
                      f"the checkpoint; its paths look like "
                      f"{', '.join(list(loaded)[:4])}")
  return out


def _listing(names: list[str]) -> str:
  shown = ", ".join(names[:_LISTED])
  return shown + (f" and {len(names) - _LISTED} more"
                  if len(names) > _LISTED else "")


def merge(loaded: Variables, fresh: Variables, *, head: str,
          reinit: tuple[str, ...] = (HEAD,), remap: tuple[str, ...] = (),
          source: str = "the checkpoint") -> Variables:
  """``fresh`` with every leaf not re-initialised taken from ``loaded``.

  ``fresh`` may hold ``jax.ShapeDtypeStruct`` leaves (from ``jax.eval_shape``):
  the merge then checks without initialising anything, and the restored
  leaves come back as numpy arrays. Loaded values take the fresh leaf's
  dtype. ``head``: the model's classifier head (the top-level module its
  class declares), which ``HEAD`` stands for. Raises ``ConfigError``
  naming every offending path; see the module docstring.
  """
  patterns = tuple(re.escape(head) + "/.*" if p == HEAD else p
                   for p in reinit)
  for pattern in patterns:
    try:
      re.compile(pattern)
    except re.error as e:
      raise ConfigError(f"option reinit has an invalid regular expression "
                        f"{pattern!r} ({e})") from None
  flat_loaded = _remapped(flatten(loaded), parse_remap(remap))
  flat_fresh = flatten(fresh)

  def is_reinit(name: str) -> bool:
    inside = name.partition("/")[2]
    return any(re.fullmatch(p, inside) for p in patterns)

  for pattern, given in zip(patterns, reinit):
    if not any(re.fullmatch(pattern, name.partition("/")[2])
               for name in (*flat_fresh, *flat_loaded)):
      raise ConfigError(f"option reinit pattern {given!r} matches no path of "
                        f"the model or the checkpoint; the model's paths look "
                        f"like {', '.join(list(flat_fresh)[:4])}")
  if flat_fresh and all(is_reinit(n) for n in flat_fresh):
    raise ConfigError(
        f"option reinit {' '.join(reinit)} re-initialises every parameter, so "
        f"nothing would be taken from {source}; train from scratch with "
        "experiments/classify.py instead, or re-initialise fewer paths")
  missing = [n for n in flat_fresh if not is_reinit(n) and n not in flat_loaded]
  extra = [n for n in flat_loaded if not is_reinit(n) and n not in flat_fresh]
  shapes = [f"{n} ({tuple(np.shape(flat_loaded[n]))} there, "
            f"{tuple(flat_fresh[n].shape)} in the model)" for n in flat_fresh
            if not is_reinit(n) and n in flat_loaded
            and tuple(np.shape(flat_loaded[n])) != tuple(flat_fresh[n].shape)]
  problems = ([f"it lacks {_listing(missing)}"] if missing else []) + (
      [f"the model lacks its {_listing(extra)}"] if extra else []) + (
          [f"shapes differ for {_listing(shapes)}"] if shapes else [])
  if problems:
    raise ConfigError(
        f"{source} does not match the model: {'; '.join(problems)}; "
        "re-initialise such leaves with option reinit or rename paths with "
        "option remap")
  return jax.tree_util.tree_map_with_path(
      lambda path, leaf: leaf if is_reinit(path_name(path)) else
      _as(flat_loaded[path_name(path)], leaf), fresh)


def _as(value: Any, like: Any) -> Any:
  if isinstance(like, jax.ShapeDtypeStruct):
    return np.asarray(value, dtype=like.dtype)
  return jax.numpy.asarray(value, dtype=like.dtype)


def warm_start(loaded: Variables, *, head: str,
               reinit: tuple[str, ...] = (HEAD,), remap: tuple[str, ...] = (),
               source: str = "the checkpoint") -> Callable[[Variables], Variables]:
  """``fresh variables -> merged variables``: ``merge`` with these options bound."""
  return lambda fresh: merge(loaded, fresh, head=head, reinit=reinit,
                             remap=remap, source=source)
