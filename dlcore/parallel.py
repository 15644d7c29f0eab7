"""Data parallelism: any dlcore step on many devices and many hosts, unchanged.

Usage::

  parallel.initialize_distributed(config)        # multi-host only; first
  mesh = parallel.data_mesh(config.devices)      # every device, axis "data"
  state = parallel.replicate(state, mesh)        # one copy per device
  step = parallel.wrap(train_step, mesh, config.parallel, donate_argnums=0)
  for global_batch in batches:                   # numpy, [B, ...] on every host
    batch = parallel.shard_batch(global_batch, mesh)  # this host's rows only
    state, metrics = step(state, batch, key)
  print(parallel.to_host(metrics))               # {"loss": 0.31, ...}

A step is any pure ``step(state, batch, *rest, axis_name=None, **options)``
(train steps take a key, eval steps do not). ``wrap`` runs it on the
``"data"`` axis of a one-dimensional ``Mesh`` by one of three mechanisms:

* ``"shard_map"`` (the default): ``jax.jit(jax.shard_map(step))``; every
  device runs the step on its ``B / n`` examples with ``axis_name="data"``,
  and the step's ``lax.pmean`` makes gradients, BatchNorm statistics and
  metrics global, so the outputs (``out_specs=P()``) are equal on every
  device. JAX's replication check is off (``check_vma=False``, as in
  ``pmap``): with it on, ``jax.grad`` of replicated parameters already
  sums the per-device gradients, and the steps' ``pmean`` would then leave
  them ``n`` times too large.
* ``"pmap"``: ``jax.pmap(step, axis_name="data")`` with the state broadcast
  (``in_axes=None``, ``out_axes=None``) and the batch reshaped to
  ``[n, B / n, ...]``. JAX 0.10 runs ``pmap`` as ``jit(shard_map)``, and
  it is in maintenance mode: kept for code that still uses it.
* ``"jit"``: ``jax.jit(step)`` with ``axis_name=None`` on a batch sharded
  along its leading axis (``NamedSharding``); the compiler partitions the
  program (GSPMD), so the batch mean is the global mean by construction.

All three take and return the same arrays: the state and keys replicated
over the mesh (``P()``), the batch a global array sharded along its leading
axis (``P("data")``), and the outputs replicated, so ``to_host`` reads any
output from one local device: no gather, no ``x[0]`` "unreplicate". Script
configs inherit ``ParallelConfig`` (``--devices``, ``--parallel`` and the
multi-host flags).

Multi-host: ``initialize_distributed`` starts JAX's distributed runtime
when a coordinator is given; ``data_mesh`` then spans every process's
devices, and ``shard_batch`` sends each process only its own rows of the
global batch (``jax.make_array_from_process_local_data``). A process waits
at most ``coordinator_timeout`` seconds (default 300) for every process to
join; then it stops with one sentence and exit status 2.
"""

import dataclasses
import functools
import os
import socket
import threading
from typing import Any, Callable, Sequence

import jax
import numpy as np
from jax import lax
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from dlcore.config import field
from dlcore.errors import ConfigError

AXIS = "data"
MECHANISMS = ("shard_map", "pmap", "jit")


@dataclasses.dataclass(frozen=True)
class ParallelConfig:
  """Options every experiment script shares: devices, mechanism, processes.

  Script configs inherit it (``class ClassifyConfig(ParallelConfig)``).
  """
  devices: int | None = field(None, "devices to train on (default: every "
                              "device of every process)", valid="[1, inf)")
  parallel: str = field("shard_map", "how the step runs on many devices",
                        choices=MECHANISMS)
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


def cluster_environment(env: dict[str, str] | None = None) -> str | None:
  """The multi-process job this process belongs to, from its environment alone.

  ``"slurm"`` (``SLURM_JOB_ID`` with ``SLURM_NTASKS`` > 1 and the other
  variables JAX's SLURM support reads), ``"open-mpi"`` (``mpirun``'s
  ``OMPI_MCA_orte_hnp_uri``), ``"tpu-pod"`` (``TPU_WORKER_HOSTNAMES``
  naming several hosts) or ``"kubernetes"`` (an indexed Job:
  ``KUBERNETES_SERVICE_HOST`` and ``JOB_COMPLETION_INDEX``); None for a
  single process. Nothing is asked over the network, so a laptop or a
  one-task job never waits on a coordinator.
  """
  env = os.environ if env is None else env
  slurm = ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_NTASKS",
           "SLURM_PROCID", "SLURM_LOCALID")
  if all(v in env for v in slurm) and int(env["SLURM_NTASKS"]) > 1:
    return "slurm"
  if "OMPI_MCA_orte_hnp_uri" in env:
    return "open-mpi"
  if len(env.get("TPU_WORKER_HOSTNAMES", "").split(",")) > 1:
    return "tpu-pod"
  if "KUBERNETES_SERVICE_HOST" in env and "JOB_COMPLETION_INDEX" in env:
    return "kubernetes"
  return None


def initialize_distributed(config: ParallelConfig,
                           on_timeout: Callable[[str], None] | None = None
                           ) -> bool:
  """Starts ``jax.distributed`` for a multi-process run; True if started.

  An explicit coordinator wins: each of ``config.coordinator_address``,
  ``num_processes`` and ``process_id`` falls back to the environment
  variable ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES`` or
  ``JAX_PROCESS_ID``. Without one, a process that ``cluster_environment``
  places in a SLURM, Open MPI, TPU-pod or Kubernetes job joins it through
  ``jax.distributed.initialize()``'s own auto-detection. Otherwise nothing
  happens (one process). Call it once per process, first thing in a
  script's ``main``: before anything touches a JAX device.

  ``on_timeout(sentence)`` is called (from another thread) when not every
  process has joined within ``config.coordinator_timeout`` seconds; the
  command line's stops the process with that sentence (``dlcore.cli``).
  Without it, JAX's own timeout, a minute later, aborts the process.
  """
  env = os.environ
  coordinator_address = (config.coordinator_address
                         or env.get("JAX_COORDINATOR_ADDRESS"))
  num_processes, process_id = config.num_processes, config.process_id
  if not coordinator_address:
    cluster = cluster_environment()
    if cluster is None:
      return False
    _join(f"the {cluster} job's coordinator", config.coordinator_timeout,
          on_timeout)
    return True
  if num_processes is None and "JAX_NUM_PROCESSES" in env:
    num_processes = int(env["JAX_NUM_PROCESSES"])
  if process_id is None and "JAX_PROCESS_ID" in env:
    process_id = int(env["JAX_PROCESS_ID"])
  if num_processes is None or process_id is None:
    missing = "num_processes" if num_processes is None else "process_id"
    raise ConfigError(
        f"coordinator {coordinator_address!r} is given but not option "
        f"{missing}; give both (or JAX_NUM_PROCESSES and JAX_PROCESS_ID)")
  if not 0 <= process_id < num_processes:
    raise ConfigError(f"option process_id must be in [0, {num_processes}), "
                      f"got {process_id}")
  host, _, port = coordinator_address.rpartition(":")
  try:
    socket.getaddrinfo(host.strip("[]"), port)
  except (socket.gaierror, UnicodeError) as e:
    raise ConfigError(
        f"option coordinator_address {coordinator_address!r} does not name a "
        f"reachable host:port ({getattr(e, 'strerror', None) or e}); give "
        "process 0's host and a free port") from None
  _join(f"the coordinator at {coordinator_address}", config.coordinator_timeout,
        on_timeout, coordinator_address, num_processes, process_id)
  return True


# JAX aborts the process (no Python exception) when its own timeout passes,
# so it gets longer than ours: ours stops first, with one sentence.
_JAX_EXTRA_SECONDS = 60


def _join(coordinator: str, timeout: int,
          on_timeout: Callable[[str], None] | None, *args) -> None:
  """``jax.distributed.initialize(*args)``, calling ``on_timeout`` after ``timeout`` s."""
  sentence = (
      f"{coordinator} did not gather every process within {timeout} s "
      "(option coordinator_timeout); start all processes with the same "
      "option coordinator_address and option num_processes, or wait longer")
  watchdog = None
  if on_timeout is not None:
    watchdog = threading.Timer(timeout, on_timeout, (sentence,))
    watchdog.daemon = True
    watchdog.start()
  try:
    jax.distributed.initialize(
        *args, initialization_timeout=timeout + _JAX_EXTRA_SECONDS)
  finally:
    if watchdog is not None:
      watchdog.cancel()


def is_main_process() -> bool:
  """True on the one process that writes files (process 0)."""
  return jax.process_index() == 0


def data_mesh(num_devices: int | None = None) -> Mesh:
  """A one-axis ``Mesh`` named ``"data"`` over ``num_devices`` devices.

  The default is every device of every process. With several processes,
  ``num_devices`` must be a multiple of the process count and each process
  contributes its first ``num_devices / processes`` local devices.
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
  devices = [d for p in range(processes)
             for d in [d for d in jax.devices() if d.process_index == p]
             [:per_process]]
  return Mesh(np.array(devices), (AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(AXIS))


def replicate(tree: Any, mesh: Mesh) -> Any:
  """``tree`` with a full copy of every array on every device of ``mesh``."""
  return jax.device_put(tree, replicated(mesh))


def check_divisible(batch_size: int, mesh: Mesh) -> None:
  """A ``ConfigError`` naming both numbers unless the batch splits evenly."""
  if batch_size % mesh.size:
    raise ConfigError(
        f"batch size {batch_size} does not divide by the {mesh.size} devices; "
        f"choose a multiple of {mesh.size} or a different option devices")


def process_rows(batch_size: int, mesh: Mesh) -> slice:
  """The rows of a ``[batch_size, ...]`` global batch this process feeds."""
  check_divisible(batch_size, mesh)
  indices = batch_sharding(mesh).addressable_devices_indices_map((batch_size,))
  starts = sorted(index[0].start or 0 for index in indices.values())
  per_device = batch_size // mesh.size
  first, last = starts[0], starts[-1] + per_device
  if last - first != per_device * len(starts):
    raise ValueError("this process's devices are not contiguous in the mesh")
  return slice(first, last)


def shard_batch(batch: Any, mesh: Mesh) -> Any:
  """A global batch (numpy, ``[B, ...]``) as arrays sharded over ``"data"``.

  Every process passes the same global batch (or any array whose rows
  ``process_rows(B, mesh)`` hold its own data); only those rows are copied,
  each device receiving ``B / n`` consecutive examples.
  """
  sizes = {x.shape[0] for x in jax.tree.leaves(batch)}
  if len(sizes) != 1:
    raise ValueError(f"batch arrays disagree on the batch size: {sorted(sizes)}")
  (size,) = sizes
  rows = process_rows(size, mesh)
  sharding = batch_sharding(mesh)
  return jax.tree.map(
      lambda x: jax.make_array_from_process_local_data(
          sharding, np.asarray(x[rows]), x.shape), batch)


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


def wrap(step: Callable[..., Any], mesh: Mesh, mechanism: str = "shard_map", *,
         sharded_argnums: Sequence[int] = (1,), shard_outputs: bool = False,
         donate_argnums: int | Sequence[int] = (), **options) -> Callable[..., Any]:
  """``step`` compiled to run data-parallel over ``mesh``; see the module docstring.

  Args:
    step: ``step(*args, axis_name=None, **options)``; the arguments at
      ``sharded_argnums`` (the batch) are split along their leading axis,
      every other argument (state, key) is replicated.
    mesh: from ``data_mesh``.
    mechanism: ``"shard_map"``, ``"pmap"`` or ``"jit"``.
    sharded_argnums: positions of the batch-like arguments.
    shard_outputs: the outputs are per example too (split along their
      leading axis, like the batch) rather than replicated: e.g. a
      ``vmap`` over seeds whose keys are the sharded argument.
    donate_argnums: positions whose buffers the step may reuse (the state).
    **options: static keyword options bound into ``step`` (``task=...``).

  Returns:
    ``f(*args)`` with the outputs replicated on every device of ``mesh``
    (or, with ``shard_outputs``, split over them).
  """
  if mechanism not in MECHANISMS:
    raise ConfigError(f"unknown parallel mechanism {mechanism!r}; choose one "
                      f"of {', '.join(MECHANISMS)}")
  sharded = frozenset(sharded_argnums)
  out_spec = P(AXIS) if shard_outputs else P()
  if mechanism == "jit":
    fn = functools.partial(step, axis_name=None, **options)
    return _with_specs(fn, mesh, sharded, lambda specs: jax.jit(
        fn, in_shardings=tuple(NamedSharding(mesh, s) for s in specs),
        out_shardings=NamedSharding(mesh, out_spec),
        donate_argnums=donate_argnums))
  fn = functools.partial(step, axis_name=AXIS, **options)
  if mechanism == "shard_map":
    return _with_specs(fn, mesh, sharded, lambda specs: jax.jit(
        jax.shard_map(fn, mesh=mesh, in_specs=specs, out_specs=out_spec,
                      check_vma=False),
        donate_argnums=donate_argnums))
  return _pmapped(fn, mesh, sharded, out_spec, donate_argnums)


def _with_specs(fn, mesh: Mesh, sharded: frozenset[int], compile_for):
  """Compiles per argument count; checks that sharded arguments divide."""
  compiled = {}

  def jitted(args):
    if len(args) not in compiled:
      compiled[len(args)] = compile_for(
          tuple(P(AXIS) if i in sharded else P() for i in range(len(args))))
    _check_batch_args(args, sharded, mesh)
    return compiled[len(args)]

  @functools.wraps(fn)
  def call(*args):
    return jitted(args)(*args)
  return _one_at_a_time_on_cpu(call, mesh,
                               lower=lambda *args: jitted(args).lower(*args))


def _pmapped(fn, mesh: Mesh, sharded: frozenset[int], out_spec: P,
             donate_argnums):
  """``jax.pmap`` over the mesh's devices, taking and giving global arrays."""
  devices = list(mesh.devices.flat)
  out_axes = None if out_spec == P() else 0
  mapped = {}

  def prepared(args):
    """The pmapped function for ``args`` and the arguments split for it."""
    if len(args) not in mapped:
      mapped[len(args)] = jax.pmap(
          fn, AXIS, devices=devices, donate_argnums=donate_argnums,
          in_axes=tuple(0 if i in sharded else None for i in range(len(args))),
          out_axes=out_axes)
    _check_batch_args(args, sharded, mesh)
    return mapped[len(args)], [
        jax.tree.map(_split_leading(mesh.size), a) if i in sharded else a
        for i, a in enumerate(args)]

  def lower(*args):
    pmapped, args = prepared(args)
    return pmapped.lower(*args)

  @functools.wraps(fn)
  def call(*args):
    pmapped, args = prepared(args)
    outputs = pmapped(*args)
    if out_axes == 0:  # [n, B / n, ...] -> [B, ...]
      outputs = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), outputs)
    if jax.process_count() > 1:  # pmap gives process-local arrays back.
      outputs = multihost_utils.host_local_array_to_global_array(
          outputs, mesh, out_spec)
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


def _check_batch_args(args, sharded: frozenset[int], mesh: Mesh) -> None:
  for i in sharded:
    for x in jax.tree.leaves(args[i]):
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

  ``sample(key, shape)`` is e.g. ``jax.random.normal``. Every device draws
  the global array from the same key and keeps its own ``b`` rows, so a
  step using it gives exactly the numbers of one device on the whole batch
  (at ``n`` times the cost of the draw). With ``axis_name=None`` it is
  simply ``sample(key, local_shape)``.
  """
  local_shape = tuple(local_shape)
  if axis_name is None:
    return sample(key, local_shape)
  n = lax.axis_size(axis_name)
  draw = sample(key, (n * local_shape[0],) + local_shape[1:])
  return lax.dynamic_slice_in_dim(draw, lax.axis_index(axis_name) * local_shape[0],
                                  local_shape[0])
