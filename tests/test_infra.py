"""Cluster layer: the EKS stack as eksctl makes it, or nothing of AWS on an existing cluster."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import pytest

from infra.cluster import current_context
from infra.network import subnet_cidrs
from infra.preview import DRY_RUN_ONLY_MESSAGE, MANAGED_KINDS, PREVIEW_GROUP
from settings import declared_settings
from tests.harness import (
    EKS_CREATED_SECURITY_GROUP,
    EXISTING_CLUSTER,
    ZONES,
    ProgramRun,
    Registered,
    fake_outputs,
    is_secret,
    program_scope,
    run_program,
)

PROVIDER = "pulumi:providers:kubernetes"
RELEASE = "kubernetes:helm.sh/v3:Release"
# Not previewed by the group: Helm releases (Helm keeps its records in Secrets), Secrets
# (reading them is not a preview's business) and the preview objects themselves.
NOT_PREVIEWED = {
    RELEASE,
    "kubernetes:core/v1:Secret",
    "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicy",
    "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicyBinding",
    "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole",
    "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding",
}
DEFAULT_VPC_CIDR = declared_settings()["vpcCidr"]["default"]  # eksctl's range, declared in Pulumi.yaml


@pytest.fixture(scope=program_scope)
def eks_run() -> ProgramRun:
    return run_program({"canaryWeight": "10"})


def test_dedicated_vpc_has_public_and_private_subnets_in_two_zones(eks_run: ProgramRun) -> None:
    (vpc,) = eks_run.of_type("aws:ec2/vpc:Vpc")
    assert vpc.inputs["cidrBlock"] == DEFAULT_VPC_CIDR
    subnets = eks_run.of_type("aws:ec2/subnet:Subnet")
    public = [s for s in subnets if s.inputs["tags"].get("kubernetes.io/role/elb") == "1"]
    private = [s for s in subnets if s.inputs["tags"].get("kubernetes.io/role/internal-elb") == "1"]
    assert len(public) == len(private) == 2
    assert {s.inputs["availabilityZone"] for s in public} == set(ZONES[:2])
    assert all(s.inputs["mapPublicIpOnLaunch"] for s in public)
    assert not any(s.inputs.get("mapPublicIpOnLaunch") for s in private)
    assert len(eks_run.of_type("aws:ec2/natGateway:NatGateway")) == 1


def test_subnets_do_not_overlap() -> None:
    public, private = subnet_cidrs(DEFAULT_VPC_CIDR, 3)
    networks = [ipaddress.ip_network(cidr) for cidr in public + private]
    assert len(networks) == 6
    assert not any(a.overlaps(b) for i, a in enumerate(networks) for b in networks[i + 1 :])


def test_eks_cluster_uses_api_authentication_and_no_default_node_group(eks_run: ProgramRun) -> None:
    cluster = eks_run.named("cluster-eks")
    assert cluster.type == "eks:index:Cluster"
    assert cluster.inputs["name"] == "dev-cluster"
    assert cluster.inputs["version"] == "1.35"
    assert cluster.inputs["authenticationMode"] == "API"
    assert cluster.inputs["skipDefaultNodeGroup"] is True
    assert cluster.inputs["nodeAssociatePublicIpAddress"] is False
    assert len(cluster.inputs["privateSubnetIds"]) == len(cluster.inputs["publicSubnetIds"]) == 2


def test_managed_node_group_is_the_seeds_default_pool(eks_run: ProgramRun) -> None:
    nodes = eks_run.named("cluster-nodes")
    assert nodes.type == "eks:index:ManagedNodeGroup"
    assert nodes.inputs["nodeGroupName"] == "default-pool"
    assert nodes.inputs["instanceTypes"] == ["t3a.medium"]
    assert nodes.inputs["scalingConfig"] == {"desiredSize": 3, "minSize": 0, "maxSize": 4}
    assert nodes.inputs["cluster"] == f"<resource {eks_run.named('cluster-eks').urn}>"
    assert all(subnet.startswith("cluster-private-") for subnet in nodes.inputs["subnetIds"])
    policies = {
        r.inputs["policyArn"].rsplit("/", 1)[1]
        for r in eks_run.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    }
    assert policies == {"AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryReadOnly"}


def test_extra_admins_get_access_entries() -> None:
    arn = "arn:aws:iam::123456789012:role/platform-team"
    run = run_program({"clusterAdminArns": f'["{arn}"]'})
    entries = run.named("cluster-eks").inputs["accessEntries"]
    assert [entry["principalArn"] for entry in entries.values()] == [arn]


def test_viewers_get_the_preview_group_and_admins_keep_cluster_admin() -> None:
    """clusterViewerArns (e.g. the preview role) are mapped to our group, whose rights infra/preview.py declares."""
    admin, viewer = "arn:aws:iam::123456789012:role/platform-team", "arn:aws:iam::123456789012:role/canary-preview"
    run = run_program({"clusterAdminArns": f'["{admin}"]', "clusterViewerArns": f'["{viewer}"]'})
    entries = {entry["principalArn"]: entry for entry in run.named("cluster-eks").inputs["accessEntries"].values()}
    policies = {
        arn: [
            (association["policyArn"].rsplit("/", 1)[1], association["accessScope"]["type"])
            for association in entry.get("accessPolicies", {}).values()
        ]
        for arn, entry in entries.items()
    }
    # No EKS access policy for viewers: the group's RBAC is all they get.
    assert policies == {admin: [("AmazonEKSClusterAdminPolicy", "cluster")], viewer: []}
    assert entries[viewer]["kubernetesGroups"] == [PREVIEW_GROUP]
    assert not entries[admin].get("kubernetesGroups")


def preview_objects(run: ProgramRun) -> dict[str, Registered]:
    kinds = [
        "admissionregistration.k8s.io/v1:ValidatingAdmissionPolicy",
        "admissionregistration.k8s.io/v1:ValidatingAdmissionPolicyBinding",
        "rbac.authorization.k8s.io/v1:ClusterRole",
        "rbac.authorization.k8s.io/v1:ClusterRoleBinding",
    ]
    found = {kind.rsplit(":", 1)[1]: run.of_type(f"kubernetes:{kind}") for kind in kinds}
    assert all(len(objects) == 1 for objects in found.values()), found
    return {kind: objects[0] for kind, objects in found.items()}


@pytest.mark.parametrize("mode", ["eks", "existing"])
def test_the_preview_group_may_read_and_dry_run_writes_only(mode: str) -> None:
    run = run_program({} if mode == "eks" else EXISTING_CLUSTER)
    objects = preview_objects(run)
    (provider,) = run.of_type(PROVIDER)
    assert all(run.provider_of(o) == provider for o in objects.values())
    policy = objects["ValidatingAdmissionPolicy"].inputs["spec"]
    assert policy["failurePolicy"] == "Fail"
    assert policy["matchConditions"] == [
        {"name": "from-previewers", "expression": "'canary:previewers' in request.userInfo.groups"}
    ]
    assert policy["validations"] == [{"expression": "request.dryRun == true", "message": DRY_RUN_ONLY_MESSAGE}]
    (rule,) = policy["matchConstraints"]["resourceRules"]
    assert rule["operations"] == ["CREATE", "UPDATE", "DELETE", "CONNECT"]
    assert rule["apiGroups"] == rule["apiVersions"] == ["*"] and rule["resources"] == ["*/*"]
    binding = objects["ValidatingAdmissionPolicyBinding"].inputs["spec"]
    assert binding["validationActions"] == ["Deny"]
    assert run.depends_on(objects["ValidatingAdmissionPolicyBinding"], objects["ValidatingAdmissionPolicy"])
    # The role is granted only once the policy guarding it is bound.
    assert run.depends_on(objects["ClusterRole"], objects["ValidatingAdmissionPolicyBinding"])
    role_binding = objects["ClusterRoleBinding"].inputs
    assert role_binding["subjects"] == [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": PREVIEW_GROUP}
    ]
    role = objects["ClusterRole"]
    assert role_binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": fake_outputs(role.type, role.name, role.inputs)["metadata"]["name"],  # the name the provider gave it
    }
    rules = role.inputs["rules"]
    assert {(group, resource) for rule in rules for group in rule["apiGroups"] for resource in rule["resources"]} == {
        *((group, resource) for group, resources in MANAGED_KINDS.items() for resource in resources),
        ("apiextensions.k8s.io", "customresourcedefinitions"),
    }, "each kind under its own API group"
    verbs = {verb for rule in rules for verb in rule["verbs"]}
    assert verbs == {"get", "list", "watch", "create", "patch", "update"}, "never delete, escalate, impersonate"
    updates = [rule["resources"] for rule in rules if "update" in rule["verbs"]]
    assert updates == [["customresourcedefinitions"]], "update (a PUT) only where the provider dry-runs with one"
    assert not any("*" in rule["resources"] or "secrets" in rule["resources"] for rule in rules)


@pytest.mark.parametrize(
    "config",
    [{}, EXISTING_CLUSTER, {**EXISTING_CLUSTER, "trafficApi": "gateway-api"}],
    ids=["eks", "existing", "gateway-api"],
)
def test_the_preview_group_covers_every_kind_the_stack_manages(config: dict[str, str]) -> None:
    """A kind the program declares but the role omits would make every preview of it fail as forbidden."""
    run = run_program(config)
    granted = {(group, resource) for group, resources in MANAGED_KINDS.items() for resource in resources}
    declared = set()
    for resource in run.resources:
        if not resource.custom or not resource.type.startswith("kubernetes:") or resource.type in NOT_PREVIEWED:
            continue
        api_version, kind = resource.type.removeprefix("kubernetes:").split(":")
        group = api_version.split("/")[0]
        declared.add(("" if group == "core" else group, kind.removesuffix("Patch").lower() + "s"))
    assert declared, "the program declares Kubernetes objects"
    assert declared <= granted, declared - granted


def test_every_kubernetes_resource_uses_the_clusters_provider(eks_run: ProgramRun) -> None:
    (provider,) = eks_run.of_type(PROVIDER)
    assert provider.name == "cluster-k8s"
    assert eks_run.depends_on(provider, eks_run.named("cluster-eks")), (
        "the provider's kubeconfig comes from the cluster"
    )
    kubernetes = [r for r in eks_run.resources if r.type.startswith("kubernetes:")]
    assert len(kubernetes) >= 12
    for resource in kubernetes:
        assert eks_run.provider_of(resource).urn == provider.urn, resource.name


def test_mesh_waits_for_nodes_so_destroy_removes_the_load_balancer_first(eks_run: ProgramRun) -> None:
    """Destroy runs in reverse: whatever depends on the node group is deleted before it, the cluster and the VPC."""
    nodes, cluster = eks_run.named("cluster-nodes"), eks_run.named("cluster-eks")
    gateway = eks_run.named("istio-ingressgateway", RELEASE)
    load_balancer = eks_run.named("istio-ingressgateway", "kubernetes:core/v1:Service")
    assert eks_run.depends_on(gateway, nodes)
    assert eks_run.depends_on(load_balancer, nodes) and eks_run.depends_on(load_balancer, gateway)
    assert eks_run.depends_on(nodes, cluster)
    assert eks_run.depends_on(cluster, eks_run.of_type("aws:ec2/subnet:Subnet")[0])
    for release in eks_run.of_type("kubernetes:helm.sh/v3:Release"):
        assert eks_run.depends_on(release, nodes), release.name


def test_existing_vpc_is_used_as_is() -> None:
    run = run_program(
        {
            "vpcId": "vpc-0123abcd",
            "publicSubnetIds": '["subnet-0000000a", "subnet-0000000b"]',
            "privateSubnetIds": '["subnet-0000000c", "subnet-0000000d"]',
        }
    )
    assert not [r for r in run.resources if r.type.startswith(("aws:ec2/vpc", "aws:ec2/subnet", "aws:ec2/natGateway"))]
    cluster = run.named("cluster-eks").inputs
    assert cluster["vpcId"] == "vpc-0123abcd"
    assert cluster["privateSubnetIds"] == ["subnet-0000000c", "subnet-0000000d"]


def test_existing_cluster_declares_no_aws_resource() -> None:
    run = run_program(EXISTING_CLUSTER)
    assert not [r for r in run.resources if r.type.startswith(("aws:", "eks:"))]
    assert run.invokes == []
    (provider,) = run.of_type(PROVIDER)
    assert provider.inputs["kubeconfig"] == "/tmp/kubeconfig.yaml"
    assert provider.inputs["context"] == "kind-canary"
    for resource in run.resources:
        if resource.type.startswith("kubernetes:"):
            assert run.provider_of(resource).urn == provider.urn, resource.name


def test_stack_outputs(eks_run: ProgramRun) -> None:
    module = eks_run.module
    assert eks_run.output(module["cluster"].name) == "dev-cluster"
    kubeconfig = module["cluster"].kubeconfig
    assert is_secret(kubeconfig)
    assert module["app"].traffic_split == {"v1": 90, "v2": 10}
    curl = eks_run.output(module["mesh"].ingress_host.apply(lambda host: host))
    assert curl == "canary-nlb.elb.example.test"


def test_secrets_are_envelope_encrypted_and_service_accounts_can_assume_roles(eks_run: ProgramRun) -> None:
    (key,) = eks_run.of_type("aws:kms/key:Key")
    assert key.inputs["enableKeyRotation"] is True
    cluster = eks_run.named("cluster-eks")
    assert cluster.inputs["encryptionConfigKeyArn"] == f"arn:aws:mock:::{key.name}"
    assert cluster.inputs["createOidcProvider"] is True


def test_control_plane_reaches_istiods_webhook_before_the_mesh_is_installed(eks_run: ProgramRun) -> None:
    (rule,) = eks_run.of_type("aws:ec2/securityGroupRule:SecurityGroupRule")
    assert (rule.inputs["type"], rule.inputs["protocol"], rule.inputs["fromPort"], rule.inputs["toPort"]) == (
        "ingress",
        "tcp",
        15017,
        15017,
    )
    assert rule.inputs["securityGroupId"] == EKS_CREATED_SECURITY_GROUP, "the group EKS puts on managed nodes"
    assert rule.inputs["sourceSecurityGroupId"] == "sg-0control0plane0"
    assert "aws:eks/getCluster:getCluster" in eks_run.invokes
    # On AWS the lookup fails until the cluster exists: it waits for the cluster, not only for its name.
    registered_first = eks_run.resources[: eks_run.invoked_after["aws:eks/getCluster:getCluster"]]
    assert "eks:index:Cluster" in [resource.type for resource in registered_first]
    assert eks_run.depends_on(eks_run.named("istiod", "kubernetes:helm.sh/v3:Release"), rule)


def test_prefix_delegation_reaches_the_vpc_cni_and_the_preflight() -> None:
    from capacity.plan import plan_capacity
    from settings import load_settings
    from tests.harness import DictConfig, describe

    run = run_program({"vpcCniPrefixDelegation": "true"})
    assert run.named("cluster-eks").inputs["vpcCniOptions"]["enablePrefixDelegation"] is True
    plan = plan_capacity(load_settings(DictConfig({"vpcCniPrefixDelegation": "true"})), describe("t3a.medium"))
    assert plan is not None and plan.node.max_pods == 110


def test_the_cluster_component_exposes_its_children(eks_run: ProgramRun) -> None:
    cluster = eks_run.module["cluster"]
    assert eks_run.output(cluster.eks_cluster.urn) == eks_run.named("cluster-eks").urn
    assert eks_run.output(cluster.node_group.urn) == eks_run.named("cluster-nodes").urn
    assert eks_run.output(cluster.network.vpc_id) == "cluster-vpc-id"
    assert [eks_run.output(subnet) for subnet in cluster.network.private_subnet_ids] == [
        f"cluster-private-{zone}-id" for zone in ZONES[:2]
    ]
    existing = run_program(EXISTING_CLUSTER).module["cluster"]
    assert (existing.eks_cluster, existing.node_group, existing.network) == (None, None, None)


def test_existing_cluster_mode_loads_only_the_sdks_it_uses() -> None:
    """Loading them is time every `pulumi up` of a weight change would spend for nothing (docs/benchmarks.md)."""
    import subprocess
    import sys

    from tests.harness import PROJECT_DIR

    sdks = ("pulumi_aws", "pulumi_eks", "pulumi_random", "pulumi_kubernetes.helm.v3")
    loaded = f"sorted({{m for m in sys.modules if m in {sdks}}})"
    bare = {**EXISTING_CLUSTER, "installIstio": "false", "prometheus": "false", "grafana": "false", "kiali": "false"}
    script = (
        "import sys\n"
        "from tests.harness import EXISTING_CLUSTER, run_program\n"
        f"run_program({bare}); print({loaded})\n"
        f"run_program(EXISTING_CLUSTER); print({loaded})\n"
        f"run_program({{}}); print({loaded})\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT_DIR, capture_output=True, text=True, check=True, timeout=300
    )
    local, existing, eks = result.stdout.splitlines()[-3:]
    assert local == "[]", "the local stack of scripts/try-local: no chart, no Grafana"
    assert existing == "['pulumi_kubernetes.helm.v3', 'pulumi_random']"
    assert eks == "['pulumi_aws', 'pulumi_eks', 'pulumi_kubernetes.helm.v3', 'pulumi_random']", (
        "the checks above are meaningful"
    )


def test_the_program_freezes_what_it_made_so_the_interpreter_exits_fast() -> None:
    """Without it the exit's garbage collections go over every SDK class and resource: 0.2-0.4 s of each update."""
    run = run_program(EXISTING_CLUSTER)
    assert run.frozen > 0
    assert run.collecting, "on again for what the SDK does after the program's body"


def test_the_eks_cluster_inputs_in_full() -> None:
    admin = "arn:aws:iam::123456789012:role/platform-team"
    run = run_program({"apiAccessCidrs": '["0.0.0.0/0"]', "clusterAdminArns": f'["{admin}"]'})
    assert run.named("cluster-eks").inputs == {
        "name": "dev-cluster",
        "version": "1.35",
        "vpcId": "cluster-vpc-id",
        "publicSubnetIds": ["cluster-public-us-east-1a-id", "cluster-public-us-east-1b-id"],
        "privateSubnetIds": ["cluster-private-us-east-1a-id", "cluster-private-us-east-1b-id"],
        "nodeAssociatePublicIpAddress": False,
        "skipDefaultNodeGroup": True,
        "authenticationMode": "API",
        "accessEntries": {
            "admin-0": {
                "principalArn": admin,
                "accessPolicies": {
                    "cluster-admin": {
                        "policyArn": "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy",
                        "accessScope": {"type": "cluster"},
                    }
                },
            }
        },
        "enabledClusterLogTypes": ["api", "audit", "authenticator"],
        "encryptionConfigKeyArn": "arn:aws:mock:::cluster-secrets",
        "createOidcProvider": True,
        "vpcCniOptions": {
            "enablePrefixDelegation": False,
            "resolveConflictsOnCreate": "OVERWRITE",
            "resolveConflictsOnUpdate": "OVERWRITE",
        },
        "endpointPrivateAccess": True,
        "endpointPublicAccess": True,
        "publicAccessCidrs": ["0.0.0.0/0"],
        "clusterTags": {"canary-public-endpoint": "open-to-world-by-stack-config"},
    }
    private = run_program({}).named("cluster-eks").inputs
    assert private["endpointPublicAccess"] is False and private["accessEntries"] == {}
    assert "publicAccessCidrs" not in private and "clusterTags" not in private


def test_the_world_open_endpoint_is_warned_about(monkeypatch: pytest.MonkeyPatch) -> None:
    said: list[str] = []
    monkeypatch.setattr("infra.cluster.pulumi.log.warn", lambda message, *args, **kwargs: said.append(message))
    run_program({"apiAccessCidrs": '["203.0.113.0/24"]'})
    assert not any("apiAccessCidrs" in message for message in said)
    run_program({"apiAccessCidrs": '["203.0.113.0/24", "0.0.0.0/0"]'})
    assert "apiAccessCidrs includes 0.0.0.0/0: the EKS API endpoint is reachable from anywhere" in said


def test_the_nodes_role_trusts_ec2_and_carries_the_three_policies(eks_run: ProgramRun) -> None:
    import json

    role = eks_run.named("cluster-node-role")
    assert json.loads(role.inputs["assumeRolePolicy"]) == {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
    }
    attachments = {r.name: r.inputs for r in eks_run.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")}
    assert attachments == {
        "cluster-node-worker": {
            "role": "cluster-node-role",
            "policyArn": "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
        },
        "cluster-node-cni": {"role": "cluster-node-role", "policyArn": "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy"},
        "cluster-node-registry": {
            "role": "cluster-node-role",
            "policyArn": "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly",
        },
    }
    nodes = eks_run.named("cluster-nodes")
    assert nodes.inputs["nodeRole"] == f"<resource {role.urn}>"
    for attachment in eks_run.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment"):
        assert eks_run.depends_on(nodes, attachment), "nodes join only once their role may"
    key = eks_run.named("cluster-secrets").inputs
    assert key == {
        "description": "Envelope encryption of Kubernetes Secrets in EKS cluster dev-cluster",
        "enableKeyRotation": True,
        "deletionWindowInDays": 7,
    }
    rule = eks_run.named("cluster-istiod-webhook").inputs
    assert rule["description"] == "EKS control plane to istiod's sidecar injection webhook"


def test_the_dedicated_vpc_in_full(eks_run: ProgramRun) -> None:
    owned = {"kubernetes.io/cluster/dev-cluster": "shared"}
    assert eks_run.named("cluster-vpc").inputs == {
        "cidrBlock": "192.168.0.0/16",
        "enableDnsHostnames": True,
        "enableDnsSupport": True,
        "tags": {"Name": "dev-cluster-vpc", **owned},
    }
    assert eks_run.named("cluster-igw").inputs == {"vpcId": "cluster-vpc-id"}
    assert eks_run.named("cluster-nat", "aws:ec2/eip:Eip").inputs == {"domain": "vpc"}
    nat = eks_run.named("cluster-nat", "aws:ec2/natGateway:NatGateway")
    assert nat.inputs == {"subnetId": "cluster-public-us-east-1a-id", "allocationId": "cluster-nat-id"}
    assert eks_run.depends_on(nat, eks_run.named("cluster-igw"))
    assert eks_run.named("cluster-public", "aws:ec2/routeTable:RouteTable").inputs == {
        "vpcId": "cluster-vpc-id",
        "routes": [{"cidrBlock": "0.0.0.0/0", "gatewayId": "cluster-igw-id"}],
    }
    assert eks_run.named("cluster-private", "aws:ec2/routeTable:RouteTable").inputs == {
        "vpcId": "cluster-vpc-id",
        "routes": [{"cidrBlock": "0.0.0.0/0", "natGatewayId": "cluster-nat-id"}],
    }
    subnets = {r.name: r.inputs for r in eks_run.of_type("aws:ec2/subnet:Subnet")}
    assert subnets["cluster-private-us-east-1b"] == {
        "vpcId": "cluster-vpc-id",
        "cidrBlock": "192.168.96.0/19",
        "availabilityZone": "us-east-1b",
        "mapPublicIpOnLaunch": False,
        "tags": {"Name": "dev-cluster-private-us-east-1b", "kubernetes.io/role/internal-elb": "1", **owned},
    }
    assert subnets["cluster-public-us-east-1a"]["tags"] == {
        "Name": "dev-cluster-public-us-east-1a",
        "kubernetes.io/role/elb": "1",
        **owned,
    }
    associations = {
        r.name: (r.inputs["subnetId"], r.inputs["routeTableId"])
        for r in eks_run.of_type("aws:ec2/routeTableAssociation:RouteTableAssociation")
    }
    assert associations == {
        f"cluster-{tier}-{zone}": (f"cluster-{tier}-{zone}-id", f"cluster-{tier}-id")
        for tier in ("public", "private")
        for zone in ZONES[:2]
    }
    assert eks_run.invokes.count("aws:index/getAvailabilityZones:getAvailabilityZones") == 1


@pytest.mark.parametrize(("cidr", "zones"), [("10.0.0.0/16", 2), ("10.8.0.0/20", 4)])
def test_subnets_cut_the_vpc_in_eight_public_first(cidr: str, zones: int) -> None:
    public, private = subnet_cidrs(cidr, zones)
    blocks = [str(block) for block in ipaddress.ip_network(cidr).subnets(prefixlen_diff=3)]
    assert (public, private) == (blocks[:zones], blocks[zones : 2 * zones])


def test_more_zones_than_the_region_has_is_one_clear_error() -> None:
    with pytest.raises(Exception, match=r"availabilityZoneCount = 6: this region has only 4 zones"):
        run_program({"availabilityZoneCount": "6"})


def test_only_available_zones_count_and_get_subnets() -> None:
    """The region's fifth zone is impaired: asking for five is refused, not given a subnet there."""
    with pytest.raises(Exception, match=r"availabilityZoneCount = 5: this region has only 4 zones"):
        run_program({"availabilityZoneCount": "5"})


def test_as_many_zones_as_the_region_has_available_are_all_used() -> None:
    run = run_program({"availabilityZoneCount": "4"})
    zones = {subnet.inputs["availabilityZone"] for subnet in run.of_type("aws:ec2/subnet:Subnet")}
    assert zones == {"us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d"}


def test_existing_cluster_defaults_are_kubectls() -> None:
    run = run_program({"clusterMode": "existing"})
    (provider,) = run.of_type(PROVIDER)
    assert "kubeconfig" not in provider.inputs and "context" not in provider.inputs
    cluster = run.module["cluster"]
    assert run.output(cluster.kubeconfig) == "$KUBECONFIG or ~/.kube/config" and is_secret(cluster.kubeconfig)
    assert cluster.schedulable == []


@pytest.mark.parametrize("config", [{}, EXISTING_CLUSTER], ids=["eks", "existing"])
def test_every_resource_is_a_child_of_its_layers_component(config: dict[str, str]) -> None:
    run = run_program(config)
    components = {r.type: r.urn for r in run.resources if r.type.startswith("canary:")}
    assert components.keys() == {"canary:infra:Cluster", "canary:mesh:Mesh", "canary:workloads:CanaryApp"}
    assert all("::pulumi:pulumi:Stack::" in run.by_urn(urn).parent for urn in components.values())
    layer = {
        "aws:": "canary:infra:Cluster",
        "eks:": "canary:infra:Cluster",
        "pulumi:providers:": "canary:infra:Cluster",
    }
    for resource in run.resources:
        if resource.type.startswith("canary:"):
            continue
        expected = next((c for prefix, c in layer.items() if resource.type.startswith(prefix)), None)
        if expected is not None:
            assert resource.parent == components[expected], resource.name
        else:
            assert resource.parent in components.values(), resource.name


def test_the_current_context_is_read_as_kubectl_reads_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing, garbage, without, first, second = (tmp_path / name for name in ("missing", "garbage", "none", "a", "b"))
    garbage.write_text("current-context: [unclosed\n")
    without.write_text("apiVersion: v1\nkind: Config\n")
    first.write_text("current-context: first\n")
    second.write_text("current-context: second\n")
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.kube/config to fall back on
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join(str(p) for p in (missing, garbage, without, first, second)))
    assert current_context(None) == "first", "files that are missing, unreadable or set none are skipped"
    assert current_context(str(second)) == "second", "a path given wins over $KUBECONFIG"
    assert current_context("current-context: inline\nkind: Config\n") == "inline", "contents given as YAML"
    assert current_context('{"current-context": "json"}') == "json", "contents given as JSON, on one line"
    assert current_context('  {"current-context": "indented"}') == "indented", "JSON after spaces"
    monkeypatch.delenv("KUBECONFIG")
    assert current_context(None) is None
    (tmp_path / ".kube").mkdir()
    (tmp_path / ".kube" / "config").write_text("current-context: home\n")
    assert current_context(None) == "home"
