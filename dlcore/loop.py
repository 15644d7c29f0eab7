"""The training loop: the one place with side effects.

Usage::

  state, records = train_loop(
      state, jax.jit(step_fn), lambda start: batches(start),
      key=key, num_steps=1000, report_every=100, workdir=workdir,
      resume=False, report=lambda step, state: {"test_accuracy": ...})

Step ``s`` (0-based) is called as ``step_fn(state, batch, fold_in(key, s))``
with the ``s``-th batch, so a run resumed from a checkpoint repeats exactly
what an uninterrupted run does. Metrics stay on device between reports; at
each report the loop fetches them once, stops with ``NonFiniteLossError``
at the first step whose metrics are NaN or infinite (before saving
anything), appends one record to ``metrics.jsonl`` and saves a checkpoint.
A tqdm progress bar shows the steps and the latest metrics.
"""

import pathlib
import time
from typing import Any, Callable, Iterator

import jax
import numpy as np
import tqdm

from dlcore import io
from dlcore.checkpoint import Checkpointer
from dlcore.errors import ConfigError, NonFiniteLossError

StepFn = Callable[[Any, Any, jax.Array], tuple[Any, dict[str, jax.Array]]]
METRICS_FILE = "metrics.jsonl"
CHECKPOINT_DIR = "checkpoints"


def _first_non_finite(chunk: dict[str, np.ndarray]) -> tuple[int, str] | None:
  """``(index, metric name)`` of the first step with a non-finite metric."""
  bad = [(int(np.argmin(np.isfinite(v))), k) for k, v in chunk.items()
         if not np.all(np.isfinite(v))]
  return min(bad) if bad else None


def restore_or_start(state: Any, workdir: pathlib.Path, resume: bool,
                     checkpointer: Checkpointer) -> tuple[Any, int, list[dict]]:
  """``(state, start_step, records)``: fresh, or restored from the latest checkpoint.

  Without ``resume`` an existing checkpoint is an error, so an earlier run is
  never overwritten by accident. Records written after the restored
  checkpoint (a crash between the two writes) are dropped.
  """
  latest = checkpointer.latest_step()
  if latest is not None and not resume:
    raise ConfigError(
        f"workdir {str(workdir)!r} already holds a run (checkpoint at step "
        f"{latest}); pass --resume to continue it or choose another --workdir")
  if latest is None:
    return state, 0, []
  state, meta = checkpointer.restore_latest(state)
  start = int(meta["step"])
  records = [r for r in io.read_jsonl(workdir / METRICS_FILE)
             if r["step"] <= start]
  return state, start, records


def train_loop(state: Any, step_fn: StepFn,
               batches: Callable[[int], Iterator[Any]], *, key: jax.Array,
               num_steps: int, report_every: int, workdir: pathlib.Path,
               resume: bool = False,
               report: Callable[[int, Any], dict[str, Any]] | None = None,
               desc: str = "train") -> tuple[Any, list[dict[str, Any]]]:
  """Runs ``step_fn`` to ``num_steps``; returns the final state and all records.

  Args:
    state: the initial state (also the template a checkpoint restores into).
    step_fn: ``(state, batch, key) -> (state, metrics)``, usually jitted.
    batches: ``batches(start_step)`` iterates batches from ``start_step`` on.
    key: the run's key; step ``s`` gets ``jax.random.fold_in(key, s)``.
    num_steps: total steps of the run (resumed runs count earlier steps).
    report_every: steps between records and checkpoints (and the last step).
    workdir: where ``metrics.jsonl`` and ``checkpoints/`` go.
    resume: continue from the latest checkpoint in ``workdir``.
    report: ``report(step, state) -> dict`` adds to each record (evaluation,
      samples); its time is not counted in ``steps_per_sec``.
    desc: the progress bar's label.
  """
  checkpointer = Checkpointer(workdir / CHECKPOINT_DIR)
  state, start, records = restore_or_start(state, workdir, resume, checkpointer)
  pending: list[dict[str, jax.Array]] = []
  bar = tqdm.tqdm(total=num_steps, initial=start, desc=desc, unit="step",
                  dynamic_ncols=True, mininterval=0.5)
  try:
    chunk_start, tic = start, time.perf_counter()
    for step, batch in zip(range(start, num_steps), batches(start)):
      state, metrics = step_fn(state, batch, jax.random.fold_in(key, step))
      pending.append(metrics)
      bar.update(1)
      done = step + 1
      if done % report_every and done != num_steps:
        continue
      chunk = jax.device_get(jax.tree.map(lambda *xs: np.stack(xs), *pending))
      seconds = time.perf_counter() - tic
      bad = _first_non_finite(chunk)
      if bad is not None:
        raise NonFiniteLossError(chunk_start + bad[0] + 1, bad[1])
      record = {"step": done, "seconds": seconds,
                "steps_per_sec": len(pending) / seconds,
                **{f"train_{k}": float(np.mean(v)) for k, v in chunk.items()}}
      if report is not None:
        record.update(report(done, state))
      records.append(record)
      checkpointer.save(done, state, meta={"step": done})
      if jax.process_index() == 0:  # One writer in a multi-host run.
        io.write_jsonl(workdir / METRICS_FILE, records)
      bar.set_postfix({k: f"{v:.4g}" for k, v in record.items()
                       if k not in ("step", "epoch", "seconds")}, refresh=False)
      pending, chunk_start, tic = [], done, time.perf_counter()
  finally:
    bar.close()
    checkpointer.close()
  return state, records
