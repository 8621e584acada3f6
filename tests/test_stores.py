"""`--model ollama:NAME[:TAG]` and `--model lmstudio:PUBLISHER/NAME[/FILE.gguf]`, and `attn models`
listing both, tested against stores the tests build in the real layouts (Ollama: manifest JSON
under manifests/HOST/NAMESPACE/NAME/TAG, blobs named sha256-<hex>) around a real tiny GGUF."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from gguf_helpers import write_gguf
from helpers import attn, validate

from attn_cli.cli import ExitStatus

MODEL_LAYER = "application/vnd.ollama.image.model"


@pytest.fixture(scope="module")
def gguf(tmp_path_factory) -> Path:
    return write_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf")


def add_ollama(root: Path, gguf: Path, name: str = "tiny", tag: str = "latest", *, host: str = "registry.ollama.ai",
               namespace: str = "library", manifest: object | None = None) -> Path:
    """Ollama's layout: the GGUF as blobs/sha256-<hex>, and a manifest that names it."""
    data = gguf.read_bytes()
    hexdigest = hashlib.sha256(data).hexdigest()
    blob = root / "blobs" / f"sha256-{hexdigest}"
    blob.parent.mkdir(parents=True, exist_ok=True)
    if not blob.exists():
        shutil.copyfile(gguf, blob)
    if manifest is None:
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": "sha256:" + "0" * 64, "size": 2},
            "layers": [
                {"mediaType": MODEL_LAYER, "digest": f"sha256:{hexdigest}", "size": len(data)},
                {"mediaType": "application/vnd.ollama.image.template", "digest": "sha256:" + "1" * 64, "size": 10},
            ],
        }
    path = root / "manifests" / host / namespace / name / tag
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(manifest if isinstance(manifest, str) else json.dumps(manifest))
    return blob


@pytest.fixture
def ollama(tmp_path, monkeypatch, gguf) -> Path:
    root = tmp_path / "ollama-models"
    add_ollama(root, gguf)
    monkeypatch.setenv("OLLAMA_MODELS", str(root))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # LM Studio's folders: under this HOME only
    monkeypatch.delenv("LMSTUDIO_MODELS", raising=False)
    return root


def inspect_doc(model: str) -> dict:
    p = attn("inspect", "The cat sat", "-q", "cat", "-m", model, "--json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    doc.pop("model")  # its name and path differ; everything computed must not
    return doc


def fail_line(*args: str) -> str:
    p = attn(*args)
    assert p.returncode == ExitStatus.MODEL, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, p.stderr  # one line: the problem and its fix, never a traceback
    return lines[0]


def test_ollama_model_is_its_blob(ollama, gguf):
    blob = next((ollama / "blobs").iterdir())
    assert inspect_doc("ollama:tiny") == inspect_doc(str(blob)) == inspect_doc("ollama:tiny:latest")


def test_ollama_tag_and_namespace(ollama, gguf):
    add_ollama(ollama, gguf, "qwen2.5", "0.5b")
    add_ollama(ollama, gguf, "tiny", "q8", namespace="acme")
    add_ollama(ollama, gguf, "tiny", "v1", host="example.com", namespace="acme")
    want = inspect_doc("ollama:tiny")
    assert inspect_doc("ollama:qwen2.5:0.5b") == want
    assert inspect_doc("ollama:acme/tiny:q8") == want
    assert inspect_doc("ollama:example.com/acme/tiny:v1") == want


def test_ollama_missing_model_tag_and_blob(ollama, gguf):
    line = fail_line("inspect", "The cat sat", "-q", "cat", "-m", "ollama:nope")
    assert "no model 'nope'" in line
    p = attn("inspect", "The cat sat", "-q", "cat", "-m", "ollama:nope", "--json")
    assert json.loads(p.stderr)["error"]["fix"].startswith("run `ollama pull nope`")
    add_ollama(ollama, gguf, "tiny", "q4")
    line = fail_line("inspect", "The cat sat", "-q", "cat", "-m", "ollama:tiny:7b")
    assert "no tag '7b'" in line and "latest, q4" in line
    for blob in (ollama / "blobs").iterdir():
        blob.unlink()
    assert "is missing" in fail_line("inspect", "The cat sat", "-q", "cat", "-m", "ollama:tiny")


@pytest.mark.parametrize(
    "manifest",
    [
        "{not json",
        "[1, 2]",
        '{"layers": {"a": 1}}',
        '{"layers": [7]}',
        '{"layers": [{"mediaType": 3, "digest": "sha256:00"}]}',
        json.dumps({"layers": [{"mediaType": MODEL_LAYER, "digest": ["sha256:" + "a" * 64]}]}),
        json.dumps({"layers": [{"mediaType": MODEL_LAYER, "digest": "sha256:../../x"}]}),
        json.dumps({"layers": [{"mediaType": "application/vnd.ollama.image.adapter", "digest": "sha256:" + "a" * 64}]}),
        "[" * 100000,
    ],
)
def test_garbled_manifest_is_a_model_error(ollama, gguf, manifest):
    add_ollama(ollama, gguf, "bad", manifest=manifest)
    assert "Ollama manifest" in fail_line("inspect", "The cat sat", "-q", "cat", "-m", "ollama:bad")


@pytest.mark.parametrize("ref", ["ollama:", "ollama:../x", "ollama:a/b/c/d", "ollama:tiny:", "lmstudio:x", "lmstudio:a/../b"])
def test_bad_names(ollama, ref):
    assert "is not" in fail_line("inspect", "The cat sat", "-q", "cat", "-m", ref)


def test_lmstudio(tmp_path, monkeypatch, gguf, ollama):
    home = tmp_path / "home"
    one = home / ".lmstudio" / "models" / "acme" / "tiny-GGUF"
    one.mkdir(parents=True)
    shutil.copyfile(gguf, one / "tiny-F32.gguf")
    (one / "mmproj-tiny.gguf").write_bytes(b"projector")  # not a model file: ignored
    two = home / ".cache" / "lm-studio" / "models" / "acme" / "two-GGUF"
    two.mkdir(parents=True)
    for name in ("a.gguf", "b.gguf"):
        shutil.copyfile(gguf, two / name)
    want = inspect_doc("ollama:tiny")
    assert inspect_doc("lmstudio:acme/tiny-GGUF") == want
    assert inspect_doc("lmstudio:acme/two-GGUF/b.gguf") == want
    line = fail_line("inspect", "The cat sat", "-q", "cat", "-m", "lmstudio:acme/two-GGUF")
    assert "2 .gguf files (a.gguf, b.gguf)" in line
    assert "no model acme/none" in fail_line("inspect", "The cat sat", "-q", "cat", "-m", "lmstudio:acme/none")
    assert "has no c.gguf" in fail_line("inspect", "The cat sat", "-q", "cat", "-m", "lmstudio:acme/two-GGUF/c.gguf")
    monkeypatch.setenv("LMSTUDIO_MODELS", str(home / ".cache" / "lm-studio" / "models"))
    assert "no model acme/tiny-GGUF" in fail_line("inspect", "The cat sat", "-q", "cat", "-m", "lmstudio:acme/tiny-GGUF")


def test_models_lists_both_stores(tmp_path, monkeypatch, gguf, ollama, schema):
    add_ollama(ollama, gguf, "tiny", "q8", namespace="acme")
    add_ollama(ollama, gguf, "bad", manifest='{"layers": null}')
    add_ollama(ollama, gguf, "gone")
    (ollama / "manifests" / "registry.ollama.ai" / "library" / "gone" / "latest").write_text(
        json.dumps({"layers": [{"mediaType": MODEL_LAYER, "digest": "sha256:" + "e" * 64}]})
    )
    lm = tmp_path / "home" / ".lmstudio" / "models" / "acme" / "tiny-GGUF"
    lm.mkdir(parents=True)
    shutil.copyfile(gguf, lm / "tiny-F32.gguf")
    p = attn("models", "--json", env={"HF_HOME": str(tmp_path / "hf")})
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    validate(doc, schema, "models")
    by_name = {m["name"]: m for m in doc["models"]}
    tiny = by_name["ollama:tiny:latest"]
    assert tiny["source"] == "ollama" and tiny["usable"] and tiny["architecture"] == "llama"
    assert tiny["path"].endswith(next((ollama / "blobs").iterdir()).name)
    assert tiny["layers"] == 2 and tiny["heads"] == 4 and tiny["quantization"] and tiny["size_bytes"] > 0
    assert by_name["ollama:acme/tiny:q8"]["usable"]
    assert not by_name["ollama:bad:latest"]["usable"] and "no list of layers" in by_name["ollama:bad:latest"]["problem"]
    assert "is missing" in by_name["ollama:gone:latest"]["problem"]
    studio = by_name["lmstudio:acme/tiny-GGUF"]
    assert studio["source"] == "lmstudio" and studio["usable"] and studio["layers"] == 2
    table = attn("models", env={"HF_HOME": str(tmp_path / "hf"), "COLUMNS": "250"}).stdout
    assert "ollama:tiny:latest" in table and "lmstudio:acme/tiny-GGUF" in table


def test_ollama_default_dir_is_under_home(tmp_path, monkeypatch, gguf):
    monkeypatch.delenv("OLLAMA_MODELS")
    monkeypatch.setenv("HOME", str(tmp_path))
    add_ollama(tmp_path / ".ollama" / "models", gguf, "tiny", "q2")
    assert "/.ollama/models/blobs/sha256-" in attn("inspect", "The cat sat", "-q", "cat", "-m", "ollama:tiny:q2", "--json").stdout


def test_attn_model_may_name_a_store_model(ollama, schema):
    p = attn("inspect", "The cat sat", "-q", "cat", "--json", env={"ATTN_MODEL": "ollama:tiny"})
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["model"]["name"] == "ollama:tiny"
    doc = json.loads(attn("models", "--json", env={"ATTN_MODEL": "ollama:nope"}).stdout)
    validate(doc, schema, "models")
    assert doc["models"][1]["source"] == "ATTN_MODEL" and "ollama pull" not in doc["models"][1]["problem"]
    assert "no model 'nope'" in doc["models"][1]["problem"]
