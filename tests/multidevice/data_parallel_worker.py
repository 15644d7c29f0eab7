"""One process of a multi-process classification, launched by ``tests/test_parallel.py``.

Usage (two processes on localhost, then one process for reference)::

  python tests/multidevice/data_parallel_worker.py --out DIR \\
      --coordinator-address 127.0.0.1:PORT --num-processes 2 --process-id I \\
      [--mesh.data 1 --mesh.fsdp -1]          # FSDP across the processes
  python tests/multidevice/data_parallel_worker.py --out DIR

Trains the CNN for ``--steps`` SGD steps on global batches of 32 digits
(each process feeding only its rows of each batch), its state placed on
the mesh as ``dlcore.sharding`` places it (split across processes under
FSDP), then writes ``DIR/params_<process>.npz`` (every parameter, gathered
to this process) and runs ``train_and_evaluate`` on the same mesh for one
short epoch in ``DIR/run``, where only process 0 writes files.
"""

import dataclasses
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding, PartitionSpec as P

from dlcore import distributed, parallel, sharding
from dlcore.config import field, parse_args
from dlcore.data import load_dataset, train_batches
from dlcore.models import create_classifier
from dlcore.state import create_train_state
from dlcore.supervised import ClassifyConfig, train_and_evaluate
from dlcore.supervised.steps import train_step


@dataclasses.dataclass(frozen=True)
class WorkerConfig(parallel.ParallelConfig):
  out: str = field(".", "directory for params_<process>.npz and run/")
  data_dir: str | None = field(None, "TFDS data directory")
  steps: int = field(8, "SGD steps on batches of 32")


def main():
  config = parse_args(WorkerConfig, __doc__)
  distributed.initialize_distributed(config)
  mesh = parallel.run_mesh(config)
  out = pathlib.Path(config.out)
  data = load_dataset("digits", config.data_dir)
  state = create_train_state(
      create_classifier("cnn", 10), optax.sgd(0.1),
      jnp.zeros((1, 8, 8, 1)), jax.random.PRNGKey(0))
  specs = sharding.state_specs(jax.eval_shape(lambda: state), mesh,
                               config.sharding)
  state = jax.device_put(state, jax.tree.map(
      lambda s: NamedSharding(mesh, s), specs,
      is_leaf=lambda x: isinstance(x, P)))
  step = parallel.wrap(train_step, mesh, "jit",
                       in_specs=(specs, parallel.BATCH, parallel.REPLICATED),
                       out_specs=(specs, parallel.REPLICATED),
                       donate_argnums=0)
  key = jax.random.PRNGKey(1)
  for i, batch in zip(range(config.steps), train_batches(data.train, 32, 0)):
    state, metrics = step(state, parallel.shard_batch(batch, mesh),
                          jax.random.fold_in(key, i))
  params = multihost_utils.process_allgather(state.params, tiled=True)
  np.savez(out / f"params_{jax.process_index()}.npz",
           loss=parallel.to_host(metrics)["loss"],
           **{jax.tree_util.keystr(path): leaf for path, leaf
              in jax.tree_util.tree_leaves_with_path(params)})
  train_and_evaluate(
      ClassifyConfig(epochs=1, batch_size=256, data_dir=config.data_dir,
                     devices=config.devices, mesh=config.mesh,
                     sharding=config.sharding, workdir=str(out / "run")))


if __name__ == "__main__":
  main()
