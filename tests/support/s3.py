"""A real S3-compatible HTTP endpoint for the tests: ``moto`` in server mode on 127.0.0.1
(boto3 talks to it unchanged), in a process of its own, with a fresh bucket per test."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import requests

from tests.support.service import free_port

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

#: moto accepts any credentials; boto3 needs some, and a region
ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass
class MotoServer:
    log: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoServer:
        os.environ.update(ENV)  # this process's boto3 and the services it starts
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"moto exited: {self.log.read_text()[-2000:]}")
            with contextlib.suppress(requests.RequestException):
                requests.get(self.endpoint, timeout=2)
                return self
            time.sleep(0.1)
        raise AssertionError("moto did not start")

    def client(self) -> S3Client:
        return boto3.client("s3", endpoint_url=self.endpoint)

    def new_bucket(self) -> str:
        name = "t-" + uuid.uuid4().hex[:16]
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        client = self.client()
        out: list[str] = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            out += [item["Key"] for item in page.get("Contents", [])]
        return out

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None
