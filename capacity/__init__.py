"""Capacity preflight of the EKS node group; see capacity.preflight.

The package itself exports only the vocabulary the layers declare their footprints in
(capacity.footprint): the layers import it, and capacity.plan imports the layers.
"""

from capacity.footprint import NO_REQUESTS, Footprint, Requests, mebibytes, millicores, requests_of

__all__ = ["NO_REQUESTS", "Footprint", "Requests", "mebibytes", "millicores", "requests_of"]
