"""The canary guardrails policy pack: `pulumi preview --policy-pack policy`."""

from pulumi_policy import PolicyPack
from rules import ENFORCEMENT, POLICIES

PolicyPack(name="canary-guardrails", enforcement_level=ENFORCEMENT, policies=POLICIES)
