"""The hand-written JAX + Flax + Optax train step dlcore is measured against.

Written plainly, the way the Flax examples write it (``examples/mnist`` for
models without BatchNorm, ``examples/imagenet`` for models with it): a
``TrainState`` with ``batch_stats``, a loss closure, ``jax.value_and_grad``
and ``apply_gradients``, jitted with the state donated. Nothing here comes
from dlcore except the Flax model definitions, which are plain linen
modules, so ``dlcore / baseline`` step time measures the framework's cost.

Usage::

  state = create_train_state(model, optax.adam(1e-3), images, key)
  step = jax.jit(train_step, donate_argnums=0)   # or train_step_batchnorm
  state, metrics = step(state, {"image": x, "label": y}, dropout_key)

The other objectives are written the same way::

  states = create_gan_states(generator, discriminator, (28, 28, 1), key)
  states, metrics = jax.jit(gan_step, donate_argnums=0)(states, batch, key)
  #   or wgan_gp_step: 5 critic steps with the gradient penalty, then G
  state = create_vae_state(VAE((28, 28, 1)), (28, 28, 1), key)  # vae_step
  state, metrics = jax.jit(dqn_update, donate_argnums=0)(state, batch, key)
  init, chunk = make_dqn_loop(DqnArgs(), network)   # PureJaxRL-style DQN
  runner, metrics = jax.jit(chunk, donate_argnums=0)(init(key))
  init, chunk = make_ppo_loop(PpoArgs(), network)   # PureJaxRL-style PPO
  states = create_cyclegan_states(generator, discriminator, params, shape)
  states, metrics = jax.jit(cyclegan_step, donate_argnums=0)(states, batch, key)

``dqn_update`` is a DQN update as CleanRL's ``dqn_jax.py`` writes it;
``make_dqn_loop`` the whole DQN run (acting, replay, updates) as one
``lax.scan`` over environment steps, as PureJaxRL's ``dqn.py`` does;
``make_ppo_loop`` PPO's rollouts, GAE and minibatch epochs in nested
``lax.scan`` s, as PureJaxRL's ``ppo.py`` does.
Where these draw random numbers inside a step, they split their keys in the
same order as dlcore, so that from one key both sides compute the same
numbers (checked in ``tests/test_benchmarks.py``); each function says how.
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


class TrainState(train_state.TrainState):
  batch_stats: Any


def create_train_state(model: nn.Module, tx: optax.GradientTransformation,
                       images: jax.Array, key: jax.Array) -> TrainState:
  params_key, dropout_key = jax.random.split(key)
  variables = model.init({"params": params_key, "dropout": dropout_key},
                         images[:1], train=False)
  return TrainState.create(apply_fn=model.apply, params=variables["params"],
                           tx=tx, batch_stats=variables.get("batch_stats", {}))


def _loss_and_accuracy(logits, labels):
  one_hot = jax.nn.one_hot(labels, logits.shape[-1])
  loss = jnp.mean(optax.softmax_cross_entropy(logits=logits, labels=one_hot))
  accuracy = jnp.mean(jnp.argmax(logits, -1) == labels)
  return loss, accuracy


def train_step(state: TrainState, batch, key):
  """One Adam step for a model without BatchNorm."""
  def loss_fn(params):
    logits = state.apply_fn({"params": params}, batch["image"], train=True,
                            rngs={"dropout": key})
    return _loss_and_accuracy(logits, batch["label"])

  (loss, accuracy), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      state.params)
  state = state.apply_gradients(grads=grads)
  return state, {"loss": loss, "accuracy": accuracy}


def train_step_batchnorm(state: TrainState, batch, key):
  """One Adam step for a model with BatchNorm (batch statistics updated)."""
  def loss_fn(params):
    logits, updates = state.apply_fn(
        {"params": params, "batch_stats": state.batch_stats}, batch["image"],
        train=True, rngs={"dropout": key}, mutable=["batch_stats"])
    loss, accuracy = _loss_and_accuracy(logits, batch["label"])
    return loss, (accuracy, updates["batch_stats"])

  (loss, (accuracy, batch_stats)), grads = jax.value_and_grad(
      loss_fn, has_aux=True)(state.params)
  state = state.apply_gradients(grads=grads, batch_stats=batch_stats)
  return state, {"loss": loss, "accuracy": accuracy}


class GanStates(NamedTuple):
  generator: TrainState
  discriminator: TrainState


def create_gan_states(generator: nn.Module, discriminator: nn.Module,
                      image_shape, key: jax.Array, *, latent_dim: int = 64,
                      lr: float = 2e-4, b1: float = 0.5,
                      b2: float = 0.999) -> GanStates:
  """Both networks with Adam(``lr``, ``b1``, ``b2``), as in DCGAN.

  ``key`` splits into the generator's and the discriminator's init keys.
  """
  g_key, d_key = jax.random.split(key)
  g_vars = generator.init(g_key, jnp.zeros((1, latent_dim)), train=False)
  d_vars = discriminator.init(d_key, jnp.zeros((1, *image_shape)),
                              train=False)
  tx = optax.adam(lr, b1=b1, b2=b2)
  return GanStates(
      TrainState.create(apply_fn=generator.apply, params=g_vars["params"],
                        tx=tx, batch_stats=g_vars.get("batch_stats", {})),
      TrainState.create(apply_fn=discriminator.apply, params=d_vars["params"],
                        tx=tx, batch_stats={}))


def _generate(g: TrainState, params, key, batch_size: int, latent_dim: int):
  """``(images [B, H, W, C], new batch_stats)`` from ``z ~ N(0, I)`` drawn from ``key``."""
  z = jax.random.normal(key, (batch_size, latent_dim))
  images, updates = g.apply_fn({"params": params, "batch_stats": g.batch_stats},
                               z, train=True, mutable=["batch_stats"])
  return images, updates["batch_stats"]


def _generator_update(g: TrainState, d: TrainState, key, batch_size: int,
                      latent_dim: int, loss_of_logits):
  """One Adam step of G on ``loss_of_logits(D(G(z)))``; BatchNorm statistics kept."""
  def loss_fn(params):
    fake, batch_stats = _generate(g, params, key, batch_size, latent_dim)
    logits = d.apply_fn({"params": d.params}, fake, train=True)
    return loss_of_logits(logits), batch_stats

  (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      g.params)
  return g.apply_gradients(grads=grads, batch_stats=batch_stats), loss


def gan_step(states: GanStates, batch, key, latent_dim: int = 64):
  """One D step, then one G step, with the non-saturating loss.

  D minimises ``mean softplus(-D(x)) + mean softplus(D(G(z)))`` (logits),
  G minimises ``mean softplus(-D(G(z')))`` against the updated D, with fresh
  noise ``z'``. ``key`` splits into D's and G's noise keys, in that order.
  """
  g, d = states
  real = batch["image"]
  batch_size = real.shape[0]
  d_key, g_key = jax.random.split(key)
  fake, _ = _generate(g, g.params, d_key, batch_size, latent_dim)

  def d_loss_fn(params):
    real_logits = d.apply_fn({"params": params}, real, train=True)
    fake_logits = d.apply_fn({"params": params}, fake, train=True)
    loss = (jnp.mean(jax.nn.softplus(-real_logits))
            + jnp.mean(jax.nn.softplus(fake_logits)))
    return loss, (real_logits, fake_logits)

  (d_loss, (real_logits, fake_logits)), grads = jax.value_and_grad(
      d_loss_fn, has_aux=True)(d.params)
  d = d.apply_gradients(grads=grads)
  g, g_loss = _generator_update(
      g, d, g_key, batch_size, latent_dim,
      lambda logits: jnp.mean(jax.nn.softplus(-logits)))
  return GanStates(g, d), {
      "d_loss": d_loss, "d_real": jnp.mean(jax.nn.sigmoid(real_logits)),
      "d_fake": jnp.mean(jax.nn.sigmoid(fake_logits)), "g_loss": g_loss}


def wgan_gp_step(states: GanStates, batch, key, latent_dim: int = 64,
                 n_critic: int = 5, gp_weight: float = 10.0):
  """``n_critic`` WGAN-GP critic steps (a ``lax.scan``), then one G step.

  The critic minimises ``mean D(G(z)) - mean D(x) + gp_weight * mean_i
  (||grad D(x_hat_i)||_2 - 1)^2`` with ``x_hat = e x + (1 - e) G(z)``, ``e ~
  U[0, 1]`` per example (Gulrajani et al., 2017); G minimises ``-mean
  D(G(z'))``. ``key`` splits into ``2 n_critic + 1`` keys: the critic
  steps' noise, their ``e``, then G's noise. Metrics are means over the
  critic steps, and G's loss.
  """
  g, d = states
  real = batch["image"]
  batch_size = real.shape[0]
  keys = jax.random.split(key, 2 * n_critic + 1)

  def critic_step(d, step_keys):
    noise_key, eps_key = step_keys
    fake, _ = _generate(g, g.params, noise_key, batch_size, latent_dim)
    eps = jax.random.uniform(eps_key, (batch_size, 1, 1, 1))
    x_hat = eps * real + (1.0 - eps) * fake

    def loss_fn(params):
      critic = lambda x: d.apply_fn({"params": params}, x, train=True)
      real_out, fake_out = critic(real), critic(fake)
      grads = jax.grad(lambda x: jnp.sum(critic(x)))(x_hat)
      norms = jnp.sqrt(jnp.sum(grads.reshape((batch_size, -1)) ** 2, -1)
                       + 1e-12)
      penalty = jnp.mean((norms - 1.0) ** 2)
      loss = jnp.mean(fake_out) - jnp.mean(real_out) + gp_weight * penalty
      return loss, {"d_loss": loss, "d_real": jnp.mean(real_out),
                    "d_fake": jnp.mean(fake_out), "gradient_penalty": penalty}

    grads, metrics = jax.grad(loss_fn, has_aux=True)(d.params)
    return d.apply_gradients(grads=grads), metrics

  d, metrics = lax.scan(critic_step, d,
                        (keys[:n_critic], keys[n_critic:2 * n_critic]))
  g, g_loss = _generator_update(g, d, keys[-1], batch_size, latent_dim,
                                lambda logits: -jnp.mean(logits))
  return GanStates(g, d), {**jax.tree.map(jnp.mean, metrics), "g_loss": g_loss}


def create_vae_state(model: nn.Module, image_shape, key: jax.Array,
                     lr: float = 1e-3) -> train_state.TrainState:
  """``model`` (``model(x, key) -> (log p(x | z), KL)``) with Adam(``lr``).

  ``key`` splits into the parameters' and the init pass's noise key.
  """
  params_key, noise_key = jax.random.split(key)
  params = model.init(params_key, jnp.zeros((1, *image_shape)),
                      noise_key)["params"]
  return train_state.TrainState.create(apply_fn=model.apply, params=params,
                                       tx=optax.adam(lr))


def vae_step(state: train_state.TrainState, batch, key):
  """One Adam step on ``mean(KL - log p(x | z))``, the negative ELBO; ``key`` draws z."""
  def loss_fn(params):
    log_p, kl = state.apply_fn({"params": params}, batch["image"], key)
    return jnp.mean(kl - log_p), (log_p, kl)

  (loss, (log_p, kl)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      state.params)
  return state.apply_gradients(grads=grads), {
      "loss": loss, "reconstruction": jnp.mean(log_p), "kl": jnp.mean(kl)}


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


def segmentation_step(state: TrainState, batch, key):
  """One Adam step of per-pixel cross-entropy, BatchNorm statistics updated.

  Every pixel is labelled (no ignore label), so the loss is the plain mean
  over ``[B, H, W]``.
  """
  del key  # No dropout, no augmentation.
  def loss_fn(params):
    logits, updates = state.apply_fn(
        {"params": params, "batch_stats": state.batch_stats}, batch["image"],
        train=True, mutable=["batch_stats"])
    loss = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(
        logits, batch["label"]))
    accuracy = jnp.mean(jnp.argmax(logits, -1) == batch["label"])
    return loss, (accuracy, updates["batch_stats"])

  (loss, (accuracy, batch_stats)), grads = jax.value_and_grad(
      loss_fn, has_aux=True)(state.params)
  state = state.apply_gradients(grads=grads, batch_stats=batch_stats)
  return state, {"loss": loss, "pixel_accuracy": accuracy}
class CycleGanStates(NamedTuple):
  """G (A -> B), F (B -> A), D_A, D_B, and each domain's pool of fakes."""
  g: train_state.TrainState
  f: train_state.TrainState
  d_a: train_state.TrainState
  d_b: train_state.TrainState
  pool_a: jax.Array  # [size, H, W, C]: F's fakes.
  count_a: jax.Array
  pool_b: jax.Array  # G's fakes.
  count_b: jax.Array


def create_cyclegan_states(generator: nn.Module, discriminator: nn.Module,
                           params, image_shape, pool_size: int = 50,
                           lr: float = 2e-4, b1: float = 0.5) -> CycleGanStates:
  """The four networks from ``params`` (G, F, D_A, D_B), each with its own Adam(``lr``, ``b1``)."""
  make = lambda model, p: train_state.TrainState.create(
      apply_fn=model.apply, params=p, tx=optax.adam(lr, b1=b1))
  g, f, d_a, d_b = params
  empty = lambda: jnp.zeros((pool_size, *image_shape))  # Own buffers: donated.
  zero = lambda: jnp.zeros((), jnp.int32)
  return CycleGanStates(make(generator, g), make(generator, f),
                        make(discriminator, d_a), make(discriminator, d_b),
                        empty(), zero(), empty(), zero())


def _image_pool(pool, count, fakes, key):
  """junyanz's ``ImagePool.query`` over the batch in order: ``(pool, count, served)``.

  ``key`` splits into the swap draws ``u`` (swap when ``u > 0.5`` once the
  pool is full) and the indices, in that order.
  """
  size, batch_size = pool.shape[0], fakes.shape[0]
  u_key, index_key = jax.random.split(key)
  u = jax.random.uniform(u_key, (batch_size,))
  index = jax.random.randint(index_key, (batch_size,), 0, size)

  def body(j, carry):
    pool, count, served = carry
    if_full = count >= size
    slot = jnp.where(if_full, index[j], count)
    old = pool[slot]
    swap = if_full & (u[j] > 0.5)
    pool = pool.at[slot].set(jnp.where(if_full & ~swap, old, fakes[j]))
    served = served.at[j].set(jnp.where(swap, old, fakes[j]))
    return pool, count + (~if_full).astype(jnp.int32), served

  return lax.fori_loop(0, batch_size, body, (pool, count, fakes))


def cyclegan_step(states: CycleGanStates, batch, key, cycle_weight=10.0,
                  identity_weight=0.5):
  """CycleGAN's ``optimize_parameters`` with the least-squares loss.

  G and F minimise ``mse(D_B(G(a)), 1) + mse(D_A(F(b)), 1) + lambda
  (|F(G(a)) - a| + |G(F(b)) - b|) + identity lambda (|G(b) - b| + |F(a) -
  a|)``; then D_B and D_A each minimise ``0.5 (mse(D(real), 1) + mse(D(pooled
  fake), 0))``, their fakes drawn from the pools. ``key`` splits into
  pool A's and pool B's keys, in that order.
  """
  s = states
  a, b = batch["image_a"], batch["image_b"]
  key_a, key_b = jax.random.split(key)
  mse = lambda x, target: jnp.mean((x - target) ** 2)
  mae = lambda x, y: jnp.mean(jnp.abs(x - y))
  run = lambda state, params, x: state.apply_fn({"params": params}, x)

  def g_loss_fn(g_params, f_params):
    fake_b, fake_a = run(s.g, g_params, a), run(s.f, f_params, b)
    cycle_a = mae(run(s.f, f_params, fake_b), a)
    cycle_b = mae(run(s.g, g_params, fake_a), b)
    gan_ab = mse(run(s.d_b, s.d_b.params, fake_b), 1.0)
    gan_ba = mse(run(s.d_a, s.d_a.params, fake_a), 1.0)
    identity_a = mae(run(s.f, f_params, a), a)
    identity_b = mae(run(s.g, g_params, b), b)
    loss = (gan_ab + gan_ba + cycle_weight * (cycle_a + cycle_b)
            + identity_weight * cycle_weight * (identity_a + identity_b))
    return loss, ({"g_loss": loss, "g_gan_ab": gan_ab, "g_gan_ba": gan_ba,
                   "cycle_a": cycle_a, "cycle_b": cycle_b,
                   "identity_a": identity_a, "identity_b": identity_b},
                  fake_a, fake_b)

  (g_grads, f_grads), (metrics, fake_a, fake_b) = jax.grad(
      g_loss_fn, argnums=(0, 1), has_aux=True)(s.g.params, s.f.params)
  g, f = s.g.apply_gradients(grads=g_grads), s.f.apply_gradients(grads=f_grads)

  def d_update(d, real, fake):
    def loss_fn(params):
      return 0.5 * (mse(run(d, params, real), 1.0)
                    + mse(run(d, params, fake), 0.0))
    loss, grads = jax.value_and_grad(loss_fn)(d.params)
    return d.apply_gradients(grads=grads), loss

  pool_b, count_b, served_b = _image_pool(s.pool_b, s.count_b, fake_b, key_b)
  d_b, metrics["d_b_loss"] = d_update(s.d_b, b, served_b)
  pool_a, count_a, served_a = _image_pool(s.pool_a, s.count_a, fake_a, key_a)
  d_a, metrics["d_a_loss"] = d_update(s.d_a, a, served_a)
  return CycleGanStates(g, f, d_a, d_b, pool_a, count_a, pool_b,
                        count_b), metrics
