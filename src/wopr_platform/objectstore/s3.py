"""Objects kept in S3-compatible object storage (AWS S3, MinIO, Ceph, R2...) through aiobotocore.

An object is written by a multipart upload in parts of PART_BYTES, taken as the stream brings them (so a large
object costs one part of memory). The upload is completed only when the stream ended without an error, and aborted
otherwise, so a reader sees an object whole or not at all. `sweep` aborts the uploads a crash left open. Keys are
checked like the other stores' (`keys.checked`) and kept under the store's prefix.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterable, AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

from aiobotocore.session import get_session
from botocore.config import Config
from botocore.exceptions import ClientError

from wopr_platform.core.errors import NotFound
from wopr_platform.objectstore.keys import READ_CHUNK, checked

PART_BYTES = 8 * 1024 * 1024  # S3 takes parts of 5 MiB at least (but the last)
STALE_UPLOAD = timedelta(days=1)


def _missing(err: ClientError) -> bool:
    code = str(err.response.get("Error", {}).get("Code", ""))
    return code in ("404", "NoSuchKey", "NotFound", "NoSuchUpload")


class S3Store:
    def __init__(
        self,
        *,
        bucket: str,
        endpoint_url: str | None,
        region: str,
        access_key: str | None,
        secret_key: str | None,
        prefix: str = "",
    ) -> None:
        self._bucket = bucket
        self._prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self._options: dict[str, Any] = {
            "endpoint_url": endpoint_url,
            "region_name": region,
            "aws_access_key_id": access_key,
            "aws_secret_access_key": secret_key,
            "config": Config(retries={"max_attempts": 3, "mode": "standard"}, s3={"addressing_style": "path"}),
        }
        self._stack: contextlib.AsyncExitStack | None = None
        self._client: Any = None

    async def _s3(self) -> Any:
        if self._client is None:
            stack = contextlib.AsyncExitStack()
            self._client = await stack.enter_async_context(get_session().create_client("s3", **self._options))
            self._stack = stack
        return self._client

    async def close(self) -> None:
        if self._stack is not None:
            await self._stack.aclose()
        self._stack = self._client = None

    def _key(self, key: str) -> str:
        return self._prefix + checked(key)

    async def put(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        """Store what `chunks` bring under `key` (replacing what was there), once they all came; the size."""
        name = self._key(key)
        s3 = await self._s3()
        part = bytearray()
        size = 0
        upload: str | None = None
        parts: list[dict[str, Any]] = []
        try:
            async for chunk in chunks:
                part += chunk
                size += len(chunk)
                while len(part) >= PART_BYTES:
                    if upload is None:
                        created = await s3.create_multipart_upload(Bucket=self._bucket, Key=name)
                        upload = str(created["UploadId"])
                    body, part = bytes(part[:PART_BYTES]), part[PART_BYTES:]
                    sent = await s3.upload_part(
                        Bucket=self._bucket, Key=name, UploadId=upload, PartNumber=len(parts) + 1, Body=body
                    )
                    parts.append({"PartNumber": len(parts) + 1, "ETag": sent["ETag"]})
            if upload is None:  # small enough for one request
                await s3.put_object(Bucket=self._bucket, Key=name, Body=bytes(part))
                return size
            if part:
                sent = await s3.upload_part(
                    Bucket=self._bucket, Key=name, UploadId=upload, PartNumber=len(parts) + 1, Body=bytes(part)
                )
                parts.append({"PartNumber": len(parts) + 1, "ETag": sent["ETag"]})
            await s3.complete_multipart_upload(
                Bucket=self._bucket, Key=name, UploadId=upload, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            if upload is not None:
                with contextlib.suppress(Exception):
                    await s3.abort_multipart_upload(Bucket=self._bucket, Key=name, UploadId=upload)
            raise
        return size

    async def get(self, key: str) -> AsyncIterator[bytes]:
        """The object's bytes, a chunk at a time (NotFound when there is none)."""
        s3 = await self._s3()
        try:
            answer = await s3.get_object(Bucket=self._bucket, Key=self._key(key))
        except ClientError as err:
            if _missing(err):
                raise NotFound("no such object", details={"key": key}) from None
            raise
        body = answer["Body"]
        try:
            async for chunk in body.iter_chunks(READ_CHUNK):
                yield chunk
        finally:
            body.close()

    async def size(self, key: str) -> int | None:
        s3 = await self._s3()
        try:
            head = await s3.head_object(Bucket=self._bucket, Key=self._key(key))
        except ClientError as err:
            if _missing(err):
                return None
            raise
        return int(head["ContentLength"])

    async def delete(self, key: str) -> bool:
        """Remove the object; whether there was one."""
        if await self.size(key) is None:
            return False
        s3 = await self._s3()
        await s3.delete_object(Bucket=self._bucket, Key=self._key(key))
        return True

    async def sweep(self, older_than: timedelta = STALE_UPLOAD) -> int:
        """Abort the uploads under the prefix that began over `older_than` ago (a crash left them open)."""
        s3 = await self._s3()
        cutoff = datetime.now(UTC) - older_than
        aborted = 0
        listed = await s3.list_multipart_uploads(Bucket=self._bucket, Prefix=self._prefix)
        for upload in listed.get("Uploads", []):
            if upload["Initiated"] <= cutoff:
                await s3.abort_multipart_upload(Bucket=self._bucket, Key=upload["Key"], UploadId=upload["UploadId"])
                aborted += 1
        return aborted
