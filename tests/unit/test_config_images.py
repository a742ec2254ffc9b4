"""The `[upload]` keys that say what happens to an image before it leaves: location is
stripped unless asked not to, conversion is opt-in, and a wrong value is named with its
file, key and fix (exit 78)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from syncd.cli.main import main
from syncd.config import load_config
from syncd.errors import ConfigError
from syncd.imaging import DEFAULT_QUALITY, ImageOptions, Target


def config(tmp_path: Path, upload: str) -> Path:
    (tmp_path / "Notes" / "attachments").mkdir(parents=True, exist_ok=True)
    path = tmp_path / "config.toml"
    path.write_text(
        textwrap.dedent(f"""
        [paths]
        notes = ["{tmp_path / "Notes"}"]
        images = ["{tmp_path / "Notes" / "attachments"}"]

        [storage]
        backend = "local"
        path = "{tmp_path / "remote"}"

        [upload]
        """)
        + textwrap.dedent(upload),
        encoding="utf-8",
    )
    return path


def options(tmp_path: Path, upload: str) -> ImageOptions:
    return load_config(config(tmp_path, upload), {"HOME": str(tmp_path)}).upload.images


def test_location_is_stripped_by_default_and_nothing_is_converted(tmp_path: Path) -> None:
    got = options(tmp_path, "")
    assert got == ImageOptions(strip_location=True, strip_metadata=False, convert=Target.NONE)
    assert got.max_dimension == 0


def test_every_key_is_read(tmp_path: Path) -> None:
    got = options(
        tmp_path,
        """
        strip_location = false
        strip_metadata = true
        convert = "avif"
        quality = 50
        max_dimension = 2560
        """,
    )
    assert got == ImageOptions(
        strip_location=False,
        strip_metadata=True,
        convert=Target.AVIF,
        quality=50,
        max_dimension=2560,
    )


@pytest.mark.parametrize(("target", "quality"), [("webp", 82), ("avif", 60)])
def test_each_format_has_its_own_default_quality(tmp_path: Path, target: str, quality: int) -> None:
    got = options(tmp_path, f'convert = "{target}"\n')
    assert got.effective_quality == quality == DEFAULT_QUALITY[Target(target)]


def test_a_changed_setting_changes_the_fingerprint(tmp_path: Path) -> None:
    plain = options(tmp_path, "")
    assert plain.fingerprint != options(tmp_path, "strip_metadata = true\n").fingerprint
    webp = options(tmp_path, 'convert = "webp"\n')
    assert webp.fingerprint != options(tmp_path, 'convert = "webp"\nquality = 70\n').fingerprint


@pytest.mark.parametrize(
    ("line", "key", "fix"),
    [
        ('strip_location = "yes"', "upload.strip_location", "strip_location = false"),
        ("strip_metadata = 1", "upload.strip_metadata", "strip_metadata = true"),
        ('convert = "jpegxl"', "upload.convert", 'convert = "webp"'),
        ("quality = 0", "upload.quality", "quality = 82"),
        ("quality = 101", "upload.quality", "quality = "),
        ("quality = 80.5", "upload.quality", "quality = "),
        ("max_dimension = -1", "upload.max_dimension", "max_dimension = 2560"),
        ('max_dimension = "2k"', "upload.max_dimension", "max_dimension = "),
    ],
)
def test_a_wrong_value_names_file_key_and_fix(
    tmp_path: Path, line: str, key: str, fix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config(tmp_path, line + "\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, {"HOME": str(tmp_path)})
    (problem,) = caught.value.problems
    assert (problem.file, problem.key) == (str(path), key)
    assert fix in problem.fix

    assert main(["--config", str(path), "status"]) == 78
    err = capsys.readouterr().err
    assert key in err and str(path) in err and "Traceback" not in err


def test_avif_quality_error_suggests_the_avif_default(tmp_path: Path) -> None:
    path = config(tmp_path, 'convert = "avif"\nquality = 0\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path, {"HOME": str(tmp_path)})
    (problem,) = caught.value.problems
    assert "quality = 60" in problem.fix


@pytest.mark.parametrize(
    "given",
    [
        ImageOptions(),
        ImageOptions(strip_location=False, strip_metadata=True),
        ImageOptions(convert=Target.AVIF),
        ImageOptions(convert=Target.WEBP, quality=70, max_dimension=1600),
    ],
)
def test_a_fingerprint_gives_back_the_settings_it_was_written_for(given: ImageOptions) -> None:
    again = ImageOptions.from_fingerprint(given.fingerprint)
    assert again is not None and again.fingerprint == given.fingerprint


def test_a_fingerprint_that_is_not_one_gives_nothing() -> None:
    assert ImageOptions.from_fingerprint("") is None
    assert ImageOptions.from_fingerprint("location=1,convert=gif,metadata=0") is None
