"""What the mesh runs on the nodes, read from the very chart values it installs.

capacity/ adds this up with the other layers' footprints; a unit test holds these numbers
against the pinned charts' own values, so the plan cannot drift from what is installed.
"""

from __future__ import annotations

from capacity.footprint import Footprint, requests_of
from mesh import charts
from settings import MeshSettings

ISTIO_ELSEWHERE = "installIstio = false: installed outside the stack, same nodes"


def footprint(settings: MeshSettings, on_eks: bool) -> list[Footprint]:
    """istiod, the ingress gateway, the CNI agent on every node, the addons, and the sidecar of injected pods
    (in ambient mode: ztunnel on every node and the app namespace's waypoint instead).

    With installIstio = false, Istio is counted as this stack would install it: in EKS mode the
    node group is the cluster's only one, so Istio runs on it however it is installed."""
    mode = settings.dataplane_mode
    istiod = charts.istiod_values(on_eks, mode)
    gateway = charts.gateway_values(on_eks)
    note = "" if settings.install_istio else ISTIO_ELSEWHERE
    items = [
        *(
            [
                Footprint("ztunnel", 0, requests_of(charts.ztunnel_values()["resources"]), per_node=True),
                Footprint("waypoint", 1, requests_of(istiod["global"]["waypoint"]["resources"]), "the app's L7 proxy"),
            ]
            if mode == "ambient"
            else [Footprint("istio-proxy", 0, requests_of(istiod["global"]["proxy"]["resources"]), sidecar=True)]
        ),
        Footprint(
            "istiod", istiod.get("replicaCount", charts.CHART_REPLICAS), requests_of(istiod["resources"]), note=note
        ),
        Footprint(
            charts.INGRESS_GATEWAY,
            gateway.get("autoscaling", {}).get("minReplicas", charts.CHART_REPLICAS),
            requests_of(gateway["resources"]),
            note=note,
        ),
    ]
    if settings.install_istio:  # an Istio installed elsewhere may not use the CNI node agent
        items.append(Footprint("istio-cni", 0, requests_of(charts.cni_values(mode)["resources"]), per_node=True))
    addons = settings.addons
    if addons.prometheus:
        values = charts.prometheus_values()
        reload = values.get("configmapReload", {}).get("prometheus", {}).get("resources")
        pod = requests_of(values["server"]["resources"]) + requests_of(reload)
        items.append(Footprint("prometheus", 1, pod, setting="prometheus"))
    if addons.grafana:
        values = charts.grafana_values(settings.istio_version)
        items.append(Footprint("grafana", 1, requests_of(values["resources"]), setting="grafana"))
    if addons.kiali:
        values = charts.kiali_values(addons.grafana)
        items.append(Footprint("kiali", 1, requests_of(values["deployment"]["resources"]), setting="kiali"))
    return items
