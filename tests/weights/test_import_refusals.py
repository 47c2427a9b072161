"""A refused ``weights import`` stores nothing, names the user's file and leaves no folder behind."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from medzsad.cli import EXIT_MODEL, main
from medzsad.errors import ModelError
from medzsad.weights.cache import read_manifest, record_in_manifest
from medzsad.weights.import_file import import_weights
from medzsad.weights.registry import get_weight_entry

PROMPT = "anomalyclip_vitl14_336.mvtec"


@pytest.fixture
def rand_sd(tmp_path: Path) -> Path:
    """A valid torch file that is no AnomalyCLIP checkpoint: a state dict with keys 'a' and 'b'."""
    path = tmp_path / "downloads" / "rand_sd.pth"
    path.parent.mkdir()
    torch.save({"a": torch.zeros(3, 4), "b": torch.ones(5)}, path)
    return path


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_pinned_checksum_does_not_skip_the_prompt_format_check(home, rand_sd, capsys):
    with pytest.raises(ModelError, match=r"expected a dict with key 'prompt_learner', found \['a', 'b'\]"):
        import_weights(PROMPT, rand_sd, sha256=_sha256(rand_sd))
    assert PROMPT not in read_manifest()
    assert not (home / "weights" / PROMPT).exists()
    # the CLI walk-through: refused (exit 5) and 'weights list' does not show it as cached
    assert main(["weights", "import", PROMPT, str(rand_sd), "--sha256", _sha256(rand_sd)]) == EXIT_MODEL
    assert "prompt_learner" in capsys.readouterr().err
    assert main(["weights", "list"]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[1:]}
    assert rows[PROMPT][3] == "missing"


@pytest.mark.parametrize("pinned", [False, True])
def test_format_refusal_names_the_users_file_not_the_cache_temp_file(home, rand_sd, pinned):
    with pytest.raises(ModelError) as err:
        import_weights(PROMPT, rand_sd, sha256=_sha256(rand_sd) if pinned else None)
    msg = str(err.value)
    assert str(rand_sd.resolve()) in msg
    assert ".tmp-" not in msg and str(home) not in msg
    assert "import:" not in msg


def test_failed_imports_leave_no_file_or_folder_behind(home, rand_sd):
    home.mkdir()  # the user's MEDZSAD_HOME exists (mktemp -d); everything below it is ours
    with pytest.raises(ModelError, match="mismatch"):
        import_weights("clip_vitl14_336.openai", rand_sd)
    assert list(home.rglob("*")) == []
    with pytest.raises(ModelError, match="prompt_learner"):
        import_weights(PROMPT, rand_sd)
    assert list(home.rglob("*")) == []


def test_failed_import_keeps_folders_that_were_there_before(home, rand_sd):
    entry = get_weight_entry(PROMPT)
    folder = home / "weights" / PROMPT
    folder.mkdir(parents=True)
    record_in_manifest(get_weight_entry("clip_vitb16.openai"), "0" * 64, False, 1, "import:x")
    with pytest.raises(ModelError):
        import_weights(PROMPT, rand_sd)
    assert folder.is_dir() and list(folder.iterdir()) == []
    assert not (folder / entry.filename).exists()
    assert set(read_manifest()) == {"clip_vitb16.openai"}


def test_a_prompt_file_from_medzsad_train_is_pointed_to_prompt_weights(home, tmp_path):
    """A walk-through imported train's prompt_learner.json and got only PyTorch's unpickling text."""
    trained = tmp_path / "runs" / "prompt_learner.json"
    trained.parent.mkdir()
    trained.write_text('{"format": "medzsad-prompts"}')
    with pytest.raises(ModelError, match=r"used where it is, not imported: give it as model\.prompt_weights"):
        import_weights(PROMPT, trained)
    assert not (home / "weights" / PROMPT).exists()
