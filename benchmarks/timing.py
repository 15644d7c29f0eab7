"""Timing train steps honestly: compile apart, warm-up apart, interleaved sides.

Usage::

  side = JaxSide(jitted_step, state, batch, key)   # compiles, reads XLA's FLOPs
  other = CallableSide(torch_step)                 # anything run for effect
  times = interleave({"dlcore": side, "torch": other}, steps=20, rounds=5)
  summary(times["dlcore"])                         # median, spread, ...

A side is called with no arguments and returns when its step has finished
on the device (``jax.block_until_ready`` on the new state and metrics; for
CUDA PyTorch, ``torch.cuda.synchronize``). ``interleave`` runs every side
``warmup`` untimed steps, then ``rounds`` rounds in which each side in turn
runs ``steps / rounds`` timed steps: sides compared in one run share the
machine's slow and quiet moments alike, which matters on a shared host.
The harness reports the median; the minimum is kept too.
"""

import time
from typing import Any, Callable

import jax
import numpy as np


def cost_flops(compiled) -> float | None:
  """FLOPs of one execution of a compiled XLA program (XLA's cost analysis)."""
  analysis = compiled.cost_analysis()
  if isinstance(analysis, (list, tuple)):  # Older JAX: one dict per program.
    analysis = analysis[0] if analysis else None
  if not analysis or analysis.get("flops", -1) < 0:
    return None
  return float(analysis["flops"])


class JaxSide:
  """A jitted ``step(state, batch, key) -> (state, metrics)`` made ready to time.

  Compiles ahead of time (``compile_seconds`` covers tracing, lowering and
  XLA compilation), reads the FLOPs of one step from XLA's cost analysis,
  then threads the state through successive calls, each with a fresh key.
  """

  def __init__(self, step: Callable, state: Any, batch: Any, key: jax.Array,
               max_steps: int = 256):
    start = time.perf_counter()
    lowered = step.lower(state, batch, key)
    self.compiled = lowered.compile()
    self.compile_seconds = time.perf_counter() - start
    self.flops = cost_flops(self.compiled)
    self.state, self.batch = state, batch
    self._keys = list(jax.random.split(key, max_steps))
    self._calls = 0

  def __call__(self) -> None:
    key = self._keys[self._calls % len(self._keys)]
    self._calls += 1
    self.state, metrics = self.compiled(self.state, self.batch, key)
    jax.block_until_ready((self.state, metrics))


class CallableSide:
  """Any step run for its effect, e.g. an eager PyTorch step; no compile."""

  def __init__(self, step: Callable[[], None]):
    self.step = step
    self.compile_seconds = None
    self.flops = None

  def __call__(self) -> None:
    self.step()


def interleave(sides: dict[str, Callable[[], None]], *, steps: int,
               rounds: int, warmup: int = 2,
               settle_s: float = 0.005) -> dict[str, list[float]]:
  """Seconds of each of ``steps`` timed steps per side, the sides alternating.

  The order of the sides rotates from round to round, so each follows each
  other equally often, and before a side's turn the host idles ``settle_s``:
  thread pools that spin after their work (OpenMP in PyTorch, Eigen in XLA)
  go to sleep before the next side is timed instead of competing with it.
  """
  for side in sides.values():
    for _ in range(warmup):
      side()
  per_round = -(-steps // rounds)
  names = list(sides)
  times: dict[str, list[float]] = {name: [] for name in sides}
  for i in range(rounds):
    for name in names[i % len(names):] + names[:i % len(names)]:
      time.sleep(settle_s)
      for _ in range(per_round):
        start = time.perf_counter()
        sides[name]()
        times[name].append(time.perf_counter() - start)
  return times


def summary(times: list[float]) -> dict[str, float]:
  """Median step seconds and its spread: quartiles, their range, min and max."""
  q25, median, q75 = np.percentile(times, [25, 50, 75])
  return {"median_s": float(median), "iqr_s": float(q75 - q25),
          "q25_s": float(q25), "q75_s": float(q75),
          "min_s": float(np.min(times)), "max_s": float(np.max(times)),
          "timed_steps": len(times)}
