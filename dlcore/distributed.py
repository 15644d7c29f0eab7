"""Joining a multi-process run: ``initialize_distributed(config)``, first thing in a script.

An explicit coordinator (``--coordinator-address``, ``--num-processes``,
``--process-id``, or the ``JAX_*`` variables) wins; otherwise a process
that ``cluster_environment`` places in a SLURM, Open MPI, TPU-pod or
Kubernetes job joins it through ``jax.distributed.initialize()``'s own
auto-detection; otherwise nothing happens (one process). A process waits
at most ``coordinator_timeout`` seconds for every other to join.
"""

import os
import socket
import threading
from typing import Callable

import jax

from dlcore.errors import ConfigError


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


def initialize_distributed(config,
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
