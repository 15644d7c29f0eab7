"""Seeds of a compiled RL program trained on the common loop, evaluated and summarised.

Usage (the shared part of ``dlcore.qlearning.run`` and ``dlcore.ppo.run``)::

  program = make_ppo_program(config)             # validates the options
  history, mesh = train_seeds(program, config, workdir, name="PPO",
                              summarize=summarize, evaluate=evaluate)
  summary = write_summary(config, history, mesh, workdir,
                          eval_names=("eval_return", ...), measures="...")
  runners, metrics = jax.jit(jax.vmap(whole_run(program)))(keys)  # No loop.

A program has ``init(key) -> runner``, ``chunk(runner) -> (runner,
metrics)``, ``evaluate(params, key) -> returns``, ``steps_per_chunk`` and
``num_chunks``. One call of the loop's step is one compiled chunk for every
seed at once (``jax.vmap``), the seeds spread over ``seed_mesh(config)``'s
devices; the runner carries the keys, buffers and environment states, so a
checkpoint between chunks resumes exactly.
"""

import itertools
import pathlib
from typing import Any, Callable

import jax
import numpy as np
from jax import lax

from dlcore import files, loop, parallel
from dlcore.config import experiment_dict
from dlcore.rl.seeds import per_seed, seed_keys, seed_mesh
from dlcore.writers import SUMMARY_FILE

EVAL_STREAM = 1  # fold_in(seed_key, EVAL_STREAM) seeds a seed's evaluation.


def whole_run(program: Any) -> Callable[[jax.Array], tuple[Any, dict]]:
  """``train(key) -> (runner, metrics)``: every chunk of ``program`` in one ``lax.scan``.

  ``metrics`` stacks the per-chunk summaries (leading axis ``num_chunks``),
  so ``jax.jit(jax.vmap(train))(keys)`` trains one seed per key.
  """
  def train(key: jax.Array) -> tuple[Any, dict[str, jax.Array]]:
    return lax.scan(lambda runner, _: program.chunk(runner),
                    program.init(key), None, length=program.num_chunks)

  return train


def per_seed_record(name: str, values: np.ndarray) -> dict[str, Any]:
  """``{name: mean, name_per_seed: [...]}`` of one value per seed."""
  return {name: float(np.mean(values)),
          f"{name}_per_seed": [float(v) for v in values]}


def train_seeds(program: Any, config: Any, workdir: str | pathlib.Path, *,
                name: str, summarize: Callable[[dict[str, np.ndarray]], dict],
                evaluate: Callable[[Any], dict[str, Any]]
                ) -> tuple[loop.History, jax.sharding.Mesh]:
  """Trains ``config.seeds`` seeds of ``program`` in ``workdir``; returns the history and the mesh.

  Args:
    program: see the module docstring.
    config: options with ``seed``, ``seeds``, ``devices``, ``parallel``,
      ``checkpoint_every`` (rounded up to whole chunks), ``resume``, ``env``.
    workdir: where the loop writes.
    name: the algorithm, for the progress bar.
    summarize: the loop's ``summarize`` (leaves ``[chunks, seeds]``).
    evaluate: ``evaluate(returns) -> record`` from what
      ``vmap(program.evaluate)`` gave every seed, on host, at the end.
  """
  mesh = seed_mesh(config)
  workdir = files.prepare_workdir(workdir)
  keys = parallel.shard_batch(np.asarray(seed_keys(config)), mesh)
  chunk_length = program.steps_per_chunk
  every = loop.LoopConfig(
      log_every=chunk_length, eval_every=0, sample_every=0,
      checkpoint_every=-(-config.checkpoint_every // chunk_length)
      * chunk_length)
  evaluate_seeds = jax.jit(jax.vmap(program.evaluate))
  eval_keys = jax.vmap(jax.random.fold_in, (0, None))(keys, EVAL_STREAM)
  # The runner carries its own keys: the loop's batch and key go unused.
  chunk = per_seed(lambda runner, batch, key: program.chunk(runner), mesh,
                   config.parallel, donate_argnums=0)
  _, history = loop.train(
      per_seed(program.init, mesh, config.parallel)(keys), chunk,
      lambda start: itertools.repeat(None), key=jax.random.PRNGKey(config.seed),
      num_steps=program.num_chunks * chunk_length, workdir=workdir,
      every=every, evaluate=lambda runners: evaluate(jax.device_get(
          evaluate_seeds(runners.agent.params, eval_keys))),
      resume=config.resume, config=experiment_dict(config),
      steps_per_call=chunk_length, summarize=summarize,
      desc=f"{name} on {config.env}, {mesh.size} device(s)")
  return history, mesh


def write_summary(config: Any, history: loop.History, mesh: jax.sharding.Mesh,
                  workdir: str | pathlib.Path, *, eval_names: tuple[str, ...],
                  measures: str, **extra: Any) -> dict[str, Any]:
  """Writes ``summary.json`` (process 0) and returns it.

  It holds the final evaluation (``eval_names`` of the last record),
  environment steps per second of the compiled chunks (``measures`` says
  of what), times, sizes, ``extra`` and the config.
  """
  last = history.last
  trained_steps = history.records[-1]["step"]
  summary = {
      "env": config.env,
      **{name: last[name] for name in eval_names},
      "eval_return_std": float(np.std(last["eval_return_per_seed"])),
      "eval_episodes": config.eval_episodes,
      "env_steps": trained_steps,
      "seeds": config.seeds,
      "train_seconds": history.train_seconds,
      "compile_seconds": history.compile_seconds,
      "env_steps_per_sec": config.seeds * trained_steps / history.train_seconds,
      "env_steps_per_sec_per_seed": trained_steps / history.train_seconds,
      "env_steps_per_sec_measures": (
          "environment steps per second of the compiled training chunks "
          f"({measures}), all seeds together, excluding compilation, "
          "checkpoints and evaluation"),
      "num_params": history.num_params,
      "device": jax.devices()[0].device_kind,
      "num_devices": mesh.size,
      **extra,
      "config": experiment_dict(config)}
  if parallel.is_main_process():
    files.write_json(pathlib.Path(workdir) / SUMMARY_FILE, summary)
  return summary
