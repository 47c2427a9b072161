"""Maps in site units: nearest rows, residuals, leave-one-reference-out statistics, the heat transform."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from medzsad.errors import ModelError
from medzsad.model import references as R
from medzsad.model.patch_bank import PatchBank
from medzsad.model.site_units import (
    HALF_HEAT_UNITS,
    NormalStats,
    leave_one_out_stats,
    level_bins,
    robust_centre_scale,
    site_units,
    unit_heat,
)


def _dyadic(n: int, d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(-8, 9, (n, d), generator=g).float() / 8.0


@pytest.mark.parametrize("chunk", [4 * (1 + 2 * 16), 3000, 2**20])
def test_nearest_rows_equal_the_brute_force_argmax(chunk: int) -> None:
    queries, bank = _dyadic(120, 16, 0), _dyadic(500, 16, 1)
    sim, rows = R.nearest_similarity(queries, bank, chunk_bytes=chunk)
    full = queries @ bank.t()
    assert torch.equal(sim, full.amax(dim=1)) and torch.equal(sim, R.max_similarity(queries, bank))
    assert torch.equal(full[torch.arange(120), rows], sim)  # the row gives the maximum
    first = (full == sim[:, None]).float().argmax(dim=1)  # ties: the first row
    assert torch.equal(rows, first)


def _bank(n_slices: int, patches: int, seed: int, shift: float = 0.0) -> PatchBank:
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(2, patches, 16, generator=torch.Generator().manual_seed(99))  # shared anatomy
    feats = base[:, None] + 0.1 * torch.randn(2, n_slices, patches, 16, generator=g) + shift
    feats = F.normalize(feats.reshape(2, n_slices * patches, 16), dim=-1)
    pos = torch.linspace(0, 1, n_slices).repeat_interleave(patches)
    anomaly = torch.rand(2, n_slices * patches, generator=g) * 0.1 + 0.4
    return PatchBank(feats.half(), pos, anomaly)


def test_residual_is_own_value_minus_the_nearest_bank_patch() -> None:
    bank = _bank(5, 6, 0)
    queries = _bank(5, 6, 1)
    terms = R.patch_terms(
        [q.float() for q in queries.features],
        queries.positions,
        bank,
        R.SearchOptions(window=1.0),
        queries.anomaly,
    )
    assert terms.residual is not None and terms.distance.shape == terms.residual.shape == (2, 30)
    for layer in range(2):
        sims = queries.features[layer].float() @ bank.features[layer].float().t()
        nn = sims.argmax(dim=1)
        assert bank.anomaly is not None and queries.anomaly is not None
        want = queries.anomaly[layer] - bank.anomaly[layer, nn]
        torch.testing.assert_close(terms.residual[layer], want)
        torch.testing.assert_close(terms.distance[layer], 1 - sims.amax(dim=1))
    with pytest.raises(ModelError, match="no zero-shot values"):
        R.patch_terms([q.float() for q in queries.features], queries.positions, bank._replace(anomaly=None),
                      R.SearchOptions(), queries.anomaly)  # fmt: skip


def test_statistics_put_normal_patches_near_zero_and_unit_spread() -> None:
    refs = [_bank(8, 20, s) for s in range(4)]
    options = R.SearchOptions(window=0.2)
    stats = leave_one_out_stats(refs, options, bins=4)
    assert stats.centre.shape == stats.scale.shape == (2, 4) and stats.n_patches == 4 * 160
    assert bool((stats.scale > 0).all())
    slice_pos = torch.linspace(0, 1, 8)

    def z_of(study: PatchBank, w: float) -> torch.Tensor:
        queries = [q.float() for q in study.features]
        t = R.patch_terms(queries, study.positions, R.merge_banks(refs), options, study.anomaly)
        assert t.residual is not None
        terms = R.ReferenceTerms(t.distance.reshape(2, 8, 20), t.residual.reshape(2, 8, 20))
        return site_units(terms, slice_pos, stats, w)

    # a new normal study against all references: both terms about N(0, 1), robustly
    for w in (0.0, 1.0):
        z = z_of(_bank(8, 20, 10), w)
        med = float(z.median())
        spread = float((z - med).abs().median()) * 1.4826
        assert abs(med) < 1.0 and 0.3 < spread < 3.0, (w, med, spread)
    # a study whose features changed is far out in distance units
    assert float(z_of(_bank(8, 20, 11, shift=0.5), 1.0).median()) > 5


def test_statistics_need_two_references_with_zero_shot_values() -> None:
    with pytest.raises(ModelError, match="at least 2 references"):
        leave_one_out_stats([_bank(3, 4, 0)], R.SearchOptions())
    with pytest.raises(ModelError, match="zero-shot values"):
        leave_one_out_stats([_bank(3, 4, 0), _bank(3, 4, 1)._replace(anomaly=None)], R.SearchOptions())


def test_robust_statistics_per_bin_and_empty_bins() -> None:
    values = torch.tensor([1.0, 2.0, 3.0, 10.0, 10.0, 10.0, 100.0])
    bins = torch.tensor([0, 0, 0, 1, 1, 1, 1])
    centre, scale = robust_centre_scale(values, bins, 3)
    assert centre[:2].tolist() == [2.0, 10.0]
    assert scale[0] == pytest.approx(1.4826) and scale[1] > 0  # MAD 0 in bin 1: floored, not 0
    assert centre[2] == 10.0  # an empty bin takes the statistics of every value
    assert level_bins(torch.tensor([0.0, 0.5, 0.99, 1.0]), 10).tolist() == [0, 5, 9, 9]


def test_stats_round_trip_and_malformed_numbers_are_refused() -> None:
    stats = NormalStats(torch.tensor([[0.0, 0.1], [0.2, 0.3]]), torch.tensor([[1.0, 2.0], [0.5, 0.25]]), 7)
    back = NormalStats.from_dict(stats.to_dict())
    assert (
        torch.equal(back.centre, stats.centre)
        and torch.equal(back.scale, stats.scale)
        and back.n_patches == 7
    )
    bad = stats.to_dict()
    bad["distance"]["scale"] = [0.0, 1.0]
    with pytest.raises(ModelError, match="malformed"):
        NormalStats.from_dict(bad)
    with pytest.raises(ModelError, match="malformed"):
        NormalStats.from_dict({"bins": 2})


def test_unit_heat_is_monotone_half_at_three_units_and_never_saturates() -> None:
    z = torch.tensor([-5.0, 0.0, HALF_HEAT_UNITS, 9.0, 1e4])
    h = unit_heat(z)
    assert h.tolist()[:2] == [0.0, 0.0] and h[2] == 0.5 and h[3] == 0.75
    assert bool((h[1:].diff() > 0).all()) or h[1] == 0.0
    assert float(h[-1]) < 1.0
