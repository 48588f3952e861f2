"""Building the kubernetes_asyncio `ApiClient`: in-cluster, or from a kubeconfig.

Used by the daemon and `explain` before they build `KubeCluster` and `KubeLeaseStore`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TypeAlias
from urllib.parse import urlsplit

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
        missing = _missing(path)
        if missing:
            raise KubeconfigError(f"kubeconfig {path}: {missing}; pass --kubeconfig, set "
                                  "$KUBECONFIG, or run in a pod with a service account")
        _check_shape(path)
        await load_kube_config(config_file=path, context=context,
                               client_configuration=configuration, persist_config=False)
        server = urlsplit(configuration.host or "")
        if server.scheme not in ("http", "https") or not server.hostname:
            raise KubeconfigError(f"kubeconfig {path}: the cluster's server "
                                  f"{configuration.host!r} is not an https:// URL")
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


def _check_shape(paths: str) -> None:
    """Each kubeconfig file is a YAML mapping (the loader fails on anything else with a
    TypeError that names nothing)."""
    for name in paths.split(os.pathsep):
        if not (name and os.path.isfile(name)):
            continue
        with open(name, encoding="utf-8") as f:
            loaded = yaml.safe_load(f)
        if not isinstance(loaded, dict):
            found = ("the file is empty" if loaded is None else
                     "its top level is a list" if isinstance(loaded, list) else
                     f"its top level is the value {str(loaded)[:40]!r}")
            raise KubeconfigError(f"kubeconfig {name}: not a kubeconfig (a YAML mapping of "
                                  f"clusters, contexts and users): {found}")


def _missing(paths: str) -> str | None:
    """Why none of the `:`-separated kubeconfig paths is a file (kubectl merges those), or
    None when one is."""
    if any(os.path.isfile(p) for p in paths.split(os.pathsep) if p):
        return None
    return "a directory" if os.path.isdir(paths) else "no such file"


class KubeconfigError(ValueError):
    """No usable connection to a Kubernetes API: the message names the file and the fault."""


async def disconnect(api: ApiClient) -> None:
    """Close the client's connection pool (the client owns an aiohttp session)."""
    await api.close()
