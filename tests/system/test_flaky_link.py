"""A flaky link strands nothing: the daemon as a real process, the S3 server behind a real
fault-injecting proxy on 127.0.0.1, NetworkManager (a fake one on a private bus) saying
online all along, so only the uploads themselves can tell that the store is unwell."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemonproc import DaemonProcess, wait_until
from tests.support.dbus import PrivateBus, private_bus
from tests.support.fake_nm import FakeService
from tests.support.faultproxy import FaultProxy
from tests.support.images import png
from tests.support.s3daemon import s3_daemon_config
from tests.support.s3server import MotoServer

BASE = "https://img.example.com/flaky"


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[PrivateBus]:
    with private_bus(tmp_path / "bus") as b:
        yield b


@pytest.fixture
def nm_online(bus: PrivateBus) -> Iterator[PrivateBus]:
    nm = FakeService(bus.address, state=70).start()  # CONNECTED_GLOBAL, whatever happens
    try:
        yield bus
    finally:
        nm.stop()


def start_daemon(
    made: list[DaemonProcess],
    tmp_path: Path,
    server: MotoServer,
    bucket: str,
    endpoint: str,
    bus: PrivateBus,
    **upload: object,
) -> DaemonProcess:
    d = s3_daemon_config(
        tmp_path,
        server,
        bucket,
        endpoint,
        public_base_url=BASE,
        bus_address=bus.address,
        read_timeout=5,
        **upload,
    )
    made.append(d)
    d.start()
    return d


def paste(vault: Path, i: int) -> bytes:
    data = png(seed=1000 + i)
    (vault / "attachments" / f"shot{i}.png").write_bytes(data)
    (vault / f"note{i}.md").write_text(f"# {i}\n![s](attachments/shot{i}.png)\n")
    return data


def url_of(data: bytes) -> str:
    sha = hashlib.sha256(data).hexdigest()
    return f"{BASE}/{sha[:2]}/{sha}.png"


def rewritten(vault: Path, images: dict[int, bytes]) -> set[int]:
    return {i for i, data in images.items() if url_of(data) in (vault / f"note{i}.md").read_text()}


def test_a_retry_after_one_503_happens_without_any_other_event(
    tmp_path: Path,
    s3_server: MotoServer,
    s3_bucket: str,
    nm_online: PrivateBus,
    started_daemons: list[DaemonProcess],
) -> None:
    """The first PUT meets a 503; nothing else happens afterwards. The retry must still
    come, when it is due: the main loop is re-armed by the reschedule itself."""
    with FaultProxy(s3_server.port, script=["503"], only_methods=("PUT",)) as proxy:
        d = start_daemon(
            started_daemons,
            tmp_path,
            s3_server,
            s3_bucket,
            proxy.url,
            nm_online,
            retry_base_seconds=3,
        )
        data = png(seed=1)
        (tmp_path / "vault" / "attachments" / "only.png").write_bytes(data)
        wait_until(lambda: proxy.faulted["503"] == 1, what="the first PUT to meet its 503")
        key = url_of(data).removeprefix(BASE + "/")
        client = s3_server.client()

        def uploaded() -> bool:
            listed = client.list_objects_v2(Bucket=s3_bucket).get("Contents", [])
            return key in {o["Key"] for o in listed}

        wait_until(uploaded, timeout=30, what="the retry to upload the image")
        # The proxy counts a request once it has forwarded it: the object can be listed
        # a moment before.
        wait_until(lambda: proxy.served >= 1, what="the retry to have gone through the proxy")
        assert d.stop() == 0


def test_a_flaky_link_strands_no_item_once_it_heals(
    tmp_path: Path,
    s3_server: MotoServer,
    s3_bucket: str,
    nm_online: PrivateBus,
    started_daemons: list[DaemonProcess],
) -> None:
    """Half the requests fail (resets, dropped answers, 503, 429), then the link goes
    down altogether for a while (every connection reset or its answer lost), then it
    heals: every image is in the bucket and every note rewritten within 10 s of the heal,
    although per-item backoff alone would have had items wait for minutes."""
    with FaultProxy(s3_server.port, rate=0.5, seed=7) as proxy:
        d = start_daemon(
            started_daemons,
            tmp_path,
            s3_server,
            s3_bucket,
            proxy.url,
            nm_online,
            retry_base_seconds=1,
            retry_max_seconds=600,
        )
        vault = tmp_path / "vault"
        images = {i: paste(vault, i) for i in range(120)}
        wait_until(lambda: sum(proxy.faulted.values()) >= 60, what="60 faults on the link")
        proxy.faults = ("reset", "drop")  # now the link is down altogether
        proxy.rate = 1.0
        outage_ends = time.monotonic() + 8
        wait_until(lambda: time.monotonic() >= outage_ends, timeout=20, what="the outage")
        missing_at_heal = len(images) - len(rewritten(vault, images))
        proxy.heal()
        healed = time.monotonic()
        wait_until(
            lambda: rewritten(vault, images) == set(images),
            timeout=10,
            what=f"all notes rewritten within 10 s of the heal ({missing_at_heal} were left)",
        )
        print(
            f"flaky link: {missing_at_heal} of {len(images)} notes left at the heal, all "
            f"rewritten {time.monotonic() - healed:.2f} s after it; faults {proxy.faulted}"
        )
        client = s3_server.client()
        keys = {o["Key"] for o in client.list_objects_v2(Bucket=s3_bucket).get("Contents", [])}
        assert {url_of(data).removeprefix(BASE + "/") for data in images.values()} <= keys
        assert proxy.faulted["reset"] and proxy.faulted["drop"], "the faults did not happen"
        assert d.stop() == 0
        assert "Traceback" not in d.log_text()
