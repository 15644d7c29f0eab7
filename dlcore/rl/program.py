"""A whole RL run as pure functions of a ``Runner``: one protocol for DQN and PPO.

Usage::

  program = make_dqn_program(config)        # or make_ppo_program
  runner = program.init(key)
  runner, metrics = program.chunk(runner, 100)   # 100 iterations, a few scalars
  returns = program.evaluate(runner.agent.params, eval_key)
  runners, metrics = jax.jit(jax.vmap(whole_run(program)))(keys)   # one program

A ``Runner`` pytree carries everything a run needs (agent, replay buffer if
any, environment states, current observations, running episode returns,
iteration counter, key), so ``chunk`` is a pure function of it: jit it,
vmap it over seeds, checkpoint the runner between chunks and resume
exactly. One iteration is one vectorised environment step for DQN, one
rollout and its updates for PPO; ``chunk`` scans ``iterate`` and reduces
the iterations' outputs with ``summarize`` to per-chunk scalars, so memory
does not grow with the length of the run. ``as_objective`` makes a program
a ``dlcore.objective.Objective`` whose train step is one chunk, for the
common driver (``dlcore.experiment.fit``).
"""

import dataclasses
from typing import Any, Callable

import jax
from flax import struct
from jax import lax

from dlcore.objective import Objective

Metrics = dict[str, jax.Array]


@struct.dataclass
class Runner:
  """The complete state of one seed's run (a pytree)."""
  agent: Any  # A train state.
  env_state: Any  # gymnax state, leaves [num_envs, ...]
  obs: jax.Array  # [num_envs, *obs_shape]
  episode_return: jax.Array  # [num_envs], unscaled return of running episodes
  iteration: jax.Array  # int32 [], iterations done
  key: jax.Array
  buffer: Any = None  # A replay buffer (DQN); None (PPO).


@dataclasses.dataclass(frozen=True)
class Program:
  """The pure functions of a run and the sizes that shape them.

  Attributes:
    init: ``init(key) -> Runner``.
    iterate: ``iterate(runner) -> (runner, outputs)``: one iteration.
    summarize: ``summarize(runner, outputs) -> metrics``: the scalars of a
      chunk from its iterations' stacked outputs and the runner after it.
    evaluate: ``evaluate(params, key) -> returns`` (a mean return, or a
      tuple of them).
    steps_per_iteration: environment steps of one iteration (per seed).
    num_updates: gradient updates of the whole run.
  """
  init: Callable[[jax.Array], Runner]
  iterate: Callable[[Runner], tuple[Runner, Metrics]]
  summarize: Callable[[Runner, Metrics], Metrics]
  evaluate: Callable[[Any, jax.Array], Any]
  steps_per_iteration: int
  num_updates: int

  def chunk(self, runner: Runner, iterations: int) -> tuple[Runner, Metrics]:
    """``iterations`` iterations in one ``lax.scan``; returns the chunk's scalars."""
    runner, outputs = lax.scan(lambda r, _: self.iterate(r), runner, None,
                               length=iterations)
    return runner, self.summarize(runner, outputs)


def whole_run(program: Program, chunks: int, iterations_per_chunk: int
              ) -> Callable[[jax.Array], tuple[Runner, Metrics]]:
  """``train(key) -> (runner, metrics)``: ``chunks`` chunks in one ``lax.scan``.

  ``metrics`` stacks the per-chunk scalars (leading axis ``chunks``), so
  ``jax.jit(jax.vmap(train))(keys)`` trains one seed per key.
  """
  def train(key: jax.Array) -> tuple[Runner, Metrics]:
    return lax.scan(lambda r, _: program.chunk(r, iterations_per_chunk),
                    program.init(key), None, length=chunks)

  return train


def as_objective(program: Program, iterations_per_chunk: int) -> Objective:
  """``program`` as an ``Objective``: ``init(key, None)``, a train step of one chunk.

  The runner carries its own keys, so the step's batch and key go unused.
  """
  def train_step(runner, batch, key, *, axis_name=None):
    del batch, key, axis_name  # One seed: no collective.
    return program.chunk(runner, iterations_per_chunk)

  return Objective(init=lambda key, batch: program.init(key),
                   train_step=train_step)
