"""Browsing and previewing from Python, blocking and asyncio: one folder of a local and an
SFTP endpoint listed (folders first, sizes, truncation, refused paths, a wrong password's
error), and destination path templates rendered as transfers render them.
"""

from __future__ import annotations

import datetime as dt
import pathlib

import pytest
from conftest import MASTER_KEY, sftp, sftp_dir, unique

import file_orbit as fo

XSS = "<img src=x onerror=alert(1)>.txt"
EXPECTED = [("alpha", True, None), ("zeta", True, None), (XSS, False, 8), ("b.txt", False, 3)]


def fill(root: pathlib.Path) -> None:
    (root / "alpha").mkdir(parents=True)
    (root / "zeta").mkdir()
    (root / "alpha" / "inner.txt").write_bytes(b"inner")
    (root / "b.txt").write_bytes(b"bee")
    (root / XSS).write_bytes(b"<script>")


def names(listing: fo.Listing) -> list[tuple[str, bool, int | None]]:
    return [(entry.name, entry.is_dir, entry.size) for entry in listing.entries]


def test_folders_of_local_and_sftp_endpoints_are_listed(orbit: fo.Orbit, local_dirs) -> None:
    source = local_dirs("source")
    fill(source)
    orbit.add_endpoint(fo.Local("src", root=source))
    root = unique("sftp")
    fill(sftp_dir(root))
    orbit.add_endpoint(sftp("partner", root))

    for endpoint in ["src", "partner"]:
        listing = orbit.list_files(endpoint)
        assert names(listing) == EXPECTED, listing
        assert listing.path == "" and not listing.truncated
        assert listing.entries[2].path == XSS
        assert listing.entries[2].modified is not None
        inner = orbit.list_files(endpoint, "alpha//./")
        assert inner.path == "alpha"
        assert [(e.path, e.size) for e in inner.entries] == [("alpha/inner.txt", 5)]
    cut = orbit.list_files("src", limit=2)
    assert names(cut) == EXPECTED[:2] and cut.truncated

    for bad in ["..", "alpha/../..", "/etc", "a\x01b", "a" * 1025]:
        with pytest.raises(fo.ConfigError) as refused:
            orbit.list_files("src", bad)
        assert refused.value.field == "path", bad
    for limit in [0, 5001]:
        with pytest.raises(fo.ConfigError) as refused:
            orbit.list_files("src", limit=limit)
        assert refused.value.field == "limit"
    with pytest.raises(fo.NotFoundError):
        orbit.list_files("nope")
    with pytest.raises(fo.NotFoundError):
        orbit.list_files("src", "missing")
    orbit.add_endpoint(sftp("wrong", root, password="not-the-password"))
    with pytest.raises(fo.AuthenticationError) as failed:
        orbit.list_files("wrong")
    assert "not-the-password" not in str(failed.value)


def test_destination_templates_are_previewed(orbit: fo.Orbit) -> None:
    years = {str(dt.datetime.now(dt.timezone.utc).year)}
    path = orbit.preview_path("archive/{year}/{source}/{stem}.{ext}", "in/report.csv", source="partner")
    years.add(str(dt.datetime.now(dt.timezone.utc).year))
    assert path in {f"archive/{year}/partner/report.csv" for year in years}
    assert orbit.preview_path("{reldir}/x/{filename}") == "example/x/report.csv"
    assert orbit.preview_path("") == ""
    for template in ["{nope}", "../{filename}", "/abs/{filename}", "x" * 1025]:
        with pytest.raises(fo.ConfigError) as refused:
            orbit.preview_path(template)
        assert refused.value.field == "template", template
    with pytest.raises(fo.ConfigError) as refused:
        orbit.preview_path("{filename}", "../x")
    assert refused.value.field == "file"


@pytest.mark.asyncio
async def test_listing_and_preview_from_asyncio(store: str, local_dirs) -> None:
    source = local_dirs("source")
    fill(source)
    async with await fo.AsyncOrbit.open(store, master_key=MASTER_KEY) as aorbit:
        await aorbit.add_endpoint(fo.Local("src", root=source))
        listing = await aorbit.list_files("src")
        assert names(listing) == EXPECTED
        assert names(await aorbit.list_files("src", limit=1)) == EXPECTED[:1]
        with pytest.raises(fo.ConfigError):
            await aorbit.list_files("src", "../up")
        assert await aorbit.preview_path("out/{filename}", "a/b.txt") == "out/b.txt"
        with pytest.raises(fo.ConfigError):
            await aorbit.preview_path("{nope}")
