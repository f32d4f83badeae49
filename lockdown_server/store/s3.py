"""The object store on S3-compatible storage (AWS S3, MinIO, Ceph) through boto3.

An upload is written to a local temporary file as it arrives (a segment is tens of
megabytes at most, the service takes 256 MiB at most) and, at
:meth:`S3ObjectStore.commit`, streamed in one PUT (S3 takes up to 5 GB so) to a temporary
key ``.tmp/<random>``, then copied to its final, generated key and the temporary key
deleted. S3 makes an object visible only when its PUT or copy has finished, so no reader
(export, another service process) ever sees a partial object. (One PUT, not multipart:
a part is at least 5 MiB, and a copied multipart object carries a per-part checksum
some S3-compatible servers get wrong.)

Retries cannot duplicate: the final key is generated once per upload before the copy, and
a copy retried by boto3 writes the same key again with the same bytes; the row naming it
is inserted only after the copy has returned. A crash leaves at most a temporary key or a
final key no row names; :meth:`S3ObjectStore.sweep` removes them once they are older than
the given age (another service process may be between its copy and its commit).
"""

from __future__ import annotations

import contextlib
import secrets
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from lockdown_server.store.objects import Upload

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

TMP_PREFIX: Final = ".tmp/"
#: in memory up to this, then in a temporary file
_SPOOL_BYTES: Final = 8 * 1024 * 1024


class _S3Upload:
    def __init__(self) -> None:
        self.file: Any = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)  # noqa: SIM115
        self.size = 0

    def write(self, data: bytes) -> None:
        self.file.write(data)
        self.size += len(data)

    def abort(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.file.close()


class S3ObjectStore:
    """Objects under ``<bucket>/<prefix><key>``; temporaries under ``<prefix>.tmp/``."""

    def __init__(self, bucket: str, *, endpoint_url: str | None = None, prefix: str = "") -> None:
        self.bucket = bucket
        self.prefix = prefix
        self.client: S3Client = boto3.client(
            "s3",
            endpoint_url=endpoint_url or None,
            config=Config(
                retries={"max_attempts": 5, "mode": "standard"},
                connect_timeout=10,
                read_timeout=60,
                max_pool_connections=32,
            ),
        )

    def _name(self, key: str) -> str:
        if ".." in key.split("/") or key.startswith("/") or not key:
            raise ValueError(f"bad object key {key!r}")
        return self.prefix + key

    def begin(self) -> _S3Upload:
        return _S3Upload()

    def commit(self, upload: Upload, prefix: str) -> str:
        assert isinstance(upload, _S3Upload)
        name = secrets.token_hex(16)
        key = f"{prefix}/{name[:2]}/{name}"
        temporary = self._name(TMP_PREFIX + secrets.token_hex(16))
        try:
            upload.file.seek(0)
            self.client.put_object(Bucket=self.bucket, Key=temporary, Body=upload.file)
            self.client.copy_object(
                Bucket=self.bucket,
                Key=self._name(key),
                CopySource={"Bucket": self.bucket, "Key": temporary},
            )
        except BaseException:
            with contextlib.suppress(BotoCoreError, ClientError):
                self.client.delete_object(Bucket=self.bucket, Key=self._name(key))
            raise
        finally:
            upload.abort()
            with contextlib.suppress(BotoCoreError, ClientError):
                self.client.delete_object(Bucket=self.bucket, Key=temporary)
        return key

    def read(self, key: str) -> bytes:
        reply = self.client.get_object(Bucket=self.bucket, Key=self._name(key))
        return bytes(reply["Body"].read())

    def iter_chunks(self, key: str, size: int = 1 << 20) -> Iterator[bytes]:
        reply = self.client.get_object(Bucket=self.bucket, Key=self._name(key))
        body = reply["Body"]
        try:
            while chunk := body.read(size):
                yield bytes(chunk)
        finally:
            body.close()

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._name(key))

    def free_bytes(self) -> int | None:
        return None

    def keys(self, prefix: str, older_than_s: float = 0.0) -> Iterator[str]:
        """Keys under ``prefix`` (without this store's prefix) last written before
        ``older_than_s`` seconds ago."""
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than_s)
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
            for item in page.get("Contents", []):
                if item["LastModified"] <= cutoff:
                    yield item["Key"][len(self.prefix) :]

    def sweep(self, older_than_s: float = 0.0) -> int:
        count = 0
        for key in list(self.keys(TMP_PREFIX, older_than_s)):
            self.client.delete_object(Bucket=self.bucket, Key=self.prefix + key)
            count += 1
        return count

    def ready(self) -> bool:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (BotoCoreError, ClientError):
            return False
        return True
