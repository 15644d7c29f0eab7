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
(``make_ppo_loop``, the same hyperparameters, init key and random
draws), which from one key follows the same trajectory.
"""

import dataclasses
from typing import Any, NamedTuple

import flax.linen as nn
import gymnax
import jax
import jax.numpy as jnp
import optax
from flax.training import train_state
from jax import lax

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
    init, chunk = make_ppo_loop(
        PpoArgs(updates_per_chunk=ITERATIONS_PER_CHUNK),
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


# The hand-written PPO: rollouts, GAE and minibatch epochs in nested
# ``lax.scan`` s, as PureJaxRL's ``ppo.py`` does, its keys split as
# dlcore's (tests/test_benchmarks.py).


@dataclasses.dataclass(frozen=True)
class PpoArgs:
  """PureJaxRL's ``ppo.py`` CartPole hyperparameters; steps count all envs."""
  env_name: str = "CartPole-v1"
  lr: float = 2.5e-4
  num_envs: int = 4
  num_steps: int = 128
  total_timesteps: int = 500_000  # Only sets the learning-rate schedule here.
  update_epochs: int = 4
  num_minibatches: int = 4
  gamma: float = 0.99
  gae_lambda: float = 0.95
  clip_eps: float = 0.2
  ent_coef: float = 0.01
  vf_coef: float = 0.5
  max_grad_norm: float = 0.5
  updates_per_chunk: int = 16  # PureJaxRL's "update steps" per call.


class PpoRunner(NamedTuple):
  train_state: train_state.TrainState
  env_state: Any  # leaves [num_envs, ...]
  obs: jax.Array  # [num_envs, *obs_shape]
  episode_return: jax.Array  # [num_envs]
  key: jax.Array


class Transition(NamedTuple):
  terminated: jax.Array
  done: jax.Array
  action: jax.Array
  value: jax.Array
  reward: jax.Array
  log_prob: jax.Array
  obs: jax.Array
  final_obs: jax.Array
  finished_return: jax.Array


def make_ppo_loop(args: PpoArgs, network: nn.Module):
  """``(init(key) -> runner, chunk(runner) -> (runner, metrics))`` of a PPO run.

  ``chunk`` is PureJaxRL's ``_update_step`` scanned ``updates_per_chunk``
  times: a ``num_steps`` rollout of ``num_envs`` gymnax environments, GAE,
  then ``update_epochs`` passes of ``num_minibatches`` shuffled minibatches
  with the clipped surrogate, the clipped value loss and the entropy bonus,
  Adam (annealed linearly over all minibatch updates) after global-norm
  clipping. ``network`` returns ``(distribution, value)`` (dlcore's
  ``ActorCritic``; PureJaxRL's returns a distrax distribution). Metrics:
  episodes finished, the sum of their returns, and the mean loss terms.

  Two departures from ``ppo.py``, so that both sides compute the same run:
  GAE bootstraps a time-limit truncation from the value of the true final
  observation (gymnax's ``info["final_observation"]``), valuing every
  step's final observation in one batched call after the rollout, where
  ``ppo.py`` treats truncation as termination; and the learning rate falls
  linearly with each minibatch update rather than once per update step.
  Keys are split as dlcore's ``make_ppo_program`` splits them: ``init``
  into (network, reset, run); each update step the run key into (next run
  key, rollout, update); the rollout key into one key per step, each into
  (action, environment); the update key into one key per epoch, each
  drawing that epoch's permutation.
  """
  env, env_params = gymnax.make(args.env_name)
  num_envs, num_steps = args.num_envs, args.num_steps
  batch_size = num_envs * num_steps
  minibatch_size = batch_size // args.num_minibatches
  num_updates = (args.total_timesteps // batch_size * args.update_epochs
                 * args.num_minibatches)
  obs_shape = env.observation_space(env_params).shape
  reset = jax.vmap(env.reset, in_axes=(0, None))
  step = jax.vmap(env.step, in_axes=(0, 0, 0, None))

  def init(key: jax.Array) -> PpoRunner:
    params_key, reset_key, key = jax.random.split(key, 3)
    params = network.init(params_key, jnp.zeros((1, *obs_shape)))["params"]
    tx = optax.chain(
        optax.clip_by_global_norm(args.max_grad_norm),
        optax.adam(optax.linear_schedule(args.lr, 0.0, num_updates)))
    state = train_state.TrainState.create(apply_fn=network.apply,
                                          params=params, tx=tx)
    obs, env_state = reset(jax.random.split(reset_key, num_envs), env_params)
    return PpoRunner(state, env_state, obs, jnp.zeros(num_envs), key)

  def update_step(runner: PpoRunner, _):
    state, env_state, last_obs, episode_return, key = runner
    key, rollout_key, update_key = jax.random.split(key, 3)

    def env_step(carry, step_key):
      env_state, last_obs, episode_return = carry
      action_key, env_key = jax.random.split(step_key)
      pi, value = network.apply({"params": state.params}, last_obs)
      action = pi.sample(action_key)
      log_prob = pi.log_prob(action)
      obs, env_state, reward, terminated, truncated, info = step(
          jax.random.split(env_key, num_envs), env_state, action, env_params)
      reward = reward.astype(jnp.float32)
      done = terminated | truncated
      episode_return = episode_return + reward
      transition = Transition(terminated, done, action, value, reward,
                              log_prob, last_obs, info["final_observation"],
                              jnp.where(done, episode_return, 0.0))
      return (env_state, obs, jnp.where(done, 0.0, episode_return)), transition

    (env_state, last_obs, episode_return), traj = lax.scan(
        env_step, (env_state, last_obs, episode_return),
        jax.random.split(rollout_key, num_steps))

    next_value = network.apply(
        {"params": state.params},
        traj.final_obs.reshape(batch_size, *obs_shape),
        method="value").reshape(num_steps, num_envs)

    def get_advantages(gae, step_values):
      transition, next_value = step_values
      delta = (transition.reward + args.gamma * next_value
               * (1 - transition.terminated) - transition.value)
      gae = delta + args.gamma * args.gae_lambda * (1 - transition.done) * gae
      return gae, gae

    _, advantages = lax.scan(get_advantages, jnp.zeros(num_envs),
                             (traj, next_value), reverse=True, unroll=16)
    targets = advantages + traj.value

    def update_minibatch(state, minibatch):
      traj, gae, targets = minibatch

      def loss_fn(params):
        pi, value = network.apply({"params": params}, traj.obs)
        log_prob = pi.log_prob(traj.action)
        value_clipped = traj.value + jnp.clip(value - traj.value,
                                              -args.clip_eps, args.clip_eps)
        value_loss = 0.5 * jnp.maximum(
            jnp.square(value - targets),
            jnp.square(value_clipped - targets)).mean()
        log_ratio = log_prob - traj.log_prob
        ratio = jnp.exp(log_ratio)
        normalized = (gae - gae.mean()) / (gae.std() + 1e-8)
        loss_actor = -jnp.minimum(
            ratio * normalized,
            jnp.clip(ratio, 1 - args.clip_eps, 1 + args.clip_eps)
            * normalized).mean()
        entropy = pi.entropy().mean()
        total = loss_actor + args.vf_coef * value_loss - args.ent_coef * entropy
        return total, (loss_actor, value_loss, entropy,
                       ((ratio - 1) - log_ratio).mean(),
                       (jnp.abs(ratio - 1) > args.clip_eps).mean())

      (total, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(
          state.params)
      return state.apply_gradients(grads=grads), (total, *aux)

    def update_epoch(state, epoch_key):
      permutation = jax.random.permutation(epoch_key, batch_size)
      batch = jax.tree.map(lambda x: x.reshape(batch_size, *x.shape[2:]),
                           (traj, advantages, targets))
      minibatches = jax.tree.map(
          lambda x: x[permutation].reshape(args.num_minibatches,
                                           minibatch_size, *x.shape[1:]),
          batch)
      return lax.scan(update_minibatch, state, minibatches)

    state, losses = lax.scan(update_epoch, state,
                             jax.random.split(update_key, args.update_epochs))
    metrics = {"episodes": jnp.sum(traj.done),
               "return_sum": jnp.sum(traj.finished_return),
               **{name: jnp.mean(x) for name, x in zip(
                   ("loss", "policy_loss", "value_loss", "entropy",
                    "approx_kl", "clip_fraction"), losses)}}
    return PpoRunner(state, env_state, last_obs, episode_return, key), metrics

  def chunk(runner: PpoRunner):
    runner, metrics = lax.scan(update_step, runner, None,
                               length=args.updates_per_chunk)
    return runner, {"episodes": jnp.sum(metrics["episodes"]),
                    "return_sum": jnp.sum(metrics["return_sum"]),
                    **{k: jnp.mean(v) for k, v in metrics.items()
                       if k not in ("episodes", "return_sum")}}

  return init, chunk
