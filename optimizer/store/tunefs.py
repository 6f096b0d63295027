"""Ray Tune's storage filesystem for s3:// runs: a pyarrow filesystem whose every call is a boto3 call of
`optimizer.store.storage`, with its retry budget (`REFLECTOPT_S3_RETRY_S`).

Tune moves checkpoints and results with pyarrow, in the driver (experiment state, old checkpoints) and in
every world (its checkpoints, its restore). pyarrow's own S3 retry strategy counts tries, not time, and
gave up within seconds when the store was down, so a short outage used up `search.max_failures` at once.
Here a transient error (connection refused or reset, timeouts, 5xx, throttling) is retried for the same
time as every other S3 call; what still fails raises `StoreUnreachable`, which the run turns into one
line and status "failed" (resumable). The calls are plain boto3, not pyarrow's S3 client: pyarrow runs
`copy_files` on its IO thread pool, and a handler that waited there on pyarrow's own S3 futures would
deadlock that pool.

Objects go through memory: a read downloads the whole object; a write uploads everything written so far on
every `write` (`copy_files`, which Tune uses, drops an error raised when a Python stream closes, but not one
raised by a write). Tune writes each file in one call (64 MB chunks); its files here are small. A folder
is a key prefix; `create_dir` writes the empty `key/` marker pyarrow's S3 filesystem writes.
"""

from __future__ import annotations

import io
import os

import pyarrow as pa
import pyarrow.fs as pafs

from optimizer.constants import S3_SCHEME
from optimizer.store import storage

_MISSING = object()


def _bucket_key(path: str) -> tuple[str, str]:
    return storage._split(S3_SCHEME + str(path).strip("/"))


def _uri(path: str) -> str:
    return S3_SCHEME + str(path).strip("/")


class _Upload:
    """The Python side of an output stream: the object holds everything written so far after each `write`
    (uploaded with retries); closing a stream nothing was written to uploads the empty object."""

    def __init__(self, path: str):
        self.path = path
        self.buf = io.BytesIO()
        self.uploaded = False
        self.closed = False

    def _put(self) -> None:
        storage.write_bytes(_uri(self.path), self.buf.getvalue())
        self.uploaded = True

    def write(self, data) -> int:
        n = self.buf.write(data)
        self._put()
        return n

    def flush(self) -> None:
        pass

    def tell(self) -> int:
        return self.buf.tell()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if not self.uploaded:
                self._put()


class S3Handler(pafs.FileSystemHandler):
    """`pyarrow.fs.FileSystemHandler` over `storage`'s boto3 client (paths are `bucket/key`). Stateless, so
    it pickles into every world with Tune's storage context; each process uses its own AWS chain."""

    def __eq__(self, other):
        return isinstance(other, S3Handler)

    def __ne__(self, other):
        return not isinstance(other, S3Handler)

    def __hash__(self):
        return hash(S3Handler)

    def get_type_name(self) -> str:
        return "reflectopt-s3"

    def normalize_path(self, path):
        return str(path).rstrip("/")

    # --- listing ------------------------------------------------------------------------------------------
    def _objects(self, path: str, recursive: bool = True, limit: int | None = None):
        """(keys, common prefixes) under the folder `path` (keys relative to the bucket)."""
        bucket, key = _bucket_key(path)
        prefix = f"{key}/" if key else ""
        c = storage.client()
        keys, prefixes, token = [], [], None
        while True:
            kw = {"Bucket": bucket, "Prefix": prefix}
            if not recursive:
                kw["Delimiter"] = "/"
            if limit:
                kw["MaxKeys"] = limit
            if token:
                kw["ContinuationToken"] = token
            resp = storage._call(_uri(path), "list", lambda kw=kw: c.list_objects_v2(**kw))
            keys += [(o["Key"], o.get("Size", 0), o.get("LastModified")) for o in resp.get("Contents", []) or []]
            prefixes += [p["Prefix"] for p in resp.get("CommonPrefixes", []) or []]
            if limit or not resp.get("IsTruncated"):
                return bucket, prefix, keys, prefixes
            token = resp.get("NextContinuationToken")

    def _info(self, path: str) -> pafs.FileInfo:
        bucket, key = _bucket_key(path)
        if not key:
            return pafs.FileInfo(bucket, pafs.FileType.Directory)
        c = storage.client()
        head = storage._call(_uri(path), "stat", lambda: c.head_object(Bucket=bucket, Key=key), missing_ok=True)
        if head is not None:
            return pafs.FileInfo(f"{bucket}/{key}", pafs.FileType.File, size=head.get("ContentLength", 0),
                                 mtime=head.get("LastModified"))
        _, _, keys, prefixes = self._objects(path, recursive=False, limit=1)
        kind = pafs.FileType.Directory if keys or prefixes else pafs.FileType.NotFound
        return pafs.FileInfo(f"{bucket}/{key}", kind)

    def get_file_info(self, paths):
        return [self._info(p) for p in paths]

    def get_file_info_selector(self, selector):
        base = selector.base_dir.strip("/")
        bucket, prefix, keys, prefixes = self._objects(base, recursive=selector.recursive)
        out, dirs = [], set()
        for key, size, mtime in keys:
            rel = key[len(prefix):]
            if not rel:
                continue  # the folder's own marker
            parts = rel.rstrip("/").split("/")
            for i in range(1, len(parts)):  # folders implied by the key
                dirs.add("/".join(parts[:i]))
            if rel.endswith("/"):
                dirs.add(rel.rstrip("/"))
            else:
                out.append(pafs.FileInfo(f"{bucket}/{key}", pafs.FileType.File, size=size, mtime=mtime))
        dirs.update(p[len(prefix):].rstrip("/") for p in prefixes)
        out += [pafs.FileInfo(f"{bucket}/{prefix}{d}", pafs.FileType.Directory) for d in sorted(dirs) if d]
        if not out and not selector.allow_not_found and self._info(base).type == pafs.FileType.NotFound:
            raise FileNotFoundError(f"{_uri(base)}: no such folder")
        return out

    # --- changes ------------------------------------------------------------------------------------------
    def create_dir(self, path, recursive):
        bucket, key = _bucket_key(path)
        if key:
            c = storage.client()
            storage._call(_uri(path), "create", lambda: c.put_object(Bucket=bucket, Key=key + "/", Body=b""))

    def _delete_keys(self, path: str, keys: list[str]) -> None:
        bucket, _ = _bucket_key(path)
        c = storage.client()
        for i in range(0, len(keys), 1000):
            batch = {"Objects": [{"Key": k} for k in keys[i:i + 1000]], "Quiet": True}
            storage._call(_uri(path), "delete", lambda b=batch: c.delete_objects(Bucket=bucket, Delete=b))

    def delete_dir(self, path):
        _, prefix, keys, _ = self._objects(path)
        if not keys:
            raise FileNotFoundError(f"{_uri(path)}: no such folder")
        self._delete_keys(path, [k for k, _, _ in keys])

    def delete_dir_contents(self, path, missing_dir_ok=False):
        _, prefix, keys, _ = self._objects(path)
        if not keys and not missing_dir_ok:
            raise FileNotFoundError(f"{_uri(path)}: no such folder")
        self._delete_keys(path, [k for k, _, _ in keys if k != prefix])

    def delete_root_dir_contents(self):
        raise pa.ArrowNotImplementedError("refusing to delete a whole bucket")

    def delete_file(self, path):
        storage.delete(_uri(path))

    def copy_file(self, src, dest):
        (sb, sk), (db, dk) = _bucket_key(src), _bucket_key(dest)
        c = storage.client()
        source = {"Bucket": sb, "Key": sk}
        storage._call(_uri(src), "copy", lambda: c.copy_object(Bucket=db, Key=dk, CopySource=source))

    def move(self, src, dest):
        self.copy_file(src, dest)
        self.delete_file(src)

    # --- streams ------------------------------------------------------------------------------------------
    def _read(self, path) -> pa.BufferReader:
        bucket, key = _bucket_key(path)
        c = storage.client()
        data = storage._call(_uri(path), "read", lambda: c.get_object(Bucket=bucket, Key=key)["Body"].read(),
                             missing_ok=True, missing=_MISSING)
        if data is _MISSING:
            raise FileNotFoundError(f"{_uri(path)}: no such object")
        return pa.BufferReader(data)

    def open_input_stream(self, path):
        return self._read(path)

    def open_input_file(self, path):
        return self._read(path)

    def open_output_stream(self, path, metadata):
        return pa.PythonFile(_Upload(path), mode="w")

    def open_append_stream(self, path, metadata):
        raise pa.ArrowNotImplementedError("append is not supported on object storage")


def s3_filesystem() -> pafs.PyFileSystem:
    """The filesystem Tune is given for an s3:// run (`storage.tune_storage`)."""
    return pafs.PyFileSystem(S3Handler())


def tune_storage(uri):
    """`(storage_path, storage_filesystem)` for `ray.tune.RunConfig`.

    S3: the path without the scheme and a pyarrow filesystem whose calls are `optimizer.store.storage`'s
    boto3 calls, with their retry budget. Credentials are left to the AWS chain of each process
    (environment, profile, web identity), so none are pickled into Ray tasks. Local: an absolute path and
    None.
    """
    uri = str(uri)
    if not storage.is_remote(uri):
        return os.path.abspath(os.path.expanduser(uri)), None
    bucket, key = storage._split(uri)
    return f"{bucket}/{key}".rstrip("/"), s3_filesystem()
