"""The node group's instance facts from AWS (DescribeInstanceTypes), read before any resource.

An invoke, not a resource: `aws.ec2.get_instance_type` answers synchronously at program start,
so the preflight still refuses a stack before anything is registered.
"""

from __future__ import annotations

import difflib

import pulumi

from capacity.nodes import ARM64, SUGGESTIONS, X86_64, InstanceType
from settings import SettingsError


def instance_type_from_aws(name: str) -> InstanceType:
    """vCPUs, memory, network interfaces, addresses per interface, architecture and hypervisor of `name`.

    A type AWS does not know is refused with AWS's own answer."""
    import pulumi_aws as aws  # here, not at the top: existing-cluster mode never loads the AWS SDK

    try:
        facts = aws.ec2.get_instance_type(instance_type=name)
    except Exception as error:  # the engine's invoke error carries the provider's (and AWS's) message
        if "InvalidInstanceType" not in str(error):  # credentials, network: not a bad setting
            raise pulumi.RunError(f"could not read the facts of nodeInstanceType {name} from AWS: {error}") from None
        close = [match for match in difflib.get_close_matches(name, SUGGESTIONS, n=2) if match != name]
        hint = f" Did you mean {close[0]}?" if close else ""
        raise SettingsError(
            f"nodeInstanceType = {name!r}: AWS does not know this instance type in the stack's region "
            f"(nothing was changed).{hint}\n  AWS said: {error}"
        ) from None
    # Pods get interfaces of the default network card only, as the EKS AMI counts them.
    cards = {card.index: card.maximum_interfaces for card in facts.network_cards or []}
    enis = cards.get(facts.default_network_card_index) or facts.maximum_network_interfaces
    return InstanceType(
        name,
        vcpus=facts.default_vcpus,
        memory_mib=facts.memory_size,
        enis=enis,
        ipv4_per_eni=facts.maximum_ipv4_addresses_per_interface,
        architecture=ARM64 if ARM64 in (facts.supported_architectures or []) else X86_64,
        nitro=facts.hypervisor == "nitro",
    )
