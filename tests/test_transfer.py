"""Transfer learning: restore, strict merge, reinit, freeze, lr multipliers, subsets, finetune.py."""

import dataclasses
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from conftest import run_script, small_classify_config, write_npz
from dlcore import transfer
from dlcore.checkpoint import Checkpointer
from dlcore.data import few_shot, load_dataset, parse_classes, select_classes
from dlcore.errors import ConfigError
from dlcore.models import CLASSIFIERS, create_classifier
from dlcore.optim import OptimizerConfig, check_optimizer, create_optimizer
from dlcore.state import create_train_state
from dlcore.supervised import (FinetuneConfig, eval_step, finetune,
                               train_and_evaluate, train_step)



class ConvBN(nn.Module):
  @nn.compact
  def __call__(self, x, train=False, axis_name=None):
    for _ in range(2):
      x = nn.Conv(4, (3, 3))(x)
      x = nn.BatchNorm(use_running_average=not train, momentum=0.5,
                       axis_name=axis_name)(x)
      x = nn.relu(x)
    return nn.Dense(3)(x.mean(axis=(1, 2)))


def _batch(seed=1):
  x = jax.random.normal(jax.random.PRNGKey(seed), (8, 6, 6, 1)) * 2 + 1
  return {"image": x, "label": jnp.arange(8) % 3}


def _trained_state(config=OptimizerConfig(lr=0.05), steps=3):
  batch = _batch()
  state = create_train_state(ConvBN(), create_optimizer(config, 10),
                             batch["image"], jax.random.PRNGKey(0),
                             frozen=config.freeze)
  for i in range(steps):
    state, _ = jax.jit(train_step)(state, batch, jax.random.PRNGKey(i))
  return state


def _variables(state):
  return {"params": state.params, "batch_stats": state.batch_stats}


# Restoring.

def test_imagenet_resnets_have_torchvisions_parameter_counts():
  """11,689,512 and 25,557,032 with 1,000 classes, as torchvision's."""
  for name, expected in [("resnet18_imagenet", 11_689_512),
                         ("resnet50_imagenet", 25_557_032)]:
    model = create_classifier(name, 1000)
    params = jax.eval_shape(lambda: model.init(  # pylint: disable=cell-var-from-loop
        jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3))))["params"]
    assert sum(x.size for x in jax.tree.leaves(params)) == expected


def test_orbax_and_npz_round_trips_give_identical_outputs(tmp_path):
  trained = _trained_state()
  ckpt = Checkpointer(tmp_path / "run" / "checkpoints")
  ckpt.save(3, trained, meta={"step": 3})
  ckpt.close()
  transfer.save_variables(tmp_path / "weights.npz", _variables(trained))
  fresh = _variables(_trained_state(steps=0))
  x = _batch(seed=2)["image"]
  expected = ConvBN().apply(_variables(trained), x)
  for source in (tmp_path / "run", tmp_path / "run" / "checkpoints",
                 tmp_path / "run" / "checkpoints" / "3", tmp_path / "weights.npz"):
    restored = transfer.merge(transfer.load_variables(source), fresh,
                              head="Dense_0", reinit=())
    np.testing.assert_array_equal(ConvBN().apply(restored, x), expected)
    for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(_variables(trained))):
      np.testing.assert_array_equal(a, b)


def test_default_reinit_keeps_the_fresh_head_and_restores_the_rest():
  trained, fresh = _variables(_trained_state()), _variables(_trained_state(steps=0))
  merged = transfer.merge(trained, fresh, head="Dense_0")  # reinit HEAD.
  for path, leaf in transfer.flatten(merged).items():
    source = fresh if path.startswith("params/Dense_0/") else trained
    np.testing.assert_array_equal(leaf, transfer.flatten(source)[path], path)
  assert not np.array_equal(trained["params"]["Dense_0"]["kernel"],
                            fresh["params"]["Dense_0"]["kernel"])


def test_mismatches_are_listed_in_one_sentence_and_remap_renames():
  trained = _variables(_trained_state())
  fresh = _variables(_trained_state(steps=0))
  loaded = {"params": {**trained["params"],
                       "Extra_0": {"kernel": np.zeros(2)},
                       "Conv_1": {"kernel": np.zeros((3, 3, 4, 5)),
                                  "bias": trained["params"]["Conv_1"]["bias"]}},
            "batch_stats": {"BatchNorm_0": trained["batch_stats"]["BatchNorm_0"]}}
  with pytest.raises(ConfigError) as error:
    transfer.merge(loaded, fresh, head="Dense_0",
                   source="option init_from 'x'")
  assert str(error.value) == (
      "option init_from 'x' does not match the model: it lacks "
      "batch_stats/BatchNorm_1/mean, batch_stats/BatchNorm_1/var; the model "
      "lacks its params/Extra_0/kernel; shapes differ for "
      "params/Conv_1/kernel ((3, 3, 4, 5) there, (3, 3, 4, 4) in the model); "
      "re-initialise such leaves with option reinit or rename paths with "
      "option remap")
  nested = {c: {"encoder": tree} for c, tree in trained.items()}
  merged = transfer.merge(nested, fresh, head="Dense_0", remap=("encoder/=",))
  np.testing.assert_array_equal(merged["params"]["Conv_0"]["kernel"],
                                trained["params"]["Conv_0"]["kernel"])
  for kwargs, message in [({"remap": ("enc/=",)}, "prefix 'enc/' starts no path"),
                          ({"remap": ("encoder",)}, "takes 'OLD=NEW'"),
                          ({"reinit": ("Head/.*",)}, "pattern 'Head/.*' matches no path")]:
    with pytest.raises(ConfigError, match=message):
      transfer.merge(nested, fresh, head="Dense_0",
                     **{"remap": ("encoder/=",), **kwargs})


def test_bad_sources_are_refused_in_one_sentence(tmp_path):
  (tmp_path / "empty").mkdir()
  (tmp_path / "notes.npz").write_text("not a zip")
  np.savez(tmp_path / "pickled.npz", **{"params/a": np.array([{}], object)})
  write_npz(tmp_path / "dataset.npz")
  for source, message in [
      (tmp_path / "nope", "does not exist"),
      (tmp_path / "empty", "holds no checkpoint"),
      (tmp_path / "notes.npz", "is not a parameter file"),
      (tmp_path / "pickled.npz", "is not a parameter file"),
      (tmp_path / "dataset.npz", "is not a parameter file")]:
    with pytest.raises(ConfigError, match=f"option init_from .*{message}"):
      transfer.load_variables(source)


# Freezing and learning-rate multipliers.

def test_frozen_batchnorm_trains_in_inference_mode():
  """Everything but the head frozen: the training loss is the evaluation loss."""
  backbone = "(Conv|BatchNorm)_[01]/.*"
  config = OptimizerConfig(name="adam", lr=0.05, freeze=(backbone,))
  start = _trained_state(OptimizerConfig(lr=0.05), steps=2)  # Stats moved.
  start = start.replace(tx=create_optimizer(config, 10), frozen=(backbone,))
  start = start.replace(opt_state=start.tx.init(start.params))
  batch = _batch(seed=3)
  state, metrics = jax.jit(train_step)(start, batch, jax.random.PRNGKey(0))
  evaluation = eval_step(start, {**batch, "mask": jnp.ones(8)})
  np.testing.assert_allclose(metrics["loss"], evaluation["loss"].compute(),
                             rtol=1e-6)
  unfrozen, _ = jax.jit(train_step)(start.replace(frozen=()), batch,
                                    jax.random.PRNGKey(0))
  assert not np.allclose(jax.tree.leaves(unfrozen.batch_stats)[0],
                         jax.tree.leaves(start.batch_stats)[0])
  for before, after in zip(jax.tree.leaves(start.batch_stats),
                           jax.tree.leaves(state.batch_stats)):
    np.testing.assert_array_equal(before, after)
  # The frozen leaves hold no optimizer state: Adam keeps 2 moments of the
  # head (3 + 12 scalars) and a count.
  assert sum(x.size for x in jax.tree.leaves(state.opt_state)) == 2 * 15 + 1


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_lr_multipliers_scale_each_update_exactly(name):
  params = {"Conv_0": {"kernel": jnp.linspace(-1, 1, 6).reshape(2, 3)},
            "Dense_0": {"kernel": jnp.linspace(0.5, 2, 6).reshape(3, 2),
                        "bias": jnp.array([0.1, -0.2])}}
  grads = jax.tree.map(lambda p: jnp.sin(3 * p) + 0.1, params)
  base = OptimizerConfig(name=name, lr=0.1)
  mult = dataclasses.replace(base, lr_mult=("Conv_.*=0.25", ".*/bias=3",
                                            "Dense_0/.*=0.5"))

  def two_updates(config):
    tx = create_optimizer(config, 10)
    state, p, out = tx.init(params), params, []
    for _ in range(2):
      updates, state = tx.update(grads, state, p)
      p = optax.apply_updates(p, updates)
      out.append(updates)
    return out

  for plain, scaled in zip(two_updates(base), two_updates(mult)):
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(plain),
                            jax.tree.leaves(scaled)):
      factor = {"Conv_0/kernel": 0.25, "Dense_0/bias": 3.0,
                "Dense_0/kernel": 0.5}[jax.tree_util.keystr(
                    path, simple=True, separator="/")]
      np.testing.assert_allclose(b, factor * a, rtol=1e-6)


def test_bad_lr_multipliers_are_refused():
  params = {"Dense_0": {"kernel": jnp.ones((2, 2))}}
  for spec, message in [("Dense_0/.*=0", "0 < X"), ("Dense_0/.*", "'PATTERN=X'"),
                        ("Dens/.*=0.1", "pattern 'Dens/.*' matches no parameter")]:
    with pytest.raises(ConfigError, match=f"option optimizer.lr_mult .*{message}"):
      check_optimizer(OptimizerConfig(lr_mult=(spec,)), params, total_steps=10)


# Tasks carved from a dataset.

def test_classes_are_kept_and_relabelled_in_the_given_order(tmp_path):
  data = load_dataset(str(write_npz(tmp_path / "d.npz", n_train=40)))
  target = select_classes(data, parse_classes("3,1"))
  assert target.num_classes == 2 and len(target.train) == 20
  np.testing.assert_array_equal(target.train.labels, np.tile([1, 0], 10))
  np.testing.assert_array_equal(  # Class 3's images, now labelled 0.
      target.train.images[1], data.train.images[3])
  for text, message in [("1,1", "repeats class 1"), ("0,9", "names class 9 that"),
                        ("a,b", "takes class numbers separated by commas")]:
    with pytest.raises(ConfigError, match=f"option classes {message}"):
      select_classes(data, parse_classes(text))


def test_k_shot_subsets_are_balanced_reproducible_and_nested(tmp_path):
  data = load_dataset(str(write_npz(tmp_path / "d.npz", n_train=40)))  # 10 a class.
  three, three_again = few_shot(data, 3, seed=5), few_shot(data, 3, seed=5)
  np.testing.assert_array_equal(np.bincount(three.train.labels), [3] * 4)
  np.testing.assert_array_equal(three.train.images, three_again.train.images)
  other, five = few_shot(data, 3, seed=6), few_shot(data, 5, seed=5)
  assert not np.array_equal(three.train.images, other.train.images)
  rows = lambda d: {d.train.images[i].tobytes() for i in range(len(d.train))}
  assert rows(three) < rows(five)
  assert len(few_shot(data, 0, seed=5).train) == 40
  with pytest.raises(ConfigError, match="train_per_class must be at most 10"):
    few_shot(data, 11, seed=0)


# finetune.py.

def test_finetune_end_to_end_starts_from_the_source_weights(tmp_path, capsys):
  source = small_classify_config(tmp_path, classes="0,1", epochs=2,
                                 workdir=str(tmp_path / "source"))
  train_and_evaluate(source)
  straight = FinetuneConfig(**{
      **{f.name: getattr(source, f.name) for f in dataclasses.fields(source)},
      "classes": "2,3", "train_per_class": 8, "batch_size": 8, "epochs": 3,
      "workdir": str(tmp_path / "straight"), "init_from": str(tmp_path / "source"),
      "freeze": ("Dense_0/.*",), "lr_mult": ("Dense_1/.*=0.5",)})
  summary = finetune(straight)
  assert summary["num_train"] == 16 and summary["steps"] == 6
  assert summary["config"]["optimizer"]["freeze"] == ["Dense_0/.*"]
  restored = Checkpointer(tmp_path / "straight" / "checkpoints").restore_latest()[0]
  pretrained = Checkpointer(tmp_path / "source" / "checkpoints").restore_latest()[0]
  np.testing.assert_array_equal(restored["params"]["Dense_0"]["kernel"],
                                pretrained["params"]["Dense_0"]["kernel"])
  assert not np.array_equal(restored["params"]["Dense_1"]["kernel"],
                            pretrained["params"]["Dense_1"]["kernel"])

  # The command line (in this process): bad input, one sentence, exit 2.
  with pytest.raises(SystemExit) as exit_status:
    run_script("finetune", [
        "--dataset", source.dataset, "--model", "mlp", "--init-from",
        str(tmp_path / "source"), "--freeze", "Dense_9/.*",
        "--workdir", str(tmp_path / "bad")])
  assert exit_status.value.code == 2
  assert capsys.readouterr().err.strip().splitlines()[-1].startswith(
      "error: --optimizer.freeze pattern 'Dense_9/.*' matches no parameter path")
  assert not (tmp_path / "bad").exists()


def test_random_shift_moves_each_image_by_its_own_offset():
  from dlcore.supervised.steps import random_shift  # pylint: disable=import-outside-toplevel
  images = jax.random.uniform(jax.random.PRNGKey(0), (16, 5, 6, 2)) + 1
  np.testing.assert_array_equal(random_shift(jax.random.PRNGKey(1), images, 0),
                                images)
  moved = np.asarray(random_shift(jax.random.PRNGKey(1), images, 2))
  padded = np.pad(np.asarray(images), ((0, 0), (2, 2), (2, 2), (0, 0)))
  offsets = set()
  for i, image in enumerate(moved):
    matches = [(dy, dx) for dy in range(5) for dx in range(5)
               if np.array_equal(image, padded[i, dy:dy + 5, dx:dx + 6])]
    assert len(matches) == 1
    offsets.add(matches[0])
  assert len(offsets) > 5  # Drawn per image.


@pytest.mark.parametrize("name", sorted(CLASSIFIERS))
def test_head_is_each_models_classifier_and_fine_tuning_keeps_the_rest(name):
  """Every model in the registry: HEAD is the leaf that maps to the classes, from eval_shape's sorted keys too."""
  model = create_classifier(name, 7)
  shape = (1, 64, 64, 3) if "imagenet" in name else (1, 16, 16, 3)
  init = lambda key: model.init({"params": key, "dropout": key},
                                jnp.zeros(shape), train=False)
  source = nn.meta.unbox(jax.jit(init)(jax.random.PRNGKey(0)))
  fresh = nn.meta.unbox(jax.eval_shape(init, jax.random.PRNGKey(1)))
  merged = transfer.merge(source, {"params": fresh["params"],
                                   "batch_stats": fresh.get("batch_stats", {})},
                          head=model.head_name)
  kept = {path: leaf for path, leaf in transfer.flatten(merged).items()}
  heads = [path for path, leaf in kept.items()
           if isinstance(leaf, jax.ShapeDtypeStruct)]  # Fresh: the head only.
  assert heads and all(p.startswith(f"params/{model.head_name}/")
                       for p in heads), heads
  assert any(leaf.shape[-1:] == (7,) for p, leaf in kept.items() if p in heads)
  for path, leaf in kept.items():
    if path not in heads:
      np.testing.assert_array_equal(leaf, transfer.flatten(source)[path])


def test_weights_that_are_not_weights_are_refused(tmp_path):
  np.save(tmp_path / "array.npy", np.zeros((2, 2)))
  (tmp_path / "array.npy").rename(tmp_path / "array.npz")
  np.savez(tmp_path / "nan.npz", **{"params/Dense_0/kernel": np.array([np.nan])})
  np.savez(tmp_path / "bool.npz", **{"params/Dense_0/kernel": np.ones(2, bool)})
  np.savez(tmp_path / "bare.npz", **{"Dense_0/kernel": np.ones((2, 2))})
  for name, message in [("array.npz", "it holds a single .npy array"),
                        ("nan.npz", "holds NaN or infinite values in "
                         "params/Dense_0/kernel"),
                        ("bool.npz", "holds params/Dense_0/kernel of dtype "
                         "bool, which is no weight")]:
    with pytest.raises(ConfigError, match=re.escape(message)):
      transfer.load_variables(tmp_path / name)
  bare = transfer.load_variables(tmp_path / "bare.npz")  # Paths: parameters.
  np.testing.assert_array_equal(bare["params"]["Dense_0"]["kernel"],
                                np.ones((2, 2)))


def test_reinitialising_every_leaf_is_refused():
  trained, fresh = _variables(_trained_state()), _variables(_trained_state(steps=0))
  with pytest.raises(ConfigError, match="re-initialises every parameter, so "
                     "nothing would be taken from the checkpoint"):
    transfer.merge(trained, fresh, head="Dense_0", reinit=(".*",))
