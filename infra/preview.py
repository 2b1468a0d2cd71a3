"""What the preview identity may do in the cluster: read, and dry-run writes, nothing more.

The Kubernetes provider previews a change with a server-side dry run (an apply patch with
dryRun=All, pulumi-kubernetes' await/await.go), and Kubernetes authorizes a dry run like
the real request (pulumi-kubernetes#2213). So the group gets RBAC `patch` and `create`
(an apply patch of an object that does not exist yet is a create) on the kinds this
program manages, and an admission policy denies every request of that group that is not
a dry run: the rights can only ever be used for previews.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

PREVIEW_GROUP = "canary:previewers"
"""The Kubernetes group of the preview principals (clusterViewerArns' access entries map to it)."""

# The kinds this program declares, by API group: reading them and dry-running their
# changes is what a preview does. Secrets are left out on purpose: `get` on Secrets would
# let a branch's preview read every Secret of the cluster.
MANAGED_KINDS: dict[str, list[str]] = {
    "": ["namespaces", "configmaps", "services"],
    "apps": ["deployments"],
    "policy": ["poddisruptionbudgets"],
    "networking.istio.io": ["virtualservices", "destinationrules", "gateways"],
    "security.istio.io": ["peerauthentications"],
    "gateway.networking.k8s.io": ["gateways", "httproutes"],
}
PREVIEW_VERBS = ["get", "list", "watch", "create", "patch"]
# The Gateway API CRDs (trafficApi gateway-api with installIstio): the provider previews a
# CRD change as a dry-run PUT (`update`), not a patch (await.go).
CRD_RULE = (["apiextensions.k8s.io"], ["customresourcedefinitions"], [*PREVIEW_VERBS, "update"])
DRY_RUN_ONLY_MESSAGE = f"{PREVIEW_GROUP} may only dry-run changes (previews); this request is not a dry run"


def declare_preview_access(name: str, parent: pulumi.Resource, provider: k8s.Provider) -> None:
    """RBAC for PREVIEW_GROUP and the admission policy that keeps its writes dry runs.

    Cluster-scoped, auto-named (two stacks on one cluster do not collide); the policy and
    its binding come first so the role never grants anything the policy does not guard.
    """
    child = pulumi.ResourceOptions(parent=parent, provider=provider)
    policy = k8s.admissionregistration.v1.ValidatingAdmissionPolicy(
        f"{name}-previewers-dry-run-only",
        spec=k8s.admissionregistration.v1.ValidatingAdmissionPolicySpecArgs(
            failure_policy="Fail",  # a policy that cannot be evaluated denies
            match_constraints=k8s.admissionregistration.v1.MatchResourcesArgs(
                resource_rules=[
                    k8s.admissionregistration.v1.NamedRuleWithOperationsArgs(
                        api_groups=["*"],
                        api_versions=["*"],
                        operations=["CREATE", "UPDATE", "DELETE", "CONNECT"],
                        resources=["*/*"],  # every resource and subresource (status, scale, exec)
                    )
                ]
            ),
            match_conditions=[
                k8s.admissionregistration.v1.MatchConditionArgs(
                    name="from-previewers", expression=f"'{PREVIEW_GROUP}' in request.userInfo.groups"
                )
            ],
            validations=[
                k8s.admissionregistration.v1.ValidationArgs(
                    expression="request.dryRun == true", message=DRY_RUN_ONLY_MESSAGE
                )
            ],
        ),
        opts=child,
    )
    binding = k8s.admissionregistration.v1.ValidatingAdmissionPolicyBinding(
        f"{name}-previewers-dry-run-only",
        spec=k8s.admissionregistration.v1.ValidatingAdmissionPolicyBindingSpecArgs(
            policy_name=policy.metadata.name, validation_actions=["Deny"]
        ),
        opts=child,
    )
    role = k8s.rbac.v1.ClusterRole(
        f"{name}-previewer",
        rules=[
            k8s.rbac.v1.PolicyRuleArgs(api_groups=[group], resources=resources, verbs=PREVIEW_VERBS)
            for group, resources in MANAGED_KINDS.items()
        ]
        + [k8s.rbac.v1.PolicyRuleArgs(api_groups=CRD_RULE[0], resources=CRD_RULE[1], verbs=CRD_RULE[2])],
        opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[binding])),
    )
    k8s.rbac.v1.ClusterRoleBinding(
        f"{name}-previewer",
        role_ref=k8s.rbac.v1.RoleRefArgs(
            api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=role.metadata.name
        ),
        subjects=[k8s.rbac.v1.SubjectArgs(api_group="rbac.authorization.k8s.io", kind="Group", name=PREVIEW_GROUP)],
        opts=child,
    )
