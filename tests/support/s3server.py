"""A real S3 HTTP server for tests and benchmarks: moto's server mode on 127.0.0.1.

Signature checking is switched on (by default moto checks no signature): moto allows
INITIAL_NO_AUTH_ACTION_COUNT unauthenticated calls, which we spend creating an IAM user,
its access key and an allow-all policy; from then on a wrong secret is 403
SignatureDoesNotMatch. Tests get isolation from a fresh bucket each (a moto reset would
also wipe the IAM user).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

_ALLOW_ALL = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
)


@dataclass(frozen=True)
class S3Credentials:
    access_key_id: str
    secret_access_key: str


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MotoServer:
    """`moto_server` as a child process. Use as a context manager."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None
        self.credentials: S3Credentials | None = None

    def start(self, timeout: float = 30.0) -> MotoServer:
        exe = Path(sys.executable).parent / "moto_server"
        env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="3")
        env.pop("AWS_CA_BUNDLE", None)
        self._proc = subprocess.Popen(
            [str(exe), "-H", "127.0.0.1", "-p", str(self.port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(f"moto_server exited with {self._proc.returncode}")
            try:
                requests.get(f"{self.url}/moto-api/data.json", timeout=1)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.05)  # poll-with-deadline for a child process to listen
        self.credentials = self._enable_auth()
        return self

    def _enable_auth(self) -> S3Credentials:
        import boto3

        iam = boto3.client(
            "iam",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="bootstrap",
            aws_secret_access_key="bootstrap",
        )
        iam.create_user(UserName="syncd-test")
        key = iam.create_access_key(UserName="syncd-test")["AccessKey"]
        iam.put_user_policy(UserName="syncd-test", PolicyName="all", PolicyDocument=_ALLOW_ALL)
        return S3Credentials(key["AccessKeyId"], key["SecretAccessKey"])

    def client(self, region: str = "us-east-1") -> Any:
        """An independent boto3 S3 client, for reading back what syncd wrote."""
        import boto3

        assert self.credentials is not None
        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name=region,
            aws_access_key_id=self.credentials.access_key_id,
            aws_secret_access_key=self.credentials.secret_access_key,
        )

    def new_bucket(self, region: str = "us-east-1") -> str:
        name = f"b-{uuid.uuid4().hex[:20]}"
        if region == "us-east-1":
            self.client(region).create_bucket(Bucket=name)
        else:
            self.client(region).create_bucket(
                Bucket=name, CreateBucketConfiguration={"LocationConstraint": region}
            )
        return name

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
