"""End-to-end DQN as pure functions: acting, storing, sampling and learning in one program.

Usage::

  program = make_dqn_program(config)             # a dlcore.rl.program.Program
  runner = program.init(key)
  runner, metrics = program.chunk(runner, 2_500)  # metrics: a few scalars
  returns = program.evaluate(runner.agent.params, eval_key)

One iteration is one vectorised environment step (``num_envs`` environment
steps): epsilon-greedy actions (epsilon linear in environment steps), a
gymnax step with auto-reset, the transitions (with the true final
observation as ``next_obs``) added to the buffer, then — once
``learning_starts`` environment steps are stored and on every
``train_every``-th environment step — ``dqn_step`` on sampled batches,
gated by ``lax.cond``. A chunk's scalars are the episodes finished in it
and their mean return, the mean loss, Q value and gradient norm of its
updates and epsilon at its end. Every random draw of a seed derives from
that seed's own key.
"""

import functools

import jax
import jax.numpy as jnp
import optax
from jax import lax

from dlcore.models.qnetworks import create_q_network
from dlcore.rl import replay
from dlcore.rl.dqn.config import DqnConfig
from dlcore.rl.dqn.state import DQNState, create_dqn_state, num_updates
from dlcore.rl.dqn.steps import dqn_step
from dlcore.rl.envs import make_env
from dlcore.rl.episodes import make_episodes
from dlcore.rl.program import Program, Runner


def epsilon_schedule(config: DqnConfig) -> optax.Schedule:
  """Epsilon as a function of environment steps (linear, then constant)."""
  return optax.linear_schedule(
      config.epsilon_start, config.epsilon_end,
      max(1, int(config.exploration_fraction * config.total_steps)))


def epsilon_greedy(q: jax.Array, epsilon: jax.Array,
                   key: jax.Array) -> jax.Array:
  """Actions ``[N]`` from values ``q [N, A]``: uniform with probability epsilon, else argmax."""
  explore_key, action_key = jax.random.split(key)
  random_actions = jax.random.randint(action_key, q.shape[:1], 0, q.shape[1])
  explore = jax.random.uniform(explore_key, q.shape[:1]) < epsilon
  return jnp.where(explore, random_actions, jnp.argmax(q, axis=-1))


def make_dqn_program(config: DqnConfig,
                     tx: optax.GradientTransformation | None = None) -> Program:
  """The pure functions of a run of ``config`` (one ``check_config`` passes).

  ``tx`` updates the Q-network (default: ``config.optimizer`` over the
  run's ``num_updates``).
  """
  env, env_params = make_env(config.env)
  num_envs = config.num_envs
  obs_shape = tuple(env.observation_space(env_params).shape)
  num_actions = int(env.action_space(env_params).n)
  iters_per_update = max(1, config.train_every // num_envs)
  updates_per_learn = max(1, num_envs // config.train_every)
  epsilon = epsilon_schedule(config)
  step_env = jax.vmap(env.step, in_axes=(0, 0, 0, None))
  update = functools.partial(
      dqn_step, gamma=config.gamma, double=config.double, loss=config.loss,
      target_update_period=config.target_update_every // config.train_every,
      tau=config.tau, report_grad_norm=config.optimizer.clip_norm > 0)
  update_metrics = ("loss", "q_mean") + (
      ("grad_norm",) if config.optimizer.clip_norm > 0 else ())

  def init(key: jax.Array) -> Runner:
    agent_key, reset_key, key = jax.random.split(key, 3)
    agent = create_dqn_state(config, obs_shape, num_actions, agent_key, tx)
    obs, env_state = jax.vmap(env.reset, in_axes=(0, None))(
        jax.random.split(reset_key, num_envs), env_params)
    example = {"obs": obs[0], "action": jnp.zeros((), jnp.int32),
               "reward": jnp.zeros((), jnp.float32), "next_obs": obs[0],
               "terminated": jnp.zeros((), bool)}
    return Runner(agent, env_state, obs, jnp.zeros(num_envs),
                  jnp.zeros((), jnp.int32), key,
                  buffer=replay.init(example, config.buffer_size))


  def learn(agent: DQNState, buffer: replay.ReplayState, key: jax.Array):
    def one_update(agent, update_key):
      sample_key, step_key = jax.random.split(update_key)
      batch = replay.sample(buffer, sample_key, config.batch_size)
      return update(agent, batch, step_key)
    if updates_per_learn == 1:  # The usual case: no loop to compile.
      return one_update(agent, key)
    agent, metrics = lax.scan(one_update, agent,
                              jax.random.split(key, updates_per_learn))
    return agent, {k: jnp.mean(v) for k, v in metrics.items()}

  def skip(agent: DQNState, buffer: replay.ReplayState, key: jax.Array):
    del buffer, key
    return agent, {name: jnp.zeros(()) for name in update_metrics}

  def iteration(runner: Runner):
    key, act_key, env_key, learn_key = jax.random.split(runner.key, 4)
    agent = runner.agent
    eps = epsilon(runner.iteration * num_envs)
    q = agent.apply_fn({"params": agent.params}, runner.obs)
    action = epsilon_greedy(q, eps, act_key)
    obs, env_state, reward, terminated, truncated, info = step_env(
        jax.random.split(env_key, num_envs), runner.env_state, action,
        env_params)
    reward = reward.astype(jnp.float32)
    buffer = replay.add(runner.buffer, {
        "obs": runner.obs, "action": action, "reward": reward,
        "next_obs": info["final_observation"], "terminated": terminated})
    done = terminated | truncated
    episode_return = runner.episode_return + reward
    count = runner.iteration + 1
    should_learn = ((count * num_envs >= config.learning_starts)
                    & replay.can_sample(buffer, config.batch_size)
                    & (count % iters_per_update == 0))
    agent, metrics = lax.cond(should_learn, learn, skip, agent, buffer,
                              learn_key)
    out = {"episodes": jnp.sum(done),
           "return_sum": jnp.sum(jnp.where(done, episode_return, 0.0)),
           "updates": should_learn.astype(jnp.int32) * updates_per_learn,
           **metrics}
    runner = Runner(agent, env_state, obs, jnp.where(done, 0.0, episode_return),
                    count, key, buffer=buffer)
    return runner, out

  def summarize(runner: Runner, outs) -> dict[str, jax.Array]:
    """A chunk's scalars from its iterations' outputs.

    ``episodes`` ended in the chunk with returns summing to ``return_sum``
    (their mean return is the ratio); ``loss``, ``q_mean`` (and
    ``grad_norm`` when gradients are clipped) are means over the chunk's
    updates (0 if none; NaN if any was NaN); ``epsilon`` is the rate at its
    end. Every value is finite unless learning diverged.
    """
    learned = outs["updates"] > 0
    num_learned = jnp.maximum(jnp.sum(learned), 1)
    return {
        "env_steps": runner.iteration * num_envs,
        "episodes": jnp.sum(outs["episodes"]),
        "return_sum": jnp.sum(outs["return_sum"]),
        "updates": jnp.sum(outs["updates"]),
        "epsilon": epsilon(runner.iteration * num_envs),
        **{k: jnp.sum(jnp.where(learned, outs[k], 0.0)) / num_learned
           for k in update_metrics}}

  network = create_q_network(obs_shape, num_actions, dueling=config.dueling)
  episodes = make_episodes(env, env_params, config.eval_episodes,
                           stochastic=False)
  greedy = lambda params, obs, key: jnp.argmax(
      network.apply({"params": params}, obs), axis=-1)
  return Program(init=init, iterate=iteration, summarize=summarize,
                 evaluate=functools.partial(episodes, greedy),
                 steps_per_iteration=num_envs,
                 num_updates=num_updates(config))
