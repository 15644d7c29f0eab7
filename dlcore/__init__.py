"""dlcore: a functional deep-learning research framework on JAX, Flax (linen) and Optax.

Data flows one way: config -> data -> model (pure Flax module) -> state (a pytree)
-> step (a pure function ``step(state, batch, key) -> (state, metrics)``) -> loop
(the only place with side effects) -> results in the workdir.

Packages:
  dlcore.models       pure Flax linen modules.
  dlcore.data         TFDS datasets (``digits`` is embedded), ``.npz`` files, batching.
  dlcore.state        the train-state pytree.
  dlcore.supervised   classification and regression steps, ``train_and_evaluate``.
  dlcore.loop         the training loop: progress, metrics, checkpoints, NaN guard.
"""

__version__ = "0.1.0"
