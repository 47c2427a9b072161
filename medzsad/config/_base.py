"""The strict base of every cohort-file section: unknown keys rejected, values frozen."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

_STRICT = ConfigDict(extra="forbid", frozen=True)


class _Section(BaseModel):
    model_config = _STRICT
