"""dlcore: a functional deep-learning research framework on JAX, Flax (linen) and Optax.

Data flows one way: config -> data -> model (pure Flax module) -> state (a pytree)
-> step (a pure function ``step(state, batch, key) -> (state, metrics)``) -> loop
(the only place with side effects) -> results in the workdir.

Packages:
  dlcore.models       pure Flax linen modules (classifiers, GANs, VAE, Q-networks).
  dlcore.data         TFDS datasets (``digits`` is embedded), ``.npz`` files, batching.
  dlcore.state        the train-state pytree.
  dlcore.supervised   classification and regression steps, ``train_and_evaluate``.
  dlcore.adversarial  GAN losses and ``gan_step``, the VAE's ``vae_step``, FCD.
  dlcore.qlearning    ``dqn_step`` and whole DQN runs compiled end to end.
  dlcore.rl           gymnax environments and the replay buffer.
  dlcore.parallel     one step on many devices: pmap, shard_map or sharded jit.
  dlcore.loop         the training loop: progress, metrics, checkpoints, NaN guard.
"""

__version__ = "0.1.0"
