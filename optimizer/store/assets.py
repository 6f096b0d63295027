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
`--sha256`, a ref file). A scene may load only files of its own bundle: every file `scene.xml` references
is checked before the scene is used or pushed (relative, no `..`, inside the bundle once links are
resolved, a file the content hash covers).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
import stat
import tarfile
import tempfile
import threading
import time
import zipfile
from pathlib import Path, PurePosixPath

from optimizer.store import storage
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
_CHUNK = 1 << 20

# Observable by tests and the benchmark: archive downloads done by *this process*.
DOWNLOADS = {"count": 0, "bytes": 0}
_counter_lock = threading.Lock()


# --- hashing ---------------------------------------------------------------------------------------
def _bundle_files(folder: Path) -> list[str]:
    """Sorted '/'-relative paths of the regular files under `folder` (symlinks inside are followed)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames.sort()
        for name in filenames:
            p = Path(dirpath) / name
            if p.is_file():
                out.append(p.relative_to(folder).as_posix())
    return sorted(out)


def bundle_hash(folder) -> str:
    """sha256 hex over sorted relative paths + sizes + file bytes; independent of mtimes and owners."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SceneError(f"{folder}: not a folder")
    h = hashlib.sha256(b"reflectopt-bundle-v1\0")
    for rel in _bundle_files(folder):
        p = folder / rel
        h.update(rel.encode("utf-8") + b"\0" + p.stat().st_size.to_bytes(8, "big"))
        with open(p, "rb") as f:
            while chunk := f.read(_CHUNK):
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
    """SceneError unless every file `folder/scene.xml` references lies in the bundle: a relative path
    without `..` or `$`, a regular file inside `folder` once links are resolved, and one `bundle_hash`
    covers (so the content hash pins everything the scene loads)."""
    folder = Path(folder)
    real_root = folder.resolve()
    hashed = set(_bundle_files(folder))
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
        else:
            target = (folder / name).resolve()
            if target != real_root and real_root not in target.parents:
                bad = "leads outside the bundle (a link)"
            elif not target.is_file() or PurePosixPath(name).as_posix() not in hashed:
                bad = "is not a file of the bundle"
        if bad:
            raise SceneError(f"{source}: {SCENE_FILE} references {ref!r}, which {bad}; a scene may load only "
                             "files inside its own folder (relative paths such as meshes/wall.ply)")


def _file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


# --- safe extraction -------------------------------------------------------------------------------
def _check_name(archive: str, name: str) -> PurePosixPath:
    name = name.replace("\\", "/")
    p = PurePosixPath(name)
    if name.startswith("/") or (len(name) > 1 and name[1] == ":") or p.is_absolute():
        raise SceneError(f"{archive}: unsafe archive: absolute path {name!r}")
    if ".." in p.parts:
        raise SceneError(f"{archive}: unsafe archive: path {name!r} leaves the folder ('..')")
    return p


def _check_link(archive: str, member: PurePosixPath, target: str, hard: bool) -> None:
    t = target.replace("\\", "/")
    if t.startswith("/") or (len(t) > 1 and t[1] == ":"):
        raise SceneError(f"{archive}: unsafe archive: link {str(member)!r} -> {target!r} is absolute")
    parts = list(PurePosixPath(t).parts) if hard else list(member.parent.parts) + list(PurePosixPath(t).parts)
    depth = 0
    for part in parts:
        if part == "..":
            depth -= 1
            if depth < 0:
                raise SceneError(f"{archive}: unsafe archive: link {str(member)!r} -> {target!r} leaves the folder")
        elif part not in ("", "."):
            depth += 1


def _too_big(archive: str, total: int, limit: int) -> SceneError:
    return SceneError(f"{archive}: archive unpacks to more than {limit} bytes (limit; got at least {total})")


def safe_extract(archive, dest, max_bytes: int = SCENE_MAX_UNPACKED_BYTES, label: str | None = None) -> int:
    """Unpack a .zip or .tar.gz into `dest`, rejecting absolute paths, '..', links that leave the folder,
    device/fifo entries and more than `max_bytes` unpacked. Returns the bytes written. Errors name
    `label` (e.g. the URI it came from) or else the archive path."""
    path, dest = str(archive), Path(dest)
    name = label or path
    dest.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(path):
        return _extract_zip(path, dest, max_bytes, name)
    try:
        tf = tarfile.open(path, "r:*")  # noqa: SIM115 - closed by the `with` below
    except (tarfile.TarError, OSError, EOFError, zlib_error()) as err:
        raise SceneError(f"{name}: corrupt or unknown archive (not .zip/.tar.gz): {err}") from None
    with tf:
        return _extract_tar(name, tf, dest, max_bytes)


def _extract_tar(archive: str, tf: tarfile.TarFile, dest: Path, max_bytes: int) -> int:
    try:
        members = tf.getmembers()
    except (tarfile.TarError, OSError, EOFError, zlib_error()) as err:
        raise SceneError(f"{archive}: corrupt archive: {err}") from None
    total = 0
    for m in members:
        p = _check_name(archive, m.name)
        if m.ischr() or m.isblk() or m.isfifo() or m.isdev():
            raise SceneError(f"{archive}: unsafe archive: {m.name!r} is a device or fifo")
        if m.issym() or m.islnk():
            _check_link(archive, p, m.linkname, hard=m.islnk())
        elif not (m.isfile() or m.isdir()):
            raise SceneError(f"{archive}: unsafe archive: {m.name!r} has an unsupported type")
        total += max(0, m.size) if m.isfile() else 0
        if total > max_bytes:
            raise _too_big(archive, total, max_bytes)
    written = 0
    try:
        for m in members:
            target = dest / PurePosixPath(m.name.replace("\\", "/"))
            if m.isdir():
                target.mkdir(parents=True, exist_ok=True)
            elif m.isfile():
                target.parent.mkdir(parents=True, exist_ok=True)
                src = tf.extractfile(m)
                with open(target, "wb") as out:
                    while chunk := src.read(_CHUNK):
                        written += len(chunk)
                        if written > max_bytes:
                            raise _too_big(archive, written, max_bytes)
                        out.write(chunk)
        for m in members:  # links last, so their targets exist
            if m.issym() or m.islnk():
                target = dest / PurePosixPath(m.name)
                target.parent.mkdir(parents=True, exist_ok=True)
                if m.issym():
                    os.symlink(m.linkname, target)
                else:
                    shutil.copyfile(dest / PurePosixPath(m.linkname), target)
                _inside_or_fail(archive, dest, target)
    except SceneError:
        raise
    except (tarfile.TarError, OSError, EOFError, zlib_error()) as err:
        raise SceneError(f"{archive}: corrupt archive: {_inside_words(err, dest)}") from None
    return written


def _inside_words(err: BaseException, dest: Path) -> str:
    """An extraction error in words that name archive members, never the temporary folder they unpack to."""
    if isinstance(err, OSError) and (err.filename or err.filename2):
        def member(name):
            try:
                return PurePosixPath(Path(name).relative_to(dest)).as_posix()
            except ValueError:
                return "?"

        names = " -> ".join(repr(member(n)) for n in (err.filename, err.filename2) if n)
        return f"{err.strerror or type(err).__name__}: {names}"
    return str(err)


def zlib_error():
    import zlib

    return zlib.error


def _inside_or_fail(archive: str, dest: Path, target: Path) -> None:
    root = dest.resolve()
    real = target.resolve()
    if real != root and root not in real.parents:
        target.unlink(missing_ok=True)
        raise SceneError(f"{archive}: unsafe archive: {target.relative_to(dest)} leaves the folder")


def _extract_zip(path: str, dest: Path, max_bytes: int, archive: str) -> int:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        raise SceneError(f"{archive}: corrupt zip: {err}") from None
    with zf:
        infos = zf.infolist()
        total = 0
        links = []
        for info in infos:
            p = _check_name(archive, info.filename)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                links.append((info, p))
            elif mode and (stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode)):
                raise SceneError(f"{archive}: unsafe archive: {info.filename!r} is a device or fifo")
            total += info.file_size
            if total > max_bytes:
                raise _too_big(archive, total, max_bytes)
        written = 0
        link_ids = {id(info) for info, _ in links}
        try:
            for info in infos:
                if id(info) in link_ids:
                    continue
                target = dest / PurePosixPath(info.filename.replace("\\", "/"))
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as out:
                    while chunk := src.read(_CHUNK):
                        written += len(chunk)
                        if written > max_bytes:  # header sizes can lie; count what really comes out
                            raise _too_big(archive, written, max_bytes)
                        out.write(chunk)
            for info, p in links:
                link_target = zf.read(info).decode("utf-8", "replace")
                _check_link(archive, p, link_target, hard=False)
                target = dest / p
                target.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(link_target, target)
                _inside_or_fail(archive, dest, target)
        except SceneError:
            raise
        except (zipfile.BadZipFile, OSError, EOFError, zlib_error()) as err:
            raise SceneError(f"{archive}: corrupt zip: {_inside_words(err, dest)}") from None
    return written


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
    files = _bundle_files(folder)
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
        check_scene_files(folder, src)
        sha = bundle_hash(folder)
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
        got = bundle_hash(root)
        if expected is not None and got != expected:
            raise SceneHashMismatch(source, expected, got)
        final = cache / got
        if not (final / SCENE_FILE).is_file():
            if final.exists():  # a broken leftover; replace it
                shutil.rmtree(final, ignore_errors=True)
            try:
                os.rename(root, final)
            except OSError:
                if not (final / SCENE_FILE).is_file():
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
            if SHA256_RE.match(sha) and (cache / sha / SCENE_FILE).is_file():
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
        raise SceneError(f"scene {err}") from None


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
        if sha256 is not None and (cache / sha256 / SCENE_FILE).is_file():
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
    if sha256 is not None and (cache / sha256 / SCENE_FILE).is_file():
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
    if (cache / published / SCENE_FILE).is_file():
        return cache / published
    archive_uri = storage.join(scene, archive_name)
    with _lock(cache / f"{published}.lock"):
        if (cache / published / SCENE_FILE).is_file():
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
            return bundle_hash(_verify_scene(_bundle_root(Path(tmp) / "x", str(p)), str(p)))
    if not p.is_dir():
        raise SceneError(f"{p}: not a folder or a .zip/.tar.gz archive")
    if (p / SCENE_FILE).is_file():
        check_scene_files(p, str(p))
    return bundle_hash(p)
