"""Reference bank search: chunk budget, exactness of the chunked search, windows, coreset."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from medzsad.errors import ModelError
from medzsad.model import references as R
from medzsad.model.references import PatchBank, SearchOptions


def _dyadic(n: int, d: int, seed: int) -> torch.Tensor:
    """Rows of multiples of 1/8 in [-1, 1]: every product and partial sum is exact in float32/16."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(-8, 9, (n, d), generator=g).float() / 8.0


@pytest.mark.parametrize("copy", [0, 2 * 768])
@pytest.mark.parametrize(
    ("q", "d", "m", "chunk"),
    [
        (1369, 768, 100_000, 64 * 2**20),
        (1369, 1024, 100_000, 8 * 2**20),
        (5, 16, 10, 4 * 33 + 2 * 768),
        (4000, 64, 7, 2**16),
        (3, 1, 50, 12 + 2 * 768),
    ],
)
def test_chunk_plan_fits_budget(q: int, d: int, m: int, chunk: int, copy: int) -> None:
    plan = R.chunk_plan(q, d, m, chunk, copy)
    assert (
        plan.block_bytes
        == 4 * (plan.query_rows * plan.bank_rows + plan.bank_rows * d) + plan.bank_rows * copy
    )
    assert plan.block_bytes <= chunk
    assert 1 <= plan.query_rows <= q and 1 <= plan.bank_rows <= m


def test_chunk_plan_refuses_budget_below_one_row() -> None:
    with pytest.raises(ModelError, match="too small"):
        R.chunk_plan(10, 64, 100, 4 * 64)


def test_search_never_allocates_more_than_its_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 1,369-token slice against a 100k-patch bank: every block within the budget, results exact."""
    queries = _dyadic(1369, 8, 0)
    bank = _dyadic(100_000, 8, 1).half()
    chunk = 2 * 2**20
    blocks: list[int] = []
    real = R._block_max

    def spy(q: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        blocks.append(4 * (q.shape[0] * b.shape[0] + b.numel()))
        return real(q, b)

    monkeypatch.setattr(R, "_block_max", spy)
    got = R.max_similarity(queries, bank, chunk_bytes=chunk)
    assert len(blocks) > 1 and max(blocks) <= chunk
    full = (queries @ bank.float().t()).amax(dim=1)
    assert torch.equal(got, full)


@pytest.mark.parametrize("chunk", [4 * (1 + 2 * 32), 5000, 2**20])
def test_chunked_equals_unchunked_exactly(chunk: int) -> None:
    queries = _dyadic(300, 32, 2)
    bank = _dyadic(900, 32, 3)
    full = (queries @ bank.t()).amax(dim=1)
    assert torch.equal(R.max_similarity(queries, bank, chunk_bytes=chunk), full)


def test_random_features_chunked_matches_full_and_argmax_row() -> None:
    g = torch.Generator().manual_seed(4)
    queries = F.normalize(torch.randn(200, 48, generator=g), dim=-1)
    bank = F.normalize(torch.randn(3000, 48, generator=g), dim=-1)
    bank[17] = queries[5]  # an exact match gives similarity 1
    got = R.max_similarity(queries, bank, chunk_bytes=20_000)
    full = (queries @ bank.t()).amax(dim=1)
    torch.testing.assert_close(got, full, rtol=0, atol=1e-6)
    assert got[5] == pytest.approx(1.0, abs=1e-6)


def test_unknown_or_missing_backend_is_a_model_error() -> None:
    q, b = _dyadic(3, 4, 0), _dyadic(5, 4, 1)
    with pytest.raises(ModelError, match="unknown search backend"):
        R.max_similarity(q, b, backend="annoy")
    if R.faiss_available():
        torch.testing.assert_close(R.max_similarity(q, b, backend="faiss"), R.max_similarity(q, b))
    else:
        with pytest.raises(ModelError, match="faiss is not installed"):
            R.max_similarity(q, b, backend="faiss")


def _tokens(feats: torch.Tensor) -> torch.Tensor:
    """``(B, G*G, D)`` patches -> ``(B, 1 + G*G, D)`` with a class token in front."""
    return torch.cat([torch.zeros(feats.shape[0], 1, feats.shape[2]), feats], dim=1)


def test_bank_from_tokens_normalises_sorts_and_stores_fp16() -> None:
    g = torch.Generator().manual_seed(5)
    layers = [_tokens(torch.randn(3, 4, 8, generator=g) * 5) for _ in range(2)]
    bank = R.bank_from_tokens(layers, torch.tensor([0.9, 0.1, 0.5]))
    assert bank.features.dtype == torch.float16 and bank.features.shape == (2, 12, 8)
    assert torch.equal(bank.positions, torch.tensor([0.1] * 4 + [0.5] * 4 + [0.9] * 4))
    torch.testing.assert_close(bank.features.float().norm(dim=-1), torch.ones(2, 12), atol=2e-3, rtol=0)
    first = F.normalize(layers[1][1, 1:], dim=-1).half()  # image at 0.1 comes first
    assert torch.equal(bank.features[1, :4], first)


def test_window_restricts_to_nearby_levels() -> None:
    """A patch whose only match sits at another level is far with a 10 % window, exact with the whole bank."""
    g = torch.Generator().manual_seed(6)
    feats = F.normalize(torch.randn(2, 4, 16, generator=g), dim=-1)
    bank = R.bank_from_tokens([_tokens(feats)], torch.tensor([0.2, 0.9]))
    query = [_tokens(feats[1:2])]  # identical to the patches at 0.9
    near = R.reference_distance(query, torch.tensor([0.2]), bank, SearchOptions(window=0.1))
    whole = R.reference_distance(query, torch.tensor([0.2]), bank, SearchOptions(window=1.0))
    own = R.reference_distance(query, torch.tensor([0.85]), bank, SearchOptions(window=0.1))
    assert float(near.min()) > 0.2
    assert float(whole.max()) < 2e-3 and float(own.max()) < 2e-3
    assert R.window_rows(bank, 0.5, 0.1) == (0, 8)  # empty window: whole bank


def test_reference_distance_refuses_other_model() -> None:
    bank = PatchBank(torch.zeros(2, 3, 8, dtype=torch.float16), torch.zeros(3))
    with pytest.raises(ModelError, match="rebuild the references"):
        R.reference_distance([torch.zeros(1, 5, 8)], torch.zeros(1), bank, SearchOptions())


def test_kcenter_picks_one_point_per_cluster() -> None:
    g = torch.Generator().manual_seed(7)
    centres = torch.eye(4) * 10
    pts = torch.cat([c + 0.01 * torch.randn(25, 4, generator=g) for c in centres])
    idx = R.kcenter_coreset(pts, 4, seed=3, projection_dim=None)
    assert sorted((idx // 25).tolist()) == [0, 1, 2, 3]
    assert torch.equal(idx, R.kcenter_coreset(pts, 4, seed=3, projection_dim=None))
    assert R.kcenter_coreset(pts, 500).numel() == 100


def test_coreset_bank_keeps_every_level() -> None:
    g = torch.Generator().manual_seed(8)
    feats = torch.randn(10, 50, 8, generator=g)
    bank = R.bank_from_tokens([_tokens(feats)], torch.linspace(0, 1, 10))
    small = R.coreset_bank(bank, 0.1, bins=10, seed=0)
    assert small.n_patches == 10 * 5
    assert torch.equal(torch.unique(small.positions), torch.unique(bank.positions))
    assert bool((small.positions[1:] >= small.positions[:-1]).all())
    with pytest.raises(ModelError):
        R.coreset_bank(bank, 0.0)
