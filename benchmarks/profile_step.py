"""Where does a workload's dlcore step spend its time? Per-op device time.

Usage::

  python -m benchmarks.profile_step --workload lenet5 --batch-size 128
  taskset -c 0 python -m benchmarks.profile_step --workload lenet5  # one core: robust on a busy host

Traces ``--steps`` warm steps with ``jax.profiler`` and prints, per XLA
operation (fusion, convolution, library call), its mean milliseconds per
step, largest first, with the HLO line that defines it, so a slow kernel
can be found and read in the optimised program.
"""

import collections
import dataclasses
import pathlib
import re
import tempfile

import jax

from benchmarks.suite import build_sides
from benchmarks.workloads import DTYPES, WORKLOADS
from dlcore import cli
from dlcore.config import field, parse_args
from dlcore.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class ProfileConfig:
  """Options of ``python -m benchmarks.profile_step``."""
  workload: str = field("lenet5", "workload to profile",
                        choices=sorted(WORKLOADS))
  batch_size: int = field(128, "batch size")
  dtype: str = field("float32", "compute dtype", choices=DTYPES)
  steps: int = field(10, "traced steps")
  top: int = field(15, "operations listed")


def op_times(trace_dir: str) -> collections.Counter:
  """Total nanoseconds per event name in the newest trace under ``trace_dir``."""
  from jax._src.lib import _profile_data  # pylint: disable=import-outside-toplevel
  path = sorted(pathlib.Path(trace_dir).rglob("*.xplane.pb"))[-1]
  totals = collections.Counter()
  for plane in _profile_data.ProfileData.from_file(str(path)).planes:
    for line in plane.lines:
      for event in line.events:
        totals[event.name] += event.duration_ns
  return totals


def main(argv=None) -> list[tuple[str, float]]:
  config = parse_args(ProfileConfig, __doc__, argv)
  if config.workload not in WORKLOADS:
    raise ConfigError(f"unknown workload {config.workload!r}; choose one of "
                      f"{', '.join(WORKLOADS)}")
  side = build_sides(WORKLOADS[config.workload], config.batch_size,
                     config.dtype, with_baseline=False, with_torch=False,
                     max_steps=config.steps + 4)[0]["dlcore"]
  hlo = side.compiled.as_text()
  definitions = {m.group(1): m.group(0).strip() for m in
                 re.finditer(r"^\s*(?:ROOT )?%([\w.\-]+) = .*$", hlo, re.M)}
  side()
  side()
  with tempfile.TemporaryDirectory() as trace_dir:
    jax.profiler.start_trace(trace_dir)
    for _ in range(config.steps):
      side()
    jax.profiler.stop_trace()
    totals = op_times(trace_dir)
  rows = [(name, ns / 1e6 / config.steps) for name, ns in totals.most_common()
          if name in definitions][:config.top]
  print(f"{config.workload}, batch {config.batch_size}: ms per step by XLA op")
  for name, ms in rows:
    print(f"{ms:8.2f}  {definitions[name][:150]}")
  return rows


if __name__ == "__main__":
  cli.run(main)
