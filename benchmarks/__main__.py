"""How fast does each kind of train step run here, and how close to the peak?

Usage::

  python -m benchmarks --quick                 # under 2 minutes on 2 CPU cores
  python -m benchmarks --workloads mlp,resnet20 --dtype bfloat16 --repeats 50

For every workload: dlcore's jitted train step, a hand-written JAX + Flax +
Optax step on the same model, batch and optimizer, and PyTorch eager where
a PyTorch model exists and ``torch`` is installed, timed interleaved on the
same random batch. Prints a table and writes ``<output>.json`` (default
``benchmarks/results/<machine>-<date>``), ``.md``, a bar chart ``.png`` and
the batch-size sweep ``-sweep.png``. See ``--help`` for every option.
"""

import dataclasses
import datetime
import pathlib
import re
import time

from benchmarks import hardware, report, suite
from benchmarks.workloads import DTYPES, WORKLOADS
from dlcore import cli
from dlcore.config import field, parse_args, to_dict
from dlcore.errors import ConfigError

MIN_REPEATS = 20
RESULTS_DIR = pathlib.Path(__file__).parent / "results"


@dataclasses.dataclass(frozen=True)
class BenchConfig:
  """Options of ``python -m benchmarks``."""
  workloads: str = field("all", "comma-separated workloads, or all (with "
                         "--quick: those fast on a CPU): "
                         + ", ".join(WORKLOADS))
  batch_size: int = field(0, "batch size for every workload (0: each "
                          "workload's default)")
  dtype: str = field("float32", "compute dtype (bfloat16 keeps float32 "
                     "parameters)", choices=DTYPES)
  repeats: int = field(MIN_REPEATS, "timed steps per side (at least 20)")
  rounds: int = field(MIN_REPEATS, "interleaved rounds the timed steps are "
                      "split into (20 with 20 repeats: the sides alternate "
                      "step by step)")
  quick: bool = field(False, "small batches, a short sweep and a small "
                      "peak matmul: under 2 minutes on 2 CPU cores")
  sweep: bool = field(True, "run the batch-size sweep (MLP, ResNet-20)")
  sweep_batch_sizes: str = field("", "comma-separated batch sizes replacing "
                                 "each swept workload's own")
  torch: bool = field(True, "time PyTorch eager where torch is installed")
  peak_size: int = field(0, "side of the peak matmul (0: by platform)")
  output: str | None = field(None, "output path without suffix (default "
                             "benchmarks/results/<machine>-<date>)")


def _check(config: BenchConfig) -> list[str]:
  if config.workloads == "all":
    names = [name for name, workload in WORKLOADS.items()
             if workload.in_quick or not config.quick]
  else:
    names = [n.strip() for n in config.workloads.split(",") if n.strip()]
  unknown = [n for n in names if n not in WORKLOADS]
  if unknown or not names:
    raise ConfigError(f"unknown workload {', '.join(unknown) or '(none)'}; "
                      f"choose from all, {', '.join(WORKLOADS)}")
  if config.repeats < MIN_REPEATS:
    raise ConfigError(f"--repeats must be at least {MIN_REPEATS}, got "
                      f"{config.repeats}")
  if not 1 <= config.rounds <= config.repeats:
    raise ConfigError(f"--rounds must be between 1 and --repeats, got "
                      f"{config.rounds}")
  if not re.fullmatch(r"(\d+(,\d+)*)?", config.sweep_batch_sizes):
    raise ConfigError("--sweep-batch-sizes must be comma-separated positive "
                      f"integers, got {config.sweep_batch_sizes!r}")
  if config.batch_size < 0 or config.peak_size < 0:
    raise ConfigError("--batch-size and --peak-size must be 0 (default) or "
                      "positive")
  return names


def run(config: BenchConfig) -> dict:
  """Runs the suite described by ``config``; returns the results dict."""
  names = _check(config)
  start = time.perf_counter()
  machine = hardware.machine_info()
  size = config.peak_size or hardware.default_peak_size(machine["platform"],
                                                        config.quick)
  measured = hardware.measure_peak(config.dtype, size)
  peak = {"size": size, "measured_flops_per_s": measured["flops_per_second"],
          "measured": measured,
          "nominal_flops_per_s": hardware.nominal_peak(machine["device_kind"],
                                                       config.dtype)}
  records = []
  print("\n".join(report.TABLE_HEADER), flush=True)
  for name in names:
    workload = WORKLOADS[name]
    batch_size = config.batch_size or (
        workload.quick_batch_size if config.quick else workload.batch_size)
    records.append(suite.run_workload(
        workload, batch_size=batch_size, dtype=config.dtype,
        steps=config.repeats, rounds=config.rounds, with_torch=config.torch,
        peak=peak))
    print(report.markdown_row(records[-1]), flush=True)
  sweeps = []
  if config.sweep:
    for name, record in zip(names, records):
      workload = WORKLOADS[name]
      sizes = workload.quick_sweep if config.quick else workload.sweep
      if sizes and config.sweep_batch_sizes:
        sizes = tuple(int(b) for b in config.sweep_batch_sizes.split(","))
      if sizes:
        sweeps.append(suite.run_sweep(workload, sizes, config.dtype,
                                      steps=config.repeats,
                                      rounds=config.rounds, measured=record))
  return {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(
              timespec="seconds"),
          "machine": machine, "config": to_dict(config), "peak": peak,
          "workloads": records, "sweeps": sweeps,
          "total_seconds": time.perf_counter() - start}


def output_stem(config: BenchConfig, results: dict) -> pathlib.Path:
  if config.output:
    return pathlib.Path(config.output)
  return RESULTS_DIR / (f"{hardware.machine_slug(results['machine'])}-"
                        f"{results['date'][:10]}")


def main(argv=None) -> dict:
  config = parse_args(BenchConfig, __doc__, argv)
  results = run(config)
  print()
  print(report.markdown(results))
  for path in report.write_all(results, output_stem(config, results)):
    print(f"wrote {path}")
  return results


if __name__ == "__main__":
  cli.run(main)
