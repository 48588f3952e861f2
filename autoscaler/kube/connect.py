"""Building the kubernetes_asyncio `ApiClient`: in-cluster, or from a kubeconfig.

Used by the daemon and `explain` before they build `KubeCluster` and `KubeLeaseStore`.
"""

from __future__ import annotations

import os
from pathlib import Path

from kubernetes_asyncio.client import ApiClient, Configuration
from kubernetes_asyncio.config import load_incluster_config, load_kube_config

DEFAULT_KUBECONFIG = Path.home() / ".kube" / "config"


def in_cluster() -> bool:
    """True inside a pod: the service-account environment the kubelet injects is there."""
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST"))


async def connect(kubeconfig: str | os.PathLike[str] | None = None, *,
                  context: str | None = None) -> ApiClient:
    """An ApiClient for `--kubeconfig` if given, else `$KUBECONFIG` (a `:`-separated list is
    merged, as kubectl does), else the in-cluster service account, else `~/.kube/config`.

    Raises `kubernetes_asyncio.config.ConfigException` or OSError when none is usable; the
    caller closes the client.
    """
    configuration = Configuration()
    path = os.fspath(kubeconfig) if kubeconfig is not None else os.environ.get("KUBECONFIG")
    if path is None and in_cluster():
        # The loader re-reads the projected token before it expires (bound SA tokens rotate).
        load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    else:
        await load_kube_config(config_file=path or str(DEFAULT_KUBECONFIG), context=context,
                               client_configuration=configuration, persist_config=False)
    return ApiClient(configuration=configuration)


async def disconnect(api: ApiClient) -> None:
    """Close the client's connection pool (the client owns an aiohttp session)."""
    await api.close()
