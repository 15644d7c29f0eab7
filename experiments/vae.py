"""Train a variational autoencoder and report its test ELBO.

Defaults train an MLP VAE with a Bernoulli likelihood on the embedded
``digits`` dataset; see ``--help`` for every option. Results go to
``--workdir``: metrics.jsonl, summary.json (test_elbo), samples_XXXXXX.png,
samples_final.png, curves.png and checkpoints/ (resume with ``--resume``).
"""

from dlcore import cli, parallel
from dlcore.vae import VaeConfig, train_vae
from dlcore.config import parse_args


def main(argv=None) -> dict:
  config = parse_args(VaeConfig, __doc__, argv)
  parallel.initialize_distributed(config)
  summary = train_vae(config, config.workdir)
  print(f"test ELBO {summary['test_elbo']:.2f} nats per image "
        f"(reconstruction {summary['test_reconstruction']:.2f}, "
        f"KL {summary['test_kl']:.2f}; {summary['train_seconds']:.1f} s of "
        f"training) -> {config.workdir}")
  return summary


if __name__ == "__main__":
  cli.run(main)
