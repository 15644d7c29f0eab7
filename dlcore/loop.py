"""The training loop: the one place with side effects, for every objective.

Usage::

  state, history = loop.train(
      state, step_fn, batches, key=key, num_steps=10_000, workdir=workdir,
      every=LoopConfig(log_every=100, eval_every=5_000, checkpoint_every=1_000),
      evaluate=lambda state: {"test_accuracy": ...},
      sample=lambda state: images)                 # [N, H, W, C] in [0, 1]

Step ``s`` (0-based; with ``steps_per_call = k`` the call covering steps
``s .. s+k-1``) is ``step_fn(state, batch, fold_in(key, s))`` with the batch
that ``batches(s)`` yields first, so a run resumed from a checkpoint repeats
exactly what an uninterrupted run does. Each cadence is independent:

- every ``log_every`` steps the metrics of the steps since the last record
  are fetched from the device in one transfer, checked (the first NaN or
  infinite value stops the run with ``NonFiniteLossError`` before anything
  is saved), averaged and appended to ``metrics.jsonl`` and TensorBoard;
- every ``eval_every`` steps ``evaluate(state)`` adds to that step's record;
- every ``sample_every`` steps ``sample(state)`` becomes an image grid;
- every ``checkpoint_every`` steps an asynchronous Orbax save starts
  (after the NaN check of every step it holds); training goes on meanwhile.

A cadence of 0 means "at the last step only"; at the last step everything
happens. The step is compiled ahead of time (``lower().compile()``) and
its compile time reported. SIGTERM or SIGINT (a preempted job, Ctrl-C)
finishes the current step, saves a checkpoint and raises ``Preempted``;
a second signal stops at once. Only process 0 writes files; Orbax
coordinates the checkpoint writes of all processes.
"""

import contextlib
import dataclasses
import errno
import itertools
import pathlib
import signal
import sys
import threading
import time
from typing import Any, Callable, Iterator

import jax
import numpy as np
import tqdm
from jax.experimental import multihost_utils

from dlcore import files
from dlcore.checkpoint import Checkpointer
from dlcore.config import differences, field
from dlcore.errors import (ConfigError, DiskFull, NonFiniteLossError,
                           Preempted, divergence_cause, first_non_finite)
from dlcore.lock import WorkdirLock
from dlcore.writers import (METRICS_FILE, MODEL_FILE, SUMMARY_FILE, Writer,
                            parameter_table)

StepFn = Callable[[Any, Any, jax.Array], tuple[Any, dict[str, jax.Array]]]
CHECKPOINT_DIR = "checkpoints"


@dataclasses.dataclass(frozen=True)
class LoopConfig:
  """How often the loop logs, evaluates, samples and saves (in steps; 0: at the end)."""
  log_every: int = field(100, "steps between metrics records (each the mean "
                         "over the steps since the last)")
  eval_every: int = field(500, "steps between evaluations (0: at the end "
                          "only)")
  sample_every: int = field(500, "steps between sample grids (0: at the end "
                            "only)")
  checkpoint_every: int = field(500, "steps between checkpoints (0: at the "
                                "end only; the last step is always saved)")


@dataclasses.dataclass
class History:
  """What a run measured: its records and times (a resumed run includes earlier records)."""
  records: list[dict[str, Any]]
  start_step: int
  num_params: int
  compile_seconds: float | None = None
  train_seconds: float = 0.0  # Of the records, earlier runs' included.

  @property
  def last(self) -> dict[str, Any]:
    """The newest value of every metric over all records."""
    merged: dict[str, Any] = {}
    for record in self.records:
      merged.update(record)
    return merged


def check_cadences(every: LoopConfig, steps_per_call: int = 1) -> None:
  """Raises ``ConfigError`` for a negative cadence or one that is not a whole number of calls."""
  for f in dataclasses.fields(LoopConfig):  # Also of configs that extend it.
    value = getattr(every, f.name)
    if value < 0 or value % steps_per_call:
      raise ConfigError(f"option {f.name} must be 0 (at the end only) or a "
                        f"positive multiple of {steps_per_call}, got {value}")


def train(state: Any, step_fn: StepFn, batches: Callable[[int], Iterator[Any]],
          *, key: jax.Array, num_steps: int, workdir: pathlib.Path,
          every: LoopConfig, evaluate: Callable[[Any], dict[str, Any]] | None = None,
          sample: Callable[[Any], np.ndarray] | None = None,
          resume: bool = False, config: dict[str, Any] | None = None,
          steps_per_call: int = 1,
          summarize: Callable[[dict[str, np.ndarray]], dict[str, Any]] | None = None,
          steps_per_epoch: int | None = None, evaluate_first: bool = False,
          desc: str = "train") -> tuple[Any, History]:
  """Runs ``step_fn`` to ``num_steps``; returns the final state and the history.

  Args:
    state: the initial state (also the template a checkpoint restores into).
    step_fn: ``(state, batch, key) -> (state, metrics)``, compiled; with a
      ``lower`` method (``jax.jit``, ``parallel.wrap``) it is compiled ahead
      of time and the compile time is reported.
    batches: ``batches(start_step)`` iterates batches from ``start_step`` on.
    key: the run's key; step ``s`` gets ``jax.random.fold_in(key, s)``.
    num_steps: total steps of the run (resumed runs count earlier steps).
    workdir: where ``metrics.jsonl``, ``tensorboard/``, ``model.txt``, sample
      grids and ``checkpoints/`` go.
    every: the cadences.
    evaluate: ``evaluate(state) -> {name: float}`` at the eval cadence.
    sample: ``sample(state) -> images [N, H, W, C]`` in [0, 1] at the sample
      cadence.
    resume: continue from the latest checkpoint in ``workdir``.
    config: the experiment's options (JSON); saved with each checkpoint, and
      a resumed run whose options differ is refused naming them.
    steps_per_call: steps one call of ``step_fn`` makes (an RL chunk).
    summarize: ``summarize(metrics) -> record`` from the metrics of the
      calls since the last record, stacked on a leading axis (default: the
      mean of each, named ``train_<name>``).
    steps_per_epoch: adds ``epoch`` to every record.
    evaluate_first: a fresh run also evaluates the initial state (step 0).
    desc: the progress bar's label.
  """
  check_cadences(every, steps_per_call)
  main = jax.process_index() == 0
  workdir.mkdir(parents=True, exist_ok=True)
  with WorkdirLock(workdir) if main else contextlib.nullcontext():
    return _train(state, step_fn, batches, key=key, num_steps=num_steps,
                  workdir=workdir, every=every, evaluate=evaluate,
                  sample=sample, resume=resume, config=config,
                  steps_per_call=steps_per_call, summarize=summarize,
                  steps_per_epoch=steps_per_epoch,
                  evaluate_first=evaluate_first, desc=desc, main=main)


def _train(state, step_fn, batches, *, key, num_steps, workdir, every,
           evaluate, sample, resume, config, steps_per_call, summarize,
           steps_per_epoch, evaluate_first, desc, main):
  """``train`` while this process holds the workdir."""
  checkpointer = Checkpointer(workdir / CHECKPOINT_DIR)
  writer = None
  try:
    state, start, records = _restore_or_start(state, workdir, resume, config,
                                              checkpointer)
    if main:
      files.write_jsonl(workdir / METRICS_FILE, records)
    table, num_params = parameter_table(state)
    if main:
      files.write_atomic(workdir / MODEL_FILE, table.encode())
    state_fault = first_non_finite(state)

    def cause(step: int) -> str:  # Why step ``step`` (1-based) diverged.
      batch = next(batches(step - 1), None)  # The same batch again.
      return divergence_cause(state_fault, start, first_non_finite(batch))

    history = History(records, start, num_params,
                      train_seconds=sum(r.get("seconds", 0.0) for r in records))
    if start >= num_steps:
      return state, history
    writer = Writer(workdir, start, enabled=main)
    if evaluate_first and start == 0 and evaluate is not None:
      initial = _checked(evaluate(state), 0)
      writer.write(0, initial)
      history.records.append({"step": 0, **initial})
    upcoming = batches(start)
    first = next(upcoming)
    history.compile_seconds = _compile_seconds(
        step_fn, state, first, jax.random.fold_in(key, start))
    summarize = summarize or _mean_metrics
    due = lambda cadence, done: (done == num_steps
                                 or (cadence and done % cadence == 0))
    pending: list[Any] = []
    logged_until = start
    with _Interruptions() as interruptions, tqdm.tqdm(
        total=num_steps, initial=start, desc=desc, unit="step",
        unit_scale=steps_per_call > 1, dynamic_ncols=True,
        mininterval=0.5) as bar:
      tic, paused = time.perf_counter(), 0.0  # paused: not training.
      for step, batch in zip(range(start, num_steps, steps_per_call),
                             itertools.chain([first], upcoming)):
        state, metrics = step_fn(state, batch, jax.random.fold_in(key, step))
        pending.append(metrics)
        bar.update(steps_per_call)
        done = step + steps_per_call
        stop = interruptions.received(done)
        record: dict[str, Any] = {}
        if due(every.log_every, done) or stop:
          chunk = _fetch_and_check(pending, logged_until, steps_per_call,
                                   cause)
          now = time.perf_counter()
          seconds = now - tic - paused
          tic, paused = now, 0.0
          history.train_seconds += seconds
          record.update(seconds=seconds,
                        steps_per_sec=(done - logged_until) / seconds,
                        **summarize(chunk))
          pending, logged_until = [], done
        elif due(every.checkpoint_every, done):  # Never save a NaN state.
          pending = jax.device_get(pending)
          _fetch_and_check(pending, logged_until, steps_per_call, cause)
        pause = time.perf_counter()
        if due(every.eval_every, done) and evaluate is not None:
          record.update(_checked(evaluate(state), done))
        if due(every.sample_every, done) and sample is not None and main:
          writer.write_images(done, sample(state))
        if record:
          if steps_per_epoch:
            record["epoch"] = (done // steps_per_epoch if done % steps_per_epoch
                               == 0 else done / steps_per_epoch)
          writer.write(done, record)
          history.records.append({"step": done, **record})
          bar.set_postfix({k: f"{v:.4g}" for k, v in record.items()
                           if isinstance(v, float) and k != "seconds"},
                          refresh=False)
        if due(every.checkpoint_every, done) or stop:
          checkpointer.save(done, state, meta=files.strict({
              "step": done, "config": config, "records": history.records}))
        if stop:
          checkpointer.wait()
          raise Preempted(done, stop, str(workdir))
        paused += time.perf_counter() - pause
    checkpointer.wait()
  except Exception as e:  # pylint: disable=broad-except
    if not _no_space_left(e):
      raise
    checkpointer.remove_unfinished()
    raise DiskFull(str(workdir), checkpointer.latest_step()) from None
  finally:
    if writer is not None:
      writer.close()
    _close(checkpointer, failing=sys.exc_info()[0] is not None)
  return state, history


def _restore_or_start(state: Any, workdir: pathlib.Path, resume: bool,
                      config: dict[str, Any] | None, checkpointer: Checkpointer
                      ) -> tuple[Any, int, list[dict[str, Any]]]:
  """``(state, start_step, records)``: fresh, or restored from the newest intact checkpoint.

  A run is never overwritten by accident: without ``resume``, a workdir
  holding a checkpoint or results is refused. With it, a checkpoint of
  different options is refused naming them, and a workdir without a
  checkpoint starts from step 0, saying so. The records come from the
  checkpoint, so they are exactly those of its steps whatever happened to
  ``metrics.jsonl`` after it was saved (a crash, a cut line, deletion).
  """
  latest = checkpointer.latest_step()
  if not resume:
    found = ([f"a checkpoint at step {latest}"] if latest is not None else []
             ) + [name for name in (METRICS_FILE, SUMMARY_FILE)
                  if (workdir / name).exists()]
    if found:
      raise ConfigError(
          f"workdir {str(workdir)!r} already holds a run ({', '.join(found)}); "
          "continue it with option resume or choose another option workdir")
  found = checkpointer.newest_intact()
  if found is None:
    if resume:
      print(f"no checkpoint in {str(workdir)!r} to resume from: starting "
            "from step 0", file=sys.stderr)
    return state, 0, []
  step, meta = found
  recorded = meta.get("config")
  changed = differences(recorded, config) if recorded and config else []
  if changed:
    raise ConfigError(
        "cannot resume: " + ", ".join(f"option {name}" for name in changed)
        + f" differ{'s' if len(changed) == 1 else ''} from the run "
        f"checkpointed in {str(workdir)!r}; use the same options or "
        "another workdir")
  state = checkpointer.restore(step, state)
  if "records" not in meta:  # Saved before records went into checkpoints.
    meta["records"] = [r for r in files.read_jsonl(workdir / METRICS_FILE)
                       if r["step"] <= step]
  return state, step, meta["records"]


def _checked(record: dict[str, Any], step: int) -> dict[str, Any]:
  """``record``, once every number in it is finite (else ``NonFiniteLossError``)."""
  for name, value in record.items():
    if isinstance(value, float) and not np.isfinite(value):
      raise NonFiniteLossError(step, name)
  return record


def _no_space_left(error: BaseException | None) -> bool:
  """Whether ``error`` or one it arose from is a full disk (ENOSPC)."""
  while error is not None:
    if (isinstance(error, OSError) and error.errno == errno.ENOSPC
        or "No space left on device" in str(error)):  # Orbax's tensorstore.
      return True
    error = error.__cause__ or error.__context__
  return False


def _close(checkpointer: Checkpointer, failing: bool) -> None:
  """Closes ``checkpointer``; while an error is on its way out, a save's error is not raised again."""
  try:
    checkpointer.close()
  except Exception:  # pylint: disable=broad-except
    if not failing:
      raise


def _compile_seconds(step_fn: StepFn, *args) -> float | None:
  """Seconds to compile ``step_fn`` for ``args`` ahead of time (None if it cannot)."""
  if not hasattr(step_fn, "lower"):
    return None
  tic = time.perf_counter()
  step_fn.lower(*args).compile()
  return time.perf_counter() - tic


def _fetch_and_check(pending: list[Any], first_step: int, steps_per_call: int,
                     cause: Callable[[int], str]) -> dict[str, np.ndarray]:
  """The pending calls' metrics stacked on host; raises at the first non-finite one.

  ``cause(step)`` says why step ``step`` (1-based) diverged.
  """
  chunk = jax.device_get(jax.tree.map(lambda *xs: np.stack(xs), *pending))
  bad = [(int(np.argmin(np.isfinite(v).reshape(len(v), -1).all(-1))), k)
         for k, v in chunk.items() if not np.all(np.isfinite(v))]
  if bad:
    call, name = min(bad)
    first = first_step + call * steps_per_call + 1
    raise NonFiniteLossError(first, name, first + steps_per_call - 1,
                             cause(first))
  return chunk


def _mean_metrics(chunk: dict[str, np.ndarray]) -> dict[str, float]:
  return {f"train_{k}": float(np.mean(v)) for k, v in chunk.items()}


class _Interruptions:
  """Turns SIGTERM and SIGINT into a request to stop after the current step.

  ``received(step)`` is the signal's name once one arrived (on every process
  of a multi-host run at the same step, through JAX's preemption sync
  point, whose notifier catches SIGTERM itself), else None. A second signal
  interrupts at once. Outside the main thread no handler can be installed.
  """
  SIGNALS = (signal.SIGTERM, signal.SIGINT)

  def __enter__(self):
    self._name, self._previous = None, {}
    # JAX's own preemption notifier handles SIGTERM across processes.
    if (jax.process_count() == 1
        and threading.current_thread() is threading.main_thread()):
      self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
    return self

  def _handle(self, signum, frame):
    del frame
    if self._name is not None:
      raise KeyboardInterrupt
    self._name = signal.Signals(signum).name

  def received(self, step: int) -> str | None:
    if jax.process_count() > 1:  # Every process must stop at the same step.
      return ("SIGTERM" if multihost_utils.reached_preemption_sync_point(step)
              else None)
    return self._name

  def __exit__(self, *exc):
    for s, handler in self._previous.items():
      signal.signal(s, handler)
