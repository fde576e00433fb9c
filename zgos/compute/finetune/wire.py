"""What the fine-tuning provider's HTTP API answers (pydantic models; public and read-only).

``GET /health``, ``GET /v1/finetune/tasks/{id}`` (what ``zg finetune status`` draws) and
``GET /v1/finetune/served``. Field order is the JSON key order; errors are the broker's
``ErrorBody`` (``zgos.compute.provider.wire``).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Wire(BaseModel):
    model_config = ConfigDict(frozen=True)


class ProviderHealth(Wire):
    ok: bool = True
    provider: str
    ready: bool  # set up: base models published, service registered, worker running


MAX_PROGRESS_BYTES = 64 * 1024  # a TaskProgress answer a client reads at most (500 loss points fit)


class TaskProgress(Wire):
    """A task's progress as the provider's journal has it (advisory; the chain is the truth)."""

    task_id: int
    state: str
    step: int
    total_steps: int
    loss: float | None = None
    losses: list[tuple[int, float]] = []  # the loss curve so far: (step, loss), at most 500 points
    tokens: int | None = None
    error: str | None = None
    result_root: str | None = None  # 0x-hex, once delivered


class ServedModel(Wire):
    task_id: int
    model: str  # the name it is registered under in InferenceServing
    model_id: str  # 0x-hex tuned model id
    url: str | None  # its broker


class Served(Wire):
    serving: ServedModel | None
