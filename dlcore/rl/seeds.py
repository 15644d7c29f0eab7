"""Independent seeds of one run, vmapped on each device and spread over devices.

Usage::

  mesh = seed_mesh(config)                  # uses config.seeds, config.devices
  record = episode_returns(chunk_metrics)   # leaves [chunks, seeds]

Seeds are independent: no communication between them, and each seed's
numbers do not depend on the device count.
"""

from typing import Any

import jax
import numpy as np

from dlcore import parallel
from dlcore.errors import ConfigError


def seed_mesh(config) -> jax.sharding.Mesh:
  """The devices the seeds spread over: ``--devices``, or the most that divide ``--seeds``."""
  if config.devices is None:
    count = max(d for d in range(1, min(config.seeds, jax.device_count()) + 1)
                if config.seeds % d == 0)
  else:
    count = config.devices
    if count >= 1 and config.seeds % count:
      raise ConfigError(f"option seeds {config.seeds} does not divide by "
                        f"option devices {count}; choose a multiple of "
                        f"{count} seeds or devices that divide the seeds")
  return parallel.data_mesh(count)


def episode_returns(metrics: dict[str, np.ndarray]) -> dict[str, Any]:
  """The mean return of the episodes that ended in some chunks, per seed and overall.

  ``metrics`` holds ``episodes`` and ``return_sum`` (their returns' sum)
  with leaves ``[chunks, seeds]``. A seed that finished no episode has
  ``None``; the overall mean is over the other seeds.
  """
  episodes = metrics["episodes"].sum(0)
  with np.errstate(invalid="ignore", divide="ignore"):
    per_seed_mean = metrics["return_sum"].sum(0) / episodes
  returns = [float(r) if np.isfinite(r) else None for r in per_seed_mean]
  finished = [r for r in returns if r is not None]
  return {"episode_return": float(np.mean(finished)) if finished else None,
          "episode_return_per_seed": returns,
          "episodes": int(episodes.sum())}
