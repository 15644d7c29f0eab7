"""CPU seconds per step of each side, all on one core: a comparison a busy host cannot skew.

Usage::

  python -m benchmarks.cpu_time --workloads mlp,lenet5,lstm

Wall-clock medians on a shared machine measure the neighbours as much as
the step, and PyTorch's OpenMP threads suffer most from them. Run as a
script, this module re-executes itself pinned to one core (Linux
``sched_setaffinity``, as ``taskset -c 0`` does), so every thread JAX and
PyTorch start runs there, and the process CPU time of a step is the work
that step does, whatever else runs. (Pinning only the running process is
not enough: threads started at import keep both cores; LeNet-5 measured
16-18 ms that way against 14.5 ms truly on one core.) (``XLA_FLAGS=
--xla_cpu_multi_thread_eigen=false`` is not enough: XLA's YNNPACK fusions
keep their own thread pool, measured at 21.7 ms of CPU time in a 12.2 ms
LeNet-5 step.) Sides alternate step by step, as in ``python -m
benchmarks``; prints the median and fastest per side.
"""

import dataclasses
import os
import sys
import time

import numpy as np

from benchmarks.suite import build_sides
from benchmarks.workloads import WORKLOADS, torch_available
from dlcore import cli
from dlcore.config import field, parse_args
from dlcore.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class CpuTimeConfig:
  """Options of ``python -m benchmarks.cpu_time``."""
  workloads: str = field("mlp,lenet5,lstm", "comma-separated workloads")
  batch_size: int = field(128, "batch size")
  steps: int = field(30, "timed steps per side")


def cpu_times(sides: dict, steps: int, settle_s: float = 0.005) -> dict:
  """Process CPU seconds of each of ``steps`` steps per side, sides rotating."""
  for side in sides.values():
    side()
  names = list(sides)
  times = {name: [] for name in names}
  for i in range(steps):
    for name in names[i % len(names):] + names[:i % len(names)]:
      time.sleep(settle_s)
      start = time.process_time()
      sides[name]()
      times[name].append(time.process_time() - start)
  return times


def main(argv=None) -> dict:
  config = parse_args(CpuTimeConfig, __doc__, argv)
  if torch_available():
    import torch  # pylint: disable=import-outside-toplevel
    torch.set_num_threads(1)
  results = {}
  for name in config.workloads.split(","):
    sides, _ = build_sides(WORKLOADS[name], config.batch_size, "float32",
                           with_baseline=True, with_torch=True,
                           max_steps=config.steps + 4)
    times = cpu_times(sides, config.steps)
    results[name] = {side: (float(np.median(t)), float(np.min(t)))
                     for side, t in times.items()}
    print(f"{name}: " + "  ".join(
        f"{side} {1e3 * median:.2f} ms (fastest {1e3 * fastest:.2f})"
        for side, (median, fastest) in results[name].items()), flush=True)
  return results


def run_on_one_core() -> None:
  """Re-executes this command pinned to one core, unless it already is."""
  if not hasattr(os, "sched_setaffinity"):
    raise ConfigError("benchmarks.cpu_time pins itself to one core with "
                      "Linux's sched_setaffinity, which this system lacks; "
                      "run python -m benchmarks instead")
  cores = os.sched_getaffinity(0)
  if len(cores) > 1:
    os.sched_setaffinity(0, {min(cores)})
    os.execv(sys.executable, [sys.executable, "-m", __spec__.name,
                              *sys.argv[1:]])


if __name__ == "__main__":
  cli.run(run_on_one_core)
  cli.run(main)
