"""DQN workloads, registered when ``dlcore.rl.dqn`` exists.

Usage: imported by ``benchmarks.workloads``; then ``python -m benchmarks
--workloads dqn_update,dqn_loop``.

``dqn_update`` times one TD update (``dqn_step``) of the CartPole Q-network
on a batch of random transitions, against CleanRL's hand-written update
(``dqn_update``). ``dqn_loop`` times one compiled chunk of the
end-to-end run (``make_dqn_program(...).chunk``: environment steps, replay,
updates and target updates in one ``lax.scan``) with the reference
hyperparameters, after two warm-up chunks that fill the buffer past
``learning_starts``; its items are environment steps. Its baseline is the
same run written PureJaxRL-style (``make_dqn_loop``, the same
hyperparameters, init key and random draws), which from one key follows the
same trajectory.
"""

import dataclasses
from typing import Any, NamedTuple

import flax.linen as nn
import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state
from jax import lax

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
  state = DqnTrainState.create(
      apply_fn=network.apply, params=params,
      target_params=jax.tree.map(jnp.copy, params),
      tx=optax.adam(config.optimizer.lr))  # Clipping is off by default.
  return jax.jit(dqn_update, donate_argnums=0), state


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
  init, chunk = make_dqn_loop(
      DqnArgs(learning_starts=STEPS_PER_CHUNK,
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


# The hand-written DQN: ``dqn_update`` as CleanRL's ``dqn_jax.py`` writes
# it; ``make_dqn_loop`` the whole run (acting, replay, updates) as one
# ``lax.scan`` over environment steps, as PureJaxRL's ``dqn.py`` does, its
# keys split as dlcore's (tests/test_benchmarks.py).


class DqnTrainState(train_state.TrainState):
  target_params: Any


def _td_loss_and_grads(state: DqnTrainState, batch, gamma: float):
  """``(loss, q_taken [B]), grads`` of ``mean (Q(s, a) - y)^2``.

  ``y = r + gamma (1 - terminated) max_a' Q_target(s', a')``.
  """
  next_q = state.apply_fn({"params": state.target_params}, batch["next_obs"])
  not_done = 1.0 - batch["terminated"].astype(jnp.float32)
  target = batch["reward"] + gamma * not_done * jnp.max(next_q, axis=-1)

  def loss_fn(params):
    q = state.apply_fn({"params": params}, batch["obs"])
    q_taken = q[jnp.arange(q.shape[0]), batch["action"]]
    return jnp.mean((q_taken - target) ** 2), q_taken

  return jax.value_and_grad(loss_fn, has_aux=True)(state.params)


def dqn_update(state: DqnTrainState, batch, key, gamma: float = 0.99):
  """One DQN update as CleanRL's ``dqn_jax.py`` writes it; hard target copy."""
  del key
  (loss, q_taken), grads = _td_loss_and_grads(state, batch, gamma)
  state = state.apply_gradients(grads=grads)
  state = state.replace(target_params=state.params)
  return state, {"loss": loss, "q_mean": jnp.mean(q_taken)}


@dataclasses.dataclass(frozen=True)
class DqnArgs:
  """CleanRL's / PureJaxRL's CartPole DQN hyperparameters; steps count all envs."""
  env_id: str = "CartPole-v1"
  num_envs: int = 10
  total_timesteps: int = 500_000  # Only sets the exploration schedule here.
  buffer_size: int = 10_000
  batch_size: int = 128
  learning_rate: float = 2.5e-4
  gamma: float = 0.99
  target_network_frequency: int = 500
  start_e: float = 1.0
  end_e: float = 0.05
  exploration_fraction: float = 0.5
  learning_starts: int = 10_000
  train_frequency: int = 10  # A multiple of num_envs.
  steps_per_chunk: int = 10_000


class DqnRunner(NamedTuple):
  train_state: DqnTrainState
  buffer: dict[str, jax.Array]  # leaves [buffer_size, ...]
  env_state: Any  # leaves [num_envs, ...]
  obs: jax.Array  # [num_envs, *obs_shape]
  episode_return: jax.Array  # [num_envs]
  timestep: jax.Array  # environment steps so far (all envs)
  key: jax.Array


def make_dqn_loop(args: DqnArgs, network: nn.Module):
  """``(init(key) -> runner, chunk(runner) -> (runner, metrics))`` of a DQN run.

  ``chunk`` is one ``lax.scan`` over ``steps_per_chunk / num_envs``
  vectorised steps of the gymnax environment: epsilon-greedy actions
  (epsilon linear in environment steps), transitions written to a circular
  buffer (``next_obs`` the true final observation, so time-limit
  truncations bootstrap and only terminations do not), then from
  ``learning_starts`` on, every ``train_frequency`` environment steps, a
  ``lax.cond``-gated update on a uniform batch of the filled rows, and a
  hard target copy every ``target_network_frequency / train_frequency``
  updates. Metrics: episodes finished in the chunk, their mean return
  (NaN if none), the updates and their mean ``loss`` / ``q_mean``.

  Keys are split as dlcore's ``make_dqn_program`` splits them, so both
  runs agree from one key: ``init`` splits it into (network, reset, run);
  every step splits the run key into (next run key, acting, environment,
  learning); acting into (explore?, random action); the batch rows come
  from the first of two keys split from the learning key. Unlike
  PureJaxRL's ``dqn.py``, the run key is the one given, not ``PRNGKey(0)``.
  """
  env, env_params = gymnax.make(args.env_id)
  num_envs = args.num_envs
  num_actions = env.action_space(env_params).n
  iters_per_update = args.train_frequency // num_envs
  updates_per_target = args.target_network_frequency // args.train_frequency
  epsilon = optax.linear_schedule(
      args.start_e, args.end_e,
      int(args.exploration_fraction * args.total_timesteps))
  reset = jax.vmap(env.reset, in_axes=(0, None))
  step = jax.vmap(env.step, in_axes=(0, 0, 0, None))

  def init(key: jax.Array) -> DqnRunner:
    params_key, reset_key, key = jax.random.split(key, 3)
    obs, env_state = reset(jax.random.split(reset_key, num_envs), env_params)
    params = network.init(params_key, jnp.zeros_like(obs[:1]))["params"]
    state = DqnTrainState.create(
        apply_fn=network.apply, params=params,
        target_params=jax.tree.map(jnp.copy, params),
        tx=optax.adam(args.learning_rate))
    buffer = {"obs": obs[0], "action": jnp.zeros((), jnp.int32),
              "reward": jnp.zeros(()), "next_obs": obs[0],
              "terminated": jnp.zeros((), bool)}
    buffer = jax.tree.map(
        lambda x: jnp.zeros((args.buffer_size, *x.shape), x.dtype), buffer)
    return DqnRunner(state, buffer, env_state, obs, jnp.zeros(num_envs),
                     jnp.zeros((), jnp.int32), key)

  def learn(state, buffer, size, key):
    rows = jax.random.randint(jax.random.split(key)[0], (args.batch_size,),
                              0, size)
    batch = jax.tree.map(lambda x: x[rows], buffer)
    (loss, q_taken), grads = _td_loss_and_grads(state, batch, args.gamma)
    state = state.apply_gradients(grads=grads)
    state = lax.cond(state.step % updates_per_target == 0,
                     lambda s: s.replace(target_params=s.params),
                     lambda s: s, state)
    return state, (loss, jnp.mean(q_taken))

  def no_learn(state, buffer, size, key):
    del buffer, size, key
    return state, (jnp.zeros(()), jnp.zeros(()))

  def env_step(runner: DqnRunner, _):
    state, buffer, env_state, obs, episode_return, t, key = runner
    key, act_key, env_key, learn_key = jax.random.split(key, 4)
    explore_key, random_key = jax.random.split(act_key)
    q = state.apply_fn({"params": state.params}, obs)
    explore = jax.random.uniform(explore_key, (num_envs,)) < epsilon(t)
    action = jnp.where(
        explore, jax.random.randint(random_key, (num_envs,), 0, num_actions),
        jnp.argmax(q, axis=-1))
    next_obs, env_state, reward, terminated, truncated, info = step(
        jax.random.split(env_key, num_envs), env_state, action, env_params)
    reward = reward.astype(jnp.float32)
    rows = (t + jnp.arange(num_envs)) % args.buffer_size
    transitions = {"obs": obs, "action": action, "reward": reward,
                   "next_obs": info["final_observation"],
                   "terminated": terminated}
    buffer = jax.tree.map(lambda b, x: b.at[rows].set(x), buffer, transitions)
    t = t + num_envs
    size = jnp.minimum(t, args.buffer_size)
    learning = ((t >= args.learning_starts) & (size >= args.batch_size)
                & ((t // num_envs) % iters_per_update == 0))
    state, (loss, q_mean) = lax.cond(learning, learn, no_learn, state, buffer,
                                     size, learn_key)
    done = terminated | truncated
    episode_return = episode_return + reward
    out = {"episodes": jnp.sum(done),
           "return_sum": jnp.sum(jnp.where(done, episode_return, 0.0)),
           "learned": learning, "loss": loss, "q_mean": q_mean}
    runner = DqnRunner(state, buffer, env_state, next_obs,
                       jnp.where(done, 0.0, episode_return), t, key)
    return runner, out

  def chunk(runner: DqnRunner):
    runner, out = lax.scan(env_step, runner, None,
                           length=args.steps_per_chunk // num_envs)
    updates = jnp.sum(out["learned"])
    per_update = lambda x: jnp.sum(x) / jnp.maximum(updates, 1)
    return runner, {"episodes": jnp.sum(out["episodes"]),
                    "return_sum": jnp.sum(out["return_sum"]),
                    "updates": updates, "loss": per_update(out["loss"]),
                    "q_mean": per_update(out["q_mean"])}

  return init, chunk
