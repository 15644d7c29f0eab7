"""Writing benchmark results: JSON, a Markdown table, a bar chart, a sweep plot.

Usage::

  write_all(results, stem)   # stem.json, stem.md, stem.png, stem-sweep.png
  print(markdown(results))

``results`` is the dict ``benchmarks.__main__`` assembles: ``machine``,
``peak``, ``workloads`` (records of ``suite.run_workload``) and ``sweeps``
(records of ``suite.run_sweep``).
"""

import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=wrong-import-position

from dlcore import files, plots  # pylint: disable=wrong-import-position

SIDES = ("dlcore", "baseline", "torch")
SIDE_LABELS = {"dlcore": "dlcore", "baseline": "hand-written JAX",
               "torch": "PyTorch eager"}


def _ms(seconds):
  return "—" if seconds is None else f"{seconds * 1e3:.2f}"


def _ratio(value):
  return "—" if value is None else f"{value:.3f}"


def _percent(value):
  return "—" if value is None else f"{100 * value:.1f}%"


def _step_cell(side):
  if side is None:
    return "—"
  return f"{_ms(side['median_s'])} ± {_ms(side['iqr_s'] / 2)}"


TABLE_HEADER = (
    "| workload | batch | compile s | dlcore ms | baseline ms | torch ms "
    "| dlcore/baseline | torch/dlcore | items/s | GFLOP/step | GFLOP/s "
    "| utilisation |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")


def markdown_row(record: dict) -> str:
  """One workload's line of the results table."""
  sides, ratios = record["sides"], record["ratios"]
  dlcore = sides["dlcore"]
  flops = record["model_flops_per_step"]
  gflops = "—" if flops is None else f"{flops / 1e9:.3f}"
  rate = "—" if flops is None else f"{dlcore['achieved_flops_per_s'] / 1e9:.1f}"
  return (f"| {record['workload']} | {record['batch_size']} "
          f"| {dlcore['compile_s']:.1f} | {_step_cell(dlcore)} "
          f"| {_step_cell(sides.get('baseline'))} "
          f"| {_step_cell(sides.get('torch'))} "
          f"| {_ratio(ratios.get('dlcore_over_baseline'))} "
          f"({_ratio(ratios.get('dlcore_over_baseline_fastest'))}) "
          f"| {_ratio(ratios.get('torch_over_dlcore'))} "
          f"({_ratio(ratios.get('torch_over_dlcore_fastest'))}) "
          f"| {dlcore['items_per_s']:,.0f} {record['unit']} "
          f"| {gflops} | {rate} | {_percent(dlcore['utilisation_measured'])} |")


def markdown(results: dict) -> str:
  """The results as Markdown: machine, peak, workload table, sweep table."""
  machine, peak = results["machine"], results["peak"]
  versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items() if v)
  nominal = peak["nominal_flops_per_s"]
  lines = [
      f"# Benchmarks on {machine['device_kind']} x{machine['device_count']} "
      f"({results['date']})", "",
      f"- platform {machine['platform']}, {machine['cpu_count']} host CPUs; "
      f"{versions}",
      f"- dtype {results['config']['dtype']}; median of "
      f"{results['config']['repeats']} timed steps per side in "
      f"{results['config']['rounds']} interleaved rounds, after warm-up; "
      f"quick={results['config']['quick']}",
      f"- measured peak ({peak['size']}x{peak['size']} matmul): "
      f"{peak['measured_flops_per_s'] / 1e9:.1f} GFLOP/s"
      + (f"; vendor nominal {nominal / 1e12:.0f} TFLOP/s" if nominal else ""),
      "", "Step times in ms (median ± half the interquartile range). "
      "dlcore/baseline is framework overhead (1.00 = none); torch/dlcore above "
      "1 means dlcore is faster; in brackets the same ratio of the fastest "
      "steps, less sensitive to a busy host. Utilisation is of the measured "
      "peak; FLOPs are XLA's cost analysis (LSTM: counted by hand, since XLA "
      "counts a loop body once; — where neither is possible).", "",
      *TABLE_HEADER]
  lines += [markdown_row(record) for record in results["workloads"]]
  skipped = [f"- {record['workload']}: {side} side skipped ({error})"
             for record in results["workloads"]
             for side, error in record.get("skipped", {}).items()]
  lines += [""] + skipped if skipped else []
  for sweep in results["sweeps"]:
    lines += ["", f"Batch-size sweep, {sweep['workload']} (dlcore):", "",
              "| batch | step ms | items/s |", "|---:|---:|---:|"]
    lines += [f"| {p['batch_size']} | {_step_cell(p)} | {p['items_per_s']:,.0f} |"
              for p in sweep["points"]]
  return "\n".join(lines) + "\n"


def bar_chart(results: dict, path) -> None:
  """One panel per workload: median step ms per side, bars to the quartiles."""
  records = results["workloads"]
  columns = min(len(records), 3)
  rows = -(-len(records) // columns)
  fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3 * rows),
                           squeeze=False)
  colors = {"dlcore": "tab:blue", "baseline": "tab:gray", "torch": "tab:orange"}
  for ax, record in zip(axes.flat, records):
    names = [s for s in SIDES if s in record["sides"]]
    medians = [record["sides"][s]["median_s"] * 1e3 for s in names]
    spread = [[(record["sides"][s]["median_s"] - record["sides"][s][q]) * 1e3
               * sign for s in names] for q, sign in (("q25_s", 1), ("q75_s", -1))]
    ax.bar([SIDE_LABELS[s] for s in names], medians, yerr=spread,
           color=[colors[s] for s in names], capsize=3)
    ax.set_title(f"{record['workload']} (batch {record['batch_size']})")
    ax.set_ylabel("step time (ms)")
    ax.tick_params(axis="x", labelsize=8)
    ax.grid(axis="y", alpha=0.3)
  for ax in list(axes.flat)[len(records):]:
    ax.axis("off")
  fig.suptitle(f"{results['machine']['device_kind']}, "
               f"{results['config']['dtype']}")
  fig.tight_layout()
  plots.save_figure(fig, path)


def sweep_plot(results: dict, path) -> None:
  """Step time and throughput against batch size, log-log, one line per workload."""
  fig, (time_ax, rate_ax) = plt.subplots(1, 2, figsize=(10, 3.6))
  for sweep in results["sweeps"]:
    sizes = [p["batch_size"] for p in sweep["points"]]
    time_ax.plot(sizes, [p["median_s"] * 1e3 for p in sweep["points"]],
                 marker="o", label=sweep["workload"])
    rate_ax.plot(sizes, [p["items_per_s"] for p in sweep["points"]],
                 marker="o", label=sweep["workload"])
  for ax, label in ((time_ax, "step time (ms)"), (rate_ax, "items / s")):
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch size")
    ax.set_ylabel(label)
    ax.grid(alpha=0.3, which="both")
    ax.legend()
  plots.save_figure(fig, path)


def write_all(results: dict, stem: pathlib.Path) -> list[pathlib.Path]:
  """Writes ``stem`` .json, .md, .png (and -sweep.png); returns the paths."""
  stem.parent.mkdir(parents=True, exist_ok=True)
  paths = [stem.with_suffix(".json"), stem.with_suffix(".md"),
           stem.with_suffix(".png")]
  files.write_json(paths[0], results)
  files.write_atomic(paths[1], markdown(results).encode())
  bar_chart(results, paths[2])
  if results["sweeps"]:
    paths.append(stem.parent / f"{stem.name}-sweep.png")
    sweep_plot(results, paths[-1])
  return paths
