"""s3:// and gs:// billing paths: list the objects a URL names and download them to a local cache.

DuckDB's httpfs extension would read them directly, but it is downloaded from the internet on
first use, which air-gapped hosts (and CI) cannot do. So the objects are fetched with the SDKs
Costwarden already uses and read from disk:

- s3:// through the project's guarded boto3 session (tools/aws/session.py), so credentials,
  profiles and AWS_ENDPOINT_URL apply as for every other AWS call, with the dry-run hook on:
  fetching a bill is read-only, and any mutating call is refused before it leaves the process.
- gs:// through the GCS JSON API (list objects, then `alt=media`) with google-auth's application
  default credentials, read-only scope, on a requests session whose adapter refuses any method
  but GET/HEAD. STORAGE_EMULATOR_HOST (the variable google-cloud-storage honours) points it at an
  emulator or fake, anonymously.

A URL is one object, a "directory" prefix (every .csv/.csv.gz/.parquet/.jsonl under it, so
manifests are skipped) or a glob (`*` and `?` within one path segment, `**` across them).
Downloads stream to disk in 1 MiB chunks, never into memory, into a per-process cache directory
removed at exit; an object whose ETag (S3) or generation (GCS) has not changed is not fetched
again, so a daemon's hourly sweeps read the bucket's listing, not the whole export, each time.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from costwarden.tools.errors import BillingInputError, DryRunViolation

SCHEMES = ("s3://", "gs://")
DATA_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".parquet", ".pq", ".jsonl", ".jsonl.gz", ".ndjson")
CHUNK = 1 << 20
GCS_READ_SCOPE = "https://www.googleapis.com/auth/devstorage.read_only"


class RemoteInputError(BillingInputError):
    """A remote billing URL cannot be listed or read; the message names the URL."""


@dataclass(frozen=True)
class RemoteObject:
    key: str
    size: int
    version: str  # S3 ETag or GCS generation: a changed object has a new one


def is_remote(path: str) -> bool:
    return path.startswith(SCHEMES)


def split_url(url: str) -> tuple[str, str, str]:
    """'s3://bucket/a/b*.csv' -> ('s3', 'bucket', 'a/b*.csv')."""
    scheme, rest = url.split("://", 1)
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise RemoteInputError(f"{url}: no bucket in the URL")
    return scheme, bucket, key


def _glob_regex(pattern: str) -> re.Pattern[str]:
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = pattern.find("]", i + 1)
            if j < 0:
                out.append(re.escape(c))
            else:
                out.append("[" + pattern[i + 1:j].replace("!", "^", 1) + "]")
                i = j
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z")


def select(key: str, listing: Iterator[RemoteObject] | list[RemoteObject]) -> list[RemoteObject]:
    """The objects a URL's key names, given the listing of its prefix (pure: tested on its own)."""
    objs = list(listing)
    if any(ch in key for ch in "*?["):
        rx = _glob_regex(key)
        return sorted((o for o in objs if rx.match(o.key)), key=lambda o: o.key)
    exact = [o for o in objs if o.key == key]
    if exact:
        return exact
    prefix = key if not key or key.endswith("/") else key + "/"
    return sorted((o for o in objs if o.key.startswith(prefix) and o.key.lower().endswith(DATA_SUFFIXES)),
                  key=lambda o: o.key)


def list_prefix(key: str) -> str:
    """The longest literal prefix of a key pattern: what to ask the bucket to list."""
    m = re.search(r"[*?\[]", key)
    return key if m is None else key[:m.start()]


class _Cache:
    """Local copies of remote objects for this process, reused while their version is unchanged."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.dir: Path | None = None
        self.versions: dict[Path, str] = {}
        self.key_locks: dict[Path, threading.Lock] = {}

    def path(self, scheme: str, bucket: str, key: str) -> Path:
        with self.lock:
            if self.dir is None:
                self.dir = Path(tempfile.mkdtemp(prefix="costwarden-billing-"))
                atexit.register(shutil.rmtree, self.dir, True)
            return self.dir / scheme / bucket / key

    def fetch(self, local: Path, version: str, download: Any) -> Path:
        with self.lock:
            lock = self.key_locks.setdefault(local, threading.Lock())
        with lock:
            if self.versions.get(local) == version and local.is_file():
                return local
            local.parent.mkdir(parents=True, exist_ok=True)
            part = local.with_name(local.name + ".part")
            download(part)
            os.replace(part, local)
            self.versions[local] = version
            return local


_CACHE = _Cache()


# -- S3 ----------------------------------------------------------------------------------------
_AWS: dict[str, Any] = {}  # AWS_ENDPOINT_URL at creation -> AwsClients
_AWS_LOCK = threading.Lock()


def aws_clients() -> Any:
    """The project's guarded AwsClients, dry-run on: only reads can leave the process (one per endpoint)."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL", "")
    with _AWS_LOCK:
        if endpoint not in _AWS:
            from costwarden.tools.aws.session import AwsClients

            _AWS[endpoint] = AwsClients(dry_run=True)
        return _AWS[endpoint]


def _s3() -> Any:
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    return aws_clients().client("s3", region)


def _s3_error(url: str, bucket: str, exc: Exception) -> RemoteInputError:
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code == "NoSuchBucket":
            return RemoteInputError(f"{url}: no such bucket '{bucket}'")
        if code in ("NoSuchKey", "404"):
            return RemoteInputError(f"{url}: object not found")
        if code in ("AccessDenied", "403", "AllAccessDisabled"):
            return RemoteInputError(f"{url}: access denied")
        return RemoteInputError(f"{url}: {code}: {exc.response.get('Error', {}).get('Message', '')}".rstrip(": "))
    return RemoteInputError(f"{url}: {_one_line(exc)}")


def _materialize(url: str, scheme: str, bucket: str, chosen: list[RemoteObject],
                 download: Callable[[RemoteObject, Path], None]) -> list[str]:
    """Local copies of the chosen objects: each fetched through the cache (reused when its version,
    ETag or generation, is unchanged) by the store's own streaming `download`."""
    if not chosen:
        raise RemoteInputError(f"{url}: no object matches")
    return [str(_CACHE.fetch(_CACHE.path(scheme, bucket, obj.key), obj.version,
                             lambda part, obj=obj: download(obj, part)))
            for obj in chosen]


def _fetch_s3(url: str, bucket: str, key: str) -> list[str]:
    try:
        client = _s3()
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=list_prefix(key))
        listing = [RemoteObject(o["Key"], int(o.get("Size", 0)), str(o.get("ETag", "")))
                   for page in pages for o in page.get("Contents", [])]

        def download(obj: RemoteObject, part: Path) -> None:
            body = client.get_object(Bucket=bucket, Key=obj.key, IfMatch=obj.version)["Body"]
            with part.open("wb") as fh:
                for chunk in body.iter_chunks(CHUNK):
                    fh.write(chunk)

        return _materialize(url, "s3", bucket, select(key, listing), download)
    except (RemoteInputError, DryRunViolation):
        raise
    except Exception as exc:  # noqa: BLE001 - botocore raises many types; the user needs one line
        raise _s3_error(url, bucket, exc) from None


# -- GCS ---------------------------------------------------------------------------------------
def read_only_gcs_session() -> tuple[Any, str]:
    """(an HTTP session that can only GET/HEAD, the JSON API base URL): a bill is read, never written,
    and the refusal happens in the adapter, before a request leaves the process."""
    import requests
    from requests.adapters import HTTPAdapter

    class ReadOnlyAdapter(HTTPAdapter):
        def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
            method = (request.method or "GET").upper()
            if method not in ("GET", "HEAD"):
                raise DryRunViolation("storage", f"{method} {urllib.parse.urlsplit(request.url).path}")
            return super().send(request, *args, **kwargs)

    emulator = os.environ.get("STORAGE_EMULATOR_HOST")
    if emulator:
        session: Any = requests.Session()
        base = emulator if "://" in emulator else f"http://{emulator}"
    else:
        import google.auth
        from google.auth.transport.requests import AuthorizedSession

        credentials, _project = google.auth.default(scopes=[GCS_READ_SCOPE])
        session = AuthorizedSession(credentials)
        base = "https://storage.googleapis.com"
    adapter = ReadOnlyAdapter(max_retries=2)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session, base.rstrip("/")


def _gcs_status(url: str, bucket: str, resp: Any, what: str) -> RemoteInputError:
    if resp.status_code == 404:
        return RemoteInputError(f"{url}: no such bucket '{bucket}'" if what == "list" else f"{url}: object not found")
    if resp.status_code in (401, 403):
        return RemoteInputError(f"{url}: access denied (HTTP {resp.status_code})")
    return RemoteInputError(f"{url}: HTTP {resp.status_code} from the storage API")


def _fetch_gcs(url: str, bucket: str, key: str) -> list[str]:
    try:
        session, base = read_only_gcs_session()
        listing: list[RemoteObject] = []
        token = None
        while True:
            params = {"prefix": list_prefix(key), "fields": "items(name,size,generation),nextPageToken"}
            if token:
                params["pageToken"] = token
            resp = session.get(f"{base}/storage/v1/b/{urllib.parse.quote(bucket, safe='')}/o", params=params,
                               timeout=60)
            if resp.status_code != 200:
                raise _gcs_status(url, bucket, resp, "list")
            doc = resp.json()
            listing += [RemoteObject(i["name"], int(i.get("size", 0)), str(i.get("generation", "")))
                        for i in doc.get("items", [])]
            token = doc.get("nextPageToken")
            if not token:
                break

        def download(obj: RemoteObject, part: Path) -> None:
            media = (f"{base}/storage/v1/b/{urllib.parse.quote(bucket, safe='')}/o/"
                     f"{urllib.parse.quote(obj.key, safe='')}")
            with session.get(media, params={"alt": "media", "generation": obj.version}, stream=True,
                             timeout=60) as r:
                if r.status_code != 200:
                    raise _gcs_status(f"gs://{bucket}/{obj.key}", bucket, r, "media")
                with part.open("wb") as fh:
                    for chunk in r.iter_content(CHUNK):
                        fh.write(chunk)

        return _materialize(url, "gs", bucket, select(key, listing), download)
    except (RemoteInputError, DryRunViolation):
        raise
    except Exception as exc:  # noqa: BLE001 - google-auth and requests raise many types
        raise RemoteInputError(f"{url}: {_one_line(exc)}") from None


def fetch(url: str) -> list[str]:
    """Local paths of the objects `url` names, downloaded (or reused) in the process's cache."""
    scheme, bucket, key = split_url(url)
    if scheme == "s3":
        return _fetch_s3(url, bucket, key)
    if scheme == "gs":
        return _fetch_gcs(url, bucket, key)
    raise RemoteInputError(f"{url}: unsupported scheme (use s3:// or gs://)")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return re.sub(r"\s+", " ", text.splitlines()[0]) if text else exc.__class__.__name__
