"""DQN workloads, registered when ``dlcore.rl.dqn`` exists.

Usage: imported by ``benchmarks.workloads``; then ``python -m benchmarks
--workloads dqn_update,dqn_loop``.

``dqn_update`` times one TD update (``dqn_step``) of the CartPole Q-network
on a batch of random transitions, against CleanRL's hand-written update
(``baseline.dqn_update``). ``dqn_loop`` times one compiled chunk of the
end-to-end run (``make_dqn_program(...).chunk``: environment steps, replay,
updates and target updates in one ``lax.scan``) with the reference
hyperparameters, after two warm-up chunks that fill the buffer past
``learning_starts``; its items are environment steps. Its baseline is the
same run written PureJaxRL-style (``baseline.make_dqn_loop``, the same
hyperparameters, init key and random draws), which from one key follows the
same trajectory.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks import baseline
from benchmarks.workloads import Workload, register
from dlcore.models.qnetworks import create_q_network
from dlcore.rl.dqn import DqnConfig, create_dqn_state, dqn_step
from dlcore.rl.dqn import make_dqn_program

OBS_SHAPE, NUM_ACTIONS = (4,), 2  # CartPole-v1
STEPS_PER_CHUNK = 10_000


def _transitions(rng: np.random.Generator, batch_size: int):
  return {"obs": rng.normal(size=(batch_size,) + OBS_SHAPE).astype(np.float32),
          "action": rng.integers(0, NUM_ACTIONS, batch_size).astype(np.int32),
          "reward": np.ones(batch_size, np.float32),
          "next_obs": rng.normal(size=(batch_size,) + OBS_SHAPE).astype(
              np.float32),
          "terminated": rng.random(batch_size) < 0.05}


def _update(batch, dtype, key):
  del batch, dtype
  state = create_dqn_state(DqnConfig(), OBS_SHAPE, NUM_ACTIONS, key)
  return jax.jit(dqn_step, donate_argnums=0), state


def _update_baseline(batch, dtype, key):
  """The hand-written update on the same network, optimizer and init key."""
  del dtype
  config = DqnConfig()
  network = create_q_network(OBS_SHAPE, NUM_ACTIONS, dueling=config.dueling)
  params = network.init(key, batch["obs"][:1])["params"]
  state = baseline.DqnTrainState.create(
      apply_fn=network.apply, params=params,
      target_params=jax.tree.map(jnp.copy, params),
      tx=optax.adam(config.optimizer.lr))  # Clipping is off by default.
  return jax.jit(baseline.dqn_update, donate_argnums=0), state


def _loop(batch, dtype, key):
  del batch, dtype
  config = DqnConfig(chunk_steps=STEPS_PER_CHUNK,
                     learning_starts=STEPS_PER_CHUNK)
  program = make_dqn_program(config)

  def chunk(runner, batch, key):
    del batch, key  # The run draws its own keys and data.
    return program.chunk(runner, STEPS_PER_CHUNK // config.num_envs)

  return jax.jit(chunk, donate_argnums=0), program.init(key)


def _loop_baseline(batch, dtype, key):
  """The PureJaxRL-style chunk of the same length, from the same key."""
  del batch, dtype
  init, chunk = baseline.make_dqn_loop(
      baseline.DqnArgs(learning_starts=STEPS_PER_CHUNK,
                       steps_per_chunk=STEPS_PER_CHUNK),
      create_q_network(OBS_SHAPE, NUM_ACTIONS))

  def step(runner, batch, key):
    del batch, key
    return chunk(runner)

  return jax.jit(step, donate_argnums=0), jax.jit(init)(key)


register(Workload(name="dqn_update", description="DQN TD update, CartPole "
                  "Q-network", make_batch=_transitions, dlcore=_update,
                  baseline=_update_baseline,
                  batch_size=128, quick_batch_size=128, unit="transitions"))
register(Workload(name="dqn_loop", description="DQN end to end on CartPole, "
                  f"{STEPS_PER_CHUNK} environment steps per call",
                  make_batch=lambda rng, batch_size: {}, dlcore=_loop,
                  baseline=_loop_baseline,
                  batch_size=128, quick_batch_size=128, unit="env steps",
                  items_per_step=lambda batch_size: STEPS_PER_CHUNK,
                  flops_per_step=lambda batch_size: None,  # A scan of scans.
                  in_quick=False))
