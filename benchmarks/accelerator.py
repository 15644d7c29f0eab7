"""The prepared accelerator run: one call that measures what a lent GPU (or TPU) can tell.

Usage::

  python -m benchmarks.accelerator                 # on the accelerator, ~8 minutes
  python -m benchmarks.accelerator --dry-run       # the same code, tiny, on a CPU

In order of value, each unit in a subprocess of its own (a crash or a
time-out loses that unit only), the results written after every unit so
that a run cut short by its time limit still leaves them:

1. ``bench``: ``python -m benchmarks`` (dlcore against each hand-written
   baseline) in float32 and bfloat16 at batch sizes that fill the device:
   step time, examples (tokens) per second, utilisation of the measured and
   the nominal peak, MFU from model FLOPs where the workload counts them;
2. ``profile``: one step of the Transformer and of ResNet-20 traced by
   ``jax.profiler``, the XLA operations that take the most time
   (``benchmarks.profile_step``);
3. ``experiment``: the default run of each objective once, its wall time
   and headline figure from its ``summary.json``;
4. ``proofs``: the 8-device proofs (``tests/multidevice``), on the host's
   CPUs as 8 simulated devices (one real device has nothing to compare).

Units that would not finish within ``--budget-seconds`` are skipped and
listed. Results: ``--output`` ``.json`` (every unit: command, seconds,
status, figures), ``.md`` and ``.png`` (utilisation per workload), by
default ``benchmarks/results/<machine>-<date>-accelerator``.
"""

import dataclasses
import datetime
import json
import os
import pathlib
import re
import subprocess
import sys
import time
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=wrong-import-position

from benchmarks import hardware  # pylint: disable=wrong-import-position
from dlcore import cli, files  # pylint: disable=wrong-import-position
from dlcore.config import field, parse_args, validate  # pylint: disable=wrong-import-position

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "benchmarks" / "results"


@dataclasses.dataclass(frozen=True)
class Unit:
  """One measurement: a command, the seconds it may take, how to read its figures."""
  kind: str
  name: str
  argv: list[str]
  seconds: int
  env: dict[str, str] = dataclasses.field(default_factory=dict)
  summary: str | None = None  # A summary.json to read figures from.


# Batch sizes that fill an H200-class device, by workload (bench units).
FULL = {"resnet20": 1024, "resnet18": 512, "resnet50_imagenet": 128,
        "transformer": 2048, "gan_dcgan": 512, "segmentation": 256}
# The headline figure of each experiment's summary.json.
FIGURES = {"classify": "test_accuracy", "gan": "fcd", "vae": "test_elbo",
           "dqn": "eval_return", "ppo": "eval_return", "segment": "test_miou",
           "cyclegan": "label_preservation_ba"}


def units(dry_run: bool, workdir: pathlib.Path) -> list[Unit]:
  """What the run measures, most valuable first (tiny versions for ``dry_run``)."""
  python = [sys.executable]
  bench = lambda dtype, names, batch: python + [
      "-m", "benchmarks", "--workloads", names, "--dtype", dtype,
      "--no-sweep", "--no-torch", "--output",
      str(workdir / f"bench-{names.replace(',', '-')}-{dtype}")] + (
          ["--batch-size", str(batch)] if batch else [])
  if dry_run:
    found = [Unit("bench", "mlp-float32", bench("float32", "mlp", 4) + [
        "--quick", "--peak-size", "64"], 60)]
    found.append(Unit("profile", "mlp", python + [
        "-m", "benchmarks.profile_step", "--workload", "mlp", "--batch-size",
        "4", "--steps", "2", "--top", "3"], 60))
    found.append(Unit("experiment", "classify", python + [
        "experiments/classify.py", "--model", "mlp", "--epochs", "1",
        "--workdir", str(workdir / "classify")], 60,
                      summary=str(workdir / "classify" / "summary.json")))
    found.append(Unit("proofs", "8-device step", python + [
        "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k",
        "supervised-cnn-dp8-jit",
        "tests/multidevice/steps_on_8_devices.py"], 90,
                      env={"JAX_PLATFORMS": "cpu"}))
    return found
  found = []
  for dtype in ("bfloat16", "float32"):
    for name in ("transformer", "resnet20", "resnet50_imagenet", "gan_dcgan",
                 "segmentation", "resnet18"):
      if dtype == "float32" and name not in ("transformer", "resnet20"):
        continue
      found.append(Unit("bench", f"{name}-{dtype}",
                        bench(dtype, name, FULL[name]), 120))
  for name in ("transformer", "resnet20"):
    found.append(Unit("profile", name, python + [
        "-m", "benchmarks.profile_step", "--workload", name, "--batch-size",
        str(FULL[name]), "--dtype", "bfloat16", "--steps", "5"], 90))
  for name in ("classify", "vae", "gan", "dqn", "ppo", "cyclegan", "segment"):
    out = workdir / name
    found.append(Unit("experiment", name, python + [
        f"experiments/{name}.py", "--workdir", str(out)], 240,
                      summary=str(out / "summary.json")))
  found.append(Unit("proofs", "8-device steps", python + [
      "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow",
      "-n", "8", "tests/multidevice/steps_on_8_devices.py"], 300,
                    env={"JAX_PLATFORMS": "cpu"}))
  return found


def run_unit(unit: Unit, timeout: float) -> dict[str, Any]:
  """Runs ``unit`` for at most ``timeout`` seconds; its record."""
  start = time.perf_counter()
  try:
    result = subprocess.run(unit.argv, cwd=ROOT, capture_output=True,
                            text=True, timeout=timeout,
                            env={**os.environ, "PYTHONUNBUFFERED": "1",
                                 **unit.env})
    status = "ok" if result.returncode == 0 else f"exit {result.returncode}"
    output = result.stdout + result.stderr
  except subprocess.TimeoutExpired as e:
    status = f"timed out after {timeout:.0f} s"
    as_text = lambda x: x.decode() if isinstance(x, bytes) else (x or "")
    output = as_text(e.stdout) + as_text(e.stderr)
  record = {"kind": unit.kind, "name": unit.name,
            "command": " ".join(unit.argv[1:]), "status": status,
            "seconds": time.perf_counter() - start,
            "output_tail": output[-3000:]}
  record.update(figures(unit, output))
  return record


def figures(unit: Unit, output: str) -> dict[str, Any]:
  """The numbers a unit's output or summary holds."""
  if unit.kind == "bench":
    match = re.search(r"--output (\S+)", " ".join(unit.argv))
    path = pathlib.Path(match.group(1)).with_suffix(".json")
    if path.exists():
      results = json.loads(path.read_text())
      return {"peak": results["peak"], "workloads": results["workloads"]}
  if unit.kind == "profile":
    return {"top_ops": [line.strip() for line in output.splitlines()
                        if re.match(r"\s*\d+\.\d+\s", line)][:15]}
  if unit.kind == "experiment" and unit.summary:
    path = pathlib.Path(unit.summary)
    if path.exists():
      summary = json.loads(path.read_text())
      name = FIGURES.get(unit.name)
      return {"figure": name, "value": summary.get(name),
              "train_seconds": summary.get("train_seconds")}
  if unit.kind == "proofs":
    match = re.search(r"(\d+) passed", output)
    return {"passed": int(match.group(1)) if match else 0,
            "failed": int(m.group(1)) if (m := re.search(r"(\d+) failed",
                                                         output)) else 0}
  return {}


def markdown(results: dict[str, Any]) -> str:
  machine = results["machine"]
  lines = [f"# Accelerator run on {machine['device_kind']} "
           f"({results['date'][:10]})", "",
           f"{len(results['units'])} units in {results['seconds']:.0f} s; "
           f"skipped for time: {', '.join(results['skipped']) or 'none'}.",
           "", "## Train steps against their baselines", "",
           "| workload | dtype | batch | dlcore ms | baseline ms | "
           "dlcore/baseline | items/s | of measured peak | of nominal peak "
           "|", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
  for unit in results["units"]:
    for w in unit.get("workloads", []):
      d, b = w["sides"]["dlcore"], w["sides"].get("baseline", {})
      lines.append(
          f"| {w['workload']} | {w['dtype']} | {w['batch_size']} | "
          f"{d['median_s'] * 1e3:.2f} | "
          f"{b.get('median_s', float('nan')) * 1e3:.2f} | "
          f"{w['ratios'].get('dlcore_over_baseline', float('nan')):.3f} | "
          f"{d.get('items_per_s', 0):,.0f} | "
          f"{_percent(d.get('utilisation_measured'))} | "
          f"{_percent(d.get('utilisation_nominal'))} |")
  lines += ["", "## Everything else", "", "| unit | status | seconds | "
            "figures |", "|---|---|---:|---|"]
  for unit in results["units"]:
    if unit["kind"] == "bench":
      continue
    shown = {k: v for k, v in unit.items() if k in (
        "figure", "value", "train_seconds", "passed", "failed")}
    if unit.get("top_ops"):
      shown["top op"] = unit["top_ops"][0][:90]
    lines.append(f"| {unit['kind']} {unit['name']} | {unit['status']} | "
                 f"{unit['seconds']:.0f} | {shown} |")
  return "\n".join(lines) + "\n"


def _percent(value) -> str:
  return "-" if value is None else f"{100 * value:.1f}%"


def plot(results: dict[str, Any], path: pathlib.Path) -> None:
  """Utilisation of the measured peak per workload and dtype."""
  bars = [(f"{w['workload']}\n{w['dtype']}",
           w["sides"]["dlcore"].get("utilisation_measured") or 0.0)
          for unit in results["units"] for w in unit.get("workloads", [])]
  fig, ax = plt.subplots(figsize=(max(4, 1.2 * len(bars)), 3.5))
  if bars:
    ax.bar(range(len(bars)), [100 * v for _, v in bars])
    ax.set_xticks(range(len(bars)), [n for n, _ in bars], fontsize=7)
  ax.set_ylabel("% of measured matmul peak")
  ax.set_title(results["machine"]["device_kind"])
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


@dataclasses.dataclass(frozen=True)
class AcceleratorConfig:
  """Options of ``python -m benchmarks.accelerator``."""
  dry_run: bool = field(False, "tiny units on any machine (a CPU: under a "
                        "minute), to prove the script runs")
  budget_seconds: int = field(450, "stop starting units that would end "
                              "after this many seconds", valid="[1, inf)")
  output: str | None = field(None, "path stem of the .json, .md and .png "
                             "(default benchmarks/results/<machine>-<date>-"
                             "accelerator)")


def main(argv=None) -> dict[str, Any]:
  config = parse_args(AcceleratorConfig, __doc__, argv)
  validate(config)
  machine = hardware.machine_info()
  date = datetime.datetime.now(datetime.timezone.utc).isoformat(
      timespec="seconds")
  stem = pathlib.Path(config.output) if config.output else RESULTS_DIR / (
      f"{hardware.machine_slug(machine)}-{date[:10]}-accelerator")
  workdir = stem.parent / (stem.name + "-runs")
  workdir.mkdir(parents=True, exist_ok=True)
  results = {"date": date, "machine": machine, "dry_run": config.dry_run,
             "units": [], "skipped": [], "seconds": 0.0}
  start = time.perf_counter()
  for unit in units(config.dry_run, workdir):
    left = config.budget_seconds - (time.perf_counter() - start)
    if left < min(unit.seconds, 30):
      results["skipped"].append(f"{unit.kind} {unit.name}")
      continue
    record = run_unit(unit, timeout=min(unit.seconds, left))
    results["units"].append(record)
    results["seconds"] = time.perf_counter() - start
    print(f"{unit.kind} {unit.name}: {record['status']} in "
          f"{record['seconds']:.0f} s", flush=True)
    files.write_json(stem.with_suffix(".json"), results)  # As it goes.
    files.write_atomic(stem.with_suffix(".md"), markdown(results).encode())
  plot(results, stem.with_suffix(".png"))
  print(markdown(results))
  return results


if __name__ == "__main__":
  cli.run(main)
