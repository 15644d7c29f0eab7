"""What a run writes for people to read: metrics, TensorBoard, image grids, the model table.

Usage::

  writer = Writer(workdir, start_step=0)
  writer.write(100, {"train_loss": 0.3, "test_accuracy": 0.97})
  writer.write_images(100, images)          # [N, H, W, C] in [0, 1]
  writer.close()

``metrics.jsonl`` gets one JSON line per record, appended and fsynced;
``tensorboard/`` gets the same scalars and the image grids as TensorBoard
event files, written by tensorboardX (no TensorFlow needed); every sample
grid is also ``samples_XXXXXX.png``. Only the main process writes (the
caller passes ``enabled=False`` elsewhere).
"""

import math
import pathlib
from typing import Any

import jax
import numpy as np
import tensorboardX

from dlcore import files, plots, sharding

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"
MODEL_FILE = "model.txt"
SUMMARY_FILE = "summary.json"  # Written by the driver when the run ends.


class Writer:
  """Appends records to ``metrics.jsonl`` and TensorBoard; saves sample grids."""

  def __init__(self, workdir: pathlib.Path, start_step: int = 0,
               enabled: bool = True):
    self.workdir = workdir
    self.enabled = enabled
    self._tensorboard = None
    if enabled:  # purge_step drops events after start_step (all at 0).
      self._tensorboard = tensorboardX.SummaryWriter(
          str(workdir / TENSORBOARD_DIR), purge_step=start_step)

  def write(self, step: int, record: dict[str, Any]) -> None:
    """One record (``step`` included) to both logs; non-numbers go to JSON only."""
    if not self.enabled:
      return
    files.append_jsonl(self.workdir / METRICS_FILE, [{"step": step, **record}])
    for name, value in record.items():
      if isinstance(value, (int, float)) and not isinstance(value, bool):
        self._tensorboard.add_scalar(name, value, step)
    self._tensorboard.flush()

  def write_images(self, step: int, images: np.ndarray,
                   name: str = "samples") -> None:
    """Images ``[N, H, W, C]`` in [0, 1] as ``{name}_{step:06d}.png`` and a TensorBoard grid."""
    if not self.enabled:
      return
    plots.image_grid(images, self.workdir / f"{name}_{step:06d}.png")
    self._tensorboard.add_image(name, tile(images), step, dataformats="HWC")
    self._tensorboard.flush()

  def close(self) -> None:
    if self._tensorboard is not None:
      self._tensorboard.close()


def tile(images: np.ndarray, columns: int = 10) -> np.ndarray:
  """``[N, H, W, C]`` -> one ``[rows*H, columns*W, C]`` image (C 1 becomes 3)."""
  images = np.clip(np.asarray(images, np.float32), 0.0, 1.0)
  n, h, w, c = images.shape
  columns = min(columns, n)
  rows = math.ceil(n / columns)
  grid = np.zeros((rows * columns, h, w, c), np.float32)
  grid[:n] = images
  grid = grid.reshape(rows, columns, h, w, c).transpose(0, 2, 1, 3, 4)
  grid = grid.reshape(rows * h, columns * w, c)
  return np.repeat(grid, 3, axis=-1) if c == 1 else grid


def parameter_table(state: Any) -> tuple[str, int]:
  """``(table, count)`` of every ``params`` leaf in ``state``: path, shape, dtype, size, placement.

  The table is built from the state rather than with ``nn.tabulate``
  because the loop sees states, not modules and their inputs; it covers
  every network of an objective (a GAN's two, a DQN agent's online network).
  Target networks, optimizer moments and EMA copies are not parameters.
  Each row also gives the leaf's partition spec and the bytes of it the
  most loaded device holds (from its shards); the last lines, the
  parameters' and the optimizer state's bytes per device.
  """
  rows, total = [], 0
  for path, leaf in jax.tree_util.tree_leaves_with_path(state):
    names = [str(getattr(p, "name", getattr(p, "key", p))) for p in path]
    if "params" not in names or "opt_state" in names:
      continue
    size = int(np.prod(leaf.shape))
    total += size
    rows.append(("/".join(names), str(tuple(leaf.shape)), str(leaf.dtype),
                 f"{size:,}", sharding.spec_text(leaf),
                 f"{sharding.per_device_bytes(leaf):,}"))
  header = ("parameter", "shape", "dtype", "size", "partition", "bytes/device")
  widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
  line = lambda r: "  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip()
  table = [line(header), line(tuple("-" * w for w in widths))]
  placed = {k: v for k, v in sharding.placement(
      state, None).items() if k != "mesh"} if total else {}
  table += [line(r) for r in rows] + [f"total: {total:,} parameters"]
  table += [f"{name.replace('_', ' ')}: {value:,}" for name, value
            in placed.items()]
  return "\n".join(table) + "\n", total
