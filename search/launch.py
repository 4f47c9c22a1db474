"""The one place Ray starts: an embedded local instance by default, or a cluster to join.

Example::

    from search.launch import start_ray
    start_ray(None)             # a new local Ray sized to this machine, even if another runs
    start_ray("auto")           # the cluster a `ray start` on this machine belongs to
    start_ray("10.0.0.5:6379")  # a cluster's head

Every command that runs trials or tasks (sweep, train, pretrain, recommend, predict --address)
starts Ray through :func:`start_ray`; nothing else calls ``ray.init``.
"""

from __future__ import annotations

import os

from core.errors import UserError

# Ray settings every driver of ours wants (set before ray is imported by the Tuner)
RAY_ENV = {
    "TUNE_DISABLE_STRICT_METRIC_CHECKING": "1",  # diverged/infeasible reports carry no metric
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
    "RAY_AIR_NEW_OUTPUT": "0",
}


def start_ray(
    address: str | None, *, num_cpus: int | None = None, num_gpus: int | None = None
) -> None:
    """Start (or join) Ray once per process; a cluster that cannot be reached is one line.

    Without ``address`` a new local instance is started (``address="local"``): a Ray that
    already runs on the machine (an earlier ``ray start --head``, another sweep) is left
    alone instead of being joined with conflicting resource counts.
    """
    for key, value in RAY_ENV.items():
        os.environ.setdefault(key, value)
    import ray

    if ray.is_initialized():
        return
    if address:
        try:
            ray.init(address=address, log_to_driver=True, configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as err:
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise UserError(
                f"--address {address}: cannot reach the Ray cluster ({first}); check that "
                "its head runs (`ray status`) and that this machine may reach it"
            ) from None
        return
    ray.init(
        address="local",
        num_cpus=num_cpus or os.cpu_count(),
        num_gpus=num_gpus,
        include_dashboard=False,
        dashboard_host="127.0.0.1",
        log_to_driver=True,
        configure_logging=True,
        logging_level="warning",
    )
