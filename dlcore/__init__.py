"""dlcore: a functional deep-learning research framework on JAX, Flax (linen) and Optax.

Data flows one way: config -> data -> model (pure Flax module) -> state (a pytree)
-> step (a pure function ``step(state, batch, key) -> (state, metrics)``) -> loop
(the only place with side effects) -> results in the workdir.

The core:
  dlcore.config       frozen dataclass configs, ``validate``, the command line.
  dlcore.experiment   ``plan`` and ``fit``: any objective on any batch stream.
  dlcore.objective    ``Objective``: an objective's pure functions.
  dlcore.loop         the training loop: progress, metrics, checkpoints, NaN guard.
  dlcore.optim        one optimizer config for every network, from optax parts.
  dlcore.parallel     one step on many devices: pmap, shard_map or sharded jit.
  dlcore.state        the train-state pytree.
  dlcore.models       pure Flax linen modules.
  dlcore.data         datasets (TFDS by name, embedded ones, files) and batching.

Objectives, each a folder of ``config.py``, ``objective.py`` (with its
steps and state beside it) and ``train.py`` (``train_and_evaluate(config)``):
  dlcore.supervised   classification, regression and fine-tuning.
  dlcore.adversarial  GANs (and the Fréchet classifier distance).
  dlcore.cyclegan     unpaired image-to-image translation.
  dlcore.vae          the variational autoencoder.
  dlcore.segmentation FCN and U-Net segmentation.
  dlcore.rl           DQN and PPO, whole runs compiled on gymnax.
"""

__version__ = "0.1.0"
