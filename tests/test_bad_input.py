"""Bad input, met the way a user meets it: one sentence, exit status 2, nothing written.

One table: each case runs an experiment script's ``main`` under
``cli.run`` (as its ``__main__`` does) on files made for it, and checks the
exit status, that stderr is one line ``error: ...`` and says what the case
expects, and that the workdir was not created. Beside it, every numeric
option of every script refuses values just outside its declared range.
"""

import dataclasses
import math
import os
import pathlib
import pickle
import socket
import subprocess
import sys
import time
import typing

import numpy as np
import pytest

from conftest import EXPERIMENTS, load_script, write_npz
from dlcore import cli
from dlcore.config import Interval, validate
from dlcore.data import datasets
from dlcore.errors import ConfigError


def refused(capsys, name: str, argv: list[str], workdir: pathlib.Path) -> str:
  """The one sentence ``experiments/<name>.py argv`` exits 2 with; nothing written."""
  module = load_script(name)
  with pytest.raises(SystemExit) as exit_info:
    cli.run(lambda: module.main(["--workdir", str(workdir), *argv]))
  err = capsys.readouterr().err
  assert exit_info.value.code == 2, err
  assert err.startswith("error: ") and err.count("\n") == 1, err
  assert "Traceback" not in err
  assert not workdir.exists()
  return err[len("error: "):-1]


def _npz(path: pathlib.Path, **overrides) -> pathlib.Path:
  """A valid 8x8 four-class npz at ``path`` with ``overrides`` (None drops an array)."""
  rng = np.random.default_rng(0)
  arrays = {"x_train": rng.random((40, 8, 8), np.float32),
            "y_train": np.arange(40) % 4,
            "x_test": rng.random((12, 8, 8), np.float32),
            "y_test": np.arange(12) % 4, **overrides}
  np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
  return path


def _not_npz(kind: str, path: pathlib.Path) -> pathlib.Path:
  """A file named ``*.npz`` that is not a readable npz: ``kind`` says what it is."""
  if kind == "text":
    path.write_text("x_train,y_train\n1,2\n")
  elif kind == "npy":
    with open(path, "wb") as f:
      np.save(f, np.zeros((4, 8, 8)))
  elif kind == "pickle":
    path.write_bytes(pickle.dumps({"x_train": np.zeros(3)}))
  elif kind == "empty":
    path.write_bytes(b"")
  else:  # A valid npz cut short (truncated) or with its first array overwritten.
    whole = _npz(path).read_bytes()
    if kind == "truncated":
      path.write_bytes(whole[:len(whole) // 2])
    else:
      path.write_bytes(whole[:200] + bytes(300) + whole[500:])
  return path


NAN_IMAGES = np.random.default_rng(1).random((12, 8, 8))
NAN_IMAGES[5, 2, 3], NAN_IMAGES[9, 0, 0] = np.nan, np.inf
STRAY = np.arange(40) % 4
STRAY[17] = 100_000


def _files(tmp: pathlib.Path) -> dict[str, str]:
  """The files the cases name: ``{placeholder: path}``."""
  made = {
      "npz": _npz(tmp / "data.npz"),
      "tiny": _npz(tmp / "tiny.npz", x_train=np.zeros((40, 3, 3)),
                   x_test=np.zeros((12, 3, 3))),
      "lenet_small": _npz(tmp / "lenet.npz", x_train=np.zeros((40, 11, 17)),
                          x_test=np.zeros((12, 11, 17))),
      "objects": _npz(tmp / "objects.npz", x_train=np.array(
          [np.zeros((8, 8)), "a"], dtype=object)),
      "string_labels": _npz(tmp / "strings.npz",
                            y_train=np.array(["cat", "dog"] * 20)),
      "no_train": _npz(tmp / "no_train.npz", x_train=np.zeros((0, 8, 8)),
                       y_train=np.zeros(0, int)),
      "scalar": _npz(tmp / "scalar.npz", x_train=np.float32(1.0)),
      "nan": _npz(tmp / "nan.npz", x_test=NAN_IMAGES),
      "stray": _npz(tmp / "stray.npz", y_train=STRAY),
      "outside": write_npz(tmp / "outside.npz", y_test=np.full(20, 7)),
      "unlabelled": _npz(tmp / "unlabelled.npz", y_train=None, y_test=None),
      "side10": _npz(tmp / "side10.npz", x_train=np.zeros((40, 10, 10)),
                     x_test=np.zeros((12, 10, 10)), y_train=None, y_test=None),
      "grey16": write_npz(tmp / "grey16.npz", n_train=16, n_test=8,
                          shape=(16, 16)),
      "rgb16": write_npz(tmp / "rgb16.npz", n_train=16, n_test=8,
                         shape=(16, 16, 3)),
      "rgb18": write_npz(tmp / "rgb18.npz", n_train=16, n_test=8,
                         shape=(18, 18, 3)),
      "masks": _npz(tmp / "masks.npz", x_train=np.zeros((8, 32, 32)),
                    y_train=np.arange(8 * 32 * 32).reshape(8, 32, 32) % 11,
                    x_test=np.zeros((4, 32, 32)),
                    y_test=np.arange(4 * 32 * 32).reshape(4, 32, 32) % 11),
      "stray_mask": _npz(tmp / "stray_mask.npz", x_train=np.zeros((8, 8, 8)),
                         y_train=np.where(np.arange(512).reshape(8, 8, 8) == 5,
                                          254, np.arange(512).reshape(8, 8, 8)
                                          % 3), x_test=np.zeros((4, 8, 8)),
                         y_test=np.zeros((4, 8, 8), int)),
      "ignored": _npz(tmp / "ignored.npz", x_train=np.zeros((8, 8, 8)),
                      y_train=np.arange(512).reshape(8, 8, 8) % 3,
                      x_test=np.zeros((4, 8, 8)),
                      y_test=np.full((4, 8, 8), 255)),
      "nan_masks": _npz(tmp / "nan_masks.npz",
                        x_train=np.where(np.arange(512).reshape(8, 8, 8) == 7,
                                         np.nan, 0.5),
                        y_train=np.arange(512).reshape(8, 8, 8) % 3,
                        x_test=np.zeros((4, 8, 8)),
                        y_test=np.zeros((4, 8, 8), int)),
  }
  for kind in ("text", "npy", "pickle", "empty", "truncated", "overwritten"):
    made[f"not_npz_{kind}"] = _not_npz(kind, tmp / f"{kind}.npz")
  os.symlink(tmp / "nowhere", tmp / "dangling")
  os.symlink(tmp / "loop", tmp / "loop")
  return {name: str(path) for name, path in made.items()}


# (script, argv with {placeholders}, the sentence; "..." at its end: a prefix)
CASES = [
    # Options each on their own: ranges, choices, types.
    ("classify", ["--optimizer.lr", "0"],
     "--optimizer.lr must be in (0, 3.4e38], got 0.0"),
    ("classify", ["--eval-every", "-5"], "--eval-every must be at least 0, "
     "got -5"),
    ("classify", ["--label-smoothing", "1.5"],
     "--label-smoothing must be in [0, 1), got 1.5"),
    ("classify", ["--epochs", "0"], "--epochs must be at least 1, got 0"),
    ("classify", ["--model", "vgg16"], "invalid choice: 'vgg16' for --model; "
     "choose one of cnn, gru, lenet5, lstm, mlp, resnet18, resnet18_imagenet, "
     "resnet20, resnet50_imagenet, rnn, transformer"),
    ("classify", ["--optimizer.weight-decay", "-0.1"],
     "--optimizer.weight-decay must be in [0, 3.4e38], got -0.1"),
    ("classify", ["--optimizer.weight-decay", "1e308"],
     "--optimizer.weight-decay must be in [0, 3.4e38], got 1e+308"),
    ("classify", ["--optimizer.clip-norm", "inf"],
     "--optimizer.clip-norm must be in [0, 3.4e38], got inf"),
    ("classify", ["--optimizer.lr-mult", "Dense_0/.*=1e300"],
     "--optimizer.lr-mult takes 'PATTERN=X' with a number 0 < X <= 3.4e38 "
     "(freeze a leaf with --optimizer.freeze instead of X = 0), got "
     "'Dense_0/.*=1e300'"),
    ("classify", ["--optimizer.freeze", ".*"], "--optimizer.freeze freezes "
     "every parameter, so training would change nothing; leave some "
     "parameters trainable"),
    ("vae", ["--log-every", "-1"], "--log-every must be at least 0, got -1"),
    ("vae", ["--seed", "4294967296"],
     "--seed must be in [0, 4294967295], got 4294967296"),
    ("gan", ["--gp-weight", "-1"], "--gp-weight must be at least 0, got -1.0"),
    ("gan", ["--d-optimizer.b1", "1"],
     "--d-optimizer.b1 must be in [0, 1), got 1.0"),
    ("gan", ["--loss", "lsgan"], "invalid choice: 'lsgan' for --loss; choose "
     "one of minimax, nonsaturating, wgan-gp, hinge, least-squares"),
    ("gan", ["--arch", "vit"], "invalid choice: 'vit' for --arch; choose one "
     "of dcgan, mlp"),
    ("gan", ["--steps", "0"], "--steps must be in [1, 2147483647], got 0"),
    ("dqn", ["--seed", "-1"], "--seed must be in [0, 4294967295], got -1"),
    ("cyclegan", ["--pool-size", "-1"], "--pool-size must be at least 0, "
     "got -1"),
    ("cyclegan", ["--loss", "wgan-gp"], "invalid choice: 'wgan-gp' for "
     "--loss; choose one of minimax, nonsaturating, hinge, least-squares"),
    ("ppo", ["--update-epochs", "0"], "--update-epochs must be at least 1, "
     "got 0"),
    ("ppo", ["--gamma", "1.5"], "--gamma must be in [0, 1], got 1.5"),
    ("ppo", ["--gae-lambda", "-0.1"], "--gae-lambda must be in [0, 1], "
     "got -0.1"),
    ("dqn", ["--env", "CartPol-v1"], "invalid choice: 'CartPol-v1' for "
     "--env; choose one of CartPole-v1, Acrobot-v1, ..."),
    ("dqn", ["--env", "Pendulum-v1"], "invalid choice: 'Pendulum-v1' for "
     "--env; choose one of CartPole-v1, ..."),
    ("segment", ["--augment.max-zoom", "0.5"],
     "--augment.max-zoom must be at least 1, got 0.5"),
    # Options that do not fit together, or the data.
    ("gan", ["--steps", "10", "--g-optimizer.warmup-steps", "10"],
     "--g-optimizer.warmup-steps must be below the number of updates, 10 (10 "
     "steps // --g-optimizer.accumulate 1), got 10"),
    ("dqn", ["--total-steps", "5000", "--chunk-steps", "1000"],
     "--total-steps 5000 (a run of 5000 environment steps in whole chunks) "
     "ends before the first gradient update at environment step 10000 "
     "(--learning-starts 10000), so the agent would learn nothing; raise "
     "--total-steps or lower --learning-starts"),
    ("dqn", ["--batch-size", "500", "--buffer-size", "400",
             "--learning-starts", "100"], "--batch-size 500 is larger than "
     "the replay buffer (--buffer-size 400); lower the batch or enlarge the "
     "buffer"),
    ("dqn", ["--buffer-size", "400", "--learning-starts", "1000"],
     "--buffer-size 400 is smaller than --learning-starts 1000, so the first "
     "transitions would be overwritten before learning starts; enlarge the "
     "buffer or start learning earlier"),
    ("dqn", ["--log-every", "30000"], "--log-every must be 0 (at the end "
     "only) or a multiple of the 25000 environment steps of one chunk "
     "(--chunk-steps), got 30000"),
    ("dqn", ["--chunk-steps", "600000"], "--chunk-steps 600000 is longer than "
     "the run's --total-steps 500000; choose a chunk of at most 500000 "
     "steps"),
    ("ppo", ["--num-envs", "3", "--num-steps", "5"], "--num-envs x "
     "--num-steps (15) must divide by --num-minibatches 4"),
    ("ppo", ["--total-steps", "2147483647", "--chunk-steps", "1000000000"],
     "--total-steps 2147483647 in whole chunks (...") ,
    ("ppo", ["--seeds", "3", "--devices", "2"], "--seeds 3 does not divide by "
     "--devices 2; choose a multiple of 2 seeds or devices that divide the "
     "seeds"),
    ("classify", ["--batch-size", "41", "--dataset", "{npz}"],
     "batch size 41 must be between 1 and the 40 training examples"),
    ("classify", ["--shift", "8", "--dataset", "{npz}"], "--shift 8 moves "
     "8x8 images entirely out of their frame; choose a shift below 8"),
    ("classify", ["--dataset", "imagenette2", "--data-dir", "{tmp}/tfds"],
     "unknown dataset 'imagenette2'..."),
    ("classify", ["--dataset", "nope.npz"],
     "dataset file 'nope.npz' does not exist"),
    ("classify", ["--dataset", "{outside}"], "...label 7 outside [0, 4)..."),
    ("classify", ["--dataset", "{objects}"], "objects.npz: x_train holds "
     "Python objects (dtype object); an npz dataset needs numeric arrays"),
    ("classify", ["--dataset", "{string_labels}"], "strings.npz: y_train must "
     "be a 1-D array of integer class labels, got strings of shape [40]"),
    ("classify", ["--dataset", "{no_train}"], "no_train.npz: x_train holds no "
     "images; an npz dataset needs at least one example in each of train and "
     "test"),
    ("classify", ["--dataset", "{scalar}"], "scalar.npz: x_train is a single "
     "value, not an array with one entry per example"),
    ("classify", ["--dataset", "{nan}"], "dataset 'nan' has NaN or infinite "
     "pixels in 2 test images, the first at index 5; images must be finite"),
    ("classify", ["--dataset", "{stray}"], "dataset 'stray' has labels up to "
     "100000, so 100001 classes, but only 5 of them occur; labels must be "
     "class indices 0 to (number of classes - 1)"),
    ("classify", ["--dataset", "{tiny}"], "--model cnn cannot take images of "
     "3x3 pixels; it needs at least 4x4 pixels; choose larger images or "
     "another --model, such as mlp"),
    ("classify", ["--dataset", "{lenet_small}", "--model", "lenet5"],
     "--model lenet5 cannot take images of 11x17 pixels; it needs at least..."),
    ("classify", ["--dataset", "{not_npz_text}"],
     "dataset file '{not_npz_text}' is not an npz file (not a zip archive, or "
     "a truncated one)..."),
    ("classify", ["--dataset", "{not_npz_npy}"],
     "dataset file '{not_npz_npy}' is not an npz file (a single .npy "
     "array)..."),
    ("classify", ["--dataset", "{not_npz_pickle}"],
     "dataset file '{not_npz_pickle}' is not an npz file (not a zip archive, "
     "or a truncated one)..."),
    ("classify", ["--dataset", "{not_npz_empty}"],
     "dataset file '{not_npz_empty}' is not an npz file (empty)..."),
    ("classify", ["--dataset", "{not_npz_truncated}"],
     "dataset file '{not_npz_truncated}' is not an npz file (not a zip "
     "archive, or a truncated one)..."),
    ("classify", ["--dataset", "{not_npz_overwritten}"],
     "dataset file '{not_npz_overwritten}' is damaged, x_train cannot be "
     "read..."),
    ("vae", ["--dataset", "", "--data-dir", "{tmp}/tfds"], "--dataset is "
     "empty; give digits, a TFDS name such as mnist, or a path to an .npz "
     "file"),
    ("vae", ["--dataset", "mnist:x.y", "--data-dir", "{tmp}/tfds"],
     "TFDS cannot build dataset 'mnist:x.y' (Parsing builder name string "
     "mnist:x.y failed.); write it as NAME, NAME:VERSION or "
     "NAME/CONFIG:VERSION, such as mnist or mnist:3.0.1"),
    ("gan", ["--dataset", "{tiny}", "--arch", "mlp"], "--model cnn cannot "
     "take images of 3x3 pixels; it needs at least 4x4 pixels; choose larger "
     "images or another --model, such as mlp"),
    ("gan", ["--dataset", "{npz}", "--arch", "mlp", "--batch-size", "41"],
     "batch size 41 must be between 1 and the 40 training examples"),
    ("gan", ["--dataset", "{unlabelled}", "--conditional"], "dataset "
     "'unlabelled' has no labels, so --conditional cannot be used; drop it or "
     "add y_train and y_test to the file"),
    ("gan", ["--dataset", "{side10}"], "--arch dcgan: the dcgan architecture "
     "cannot make 10x10 images; it supports 8x8, 28x28, 32x32 (use the mlp "
     "architecture for other sizes)"),
    ("cyclegan", ["--domain-a", "{grey16}", "--domain-b", "{rgb16}"],
     "domain A has 1 channel(s) and domain B 3; pass --grey-to-rgb to repeat "
     "a grey domain's channel (1 and 3 only), or choose domains with equal "
     "channels"),
    ("cyclegan", ["--domain-a", "{rgb18}", "--domain-b", "{rgb18}"],
     "images of 18x18 pixels do not fit a generator with 2 down-samplings: "
     "height and width must be multiples of 4; change --g-downsamplings or "
     "--d-layers, or choose other domains"),
    ("cyclegan", ["--domain-a", "{rgb16}", "--domain-b", "{rgb16}",
                  "--d-layers", "3"], "images of 16x16 pixels are too small "
     "for a PatchGAN of 3 layers, which needs at least 24 pixels a side; "
     "change --g-downsamplings or --d-layers, or choose other domains"),
    ("cyclegan", ["--domain-b", "no_such_domain"],
     "unknown dataset 'no_such_domain'..."),
    ("cyclegan_paired_bound", ["--domain-b", "digits"], "only the embedded "
     "domains digits32 and digits32_photo have pairs; leave --domain-a and "
     "--domain-b at their defaults"),
    ("cyclegan_paired_bound", ["--g-downsamplings", "6"], "images of 32x32 "
     "pixels do not fit a generator with 6 down-samplings: height and width "
     "must be multiples of 64; change --g-downsamplings or --d-layers, or "
     "choose other domains"),
    ("segment", ["--dataset", "{masks}", "--image-size", "30"],
     "--model unet of --depth 3 takes images whose height and width are "
     "multiples of 8, got 30x30; choose --image-size a multiple of 8 or a "
     "shallower model"),
    ("segment", ["--dataset", "{masks}", "--class-weights", "1", "2"],
     "--class-weights must be 11 non-negative numbers, one per class, got "
     "[1.0, 2.0]"),
    ("segment", ["--dataset", "{masks}", "--augment.max-shift", "32"],
     "--augment.max-shift 32 can move 32x32 images entirely out of their "
     "frame; choose a shift below 32"),
    ("segment", ["--dataset", "{stray_mask}"], "stray_mask: y_train holds "
     "labels up to 254, so 255 classes, but only 4 of them occur; labels must "
     "be class indices 0 to (number of classes - 1), 255 for pixels to "
     "ignore"),
    ("segment", ["--dataset", "{ignored}"], "ignored: every pixel of y_test "
     "is the ignore label 255, so there is nothing to measure; label some "
     "pixels 0 to (number of classes - 1)"),
    ("segment", ["--dataset", "{nan_masks}"], "nan_masks: x_train has NaN or "
     "infinite pixels in 1 images, the first at index 0; images must be "
     "finite"),
    ("segment", ["--dataset", "{masks}", "--image-size", "200000"],
     "resizing 12 images and masks to 200000x200000 needs..."),
    ("segment", ["--dataset", "{masks}", "--class-weights"] + ["0"] * 11,
     "--class-weights must give some class a positive weight, got all "
     "zeros"),
    ("segment", ["--dataset", "{masks}", "--class-weights"] + ["nan"] * 11,
     "--class-weights must be at least 0, got nan"),
    ("classify", ["--data-dir", "{npz}", "--dataset", "mnist"], "data "
     "directory '{npz}' is a file, not a directory; give --data-dir a "
     "directory"),
    ("classify", ["--workdir", "{tmp}/dangling"], "workdir '{tmp}/dangling' "
     "is a symbolic link to '{tmp}/nowhere', which does not exist; choose "
     "another with --workdir"),
    ("classify", ["--workdir", "{tmp}/loop/run"], "workdir '{tmp}/loop/run' "
     "is a loop of symbolic links ('{tmp}/loop'); choose another with "
     "--workdir"),
    ("classify", ["--coordinator-address", "no-such-host.invalid:1234",
                  "--num-processes", "2", "--process-id", "1"],
     "--coordinator-address 'no-such-host.invalid:1234' does not name a "
     "reachable host:port (..."),
    ("classify", ["--workdir", ""], "--workdir is empty; give a directory for "
     "the run's results"),
]


def _ids(case):
  script, argv, _ = case
  return f"{script}:{' '.join(argv)}"[:60]


@pytest.mark.parametrize("script, argv, expected", CASES,
                         ids=[_ids(c) for c in CASES])
def test_bad_input_is_one_sentence_exit_2_and_nothing_written(
    script, argv, expected, capsys, tmp_path):
  made = {**_files(tmp_path), "tmp": str(tmp_path)}
  argv = [a.format(**made) for a in argv]
  expected = expected.format(**made)
  workdir = tmp_path / "run"
  if "--workdir" in argv:  # The case is the workdir itself.
    workdir = tmp_path / "nothing"
  sentence = refused(capsys, script, argv, workdir)
  if expected.startswith("..."):
    assert expected.strip(".") in sentence, sentence
  elif expected.endswith("..."):
    assert sentence.startswith(expected[:-3]), sentence
  else:
    assert sentence == expected
  assert not (tmp_path / "tfds").exists()


# The range sweep: every declared interval, and the words a sentence says it in.
DESCRIPTIONS = {"[1, inf)": "at least 1", "[0, inf)": "at least 0",
                "[-1, inf)": "at least -1",
                "(0, inf)": "positive", "[2, inf)": "at least 2"}

CONFIGS = {name: getattr(load_script(name), attribute)
           for name, attribute in (("classify", "ClassifyConfig"),
                                   ("finetune", "FinetuneConfig"),
                                   ("gan", "GanConfig"), ("vae", "VaeConfig"),
                                   ("dqn", "DqnConfig"), ("ppo", "PpoConfig"),
                                   ("segment", "SegmentConfig"),
                                   ("cyclegan", "CycleGanConfig"))}


def numeric_options(config, prefix=""):
  """(dotted name, field, int or float) of every numeric option of ``config``, sections included."""
  hints = typing.get_type_hints(type(config))
  for f in dataclasses.fields(config):
    value = getattr(config, f.name)
    kinds = set(typing.get_args(hints[f.name]) or [hints[f.name]])
    if dataclasses.is_dataclass(value):
      yield from numeric_options(value, f"{prefix}{f.name}.")
    elif typing.get_origin(hints[f.name]) is tuple:
      continue  # A list of numbers (segment's class_weights): in CASES.
    elif {int, float} & kinds:
      yield prefix + f.name, f, int if int in kinds else float


def replace(config, dotted: str, value):
  """``config`` with the option ``dotted`` (``optimizer.lr``) set to ``value``."""
  name, _, rest = dotted.partition(".")
  if rest:
    value = replace(getattr(config, name), rest, value)
  return dataclasses.replace(config, **{name: value})


def outside(interval: Interval) -> list[float]:
  """Values just outside ``interval``."""
  values = []
  if math.isfinite(interval.low):
    values.append(interval.low if not interval.low_closed else interval.low - 1)
  if math.isfinite(interval.high):
    values.append(interval.high if not interval.high_closed
                  else interval.high * 2)
  return values


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_numeric_option_refuses_values_outside_its_stated_range(name):
  config = CONFIGS[name]()
  validate(config)  # The defaults are valid.
  for option, f, kind in numeric_options(config):
    text = f.metadata.get("valid")
    assert text is not None, f"{name}: option {option} has no declared range"
    words = DESCRIPTIONS.get(text, f"in {text}")
    values = outside(Interval.parse(text))
    values = ([int(v) for v in values if v == int(v)] if kind is int
              else values + [float("nan")])
    for value in values:
      with pytest.raises(ConfigError) as error:
        validate(replace(config, option, value))
      assert str(error.value) == f"option {option} must be {words}, got {value}"


def test_tfds_download_without_network_fails_at_once_and_leaves_no_trace(
    capsys, tmp_path, monkeypatch):
  monkeypatch.setattr(datasets, "DOWNLOAD_HOST", ("unreachable.invalid", 443))
  kept = tmp_path / "tfds" / "kept.txt"  # A data dir the user already has.
  kept.parent.mkdir()
  kept.write_text("mine")
  for data_dir in (tmp_path / "new", kept.parent):
    tic = time.perf_counter()
    sentence = refused(capsys, "classify", ["--dataset", "mnist", "--data-dir",
                                            str(data_dir)], tmp_path / "run")
    assert time.perf_counter() - tic < 15
    assert sentence.startswith(
        f"TFDS dataset 'mnist' is not prepared in {str(data_dir)!r} and "
        "cannot be downloaded: unreachable.invalid:443 is unreachable (")
  assert not (tmp_path / "new").exists()
  assert list((tmp_path / "tfds").rglob("*")) == [kept]


@pytest.mark.slow
def test_unreachable_coordinator_times_out_with_one_sentence(tmp_path):
  with socket.socket() as probe:  # A port nobody listens on.
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
  # What every script does first, without importing the models and TFDS.
  first_lines = ("import sys; from dlcore import cli, distributed, parallel; "
                 "from dlcore.config import parse_args; "
                 "distributed.initialize_distributed(parse_args("
                 "parallel.ParallelConfig, 'x', sys.argv[1:]), "
                 "on_timeout=cli._give_up)")
  tic = time.perf_counter()
  result = subprocess.run(
      [sys.executable, "-c", first_lines, "--coordinator-address",
       f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", "1",
       "--coordinator-timeout", "2"], cwd=tmp_path, env={
           **os.environ, "PYTHONPATH": str(EXPERIMENTS.parent)},
      capture_output=True, text=True, check=False, timeout=120)
  assert result.returncode == 2, result.stderr
  assert result.stderr.splitlines() == [
      f"error: the coordinator at 127.0.0.1:{port} did not gather every "
      "process within 2 s (--coordinator-timeout); start all processes with "
      "the same --coordinator-address and --num-processes, or wait longer"]
  assert time.perf_counter() - tic < 60
  assert not list(tmp_path.iterdir())  # Nothing written.


@pytest.mark.parametrize("argv, message", [
    (["--sharding.logical-rules", "embed=fsdp"], "parameter "
     "params/EncoderBlock_0/Dense_0/bias [128] has logical axis 'mlp', which "
     "--sharding.logical-rules does not map; add a rule 'mlp=MESH_AXIS' (the "
     "rules map embed)"),
    (["--sharding.logical-rules", "embed=tensor", "mlp=tensor", "heads=",
      "kv="], "--sharding.logical-rules map two axes ('embed', 'mlp') of "
     "parameter params/EncoderBlock_0/Dense_0/kernel onto mesh axis 'tensor'; a "
     "mesh axis splits at most one dimension of an array"),
    (["--sharding.logical-rules", "embed=fsdp", "mlp=", "heads=",
      "kv=gpu"], "--sharding.logical-rules takes 'LOGICAL=MESH_AXIS' with a "
     "mesh axis among data, fsdp, tensor (or nothing after '='), got "
     "'kv=gpu'"),
    (["--mesh.data", "2"], "a mesh of 2x1x1 needs 2 devices, the run has 1; "
     "give one axis -1 or change --devices"),
    (["--mesh.fsdp", "-1", "--mesh.data", "-1"], "--mesh.data, --mesh.fsdp "
     "and --mesh.tensor must be positive, one of them at most -1 (the rest), "
     "got (-1, -1, 1)"),
    (["--parallel", "pmap", "--mesh.data", "1", "--mesh.fsdp", "-1"],
     "--parallel pmap runs data parallelism only, with a replicated state; "
     "--mesh.fsdp and --mesh.tensor split it, which needs --parallel jit"),
])
def test_bad_meshes_and_sharding_rules_are_one_sentence(argv, message, capsys,
                                                        tmp_path):
  sentence = refused(capsys, "classify", ["--model", "transformer", "--epochs",
                                          "1", *argv], tmp_path / "run")
  assert sentence == message
