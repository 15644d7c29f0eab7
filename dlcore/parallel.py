"""Any dlcore step on many devices and many hosts, unchanged: one of three mechanisms.

Usage::

  mesh = parallel.run_mesh(config)               # data x fsdp x tensor devices
  specs = sharding.state_specs(abstract_state, mesh, config.sharding)
  step = parallel.wrap(train_step, mesh, config.parallel,
                       in_specs=(specs, parallel.BATCH, parallel.REPLICATED),
                       out_specs=(specs, parallel.REPLICATED), donate_argnums=0)
  for global_batch in batches:                   # numpy, [B, ...] on every host
    batch = parallel.shard_batch(global_batch, mesh)  # this host's rows only
    state, metrics = step(state, batch, key)
  print(parallel.to_host(metrics))               # {"loss": 0.31, ...}

A step is any pure ``step(state, batch, *rest, axis_name=None, **options)``
(train steps take a key, eval steps may not). ``wrap`` runs it over a mesh
(``dlcore.sharding``) by one of three mechanisms:

* ``"jit"`` (the default): ``jax.jit(step)`` with ``axis_name=None`` on
  arrays placed by ``NamedSharding`` s: the state as ``dlcore.sharding``
  splits it (replicated, FSDP, tensor-parallel), the batch along its
  leading axis over ``("data", "fsdp")``. The compiler partitions the
  program (GSPMD) and inserts the collectives, so the batch mean, BatchNorm
  statistics and every random draw (JAX's partitionable threefry) are
  those of one device on the whole batch by construction.
* ``"shard_map"``: ``jax.jit(jax.shard_map(step))``; every device runs the
  step on its ``B / n`` examples with ``axis_name="data"``, and the step's
  ``lax.pmean`` makes gradients, BatchNorm statistics and metrics global.
  The state is replicated: this is data parallelism only.
* ``"pmap"``: ``jax.pmap(step, axis_name="data")`` with the state broadcast
  and the batch reshaped to ``[n, B / n, ...]``. JAX 0.10 runs ``pmap`` as
  ``jit(shard_map)``, and it is in maintenance mode: kept for code that
  still uses it, replicated states only.

All three take and return the same global arrays, so ``to_host`` reads a
replicated output from one local device: no gather, no ``x[0]``
"unreplicate". A population (RL seeds, a sweep's configurations) is split
along its leading axis over ``data`` by every mechanism; its members never
communicate.

Multi-host: ``dlcore.distributed.initialize_distributed`` starts JAX's
distributed runtime; meshes then span every process's devices (the data
axis first), and ``shard_batch`` sends each process only its own rows of
the global batch (``jax.make_array_from_process_local_data``).
"""

import dataclasses
import functools
from typing import Any, Callable, Sequence

import jax
import numpy as np
from jax import lax
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from dlcore import sharding
from dlcore.sharding import MeshConfig, ShardingConfig
from dlcore.config import field
from dlcore.errors import ConfigError

AXIS = "data"  # The axis name shard_map and pmap steps average over.
MECHANISMS = ("jit", "shard_map", "pmap")
BATCH = P(sharding.BATCH_AXES)  # A batch's spec: split along its leading axis.
REPLICATED = P()
MEMBERS = P("data")  # A population's spec: members split over data.


@dataclasses.dataclass(frozen=True)
class ParallelConfig:
  """Options every experiment script shares: devices, mesh, mechanism, processes.

  Script configs inherit it (``class ClassifyConfig(ParallelConfig)``).
  """
  devices: int | None = field(None, "devices to train on (default: every "
                              "device of every process)", valid="[1, inf)")
  parallel: str = field("jit", "how the step runs on many devices: jit on "
                        "sharded arrays (any mesh), or the data-parallel "
                        "shard_map and pmap", choices=MECHANISMS)
  mesh: MeshConfig = field(
      MeshConfig(), "the device mesh, e.g. --mesh.data -1 "
      "--mesh.fsdp 4: parameters and optimizer state split 4 ways, the "
      "batch over every device")
  sharding: ShardingConfig = field(
      ShardingConfig(), "how the state is split over the mesh")
  coordinator_address: str | None = field(
      None, "host:port of process 0 for a multi-host run (default: "
      "$JAX_COORDINATOR_ADDRESS; unset: one process)")
  num_processes: int | None = field(None, "processes of a multi-host run "
                                    "(default: $JAX_NUM_PROCESSES)",
                                    valid="[1, inf)")
  process_id: int | None = field(None, "this process's index, 0 first "
                                 "(default: $JAX_PROCESS_ID)", valid="[0, inf)")
  coordinator_timeout: int = field(300, "seconds a multi-host run waits for "
                                   "every process to join the coordinator "
                                   "before it stops (exit status 2)",
                                   valid="[1, inf)")


def is_main_process() -> bool:
  """True on the one process that writes files (process 0)."""
  return jax.process_index() == 0


def run_devices(num_devices: int | None = None) -> list[jax.Device]:
  """``num_devices`` devices (default: all), the same number from every process.

  With several processes, ``num_devices`` must be a multiple of the
  process count and each process contributes its first ``num_devices /
  processes`` local devices.
  """
  available = jax.device_count()
  processes = jax.process_count()
  num_devices = available if num_devices is None else num_devices
  if not 1 <= num_devices <= available or num_devices % processes:
    raise ConfigError(
        f"option devices must be between 1 and the {available} available devices"
        + (f" and a multiple of the {processes} processes" if processes > 1
           else "") + f", got {num_devices}")
  per_process = num_devices // processes
  return [d for p in range(processes)
          for d in [d for d in jax.devices() if d.process_index == p]
          [:per_process]]


def run_mesh(config: ParallelConfig, num_devices: int | None = None) -> Mesh:
  """The mesh ``config`` asks for over ``num_devices`` (default ``config.devices``).

  ``shard_map`` and ``pmap`` replicate the state, so their mesh may split
  only the batch (``mesh.fsdp`` and ``mesh.tensor`` 1).
  """
  if config.parallel != "jit" and (config.mesh.fsdp, config.mesh.tensor) != (1, 1):
    raise ConfigError(
        f"option parallel {config.parallel} runs data parallelism only, "
        "with a replicated state; option mesh.fsdp and option mesh.tensor "
        "split it, which needs option parallel jit")
  devices = run_devices(config.devices if num_devices is None
                        else num_devices)
  return sharding.make_mesh(config.mesh, devices)


def data_mesh(num_devices: int | None = None) -> Mesh:
  """A mesh of ``num_devices`` devices along ``data`` alone (default: every device)."""
  return sharding.make_mesh(sharding.MeshConfig(data=-1),
                            run_devices(num_devices))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, REPLICATED)


def batch_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, BATCH)


def replicate(tree: Any, mesh: Mesh) -> Any:
  """``tree`` with a full copy of every array on every device of ``mesh``."""
  return jax.device_put(tree, replicated(mesh))


def check_divisible(batch_size: int, mesh: Mesh) -> None:
  """A ``ConfigError`` naming both numbers unless the batch splits evenly."""
  ways = sharding.batch_devices(mesh)
  if batch_size % ways:
    raise ConfigError(
        f"batch size {batch_size} does not divide by the {ways} devices the "
        f"batch is split over; choose a multiple of {ways} or another mesh "
        "(option devices, option mesh)")


def process_rows(batch_size: int, mesh: Mesh) -> slice:
  """The rows of a ``[batch_size, ...]`` global batch this process feeds."""
  check_divisible(batch_size, mesh)
  indices = batch_sharding(mesh).addressable_devices_indices_map((batch_size,))
  starts = sorted({index[0].start or 0 for index in indices.values()})
  per_device = batch_size // sharding.batch_devices(mesh)
  first, last = starts[0], starts[-1] + per_device
  if last - first != per_device * len(starts):
    raise ValueError("this process's devices are not contiguous in the mesh")
  return slice(first, last)


def shard_batch(batch: Any, mesh: Mesh, spec: P = BATCH) -> Any:
  """A global batch (numpy, ``[B, ...]``) as arrays split along their leading axis.

  Every process passes the same global batch (or any array whose rows
  ``process_rows(B, mesh)`` hold its own data); only those rows are copied,
  each device receiving its ``B / n`` consecutive examples. ``spec``
  ``MEMBERS`` splits over ``data`` alone (a population's keys).
  """
  sizes = {x.shape[0] for x in jax.tree.leaves(batch)}
  if len(sizes) != 1:
    raise ValueError(f"batch arrays disagree on the batch size: {sorted(sizes)}")
  (size,) = sizes
  placement = NamedSharding(mesh, spec)
  if spec == BATCH:
    rows = process_rows(size, mesh)
  else:
    rows = slice(None) if jax.process_count() == 1 else process_rows(size, mesh)
  return jax.tree.map(
      lambda x: jax.make_array_from_process_local_data(
          placement, np.asarray(x[rows]), x.shape), batch)


def pad_batch(batch: dict[str, np.ndarray], multiple: int) -> dict[str, np.ndarray]:
  """Pads an eval batch to a multiple of ``multiple`` rows with ``mask`` 0.

  Sums weighted by ``mask`` (``eval_step``) are unchanged, so evaluation on
  any device count stays exact. A batch without ``mask`` gets one.
  """
  size = len(next(iter(batch.values())))
  mask = batch.get("mask", np.ones(size, np.float32))
  pad = -size % multiple
  padded = {k: np.concatenate([v, np.zeros((pad,) + v.shape[1:], v.dtype)])
            for k, v in batch.items() if k != "mask"}
  padded["mask"] = np.concatenate([mask, np.zeros(pad, mask.dtype)])
  return padded


Specs = Any  # A PartitionSpec, or a tree of them shaped like an argument.


def wrap(step: Callable[..., Any], mesh: Mesh, mechanism: str = "jit", *,
         in_specs: Sequence[Specs], out_specs: Specs,
         donate_argnums: int | Sequence[int] = (),
         collectives: bool = True, **options) -> Callable[..., Any]:
  """``step`` compiled to run over ``mesh``; see the module docstring.

  Args:
    step: ``step(*args, axis_name=None, **options)``.
    mesh: from ``run_mesh`` (or ``dlcore.sharding.make_mesh``).
    mechanism: ``"jit"``, ``"shard_map"`` or ``"pmap"``.
    in_specs: one spec per positional argument (calls may give fewer:
      the first ones): ``REPLICATED``, ``BATCH``, ``MEMBERS``, or (``jit``)
      a tree of specs, one per leaf (a sharded state).
    out_specs: the outputs' specs, as ``in_specs``: one for all, or a
      tuple (a plain ``tuple``) of one per output.
    donate_argnums: positions whose buffers the step may reuse (the state).
    collectives: the step averages over ``axis_name`` (``False`` for a
      population, whose members never communicate; then JAX's replication
      check stays on under ``shard_map``).
    **options: static keyword options bound into ``step`` (``task=...``).

  Returns:
    ``f(*args)``, with a ``lower(*args)`` method for ahead-of-time
    compilation.
  """
  if mechanism not in MECHANISMS:
    raise ConfigError(f"unknown parallel mechanism {mechanism!r}; choose one "
                      f"of {', '.join(MECHANISMS)}")
  in_specs = tuple(in_specs)
  if mechanism == "jit":
    fn = functools.partial(step, axis_name=None, **options)
    as_sharding = lambda specs: jax.tree.map(
        lambda s: NamedSharding(mesh, s), specs,
        is_leaf=lambda x: isinstance(x, P))
    return _per_arg_count(fn, mesh, in_specs, lambda specs: jax.jit(
        fn, in_shardings=as_sharding(specs),
        out_shardings=as_sharding(out_specs), donate_argnums=donate_argnums))
  in_specs = tuple(_one_spec(s, mechanism) for s in in_specs)
  out_specs = (tuple(_one_spec(o, mechanism) for o in out_specs)
               if type(out_specs) is tuple  # pylint: disable=unidiomatic-typecheck
               else _one_spec(out_specs, mechanism))
  fn = functools.partial(step, axis_name=AXIS, **options)
  if mechanism == "shard_map":
    # With the replication check on, jax.grad of replicated parameters sums
    # the per-device gradients itself, and the steps' pmean (which pmap
    # needs) would leave them n times too large; so it is off where the
    # step averages, as under pmap, and on for populations.
    return _per_arg_count(fn, mesh, in_specs, lambda specs: jax.jit(
        jax.shard_map(fn, mesh=mesh, in_specs=specs, out_specs=out_specs,
                      check_vma=not collectives),
        donate_argnums=donate_argnums))
  return _pmapped(fn, mesh, in_specs, out_specs, donate_argnums)


def _one_spec(specs: Specs, mechanism: str) -> P:
  """The one spec of a whole argument under ``shard_map`` or ``pmap``."""
  found = set(jax.tree.leaves(specs, is_leaf=lambda x: isinstance(x, P)))
  if len(found) > 1 or not found <= {REPLICATED, BATCH, MEMBERS}:
    raise ValueError(f"{mechanism} takes each argument replicated or split "
                     f"along its leading axis, not {sorted(map(str, found))}:"
                     " shard the state with mechanism jit")
  return found.pop() if found else REPLICATED


def data_parallel(step: Callable[..., Any], mesh: Mesh, mechanism: str = "jit",
                  *, donate_argnums: int | Sequence[int] = (),
                  **options) -> Callable[..., Any]:
  """``wrap`` of ``step(state, batch, *rest)`` with the state and ``rest`` replicated.

  The outputs (a new state, metrics) are replicated too: plain data
  parallelism under any mechanism.
  """
  return wrap(step, mesh, mechanism,
              in_specs=(REPLICATED, BATCH, REPLICATED, REPLICATED),
              out_specs=REPLICATED, donate_argnums=donate_argnums, **options)


def _per_arg_count(fn, mesh: Mesh, in_specs: tuple, compile_for):
  """Compiles once per argument count; checks that split arguments divide."""
  compiled = {}

  def prepared(args):
    if len(args) not in compiled:
      compiled[len(args)] = compile_for(in_specs[:len(args)])
    _check_split_args(args, in_specs, mesh)
    return compiled[len(args)]

  @functools.wraps(fn)
  def call(*args):
    return prepared(args)(*args)
  return _one_at_a_time_on_cpu(call, mesh,
                               lower=lambda *args: prepared(args).lower(*args))


def _pmapped(fn, mesh: Mesh, in_specs: tuple, out_specs, donate_argnums):
  """``jax.pmap`` over the mesh's devices, taking and giving global arrays."""
  devices = list(mesh.devices.flat)
  split = lambda spec: spec != REPLICATED
  out_axes = jax.tree.map(lambda s: 0 if split(s) else None, out_specs,
                          is_leaf=lambda x: isinstance(x, P))
  mapped = {}

  def prepared(args):
    """The pmapped function for ``args`` and the arguments split for it."""
    if len(args) not in mapped:
      mapped[len(args)] = jax.pmap(
          fn, AXIS, devices=devices, donate_argnums=donate_argnums,
          in_axes=tuple(0 if split(s) else None
                        for s in in_specs[:len(args)]),
          out_axes=out_axes)
    _check_split_args(args, in_specs, mesh)
    return mapped[len(args)], [
        jax.tree.map(_split_leading(mesh.size), a) if split(s) else a
        for a, s in zip(args, in_specs)]

  def lower(*args):
    pmapped, args = prepared(args)
    return pmapped.lower(*args)

  @functools.wraps(fn)
  def call(*args):
    pmapped, args = prepared(args)
    outputs = pmapped(*args)
    merge = lambda x: x.reshape((-1,) + x.shape[2:])  # [n, B / n] -> [B]
    outputs = jax.tree.map(lambda axis, x: x if axis is None else jax.tree.map(
        merge, x), out_axes, outputs, is_leaf=lambda x: x is None)
    if jax.process_count() > 1:  # pmap gives process-local arrays back.
      outputs = multihost_utils.host_local_array_to_global_array(
          outputs, mesh, out_specs)
    return outputs
  return _one_at_a_time_on_cpu(call, mesh, lower)


def _one_at_a_time_on_cpu(call, mesh: Mesh, lower):
  """On several CPU devices, waits for the arguments before each dispatch.

  XLA's in-process CPU collectives deadlock (a 40 s rendezvous timeout,
  then an abort) when many steps with collectives are queued at once: with
  jaxlib 0.10.2, 500 asynchronously dispatched ``pmean`` steps on 2 or 8
  simulated devices hung, 32 in flight did not. Waiting for the previous
  step's results keeps one step in flight; the devices share the host's
  cores, so little is lost. Accelerators keep fully asynchronous dispatch.
  The returned function has ``lower(*args)``, as ``jax.jit`` functions do,
  so callers can compile it ahead of time.
  """
  if mesh.size == 1 or mesh.devices.flat[0].platform != "cpu":
    bounded = call
  else:
    @functools.wraps(call)
    def bounded(*args):
      return call(*jax.block_until_ready(args))
  bounded.lower = lower
  return bounded


def _split_leading(n: int):
  """``[B, ...] -> [n, B / n, ...]``: device ``i`` gets rows ``i*B/n ...``."""
  return lambda x: x.reshape((n, x.shape[0] // n) + x.shape[1:])


def _check_split_args(args, in_specs, mesh: Mesh) -> None:
  for arg, spec in zip(args, in_specs):
    if spec == BATCH:
      for x in jax.tree.leaves(arg):
        check_divisible(x.shape[0], mesh)


def to_host(tree: Any) -> Any:
  """A replicated pytree (metrics, a state) as numpy, read from one device.

  Works on every process of a multi-host run: each reads its own first
  local copy (``addressable_shards[0]``) and nothing crosses hosts.
  """
  def fetch(x):
    if not isinstance(x, jax.Array):
      return np.asarray(x)
    if not x.sharding.is_fully_replicated:
      raise ValueError(f"to_host needs replicated arrays, got {x.sharding}")
    return np.asarray(x.addressable_shards[0].data)
  return jax.tree.map(fetch, tree)


def shard_of_global_draw(sample: Callable[[jax.Array, tuple[int, ...]], jax.Array],
                         key: jax.Array, local_shape: Sequence[int],
                         axis_name: str | None) -> jax.Array:
  """This device's rows of a random ``[n * b, ...]`` draw made for the whole batch.

  ``sample(key, shape)`` is e.g. ``jax.random.normal``. Under ``shard_map``
  / ``pmap`` every device draws the global array from the same key and
  keeps its own ``b`` rows, so a step using it gives exactly the numbers of
  one device on the whole batch (at ``n`` times the cost of the draw). With
  ``axis_name=None`` (``jit``, where the compiler splits one global draw)
  it is simply ``sample(key, local_shape)``.
  """
  local_shape = tuple(local_shape)
  if axis_name is None:
    return sample(key, local_shape)
  n = lax.axis_size(axis_name)
  draw = sample(key, (n * local_shape[0],) + local_shape[1:])
  return lax.dynamic_slice_in_dim(draw, lax.axis_index(axis_name) * local_shape[0],
                                  local_shape[0])
