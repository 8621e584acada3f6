from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from attn_cli.compute.result import json_schema  # noqa: E402
from attn_cli.loading.model import load_model  # noqa: E402

SENTENCE = "The Transformer is making it possible to understand language."


@pytest.fixture(scope="session")
def model():
    """The bundled all-MiniLM-L6-v2, loaded once."""
    return load_model()


@pytest.fixture(scope="session")
def schema():
    return json_schema()


@pytest.fixture(autouse=True)
def no_real_model_stores(tmp_path_factory, monkeypatch):
    """The Ollama and LM Studio models of the machine running the tests never reach `attn models`
    (a test that builds a store sets these itself)."""
    empty = tmp_path_factory.getbasetemp() / "no-model-stores"
    monkeypatch.setenv("OLLAMA_MODELS", str(empty / "ollama"))
    monkeypatch.setenv("LMSTUDIO_MODELS", str(empty / "lmstudio"))
