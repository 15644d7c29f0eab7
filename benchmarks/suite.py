"""Running one workload, all its sides interleaved, into a result record.

Usage::

  record = run_workload(WORKLOADS["mlp"], batch_size=128, dtype="float32",
                        steps=20, rounds=5, with_torch=True, peak=peak)
  points = run_sweep(WORKLOADS["mlp"], (32, 128, 512), "float32", steps=20)

Every side starts from the same parameters (one init key) and trains on the
same random batch. A record holds, per side, compile seconds, the median
and spread of step seconds, items per second, and for JAX sides the FLOPs
of one step from XLA's cost analysis; the workload's model FLOPs are the
dlcore side's, against which achieved FLOP/s and utilisation of the peak
are computed for every side. Ratios: ``dlcore / baseline`` (framework
overhead; 1.0 is none) and ``torch / dlcore`` (above 1.0: dlcore faster).
"""

import sys

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.timing import CallableSide, JaxSide, interleave, summary
from benchmarks.workloads import Workload


def _jax_inputs(workload: Workload, batch_size: int, seed: int = 0):
  batch = workload.make_batch(np.random.default_rng(seed), batch_size)
  return batch, jax.tree.map(jnp.asarray, batch)


def build_sides(workload: Workload, batch_size: int, dtype: str, *,
                with_baseline: bool, with_torch: bool, max_steps: int) -> dict:
  """Compiled, ready-to-call sides: ``dlcore``, ``baseline``, ``torch``.

  Returns ``(sides, skipped)``: a PyTorch side whose first step fails (e.g.
  an operation without a bfloat16 CPU kernel) is left out, and ``skipped``
  maps it to the error.
  """
  numpy_batch, batch = _jax_inputs(workload, batch_size)
  init_key, step_key = jax.random.split(jax.random.PRNGKey(0))
  sides = {"dlcore": JaxSide(*workload.dlcore(batch, dtype, init_key), batch,
                             step_key, max_steps)}
  if with_baseline and workload.baseline is not None:
    sides["baseline"] = JaxSide(*workload.baseline(batch, dtype, init_key),
                                batch, step_key, max_steps)
  skipped = {}
  if with_torch and workload.torch is not None:
    try:
      torch_side = CallableSide(workload.torch(numpy_batch, dtype))
      torch_side()
      sides["torch"] = torch_side
    except RuntimeError as e:
      skipped["torch"] = f"{type(e).__name__}: {str(e).splitlines()[0]}"
      print(f"{workload.name}: PyTorch side skipped ({skipped['torch']})",
            file=sys.stderr)
  return sides, skipped


def run_workload(workload: Workload, *, batch_size: int, dtype: str,
                 steps: int, rounds: int, with_torch: bool,
                 peak: dict) -> dict:
  """Times every side of ``workload``; returns its result record."""
  sides, skipped = build_sides(workload, batch_size, dtype,
                               with_baseline=True, with_torch=with_torch,
                               max_steps=steps + 8)
  times = interleave(sides, steps=steps, rounds=rounds)
  items = workload.items_per_step(batch_size)
  if workload.flops_per_step is None:
    model_flops, source = sides["dlcore"].flops, "xla_cost_analysis"
  else:
    model_flops = workload.flops_per_step(batch_size)
    source = "analytic" if model_flops else "unknown"
  results = {}
  for name, side in sides.items():
    stats = summary(times[name])
    median = stats["median_s"]
    achieved = model_flops / median if model_flops else None
    results[name] = {
        "compile_s": side.compile_seconds, "xla_flops": side.flops, **stats,
        "items_per_s": items / median, "achieved_flops_per_s": achieved,
        "utilisation_measured": (achieved / peak["measured_flops_per_s"]
                                 if achieved else None),
        "utilisation_nominal": (achieved / peak["nominal_flops_per_s"]
                                if achieved and peak["nominal_flops_per_s"]
                                else None)}
  median = {name: r["median_s"] for name, r in results.items()}
  ratios = {}
  fastest = {name: r["min_s"] for name, r in results.items()}
  if "baseline" in median:
    ratios["dlcore_over_baseline"] = median["dlcore"] / median["baseline"]
    ratios["dlcore_over_baseline_fastest"] = (fastest["dlcore"]
                                              / fastest["baseline"])
  if "torch" in median:
    ratios["torch_over_dlcore"] = median["torch"] / median["dlcore"]
    ratios["torch_over_dlcore_fastest"] = fastest["torch"] / fastest["dlcore"]
  return {"workload": workload.name, "description": workload.description,
          "batch_size": batch_size, "dtype": dtype, "unit": workload.unit,
          "items_per_step": items, "model_flops_per_step": model_flops,
          "flops_source": source,
          "sides": results, "ratios": ratios, "skipped": skipped}


def run_sweep(workload: Workload, batch_sizes, dtype: str, *, steps: int,
              rounds: int, measured: dict | None = None) -> dict:
  """dlcore's median step time at each batch size (one compile per size).

  ``measured``: a ``run_workload`` record in ``dtype`` whose batch size, if
  swept, is taken from it rather than compiled and timed again.
  """
  points = []
  for batch_size in batch_sizes:
    if measured and (measured["batch_size"], measured["dtype"]) == (
        batch_size, dtype):
      dlcore = measured["sides"]["dlcore"]
      points.append({"batch_size": batch_size, **{
          k: dlcore[k] for k in ("compile_s", "median_s", "iqr_s", "q25_s", "q75_s",
                                 "min_s", "max_s", "timed_steps",
                                 "items_per_s")}})
      continue
    side = build_sides(workload, batch_size, dtype, with_baseline=False,
                       with_torch=False, max_steps=steps + 8)[0]["dlcore"]
    stats = summary(interleave({"dlcore": side}, steps=steps,
                               rounds=rounds)["dlcore"])
    items = workload.items_per_step(batch_size)
    points.append({"batch_size": batch_size, "compile_s": side.compile_seconds,
                   **stats, "items_per_s": items / stats["median_s"]})
  return {"workload": workload.name, "dtype": dtype, "unit": workload.unit,
          "points": points}
