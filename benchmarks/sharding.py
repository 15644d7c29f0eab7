"""Data parallel, FSDP and FSDP x tensor parallel side by side: step time and bytes per device.

Usage::

  python -m benchmarks.sharding                    # ResNet-20 and the Transformer
  python -m benchmarks.sharding --models transformer --batch-size 64

On a CPU-only machine 8 devices are simulated
(``--xla_force_host_platform_device_count``, set here before JAX starts):
they share the machine's cores, so the ratios measure the framework's and
the collectives' overhead of each layout, not an accelerator's speed. On an
accelerator host the real devices are used (``--devices``). For each model
the three layouts of ``LAYOUTS`` train the same step on the same global
batch (``dlcore.parallel.wrap`` under ``jit`` with the state placed by
``dlcore.sharding``), timed interleaved in one run (``benchmarks.timing``);
reported: median step ms, the ratio to data parallelism, and the parameter
and optimizer bytes per device read from the arrays' shards. Writes
``--output`` ``.json`` and ``.md``.
"""

import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_force_host_platform_device_count=8")

import dataclasses  # pylint: disable=wrong-import-position
import pathlib

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding, PartitionSpec as P

from benchmarks import timing
from dlcore import files, parallel, sharding
from dlcore.config import field, parse_args, validate
from dlcore.models import create_classifier
from dlcore.state import create_train_state
from dlcore.supervised.steps import train_step

LAYOUTS = {"data parallel": sharding.MeshConfig(data=-1),
           "fsdp": sharding.MeshConfig(data=1, fsdp=-1),
           "fsdp x tensor 2": sharding.MeshConfig(data=1, fsdp=-1, tensor=2)}
SHAPES = {"resnet20": (32, 32, 3), "transformer": (28, 28, 1),
          "cnn": (28, 28, 1)}


@dataclasses.dataclass(frozen=True)
class ShardingBenchConfig:
  models: str = field("resnet20,transformer", "comma-separated classifiers")
  devices: int = field(8, "devices of the mesh", valid="[1, inf)")
  batch_size: int = field(64, "global batch", valid="[1, inf)")
  steps: int = field(40, "timed steps per layout", valid="[1, inf)")
  rounds: int = field(8, "interleaved rounds", valid="[1, inf)")
  fsdp_min_size: int = field(1 << 12, "elements below which a parameter "
                             "without logical axes stays whole",
                             valid="[1, inf)")
  output: str = field("benchmarks/results/sharding", "path stem of the "
                      ".json and .md results")


def layout_side(model_name: str, mesh_config: sharding.MeshConfig,
                config: ShardingBenchConfig) -> tuple[timing.JaxSide, dict]:
  """The compiled step of ``model_name`` on the layout, and where its state lives."""
  mesh = sharding.make_mesh(mesh_config, jax.devices()[:config.devices])
  shape = SHAPES[model_name]
  state = create_train_state(create_classifier(model_name, 10),
                             optax.adam(1e-3), jnp.zeros((1, *shape)),
                             jax.random.PRNGKey(0))
  specs = sharding.state_specs(jax.eval_shape(lambda: state), mesh,
                               sharding.ShardingConfig(
                                   fsdp_min_size=config.fsdp_min_size))
  state = jax.device_put(nn.meta.unbox(state), jax.tree.map(
      lambda s: NamedSharding(mesh, s), specs,
      is_leaf=lambda x: isinstance(x, P)))
  rng = np.random.default_rng(0)
  batch = parallel.shard_batch({
      "image": rng.random((config.batch_size, *shape), np.float32),
      "label": rng.integers(0, 10, config.batch_size).astype(np.int32)}, mesh)
  step = parallel.wrap(train_step, mesh, "jit",
                       in_specs=(specs, parallel.BATCH, parallel.REPLICATED),
                       out_specs=(specs, parallel.REPLICATED),
                       donate_argnums=0)
  with jax.set_mesh(mesh):
    side = timing.JaxSide(step, state, batch,
                          parallel.replicate(jax.random.PRNGKey(1), mesh))
  return side, sharding.placement(state, mesh)


def run(config: ShardingBenchConfig) -> dict:
  validate(config)
  results = {"machine": {"device": jax.devices()[0].device_kind,
                         "devices": config.devices,
                         "backend": jax.default_backend(),
                         "cpu_cores": os.cpu_count()},
             "batch_size": config.batch_size, "models": {}}
  for model_name in config.models.split(","):
    built = {name: layout_side(model_name, mesh, config)
             for name, mesh in LAYOUTS.items()}
    times = timing.interleave({n: side for n, (side, _) in built.items()},
                              steps=config.steps, rounds=config.rounds)
    rows = {}
    for name, (side, where) in built.items():
      rows[name] = {**timing.summary(times[name]), **where,
                    "compile_seconds": side.compile_seconds}
    base = rows["data parallel"]["median_s"]
    for row in rows.values():
      row["over_data_parallel"] = row["median_s"] / base
    results["models"][model_name] = rows
    print(f"{model_name}: " + ", ".join(
        f"{n} {r['median_s'] * 1e3:.1f} ms ({r['over_data_parallel']:.2f}x, "
        f"{r['param_bytes_per_device']:,} B params/device)"
        for n, r in rows.items()), flush=True)
  return results


def markdown(results: dict) -> str:
  machine = results["machine"]
  lines = [f"# Layouts on {machine['devices']} {machine['device']} devices "
           f"({machine['backend']}, {machine['cpu_cores']} CPU cores), "
           f"global batch {results['batch_size']}", "",
           "| model | layout | step ms (median) | / data parallel | params "
           "B/device | optimizer B/device |", "|---|---|---:|---:|---:|---:|"]
  for model_name, rows in results["models"].items():
    for name, r in rows.items():
      lines.append(f"| {model_name} | {name} | {r['median_s'] * 1e3:.2f} | "
                   f"{r['over_data_parallel']:.3f} | "
                   f"{r['param_bytes_per_device']:,} | "
                   f"{r['optimizer_bytes_per_device']:,} |")
  if machine["backend"] == "cpu":
    lines += ["", "Simulated CPU devices share the host's cores: the ratios "
              "are the collectives' and the framework's overhead, not a "
              "speed-up."]
  return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
  config = parse_args(ShardingBenchConfig, __doc__, argv)
  results = run(config)
  stem = pathlib.Path(config.output)
  stem.parent.mkdir(parents=True, exist_ok=True)
  files.write_json(stem.with_suffix(".json"), results)
  files.write_atomic(stem.with_suffix(".md"), markdown(results).encode())
  print(markdown(results))
  return results


if __name__ == "__main__":
  main()
