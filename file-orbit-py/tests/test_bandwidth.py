"""Bandwidth limits from Python: an endpoint's ``bandwidth`` is stored, listed with the rates
in force, holds its jobs to the cap, and a bad limit is refused naming the field."""

from __future__ import annotations

import time

import pytest

import file_orbit as fo

from conftest import MASTER_KEY, wait_until

MIB = 1 << 20


def test_an_endpoint_limit_is_listed_and_holds_its_jobs(orbit: fo.Orbit, local_dirs) -> None:
    inbox, out = local_dirs("inbox"), local_dirs("out")
    (inbox / "big.bin").write_bytes(bytes(3 * MIB))
    orbit.add_endpoint(fo.Local("inbox", root=inbox))
    orbit.add_endpoint(fo.Local("out", root=out, bandwidth="1M"))
    (listed,) = [e for e in orbit.endpoints() if e.name == "out"]
    assert listed.bandwidth == "1M"
    assert listed.bandwidth_now == fo.Rates(upload=MIB, download=MIB)
    assert listed.bandwidth_next is None
    assert listed.config["bandwidth"] == "1M"

    spec = fo.TransferSpec("inbox", "out", source_path="big.bin", destination_path="{filename}", scope="file")
    started = time.monotonic()
    with orbit.start_workers(1):
        info = orbit.submit(spec).wait(timeout=60)
    took = time.monotonic() - started
    assert info.state == "succeeded"
    # 3 MiB at 1 MiB/s (the first bytes pass without waiting: at most a tenth of a second's worth).
    assert took > 2.5, f"3 MiB passed a 1M cap in {took:.2f} s"
    assert (out / "big.bin").stat().st_size == 3 * MIB
    # The governor keeps sampling while the orbit is open.
    wait_until(
        lambda: any(u.endpoint == "out" and u.upload_bytes >= 3 * MIB for u in orbit.bandwidth_usage()),
        what="the bytes moved to show",
    )
    (usage,) = [u for u in orbit.bandwidth_usage() if u.endpoint == "out"]
    assert usage.limit == fo.Rates(upload=MIB, download=MIB)
    assert any(u.endpoint is None for u in orbit.bandwidth_usage()), "the service-wide entry"


def test_a_timetable_shows_its_next_change(orbit: fo.Orbit, local_dirs) -> None:
    orbit.add_endpoint(fo.Local("night", root=local_dirs("night"), bandwidth="Mon-08:00,512k Sat-00:00,off"))
    (listed,) = orbit.endpoints()
    assert listed.bandwidth_next is not None
    at, rates = listed.bandwidth_next
    assert at.tzinfo is not None
    assert rates in (fo.Rates(upload=512 * 1024, download=512 * 1024), fo.Rates(upload=None, download=None))
    assert rates != listed.bandwidth_now


@pytest.mark.parametrize("limit", ["10X", "25:00,1M", "100B", ""])
def test_a_bad_limit_is_refused_naming_the_field(local_dirs, limit: str) -> None:
    with pytest.raises(fo.ConfigError, match="bandwidth"):
        fo.Local("x", root=local_dirs("x"), bandwidth=limit)


def test_a_bad_service_wide_limit_is_refused(store: str) -> None:
    with pytest.raises(fo.ConfigError, match="bandwidth"):
        fo.Orbit(store, master_key=MASTER_KEY, bandwidth="fast")
