"""The live Kubernetes adapters: the only package that imports kubernetes_asyncio.

`connect.py` builds the API client (in-cluster or kubeconfig), `cluster.py` implements the
`Cluster` port and `leases.py` the `LeaseStore` port over it; `errors.py` holds what callers
catch and needs no client library, so the simulator's adapters raise the same `KubeError`.
Import the modules themselves; this package re-exports nothing, so importing `errors` stays
free of kubernetes_asyncio.
"""
