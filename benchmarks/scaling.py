"""Steps per second of the supervised step on 1, 2, 4, 8 devices (data-parallel).

Usage::

  python -m benchmarks.scaling                       # CNN, global batch 256
  python -m benchmarks.scaling --devices 1,2 --mechanisms shard_map,jit

On a CPU-only machine the devices are simulated
(``--xla_force_host_platform_device_count``, set here before JAX starts):
they share the machine's cores, so the figures show the overhead of the
mechanisms, not a speed-up. On an accelerator host the real devices are
used and counts beyond them are skipped. The global batch is fixed, so
each device gets ``batch_size / n`` examples of shape ``[8, 8, 1]``.
Prints a Markdown table (steps/s and examples/s, median of ``--repeats``
timings of ``--steps`` steps each, after compiling and a warm-up step).
"""

import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_force_host_platform_device_count=8")

import dataclasses  # pylint: disable=wrong-import-position
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dlcore import parallel
from dlcore.config import field, parse_args
from dlcore.models import create_classifier
from dlcore.state import create_train_state
from dlcore.supervised.steps import train_step


@dataclasses.dataclass(frozen=True)
class ScalingConfig:
  devices: str = field("1,2,4,8", "comma-separated device counts")
  mechanisms: str = field("jit,shard_map,pmap", "comma-separated mechanisms")
  model: str = field("cnn", "classifier")
  batch_size: int = field(256, "global batch size (fixed for every count)")
  steps: int = field(50, "steps per timing")
  repeats: int = field(3, "timings per cell; the median is reported")


def steps_per_second(config: ScalingConfig, num_devices: int,
                     mechanism: str) -> float:
  """Median steps/s of ``train_step`` on ``num_devices`` by ``mechanism``."""
  mesh = parallel.data_mesh(num_devices)
  rng = np.random.default_rng(0)
  batch = parallel.shard_batch({
      "image": rng.random((config.batch_size, 8, 8, 1), np.float32),
      "label": rng.integers(0, 10, config.batch_size).astype(np.int32)}, mesh)
  state = parallel.replicate(create_train_state(
      create_classifier(config.model, 10), optax.adam(1e-3),
      jnp.zeros((1, 8, 8, 1)), jax.random.PRNGKey(0)), mesh)
  key = parallel.replicate(jax.random.PRNGKey(1), mesh)
  step = parallel.data_parallel(train_step, mesh, mechanism,
                                donate_argnums=0)
  state, metrics = step(state, batch, key)  # Compile and warm up.
  jax.block_until_ready(metrics)
  timings = []
  for _ in range(config.repeats):
    tic = time.perf_counter()
    for _ in range(config.steps):
      state, metrics = step(state, batch, key)
    jax.block_until_ready((state, metrics))
    timings.append(config.steps / (time.perf_counter() - tic))
  return statistics.median(timings)


def main(argv=None) -> list[dict]:
  config = parse_args(ScalingConfig, __doc__, argv)
  counts = [int(n) for n in config.devices.split(",")]
  mechanisms = config.mechanisms.split(",")
  available = jax.device_count()
  print(f"{jax.devices()[0].device_kind} x{available} "
        f"({jax.default_backend()}), {os.cpu_count()} CPU cores, "
        f"{config.model}, global batch {config.batch_size}")
  print("\n| devices | " + " | ".join(f"{m} steps/s" for m in mechanisms)
        + " | examples/s (best) |")
  print("|---:|" + "---:|" * (len(mechanisms) + 1))
  rows = []
  for n in counts:
    if n > available:
      print(f"| {n} | skipped: only {available} devices |")
      continue
    rates = {m: steps_per_second(config, n, m) for m in mechanisms}
    rows.append({"devices": n, **rates})
    print(f"| {n} | " + " | ".join(f"{rates[m]:.1f}" for m in mechanisms)
          + f" | {max(rates.values()) * config.batch_size:,.0f} |", flush=True)
  return rows


if __name__ == "__main__":
  main()
