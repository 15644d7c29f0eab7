"""Independent seeds of one run, vmapped on each device and spread over devices.

Usage::

  keys = seed_keys(config)                  # [seeds, 2]: seed i's key is row i
  mesh = seed_mesh(config)                  # uses config.seeds, config.devices
  init = per_seed(program.init, mesh, config.parallel)
  runners = init(parallel.shard_batch(np.asarray(keys), mesh))
  record = episode_returns(chunk_metrics)   # leaves [chunks, seeds]

Seeds are independent: no communication between them, and each seed's
numbers do not depend on the device count.
"""

from typing import Any

import jax
import numpy as np

from dlcore import parallel
from dlcore.errors import ConfigError


def seed_keys(config) -> jax.Array:
  """One key per seed, ``[seeds, 2]``: every draw of seed ``i`` derives from row ``i``."""
  return jax.random.split(jax.random.PRNGKey(config.seed), config.seeds)


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


def per_seed(fn, mesh, mechanism: str, **options):
  """``fn`` vmapped over its first argument's seeds, split over ``mesh`` (outputs too).

  Further arguments (a step's batch and key) are shared by every seed.
  """
  def mapped(xs, *rest, axis_name):
    del axis_name  # Seeds are independent: no collective.
    return jax.vmap(lambda x: fn(x, *rest))(xs)
  return parallel.wrap(mapped, mesh, mechanism, sharded_argnums=(0,),
                       shard_outputs=True, **options)


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
