"""Canary releases on Kubernetes as code: cluster, mesh, then the app and its split."""

import gc

import pulumi

from capacity.preflight import check_capacity
from infra import Cluster, ClusterArgs
from mesh import Mesh, MeshArgs
from mesh.access import curl_loop
from settings import EksCluster, load_settings
from workloads import CanaryApp, CanaryAppArgs

# A short run that makes little garbage in cycles: no collections while it declares the resources
# and loads the Kubernetes SDK modules they need (0.05-0.1 s of an update); on again at the end.
gc.disable()
settings = load_settings(pulumi.Config())
check_capacity(settings)  # before any resource: a stack that cannot fit its nodes changes nothing

cluster = Cluster("cluster", ClusterArgs(settings.cluster))
on_cluster = pulumi.ResourceOptions(providers={"kubernetes": cluster.provider})

on_eks = isinstance(settings.cluster, EksCluster)
mesh = Mesh("mesh", MeshArgs(settings.mesh, on_eks=on_eks, schedulable=cluster.schedulable), opts=on_cluster)
app = CanaryApp("app", CanaryAppArgs(settings.app, mesh, spread_over_zones=on_eks), opts=on_cluster)

pulumi.export("cluster_name", cluster.name)
pulumi.export("kubeconfig", cluster.kubeconfig)
pulumi.export("ingress_host", mesh.ingress_host)
pulumi.export("traffic_split", app.applied_split)
pulumi.export(
    "curl_loop",
    mesh.ingress_host.apply(
        lambda host: curl_loop(host, mesh.ingress_external, settings.app.name, cluster.kubectl_flags)
    ),
)
pulumi.export("dashboards", mesh.dashboards)
if mesh.grafana_admin_password is not None:
    pulumi.export("grafana_admin_password", mesh.grafana_admin_password)

# Last: what the program made (the SDKs' modules, the resources, their outputs) lives until the
# process exits. Frozen, it is left out of the collections the interpreter's exit runs, which
# otherwise traverse it all: 0.2-0.4 s of every update (docs/benchmarks.md).
gc.freeze()
gc.enable()
