"""A real S3 API on loopback for the s3:// store tests: moto's server (``moto[server]``, a dev
dependency) in a thread of the test process, on 127.0.0.1 and a free port.

moto is imported at the top: without it these tests fail at collection, loudly, never skip.
The credentials are moto's dummy ones (no real account); the endpoint and credentials reach
fedchain, and any ``fedchain`` process a test starts, through the standard AWS environment.
"""

from __future__ import annotations

import socket
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import boto3
from moto.server import ThreadedMotoServer

#: Seconds the server has to answer after it is started.
START_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class S3Server:
    """A running loopback S3 endpoint and the environment that points clients at it."""

    endpoint: str

    @property
    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",  # moto's dummy credentials, no real account
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def client(self) -> object:
        """A boto3 S3 client of its own (to create buckets and to tamper with objects)."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def s3_server() -> Iterator[S3Server]:
    """Start moto's S3 server on 127.0.0.1, wait until it answers, and stop it afterwards."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        _wait(endpoint)
        yield S3Server(endpoint)
    finally:
        server.stop()


def _wait(endpoint: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            with urllib.request.urlopen(endpoint + "/moto-api/", timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"moto's S3 server at {endpoint} did not answer") from None
            time.sleep(0.1)
