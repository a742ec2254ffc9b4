"""convert: syncd's WebP and AVIF conversion against cwebp and avifenc, same images, same run.

Realistic inputs are generated deterministically from `--seed`: `--photos` camera-like
JPEGs (3000x2000, quality 92, EXIF with GPS and an ICC profile: smooth sky-like gradients,
shapes with soft and hard edges, sensor noise) and `--screenshots` screenshot-like PNGs
(1920x1080: flat panels, rows of glyph-like marks, icons, one photo pane).

For each image syncd runs `syncd.imaging.prepare` with `convert = "webp"` (then "avif")
at each format's default quality (82 for WebP, 60 for AVIF; `--quality` sets both), in
this process, timed by process CPU time (all threads: Pillow's AVIF encoder uses every
core, as avifenc is told to with `-j`). The peers run as child processes on the same
file, CPU from `wait4`, at the equivalent settings: `cwebp -q 82 -m 4 -metadata
exif,icc` (syncd keeps EXIF without GPS, and the ICC profile) and `avifenc -s 6 -y 420
--min Q --max Q` with Q the quantizer libavif derives from the same quality (Debian's
avifenc 0.11 predates its `-q`). Each output is decoded and its PSNR against the source
shown, so "equivalent quality" can be checked, not just assumed.

The figures are ratios of totals over all images: bytes (syncd / peer) and CPU seconds
(syncd / peer), per format; plus what syncd saved against the originals. No targets: the
conversion is opt-in and these are numbers to look at.

Run alone: `.venv/bin/python tests/bench/bench_convert.py [--photos N] [--screenshots N]`.
Needs `cwebp` (Debian package webp) and `avifenc` (libavif-bin); `make bench` installs them.
"""

from __future__ import annotations

import argparse
import io
import math
import os
import random
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from harness import Figure, report, run_child
from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageStat

from syncd.imaging import DEFAULT_QUALITY, ImageOptions, Target, prepare
from tests.support import photos

QUALITY = dict(DEFAULT_QUALITY)  # per target; `--quality` sets both


# -- the images --------------------------------------------------------------------------


def _noise(size: tuple[int, int], rng: random.Random, amplitude: int) -> Image.Image:
    grain = Image.frombytes("L", size, rng.randbytes(size[0] * size[1]))
    return grain.point(lambda v: 128 + (v - 128) * amplitude // 128)


def photo(seed: int, size: tuple[int, int] = (3000, 2000)) -> Image.Image:
    rng = random.Random(seed)
    w, h = size
    sky = Image.linear_gradient("L").resize(size, Image.Resampling.BICUBIC)
    glow = Image.radial_gradient("L").resize(size, Image.Resampling.BICUBIC)
    glow = glow.rotate(rng.uniform(0, 360), expand=False)
    channels = []
    for _ in range(3):
        mixed = Image.blend(sky, glow, rng.uniform(0.2, 0.8))
        gain, lift = rng.uniform(0.5, 1.0), rng.randint(0, 60)
        channels.append(mixed.point([int(v * gain) + lift for v in range(256)]))
    im = Image.merge("RGB", channels)
    draw = ImageDraw.Draw(im)
    for _ in range(40):
        x, y = rng.randrange(w), rng.randrange(h)
        rw, rh = rng.randint(40, w // 3), rng.randint(40, h // 3)
        colour = tuple(rng.randrange(256) for _ in range(3))
        shape = rng.choice((draw.rectangle, draw.ellipse))
        shape((x, y, x + rw, y + rh), fill=colour)
    for _ in range(60):
        points = [(rng.randrange(w), rng.randrange(h)) for _ in range(2)]
        draw.line(points, fill=tuple(rng.randrange(256) for _ in range(3)), width=rng.randint(1, 6))
    soft = im.filter(ImageFilter.GaussianBlur(rng.uniform(1.0, 3.0)))
    # Half soft (depth of field), half sharp: photos have both.
    mask = Image.linear_gradient("L").rotate(90).resize(size)
    im = Image.composite(soft, im, mask)
    noise = Image.merge("RGB", [_noise(size, rng, 6) for _ in range(3)])
    return ImageChops.add(im, noise, scale=1.0, offset=-128)


def screenshot(seed: int, size: tuple[int, int] = (1920, 1080)) -> Image.Image:
    rng = random.Random(seed)
    w, h = size
    im = Image.new("RGB", size, (246, 247, 249))
    draw = ImageDraw.Draw(im)
    draw.rectangle((0, 0, w, 48), fill=(38, 42, 51))
    draw.rectangle((0, 48, 280, h), fill=(231, 234, 239))
    for row in range(70, h - 20, 22):  # lines of "text": glyph-sized marks
        x = 310 if rng.random() < 0.85 else 20
        end = rng.randint(w // 2, w - 40) if x == 310 else 260
        while x < end:
            word = rng.randint(3, 9)
            for _ in range(word):
                gw = rng.randint(5, 9)
                top = row + rng.choice((0, 2, 4))
                draw.rectangle((x, top, x + gw - 2, row + 12), fill=(40, 44, 52))
                x += gw
            x += 8
    for i in range(12):
        cx = 30 + (i % 2) * 120
        cy = 80 + i * 60
        draw.ellipse((cx, cy, cx + 28, cy + 28), fill=tuple(rng.randrange(256) for _ in range(3)))
    pane = photo(seed + 1000, (640, 400))
    im.paste(pane, (w - 700, h - 460))
    return im


def _psnr(reference: Image.Image, data: bytes) -> float:
    with Image.open(io.BytesIO(data)) as out:
        decoded = out.convert("RGB")
    if decoded.size != reference.size:
        decoded = decoded.resize(reference.size)
    stat = ImageStat.Stat(ImageChops.difference(reference, decoded))
    mse = sum(rms**2 for rms in stat.rms) / 3
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


# -- measuring -----------------------------------------------------------------------------


@dataclass
class Tally:
    original: int = 0
    syncd_bytes: int = 0
    peer_bytes: int = 0
    syncd_cpu: float = 0.0
    peer_cpu: float = 0.0
    syncd_psnr: float = 0.0
    peer_psnr: float = 0.0
    count: int = 0

    def add(
        self, original: int, ours: tuple[int, float, float], theirs: tuple[int, float, float]
    ) -> None:
        self.original += original
        self.syncd_bytes += ours[0]
        self.syncd_cpu += ours[1]
        self.syncd_psnr += ours[2]
        self.peer_bytes += theirs[0]
        self.peer_cpu += theirs[1]
        self.peer_psnr += theirs[2]
        self.count += 1


def _avif_quantizer(quality: int) -> int:
    # libavif's own mapping from quality (0..100) to quantizer (63..0).
    return ((100 - quality) * 63 + 50) // 100


def _peer_argv(target: Target, source: Path, out: Path) -> list[str]:
    if target is Target.WEBP:
        return ["cwebp", "-quiet", "-q", str(QUALITY[target]), "-m", "4", "-metadata", "exif,icc",
                str(source), "-o", str(out)]  # fmt: skip
    q = str(_avif_quantizer(QUALITY[target]))
    jobs = str(len(os.sched_getaffinity(0)))
    return ["avifenc", "-s", "6", "-y", "420", "-j", jobs, "--min", q, "--max", q,
            str(source), str(out)]  # fmt: skip


_PEER = {Target.WEBP: "cwebp", Target.AVIF: "avifenc"}


def measure(
    name: str,
    data: bytes,
    mime: str,
    reference: Image.Image,
    work: Path,
    tallies: dict[tuple[str, Target], Tally],
) -> None:
    kind = name.rstrip("0123456789")
    source = work / (name + (".jpg" if mime == "image/jpeg" else ".png"))
    source.write_bytes(data)
    for target in (Target.WEBP, Target.AVIF):
        started = time.process_time()
        result = prepare(data, mime, ImageOptions(convert=target, quality=QUALITY[target]))
        cpu = time.process_time() - started
        if result.converted_from is None:
            raise RuntimeError(f"{name}: syncd did not convert to {target.value}: {result.note}")
        out = work / f"{name}.{target.value}"
        peer = run_child(_peer_argv(target, source, out), env=os.environ).check()
        theirs = out.read_bytes()
        ours = (len(result.data), cpu, _psnr(reference, result.data))
        peers = (len(theirs), peer.cpu, _psnr(reference, theirs))
        tallies.setdefault((kind, target), Tally()).add(len(data), ours, peers)
        print(
            f"  {name} -> {target.value}: {len(data) / 1e3:.0f} kB; syncd {ours[0] / 1e3:.0f} kB,"
            f" {ours[1]:.2f} s CPU, {ours[2]:.1f} dB; {_PEER[target]} {peers[0] / 1e3:.0f} kB,"
            f" {peers[1]:.2f} s CPU, {peers[2]:.1f} dB",
            flush=True,
        )


def _sum(tallies: list[Tally]) -> Tally:
    total = Tally()
    for t in tallies:
        total.original += t.original
        total.syncd_bytes += t.syncd_bytes
        total.peer_bytes += t.peer_bytes
        total.syncd_cpu += t.syncd_cpu
        total.peer_cpu += t.peer_cpu
        total.syncd_psnr += t.syncd_psnr
        total.peer_psnr += t.peer_psnr
        total.count += t.count
    return total


def _describe(label: str, peer: str, t: Tally) -> str:
    saved = 1 - t.syncd_bytes / t.original
    return (
        f"{label}: syncd {t.syncd_bytes / t.peer_bytes:.2f}x {peer} bytes,"
        f" {t.syncd_cpu / t.peer_cpu:.2f}x {peer} CPU"
        f" (syncd {t.syncd_bytes / 1e6:.2f} MB, {t.syncd_cpu:.1f} s;"
        f" {peer} {t.peer_bytes / 1e6:.2f} MB, {t.peer_cpu:.1f} s;"
        f" PSNR {t.syncd_psnr / t.count:.1f} vs {t.peer_psnr / t.count:.1f} dB;"
        f" {100 * saved:.0f}% smaller than the {t.original / 1e6:.2f} MB originals)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=4)
    parser.add_argument("--screenshots", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quality", type=int, default=None)
    args = parser.parse_args()
    if args.quality is not None:
        QUALITY.update(dict.fromkeys(QUALITY, args.quality))
    missing = [exe for exe in ("cwebp", "avifenc") if shutil.which(exe) is None]
    if missing:
        sys.exit(f"{', '.join(missing)} not installed: apt-get install webp libavif-bin")

    tallies: dict[tuple[str, Target], Tally] = {}
    with tempfile.TemporaryDirectory(prefix="syncd-bench-convert-") as tmp:
        work = Path(tmp)
        # Warm up: the first encode loads codecs; neither side should pay for that here.
        prepare(photos.jpeg(size=(64, 64)), "image/jpeg", ImageOptions(convert=Target.AVIF))
        prepare(photos.jpeg(size=(64, 64)), "image/jpeg", ImageOptions(convert=Target.WEBP))
        for i in range(args.photos):
            im = photo(args.seed + i)
            exif = photos.exif(orientation=1)
            data = photos.encode(
                im, "JPEG", quality=92, exif=exif, icc_profile=photos.srgb_profile()
            )
            measure(f"photo{i}", data, "image/jpeg", im, work, tallies)
        for i in range(args.screenshots):
            im = screenshot(args.seed + 100 + i)
            measure(f"screenshot{i}", photos.encode(im, "PNG"), "image/png", im, work, tallies)

    figures: list[Figure] = []
    lines: list[str] = []
    for target in (Target.WEBP, Target.AVIF):
        peer = _PEER[target]
        total = _sum([t for (_, tg), t in tallies.items() if tg is target])
        lines.append(_describe(target.value, peer, total))
        for kind in ("photo", "screenshot"):
            if (kind, target) in tallies:
                print("  " + _describe(f"{target.value} {kind}s", peer, tallies[(kind, target)]))
        figures += [
            Figure(f"{target.value} bytes", total.syncd_bytes / total.peer_bytes, f"x {peer}"),
            Figure(f"{target.value} CPU", total.syncd_cpu / total.peer_cpu, f"x {peer}"),
            Figure(f"{target.value} saved", 100 * (1 - total.syncd_bytes / total.original), "%"),
        ]
    report("convert", "convert: " + "; ".join(lines), figures)


if __name__ == "__main__":
    main()
