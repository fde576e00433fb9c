"""User side of the compute network: ``ComputeUser`` (SDK) and the local proxy (``zg compute serve``)."""

from zgos.compute.user.client import ComputeUser, ProviderError, Verified
from zgos.compute.user.verification import ResponseRejected

__all__ = ["ComputeUser", "ProviderError", "ResponseRejected", "Verified"]
