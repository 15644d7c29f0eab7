"""Train a variational autoencoder and report its test ELBO.

Defaults train an MLP VAE with a Bernoulli likelihood on the embedded
``digits`` dataset; see ``--help`` for every option. Results go to
``--workdir``: metrics.jsonl, summary.json (test_elbo), samples_XXXXXX.png,
samples_final.png, curves.png and checkpoints/ (resume with ``--resume``).
"""

from dlcore import cli

if __name__ == "__main__":  # From here on a signal is one sentence, exit 75.
  cli.stop_on_signals()

# pylint: disable=wrong-import-position
from dlcore.vae import VaeConfig, train_and_evaluate

main = cli.main_of(VaeConfig, train_and_evaluate, __doc__, lambda s: (
    f"test ELBO {s['test_elbo']:.2f} nats per image (reconstruction "
    f"{s['test_reconstruction']:.2f}, KL {s['test_kl']:.2f}; "
    f"{s['train_seconds']:.1f} s of training)"))

if __name__ == "__main__":
  cli.run(main)
