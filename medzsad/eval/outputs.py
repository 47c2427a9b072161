"""What ``medzsad evaluate`` writes beside the metrics: the random-weight marker and ``scores.csv``.

Results of random weights (``--clip random``, ``--prompts random`` or ``none``) are marked the way
``medzsad run --smoke`` marks its outputs: ``smoke_run`` and a ``note`` in the JSON files, a bold
first line in the Markdown files, a ``smoke_run`` column in the CSV files, a title on the plots and
a line in the terminal text, so that they can never be mistaken for real numbers.
"""

from __future__ import annotations

import csv
import io

from medzsad.eval.predict import Predictions
from medzsad.weights.model_loading import ModelSpec
from medzsad.weights.resolution import RANDOM, ResolvedWeights, WeightSource

__all__ = ["SCORES_COLUMNS", "SMOKE_NOTE", "is_random_weights", "scores_csv", "smoke_fields", "smoke_line"]

#: The marker of results computed with random weights (the text of ``run``'s provenance note).
SMOKE_NOTE = "SMOKE RUN - random weights; scores are meaningless"

#: Columns of ``scores.csv``, one row per scored image; ``slice_index`` is empty for 2D images.
SCORES_COLUMNS = ("image", "class", "label", "score", "max_map", "mask_known", "slice_index", "smoke_run")


def _random(weights: str | ResolvedWeights | None) -> bool:
    if isinstance(weights, ResolvedWeights):
        return weights.source is WeightSource.RANDOM
    return weights == RANDOM


def is_random_weights(spec: ModelSpec) -> bool:
    """True when ``spec`` builds any random weights: random CLIP, or random/fresh (``None``) prompts.

    The same rule as :attr:`medzsad.config.model.ModelConfig.is_smoke` for ``medzsad run``.
    """
    return spec.prompts is None or _random(spec.prompts) or _random(spec.clip)


def smoke_line(smoke: bool) -> str:
    """The Markdown/terminal first line of results of random weights (``""`` for real weights)."""
    return f"**{SMOKE_NOTE}**\n\n" if smoke else ""


def smoke_fields(smoke: bool) -> dict[str, object]:
    """``smoke_run`` and ``note`` for a JSON output (the fields of ``run``'s provenance)."""
    return {"smoke_run": smoke, "note": SMOKE_NOTE if smoke else ""}


def scores_csv(predictions: Predictions, smoke: bool) -> str:
    """``scores.csv``: one row per scored image in sample order (columns :data:`SCORES_COLUMNS`).

    ``slice_index`` is, for slices of a volume dataset, the slice's index along the axis it was cut
    along in the volume's stored voxel order (the ``slice_index`` of ``run``'s ``slices.csv``).
    """
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(SCORES_COLUMNS)
    flag = str(bool(smoke))  # "True"/"False", as in run's studies.csv and slices.csv
    for r in predictions.images:
        index = "" if r.slice_index is None else r.slice_index
        w.writerow(
            [r.image, r.class_name, r.label, repr(r.score), repr(r.max_map), int(r.mask_known), index, flag]
        )
    return buf.getvalue()
