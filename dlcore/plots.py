"""Plots a person would rather look at than read: curves and image grids.

Figures are rendered with matplotlib's Agg backend (no display needed) and
written atomically.
"""

import io
import os
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position

from dlcore import files  # pylint: disable=wrong-import-position


def save_figure(fig, path: str | os.PathLike) -> None:
  buffer = io.BytesIO()
  fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
  plt.close(fig)
  files.write_atomic(path, buffer.getvalue())


def plot_curves(records: Sequence[dict[str, Any]], path: str | os.PathLike,
                x: str, panels: dict[str, Sequence[str]]) -> None:
  """One panel per entry of ``panels`` (title -> metric keys) against ``x``."""
  fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6),
                           squeeze=False)
  for ax, (title, keys) in zip(axes[0], panels.items()):
    for key in keys:
      points = [(r[x], r[key]) for r in records if key in r]
      if points:
        xs, ys = zip(*points)
        ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, markersize=3,
                label=key)
    ax.set_title(title)
    ax.set_xlabel(x)
    ax.grid(alpha=0.3)
    ax.legend()
  save_figure(fig, path)


def image_grid(images: np.ndarray, path: str | os.PathLike,
               titles: Sequence[str] | None = None, columns: int = 10) -> None:
  """Saves images ``[N, H, W, C]`` with values in [0, 1] as one grid PNG."""
  images = np.clip(np.asarray(images, np.float32), 0.0, 1.0)
  rows = -(-len(images) // columns)
  fig, axes = plt.subplots(rows, columns, figsize=(columns * 0.9, rows * 0.9),
                           squeeze=False)
  for i, ax in enumerate(axes.flat):
    ax.axis("off")
    if i < len(images):
      image = images[i]
      ax.imshow(image[..., 0] if image.shape[-1] == 1 else image,
                cmap="gray" if image.shape[-1] == 1 else None, vmin=0, vmax=1,
                interpolation="nearest")
      if titles is not None:
        ax.set_title(titles[i], fontsize=7)
  save_figure(fig, path)
