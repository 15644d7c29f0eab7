"""The training loop: the one place with side effects, for every objective.

Usage::

  state, history = loop.train(
      state, step_fn, batches, key=key, num_steps=10_000, workdir=workdir,
      every=Cadences(log=100, eval=5_000, sample=5_000, checkpoint=1_000),
      evaluate=lambda state: {"test_accuracy": ...},
      sample=lambda state: images)                 # [N, H, W, C] in [0, 1]

Step ``s`` (0-based; with ``steps_per_call = k`` the call covering steps
``s .. s+k-1``) is ``step_fn(state, batch, fold_in(key, s))`` with the batch
that ``batches(s)`` yields first, so a run resumed from a checkpoint repeats
exactly what an uninterrupted run does. Each cadence is independent:

- every ``every.log`` steps the metrics of the steps since the last record
  are fetched from the device in one transfer (the steps run under JAX's
  transfer guard: no implicit transfer to or from the host), checked (the
  first NaN or infinite value stops the run with ``NonFiniteLossError``
  before anything is saved), averaged and appended to ``metrics.jsonl`` and TensorBoard;
- every ``every.eval`` steps ``evaluate(state)`` adds to that step's record;
- every ``every.sample`` steps ``sample(state)`` becomes an image grid;
- every ``every.checkpoint`` steps an asynchronous Orbax save starts
  (after the NaN check of every step it holds); training goes on meanwhile.

A cadence of 0 means "at the last step only"; at the last step everything
happens. The step is compiled ahead of time (``lower().compile()``) and
its compile time reported. SIGTERM or SIGINT (a preempted job, Ctrl-C)
finishes the current step, saves a checkpoint and raises ``Preempted``;
the checkpoint also holds the metrics of the steps since the last record,
so a resumed run's ``metrics.jsonl`` is exactly an uninterrupted run's
(its records fall on the same steps and average the same steps; only
their ``seconds`` differ). A second signal stops at once (``Interrupted``).
Only process 0 writes files; Orbax coordinates the checkpoint writes of
all processes.
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
from dlcore.config import differences
from dlcore.errors import (ConfigError, DiskFull, Interrupted,
                           NonFiniteLossError, Preempted, divergence_cause,
                           first_non_finite, update_options)
from dlcore.lock import WorkdirLock
from dlcore.writers import (METRICS_FILE, MODEL_FILE, SUMMARY_FILE,
                            TENSORBOARD_DIR, Writer, parameter_table)

StepFn = Callable[[Any, Any, jax.Array], tuple[Any, dict[str, jax.Array]]]
CHECKPOINT_DIR = "checkpoints"


@dataclasses.dataclass(frozen=True)
class Cadences:
  """How often the loop records, evaluates, samples and saves, in steps.

  Each is 0 ("at the last step only") or a multiple of the steps one call
  makes; ``dlcore.experiment.plan`` derives them from a config's options.
  """
  log: int
  eval: int
  sample: int
  checkpoint: int


@dataclasses.dataclass
class History:
  """What a run measured: its records and times (a resumed run includes earlier records)."""
  records: list[dict[str, Any]]
  start_step: int
  num_params: int
  compile_seconds: float | None = None
  train_seconds: float = 0.0  # Of the records, earlier runs' included.
  # Where the state lives (``dlcore.sharding.placement``), set by the driver.
  placement: dict[str, Any] = dataclasses.field(default_factory=dict)

  @property
  def last(self) -> dict[str, Any]:
    """The newest value of every metric over all records."""
    merged: dict[str, Any] = {}
    for record in self.records:
      merged.update(record)
    return merged


def train(state: Any, step_fn: StepFn, batches: Callable[[int], Iterator[Any]],
          *, key: jax.Array, num_steps: int, workdir: pathlib.Path,
          every: Cadences, evaluate: Callable[[Any], dict[str, Any]] | None = None,
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
    state, start, records, resumed = _restore_or_start(
        state, workdir, resume, config, checkpointer)
    if main and (records or (workdir / METRICS_FILE).exists()):
      files.write_jsonl(workdir / METRICS_FILE, records)
    table, num_params = parameter_table(state)
    if main:
      files.write_atomic(workdir / MODEL_FILE, table.encode())
    state_fault = first_non_finite(state)

    def cause(step: int) -> str:  # Why step ``step`` (1-based) diverged.
      batch = next(batches(step - 1), None)  # The same batch again.
      return divergence_cause(state_fault, start, first_non_finite(batch),
                              update_options(config))

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
    # Step keys are folded on the device: the loop's hot path never waits
    # on, or sends to, the host (``_host_untouched`` proves it).
    next_key = jax.jit(lambda key, step: (jax.random.fold_in(key, step),
                                          step + steps_per_call))
    counter = jax.device_put(np.uint32(start), getattr(key, "sharding", None))
    due = lambda cadence, done: (done == num_steps
                                 or (cadence and done % cadence == 0))
    # The calls since the last record, and its step; a checkpoint saved
    # between records holds them, so a resumed run's records stay those of
    # an uninterrupted run.
    pending: list[Any] = _unstacked(resumed.get("pending"))
    logged_until = resumed.get("logged_until", start)
    with _Interruptions() as interruptions, tqdm.tqdm(
        total=num_steps, initial=start, desc=desc, unit="step",
        unit_scale=steps_per_call > 1, dynamic_ncols=True,
        mininterval=0.5) as bar:
      # paused: time not spent training since tic.
      tic, paused = time.perf_counter(), -resumed.get("pending_seconds", 0.0)
      for step, batch in zip(range(start, num_steps, steps_per_call),
                             itertools.chain([first], upcoming)):
        with _host_untouched():
          step_key, counter = next_key(key, counter)
          state, metrics = step_fn(state, batch, step_key)
        pending.append(metrics)
        bar.update(steps_per_call)
        done = step + steps_per_call
        stop = interruptions.received(done)
        record: dict[str, Any] = {}
        if due(every.log, done):
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
        elif due(every.checkpoint, done) or stop:  # Never save a NaN state.
          pending = jax.device_get(pending)
          _fetch_and_check(pending, logged_until, steps_per_call, cause)
        pause = time.perf_counter()
        if due(every.eval, done) and evaluate is not None:
          record.update(_checked(evaluate(state), done))
        if due(every.sample, done) and sample is not None and main:
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
        if due(every.checkpoint, done) or stop:
          meta = {"step": done, "config": config, "records": history.records}
          if pending:  # Saved between records: the calls since the last.
            meta.update(pending=_stacked(pending), logged_until=logged_until,
                        pending_seconds=time.perf_counter() - tic - paused)
          checkpointer.save(done, state, meta=files.strict(meta))
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
                      ) -> tuple[Any, int, list[dict[str, Any]], dict[str, Any]]:
  """``(state, start_step, records, meta)``: fresh, or restored from the newest intact checkpoint.

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
             ) + run_files(workdir)
    if found:
      raise ConfigError(
          f"workdir {str(workdir)!r} already holds a run ({', '.join(found)}); "
          "continue it with option resume or choose another option workdir")
  found = checkpointer.newest_intact()
  if found is None:
    if resume:
      print(f"no checkpoint in {str(workdir)!r} to resume from: starting "
            "from step 0", file=sys.stderr)
    return state, 0, [], {}
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
  return state, step, meta["records"], meta


def run_files(workdir: pathlib.Path) -> list[str]:
  """The files of an earlier run in ``workdir``: what a fresh run would overwrite or mix with.

  Its metrics, summary, model table, TensorBoard events and plots and
  sample grids (any ``.png``); not the lock, nor the caches a driver fills
  before training (a GAN's classifier).
  """
  found = [name for name in (METRICS_FILE, SUMMARY_FILE, MODEL_FILE)
           if (workdir / name).is_file() and (workdir / name).stat().st_size]
  events = workdir / TENSORBOARD_DIR
  if events.is_dir() and any(events.iterdir()):
    found.append(f"{TENSORBOARD_DIR}/")
  pictures = sorted(p.name for p in workdir.glob("*.png"))
  if pictures:
    found.append(pictures[0] + (f" and {len(pictures) - 1} more pictures"
                                if len(pictures) > 1 else ""))
  return found


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


@contextlib.contextmanager
def _host_untouched():
  """Within it, an implicit transfer between host and device raises (big_vision's guard).

  Batches are placed ahead of time (``prefetch``), metrics are fetched
  explicitly once per record: a step that needs the host (a NumPy batch, a
  ``float(x)``) is a bug this catches.
  """
  with jax.transfer_guard_host_to_device("disallow"), \
      jax.transfer_guard_device_to_host("disallow"):
    yield


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
  chunk = jax.tree.map(lambda *xs: np.stack(xs), *jax.device_get(pending))
  bad = [(int(np.argmin(np.isfinite(v).reshape(len(v), -1).all(-1))), k)
         for k, v in chunk.items() if not np.all(np.isfinite(v))]
  if bad:
    call, name = min(bad)
    first = first_step + call * steps_per_call + 1
    raise NonFiniteLossError(first, name, first + steps_per_call - 1,
                             cause(first))
  return chunk


def _stacked(pending: list[dict[str, Any]]) -> dict[str, Any]:
  """Fetched per-call metrics as JSON: ``{name: {"dtype", "values"}}``, calls stacked."""
  stacked = jax.tree.map(lambda *xs: np.stack(xs), *pending)
  return {name: {"dtype": str(v.dtype), "values": v.tolist()}
          for name, v in stacked.items()}


def _unstacked(saved: dict[str, Any] | None) -> list[dict[str, np.ndarray]]:
  """The inverse of ``_stacked``, dtypes and all (so later means are bit-identical)."""
  if not saved:
    return []
  arrays = {name: np.asarray(v["values"], v["dtype"])
            for name, v in saved.items()}
  calls = len(next(iter(arrays.values())))
  return [{name: a[i] for name, a in arrays.items()} for i in range(calls)]


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
      raise Interrupted(signal.Signals(signum).name, during_training=True)
    self._name = signal.Signals(signum).name

  def received(self, step: int) -> str | None:
    if jax.process_count() > 1:  # Every process must stop at the same step.
      return ("SIGTERM" if multihost_utils.reached_preemption_sync_point(step)
              else None)
    return self._name

  def __exit__(self, *exc):
    for s, handler in self._previous.items():
      signal.signal(s, handler)
