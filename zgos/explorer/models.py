"""What every explorer panel's models share: camelCase on the wire (the page's JavaScript reads
these keys), snake_case in Python."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class ApiModel(BaseModel):
    """A JSON API answer: frozen, dumped with camelCase keys (FastAPI dumps by alias)."""

    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True)
