"""Reference bank files and the reference/calibration split."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from medzsad.errors import ConfigError, InputError
from medzsad.model.references import PatchBank
from medzsad.references.bank_io import SCHEMA_VERSION, BankInfo, load_bank, save_bank
from medzsad.references.sampling import check_disjoint, split_references


def _bank() -> PatchBank:
    g = torch.Generator().manual_seed(0)
    return PatchBank(torch.randn(3, 10, 8, generator=g), torch.linspace(0, 1, 10))


def test_round_trip_is_fp16_and_keeps_info(tmp_path: Path) -> None:
    bank = _bank()
    info = BankInfo("abc123", ("s-1", "study_2"), seed=4, coreset_ratio=0.5, n_patches_full=20)
    path = save_bank(tmp_path / "references.safetensors", bank, info)
    got, got_info = load_bank(path, model_hash="abc123")
    assert got.features.dtype == torch.float16
    assert torch.equal(got.features, bank.features.half())
    assert torch.equal(got.positions, bank.positions)
    assert got_info == info
    assert not list(tmp_path.glob("*.tmp-*"))


def test_other_model_newer_schema_and_garbage_are_refused(tmp_path: Path) -> None:
    path = save_bank(tmp_path / "b.safetensors", _bank(), BankInfo("abc", ("a",)))
    with pytest.raises(ConfigError, match="rebuild the profile"):
        load_bank(path, model_hash="def")
    newer = {
        "medzsad.references": json.dumps(
            {"model_hash": "abc", "reference_ids": ["a"], "schema_version": SCHEMA_VERSION + 1}
        )
    }
    save_file(
        {"features": torch.zeros(1, 1, 2), "positions": torch.zeros(1)},
        str(tmp_path / "n.safetensors"),
        metadata=newer,
    )
    with pytest.raises(InputError, match="upgrade medzsad"):
        load_bank(tmp_path / "n.safetensors")
    (tmp_path / "g.safetensors").write_bytes(b"not a bank")
    with pytest.raises(InputError, match="not a medzsad bank"):
        load_bank(tmp_path / "g.safetensors")
    with pytest.raises(InputError, match="does not exist"):
        load_bank(tmp_path / "missing.safetensors")


def test_unsafe_ids_are_not_written(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not safe ids"):
        save_bank(tmp_path / "b.safetensors", _bank(), BankInfo("abc", ("Doe^John 1970",)))
    assert not (tmp_path / "b.safetensors").exists()


def test_split_is_reproducible_disjoint_and_order_free() -> None:
    ids = [f"n{i:02d}" for i in range(20)]
    a = split_references(ids, 4, seed=7)
    b = split_references(list(reversed(ids)), 4, seed=7)
    assert a.references == b.references and len(a.references) == 4
    assert set(a.references).isdisjoint(a.calibration)
    assert set(a.references) | set(a.calibration) == set(ids)
    assert split_references(ids, 4, seed=8).references != a.references


def test_split_refusals() -> None:
    with pytest.raises(ConfigError, match="add 1 normal"):
        split_references(["a", "b"], 2, seed=0)
    with pytest.raises(ConfigError, match="duplicate"):
        split_references(["a", "a", "b"], 1, seed=0)
    with pytest.raises(ConfigError, match="both references and calibration"):
        check_disjoint(["a", "b"], ["b", "c"])
