"""An objective is a value: a few pure functions, in the spirit of optax's ``GradientTransformation``.

Usage::

  objective = Objective(init=init, train_step=train_step, eval_step=eval_step)
  state = objective.init(key, sample_batch)
  state, metrics = objective.train_step(state, batch, key)        # axis_name=None
  sums = objective.eval_step(state, batch, key)                   # mergeable metrics

Every function is pure and knows nothing of files, devices or command
lines, so one driver (``dlcore.experiment.fit``, on ``dlcore.loop.train``)
runs any objective, and ``dlcore.parallel.wrap`` runs its steps on many
devices:

- ``init(key, batch) -> state``: a fresh state (a pytree), shaped by one
  sample batch of the training data (``None`` for objectives that make
  their own data, such as a reinforcement-learning agent).
- ``train_step(state, batch, key, *, axis_name=None) -> (state, metrics)``:
  one update; ``metrics`` is a flat dict of scalars. Under ``jax.pmap`` /
  ``jax.shard_map`` with ``axis_name`` set it averages gradients, BatchNorm
  statistics and metrics over that axis. An RL objective's step is one
  compiled chunk of many environment steps (``dlcore.rl.program.as_objective``):
  its state carries its own environments and keys, and its batch is None.
- ``eval_step(state, batch, key, *, axis_name=None) -> metrics``: sums over
  the batch's unmasked examples as ``dlcore.metrics`` pytrees (``psum``
  over ``axis_name``), merged over batches and devices.
- ``sample(state, key) -> images``: ``[N, H, W, C]`` in [0, 1] to look at.
"""

from typing import Any, Callable, NamedTuple

import jax

Metrics = dict[str, jax.Array]
"""A step's metrics: a flat dict of scalars, kept on the device."""

InitFn = Callable[[jax.Array, Any], Any]
TrainStepFn = Callable[..., tuple[Any, Metrics]]
EvalStepFn = Callable[..., dict[str, Any]]
SampleFn = Callable[[Any, jax.Array], jax.Array]


class Objective(NamedTuple):
  """The pure functions of a training objective; see the module docstring."""
  init: InitFn
  train_step: TrainStepFn
  eval_step: EvalStepFn | None = None
  sample: SampleFn | None = None
