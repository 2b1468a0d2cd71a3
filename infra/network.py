"""A dedicated VPC laid out as eksctl makes one.

One public and one private subnet per zone; nodes live in the private subnets and reach
out through a single NAT gateway; load balancers go in the public subnets. The subnet
tags tell the AWS cloud controller where internet-facing and internal load balancers go.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from settings import WORLD, Vpc


@dataclass(frozen=True)
class NetworkArgs:
    """What the dedicated VPC is made from: its subnets are tagged for `cluster_name`."""

    cluster_name: str
    vpc: Vpc


def subnet_cidrs(vpc_cidr: str, zone_count: int) -> tuple[list[str], list[str]]:
    """Public and private subnet CIDRs: the VPC cut in eight, public ones first (as eksctl does)."""
    blocks = [str(block) for block in ipaddress.ip_network(vpc_cidr).subnets(prefixlen_diff=3)]
    return blocks[:zone_count], blocks[zone_count : 2 * zone_count]


@dataclass(frozen=True)
class Network:
    """The VPC and subnets the cluster uses, dedicated or existing."""

    vpc_id: pulumi.Output[str]
    public_subnet_ids: list[pulumi.Output[str]]
    private_subnet_ids: list[pulumi.Output[str]]


# Where the AWS cloud controller puts internet-facing (public) and internal load balancers.
LOAD_BALANCER_ROLE = {"public": {"kubernetes.io/role/elb": "1"}, "private": {"kubernetes.io/role/internal-elb": "1"}}


def subnets(
    name: str,
    tier: str,
    args: NetworkArgs,
    vpc_id: pulumi.Output[str],
    zones: list[str],
    cidrs: list[str],
    routes: aws.ec2.RouteTable,
    parent: pulumi.Resource,
) -> list[aws.ec2.Subnet]:
    """One `tier` ("public" or "private") subnet per zone, routed through `routes`."""
    child = pulumi.ResourceOptions(parent=parent)
    created = []
    for zone, cidr in zip(zones, cidrs, strict=True):
        subnet = aws.ec2.Subnet(
            f"{name}-{tier}-{zone}",
            vpc_id=vpc_id,
            cidr_block=cidr,
            availability_zone=zone,
            map_public_ip_on_launch=tier == "public",
            tags={"Name": f"{args.cluster_name}-{tier}-{zone}", **LOAD_BALANCER_ROLE[tier], **owned_by(args)},
            opts=child,
        )
        aws.ec2.RouteTableAssociation(
            f"{name}-{tier}-{zone}", subnet_id=subnet.id, route_table_id=routes.id, opts=child
        )
        created.append(subnet)
    return created


def owned_by(args: NetworkArgs) -> dict[str, str]:
    return {f"kubernetes.io/cluster/{args.cluster_name}": "shared"}


def dedicated_vpc(name: str, args: NetworkArgs, parent: pulumi.Resource) -> Network:
    child = pulumi.ResourceOptions(parent=parent)
    zones = aws.get_availability_zones(state="available", opts=pulumi.InvokeOptions(parent=parent)).names
    if len(zones) < args.vpc.zone_count:
        raise pulumi.RunError(f"availabilityZoneCount = {args.vpc.zone_count}: this region has only {len(zones)} zones")
    zones = zones[: args.vpc.zone_count]

    vpc = aws.ec2.Vpc(
        f"{name}-vpc",
        cidr_block=args.vpc.cidr,
        enable_dns_hostnames=True,
        enable_dns_support=True,
        tags={"Name": f"{args.cluster_name}-vpc", **owned_by(args)},
        opts=child,
    )
    gateway = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, opts=child)
    public_routes = aws.ec2.RouteTable(
        f"{name}-public",
        vpc_id=vpc.id,
        routes=[aws.ec2.RouteTableRouteArgs(cidr_block=WORLD, gateway_id=gateway.id)],
        opts=child,
    )
    public_cidrs, private_cidrs = subnet_cidrs(args.vpc.cidr, args.vpc.zone_count)

    public_subnets = subnets(name, "public", args, vpc.id, zones, public_cidrs, public_routes, parent)
    nat_address = aws.ec2.Eip(f"{name}-nat", domain="vpc", opts=child)
    nat = aws.ec2.NatGateway(
        f"{name}-nat",
        subnet_id=public_subnets[0].id,
        allocation_id=nat_address.id,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[gateway]),
    )
    private_routes = aws.ec2.RouteTable(
        f"{name}-private",
        vpc_id=vpc.id,
        routes=[aws.ec2.RouteTableRouteArgs(cidr_block=WORLD, nat_gateway_id=nat.id)],
        opts=child,
    )
    private_subnets = subnets(name, "private", args, vpc.id, zones, private_cidrs, private_routes, parent)

    return Network(
        vpc_id=vpc.id,
        public_subnet_ids=[subnet.id for subnet in public_subnets],
        private_subnet_ids=[subnet.id for subnet in private_subnets],
    )
