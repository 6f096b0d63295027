"""Scene bundles: push to object storage, fetch once per node into a content-addressed cache.

A bundle is a folder holding `scene.xml` (+ meshes), or a `.zip` / `.tar.gz` of one. Its identity is
`bundle_hash(folder)`: sha256 over the sorted relative paths, sizes and bytes of its files (no mtimes).

Pushed format (`reflectopt scene push FOLDER s3://bucket/scenes/NAME`):
    <uri>/bundle.tar.gz   deterministic tar.gz of the folder (scene.xml at the top; mtimes/owners zeroed)
    <uri>/bundle.json     {"format": 1, "sha256": content hash, "archive": "bundle.tar.gz",
                           "archive_sha256", "archive_bytes", "unpacked_bytes", "files", "scene": "scene.xml"}
bundle.json is written after the archive, so its presence marks a complete push.

Cache (`$REFLECTOPT_CACHE_DIR`, else ~/.cache/reflectopt/scenes):
    <sha256>/             the unpacked bundle; appears only by an atomic rename after verification
    <sha256>.lock         file lock: concurrent worlds on a node share one download
    <sha256>.json         marker: where it came from, bytes downloaded, when, by which pid
    refs/<key>.json       URI (+ETag) or local archive hash -> content hash, for archives without a manifest
    downloads.log         one line per archive download (the benchmark/tests count these)
    .tmp/                 downloads and extractions in progress (removed on success or failure)

A content hash names a cache folder, so only 64 lowercase hex characters are one (a manifest's `sha256`,
`--sha256`, a ref file). A bundle holds only files and folders: a link of any kind is refused wherever a
bundle is read, hashed, unpacked, cached or pushed (`bundle_files.py`). A scene may load only files of its
own bundle: every file `scene.xml` references is checked before the scene is used or pushed (relative, no
`..`, a file the content hash covers).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
import tarfile
import tempfile
import threading
import time
from pathlib import Path, PurePosixPath

from optimizer.store import storage
from optimizer.store.bundle_files import CHUNK, bundle_files, safe_extract
from optimizer.constants import (
    ENV_CACHE_DIR,
    SCENE_BUNDLE_ARCHIVE,
    SCENE_BUNDLE_MANIFEST,
    SCENE_CACHE_DEFAULT,
    SCENE_FILE,
    SCENE_LOCK_TIMEOUT_S,
    SCENE_MAX_UNPACKED_BYTES,
)
from optimizer.errors import ConfigError, SceneError, SceneHashMismatch, StorageError

MANIFEST_FORMAT = 1
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".zip")

# Observable by tests and the benchmark: archive downloads done by *this process*.
DOWNLOADS = {"count": 0, "bytes": 0}
_counter_lock = threading.Lock()


# --- hashing ---------------------------------------------------------------------------------------
def bundle_hash(folder, source: str | None = None) -> str:
    """sha256 hex over sorted relative paths + sizes + file bytes; independent of mtimes and owners. A folder
    holding anything but files and folders (a link of any kind) is refused (`bundle_files`), so the hash
    covers every byte the bundle can give."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SceneError(f"{source or folder}: not a folder")
    h = hashlib.sha256(b"reflectopt-bundle-v1\0")
    for rel in bundle_files(folder, source):
        p = folder / rel
        h.update(rel.encode("utf-8") + b"\0" + p.stat().st_size.to_bytes(8, "big"))
        with open(p, "rb") as f:
            while chunk := f.read(CHUNK):
                h.update(chunk)
    return h.hexdigest()


def _check_sha(value, what: str) -> str:
    """`value` if it is a sha256 in hex (64 lowercase hex characters), else SceneError naming `what`."""
    if not isinstance(value, str) or not SHA256_RE.match(value):
        raise SceneError(f"{what}: {str(value)[:80]!r} is not a sha256 (64 lowercase hex characters)")
    return value


def _scene_references(xml_path: Path, source: str) -> list[str]:
    """Every file name `scene.xml` refers to (`<string name="filename" value=...>`, `<include filename=...>`)."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.parse(xml_path).getroot()
    except (ET.ParseError, OSError) as err:
        raise SceneError(f"{source}: {SCENE_FILE} is not readable XML ({err})") from None
    refs = []
    for el in root.iter():
        if el.tag == "string" and el.get("name") == "filename":
            refs.append(el.get("value", ""))
        elif "filename" in el.attrib:
            refs.append(el.get("filename", ""))
    return refs


def check_scene_files(folder, source: str) -> None:
    """SceneError unless `folder` holds only files and folders (`bundle_files`: no links) and every file
    `folder/scene.xml` references lies in the bundle: a relative path without `..` or `$` naming one of
    those files (so the content hash pins everything the scene loads)."""
    folder = Path(folder)
    hashed = set(bundle_files(folder, source))
    for ref in _scene_references(folder / SCENE_FILE, source):
        name = ref.replace("\\", "/")
        bad = None
        if not name.strip():
            bad = "is empty"
        elif "$" in name:
            bad = "uses a $parameter; write the path itself"
        elif name.startswith("/") or (len(name) > 1 and name[1] == ":") or PurePosixPath(name).is_absolute():
            bad = "is an absolute path"
        elif ".." in PurePosixPath(name).parts:
            bad = "leaves the bundle ('..')"
        elif PurePosixPath(name).as_posix() not in hashed:
            bad = "is not a file of the bundle"
        if bad:
            raise SceneError(f"{source}: {SCENE_FILE} references {ref!r}, which {bad}; a scene may load only "
                             "files inside its own folder (relative paths such as meshes/wall.ply)")


def _file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _bundle_root(folder: Path, source: str) -> Path:
    """The folder holding scene.xml: `folder` itself, or its only sub-folder (zip -r of a folder)."""
    if (folder / SCENE_FILE).is_file():
        return folder
    entries = [p for p in folder.iterdir() if not p.name.startswith(".") and p.name != "__MACOSX"]
    if len(entries) == 1 and entries[0].is_dir() and (entries[0] / SCENE_FILE).is_file():
        return entries[0]
    raise SceneError(f"{source}: no {SCENE_FILE} at the top of the bundle (nor in its single sub-folder)")


# --- push ------------------------------------------------------------------------------------------
def _is_archive(path: str) -> bool:
    return str(path).lower().endswith(ARCHIVE_SUFFIXES)


def write_bundle_archive(folder, out_path) -> dict:
    """Deterministic tar.gz of `folder` (sorted, mtimes 0, owners 0). Returns the manifest fields."""
    folder = Path(folder)
    files = bundle_files(folder)
    unpacked = 0
    with (open(out_path, "wb") as raw,
          gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as gz,
          tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tf):
        for rel in files:
            p = folder / rel
            ti = tarfile.TarInfo(rel)
            ti.size = p.stat().st_size
            ti.mode = 0o644
            ti.mtime = 0
            ti.uid = ti.gid = 0
            ti.uname = ti.gname = ""
            unpacked += ti.size
            with open(p, "rb") as f:
                tf.addfile(ti, f)
    return {"files": len(files), "unpacked_bytes": unpacked, "archive_bytes": os.path.getsize(out_path),
            "archive_sha256": _file_sha256(out_path)}


def push_bundle(folder_or_archive, uri, max_bytes: int = SCENE_MAX_UNPACKED_BYTES) -> str:
    """Upload a scene folder (or a .zip/.tar.gz of one) as `<uri>/bundle.tar.gz` + `<uri>/bundle.json`.
    Returns the content sha256 (what `scene_sha256:` pins). Re-pushing identical content uploads nothing."""
    src = str(folder_or_archive)
    uri = str(uri).rstrip("/")
    if _is_archive(uri):
        raise ConfigError(f"{uri}: give a prefix for the bundle (e.g. s3://bucket/scenes/NAME), not an archive name")
    with tempfile.TemporaryDirectory(prefix="reflectopt-push-") as tmp:
        if os.path.isdir(src):
            folder = Path(src)
            if not (folder / SCENE_FILE).is_file():
                raise SceneError(f"{src}: no {SCENE_FILE} in this folder")
        elif os.path.isfile(src) and _is_archive(src):
            safe_extract(src, Path(tmp) / "x", max_bytes=max_bytes)
            folder = _bundle_root(Path(tmp) / "x", src)
        else:
            raise SceneError(f"{src}: not a scene folder or a .zip/.tar.gz archive")
        check_scene_files(folder, src)  # before anything is uploaded: only files and folders, no links
        sha = bundle_hash(folder, src)
        manifest_uri = storage.join(uri, SCENE_BUNDLE_MANIFEST)
        if storage.exists(manifest_uri):
            try:
                old = json.loads(storage.read_text(manifest_uri))
            except (ValueError, StorageError):
                old = {}
            if old.get("sha256") == sha and storage.exists(storage.join(uri, old.get("archive", ""))):
                return sha
            storage.delete(manifest_uri)  # a half-replaced bundle must not look complete
        archive = Path(tmp) / SCENE_BUNDLE_ARCHIVE
        fields = write_bundle_archive(folder, archive)
        if fields["unpacked_bytes"] > max_bytes:
            raise SceneError(f"{src}: {fields['unpacked_bytes']} bytes is over the {max_bytes}-byte bundle limit")
        manifest = {"format": MANIFEST_FORMAT, "sha256": sha, "archive": SCENE_BUNDLE_ARCHIVE,
                    "scene": SCENE_FILE, **fields}
        storage.upload_file(archive, storage.join(uri, SCENE_BUNDLE_ARCHIVE))
        storage.write_text(manifest_uri, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return sha


# --- resolve (fetch into the cache) ----------------------------------------------------------------
def cache_root(cache_dir=None) -> Path:
    d = cache_dir or os.environ.get(ENV_CACHE_DIR) or SCENE_CACHE_DEFAULT
    return Path(os.path.expanduser(str(d))).absolute()


def _lock(path: Path):
    from filelock import FileLock

    return FileLock(str(path), timeout=SCENE_LOCK_TIMEOUT_S)


def _record_download(cache: Path, source: str, sha: str, nbytes: int) -> None:
    with _counter_lock:
        DOWNLOADS["count"] += 1
        DOWNLOADS["bytes"] += nbytes
    line = json.dumps({"time": time.time(), "pid": os.getpid(), "uri": source, "sha256": sha, "bytes": nbytes})
    with open(cache / "downloads.log", "a") as f:
        f.write(line + "\n")


def downloads_logged(cache_dir=None) -> list[dict]:
    """Every archive download recorded in this cache (all processes), oldest first."""
    p = cache_root(cache_dir) / "downloads.log"
    if not p.exists():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def _cached(cache: Path, sha: str) -> Path | None:
    """`<cache>/<sha>` if it holds a scene of files and folders only, else None: an entry with a link in it
    (left by a version that unpacked links) is never used; it is fetched, verified and replaced."""
    folder = cache / sha
    if not (folder / SCENE_FILE).is_file():
        return None
    try:
        bundle_files(folder)
    except SceneError:
        return None
    return folder


def _verify_scene(folder: Path, source: str) -> Path:
    if not (folder / SCENE_FILE).is_file():
        raise SceneError(f"{source}: no {SCENE_FILE} in the bundle")
    check_scene_files(folder, source)
    return folder


def _install(cache: Path, source: str, expected: str | None, fetch, max_bytes: int) -> Path:
    """Under the bundle's lock (when the hash is known): fetch the archive into .tmp, verify, unpack, hash,
    then rename into `<cache>/<sha256>`. `fetch(tmp_archive_path) -> (bytes, archive_sha256_expected|None)`."""
    tmp_root = cache / ".tmp"
    tmp_root.mkdir(parents=True, exist_ok=True)
    for stale in tmp_root.iterdir():  # left by a world killed mid-download (its lock died with it)
        try:
            if time.time() - stale.stat().st_mtime > SCENE_LOCK_TIMEOUT_S:
                shutil.rmtree(stale, ignore_errors=True)
        except OSError:
            pass
    work = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=tmp_root))
    try:
        archive = work / "bundle.archive"
        nbytes, archive_sha = fetch(archive)
        if archive_sha is not None:
            got = _file_sha256(archive)
            if got != archive_sha:
                raise SceneError(f"{source}: corrupt download: archive sha256 expected {archive_sha} got {got}")
        safe_extract(archive, work / "x", max_bytes=max_bytes, label=source)
        root = _verify_scene(_bundle_root(work / "x", source), source)
        got = bundle_hash(root, source)
        if expected is not None and got != expected:
            raise SceneHashMismatch(source, expected, got)
        final = cache / got
        if _cached(cache, got) is None:
            if final.is_symlink():  # a broken or tainted leftover; replace it
                final.unlink()
            elif final.exists():
                shutil.rmtree(final, ignore_errors=True)
            try:
                os.rename(root, final)
            except OSError:
                if _cached(cache, got) is None:
                    raise
        marker = {"uri": source, "sha256": got, "bytes_downloaded": nbytes, "pid": os.getpid(),
                  "time": time.time()}
        storage.write_text(str(cache / f"{got}.json"), json.dumps(marker) + "\n")
        return final
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _ref_path(cache: Path, key: str) -> Path:
    return cache / "refs" / (hashlib.sha256(key.encode()).hexdigest() + ".json")


def _via_ref(cache: Path, source: str, ref_key: str, sha256: str | None, fetch, max_bytes: int) -> Path:
    """Archives without a manifest: the content hash is known only after unpacking, so a ref file maps
    (URI + version) to it; the lock is per ref."""
    ref = _ref_path(cache, ref_key)
    ref.parent.mkdir(parents=True, exist_ok=True)
    with _lock(ref.with_suffix(".lock")):
        if ref.exists():
            try:
                sha = str(json.loads(ref.read_text()).get("sha256", ""))
            except (ValueError, AttributeError):
                sha = ""
            if SHA256_RE.match(sha) and _cached(cache, sha) is not None:
                if sha256 is not None and sha != sha256:
                    raise SceneHashMismatch(source, sha256, sha)
                return cache / sha
        final = _install(cache, source, sha256, fetch, max_bytes)
        storage.write_text(str(ref), json.dumps({"source": source, "sha256": final.name}) + "\n")
        return final


def resolve_scene(scene: str, sha256: str | None = None, cache_dir=None,
                  max_bytes: int = SCENE_MAX_UNPACKED_BYTES) -> Path:
    """A local folder holding scene.xml for `scene` (local folder, local archive, or s3:// bundle URI).

    s3:// bundles and archives go through the content-addressed cache: one download per node (file lock),
    verified (archive sha256 from bundle.json; content hash vs `sha256` if pinned) before it is renamed into
    place. Raises SceneError (one line: the URI and the reason)."""
    scene = str(scene).strip()
    if sha256 is not None:
        sha256 = _check_sha(sha256.strip().lower(), "scene_sha256 / --sha256")
    try:
        if storage.is_remote(scene):
            return _resolve_remote(scene, sha256, cache_root(cache_dir), max_bytes)
        return _resolve_local(scene, sha256, cache_root(cache_dir), max_bytes)
    except StorageError as err:
        wrapped = SceneError(f"scene {err}")
        wrapped.exit_code = err.exit_code  # 1: the store failed; 2: no usable credentials
        raise wrapped from None


def _resolve_local(scene: str, sha256: str | None, cache: Path, max_bytes: int) -> Path:
    p = Path(os.path.expanduser(scene))
    if p.is_file() and p.name == SCENE_FILE:
        p = p.parent
    if p.is_dir():
        _verify_scene(p, scene)
        if sha256 is not None:
            got = bundle_hash(p)
            if got != sha256:
                raise SceneHashMismatch(scene, sha256, got)
        return p
    if p.is_file() and _is_archive(scene):
        if sha256 is not None and _cached(cache, sha256) is not None:
            return cache / sha256
        cache.mkdir(parents=True, exist_ok=True)
        archive_sha = _file_sha256(p)

        def fetch(dest: Path):
            shutil.copyfile(p, dest)
            return 0, archive_sha  # a local copy is not a download

        return _via_ref(cache, scene, f"file:{archive_sha}", sha256, fetch, max_bytes)
    if p.exists():
        raise SceneError(f"{scene}: not a folder with {SCENE_FILE} nor a .zip/.tar.gz archive")
    raise SceneError(f"{scene}: no such file or folder")


def _resolve_remote(scene: str, sha256: str | None, cache: Path, max_bytes: int) -> Path:
    if sha256 is not None and _cached(cache, sha256) is not None:
        return cache / sha256  # pinned and cached: no network at all
    cache.mkdir(parents=True, exist_ok=True)
    if _is_archive(scene):
        bucket, key = storage._split(scene)
        head = storage._call(scene, "head", lambda: storage.client().head_object(Bucket=bucket, Key=key),
                             missing_ok=True)
        if head is None:
            raise SceneError(f"{scene}: no such bundle (object missing)")

        def fetch(dest: Path):
            n = storage.download_file(scene, dest)
            _record_download(cache, scene, sha256 or "", n)
            return n, None

        return _via_ref(cache, scene, f"{scene}#{head.get('ETag', '')}", sha256, fetch, max_bytes)

    manifest_uri = storage.join(scene, SCENE_BUNDLE_MANIFEST)
    if not storage.exists(manifest_uri):
        raise SceneError(f"{scene}: no such bundle ({SCENE_BUNDLE_MANIFEST} missing; "
                         f"upload it with `reflectopt scene push FOLDER {scene}`)")
    try:
        manifest = json.loads(storage.read_text(manifest_uri))
        published = manifest["sha256"]
        archive_name = str(manifest.get("archive", SCENE_BUNDLE_ARCHIVE))
        archive_sha = manifest.get("archive_sha256")
    except (ValueError, KeyError, TypeError) as err:
        raise SceneError(f"{manifest_uri}: corrupt bundle manifest ({err})") from None
    _check_sha(published, f"{manifest_uri}: corrupt bundle manifest: sha256")  # it names a cache folder
    if archive_sha is not None:
        _check_sha(archive_sha, f"{manifest_uri}: corrupt bundle manifest: archive_sha256")
    if "/" in archive_name or archive_name.startswith("."):
        raise SceneError(f"{manifest_uri}: corrupt bundle manifest (archive {archive_name!r})")
    if sha256 is not None and published != sha256:
        raise SceneHashMismatch(scene, sha256, published, " (bundle.json)")
    if _cached(cache, published) is not None:
        return cache / published
    archive_uri = storage.join(scene, archive_name)
    with _lock(cache / f"{published}.lock"):
        if _cached(cache, published) is not None:
            return cache / published  # another world on this node fetched it while we waited

        def fetch(dest: Path):
            n = storage.download_file(archive_uri, dest)
            _record_download(cache, archive_uri, published, n)
            return n, archive_sha

        return _install(cache, scene, published, fetch, max_bytes)


def content_hash(path) -> str:
    """The content sha256 of a scene folder or of the bundle inside a .zip/.tar.gz (what scene_sha256 pins)."""
    p = Path(path)
    if p.is_file() and _is_archive(str(p)):
        with tempfile.TemporaryDirectory(prefix="reflectopt-hash-") as tmp:
            safe_extract(p, Path(tmp) / "x")
            return bundle_hash(_verify_scene(_bundle_root(Path(tmp) / "x", str(p)), str(p)), str(p))
    if not p.is_dir():
        raise SceneError(f"{p}: not a folder or a .zip/.tar.gz archive")
    if (p / SCENE_FILE).is_file():
        check_scene_files(p, str(p))
    return bundle_hash(p)
