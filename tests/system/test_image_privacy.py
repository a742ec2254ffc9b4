"""What leaves the machine: a photo's location never does (by default), a conversion asked
for is what the bucket holds, and the local files and notes are as they were.

Real daemon and real `sync --once` processes against the suite's S3 server; the images
are real JPEGs and PNGs made with Pillow, checked by decoding what the bucket holds.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

from tests.support import photos
from tests.support.daemonproc import SYNCD, DaemonProcess, wait_until
from tests.support.s3daemon import s3_daemon_config
from tests.support.s3server import MotoServer

BASE = "https://img.example.com/private"


def syncd(d: DaemonProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SYNCD, "--config", str(d.config), *args],
        capture_output=True,
        text=True,
        env=d.env,
        timeout=120,
    )


def syncd_json(d: DaemonProcess, *args: str) -> dict[str, Any]:
    done = syncd(d, *args, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def bucket(server: MotoServer, name: str) -> dict[str, tuple[bytes, str]]:
    """key -> (bytes, Content-Type) of every object."""
    client = server.client()
    out = {}
    for obj in client.list_objects_v2(Bucket=name).get("Contents", []):
        got = client.get_object(Bucket=name, Key=obj["Key"])
        out[obj["Key"]] = (got["Body"].read(), got["ContentType"])
    return out


def gps_of(data: bytes) -> dict[int, Any]:
    return dict(photos.opened(data).getexif().get_ifd(photos.GPS_IFD))


def test_a_photo_pasted_into_a_running_daemon_goes_up_without_its_location(
    tmp_path: Path, s3_server: MotoServer, s3_bucket: str, started_daemons: list[DaemonProcess]
) -> None:
    d = s3_daemon_config(
        tmp_path,
        s3_server,
        s3_bucket,
        s3_server.url,
        public_base_url=BASE,
        bus_address=f"unix:path={tmp_path / 'no-bus'}",
        read_timeout=10,
    )
    started_daemons.append(d)
    d.start()
    vault = tmp_path / "vault"
    photo = photos.jpeg(gps=True, orientation=6, size=(120, 80))
    assert gps_of(photo)  # the test photo does carry a location
    note_text = "# Trip\n\n![evening](attachments/IMG_0001.jpg)\n"
    # As an editor pastes: the image first, then the note that shows it.
    (vault / "attachments" / "IMG_0001.jpg").write_bytes(photo)
    (vault / "trip.md").write_text(note_text)
    wait_until(lambda: BASE in (vault / "trip.md").read_text(), what="the link rewritten")

    objects = bucket(s3_server, s3_bucket)
    assert len(objects) == 1
    ((key, (sent, content_type)),) = objects.items()
    assert gps_of(sent) == {}
    assert photos.opened(sent).getexif()[photos.ORIENTATION] == 6  # still shown upright
    assert photos.opened(sent).info.get("icc_profile") == photos.srgb_profile()
    assert photos.decoded(sent) == photos.decoded(photo)  # not re-encoded: same pixels
    assert content_type == "image/jpeg"
    sha = hashlib.sha256(sent).hexdigest()
    assert key == f"{sha[:2]}/{sha}.jpg"  # named by what was uploaded
    assert f"{BASE}/{key}" in (vault / "trip.md").read_text()
    assert (vault / "attachments" / "IMG_0001.jpg").read_bytes() == photo  # never modified

    (item,) = syncd_json(d, "items")["items"]
    assert "GPS" in item["stripped"]
    assert item["object_size"] == len(sent)
    assert "removed GPS" in syncd(d, "items").stdout
    assert d.stop() == 0

    # A rerun finds the original done: nothing is processed or uploaded again.
    again = syncd_json(d, "sync", "--once")
    assert again["results"]["uploaded"] == 0
    assert again["scanned"]["queued"] == 0
    assert set(bucket(s3_server, s3_bucket)) == {key}

    syncd(d, "localize", "--all").check_returncode()
    assert (vault / "trip.md").read_text() == note_text
    assert "Traceback" not in d.log_text()


def test_convert_to_webp_links_the_webp_and_an_unparseable_file_waits_with_its_reason(
    tmp_path: Path, s3_server: MotoServer, s3_bucket: str
) -> None:
    d = s3_daemon_config(
        tmp_path,
        s3_server,
        s3_bucket,
        s3_server.url,
        public_base_url=BASE,
        bus_address=f"unix:path={tmp_path / 'no-bus'}",
        read_timeout=10,
        convert='"webp"',
    )
    vault = tmp_path / "vault"
    screenshot = photos.encode(photos.picture(320, 200, mode="RGBA"), "PNG")
    broken = photos.jpeg(gps=True)[:300]  # cut short mid-header: cannot be parsed
    (vault / "attachments" / "shot.png").write_bytes(screenshot)
    (vault / "attachments" / "cut.jpg").write_bytes(broken)
    note_text = "![shot](attachments/shot.png)\n![cut](<attachments/cut.jpg>)\n"
    (vault / "n.md").write_text(note_text)

    plan = syncd(d, "sync", "--once", "--dry-run")
    assert plan.returncode == 0, plan.stderr
    assert "convert to webp if smaller" in plan.stdout
    assert "could not parse" in plan.stdout and "would not be uploaded" in plan.stdout
    assert bucket(s3_server, s3_bucket) == {}

    # The cut-short JPEG cannot be checked for its GPS: it waits, saying why, instead of
    # going up with its location (a file still being copied is the common case).
    run = syncd(d, "sync", "--once", "--json")
    assert run.returncode == 1, run.stdout + run.stderr
    done = json.loads(run.stdout)
    assert done["results"]["uploaded"] == 1 and done["results"]["retry"] == 1

    objects = bucket(s3_server, s3_bucket)
    by_type = {ctype: (key, data) for key, (data, ctype) in objects.items()}
    assert set(by_type) == {"image/webp"}
    webp_key, webp = by_type["image/webp"]
    assert webp_key.endswith(".webp") and len(webp) < len(screenshot)
    sent = photos.opened(webp)
    assert sent.format == "WEBP" and sent.mode == "RGBA"  # transparency kept
    assert hashlib.sha256(webp).hexdigest() in webp_key
    rewritten = (vault / "n.md").read_text()
    assert f"{BASE}/{webp_key}" in rewritten and "(<attachments/cut.jpg>)" in rewritten

    items = {i["name"]: i for i in syncd_json(d, "items")["items"]}
    assert items["shot.png"]["converted_from"] == "image/png"
    assert items["cut.jpg"]["state"] == "pending"
    assert "cannot be checked for location" in (items["cut.jpg"]["last_error"] or "")
    listed = syncd(d, "items").stdout
    assert "converted from image/png to image/webp" in listed
    assert "strip_location = false" in listed
    assert (vault / "attachments" / "shot.png").read_bytes() == screenshot
    assert (vault / "attachments" / "cut.jpg").read_bytes() == broken

    # The converted object lost from the bucket is made again from the original.
    s3_server.client().delete_object(Bucket=s3_bucket, Key=webp_key)
    repaired = syncd_json(d, "verify", "--repair")
    assert [r["key"] for r in repaired["repaired"]] == [webp_key], repaired
    assert bucket(s3_server, s3_bucket)[webp_key] == (webp, "image/webp")

    syncd(d, "localize", "--all").check_returncode()
    assert (vault / "n.md").read_text() == note_text


def test_sync_once_publishes_jpeg_png_and_webp_without_location_and_same_pixels(
    tmp_path: Path, s3_server: MotoServer, s3_bucket: str
) -> None:
    d = s3_daemon_config(
        tmp_path,
        s3_server,
        s3_bucket,
        s3_server.url,
        public_base_url=BASE,
        bus_address=f"unix:path={tmp_path / 'no-bus'}",
        read_timeout=10,
    )
    vault = tmp_path / "vault"
    made = {"a.jpg": photos.jpeg(gps=True), "b.png": photos.png(), "c.webp": photos.webp()}
    for name, data in made.items():
        assert gps_of(data), name
        (vault / "attachments" / name).write_bytes(data)
    (vault / "n.md").write_text("".join(f"![{n}](attachments/{n})\n" for n in made))

    plan = syncd_json(d, "sync", "--once", "--dry-run")
    changes = {Path(u["file"]).name: u["changes"] for u in plan["would_upload"]}
    assert set(changes) == set(made)
    for name in made:
        assert "GPS" in changes[name]["stripped"], name
    human = syncd(d, "sync", "--once", "--dry-run").stdout
    assert "remove GPS" in human
    assert bucket(s3_server, s3_bucket) == {}

    assert syncd_json(d, "sync", "--once")["results"]["uploaded"] == 3

    sent = {ctype: data for data, ctype in bucket(s3_server, s3_bucket).values()}
    for name, ctype in (("a.jpg", "image/jpeg"), ("b.png", "image/png"), ("c.webp", "image/webp")):
        assert gps_of(sent[ctype]) == {}, name
        assert photos.decoded(sent[ctype]) == photos.decoded(made[name]), name
        for place in photos.XMP_PLACES:
            assert place.encode() not in sent[ctype], (name, place)
        assert (vault / "attachments" / name).read_bytes() == made[name]
