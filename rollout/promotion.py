"""Promotion as config changes: the canary version becomes the stable one, the old one is retired.

Done in phases so no request meets a version without capacity, as Flagger does:
first the canary gets the stable version's replicas, then all the traffic, and only
then the roles swap (the old stable version keeps its name as the new, empty canary
slot: 0 replicas, weight 0). Each phase is one `pulumi up`; phases already true are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass

from settings import AppSettings


@dataclass(frozen=True)
class Phase:
    description: str
    changes: dict[str, str]


class NothingToPromote(ValueError):
    """The canary slot is empty: promoting it would bring the retired version back."""


def promotion_phases(app: AppSettings) -> list[Phase]:
    if app.canary.replicas == 0 and app.canary_weight == 0:
        raise NothingToPromote(
            f"canaryReplicas = 0 and canaryWeight = 0: {app.canary.label} is a retired version, not a canary; "
            "set canaryVersion, canaryImage and canaryReplicas for the next release first"
        )
    replicas = max(app.stable.replicas, app.canary.replicas)
    phases = []
    if app.canary.replicas < replicas:
        phases.append(Phase(f"scale {app.canary.label} to {replicas} replicas", {"canaryReplicas": str(replicas)}))
    if app.canary_weight < 100:
        phases.append(Phase(f"send all traffic to {app.canary.label}", {"canaryWeight": "100"}))
    swap = {
        "stableVersion": app.canary.label,
        "stableImage": app.canary.image,
        "stableReplicas": str(replicas),
        "canaryVersion": app.stable.label,
        "canaryImage": app.stable.image,
        "canaryReplicas": "0",
        "canaryWeight": "0",
    }
    # Both would send requests to the retired version, which has no pods left.
    if app.canary_header is not None:
        swap["canaryHeaderName"] = ""
    if app.mirror_percent:
        swap["mirrorPercent"] = "0"
    phases.append(Phase(f"make {app.canary.label} stable and retire {app.stable.label}", swap))
    return phases


def back_to_stable(app: AppSettings) -> tuple[dict[str, str], list[str]]:
    """A rollback's or abort's changes: every request to the stable version (weight 0, and the header route
    and mirroring off, which would keep sending requests to a canary that just failed); and what was turned off."""
    changes = {"canaryWeight": "0"}
    turned_off = []
    if app.canary_header is not None:
        changes["canaryHeaderName"] = ""
        turned_off.append(f"header route {app.canary_header[0]}")
    if app.mirror_percent:
        changes["mirrorPercent"] = "0"
        turned_off.append(f"mirroring of {app.mirror_percent}% of requests")
    return changes, turned_off
