"""Building the kubernetes_asyncio `ApiClient`: in-cluster, or from a kubeconfig.

Used by the daemon and `explain` before they build `KubeCluster` and `KubeLeaseStore`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TypeAlias

import yaml
from kubernetes_asyncio.client import ApiClient, Configuration
from kubernetes_asyncio.config import ConfigException, load_incluster_config, load_kube_config

from autoscaler import __version__

DEFAULT_KUBECONFIG = Path.home() / ".kube" / "config"
#: The client `connect` gives, by the name the code outside kube/ passes it around by.
KubeClient: TypeAlias = ApiClient


def in_cluster() -> bool:
    """True inside a pod: the service-account environment the kubelet injects is there."""
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST"))


async def connect(kubeconfig: str | os.PathLike[str] | None = None, *,
                  context: str | None = None, as_user: str | None = None) -> ApiClient:
    """An ApiClient for `--kubeconfig` if given, else `$KUBECONFIG` (a `:`-separated list is
    merged, as kubectl does), else the in-cluster service account, else `~/.kube/config`.

    With `as_user`, every request acts as that user (`Impersonate-User`, as `kubectl --as`),
    which the kubeconfig's user must be allowed to impersonate.

    Raises `KubeconfigError`, naming the file and what is wrong with it, when none is usable;
    the caller closes the client.
    """
    configuration = Configuration()
    path = os.fspath(kubeconfig) if kubeconfig is not None else os.environ.get("KUBECONFIG")
    try:
        if path is None and in_cluster():
            # The loader re-reads the projected token before it expires (bound SA tokens
            # rotate).
            load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=configuration)
            return _client(configuration, as_user)
        path = path or str(DEFAULT_KUBECONFIG)
        if not _any_file(path):
            raise KubeconfigError(f"kubeconfig {path}: no such file; pass --kubeconfig, set "
                                  "$KUBECONFIG, or run in a pod with a service account")
        await load_kube_config(config_file=path, context=context,
                               client_configuration=configuration, persist_config=False)
    except KubeconfigError:
        raise
    except (ConfigException, OSError, ValueError, yaml.YAMLError) as exc:
        where = "in-cluster service account" if path is None else f"kubeconfig {path}"
        raise KubeconfigError(f"{where}: {type(exc).__name__}: {exc}") from exc
    return _client(configuration, as_user)


def _client(configuration: Configuration, as_user: str | None) -> ApiClient:
    api = ApiClient(configuration=configuration)
    # The apiserver's audit log names the client by it, and so does `metadata.managedFields`
    # for a write that names no field manager (the prefix before the first "/").
    api.user_agent = f"tracardi-autoscaler/{__version__}"
    if as_user:
        api.set_default_header("Impersonate-User", as_user)
    return api


def _any_file(paths: str) -> bool:
    """Whether any of the `:`-separated kubeconfig paths is a file (kubectl merges those)."""
    return any(os.path.isfile(p) for p in paths.split(os.pathsep) if p)


class KubeconfigError(ValueError):
    """No usable connection to a Kubernetes API: the message names the file and the fault."""


async def disconnect(api: ApiClient) -> None:
    """Close the client's connection pool (the client owns an aiohttp session)."""
    await api.close()
