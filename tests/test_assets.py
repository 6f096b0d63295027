"""Scene bundles: hashing, push/pull through a real S3 server, the node cache, safe extraction."""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import tarfile
import zipfile
from pathlib import Path

import pytest

from optimizer.store import assets, storage
from optimizer.cli import main
from optimizer.errors import SceneError


def make_scene(d: Path, mesh_bytes: int = 50_000, seed: int = 1) -> Path:
    (d / "meshes").mkdir(parents=True)
    (d / "scene.xml").write_text('<scene version="2.1.0"><shape type="ply"><string name="filename" '
                                 'value="meshes/floor.ply"/></shape></scene>\n')
    (d / "meshes" / "floor.ply").write_bytes(bytes((i * seed) % 251 for i in range(mesh_bytes)))
    (d / "meshes" / "wall.ply").write_bytes(b"ply\n" * 100)
    return d


@pytest.fixture
def cache(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("REFLECTOPT_CACHE_DIR", str(d))
    return d


def same_tree(a: Path, b: Path) -> bool:
    fa, fb = storage.list(a, recursive=True), storage.list(b, recursive=True)
    return fa == fb and all((a / f).read_bytes() == (b / f).read_bytes() for f in fa)


# --- hashing ---------------------------------------------------------------------------------------
def test_bundle_hash_content_only(tmp_path):
    a = make_scene(tmp_path / "a")
    h = assets.bundle_hash(a)
    assert len(h) == 64
    os.utime(a / "scene.xml", (1, 1))
    assert assets.bundle_hash(a) == h  # mtimes do not count
    (a / "meshes" / "wall.ply").rename(a / "meshes" / "wall2.ply")
    assert assets.bundle_hash(a) != h  # names do
    (a / "meshes" / "wall2.ply").rename(a / "meshes" / "wall.ply")
    (a / "meshes" / "wall.ply").write_bytes(b"ply\n" * 99 + b"plx\n")
    assert assets.bundle_hash(a) != h  # bytes do


# --- push and pull through S3 ----------------------------------------------------------------------
def test_push_pull_and_cache_hit(s3_bucket, tmp_path, cache, monkeypatch):
    src = make_scene(tmp_path / "scene")
    uri = f"s3://{s3_bucket}/scenes/indoor"
    sha = assets.push_bundle(src, uri)
    assert sha == assets.bundle_hash(src)
    manifest = json.loads(storage.read_text(f"{uri}/bundle.json"))
    assert manifest["sha256"] == sha and manifest["files"] == 3 and manifest["archive"] == "bundle.tar.gz"
    assert storage.list(uri) == ["bundle.json", "bundle.tar.gz"]

    before = dict(assets.DOWNLOADS)
    first = assets.resolve_scene(uri)
    assert first == cache / sha and same_tree(first, src)
    assert assets.DOWNLOADS["count"] == before["count"] + 1
    assert assets.DOWNLOADS["bytes"] == before["bytes"] + manifest["archive_bytes"]
    assert json.loads((cache / f"{sha}.json").read_text())["bytes_downloaded"] == manifest["archive_bytes"]

    # a second world on the same node: no download
    assert assets.resolve_scene(uri) == first
    assert assets.DOWNLOADS["count"] == before["count"] + 1
    assert len(assets.downloads_logged()) == 1
    # pinned and cached: not even the manifest is read
    monkeypatch.setattr(storage, "client", lambda: (_ for _ in ()).throw(AssertionError("network used")))
    assert assets.resolve_scene(uri, sha256=sha) == first
    assert not list((cache / ".tmp").iterdir())


def _resolve_in_child(args):
    uri, cache_dir = args
    return str(assets.resolve_scene(uri, cache_dir=cache_dir))


def test_concurrent_worlds_share_one_download(s3_bucket, tmp_path):
    src = make_scene(tmp_path / "scene", mesh_bytes=2_000_000)
    uri = f"s3://{s3_bucket}/scenes/big"
    sha = assets.push_bundle(src, uri)
    cache_dir = str(tmp_path / "nodecache")
    with multiprocessing.get_context("fork").Pool(4) as pool:
        paths = pool.map(_resolve_in_child, [(uri, cache_dir)] * 4)
    assert set(paths) == {str(Path(cache_dir) / sha)}
    log = assets.downloads_logged(cache_dir)
    assert len(log) == 1 and log[0]["sha256"] == sha


def test_pinned_hash_mismatch(s3_bucket, tmp_path, cache):
    src = make_scene(tmp_path / "scene")
    uri = f"s3://{s3_bucket}/scenes/a"
    sha = assets.push_bundle(src, uri)
    wrong = "0" * 64
    with pytest.raises(SceneError, match=rf"{uri}: hash mismatch: expected {wrong} got {sha}"):
        assets.resolve_scene(uri, sha256=wrong)
    assert not (cache / wrong).exists() and assets.downloads_logged() == []


def test_tampered_archive_is_rejected(s3_bucket, tmp_path, cache):
    src = make_scene(tmp_path / "scene")
    uri = f"s3://{s3_bucket}/scenes/a"
    sha = assets.push_bundle(src, uri)
    storage.write_bytes(f"{uri}/bundle.tar.gz", b"\x1f\x8b garbage")
    with pytest.raises(SceneError, match=rf"{uri}: corrupt download: archive sha256 expected"):
        assets.resolve_scene(uri)
    # a consistent-looking manifest over different content: caught by the content hash
    other = make_scene(tmp_path / "other", seed=3)
    fields = assets.write_bundle_archive(other, tmp_path / "o.tar.gz")
    storage.upload_file(tmp_path / "o.tar.gz", f"{uri}/bundle.tar.gz")
    manifest = json.loads(storage.read_text(f"{uri}/bundle.json"))
    manifest.update(fields)
    storage.write_text(f"{uri}/bundle.json", json.dumps(manifest))
    with pytest.raises(SceneError, match=f"hash mismatch: expected {sha} got {assets.bundle_hash(other)}"):
        assets.resolve_scene(uri)
    assert not (cache / sha).exists() and not list((cache / ".tmp").iterdir())


def test_missing_bundle_and_store(s3_bucket, cache):
    with pytest.raises(SceneError, match=rf"s3://{s3_bucket}/scenes/none: no such bundle"):
        assets.resolve_scene(f"s3://{s3_bucket}/scenes/none")
    with pytest.raises(SceneError, match=rf"s3://{s3_bucket}/x.zip: no such bundle"):
        assets.resolve_scene(f"s3://{s3_bucket}/x.zip")


def test_repush_same_content_uploads_nothing(s3_bucket, tmp_path, monkeypatch):
    src = make_scene(tmp_path / "scene")
    uri = f"s3://{s3_bucket}/scenes/a"
    sha = assets.push_bundle(src, uri)
    calls = []
    monkeypatch.setattr(storage, "upload_file", lambda *a: calls.append(a))
    assert assets.push_bundle(src, uri) == sha and calls == []
    (src / "scene.xml").write_text("<scene/>")
    assets.push_bundle(src, uri)
    assert len(calls) == 1  # changed content: the archive goes up again


def test_raw_archive_object_on_s3(s3_bucket, tmp_path, cache):
    src = make_scene(tmp_path / "scene")
    zpath = tmp_path / "scene.zip"
    with zipfile.ZipFile(zpath, "w") as z:  # `zip -r scene.zip scene/`: one top-level folder
        for f in storage.list(src, recursive=True):
            z.write(src / f, f"scene/{f}")
    storage.upload_file(zpath, f"s3://{s3_bucket}/raw/scene.zip")
    p = assets.resolve_scene(f"s3://{s3_bucket}/raw/scene.zip")
    assert same_tree(p, src) and p.name == assets.bundle_hash(src)
    assert assets.resolve_scene(f"s3://{s3_bucket}/raw/scene.zip") == p
    assert len(assets.downloads_logged()) == 1


# --- local scenes ----------------------------------------------------------------------------------
def test_local_folder_and_archive(tmp_path, cache):
    src = make_scene(tmp_path / "scene")
    assert assets.resolve_scene(str(src)) == src
    assert assets.resolve_scene(str(src / "scene.xml")) == src
    with pytest.raises(SceneError, match="hash mismatch"):
        assets.resolve_scene(str(src), sha256="f" * 64)
    with pytest.raises(SceneError, match="no such file or folder"):
        assets.resolve_scene(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SceneError, match="no scene.xml"):
        assets.resolve_scene(str(tmp_path / "empty"))
    tgz = tmp_path / "scene.tar.gz"
    assets.write_bundle_archive(src, tgz)
    p = assets.resolve_scene(str(tgz))
    assert p == cache / assets.bundle_hash(src) and same_tree(p, src)
    assert assets.resolve_scene(str(tgz), sha256=p.name) == p


# --- safe extraction -------------------------------------------------------------------------------
def _tar(path: Path, entries):
    """entries: (name, kind, payload) with kind file|sym|hard|dev."""
    with tarfile.open(path, "w:gz") as tf:
        for name, kind, payload in entries:
            ti = tarfile.TarInfo(name)
            if kind == "file":
                ti.size = len(payload)
                tf.addfile(ti, io.BytesIO(payload))
                continue
            ti.type = {"sym": tarfile.SYMTYPE, "hard": tarfile.LNKTYPE, "dev": tarfile.CHRTYPE}[kind]
            ti.linkname = payload or ""
            tf.addfile(ti)
    return path


SCENE = ("scene.xml", "file", b"<scene/>")


@pytest.mark.parametrize("entry, reason", [
    (("../evil.txt", "file", b"x"), "leaves the folder"),
    (("a/../../evil.txt", "file", b"x"), "leaves the folder"),
    (("/tmp/evil.txt", "file", b"x"), "absolute path"),
    (("link", "sym", "../../etc/passwd"), "'link' is a symbolic link"),
    (("link", "sym", "/etc/passwd"), "'link' is a symbolic link"),
    (("sub/link", "sym", "../../x"), "'sub/link' is a symbolic link"),
    (("hl", "hard", "../outside"), "'hl' is a hard link"),
    (("dev", "dev", None), "device"),
])
def test_unsafe_tar_rejected(tmp_path, entry, reason):
    arc = _tar(tmp_path / "bad.tar.gz", [SCENE, entry])
    with pytest.raises(SceneError, match=f"bad.tar.gz: unsafe archive: .*{reason}"):
        assets.safe_extract(arc, tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "out" / "scene.xml").exists()


@pytest.mark.parametrize("link, reason", [(("m/b.ply", "sym", "a.ply"), "symbolic link"),
                                          (("c.ply", "hard", "m/a.ply"), "hard link")])
def test_links_inside_are_refused_too(tmp_path, link, reason):
    """A scene needs no links: even one that stays inside the bundle is refused (a chain of such links can
    leave it, tests/test_bundle_links.py), before anything is written."""
    arc = _tar(tmp_path / "in.tar.gz", [SCENE, ("m/a.ply", "file", b"abc"), link])
    with pytest.raises(SceneError, match=f"in.tar.gz: unsafe archive: '{link[0]}' is a {reason}"):
        assets.safe_extract(arc, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_unpacked_size_limit(tmp_path):
    arc = _tar(tmp_path / "big.tar.gz", [SCENE, ("m.ply", "file", b"\0" * 10_000)])
    with pytest.raises(SceneError, match="unpacks to more than 5000 bytes"):
        assets.safe_extract(arc, tmp_path / "out", max_bytes=5000)
    z = tmp_path / "bomb.zip"
    with zipfile.ZipFile(z, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("scene.xml", b"<scene/>")
        zf.writestr("m.ply", b"\0" * 1_000_000)  # compresses to ~1 kB
    assert z.stat().st_size < 5000
    with pytest.raises(SceneError, match="unpacks to more than 100000 bytes"):
        assets.safe_extract(z, tmp_path / "out2", max_bytes=100_000)


def test_zip_traversal_and_symlink_rejected(tmp_path):
    z = tmp_path / "bad.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("scene.xml", b"<scene/>")
        zf.writestr("../../evil.txt", b"x")
    with pytest.raises(SceneError, match="unsafe archive: path '../../evil.txt' leaves the folder"):
        assets.safe_extract(z, tmp_path / "out")
    z2 = tmp_path / "link.zip"
    with zipfile.ZipFile(z2, "w") as zf:
        info = zipfile.ZipInfo("link")
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "../../../etc/passwd")
    with pytest.raises(SceneError, match="link.zip: unsafe archive: 'link' is a symbolic link"):
        assets.safe_extract(z2, tmp_path / "out2")


def test_traversal_bundle_on_s3_fails_before_use(s3_bucket, tmp_path, cache):
    arc = _tar(tmp_path / "evil.tar.gz", [SCENE, ("../../evil.txt", "file", b"x")])
    uri = f"s3://{s3_bucket}/scenes/evil.tar.gz"
    storage.upload_file(arc, uri)
    with pytest.raises(SceneError, match=rf"{uri}: unsafe archive"):
        assets.resolve_scene(uri)
    assert [p.name for p in cache.iterdir() if p.is_dir() and len(p.name) == 64] == []
    assert not list((cache / ".tmp").iterdir()) and not (cache.parent / "evil.txt").exists()


def test_corrupt_local_archive(tmp_path, cache):
    bad = tmp_path / "broken.tar.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00 truncated")
    with pytest.raises(SceneError, match="broken.tar.gz: corrupt"):
        assets.resolve_scene(str(bad))


# --- CLI -------------------------------------------------------------------------------------------
def test_cli_push_hash_pull(s3_bucket, tmp_path, cache, capsys):
    src = make_scene(tmp_path / "scene")
    sha = assets.bundle_hash(src)
    uri = f"s3://{s3_bucket}/scenes/cli"
    assert main(["scene", "push", str(src), uri]) == 0
    out = capsys.readouterr().out
    assert f"scene: {uri}\n" in out and f"scene_sha256: {sha}\n" in out
    assert main(["scene", "hash", str(src)]) == 0
    assert capsys.readouterr().out.strip() == sha
    assert main(["scene", "pull", uri, "--sha256", sha]) == 0
    assert capsys.readouterr().out.strip() == str(cache / sha)
    assert main(["scene", "pull", f"s3://{s3_bucket}/scenes/none"]) == 2  # not a scene: bad input
    assert "no such bundle" in capsys.readouterr().err


# --- what a manifest and a scene.xml may point at ---------------------------------------------------
@pytest.mark.parametrize("bad", ["../../../../outside", "/etc", "ABCDEF" * 11 + "AB", "0" * 63, ""])
def test_manifest_sha256_must_be_a_hash(s3_bucket, tmp_path, cache, bad):
    """A manifest's sha256 names a cache folder: anything but 64 lowercase hex characters is rejected
    before any path is built from it (no folder returned, no lock file made outside the cache)."""
    outside = tmp_path / "outside"
    (outside / "scene.xml").parent.mkdir(parents=True)
    (outside / "scene.xml").write_text("<scene/>")
    uri = f"s3://{s3_bucket}/scenes/evil"
    assets.push_bundle(make_scene(tmp_path / "scene"), uri)
    manifest = json.loads(storage.read_text(f"{uri}/bundle.json"))
    storage.write_text(f"{uri}/bundle.json", json.dumps({**manifest, "sha256": bad}))
    with pytest.raises(SceneError, match="corrupt bundle manifest: sha256: .* is not a sha256"):
        assets.resolve_scene(uri)
    assert not list(tmp_path.rglob("*.lock"))
    with pytest.raises(SceneError, match="is not a sha256"):
        assets.resolve_scene(uri, sha256="../outside")


@pytest.mark.parametrize("ref, reason", [
    ("/etc/hostname", "is an absolute path"),
    ("../outside.ply", r"leaves the bundle \('..'\)"),
    ("meshes/missing.ply", "is not a file of the bundle"),
    ("$dir/floor.ply", r"uses a \$parameter"),
])
def test_scene_xml_may_load_only_bundle_files(s3_bucket, tmp_path, cache, ref, reason):
    src = make_scene(tmp_path / "scene")
    (src / "scene.xml").write_text(f'<scene version="2.1.0"><shape type="ply"><string name="filename" '
                                   f'value="{ref}"/></shape></scene>\n')
    with pytest.raises(SceneError, match=f"references .*, which {reason}"):
        assets.resolve_scene(str(src))  # a local folder, as a run uses it
    with pytest.raises(SceneError, match=reason):
        assets.push_bundle(src, f"s3://{s3_bucket}/scenes/x")  # nothing is uploaded
    assert not storage.exists(f"s3://{s3_bucket}/scenes/x/bundle.json")
    # a bundle pushed by an older version, unpacked into the cache: checked before it is installed
    archive = tmp_path / "b.tar.gz"
    assets.write_bundle_archive(src, archive)
    storage.upload_file(archive, f"s3://{s3_bucket}/raw/b.tar.gz")
    with pytest.raises(SceneError, match=reason):
        assets.resolve_scene(f"s3://{s3_bucket}/raw/b.tar.gz")
    assert not [p for p in cache.iterdir() if len(p.name) == 64]  # nothing installed


def test_extraction_errors_name_members_not_temporary_folders(tmp_path, cache):
    """A bundle with a file where its folder must go (`meshes` a file, then `meshes/a.ply`): the message
    names the members, not the temporary folder the bundle was being unpacked into."""
    archive = _tar(tmp_path / "broken.tar.gz", [SCENE, ("meshes", "file", b"x"), ("meshes/a.ply", "file", b"y")])
    with pytest.raises(SceneError) as err:
        assets.resolve_scene(str(archive))
    msg = str(err.value)
    assert msg.startswith(f"{archive}: corrupt archive: ") and "'meshes" in msg
    assert str(cache) not in msg and ".tmp" not in msg
