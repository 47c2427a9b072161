"""``executor:``: where and how studies run."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from medzsad.config._base import _Section


class ExecutorConfig(_Section):
    """Where studies run. ``local`` is the only executor today (one process, one prefetch thread)."""

    kind: Literal["local"] = "local"
    prefetch: int = Field(default=1, ge=0, le=4)
    continue_on_error: bool = True
