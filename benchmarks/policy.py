"""PPO workloads, registered when ``dlcore.rl.ppo`` exists.

Usage: imported by ``benchmarks.workloads``; then ``python -m benchmarks
--workloads ppo_loop,ppo_loop_8_seeds``.

Each times one compiled chunk of the end-to-end run
(``make_ppo_program(...).chunk``: 16 iterations of a 128-step rollout of 4
CartPole environments, GAE and 4 epochs of 4 minibatch updates, 8,192
environment steps per seed) with PureJaxRL's reference hyperparameters, for
one seed and for 8 seeds vmapped in one call, as ``experiments/ppo.py``
runs them on one device; its items are environment steps of all seeds. The
baseline is the same run written PureJaxRL-style
(``baseline.make_ppo_loop``, the same hyperparameters, init key and random
draws), which from one key follows the same trajectory.
"""

import jax

from benchmarks import baseline
from benchmarks.workloads import Workload, register
from dlcore.rl.ppo import PpoConfig, create_actor_critic, make_ppo_program

ITERATIONS_PER_CHUNK = 16
STEPS_PER_CHUNK = ITERATIONS_PER_CHUNK * 4 * 128  # PpoConfig's num_envs x num_steps


def _seeded(init, chunk, key: jax.Array, seeds: int):
  """``(jitted step, runners)``: ``chunk`` vmapped over ``seeds`` runs from ``key``."""
  def step(runners, batch, key):
    del batch, key  # The run draws its own keys and data.
    return jax.vmap(chunk)(runners)
  return (jax.jit(step, donate_argnums=0),
          jax.jit(jax.vmap(init))(jax.random.split(key, seeds)))


def _loop(seeds: int):
  def build(batch, dtype, key):
    del batch, dtype
    program = make_ppo_program(PpoConfig(chunk_steps=STEPS_PER_CHUNK))
    return _seeded(program.init,
                   lambda runner: program.chunk(runner, ITERATIONS_PER_CHUNK),
                   key, seeds)
  return build


def _loop_baseline(seeds: int):
  """The PureJaxRL-style chunk of the same length, from the same keys."""
  def build(batch, dtype, key):
    del batch, dtype
    init, chunk = baseline.make_ppo_loop(
        baseline.PpoArgs(updates_per_chunk=ITERATIONS_PER_CHUNK),
        create_actor_critic(PpoConfig(), 2, continuous=False))
    return _seeded(init, chunk, key, seeds)
  return build


for _seeds, _name in ((1, "ppo_loop"), (8, "ppo_loop_8_seeds")):
  register(Workload(
      name=_name, description=f"PPO end to end on CartPole, {_seeds} seed(s), "
      f"{STEPS_PER_CHUNK} environment steps per seed per call",
      make_batch=lambda rng, batch_size: {}, dlcore=_loop(_seeds),
      baseline=_loop_baseline(_seeds), batch_size=128, quick_batch_size=128,
      unit="env steps",
      items_per_step=lambda batch_size, seeds=_seeds: seeds * STEPS_PER_CHUNK,
      flops_per_step=lambda batch_size: None,  # A scan of scans.
      in_quick=False))
