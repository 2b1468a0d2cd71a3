"""rollout/deployed.py on states the program does not write itself: objects changed by hand or by another tool.

`canary` reads what is served from the stack's state after a failed update and before each verdict;
a VirtualService or HTTPRoute edited elsewhere must still be read as Istio or the Gateway API would
serve it (their defaults, not ours).
"""

from __future__ import annotations

from typing import Any

from rollout.deployed import HTTP_ROUTE, VIRTUAL_SERVICE, Served, deployed_config, served_by

ANNOTATIONS = {"canary/stable-version": "v1", "canary/canary-version": "v2"}


def virtual_service(http: list[dict[str, Any]], annotations: dict[str, str] | None = None) -> dict[str, Any]:
    metadata = {"name": "nginx-virtual-svc", "annotations": ANNOTATIONS if annotations is None else annotations}
    return {"type": VIRTUAL_SERVICE, "outputs": {"metadata": metadata, "spec": {"hosts": ["nginx"], "http": http}}}


def http_route(rules: list[dict[str, Any]]) -> dict[str, Any]:
    spec = {"parentRefs": [{"kind": "Service", "name": "nginx"}], "rules": rules}
    return {"type": HTTP_ROUTE, "outputs": {"metadata": {"annotations": ANNOTATIONS}, "spec": spec}}


def route(subset: str, weight: int | None = None) -> dict[str, Any]:
    destination: dict[str, Any] = {"destination": {"host": "nginx", "subset": subset}}
    return destination if weight is None else {**destination, "weight": weight}


def test_a_mirror_without_a_percentage_mirrors_every_request() -> None:
    mirrored = {"route": [route("v1", 90), route("v2", 10)], "mirror": {"host": "nginx", "subset": "v2"}}
    served = served_by([virtual_service([mirrored])])
    assert served == Served({"v1": 90, "v2": 10}, "v1", "v2", None, 100)
    backends = [{"name": "nginx-v1", "weight": 90}, {"name": "nginx-v2", "weight": 10}]
    mirror = {"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "nginx-v2"}}}
    assert served_by([http_route([{"backendRefs": backends, "filters": [mirror]}])]) == served


def test_a_route_without_mirror_or_header_serves_only_its_split() -> None:
    backends = [{"name": "nginx-v1", "weight": 75}, {"name": "nginx-v2", "weight": 25}]
    assert served_by([http_route([{"backendRefs": backends}])]) == Served({"v1": 75, "v2": 25}, "v1", "v2")
    assert served_by([virtual_service([{"route": [route("v1", 75), route("v2", 25)]}])]) == Served(
        {"v1": 75, "v2": 25}, "v1", "v2"
    )


def test_a_virtual_service_with_only_a_header_route_serves_no_split_and_no_mirror() -> None:
    header_only = {"match": [{"headers": {"x-canary": {"exact": "on"}}}], "route": [route("v2", 100)]}
    served = served_by([virtual_service([header_only])])
    assert served == Served({}, "v1", "v2", header="x-canary")
    assert served is not None and served.mirror_percent == 0


def test_an_http_route_with_only_a_header_rule_serves_no_split_and_no_mirror() -> None:
    header_only = {
        "matches": [{"headers": [{"name": "x-canary", "value": "on"}]}],
        "backendRefs": [{"name": "nginx-v2"}],
    }
    served = served_by([http_route([header_only])])
    assert served == Served({}, "v1", "v2", header="x-canary")
    assert served is not None and served.mirror_percent == 0


def test_a_lone_destination_takes_every_request_and_a_weightless_one_beside_others_none() -> None:
    assert served_by([virtual_service([{"route": [route("v1")]}])]) == Served({"v1": 100}, "v1", "v2")
    assert served_by([virtual_service([{"route": [route("v1", 100), route("v2")]}])]) == Served(
        {"v1": 100, "v2": 0}, "v1", "v2"
    )
    assert served_by([http_route([{"backendRefs": [{"name": "nginx-v1"}]}])]) == Served({"v1": 100}, "v1", "v2")


def test_a_lone_virtual_service_destination_takes_every_request_whatever_its_weight() -> None:
    assert served_by([virtual_service([{"route": [route("v2", 30)]}])]) == Served({"v2": 100}, "v1", "v2")


def test_an_http_route_backend_without_a_weight_weighs_1_as_the_gateway_api_says() -> None:
    """A hand-edited route: the Gateway API's default weight is 1 and shares are proportional."""
    beside = [{"name": "nginx-v1", "weight": 3}, {"name": "nginx-v2"}]
    assert served_by([http_route([{"backendRefs": beside}])]) == Served({"v1": 75, "v2": 25}, "v1", "v2")
    neither = [{"name": "nginx-v1"}, {"name": "nginx-v2"}]
    assert served_by([http_route([{"backendRefs": neither}])]) == Served({"v1": 50, "v2": 50}, "v1", "v2")


def test_a_weight_0_backend_gets_nothing_even_alone() -> None:
    lone_zero = [{"name": "nginx-v2", "weight": 0}]
    assert served_by([http_route([{"backendRefs": lone_zero}])]) == Served({"v2": 0}, "v1", "v2")
    lone_five = [{"name": "nginx-v2", "weight": 5}]
    assert served_by([http_route([{"backendRefs": lone_five}])]) == Served({"v2": 100}, "v1", "v2")
    all_zero = [{"name": "nginx-v1", "weight": 0}, {"name": "nginx-v2", "weight": 0}]
    assert served_by([http_route([{"backendRefs": all_zero}])]) == Served({"v1": 0, "v2": 0}, "v1", "v2")


def test_weights_that_do_not_sum_to_100_are_read_as_proportions() -> None:
    """Istio and the Gateway API both send weight / sum of weights of the requests to a destination."""
    assert served_by([virtual_service([{"route": [route("v1", 1), route("v2", 3)]}])]) == Served(
        {"v1": 25, "v2": 75}, "v1", "v2"
    )
    backends = [{"name": "nginx-v1", "weight": 2}, {"name": "nginx-v2", "weight": 1}]
    assert served_by([http_route([{"backendRefs": backends}])]) == Served({"v1": 67, "v2": 33}, "v1", "v2")


def test_without_the_programs_annotations_the_versions_are_unknown_not_none() -> None:
    served = served_by([virtual_service([{"route": [route("v1", 100)]}], annotations={})])
    assert served is not None and (served.stable, served.canary) == ("", "")
    route_without = http_route([{"backendRefs": [{"name": "nginx-v1", "weight": 100}]}])
    route_without["outputs"]["metadata"]["annotations"] = {}
    served = served_by([route_without])
    assert served is not None and (served.stable, served.canary) == ("", "")
    assert deployed_config([virtual_service([{"route": [route("v1", 100)]}], annotations={})])["canaryVersion"] == ""


def test_the_deployed_config_names_the_roles_versions() -> None:
    config = deployed_config([virtual_service([{"route": [route("v1", 60), route("v2", 40)]}])])
    assert config == {
        "canaryWeight": "40",
        "canaryHeaderName": "",
        "mirrorPercent": "0",
        "stableVersion": "v1",
        "canaryVersion": "v2",
    }


def test_a_deleted_route_is_not_what_is_served() -> None:
    """A resource the state marks for deletion (replaced by a new one) is not the live route."""
    old = {**virtual_service([{"route": [route("v1", 10), route("v2", 90)]}]), "delete": True}
    live = virtual_service([{"route": [route("v1", 80), route("v2", 20)]}])
    served = served_by([old, live])
    assert served is not None and served.split == {"v1": 80, "v2": 20}


def deployment(name: str, replicas: float, image: str) -> dict[str, Any]:
    spec = {"replicas": replicas, "template": {"spec": {"containers": [{"name": "nginx", "image": image}]}}}
    return {"type": "kubernetes:apps/v1:Deployment", "outputs": {"metadata": {"name": name}, "spec": spec}}


def test_each_roles_replicas_and_image_are_read_from_its_deployment() -> None:
    split = virtual_service([{"route": [route("v1", 60), route("v2", 40)]}])
    stable, canary = deployment("nginx-v1", 3.0, "nginx:1"), deployment("nginx-v2", 1, "nginx:2")
    roles = {
        key: value
        for key, value in deployed_config([split, stable, canary]).items()
        if key.endswith(("Replicas", "Image"))
    }
    assert roles == {
        "stableReplicas": "3",
        "stableImage": "nginx:1",
        "canaryReplicas": "1",
        "canaryImage": "nginx:2",
    }
    without_stable = deployed_config([split, canary])
    assert "stableImage" not in without_stable and without_stable["canaryImage"] == "nginx:2"


def test_a_deployment_or_virtual_service_without_the_listed_parts_tells_nothing_of_them() -> None:
    """A resource the state holds half-written (a failed create) or edited by hand: no containers, no hosts."""
    split = virtual_service([{"route": [route("v1", 60), route("v2", 40)]}])
    no_containers = deployment("nginx-v1", 3, "nginx:1")
    no_containers["outputs"]["spec"]["template"]["spec"]["containers"] = []
    config = deployed_config([split, no_containers, deployment("nginx-v2", 1, "nginx:2")])
    assert "stableImage" not in config and (config["stableReplicas"], config["canaryImage"]) == ("3", "nginx:2")
    no_hosts = virtual_service([{"route": [route("v1", 60), route("v2", 40)]}])
    no_hosts["outputs"]["spec"]["hosts"] = []
    assert "canaryImage" not in deployed_config([no_hosts, deployment("nginx-v2", 1, "nginx:2")])
    a_map_of_hosts = virtual_service([{"route": [route("v1", 60), route("v2", 40)]}])
    a_map_of_hosts["outputs"]["spec"]["hosts"] = {"0": "nginx"}  # not a list: no first host
    assert "canaryImage" not in deployed_config([a_map_of_hosts, deployment("nginx-v2", 1, "nginx:2")])


def test_a_route_matching_other_than_headers_is_no_header_route() -> None:
    by_path = {"match": [{"uri": {"prefix": "/beta"}}], "route": [route("v2", 100)]}
    served = served_by([virtual_service([by_path, {"route": [route("v1", 70), route("v2", 30)]}])])
    assert served == Served({"v1": 70, "v2": 30}, "v1", "v2", header=None)
