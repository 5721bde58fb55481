"""Agents and endpoint placement from Python (issue #17): an agent is created with a
one-time enrolment token, listed as pending, revoked and listed as revoked, each step in the
audit log; bad names raise ``ConfigError`` naming the field; an endpoint's ``Placement`` is
stored and listed back; a job that no enrolled agent may run is refused at submission,
naming the placed side. Enrolling (the agent's side) goes through the server's agent API,
tested in Rust (tests/agent_protocol.rs).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from conftest import MASTER_KEY

import file_orbit as fo


def test_an_agent_is_created_pending_then_revoked(orbit: fo.Orbit) -> None:
    before = dt.datetime.now(dt.timezone.utc)
    enrolment = orbit.create_agent("b", ["dmz", "eu-west"], ttl=3600)
    assert (enrolment.name, enrolment.labels) == ("b", ("dmz", "eu-west"))
    assert enrolment.enrolment_token.startswith("foe_") and len(enrolment.enrolment_token) > 20
    assert enrolment.enrolment_token not in repr(enrolment)
    expected = before + dt.timedelta(hours=1)
    assert abs(enrolment.expires_at - expected) < dt.timedelta(seconds=30), enrolment.expires_at

    (listed,) = orbit.agents()
    assert listed == orbit.agent("b")
    assert (listed.name, listed.labels, listed.status) == ("b", ("dmz", "eu-west"), "pending")
    assert listed.enrolment_expires_at == enrolment.expires_at
    assert (listed.host, listed.version, listed.slots, listed.backends) == (None, None, 0, ())
    assert (listed.enrolled_at, listed.last_contact, listed.revoked_at, listed.running) == (None, None, None, ())
    assert abs(listed.created_at - before) < dt.timedelta(seconds=30)

    orbit.revoke_agent("b")
    revoked = orbit.agent("b")
    assert revoked.status == "revoked" and revoked.revoked_at is not None
    assert [agent.status for agent in orbit.agents()] == ["revoked"]
    orbit.revoke_agent("b")  # again: nothing changes
    assert orbit.agent("b").revoked_at == revoked.revoked_at

    actions = [(record.action, record.subject) for record in orbit.audit_log(20)]
    assert ("agent.created", "agent/b") in actions and ("agent.revoked", "agent/b") in actions
    assert all(enrolment.enrolment_token not in str(record.detail) for record in orbit.audit_log(20))

    # A revoked agent's name may be used again, with a new token.
    again = orbit.create_agent("b")
    assert again.enrolment_token != enrolment.enrolment_token and again.labels == ()
    assert orbit.agent("b").status == "pending"


def test_unknown_agents_raise_not_found(orbit: fo.Orbit) -> None:
    with pytest.raises(fo.NotFoundError, match="ghost"):
        orbit.agent("ghost")
    with pytest.raises(fo.NotFoundError, match="ghost"):
        orbit.revoke_agent("ghost")
    assert orbit.agents() == []


def test_bad_agents_raise_config_error_naming_the_field(orbit: fo.Orbit) -> None:
    orbit.create_agent("b")
    with pytest.raises(fo.ConfigError, match="revoke it first") as bad:
        orbit.create_agent("b", ["dmz"])
    assert bad.value.field == "name"
    assert orbit.agent("b").labels == (), "the duplicate changed nothing"
    for name in ["B", "", "-b", "b c", "a" * 64]:
        with pytest.raises(fo.ConfigError) as bad:
            orbit.create_agent(name)
        assert bad.value.field == "name", name
    with pytest.raises(fo.ConfigError) as bad:
        orbit.create_agent("c", ["DMZ"])
    assert bad.value.field == "labels" and "DMZ" in str(bad.value)
    for ttl in [0, 59, -1, 31 * 86400]:
        with pytest.raises(fo.ConfigError) as bad:
            orbit.create_agent("c", ttl=ttl)
        assert bad.value.field == "ttl", ttl
    with pytest.raises(TypeError, match="labels"):
        orbit.create_agent("c", "dmz")
    assert [agent.name for agent in orbit.agents()] == ["b"]


def test_placement_round_trips_through_the_store(orbit: fo.Orbit, local_dirs) -> None:
    placement = fo.Placement(agents=["b"], labels=["dmz"])
    assert placement == fo.Placement(agents=("b",), labels=("dmz",))
    orbit.add_endpoint(fo.Local("placed", root=local_dirs("placed"), placement=placement))
    orbit.add_endpoint(fo.Local("anywhere", root=local_dirs("anywhere"), placement=fo.Placement()))
    listed = {info.name: info for info in orbit.endpoints()}
    assert listed["placed"].placement == placement
    assert listed["placed"].config["placement"] == {"agents": ["b"], "labels": ["dmz"]}
    assert listed["anywhere"].placement is None and "placement" not in listed["anywhere"].config

    # Replaced without a placement, the endpoint runs anywhere again.
    orbit.add_endpoint(fo.Local("placed", root=local_dirs("placed")))
    (placed,) = [info for info in orbit.endpoints() if info.name == "placed"]
    assert placed.placement is None


def test_a_bad_placement_is_refused_naming_the_field(local_dirs) -> None:
    root = local_dirs("x")
    with pytest.raises(fo.ConfigError) as bad:
        fo.Local("x", root=root, placement=fo.Placement(agents=["B!"]))
    assert bad.value.field == "placement.agents" and "B!" in str(bad.value)
    with pytest.raises(fo.ConfigError) as bad:
        fo.Local("x", root=root, placement=fo.Placement(labels=[f"l{n}" for n in range(33)]))
    assert bad.value.field == "placement.labels"
    with pytest.raises(TypeError, match="agents"):
        fo.Placement(agents="b")
    with pytest.raises(TypeError, match="Placement"):
        fo.Local("x", root=root, placement={"agents": ["b"]})  # type: ignore[arg-type]


def test_a_job_no_enrolled_agent_may_run_is_refused_naming_the_side(orbit: fo.Orbit, local_dirs) -> None:
    orbit.add_endpoint(fo.Local("in", root=local_dirs("in")))
    orbit.add_endpoint(fo.Local("out", root=local_dirs("out")))
    orbit.add_endpoint(fo.Local("on-b", root=local_dirs("on-b"), placement=fo.Placement(agents=["b"])))
    orbit.add_endpoint(fo.Local("in-dmz", root=local_dirs("in-dmz"), placement=fo.Placement(labels=["dmz"])))
    # Agent b exists but has not enrolled: it does not count.
    orbit.create_agent("b", ["dmz"])

    with pytest.raises(fo.ConfigError, match="no enrolled agent") as bad:
        orbit.submit(fo.TransferSpec("in", "on-b", destination_path=""))
    assert bad.value.field == "destination" and "on-b" in str(bad.value)
    with pytest.raises(fo.ConfigError, match="no enrolled agent") as bad:
        orbit.submit(fo.TransferSpec("in-dmz", "out", destination_path=""))
    assert bad.value.field == "source" and "in-dmz" in str(bad.value)
    with pytest.raises(fo.ConfigError) as bad:
        orbit.submit(fo.TransferSpec("in-dmz", "on-b", destination_path=""))
    assert bad.value.field == "destination"
    assert orbit.jobs() == [], "nothing refused was stored"

    # Unplaced endpoints run anywhere: the same store takes their job.
    job = orbit.submit(fo.TransferSpec("in", "out", destination_path=""))
    assert job.info().state == "queued"


@pytest_asyncio.fixture
async def aorbit(store: str) -> AsyncIterator[fo.AsyncOrbit]:
    async with await fo.AsyncOrbit.open(store, master_key=MASTER_KEY, lease=3.0, poll_interval=0.02) as aorbit:
        yield aorbit


@pytest.mark.asyncio
async def test_async_agents_are_created_listed_and_revoked(aorbit: fo.AsyncOrbit, local_dirs) -> None:
    enrolment = await aorbit.create_agent("c", ("dmz",))
    assert enrolment.enrolment_token.startswith("foe_")
    [listed] = await aorbit.agents()
    assert (listed.name, listed.status) == ("c", "pending")
    with pytest.raises(fo.ConfigError) as bad:
        await aorbit.create_agent("c")
    assert bad.value.field == "name"
    await aorbit.revoke_agent("c")
    assert (await aorbit.agent("c")).status == "revoked"

    await aorbit.add_endpoint(fo.Local("in", root=local_dirs("in")))
    await aorbit.add_endpoint(fo.Local("on-c", root=local_dirs("on-c"), placement=fo.Placement(agents=["c"])))
    [placed] = [info for info in await aorbit.endpoints() if info.name == "on-c"]
    assert placed.placement == fo.Placement(agents=["c"])
    with pytest.raises(fo.ConfigError) as bad:
        await aorbit.submit(fo.TransferSpec("in", "on-c", destination_path=""))
    assert bad.value.field == "destination"
