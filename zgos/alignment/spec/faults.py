"""Compute faults the chain can prove from one provider-signed ``Response`` (issue 17).

A provider's registered signer signs every answer as the EIP-712 ``Response`` of
``zgos.compute.spec.vouchers`` (its usage, fee and model hash). Two of its claims are checkable
against the provider's ``InferenceServing`` record alone:

- **wrong fee**: ``fee != input_tokens × inputPrice + output_tokens × outputPrice`` at the
  registered prices (``zgos.compute.spec.billing.compute_fee``); a product past 2^256 - 1
  equals no fee;
- **wrong model**: ``modelHash`` differs from the registered model hash.

``AlignmentRegistry.slashCompute`` takes such a response with its signature from a registered
auditor and slashes ``bonds.COMPUTE_SLASH_BPS`` of the provider's compute bond to the auditor.
The evidence is judged against the service as registered *now* and only if signed by the signer
registered *now*: a provider that changes its prices or model rotates its response signer at
the same time, which retires every response signed under the old terms. Each response (its
EIP-712 digest) slashes at most once: replayed evidence is refused. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntFlag

from zgos.compute.spec.billing import Prices, Usage, compute_fee
from zgos.compute.spec.vouchers import UINT256_MAX, Response


class ComputeFault(IntFlag):
    """``AlignmentRegistry``'s fault bits (``FAULT_WRONG_FEE``, ``FAULT_WRONG_MODEL``)."""

    NONE = 0
    WRONG_FEE = 1
    WRONG_MODEL = 2


@dataclass(frozen=True)
class ProviderTerms:
    """The part of a provider's on-chain service record a response is judged against."""

    prices: Prices
    model_hash: bytes
    signer: str


def compute_response_faults(response: Response, terms: ProviderTerms) -> ComputeFault:
    """The faults ``response`` proves against ``terms`` (``AlignmentRegistry.computeFaults``)."""
    faults = ComputeFault.NONE
    expected = compute_fee(Usage(response.input_tokens, response.output_tokens), terms.prices)
    if expected > UINT256_MAX or expected != response.fee:
        faults |= ComputeFault.WRONG_FEE
    if response.model_hash != terms.model_hash:
        faults |= ComputeFault.WRONG_MODEL
    return faults
