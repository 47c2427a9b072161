"""Maps in units of the site's normal anatomy: each map term standardised by what normal studies show.

The zero-shot map and the reference distance live on different scales (with random weights the
zero-shot term varies far more than ``d``), so a fixed blend weight means nothing until both are
expressed in the same units. Here both are, per patch, before any blending:

- **zero-shot term**: the patch's zero-shot anomaly value minus that of its nearest reference
  patch (the most similar normal tissue at this body level), averaged over the tapped layers:
  ``r = mean_l (a_l(q) - a_l(nn_l(q)))``. Tissue that always looks "anomalous" to the model
  (bone, air edges) has a normal neighbour that looks the same, so only a *change* of appearance
  remains;
- **distance term**: ``d = mean_l (1 - max cos)`` (PatchCore's nearest-neighbour distance).

Each term is then standardised per body-level bin with robust statistics of the references' own
patches, each reference compared with the *other* references (leave one study out, so a patch is
never compared with itself): ``z = (x - median) / (1.4826 MAD)``. Both terms are then "how many
normal standard deviations above what this site's normal anatomy shows at this level", and
``(1 - w) z_r + w z_d`` weighs comparable numbers. The blended map is upsampled and smoothed like
the zero-shot map and mapped to a heat in [0, 1) by ``h = z+ / (z+ + 3)`` (heat 0.5 at three normal
standard deviations; no saturation, so no ties at 1).

Only the references enter the statistics: the calibration normals stay disjoint from them, and
the final map is a fixed function of the references applied to every study, so conformal
calibration on the final map keeps its guarantee. Pure torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import torch

from medzsad.errors import ModelError
from medzsad.model.coreset import coreset_bank
from medzsad.model.patch_bank import PatchBank, merge_banks
from medzsad.model.references import ReferenceTerms, SearchOptions, patch_terms

__all__ = [
    "NormalStats",
    "DEFAULT_BINS",
    "HALF_HEAT_UNITS",
    "level_bins",
    "robust_centre_scale",
    "leave_one_out_stats",
    "site_units",
    "unit_heat",
]

#: Body-level bins of the statistics (each +-5 % of the body extent).
DEFAULT_BINS = 10
#: Normal standard deviations at which the heat is 0.5.
HALF_HEAT_UNITS = 3.0
#: Smallest scale of a term (a bin whose term never varies would divide by zero).
MIN_SCALE = 1e-6
_MAD_TO_SD = 1.4826  # the MAD of a normal distribution times this is its standard deviation
_TERMS = ("zero_shot", "distance")


class NormalStats(NamedTuple):
    """Per body-level bin centre and scale of the two map terms on normal anatomy.

    Attributes:
        centre: ``(2, bins)`` float32: median of the zero-shot residual (row 0) and of the reference
            distance (row 1) of normal patches per bin.
        scale: ``(2, bins)`` float32: their robust standard deviations (1.4826 MAD), >= MIN_SCALE.
        n_patches: Normal patches the statistics were taken from.
    """

    centre: torch.Tensor
    scale: torch.Tensor
    n_patches: int

    @property
    def bins(self) -> int:
        """Number of body-level bins."""
        return int(self.centre.shape[1])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready numbers (profile.json)."""
        out: dict[str, Any] = {"bins": self.bins, "n_patches": self.n_patches}
        for row, name in enumerate(_TERMS):
            out[name] = {"centre": self.centre[row].tolist(), "scale": self.scale[row].tolist()}
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NormalStats:
        """Read :meth:`to_dict`'s form back.

        Raises:
            ModelError: Missing or malformed numbers.
        """
        try:
            centre = torch.tensor([list(map(float, data[t]["centre"])) for t in _TERMS], dtype=torch.float32)
            scale = torch.tensor([list(map(float, data[t]["scale"])) for t in _TERMS], dtype=torch.float32)
            n = int(data["n_patches"])
        except (KeyError, TypeError, ValueError) as e:
            raise ModelError(f"malformed normalisation statistics ({type(e).__name__}: {e})") from e
        bad = centre.shape != scale.shape or centre.shape[1] != int(data.get("bins", -1))
        if bad or not bool(torch.isfinite(centre).all()) or not bool((scale > 0).all()):
            raise ModelError("malformed normalisation statistics (bins, shapes or non-positive scales)")
        return cls(centre, scale, n)


def level_bins(positions: torch.Tensor, bins: int) -> torch.Tensor:
    """``(N,)`` int64 bin of body coordinates in [0, 1] (``bins`` equal bins, 1.0 in the last)."""
    return torch.clamp((positions.float() * bins).long(), 0, bins - 1)


def robust_centre_scale(
    values: torch.Tensor, bins_of: torch.Tensor, bins: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Median and 1.4826 MAD of ``values`` per bin (an empty bin takes the statistics of all values).

    Args:
        values: ``(N,)`` float.
        bins_of: ``(N,)`` int64 bin of each value.
        bins: Number of bins.

    Returns:
        ``(bins,)`` centre and ``(bins,)`` scale (>= :data:`MIN_SCALE`), float32.
    """

    def stats(v: torch.Tensor) -> tuple[float, float]:
        med = v.median()
        return float(med), max(float((v - med).abs().median()) * _MAD_TO_SD, MIN_SCALE)

    everything = stats(values.float())
    centre, scale = torch.empty(bins), torch.empty(bins)
    for b in range(bins):
        v = values[bins_of == b].float()
        centre[b], scale[b] = stats(v) if v.numel() else everything
    return centre, scale


def leave_one_out_stats(
    banks: Sequence[PatchBank],
    options: SearchOptions,
    *,
    bins: int = DEFAULT_BINS,
    coreset: float = 1.0,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> NormalStats:
    """The statistics of the two terms on the references' own patches, each against the others.

    Args:
        banks: One bank per reference study (with zero-shot values), the same layers.
        options: Search window, chunk budget and backend (those of scoring).
        bins: Body-level bins.
        coreset: Kept fraction of the other references' patches (as the scoring bank keeps).
        seed: Coreset seed.
        device: Where the search runs (the model's device, as in scoring); the statistics are
            returned on the CPU.

    Raises:
        ModelError: Fewer than two references, or a bank without zero-shot values.
    """
    if len(banks) < 2:
        raise ModelError(
            "maps in site units need at least 2 references (each is compared with the others); "
            f"got {len(banks)}"
        )
    residual, distance, positions = [], [], []
    for i, own in enumerate(banks):
        others = merge_banks([b for j, b in enumerate(banks) if j != i])
        if coreset < 1.0:
            others = coreset_bank(others, coreset, seed=seed)
        if own.anomaly is None:
            raise ModelError("a reference bank without zero-shot values cannot give site statistics")
        own, others = own.to(device), others.to(device)
        queries = [layer.float() for layer in own.features]
        terms = patch_terms(queries, own.positions, others, options, own.anomaly)
        assert terms.residual is not None  # noqa: S101 - asked for with own.anomaly
        residual.append(terms.residual.mean(dim=0).cpu())
        distance.append(terms.distance.mean(dim=0).cpu())
        positions.append(own.positions.cpu())
    where = level_bins(torch.cat(positions), bins)
    rc, rs = robust_centre_scale(torch.cat(residual), where, bins)
    dc, ds = robust_centre_scale(torch.cat(distance), where, bins)
    return NormalStats(torch.stack([rc, dc]), torch.stack([rs, ds]), int(where.numel()))


def site_units(
    terms: ReferenceTerms, positions: torch.Tensor, stats: NormalStats, weight: float
) -> torch.Tensor:
    """The blend ``(1 - w) z_r + w z_d`` of every patch, in normal standard deviations.

    Args:
        terms: Distance and residual, ``(L, B, P)`` each.
        positions: ``(B,)`` body coordinate of each image.
        stats: The site's statistics.
        weight: ``w`` in [0, 1].

    Returns:
        ``(B, P)`` float32.

    Raises:
        ModelError: No residual in ``terms``.
    """
    if terms.residual is None:
        raise ModelError("maps in site units need the zero-shot residual of every patch")
    device = terms.distance.device
    b = level_bins(positions.to(device), stats.bins)
    centre, scale = stats.centre.to(device), stats.scale.to(device)
    z_r = (terms.residual.mean(dim=0) - centre[0, b, None]) / scale[0, b, None]
    z_d = (terms.distance.mean(dim=0) - centre[1, b, None]) / scale[1, b, None]
    return (1.0 - weight) * z_r + weight * z_d


def unit_heat(z: torch.Tensor) -> torch.Tensor:
    """Heat in [0, 1) from normal standard deviations: ``z+ / (z+ + HALF_HEAT_UNITS)``."""
    pos = z.clamp(min=0.0)
    return pos / (pos + HALF_HEAT_UNITS)
