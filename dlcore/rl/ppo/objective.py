"""End-to-end PPO as pure functions: rollouts, GAE and minibatch updates in one program.

Usage::

  program = make_ppo_program(config)             # a dlcore.rl.program.Program
  runner = program.init(key)
  runner, metrics = program.chunk(runner, 16)    # metrics: a few scalars
  greedy, stochastic = program.evaluate(runner.agent.params, eval_key)

One iteration (PureJaxRL's "update step") splits the runner's key into
(next, rollout, update) keys, then

1. rolls the current policy out for ``num_steps`` vectorised steps of
   ``num_envs`` gymnax environments (``lax.scan``; per step the key splits
   into acting and environment keys), recording observations, actions,
   log-probabilities, values, rewards (times ``reward_scale``) and the
   terminated / done flags;
2. values the true final observation of every step in one batched critic
   call and computes GAE (``dlcore.rl.ppo.losses.gae``): time-limit
   truncations bootstrap, terminations do not;
3. makes ``update_epochs`` passes (one key each) over the ``num_envs x
   num_steps`` samples, each a fresh permutation cut into
   ``num_minibatches`` minibatches, one ``ppo_step`` per minibatch.

A chunk's scalars are the episodes finished in it and the sum of their
returns, and the mean loss terms of its updates. Every random draw of a
seed derives from that seed's own key.
"""

import functools
import math

import jax
import jax.numpy as jnp
import optax
from gymnax.environments import spaces
from jax import lax

from dlcore.rl.envs import make_env
from dlcore.rl.episodes import make_episodes
from dlcore.rl.ppo.config import PpoConfig, iterations
from dlcore.rl.ppo.losses import gae
from dlcore.rl.ppo.state import create_actor_critic, create_ppo_state
from dlcore.rl.ppo.steps import ppo_step
from dlcore.rl.program import Program, Runner

UPDATE_METRICS = ("loss", "policy_loss", "value_loss", "entropy", "approx_kl",
                  "clip_fraction")


def num_updates(config: PpoConfig) -> int:
  """Gradient updates of a run: what the optimizer's schedules count."""
  per_chunk, chunks = iterations(config)
  return per_chunk * chunks * config.update_epochs * config.num_minibatches


def make_ppo_program(config: PpoConfig,
                     tx: optax.GradientTransformation | None = None) -> Program:
  """The pure functions of a run of ``config`` (one ``check_config`` passes).

  ``tx`` updates the actor-critic (default: ``config.optimizer`` over the
  run's ``num_updates``).
  """
  env, env_params = make_env(config.env, continuous=True)
  action_space = env.action_space(env_params)
  continuous = isinstance(action_space, spaces.Box)
  action_dim = (int(math.prod(action_space.shape)) if continuous
                else int(action_space.n))
  obs_shape = tuple(env.observation_space(env_params).shape)
  num_envs, num_steps = config.num_envs, config.num_steps
  batch_size = num_envs * num_steps
  minibatch_size = batch_size // config.num_minibatches
  step_env = jax.vmap(env.step, in_axes=(0, 0, 0, None))
  update = functools.partial(
      ppo_step, clip_eps=config.clip_eps, vf_coef=config.vf_coef,
      ent_coef=config.ent_coef, clip_value=config.clip_value)

  def init(key: jax.Array) -> Runner:
    agent_key, reset_key, key = jax.random.split(key, 3)
    agent = create_ppo_state(config, obs_shape, action_dim, continuous,
                             agent_key, num_updates(config), tx)
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

  def iteration(runner: Runner):
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

  def summarize(runner: Runner, outs) -> dict[str, jax.Array]:
    """A chunk's scalars: ``episodes`` ended in it with (unscaled) returns
    summing to ``return_sum``; the loss terms (``UPDATE_METRICS``) are
    means over its updates."""
    return {"env_steps": runner.iteration * batch_size,
            "episodes": jnp.sum(outs["episodes"]),
            "return_sum": jnp.sum(outs["return_sum"]),
            **{k: jnp.mean(outs[k]) for k in UPDATE_METRICS}}

  network = create_actor_critic(config, action_dim, continuous)
  episodes = make_episodes(env, env_params, config.eval_episodes,
                           stochastic=True)

  def mode(params, obs, key):
    del key
    return network.apply({"params": params}, obs)[0].mode()

  def draw(params, obs, key):
    return network.apply({"params": params}, obs)[0].sample(key)

  def evaluate(params, key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Mean returns of greedy (the policy's mode) and stochastic episodes."""
    greedy_key, stochastic_key = jax.random.split(key)
    return (episodes(mode, params, greedy_key),
            episodes(draw, params, stochastic_key))

  return Program(init=init, iterate=iteration, summarize=summarize,
                 evaluate=evaluate, steps_per_iteration=batch_size,
                 num_updates=num_updates(config))
