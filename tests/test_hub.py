"""`--model org/name` through the Hugging Face cache, and `attn models`, tested offline against a
cache that the test builds in the hub's real layout (blobs, symlinked snapshots, refs/main)."""

from __future__ import annotations

import json

import pytest
from helpers import attn, make_hub_cache, make_tiny_bert, validate

from attn_cli.cli import ExitStatus
from attn_cli.loading.hub import is_repo_id
from attn_cli.loading.packaged import PACKAGED

# A loopback port where nothing listens: "the hub is out of reach", without touching the network.
UNREACHABLE = "http://127.0.0.1:9"


@pytest.fixture(scope="module")
def hf_home(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    make_hub_cache(root, "acme/tiny-bert", make_tiny_bert(root / "src"))
    broken = make_tiny_bert(root / "src-broken")
    (broken / "tokenizer.json").unlink()
    make_hub_cache(root, "acme/no-tokenizer", broken)
    return root


def test_repo_ids():
    assert is_repo_id("sentence-transformers/all-MiniLM-L6-v2") and is_repo_id("acme/tiny_bert.v2")
    assert not is_repo_id("./models/x") and not is_repo_id("just-a-name") and not is_repo_id("/abs/path")


@pytest.mark.parametrize("env", [{"HF_HUB_OFFLINE": "1"}, {"HF_ENDPOINT": UNREACHABLE}])
def test_cached_model_loads_offline_or_unreachable(hf_home, env):
    p = attn("inspect", "The cat sat.", "-q", "cat", "-m", "acme/tiny-bert", "--json", env={"HF_HOME": str(hf_home), **env})
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["model"]["name"] == "acme/tiny-bert" and doc["model"]["heads"] == 4
    assert "/hub/models--acme--tiny-bert/snapshots/" in doc["model"]["path"]


@pytest.mark.parametrize(
    "env, reason", [({"HF_HUB_OFFLINE": "1"}, "HF_HUB_OFFLINE is set"), ({"HF_ENDPOINT": UNREACHABLE}, "the hub could not be reached")]
)
def test_uncached_model_is_a_clear_error(hf_home, env, reason):
    p = attn("inspect", "The cat sat.", "-q", "cat", "-m", "acme/missing", env={"HF_HOME": str(hf_home), **env})
    assert p.returncode == ExitStatus.MODEL and p.stdout == ""
    assert "model 'acme/missing' is not in the Hugging Face cache" in p.stderr and reason in p.stderr
    assert "huggingface-cli download acme/missing" in p.stderr


def test_attn_model_may_name_a_cached_model(hf_home):
    p = attn("inspect", "The cat sat.", "-q", "cat", "--json", env={"HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1", "ATTN_MODEL": "acme/tiny-bert"})
    assert p.returncode == 0 and json.loads(p.stdout)["model"]["name"] == "acme/tiny-bert"


def test_models_lists_bundled_and_cached(hf_home, schema):
    p = attn("models", "--json", env={"HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1"})
    assert p.returncode == 0
    doc = json.loads(p.stdout)
    validate(doc, schema, "models")
    by_name = {m["name"]: m for m in doc["models"]}
    assert by_name["all-MiniLM-L6-v2"]["source"] == "bundled" and by_name["all-MiniLM-L6-v2"]["usable"]
    assert by_name["acme/tiny-bert"] == by_name["acme/tiny-bert"] | {"source": "cache", "architecture": "bert", "usable": True, "problem": None}
    assert by_name["acme/no-tokenizer"]["usable"] is False and by_name["acme/no-tokenizer"]["problem"] == "no tokenizer.json"
    table = attn("models", env={"HF_HOME": str(hf_home), "COLUMNS": "200"}).stdout
    assert "acme/tiny-bert" in table and "unusable: no tokenizer.json" in table


def test_models_with_an_empty_cache_and_attn_model(tmp_path, schema):
    p = attn("models", "--json", env={"HF_HOME": str(tmp_path), "ATTN_MODEL": "/no/such"})
    doc = json.loads(p.stdout)
    validate(doc, schema, "models")
    assert [m["source"] for m in doc["models"]] == ["bundled", "ATTN_MODEL"] + ["packaged"] * len(PACKAGED)
    assert doc["models"][1]["problem"] == "model folder '/no/such' does not exist"
