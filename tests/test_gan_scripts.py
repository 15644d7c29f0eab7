"""experiments/gan.py and experiments/vae.py end to end, exact resume, and bad input."""

import json
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import load_script, tensorboard_values
from dlcore.adversarial import GanConfig, train_gan
from dlcore.adversarial.fcd import load_or_train_judge
from dlcore.checkpoint import Checkpointer
from dlcore.errors import ConfigError, NonFiniteLossError
from dlcore.optim import OptimizerConfig

ROOT = pathlib.Path(__file__).resolve().parents[1]
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
def test_gan_resumes_exactly(tmp_path):
  """A run cut off after its step-2 checkpoint, resumed, repeats the full run."""
  tiny = ["--arch", "mlp", "--dataset", _unlabelled_npz(tmp_path),
          "--batch-size", "16", "--log-every", "2", "--checkpoint-every", "2"]
  a, b = tmp_path / "a", tmp_path / "b"
  gan.main(tiny + ["--steps", "4", "--workdir", str(a)])
  shutil.copytree(a, b)
  shutil.rmtree(b / "checkpoints" / "4")  # As if killed before step 4 was saved.
  gan.main(tiny + ["--steps", "4", "--workdir", str(b), "--resume"])
  drop_time = lambda r: {k: v for k, v in r.items()
                         if k not in ("seconds", "steps_per_sec")}
  assert [r["step"] for r in _records(b)] == [2, 4]
  assert [drop_time(r) for r in _records(b)] == [drop_time(r) for r in _records(a)]
  with pytest.raises(ConfigError, match="already holds a run"):
    gan.main(tiny + ["--steps", "6", "--workdir", str(b)])


@pytest.mark.slow
def test_conditional_samples_carry_their_labels(tmp_path, classifier_dir):
  summary = train_gan(GanConfig(
      arch="mlp", conditional=True, steps=800, batch_size=32,
      eval_every=400, sample_every=400, classifier_dir=classifier_dir), tmp_path)
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


@pytest.mark.parametrize("flag,value", [("--loss", "lsgan"), ("--arch", "vit")])
def test_unknown_loss_or_arch_is_refused_with_the_choices(flag, value, capsys):
  with pytest.raises(SystemExit) as exit_info:
    gan.main([flag, value])
  assert exit_info.value.code == 2
  assert f"invalid choice: '{value}'" in capsys.readouterr().err


def test_bad_input_gets_one_sentence(tmp_path):
  cases = [
      (GanConfig(loss="lsgan"), "unknown loss 'lsgan'; choose one of minimax"),
      (GanConfig(dataset="no_such_dataset"), "unknown dataset 'no_such_dataset'"),
      (GanConfig(dataset=_unlabelled_npz(tmp_path), conditional=True),
       "has no labels, so option conditional cannot be used"),
      (GanConfig(dataset=_unlabelled_npz(tmp_path, side=10)),
       "cannot make 10x10 images; it supports 8x8, 28x28, 32x32"),
      (GanConfig(steps=0), r"option steps must be in \[1, 2147483647\], got 0"),
  ]
  for config, message in cases:
    with pytest.raises(ConfigError, match=message):
      train_gan(config, tmp_path / "run")
  assert not (tmp_path / "run").exists()  # Refused before anything is written.


def test_script_prints_one_line_and_exits_2(tmp_path):
  result = subprocess.run(
      [sys.executable, str(ROOT / "experiments" / "gan.py"), "--conditional",
       "--dataset", _unlabelled_npz(tmp_path), "--workdir", str(tmp_path / "w")],
      capture_output=True, text=True, check=False, cwd=ROOT)
  assert result.returncode == 2
  assert result.stderr.strip().splitlines() == [
      "error: dataset 'blobs8' has no labels, so --conditional cannot be used; "
      "drop it or add y_train and y_test to the file"]


@pytest.mark.slow
def test_divergence_stops_with_one_sentence_and_keeps_the_last_good_checkpoint(
    tmp_path):
  config = GanConfig(dataset=_unlabelled_npz(tmp_path), arch="mlp", steps=6,
                     batch_size=16, log_every=1, checkpoint_every=1,
                     g_optimizer=OptimizerConfig(lr=1e30, b1=0.5))
  with pytest.raises(NonFiniteLossError,
                     match=r"became NaN or infinite at step (\d) from a finite "
                           "state and finite data, so training diverged: a "
                           "lower learning rate or gradient clipping "
                           r"\(option optimizer.clip_norm\) may help; training "
                           "stopped and the last good checkpoint was kept") as e:
    train_gan(config, tmp_path / "run")
  bad_step = e.value.step
  assert 1 < bad_step <= 6
  assert Checkpointer(tmp_path / "run" / "checkpoints").latest_step() == bad_step - 1
