"""dlcore on every CPU core through its data parallelism, against PyTorch's threads.

Usage::

  python -m benchmarks.cpu_cores --workloads mlp,lenet5,lstm

XLA's CPU backend spreads one operation over a thread pool; for the small
steps of the seed models that uses two cores poorly (LeNet-5 and the LSTM
ran 1.4x faster on two cores than on one, PyTorch 1.6-1.8x). Given one XLA
device per core instead, dlcore's own data parallelism (``parallel.wrap``:
``shard_map`` over the ``"data"`` axis, gradients ``pmean``-ed) gives each
core half the batch. Run as a script, this module re-executes itself with
``--xla_force_host_platform_device_count=<cores>`` appended to ``XLA_FLAGS``
(the device count is fixed when JAX starts) and times, sides interleaved
as in ``python -m benchmarks`` (median and fastest wall milliseconds):

* ``one device``: the supervised workload's dlcore step, as
  ``python -m benchmarks`` times it;
* ``all cores``: the same step, state and batch, data-parallel over one
  device per core;
* ``torch``: PyTorch eager with its default threads (one per core).
"""

import dataclasses
import os
import sys

import jax
import numpy as np

from benchmarks.suite import build_sides
from benchmarks.timing import interleave, summary
from benchmarks.workloads import WORKLOADS, dlcore_classifier
from dlcore import cli, parallel
from dlcore.config import field, parse_args
from dlcore.errors import ConfigError
from dlcore.models import CLASSIFIERS
from dlcore.supervised import steps as supervised_steps

# The supervised workloads: those training one of dlcore's classifiers.
SUPERVISED = tuple(name for name in WORKLOADS if name in CLASSIFIERS)
DEVICE_COUNT_FLAG = "--xla_force_host_platform_device_count"


@dataclasses.dataclass(frozen=True)
class CpuCoresConfig:
  """Options of ``python -m benchmarks.cpu_cores``."""
  workloads: str = field("mlp,lenet5,lstm", "comma-separated supervised "
                         f"workloads: {', '.join(SUPERVISED)}")
  batch_size: int = field(128, "global batch size (split over the cores)")
  steps: int = field(30, "timed steps per side")


def data_parallel_side(name: str, numpy_batch, key: jax.Array, mesh):
  """A closure running one data-parallel dlcore step of workload ``name``."""
  init_key, step_key = jax.random.split(key)
  _, state = dlcore_classifier(name)(numpy_batch, "float32", init_key)
  step = parallel.data_parallel(supervised_steps.train_step, mesh,
                                donate_argnums=0)
  holder = [parallel.replicate(state, mesh)]
  batch = parallel.shard_batch(numpy_batch, mesh)
  step_key = parallel.replicate(step_key, mesh)

  def run():
    holder[0], metrics = step(holder[0], batch, step_key)
    jax.block_until_ready(metrics)

  return run


def main(argv=None) -> dict:
  config = parse_args(CpuCoresConfig, __doc__, argv)
  names = config.workloads.split(",")
  unknown = [n for n in names if n not in SUPERVISED]
  if unknown:
    raise ConfigError(f"cpu_cores times supervised workloads only, not "
                      f"{', '.join(unknown)}; choose from {', '.join(SUPERVISED)}")
  mesh = parallel.data_mesh()
  parallel.check_divisible(config.batch_size, mesh)
  results = {}
  for name in names:
    workload = WORKLOADS[name]
    sides, _ = build_sides(workload, config.batch_size, "float32",
                           with_baseline=False, with_torch=True,
                           max_steps=config.steps + 4)
    same_batch = workload.make_batch(np.random.default_rng(0),
                                     config.batch_size)  # as build_sides's
    sides = {"one device": sides.pop("dlcore"),
             "all cores": data_parallel_side(name, same_batch,
                                             jax.random.PRNGKey(0), mesh),
             **sides}
    times = interleave(sides, steps=config.steps, rounds=config.steps)
    results[name] = {side: summary(t) for side, t in times.items()}
    print(f"{name} (batch {config.batch_size}, {mesh.size} devices): " +
          "  ".join(f"{side} {1e3 * s['median_s']:.2f} ms (fastest "
                    f"{1e3 * s['min_s']:.2f})"
                    for side, s in results[name].items()), flush=True)
  return results


def run_with_a_device_per_core() -> None:
  """Re-executes this command with one XLA CPU device per usable core."""
  if DEVICE_COUNT_FLAG in os.environ.get("XLA_FLAGS", ""):
    return
  cores = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
           else os.cpu_count())  # Linux: the cores this process may use.
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                             + f" {DEVICE_COUNT_FLAG}={cores}").strip()
  os.execv(sys.executable, [sys.executable, "-m", __spec__.name,
                            *sys.argv[1:]])


if __name__ == "__main__":
  run_with_a_device_per_core()
  cli.run(main)
