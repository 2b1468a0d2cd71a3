"""How a person reaches the app through the ingress gateway, from where they are."""

from __future__ import annotations

import shlex

from mesh import charts

LOCAL_PORT = 8080
GATEWAY_PORT = 80


def curl_loop(host: str, external: bool, app_name: str, kubectl_flags: str = "") -> str:
    """A shell loop of requests to the app that stops, with curl's error, when a request fails.

    `external`: `host` is the gateway's load balancer. Otherwise it is a name only resolvable
    inside the cluster, so the loop goes through a port-forward of the gateway's Service
    (stopped when the loop ends).
    """
    requests = (
        f"while curl -sS --max-time 5 -H {shlex.quote(f'Host: {app_name}')} http://{{}}/; do echo; sleep 0.2; done"
    )
    if external:
        return requests.format(host)
    kubectl = " ".join(["kubectl", *([kubectl_flags] if kubectl_flags else [])])
    forward = (
        f"{kubectl} -n {charts.ISTIO_NAMESPACE} port-forward svc/{charts.INGRESS_GATEWAY} {LOCAL_PORT}:{GATEWAY_PORT}"
    )
    local = requests.format(f"127.0.0.1:{LOCAL_PORT}")
    return f'({forward} >/dev/null & trap "kill $!" EXIT; sleep 2; {local})'
