"""Hostile scene bundles built from links (issue 22): every link in a bundle is refused, wherever the bundle is
read, unpacked, hashed, copied or uploaded, with one line and exit 2, before anything is written.

Each archive here passes the per-link checks of older versions (every link, on its own, points inside the
bundle) yet resolves outside it through a chain: `meshes/pw -> ../z/d0/.../d11/` + `../` x 12 + the target,
with `z/dN -> .`. The hash question is answered by refusal: a bundle with a link is refused before it is
hashed (`bundle_hash` raises), so no tainted bundle ever gets the clean bundle's hash."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from optimizer.cli import main
from optimizer.errors import SceneError
from optimizer.store import assets, storage

DEPTH = 12


def make_scene(d: Path) -> Path:
    (d / "meshes").mkdir(parents=True)
    (d / "scene.xml").write_text('<scene version="2.1.0"><shape type="ply"><string name="filename" '
                                 'value="meshes/floor.ply"/></shape></scene>\n')
    (d / "meshes" / "floor.ply").write_bytes(b"ply\n" * 50)
    return d


def chain(target: str) -> str:
    """A link target, relative to `meshes/`, that stays inside the bundle by text but leaves it through z/dN."""
    return "../z/" + "/".join(f"d{k}" for k in range(DEPTH)) + "/" + "../" * DEPTH + target


def chain_links(name: str, target: str) -> list[tuple[str, str]]:
    return [(f"meshes/{name}", chain(target))] + [(f"z/d{k}", ".") for k in range(DEPTH)]


def write_tar(path: Path, scene: Path, links) -> Path:
    """A .tar.gz of the files of `scene` plus the symbolic links `links` [(name, target)], links first."""
    with tarfile.open(path, "w:gz") as tf:
        for name, target in links:
            ti = tarfile.TarInfo(name)
            ti.type, ti.linkname = tarfile.SYMTYPE, target
            tf.addfile(ti)
        for f in sorted(p for p in scene.rglob("*") if p.is_file()):
            data = f.read_bytes()
            ti = tarfile.TarInfo(f.relative_to(scene).as_posix())
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    return path


def write_zip(path: Path, scene: Path, links) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, target in links:
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o120777 << 16
            zf.writestr(info, target)
        for f in sorted(p for p in scene.rglob("*") if p.is_file()):
            zf.writestr(f.relative_to(scene).as_posix(), f.read_bytes())
    return path


HOSTILE = {  # name: the links, as (name, target) relative to the bundle
    "chain-to-passwd": chain_links("pw", "etc/passwd"),
    "chain-to-folder": chain_links("etc", "etc"),
    "chain-to-environ": chain_links("env", "proc/self/environ"),
    "loop": [("meshes/loop", ".")],
}


def host_bytes_under(root: Path) -> list[Path]:
    """Files under `root` holding the host's /etc/passwd or anything of this process's environment file."""
    passwd = Path("/etc/passwd").read_bytes()
    environ = Path("/proc/self/environ").read_bytes().split(b"\0")[0]
    return [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()
            and (p.read_bytes() == passwd or (environ and environ in p.read_bytes()))]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("REFLECTOPT_CACHE_DIR", str(d))
    return d


def cache_entries(cache: Path) -> list[str]:
    return [p.name for p in cache.iterdir() if len(p.name) == 64] if cache.exists() else []


# --- archives --------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["tar.gz", "zip"])
@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_archive_is_refused_by_every_command(kind, fmt, s3_bucket, tmp_path, cache, capsys):
    """`scene hash`, `scene push`, `scene pull` and a run's resolve refuse the archive: one line, exit 2, no
    cache entry, nothing uploaded, nothing unpacked; refused before hashing (no hash is printed)."""
    clean = make_scene(tmp_path / "clean")
    arc = (write_tar if fmt == "tar.gz" else write_zip)(tmp_path / f"bad.{fmt}", clean, HOSTILE[kind])
    uri = f"s3://{s3_bucket}/scenes/{kind}"
    for argv in (["scene", "hash", str(arc)], ["scene", "push", str(arc), uri], ["scene", "pull", str(arc)]):
        assert main(argv) == 2, argv
        out, err = capsys.readouterr()
        lines = err.strip().splitlines()
        assert out == "" and len(lines) == 1 and "is a symbolic link" in lines[0], (argv, out, err)
        assert "Traceback" not in err
    with pytest.raises(SceneError, match=r"bad\.(tar\.gz|zip): unsafe archive: 'meshes/"):
        assets.safe_extract(arc, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert storage.list(f"s3://{s3_bucket}/scenes", recursive=True) == []
    assert cache_entries(cache) == [] and not any((cache / ".tmp").iterdir())
    assert host_bytes_under(tmp_path) == []


def test_tainted_bundle_under_a_clean_manifest_is_refused(s3_bucket, tmp_path, cache, capsys):
    """A bucket writer swaps bundle.tar.gz for the clean files plus a chain of links to a folder, and keeps
    the clean `sha256` in bundle.json: older versions hashed it like the clean bundle (a link to a folder was
    not hashed) and installed it under the clean hash. Now: exit 2, nothing installed."""
    clean = make_scene(tmp_path / "clean")
    uri = f"s3://{s3_bucket}/scenes/indoor"
    sha = assets.push_bundle(clean, uri)
    bad = write_tar(tmp_path / "bad.tar.gz", clean, HOSTILE["chain-to-folder"])
    storage.upload_file(bad, f"{uri}/bundle.tar.gz")
    manifest = json.loads(storage.read_text(f"{uri}/bundle.json"))
    manifest["archive_sha256"] = hashlib.sha256(bad.read_bytes()).hexdigest()
    manifest["archive_bytes"] = bad.stat().st_size
    storage.write_text(f"{uri}/bundle.json", json.dumps(manifest))
    assert main(["scene", "pull", uri, "--sha256", sha]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"reflectopt: error: {uri}: unsafe archive: 'meshes/etc' is a symbolic link")
    assert cache_entries(cache) == [] and not any((cache / ".tmp").iterdir())


def test_tainted_folder_is_refused_before_hashing(tmp_path):
    """A link to a folder was left out of the hash, so a tainted folder hashed like the clean one. Now
    `bundle_hash` refuses it (the hash is never computed), and the clean one still hashes."""
    clean = make_scene(tmp_path / "clean")
    tainted = make_scene(tmp_path / "tainted")
    (tainted / "meshes" / "etc").symlink_to("/etc")
    with pytest.raises(SceneError, match="tainted: unsafe scene folder: 'meshes/etc' is a symbolic link"):
        assets.bundle_hash(tainted)
    assert len(assets.bundle_hash(clean)) == 64


def test_tainted_cache_entry_is_replaced_not_used(s3_bucket, tmp_path, cache):
    """An entry an older version unpacked with links in it, under the clean hash: a pinned pull neither
    trusts nor returns it; it fetches, verifies and replaces it with the clean bundle."""
    clean = make_scene(tmp_path / "clean")
    uri = f"s3://{s3_bucket}/scenes/indoor"
    sha = assets.push_bundle(clean, uri)
    make_scene(cache / sha)
    (cache / sha / "meshes" / "pw").symlink_to("/etc/passwd")
    got = assets.resolve_scene(uri, sha256=sha)
    assert got == cache / sha and not (got / "meshes" / "pw").is_symlink()
    assert sorted(assets.bundle_files(got)) == ["meshes/floor.ply", "scene.xml"]
    assert len(assets.downloads_logged()) == 1


# --- folders ---------------------------------------------------------------------------------------
FOLDER_LINKS = {  # name: (link path, its target) in a scene folder
    "file-outside": ("meshes/pw", "/etc/passwd"),
    "folder-outside": ("meshes/etc", "/etc"),
    "environ": ("meshes/env", "/proc/self/environ"),
    "loop": ("meshes/loop", "."),
    "chain": ("meshes/pw", chain("etc/passwd")),
    "scene-xml": ("scene.xml", "meshes/floor.ply"),
}


def hostile_folder(tmp_path: Path, kind: str) -> Path:
    d = make_scene(tmp_path / "scene")
    name, target = FOLDER_LINKS[kind]
    if kind == "chain":
        (d / "z").mkdir()
        for k in range(DEPTH):
            (d / "z" / f"d{k}").symlink_to(".")
    if kind == "scene-xml":
        (d / name).unlink()
    (d / name).symlink_to(target)
    return d


@pytest.mark.parametrize("kind", sorted(FOLDER_LINKS))
def test_hostile_folder_is_refused_by_every_command(kind, s3_bucket, tmp_path, cache, capsys):
    """A scene folder with a link: resolve (what a run does first), hash, push and kube's hash refuse it with
    one line naming the link, exit 2; nothing is uploaded and no host file is copied anywhere."""
    d = hostile_folder(tmp_path, kind)
    name = FOLDER_LINKS[kind][0]
    uri = f"s3://{s3_bucket}/scenes/{kind}"
    want = f"{d}: unsafe scene folder: '{name}' is a symbolic link"
    for argv in (["scene", "hash", str(d)], ["scene", "push", str(d), uri], ["scene", "pull", str(d)]):
        assert main(argv) == 2, argv
        out, err = capsys.readouterr()
        assert out == "" and err.strip().splitlines() == [f"reflectopt: error: {want}; a scene bundle holds "
                                                           "only files and folders (copy the file in instead "
                                                           "of linking it)"], (argv, err)
    with pytest.raises(SceneError, match=want):
        assets.bundle_hash(d)
    assert storage.list(f"s3://{s3_bucket}/scenes", recursive=True) == []
    assert host_bytes_under(tmp_path) == [] and cache_entries(cache) == []


def test_hard_link_in_a_folder_is_refused(tmp_path):
    d = make_scene(tmp_path / "scene")
    (d / "meshes" / "twin.ply").hardlink_to(d / "meshes" / "floor.ply")
    with pytest.raises(SceneError, match="unsafe scene folder: 'meshes/(floor|twin).ply' is a hard link"):
        assets.resolve_scene(str(d))


def test_scene_xml_path_is_checked_like_its_folder(tmp_path):
    """`scene: FOLDER/scene.xml` goes through the same checks as `scene: FOLDER`; an XML under another name
    has its meshes/ checked before the run starts, not when the winner is exported."""
    from optimizer.physics.scene import scene_source_path

    d = hostile_folder(tmp_path, "loop")
    with pytest.raises(SceneError, match="'meshes/loop' is a symbolic link"):
        scene_source_path(str(d / "scene.xml"))
    (d / "scene.xml").rename(d / "other.xml")  # what the winner export will copy is checked up front
    with pytest.raises(SceneError, match="meshes: unsafe scene folder: 'loop' is a symbolic link"):
        scene_source_path(str(d / "other.xml"))


# --- the winner scene export -----------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["file-outside", "folder-outside", "environ", "loop"])
def test_winner_export_copies_no_link(kind, tmp_path):
    """export_with_plate copies the scene's meshes/ without following a link: a scene that gained one is
    refused with one SceneError line (older versions copied /etc/passwd or /etc into winner_scene/, or
    recursed through a loop into a 28-line traceback)."""
    from optimizer.physics.scene import RadioScene
    from optimizer.records import PlatePose

    d = hostile_folder(tmp_path, kind)
    stub = SimpleNamespace(scene_xml=d / "scene.xml", exp=SimpleNamespace(plates=lambda: []))
    dest = tmp_path / "out" / "winner_scene"
    with pytest.raises(SceneError, match=f"'{FOLDER_LINKS[kind][0].split('/')[1]}' is a symbolic link"):
        RadioScene.export_with_plate(stub, PlatePose(0.0, 0.0, 1.0, 0.0), dest)
    assert not (dest / "meshes").exists() and host_bytes_under(tmp_path) == []
