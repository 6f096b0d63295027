"""Local paths and `s3://bucket/key` URIs behind one small API.

S3 access goes through boto3 with the standard AWS credential chain (environment, shared profile, web
identity / IRSA); `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT_URL_S3`, or `endpoint_url` in the profile) points at
S3-compatible stores (MinIO, Ceph, moto). Transient failures (connection errors, timeouts, 5xx,
throttling) are retried with exponential backoff for a time budget (`REFLECTOPT_S3_RETRY_S`, default
`S3_RETRY_S`), Ray Tune's checkpoint traffic included (`optimizer.store.tunefs.tune_storage`): one
warning when the store stops answering, one when it answers again. What still fails becomes one
`StorageError` line naming the URI and the reason (`StoreUnreachable` when the store did not answer). Credentials are never logged or written anywhere by this module.
"""

from __future__ import annotations

import builtins
import datetime as _dt
import logging
import os
import random
import re
import secrets
import shutil
import tempfile
import threading
import time
from pathlib import Path

from optimizer.constants import (
    ENV_S3_ATTEMPTS,
    ENV_S3_BACKOFF,
    ENV_S3_ENDPOINT,
    S3_BACKOFF_BASE_S,
    S3_BACKOFF_MAX_S,
    ENV_S3_RETRY,
    S3_CONNECT_TIMEOUT_S,
    S3_MULTIPART_THRESHOLD_BYTES,
    S3_READ_TIMEOUT_S,
    S3_RETRY_S,
    S3_SCHEME,
    SUMMARY_FILE,
)
from optimizer.errors import StorageError, StoreCredentialsError, StoreUnreachable

log = logging.getLogger(__name__)

_TRANSIENT_CODES = {
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException", "SlowDown",
    "TooManyRequestsException", "RequestLimitExceeded", "RequestTimeout", "RequestTimeoutException",
    "InternalError", "ServiceUnavailable", "BadGateway", "GatewayTimeout", "PriorRequestNotComplete",
}
_MISSING_CODES = {"NoSuchKey", "404", "NotFound", "NoSuchBucket"}


# --- URIs ------------------------------------------------------------------------------------------
def is_remote(uri) -> bool:
    return str(uri).startswith(S3_SCHEME)


def _split(uri: str) -> tuple[str, str]:
    """`s3://bucket/a/b` -> ("bucket", "a/b")."""
    rest = str(uri)[len(S3_SCHEME):]
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise StorageError(f"{uri}: no bucket name; give s3://BUCKET/KEY")
    return bucket, key.strip("/")


def bucket_uri(uri) -> str:
    """`s3://bucket/a/b` -> `s3://bucket`."""
    return S3_SCHEME + _split(uri)[0]


def join(uri, *parts) -> str:
    """Join path parts onto a local path or an s3:// URI (always '/' for S3)."""
    uri = str(uri)
    if is_remote(uri):
        out = uri.rstrip("/")
        for p in parts:
            p = str(p).strip("/")
            if p:
                out = f"{out}/{p}"
        return out
    return os.path.join(uri, *(str(p) for p in parts))


def new_run_id() -> str:
    """Sortable UTC timestamp + short random suffix, e.g. 20261126T101500Z-3fa9."""
    return _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(2)


def run_uri(output, name: str, run_id: str) -> str:
    """`<output>/<name>/<run-id>` (local path or s3:// URI)."""
    return join(output, name, run_id)


# --- the S3 client ---------------------------------------------------------------------------------
_clients: dict = {}
_clients_lock = threading.Lock()
_CHAIN_VARS = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
               "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_REGION", "AWS_REGION",
               "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")


def _endpoint_env() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get(ENV_S3_ENDPOINT) or None


def client():
    """A boto3 S3 client from the standard AWS chain (cached per process and per AWS_* environment)."""
    # The key holds secrets only in memory (never logged); it makes a changed environment take effect.
    key = (os.getpid(),) + tuple(os.environ.get(v) for v in _CHAIN_VARS)
    with _clients_lock:
        c = _clients.get(key)
        if c is None:
            import boto3
            from botocore.config import Config

            s3cfg = {"addressing_style": "path"} if _endpoint_env() else {}
            cfg = Config(
                connect_timeout=S3_CONNECT_TIMEOUT_S, read_timeout=S3_READ_TIMEOUT_S,
                retries={"max_attempts": 1, "mode": "standard"},  # our own loop retries (see _call)
                s3=s3cfg, max_pool_connections=32,
            )
            session = boto3.session.Session()
            region = session.region_name or "us-east-1"
            c = session.client("s3", region_name=region, config=cfg)
            _clients.clear()
            _clients[key] = c
        return c


def _env_number(name: str, default, cast=float):
    """A non-negative number from the environment (`default` when unset or not a number)."""
    try:
        value = cast(os.environ.get(name) or default)
    except ValueError:
        return default
    return value if value >= 0 else default


def retry_budget_s() -> float:
    """How long an S3 call keeps retrying transient errors [s]."""
    return float(_env_number(ENV_S3_RETRY, S3_RETRY_S))


def _attempts_cap() -> int | None:
    cap = _env_number(ENV_S3_ATTEMPTS, 0, int)
    return max(1, cap) if cap else None


def _code(err) -> str:
    resp = getattr(err, "response", None) or {}
    code = str((resp.get("Error") or {}).get("Code") or "")
    if not code and type(err).__name__ == "S3UploadFailedError":  # s3transfer wraps the ClientError as text
        m = re.search(r"An error occurred \((\w+)\)", str(err))
        code = m.group(1) if m else ""
    return code


def _status(err) -> int:
    resp = getattr(err, "response", None) or {}
    return int((resp.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0)


def _is_transient(err: BaseException) -> bool:
    from botocore.exceptions import (
        ClientError,
        HTTPClientError,
        ReadTimeoutError,
    )
    from botocore.exceptions import (
        ConnectionError as BotoConnectionError,
    )
    from s3transfer.exceptions import RetriesExceededError

    if isinstance(err, (BotoConnectionError, HTTPClientError, ReadTimeoutError, RetriesExceededError,
                        ConnectionError, TimeoutError)):
        return True
    code = _code(err)
    if isinstance(err, ClientError) or code:
        return code in _TRANSIENT_CODES or code.isdigit() and int(code) >= 500 or _status(err) >= 500 \
            or _status(err) == 429
    return False


def _is_missing(err: BaseException) -> bool:
    from botocore.exceptions import ClientError

    return isinstance(err, ClientError) and (_code(err) in _MISSING_CODES or _status(err) == 404)


_CREDENTIAL_CODES = ("InvalidAccessKeyId", "SignatureDoesNotMatch")


def _no_credentials(err: BaseException) -> bool:
    """None found, or the store does not know them (an input to fix, not an outage)."""
    from botocore.exceptions import NoCredentialsError, PartialCredentialsError

    return isinstance(err, (NoCredentialsError, PartialCredentialsError)) or _code(err) in _CREDENTIAL_CODES


def _reason(err: BaseException) -> str:
    from botocore.exceptions import NoCredentialsError, PartialCredentialsError

    if isinstance(err, (NoCredentialsError, PartialCredentialsError)):
        return ("no AWS credentials found (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, "
                "or use IRSA / web identity)")
    if type(err).__name__ in ("EndpointConnectionError", "ConnectionClosedError", "ConnectionRefusedError"):
        return f"no connection ({type(err).__name__})"
    code = _code(err)
    if code == "NoSuchBucket":
        return "no such bucket"
    if code in ("NoSuchKey", "404", "NotFound"):
        return "no such object"
    if code in ("AccessDenied", "403", *_CREDENTIAL_CODES):
        return f"access denied ({code}); check the credentials and the bucket policy"
    msg = " ".join(str(err).split())
    return f"{type(err).__name__}: {msg}" if msg else type(err).__name__


# This process's view of the store: since when it has not answered (None: it answers), last warning.
_outage = {"since": None, "warned": 0.0}
_outage_lock = threading.Lock()
_outage_reporter = None  # reporter(kind, line, since_unix) of this process (None: the module's logger)


def report_outages_to(reporter) -> None:
    """Where this process's outage lines go: `reporter(kind, line, since_unix)` with kind "down" (the store stopped
    answering, or still does) or "up" (it answers again), `since_unix` the wall-clock time the outage began;
    None: the module's logger (a warning each). `optimizer.search.outage` puts them on the driver's console."""
    global _outage_reporter
    _outage_reporter = reporter


def _note_outage(failing: bool, what: str, uri: str, reason: str, budget: float,
                 tried_at: float | None = None) -> None:
    """One warning when the store stops answering (again every two budgets while it stays down) and one
    when it answers again, per process, however many calls retry meanwhile (`report_outages_to`). A success
    closes the outage only if its call was sent after the outage began (`tried_at`, monotonic): a request
    already in flight when the store went down proves nothing about it now."""
    now = time.monotonic()
    note = None
    with _outage_lock:
        since = _outage["since"]
        if failing and (since is None or now - _outage["warned"] > 2 * budget):
            _outage["since"], _outage["warned"] = since or now, now
            state = "unreachable" if since is None else f"still unreachable after {now - since:.0f} s"
            note = ("down", f"object store at {_endpoint_env() or 'S3'} {state} ({what} {uri}: {reason}); retrying "
                            f"for up to {budget:.0f} s", since or now)
        elif not failing and since is not None and (tried_at is None or tried_at >= since):
            _outage["since"] = None
            note = ("up", f"object store answers again (after {now - since:.0f} s)", since)
    if note is None:
        return
    kind, line, began = note
    if _outage_reporter is None:
        log.warning("%s", line)
    else:
        _outage_reporter(kind, line, time.time() - (now - began))


_MISSING = object()


def _call(uri: str, what: str, fn, *, missing_ok: bool = False, missing=None):
    """Run the boto3 call `fn()`, retrying transient errors with exponential backoff (jittered, capped at
    S3_BACKOFF_MAX_S) until `retry_budget_s()` has passed (or REFLECTOPT_S3_ATTEMPTS tries were made). A
    missing object/bucket returns `missing` if `missing_ok`. What still fails raises one line naming the URI
    and the reason: `StoreUnreachable` when the store did not answer, `StoreCredentialsError` (exit 2) when
    there are no credentials or the store does not know them, else `StorageError`."""
    budget, cap, base = retry_budget_s(), _attempts_cap(), float(_env_number(ENV_S3_BACKOFF, S3_BACKOFF_BASE_S))
    start = time.monotonic()
    attempt = 0
    while True:
        attempt += 1
        tried = time.monotonic()
        try:
            result = fn()
        except StorageError:
            raise
        except Exception as err:  # noqa: BLE001 - classified below
            if missing_ok and _is_missing(err):
                return missing
            elapsed = time.monotonic() - start
            transient = _is_transient(err)
            if transient:
                _note_outage(True, what, uri, _reason(err), budget)
            if transient and elapsed < budget and (cap is None or attempt < cap):
                delay = min(S3_BACKOFF_MAX_S, base * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)
                delay = min(delay, budget - elapsed)
                log.debug("%s %s: %s; retry %d in %.1f s", what, uri, _reason(err), attempt, delay)
                time.sleep(delay)
                continue
            endpoint = _endpoint_env()
            where = f" at {endpoint}" if endpoint and transient else ""
            suffix = f" (still failing after {attempt} tries in {elapsed:.0f} s)" if transient and attempt > 1 else ""
            cls = StoreUnreachable if transient else StoreCredentialsError if _no_credentials(err) else StorageError
            raise cls(f"{uri}: {what} failed{where}: {_reason(err)}{suffix}") from None
        _note_outage(False, what, uri, "", budget, tried_at=tried)
        return result


# --- single objects --------------------------------------------------------------------------------
def exists(uri) -> bool:
    """True if the file/folder (local) or the object/prefix/bucket (S3) exists."""
    uri = str(uri)
    if not is_remote(uri):
        return os.path.exists(uri)
    bucket, key = _split(uri)
    c = client()
    if not key:
        return bool(_call(uri, "head bucket", lambda: c.head_bucket(Bucket=bucket) or True,
                          missing_ok=True, missing=False))
    if _call(uri, "head", lambda: c.head_object(Bucket=bucket, Key=key), missing_ok=True) is not None:
        return True
    resp = _call(uri, "list", lambda: c.list_objects_v2(Bucket=bucket, Prefix=key + "/", MaxKeys=1),
                 missing_ok=True)
    return bool(resp and resp.get("KeyCount", 0))


def read_bytes(uri) -> bytes:
    uri = str(uri)
    if not is_remote(uri):
        try:
            return Path(uri).read_bytes()
        except OSError as err:
            raise StorageError(f"{uri}: read failed: {err.strerror or err}") from None
    bucket, key = _split(uri)
    c = client()
    return _call(uri, "read", lambda: c.get_object(Bucket=bucket, Key=key)["Body"].read())


def read_text(uri, encoding: str = "utf-8") -> str:
    return read_bytes(uri).decode(encoding)


def _atomic_write_local(path: str, data: bytes) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes(uri, data: bytes) -> None:
    uri = str(uri)
    if not is_remote(uri):
        try:
            _atomic_write_local(uri, bytes(data))
        except OSError as err:
            raise StorageError(f"{uri}: write failed: {err.strerror or err}") from None
        return
    bucket, key = _split(uri)
    c = client()
    _call(uri, "write", lambda: c.put_object(Bucket=bucket, Key=key, Body=bytes(data)))


def write_text(uri, text: str, encoding: str = "utf-8") -> None:
    write_bytes(uri, text.encode(encoding))


def create_exclusive(uri, data: bytes) -> bool:
    """Write `data` to `uri` only if nothing is there yet (S3: a conditional put, `If-None-Match: *`; local:
    `open(..., "x")`). Returns False, writing nothing, if it exists."""
    uri = str(uri)
    if not is_remote(uri):
        try:
            Path(uri).parent.mkdir(parents=True, exist_ok=True)
            with open(uri, "xb") as f:
                f.write(bytes(data))
        except FileExistsError:
            return False
        except OSError as err:
            raise StorageError(f"{uri}: write failed: {err.strerror or err}") from None
        return True
    bucket, key = _split(uri)
    c = client()
    taken = object()

    def put():
        try:
            return c.put_object(Bucket=bucket, Key=key, Body=bytes(data), IfNoneMatch="*")
        except Exception as err:
            if _code(err) in ("PreconditionFailed", "ConditionalRequestConflict") or _status(err) in (409, 412):
                return taken
            raise

    return _call(uri, "create", put) is not taken


def _transfer_config():
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(multipart_threshold=S3_MULTIPART_THRESHOLD_BYTES,
                          multipart_chunksize=S3_MULTIPART_THRESHOLD_BYTES // 4, num_download_attempts=1)


def upload_file(local_path, uri) -> None:
    """Copy one local file to a local path or an S3 object."""
    uri, local_path = str(uri), str(local_path)
    if not is_remote(uri):
        try:
            Path(uri).parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{Path(uri).name}.", suffix=".tmp", dir=Path(uri).parent)
            os.close(fd)
            shutil.copyfile(local_path, tmp)
            os.replace(tmp, uri)
        except OSError as err:
            raise StorageError(f"{uri}: copy from {local_path} failed: {err.strerror or err}") from None
        return
    bucket, key = _split(uri)
    c = client()
    cfg = _transfer_config()
    _call(uri, "upload", lambda: c.upload_file(local_path, bucket, key, Config=cfg))


def download_file(uri, local_path) -> int:
    """Copy one object (or local file) to `local_path` (atomically); returns the bytes written."""
    uri, local_path = str(uri), str(local_path)
    Path(local_path).parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{Path(local_path).name}.", suffix=".part", dir=Path(local_path).parent)
    os.close(fd)
    try:
        if not is_remote(uri):
            try:
                shutil.copyfile(uri, tmp)
            except OSError as err:
                raise StorageError(f"{uri}: read failed: {err.strerror or err}") from None
        else:
            bucket, key = _split(uri)
            c = client()
            cfg = _transfer_config()
            _call(uri, "download", lambda: c.download_file(bucket, key, tmp, Config=cfg))
        size = os.path.getsize(tmp)
        os.replace(tmp, local_path)
        return size
    finally:
        Path(tmp).unlink(missing_ok=True)


def delete(uri) -> None:
    """Remove one object / file (missing is fine)."""
    uri = str(uri)
    if not is_remote(uri):
        Path(uri).unlink(missing_ok=True)
        return
    bucket, key = _split(uri)
    c = client()
    _call(uri, "delete", lambda: c.delete_object(Bucket=bucket, Key=key), missing_ok=True)


# --- folders / prefixes ----------------------------------------------------------------------------
def list(uri, recursive: bool = False) -> builtins.list[str]:
    """Child names (non-recursive: files and sub-folders) or all file paths relative to `uri` (recursive),
    sorted, '/'-separated. A missing folder/prefix lists as []."""
    uri = str(uri)
    if not is_remote(uri):
        root = Path(uri)
        if not root.is_dir():
            return []
        if not recursive:
            return sorted(p.name for p in root.iterdir())
        return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    bucket, key = _split(uri)
    prefix = key + "/" if key else ""
    c = client()
    out: set[str] = set()
    token = None
    while True:
        kw = {"Bucket": bucket, "Prefix": prefix}
        if not recursive:
            kw["Delimiter"] = "/"
        if token:
            kw["ContinuationToken"] = token
        resp = _call(uri, "list", lambda kw=kw: c.list_objects_v2(**kw))
        for obj in resp.get("Contents", []) or []:
            rel = obj["Key"][len(prefix):]
            if rel and not rel.endswith("/"):
                out.add(rel)
        for cp in resp.get("CommonPrefixes", []) or []:
            rel = cp["Prefix"][len(prefix):].strip("/")
            if rel:
                out.add(rel)
        if not resp.get("IsTruncated"):
            break
        token = resp.get("NextContinuationToken")
    return sorted(out)


def _local_files(local_dir) -> builtins.list[str]:
    root = Path(local_dir)
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def upload_dir(local_dir, uri, *, skip: tuple[str, ...] = ()) -> int:
    """Copy every file under `local_dir` to `uri` (local folder or S3 prefix); returns the file count."""
    local_dir = str(local_dir)
    if not os.path.isdir(local_dir):
        raise StorageError(f"{local_dir}: not a folder")
    n = 0
    for rel in _local_files(local_dir):
        if rel in skip:
            continue
        upload_file(os.path.join(local_dir, rel), join(uri, rel))
        n += 1
    return n


def download_dir(uri, local_dir, *, exclude_prefixes: tuple[str, ...] = ()) -> int:
    """Copy every file under `uri` into `local_dir`; returns the file count (StorageError if none)."""
    uri = str(uri)
    files = [r for r in list(uri, recursive=True) if not r.startswith(tuple(exclude_prefixes) or ("\0",))]
    if not files and not exists(uri):
        raise StorageError(f"{uri}: nothing there (no such folder/prefix)")
    root = Path(local_dir).resolve()
    for rel in files:
        dest = (root / rel).resolve()
        if root not in dest.parents:
            raise StorageError(f"{uri}: refusing key {rel!r} that leaves {local_dir}")
        download_file(join(uri, rel), dest)
    return len(files)


def publish_run(local_run_dir, run_uri, last=(SUMMARY_FILE,)) -> int:
    """Copy a finished local run folder to `run_uri`, writing the files in `last` strictly after all others
    succeeded. If anything fails, StorageError is raised and the `last` files are never written (a stale
    copy at the destination is removed first, so a present `summary.json` always marks a complete run).
    Returns the number of files copied."""
    src = Path(local_run_dir)
    if not src.is_dir():
        raise StorageError(f"{local_run_dir}: not a folder")
    last = tuple(last)
    if not is_remote(run_uri) and Path(run_uri).resolve() == src.resolve():
        missing = [f for f in last if not (src / f).is_file()]
        if missing:
            raise StorageError(f"{run_uri}: run is incomplete: {', '.join(missing)} missing")
        return len(_local_files(src))
    for f in last:
        if exists(join(run_uri, f)):
            delete(join(run_uri, f))
    n = upload_dir(src, run_uri, skip=last)
    for f in last:
        if (src / f).is_file():
            upload_file(src / f, join(run_uri, f))
            n += 1
    return n
