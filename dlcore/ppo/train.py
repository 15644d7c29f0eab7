"""End-to-end PPO as pure functions: rollouts, GAE and minibatch updates in one program.

Usage::

  train = make_ppo_train(config)                 # the whole run, one function
  runners, chunk_metrics = jax.jit(jax.vmap(train))(jax.random.split(key, 4))

  program = make_ppo_program(config)             # the same run, chunk by chunk
  runner = program.init(key)
  for _ in range(program.num_chunks):
    runner, metrics = program.chunk(runner)      # metrics: a few scalars
  greedy, stochastic = program.evaluate(runner.agent.params, eval_key)

A ``Runner`` pytree carries everything a run needs (agent, environment
states, current observations, running episode returns, iteration counter,
key), so ``chunk`` is a pure function of it: jit it, vmap it over seeds,
checkpoint the runner between chunks and resume exactly.

One iteration (PureJaxRL's "update step") splits the runner's key into
(next, rollout, update) keys, then

1. rolls the current policy out for ``num_steps`` vectorised steps of
   ``num_envs`` gymnax environments (``lax.scan``; per step the key splits
   into acting and environment keys), recording observations, actions,
   log-probabilities, values, rewards (times ``reward_scale``) and the
   terminated / done flags;
2. values the true final observation of every step in one batched critic
   call and computes GAE (``dlcore.ppo.losses.gae``): time-limit
   truncations bootstrap, terminations do not;
3. makes ``update_epochs`` passes (one key each) over the ``num_envs x
   num_steps`` samples, each a fresh permutation cut into
   ``num_minibatches`` minibatches, one ``ppo_step`` per minibatch.

A chunk is a ``lax.scan`` over ``log_every / (num_envs x num_steps)``
iterations that returns only per-chunk summaries (episodes finished and the
sum of their returns, the mean loss terms of its updates), so memory does
not grow with the length of the run. Every random draw of a seed derives
from that seed's own key.
"""

import dataclasses
import functools
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
from flax import struct
from flax.training import train_state
from gymnax.environments import spaces
from jax import lax

from dlcore.ppo.config import PpoConfig, check_config, iterations
from dlcore.ppo.losses import gae
from dlcore.ppo.state import create_actor_critic, create_ppo_state
from dlcore.ppo.steps import ppo_step
from dlcore.rl.envs import make_env
from dlcore.rl.run import whole_run

UPDATE_METRICS = ("loss", "policy_loss", "value_loss", "entropy", "approx_kl",
                  "clip_fraction")


@struct.dataclass
class Runner:
  """The complete state of one seed's run (a pytree)."""
  agent: train_state.TrainState
  env_state: Any  # gymnax state, leaves [num_envs, ...]
  obs: jax.Array  # [num_envs, *obs_shape]
  episode_return: jax.Array  # [num_envs], unscaled return of running episodes
  iteration: jax.Array  # int32 [], iterations (rollout + update) done
  key: jax.Array


@dataclasses.dataclass(frozen=True)
class PpoProgram:
  """The pure functions of a run and the static sizes that shape them."""
  init: Callable[[jax.Array], Runner]
  chunk: Callable[[Runner], tuple[Runner, dict[str, jax.Array]]]
  evaluate: Callable[[Any, jax.Array], tuple[jax.Array, jax.Array]]
  num_chunks: int
  steps_per_chunk: int  # environment steps per chunk (per seed)
  num_updates: int  # gradient updates of the whole run
  obs_shape: tuple[int, ...]
  action_dim: int
  continuous: bool


def make_evaluate(env, env_params, apply_fn, num_episodes: int):
  """``evaluate(params, key) -> (greedy, stochastic)`` mean returns over ``num_episodes``.

  Greedy episodes take the policy's mode, stochastic ones sample it. The
  episodes run in parallel for the environment's time limit; each counts
  the rewards of its first episode only.
  """
  num_steps = int(env_params.max_steps_in_episode)
  step_env = jax.vmap(env.step, in_axes=(0, 0, 0, None))

  def episodes(params, key: jax.Array, greedy: bool) -> jax.Array:
    reset_key, key = jax.random.split(key)
    obs, env_state = jax.vmap(env.reset, in_axes=(0, None))(
        jax.random.split(reset_key, num_episodes), env_params)

    def step(carry, step_key):
      obs, env_state, returns, running = carry
      act_key, env_key = jax.random.split(step_key)
      dist, _ = apply_fn({"params": params}, obs)
      action = dist.mode() if greedy else dist.sample(act_key)
      obs, env_state, reward, terminated, truncated, _ = step_env(
          jax.random.split(env_key, num_episodes), env_state, action,
          env_params)
      returns = returns + jnp.where(running, reward, 0.0)
      running = running & ~(terminated | truncated)
      return (obs, env_state, returns, running), None

    carry = (obs, env_state, jnp.zeros(num_episodes),
             jnp.ones(num_episodes, bool))
    (_, _, returns, _), _ = lax.scan(step, carry,
                                     jax.random.split(key, num_steps))
    return jnp.mean(returns)

  def evaluate(params, key: jax.Array) -> tuple[jax.Array, jax.Array]:
    greedy_key, stochastic_key = jax.random.split(key)
    return (episodes(params, greedy_key, True),
            episodes(params, stochastic_key, False))

  return evaluate


def make_ppo_program(config: PpoConfig) -> PpoProgram:
  """The init, chunk and evaluate functions of a run of ``config``."""
  check_config(config)
  env, env_params = make_env(config.env, continuous=True)
  action_space = env.action_space(env_params)
  continuous = isinstance(action_space, spaces.Box)
  action_dim = (int(math.prod(action_space.shape)) if continuous
                else int(action_space.n))
  obs_shape = tuple(env.observation_space(env_params).shape)
  num_envs, num_steps = config.num_envs, config.num_steps
  batch_size = num_envs * num_steps
  minibatch_size = batch_size // config.num_minibatches
  iters_per_chunk, num_chunks = iterations(config)
  updates_per_iter = config.update_epochs * config.num_minibatches
  num_updates = num_chunks * iters_per_chunk * updates_per_iter
  step_env = jax.vmap(env.step, in_axes=(0, 0, 0, None))
  update = functools.partial(
      ppo_step, clip_eps=config.clip_eps, vf_coef=config.vf_coef,
      ent_coef=config.ent_coef, clip_value=config.clip_value)

  def init(key: jax.Array) -> Runner:
    agent_key, reset_key, key = jax.random.split(key, 3)
    agent = create_ppo_state(config, obs_shape, action_dim, continuous,
                             agent_key, num_updates)
    obs, env_state = jax.vmap(env.reset, in_axes=(0, None))(
        jax.random.split(reset_key, num_envs), env_params)
    return Runner(agent, env_state, obs, jnp.zeros(num_envs),
                  jnp.zeros((), jnp.int32), key)

  def rollout_step(agent, carry, key):
    env_state, obs, episode_return = carry
    act_key, env_key = jax.random.split(key)
    dist, value = agent.apply_fn({"params": agent.params}, obs)
    action = dist.sample(act_key)
    next_obs, env_state, reward, terminated, truncated, info = step_env(
        jax.random.split(env_key, num_envs), env_state, action, env_params)
    reward = reward.astype(jnp.float32)
    done = terminated | truncated
    episode_return = episode_return + reward
    transition = {"obs": obs, "action": action,
                  "log_prob": dist.log_prob(action), "value": value,
                  "reward": reward * config.reward_scale,
                  "terminated": terminated, "done": done,
                  "final_obs": info["final_observation"],
                  "finished_return": jnp.where(done, episode_return, 0.0)}
    carry = (env_state, next_obs, jnp.where(done, 0.0, episode_return))
    return carry, transition

  def epoch(agent, key, samples):
    order = jax.random.permutation(key, batch_size)
    minibatches = jax.tree.map(
        lambda x: x[order].reshape(config.num_minibatches, minibatch_size,
                                   *x.shape[1:]), samples)
    return lax.scan(lambda a, mb: update(a, mb, key), agent, minibatches)

  def iteration(runner: Runner, _):
    key, rollout_key, update_key = jax.random.split(runner.key, 3)
    agent = runner.agent
    (env_state, obs, episode_return), traj = lax.scan(
        functools.partial(rollout_step, agent),
        (runner.env_state, runner.obs, runner.episode_return),
        jax.random.split(rollout_key, num_steps))
    final_obs = traj["final_obs"].reshape(batch_size, *obs_shape)
    next_value = agent.apply_fn({"params": agent.params}, final_obs,
                                method="value").reshape(num_steps, num_envs)
    advantage = gae(traj["reward"], traj["value"], next_value,
                    traj["terminated"], traj["done"], gamma=config.gamma,
                    lam=config.gae_lambda)
    samples = {"obs": traj["obs"], "action": traj["action"],
               "log_prob": traj["log_prob"], "value": traj["value"],
               "advantage": advantage, "target": advantage + traj["value"]}
    samples = jax.tree.map(lambda x: x.reshape(batch_size, *x.shape[2:]),
                           samples)
    agent, metrics = lax.scan(
        lambda a, k: epoch(a, k, samples), agent,
        jax.random.split(update_key, config.update_epochs))
    out = {"episodes": jnp.sum(traj["done"]),
           "return_sum": jnp.sum(traj["finished_return"]),
           **{k: jnp.mean(v) for k, v in metrics.items()}}
    return Runner(agent, env_state, obs, episode_return,
                  runner.iteration + 1, key), out

  def chunk(runner: Runner) -> tuple[Runner, dict[str, jax.Array]]:
    """``iters_per_chunk`` iterations; returns per-chunk summary scalars.

    ``episodes`` ended in the chunk with (unscaled) returns summing to
    ``return_sum``; the loss terms (``UPDATE_METRICS``) are means over the
    chunk's updates.
    """
    runner, outs = lax.scan(iteration, runner, None, length=iters_per_chunk)
    return runner, {
        "env_steps": runner.iteration * batch_size,
        "episodes": jnp.sum(outs["episodes"]),
        "return_sum": jnp.sum(outs["return_sum"]),
        **{k: jnp.mean(outs[k]) for k in UPDATE_METRICS}}

  network = create_actor_critic(config, action_dim, continuous)
  evaluate = make_evaluate(env, env_params, network.apply,
                           config.eval_episodes)
  return PpoProgram(init, chunk, evaluate, num_chunks,
                    iters_per_chunk * batch_size, num_updates, obs_shape,
                    action_dim, continuous)


def make_ppo_train(config: PpoConfig) -> Callable[[jax.Array], tuple[Runner, dict]]:
  """``train(key) -> (runner, metrics)``: the whole run as one pure function (``whole_run``)."""
  return whole_run(make_ppo_program(config))
