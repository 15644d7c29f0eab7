"""experiments/gan.py and experiments/vae.py end to end, and a GAN's divergence."""

import json

import numpy as np
import pytest

from conftest import load_script, tensorboard_values
from dlcore.adversarial import GanConfig, train_and_evaluate
from dlcore.adversarial.fcd import load_or_train_judge
from dlcore.checkpoint import Checkpointer
from dlcore.errors import NonFiniteLossError
from dlcore.optim import OptimizerConfig

gan, vae = load_script("gan"), load_script("vae")


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory, digits):
  """A digits FCD classifier trained once (3 epochs) for every test here."""
  directory = tmp_path_factory.mktemp("classifier")
  judge = load_or_train_judge("digits", digits, directory, epochs=3)
  assert judge.test_accuracy > 0.8
  return str(directory)


def _unlabelled_npz(tmp_path, side=8) -> str:
  rng = np.random.default_rng(0)
  path = tmp_path / f"blobs{side}.npz"
  np.savez(path, x_train=rng.integers(0, 256, (64, side, side), np.uint8),
           x_test=rng.integers(0, 256, (16, side, side), np.uint8))
  return str(path)


def _records(workdir) -> list[dict]:
  return [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_gan_script_writes_everything(tmp_path, classifier_dir):
  summary = gan.main(["--arch", "dcgan", "--conditional", "--batch-size", "16",
                      "--sample-every", "2", "--fcd-samples", "100",
                      "--classifier-dir", classifier_dir, "--steps", "4",
                      "--workdir", str(tmp_path)])
  for name in ("metrics.jsonl", "summary.json", "curves.png", "model.txt",
               "samples_000002.png", "samples_000004.png"):
    assert (tmp_path / name).is_file(), name
  assert json.loads((tmp_path / "summary.json").read_text()) == summary
  records = _records(tmp_path)
  # Step 0 evaluates the untrained generator; the last step logs and evaluates.
  assert [r["step"] for r in records] == [0, 4]
  assert "train_d_loss" in records[1] and "train_d_loss" not in records[0]
  assert summary["steps"] == 4
  assert (summary["fcd"], summary["fcd_initial"]) == (records[1]["fcd"],
                                                      records[0]["fcd"])
  # Real training images are far closer to the test images than the
  # untrained generator's samples, whose labels it cannot yet follow.
  assert summary["fcd_train_images"] < summary["fcd_initial"] / 10
  assert summary["conditional_accuracy_initial"] < 0.3
  assert Checkpointer(tmp_path / "checkpoints").latest_step() == 4


@pytest.mark.slow
def test_conditional_samples_carry_their_labels(tmp_path, classifier_dir):
  summary = train_and_evaluate(GanConfig(
      arch="mlp", conditional=True, steps=800, batch_size=32,
      eval_every=400, sample_every=400, classifier_dir=classifier_dir,
      workdir=str(tmp_path)))
  assert summary["conditional_accuracy_initial"] < 0.3
  assert summary["conditional_accuracy"] >= 0.7
  assert summary["fcd"] < summary["fcd_initial"] / 3


@pytest.mark.slow
def test_vae_script_end_to_end(tmp_path):
  summary = vae.main(["--steps", "4", "--sample-every", "2", "--log-every",
                      "2", "--batch-size", "16", "--likelihood", "gaussian",
                      "--workdir", str(tmp_path)])
  for name in ("metrics.jsonl", "summary.json", "curves.png", "model.txt",
               "samples_000002.png", "samples_000004.png"):
    assert (tmp_path / name).is_file(), name
  records = _records(tmp_path)
  assert [r["step"] for r in records] == [2, 4]
  assert [r["step"] for r in records if "test_elbo" in r] == [4]
  assert summary["test_elbo"] == records[-1]["test_elbo"]
  # TensorBoard holds the same grids: 100 samples of 8x8 tiled 10 x 10.
  images = tensorboard_values(tmp_path / "tensorboard", "image")["samples"]
  assert sorted(images) == [2, 4]
  assert {(i.height, i.width, i.colorspace) for i in images.values()} == {
      (80, 80, 3)}
  assert all(i.encoded_image_string[:8] == b"\x89PNG\r\n\x1a\n"
             for i in images.values())


@pytest.mark.slow
def test_divergence_stops_with_one_sentence_and_keeps_the_last_good_checkpoint(
    tmp_path):
  config = GanConfig(dataset=_unlabelled_npz(tmp_path), arch="mlp", steps=6,
                     batch_size=16, log_every=1, checkpoint_every=1,
                     workdir=str(tmp_path / "run"),
                     g_optimizer=OptimizerConfig(lr=1e30, b1=0.5))
  with pytest.raises(NonFiniteLossError,
                     match=r"became NaN or infinite at step (\d) from a finite "
                           "state and finite data, so the updates diverged: "
                           r"lower option g_optimizer.lr 1e\+30, option "
                           r"d_optimizer.lr 0.0002, or clip the gradients "
                           r"\(clip_norm\); training stopped and the last good "
                           "checkpoint was kept") as e:
    train_and_evaluate(config)
  bad_step = e.value.step
  assert 1 < bad_step <= 6
  assert Checkpointer(tmp_path / "run" / "checkpoints").latest_step() == bad_step - 1
