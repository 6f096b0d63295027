"""What a scene bundle may hold, and the one check that enforces it wherever a bundle is read.

The rule: a bundle is regular files and folders, nothing else. No symbolic links, no hard links, no devices,
fifos or sockets, in a folder or in an archive. A scene needs no links, and refusing them all closes every way
a link (or a chain of links, each harmless on its own) could make a bundle read, hash, copy or upload a
file outside it: the host's /etc/passwd, /proc/self/environ with the store's secret, or itself in a loop.

`check_entry` is that rule, for one entry; it is applied by
  * `bundle_files(folder)`: the walk behind hashing, scene checks, `scene push` and the cache (lstat only,
    never following a link);
  * `copy_bundle_files`: the winner scene export;
  * `safe_extract`: every member of a .zip / .tar.gz before anything is written (also no absolute paths,
    no '..', and at most `max_bytes` unpacked).
A refusal is one SceneError line naming the bundle and the entry (exit 2); nothing is written.
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from optimizer.constants import SCENE_MAX_UNPACKED_BYTES
from optimizer.errors import SceneError

CHUNK = 1 << 20  # bytes read at a time when copying or hashing bundle files

_RULE = "a scene bundle holds only files and folders (copy the file in instead of linking it)"


def check_entry(source: str, container: str, name: str, mode: int, hard_link: bool = False) -> None:
    """SceneError unless the entry `name` (st_mode `mode`) of `container` ("scene folder", "archive") is a
    regular file or a folder that is not a hard link."""
    if stat.S_ISLNK(mode):
        what = "a symbolic link"
    elif hard_link:
        what = "a hard link"
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
        what = "a device, fifo or socket"
    elif not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        what = "of an unsupported type"
    else:
        return
    raise SceneError(f"{source}: unsafe {container}: {name!r} is {what}; {_RULE}")


# --- folders -------------------------------------------------------------------------------------------
def bundle_files(folder, source: str | None = None) -> list[str]:
    """Sorted '/'-relative paths of the regular files under `folder`, after `check_entry` on every entry
    (links are refused, never followed). Errors name `source` (default: the folder)."""
    folder = Path(folder)
    source = source or str(folder)

    def unreadable(err: OSError) -> None:
        raise SceneError(f"{source}: cannot read the scene folder: {err.strerror or err}") from None

    out = []
    for dirpath, dirnames, filenames in os.walk(folder, onerror=unreadable, followlinks=False):
        dirnames.sort()
        for name in dirnames + filenames:  # a link to a folder is listed in dirnames, and not entered
            p = Path(dirpath) / name
            rel = p.relative_to(folder).as_posix()
            try:
                st = os.lstat(p)
            except OSError as err:
                unreadable(err)
            is_file = stat.S_ISREG(st.st_mode)
            check_entry(source, "scene folder", rel, st.st_mode, hard_link=is_file and st.st_nlink > 1)
            if is_file:
                out.append(rel)
    return sorted(out)


def copy_bundle_files(src, dest, source: str | None = None) -> int:
    """Copy the files of bundle folder `src` into `dest` (bundle_files: no link is followed or copied);
    returns the file count. Everything is checked before the first file is copied."""
    src, dest = Path(src), Path(dest)
    files = bundle_files(src, source)
    for rel in files:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / rel, target, follow_symlinks=False)
    return len(files)


# --- archives ------------------------------------------------------------------------------------------
def _check_name(archive: str, name: str) -> PurePosixPath:
    name = name.replace("\\", "/")
    p = PurePosixPath(name)
    if name.startswith("/") or (len(name) > 1 and name[1] == ":") or p.is_absolute():
        raise SceneError(f"{archive}: unsafe archive: absolute path {name!r}")
    if ".." in p.parts:
        raise SceneError(f"{archive}: unsafe archive: path {name!r} leaves the folder ('..')")
    return p


def _tar_mode(m: tarfile.TarInfo) -> int:
    """A tar member's type as an st_mode file type (0: none that a file system has)."""
    for test, kind in ((m.isreg, stat.S_IFREG), (m.isdir, stat.S_IFDIR), (m.issym, stat.S_IFLNK),
                       (m.islnk, stat.S_IFREG), (m.ischr, stat.S_IFCHR), (m.isblk, stat.S_IFBLK),
                       (m.isfifo, stat.S_IFIFO)):
        if test():
            return kind
    return 0


def _zip_mode(info: zipfile.ZipInfo) -> int:
    """A zip entry's st_mode file type (entries made without Unix modes are plain files or folders)."""
    kind = stat.S_IFMT(info.external_attr >> 16)
    if kind:
        return kind
    return stat.S_IFDIR if info.is_dir() else stat.S_IFREG


def _too_big(archive: str, total: int, limit: int) -> SceneError:
    return SceneError(f"{archive}: archive unpacks to more than {limit} bytes (limit; got at least {total})")


def zlib_error():
    import zlib

    return zlib.error


def safe_extract(archive, dest, max_bytes: int = SCENE_MAX_UNPACKED_BYTES, label: str | None = None) -> int:
    """Unpack a .zip or .tar.gz into `dest` after checking every member: no absolute paths, no '..', only
    files and folders (`check_entry`: no links of any kind, devices or fifos), at most `max_bytes`
    unpacked. Returns the bytes written. Errors name `label` (e.g. the URI it came from) or the archive."""
    path, dest = str(archive), Path(dest)
    name = label or path
    if zipfile.is_zipfile(path):
        return _extract_zip(path, dest, max_bytes, name)
    try:
        tf = tarfile.open(path, "r:*")  # noqa: SIM115 - closed by the `with` below
    except (tarfile.TarError, OSError, EOFError, zlib_error()) as err:
        reason = " ".join(str(err).split())  # tarfile lists every method it tried, one per line
        raise SceneError(f"{name}: corrupt or unknown archive (not .zip/.tar.gz): {reason}") from None
    with tf:
        return _extract_tar(name, tf, dest, max_bytes)


def _write_member(src, target: Path, written: int, max_bytes: int, archive: str) -> int:
    """Stream one member into `target` (a new regular file); returns `written` plus its bytes."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "wb") as out:
        while chunk := src.read(CHUNK):
            written += len(chunk)
            if written > max_bytes:  # header sizes can lie; count what really comes out
                raise _too_big(archive, written, max_bytes)
            out.write(chunk)
    return written


def _extract_tar(archive: str, tf: tarfile.TarFile, dest: Path, max_bytes: int) -> int:
    try:
        members = tf.getmembers()
    except (tarfile.TarError, OSError, EOFError, zlib_error()) as err:
        raise SceneError(f"{archive}: corrupt archive: {err}") from None
    _check_members(archive, [(m.name, _tar_mode(m), m.islnk(), max(0, m.size) if m.isfile() else 0)
                             for m in members], max_bytes)
    dest.mkdir(parents=True, exist_ok=True)
    written = 0
    try:
        for m in members:
            target = dest / PurePosixPath(m.name.replace("\\", "/"))
            if m.isdir():
                target.mkdir(parents=True, exist_ok=True)
            else:
                written = _write_member(tf.extractfile(m), target, written, max_bytes, archive)
    except SceneError:
        raise
    except (tarfile.TarError, OSError, EOFError, zlib_error()) as err:
        raise SceneError(f"{archive}: corrupt archive: {_inside_words(err, dest)}") from None
    return written


def _check_members(archive: str, members: list[tuple[str, int, bool, int]], max_bytes: int) -> None:
    """Every member (name, st_mode, is a hard link, size [bytes]) of an archive checked before anything is
    written: its name, `check_entry`, and the running unpacked size against `max_bytes`."""
    total = 0
    for name, mode, hard_link, size in members:
        _check_name(archive, name)
        check_entry(archive, "archive", name, mode, hard_link=hard_link)
        total += size
        if total > max_bytes:
            raise _too_big(archive, total, max_bytes)


def _extract_zip(path: str, dest: Path, max_bytes: int, archive: str) -> int:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        raise SceneError(f"{archive}: corrupt zip: {err}") from None
    with zf:
        infos = zf.infolist()
        _check_members(archive, [(i.filename, _zip_mode(i), False, i.file_size) for i in infos], max_bytes)
        dest.mkdir(parents=True, exist_ok=True)
        written = 0
        try:
            for info in infos:
                target = dest / PurePosixPath(info.filename.replace("\\", "/"))
                if stat.S_ISDIR(_zip_mode(info)):
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                with zf.open(info) as src:
                    written = _write_member(src, target, written, max_bytes, archive)
        except SceneError:
            raise
        except (zipfile.BadZipFile, OSError, EOFError, zlib_error()) as err:
            raise SceneError(f"{archive}: corrupt zip: {_inside_words(err, dest)}") from None
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
