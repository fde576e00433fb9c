"""The compute panel, ``GET /api/compute``: the inference services registered in
``InferenceServing`` (provider, URL, model, prices, verifiability)."""

from __future__ import annotations

from fastapi import APIRouter

from zgos.compute.contracts import ComputeContracts, ServiceInfo
from zgos.explorer.deps import Deps
from zgos.explorer.models import ApiModel

router = APIRouter(prefix="/api")


class InferenceService(ApiModel):
    provider: str
    url: str
    model: str
    model_hash: str  # 0x-hex
    input_price: int  # wei per token
    output_price: int  # wei per token
    verifiability: str

    @classmethod
    def of(cls, service: ServiceInfo) -> InferenceService:
        return cls(provider=service.provider, url=service.url, model=service.model,
                   model_hash="0x" + service.model_hash.hex(), input_price=service.input_price,
                   output_price=service.output_price, verifiability=service.verifiability)


@router.get("/compute")
def compute(deps: Deps) -> list[InferenceService]:
    contracts = ComputeContracts.from_deployment(deps.chain(), deps.deployment())
    return [InferenceService.of(service) for service in contracts.services()]
