"""The S3 storage backend (boto3): keys are objects under ``<bucket>/<prefix>/``.

S3 writes are atomic per object, so no temporary names are needed. Received data waits in
a local scratch folder and is uploaded with boto3's managed transfer (multipart for big
files). Downloads are presigned redirects when ``redirect`` is on, so blob bytes go from
S3 to the client directly; otherwise they are streamed through with ranged GETs.
Credentials come from boto3's usual chain (``AWS_*`` variables, profiles, instance roles).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import boto3
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from condaops.registry.errors import StorageConfigError, StorageError
from condaops.registry.storage import CHUNK_SIZE, Storage

_T = TypeVar("_T")
_MISSING = {"404", "NoSuchKey", "NotFound"}
_TRANSFER = TransferConfig(multipart_threshold=64 * 1024 * 1024, multipart_chunksize=64 * 1024 * 1024)
_CONTENT_TYPE = {"ContentType": "application/octet-stream"}


class S3Storage(Storage):
    """Registry content in an S3-compatible bucket."""

    def __init__(
        self,
        *,
        bucket: str,
        prefix: str = "",
        endpoint: str | None = None,
        region: str | None = None,
        redirect: bool = True,
        url_expiry: float = 900.0,
        scratch: Path,
        chunk_size: int = CHUNK_SIZE,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.redirect = redirect
        self.url_expiry = int(url_expiry)
        self.scratch = Path(scratch)
        self.chunk_size = chunk_size
        # Path-style addressing: custom endpoints (MinIO, Ceph, a host:port) rarely have
        # per-bucket DNS names.
        config = Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"} if endpoint else {},
            retries={"max_attempts": 5, "mode": "standard"},
            max_pool_connections=32,
        )
        self.client: Any = boto3.client("s3", endpoint_url=endpoint, region_name=region, config=config)

    def _key(self, key: str) -> str:
        return self.prefix + key

    def check(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError) as exc:
            raise StorageConfigError(
                f"storage.s3_bucket: bucket '{self.bucket}' cannot be reached ({_describe(exc)}); "
                "check the bucket, storage.s3_endpoint and the AWS credentials"
            ) from exc

    def size(self, key: str) -> int | None:
        return self._unless_missing(
            key, lambda: int(self.client.head_object(Bucket=self.bucket, Key=self._key(key))["ContentLength"])
        )

    def read(self, key: str) -> bytes | None:
        def whole() -> bytes:
            body = self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
            with body:
                return bytes(body.read())

        return self._unless_missing(key, whole)

    def write(self, key: str, data: bytes) -> None:
        self._call("write", key, self.client.put_object, Bucket=self.bucket, Key=self._key(key), Body=data)

    def put_file(self, key: str, source: Path) -> None:
        self._call(
            "write",
            key,
            self.client.upload_file,
            str(source),
            self.bucket,
            self._key(key),
            ExtraArgs=_CONTENT_TYPE,
            Config=_TRANSFER,
        )
        os.unlink(source)

    def move(self, source_key: str, key: str) -> None:
        # Managed copy: server-side, multipart above 5 GB (copy_object's limit).
        copy_source = {"Bucket": self.bucket, "Key": self._key(source_key)}
        self._call("copy", source_key, self.client.copy, copy_source, self.bucket, self._key(key), Config=_TRANSFER)
        self.delete(source_key)

    def concat(self, key: str, parts: Sequence[str], algorithm: str) -> str:
        """Download the parts into one local file (hashing them), then upload it: S3 cannot
        append, and its server-side part copies need parts of 5 MB or more."""
        hasher = hashlib.new(algorithm)
        self.scratch.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=self.scratch, prefix="concat-")
        try:
            with os.fdopen(fd, "wb") as out:
                for part in parts:
                    for chunk in self.stream(part):
                        hasher.update(chunk)
                        out.write(chunk)
            self.put_file(key, Path(name))
        finally:
            Path(name).unlink(missing_ok=True)
        return hasher.hexdigest()

    def stream(self, key: str, start: int = 0, length: int | None = None) -> Iterator[bytes]:
        if length == 0:
            return
        byte_range = f"bytes={start}-" + (str(start + length - 1) if length is not None else "")
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key), Range=byte_range)
        except ClientError as exc:
            if _missing(exc):
                raise KeyError(key) from None
            if exc.response.get("Error", {}).get("Code") == "InvalidRange":
                return  # an empty object: nothing to send
            raise _failed("read", key, exc) from exc
        except BotoCoreError as exc:
            raise _failed("read", key, exc) from exc
        body = response["Body"]
        try:
            yield from body.iter_chunks(self.chunk_size)
        except BotoCoreError as exc:
            raise _failed("read", key, exc) from exc
        finally:
            body.close()

    def list(self, prefix: str) -> list[str]:
        base = self._key(prefix.rstrip("/") + "/") if prefix.strip("/") else self.prefix
        names: set[str] = set()
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=base, Delimiter="/"
            )
            for page in pages:
                names.update(p["Prefix"][len(base) :].rstrip("/") for p in page.get("CommonPrefixes", []))
                names.update(o["Key"][len(base) :] for o in page.get("Contents", []))
        except (ClientError, BotoCoreError) as exc:
            raise _failed("list", prefix, exc) from exc
        return sorted(n for n in names if n)

    def delete(self, key: str) -> None:
        self._call("delete", key, self.client.delete_object, Bucket=self.bucket, Key=self._key(key))

    def delete_prefix(self, prefix: str) -> None:
        base = self._key(prefix.rstrip("/") + "/")
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=base):
                keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
                if keys:  # a page holds at most 1,000 keys: delete_objects' limit
                    self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True})
        except (ClientError, BotoCoreError) as exc:
            raise _failed("delete", prefix, exc) from exc

    def download_url(self, key: str) -> str | None:
        if not self.redirect:
            return None
        try:
            return str(
                self.client.generate_presigned_url(
                    "get_object", Params={"Bucket": self.bucket, "Key": self._key(key)}, ExpiresIn=self.url_expiry
                )
            )
        except (ClientError, BotoCoreError) as exc:
            raise _failed("sign a URL for", key, exc) from exc

    def close(self) -> None:
        self.client.close()

    def _unless_missing(self, key: str, read: Callable[[], _T]) -> _T | None:
        """``read()``, or None when the object does not exist; S3's failures as ``StorageError``."""
        try:
            return read()
        except ClientError as exc:
            if _missing(exc):
                return None
            raise _failed("read", key, exc) from exc
        except BotoCoreError as exc:
            raise _failed("read", key, exc) from exc

    def _call(self, action: str, key: str, method: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except (ClientError, BotoCoreError, S3UploadFailedError) as exc:
            raise _failed(action, key, exc) from exc


def _missing(exc: ClientError) -> bool:
    return str(exc.response.get("Error", {}).get("Code")) in _MISSING


def _describe(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', '?')}: {error.get('Message', '')}".rstrip(": ")
    return str(exc)


def _failed(action: str, key: str, exc: Exception) -> StorageError:
    return StorageError(f"registry storage (S3): cannot {action} '{key}' ({_describe(exc)}); it may work later")
