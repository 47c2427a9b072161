"""The run's progress bar: studies, advanced slice by slice while a study is being scored.

A first ViT-L study on a CPU takes minutes; a bar that moves only when a study is finished sits
at 0 % with no ETA. Executors that score in this process report each scored batch
(:meth:`~medzsad.cohort.executors.base.RunHooks.scored`): the bar then advances by the study's
fraction of scored slices (the last part when the study is written), and shows which study and
how many of its slices are done.
"""

from __future__ import annotations

import sys
from types import TracebackType

from medzsad.cohort.options import StudyOutcome
from medzsad.progress import NullBar, progress_bar
from medzsad.study.types import StudyJob

__all__ = ["RunProgress"]

#: The bar counts studies in fractions (a study's scored slices): one decimal, not 0.10140845070422536.
BAR_FORMAT = "{l_bar}{bar}| {n:.1f}/{total} studies [{elapsed}<{remaining}{postfix}]"

#: Share of a study's progress that scoring its slices stands for (the rest: post-process, write).
SCORING_SHARE = 0.9


class RunProgress:
    """A bar over a run's studies (``mode``: ``auto`` on a terminal only, ``bar``, ``off``).

    Args:
        total: Studies to run.
        mode: ``auto``, ``bar`` or ``off``.
    """

    def __init__(self, total: int, mode: str) -> None:
        enabled = {"bar": True, "off": False}.get(mode)  # "auto": a bar on a terminal only
        self._context = progress_bar(total, enabled=enabled, unit="study", leave=True, bar_format=BAR_FORMAT)
        self._bar = NullBar()
        self._counted: dict[str, float] = {}  # study id -> the part of it the bar shows

    def __enter__(self) -> RunProgress:
        self._bar = self._context.__enter__()  # type: ignore[assignment]
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._context.__exit__(kind, error, tb)

    def _advance(self, study_id: str, fraction: float) -> None:
        gained = fraction - self._counted.get(study_id, 0.0)
        if gained > 0:
            self._counted[study_id] = fraction
            self._bar.update(gained)  # type: ignore[arg-type]  # tqdm takes fractions

    def scored(self, job: StudyJob, done: int, total: int) -> None:
        """``done`` of the study's ``total`` slices are scored."""
        if isinstance(self._bar, NullBar) or total <= 0:
            return
        self._advance(job.study.study_id, SCORING_SHARE * min(done, total) / total)
        self._bar.set_postfix_str(f"{job.log_id} {done}/{total} slices")

    def finished(self, outcome: StudyOutcome) -> None:
        """A study is done, failed or skipped: its line above the bar, and the bar completes it."""
        if isinstance(self._bar, NullBar):
            return
        self._bar.write(outcome.line(), file=sys.stderr)
        self._bar.set_postfix_str(f"{outcome.log_id} {outcome.status}")
        self._advance(outcome.study_id, 1.0)
