"""The cluster layer: an EKS cluster in its VPC, or an existing cluster from a kubeconfig.

Either way it hands the other layers one Kubernetes provider and the resources that must
exist before anything is scheduled (the node group), so they never depend on which.
"""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pulumi
import pulumi_kubernetes as k8s
import yaml

from infra.preview import PREVIEW_GROUP, declare_preview_access
from settings import EksCluster, ExistingCluster

if TYPE_CHECKING:
    import pulumi_aws as aws
    import pulumi_eks as eks

    from infra.network import Network

NODE_POLICIES = {
    "worker": "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
    "cni": "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy",
    "registry": "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly",
}
CLUSTER_ADMIN_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
CONTROL_PLANE_LOGS = ["api", "audit", "authenticator"]
ISTIOD_WEBHOOK_PORT = 15017
PUBLIC_ENDPOINT_TAG = "canary-public-endpoint"
PUBLIC_ENDPOINT_EXPLICIT = "open-to-world-by-stack-config"


@dataclass(frozen=True)
class ClusterArgs:
    settings: EksCluster | ExistingCluster


def is_kubeconfig_contents(kubeconfig: str) -> bool:
    """The kubeconfig setting holds the file's contents (YAML over lines, or JSON), not a path to it."""
    return "\n" in kubeconfig or kubeconfig.lstrip().startswith("{")


def current_context(kubeconfig: str | None) -> str | None:
    """The context a kubeconfig selects (a path or its contents; None: $KUBECONFIG's files, else ~/.kube/config),
    as kubectl and the Kubernetes provider read it: the first file's that sets one."""
    if kubeconfig is not None and is_kubeconfig_contents(kubeconfig):
        texts = [kubeconfig]
    else:
        paths = [kubeconfig] if kubeconfig else [p for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
        texts = []
        for path in paths or ["~/.kube/config"]:
            try:
                texts.append(Path(path).expanduser().read_text())
            except OSError:
                continue
    for text in texts:
        try:
            config = yaml.safe_load(text)
        except yaml.YAMLError:
            continue
        if isinstance(config, dict) and config.get("current-context"):
            return str(config["current-context"])
    return None


class Cluster(pulumi.ComponentResource):
    """`canary:infra:Cluster`: where the mesh and the app run."""

    provider: k8s.Provider
    name: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]
    kubectl_flags: str = ""
    """What kubectl needs to reach this cluster, beyond the user's own kubeconfig ("" on EKS)."""
    schedulable: list[pulumi.Resource]
    """Resources that must exist before pods can run, and outlive them on destroy."""

    def __init__(self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("canary:infra:Cluster", name, None, opts)
        # The EKS children (None in existing-cluster mode), annotated here rather than on the
        # class: Pulumi resolves a resource class's annotations, and these SDKs load lazily.
        self.eks_cluster: eks.Cluster | None = None
        self.node_group: eks.ManagedNodeGroup | None = None
        self.network: Network | None = None
        if isinstance(args.settings, EksCluster):
            self._eks(name, args.settings)
        else:
            self._existing(name, args.settings)
        declare_preview_access(name, self, self.provider)
        self.register_outputs({"name": self.name, "kubeconfig": self.kubeconfig})

    def _existing(self, name: str, settings: ExistingCluster) -> None:
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=settings.kubeconfig,
            context=settings.context,
            opts=pulumi.ResourceOptions(parent=self),
        )
        if settings.ignored:
            pulumi.log.warn(
                f"clusterMode is existing: {', '.join(settings.ignored)} only apply to the EKS cluster "
                "clusterMode eks creates and are ignored here (`pulumi config rm` them)",
                self,
            )
        context = settings.context or current_context(settings.kubeconfig)
        self.name = pulumi.Output.from_input(context or "(no current context in the kubeconfig at deploy time)")
        flags = []
        if settings.kubeconfig is not None and not is_kubeconfig_contents(settings.kubeconfig):  # kubectl takes a path
            flags.append(f"--kubeconfig {shlex.quote(settings.kubeconfig)}")
        if context is not None:
            flags.append(f"--context {shlex.quote(context)}")
        self.kubectl_flags = " ".join(flags)
        self.kubeconfig = pulumi.Output.secret(settings.kubeconfig or "$KUBECONFIG or ~/.kube/config")
        self.schedulable = []

    def _eks(self, name: str, settings: EksCluster) -> None:
        # Imported only here: existing-cluster mode declares nothing of AWS, and loading these
        # SDKs would slow every `pulumi up` of a weight change (docs/benchmarks.md).
        import pulumi_aws as aws
        import pulumi_eks as eks

        child = pulumi.ResourceOptions(parent=self)
        if settings.api_open_to_world:
            pulumi.log.warn("apiAccessCidrs includes 0.0.0.0/0: the EKS API endpoint is reachable from anywhere")
        network = self.network = self._network(name, settings)
        node_role = aws.iam.Role(
            f"{name}-node-role",
            assume_role_policy=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}
                    ],
                }
            ),
            opts=child,
        )
        attachments = [
            aws.iam.RolePolicyAttachment(f"{name}-node-{purpose}", role=node_role.name, policy_arn=arn, opts=child)
            for purpose, arn in NODE_POLICIES.items()
        ]
        # The deployer gets cluster-admin from EKS itself when the cluster is created
        # (bootstrapClusterCreatorAdminPermissions); an access entry for the same
        # principal would fail with ResourceInUse, so entries are for the others only.
        access_entries = {
            f"admin-{index}": eks.AccessEntryArgs(
                principal_arn=arn,
                access_policies={
                    "cluster-admin": eks.AccessPolicyAssociationArgs(
                        policy_arn=CLUSTER_ADMIN_POLICY,
                        access_scope=aws.eks.AccessPolicyAssociationAccessScopeArgs(type="cluster"),
                    )
                },
            )
            for index, arn in enumerate(settings.admin_arns)
        }
        # Viewers (e.g. the role previews run with, docs/github-setup.md) get our group and
        # no EKS access policy: what they may do is the RBAC and admission policy in
        # infra/preview.py, one definition for both cluster modes, tested on a real API server.
        # Entry names are part of the resources' names: renaming one replaces it.
        access_entries |= {
            f"viewer-{index}": eks.AccessEntryArgs(principal_arn=arn, kubernetes_groups=[PREVIEW_GROUP])
            for index, arn in enumerate(settings.viewer_arns)
        }
        secrets_key = aws.kms.Key(
            f"{name}-secrets",
            description=f"Envelope encryption of Kubernetes Secrets in EKS cluster {settings.name}",
            enable_key_rotation=True,
            deletion_window_in_days=7,
            opts=child,
        )
        cluster = self.eks_cluster = eks.Cluster(
            f"{name}-eks",
            name=settings.name,
            version=settings.kubernetes_version,
            vpc_id=network.vpc_id,
            public_subnet_ids=network.public_subnet_ids,
            private_subnet_ids=network.private_subnet_ids,
            node_associate_public_ip_address=False,
            skip_default_node_group=True,
            authentication_mode=eks.AuthenticationMode.API,
            access_entries=access_entries,
            enabled_cluster_log_types=CONTROL_PLANE_LOGS,
            encryption_config_key_arn=secrets_key.arn,
            # IAM roles for service accounts (IRSA) for add-ons that call AWS.
            create_oidc_provider=True,
            vpc_cni_options=eks.VpcCniOptionsArgs(enable_prefix_delegation=settings.prefix_delegation),
            endpoint_private_access=True,
            endpoint_public_access=bool(settings.api_access_cidrs),
            public_access_cidrs=list(settings.api_access_cidrs) or None,
            # Lets the policy pack tell an explicit choice from an oversight.
            cluster_tags={PUBLIC_ENDPOINT_TAG: PUBLIC_ENDPOINT_EXPLICIT} if settings.api_open_to_world else None,
            opts=child,
        )
        webhook_rule = self._istiod_webhook_rule(name, settings, cluster)
        # EKS's default update config replaces one node at a time (maxUnavailable 1);
        # pulumi-eks exposes no update_config, and none is needed.
        node_group = self.node_group = eks.ManagedNodeGroup(
            f"{name}-nodes",
            cluster=cluster,
            node_group_name=settings.node_group.name,
            node_role=node_role,
            instance_types=[settings.node_group.instance_type],
            subnet_ids=network.private_subnet_ids,
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(
                desired_size=settings.node_group.desired_count,
                min_size=settings.node_group.min_count,
                max_size=settings.node_group.max_count,
            ),
            # A resource reference input records no dependency; destroy must remove nodes before the cluster.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[cluster, *attachments]),
        )
        self.kubeconfig = pulumi.Output.secret(cluster.kubeconfig_json)
        # pulumi-eks v4 advises a provider of our own over cluster.provider.
        self.provider = k8s.Provider(f"{name}-k8s", kubeconfig=self.kubeconfig, opts=child)
        self.name = pulumi.Output.from_input(settings.name)
        self.schedulable = [node_group, webhook_rule]

    def _istiod_webhook_rule(self, name: str, settings: EksCluster, cluster: eks.Cluster) -> aws.ec2.SecurityGroupRule:
        """The control plane must reach istiod's injection webhook on the nodes (istio#46746)."""
        import pulumi_aws as aws

        # Managed nodes carry the security group EKS creates for the cluster.
        eks_created = aws.eks.get_cluster_output(
            name=settings.name, opts=pulumi.InvokeOutputOptions(parent=self, depends_on=[cluster])
        ).vpc_config.apply(lambda config: config.cluster_security_group_id)
        return aws.ec2.SecurityGroupRule(
            f"{name}-istiod-webhook",
            type="ingress",
            protocol="tcp",
            from_port=ISTIOD_WEBHOOK_PORT,
            to_port=ISTIOD_WEBHOOK_PORT,
            security_group_id=eks_created,
            source_security_group_id=cluster.cluster_security_group_id,
            description="EKS control plane to istiod's sidecar injection webhook",
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _network(self, name: str, settings: EksCluster) -> Network:
        from infra.network import Network, NetworkArgs, dedicated_vpc

        vpc = settings.vpc
        if vpc.vpc_id is not None:
            return Network(
                vpc_id=pulumi.Output.from_input(vpc.vpc_id),
                public_subnet_ids=[pulumi.Output.from_input(s) for s in vpc.public_subnet_ids],
                private_subnet_ids=[pulumi.Output.from_input(s) for s in vpc.private_subnet_ids],
            )
        return dedicated_vpc(name, NetworkArgs(settings.name, vpc), parent=self)
