"""Agents in the console: an admin enrols an agent through the agents page's form and
reads its one-time token (with a ready [agent] configuration naming this server); the test
exchanges the token at the real enrolment route as an agent would, the page then lists the
agent online with what it declared, and its Revoke button revokes it. An endpoint's
placement is set through the endpoint form (a bad label marks its field) and shown in the
endpoints list."""

import json
import re
import urllib.error
import urllib.request

from conftest import URL, assert_clean, set_field, shoot
from playwright.sync_api import expect

AGENT = "browser-b"


def enrol(token):
    """POST /api/v1/agent/enrol with no Authorization header, as an agent's first start
    does: (status, answer)."""
    body = {"token": token, "host": "browser-host", "version": "0.1.0", "slots": 3,
            "backends": ["local"]}
    request = urllib.request.Request(
        f"{URL}/api/v1/agent/enrol", data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read().decode())
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def status(page, name):
    return page.locator(f'tr[data-agent="{name}"] [data-agent-status]')


def test_enrol_an_agent_see_it_online_and_revoke_it(signed_in, api):
    page = signed_in("admin")
    page.goto(f"{URL}/ui/agents")
    expect(page.get_by_role("link", name="Agents")).to_have_attribute("aria-current", "page")
    form = page.locator("#enrol-form")
    set_field(form, AGENT, "name")
    set_field(form, "dmz, site-a", "labels")
    form.get_by_role("button", name="Enrol agent").click()

    token_field = page.locator("#enrolment-token")
    expect(token_field).to_be_visible()
    expect(token_field).to_have_value(re.compile(r"^foe_[A-Za-z0-9_-]{43}$"))
    token = token_field.input_value()
    expect(page.locator("#enrolment")).to_contain_text("will not be shown again")
    expect(page.locator("[data-enrolment-expires]")).to_have_text(
        re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$"))
    config = page.locator("#enrolment-config").input_value()
    assert config.startswith("[agent]\n"), config
    assert f'control_plane = ["{URL}"]' in config, config
    assert f'enrolment_token = "{token}"' in config, config
    assert "credential_file = " in config, config
    shoot(page, "agent-enrolled")
    # The token is in the answer only: the API lists the agent as pending, without it.
    listed = api.call("GET", f"/api/v1/agents/{AGENT}")
    assert listed["status"] == "pending" and listed["labels"] == ["dmz", "site-a"], listed
    assert token not in json.dumps(listed)

    answer, enrolled = enrol(token)
    assert answer == 200, enrolled
    assert enrolled["name"] == AGENT and enrolled["credential"].startswith("foa_"), enrolled
    # One use only.
    assert enrol(token)[0] == 401

    page.reload()
    expect(status(page, AGENT)).to_have_text("online")
    row = page.locator(f'tr[data-agent="{AGENT}"]')
    for fact in ("browser-host", "0.1.0", "local", "dmz", "site-a"):
        expect(row).to_contain_text(fact)
    expect(row.locator('td[data-label="Slots"]')).to_have_text("3")
    expect(row.locator('td[data-label="Last contact"] time')).to_contain_text("UTC")
    shoot(page, "agents")

    # Revoke asks first (the page accepts), then the list reloads with the agent revoked.
    row.get_by_role("button", name="Revoke").click()
    expect(status(page, AGENT)).to_have_text("revoked")
    expect(page.locator(f'tr[data-agent="{AGENT}"]').get_by_role("button", name="Revoke")) \
        .to_have_count(0)
    assert api.call("GET", f"/api/v1/agents/{AGENT}")["status"] == "revoked"
    assert_clean(page)


def test_a_viewer_sees_agents_but_no_enrolment(signed_in, api):
    api.call("POST", "/api/v1/agents", {"name": "browser-viewed", "labels": []},
             expect_status=201)
    page = signed_in("viewer")
    page.goto(f"{URL}/ui/agents")
    expect(status(page, "browser-viewed")).to_have_text("pending")
    expect(page.locator("#enrol-form")).to_have_count(0)
    assert page.locator("main form[data-api], main button[data-api]").count() == 0
    assert_clean(page)


def test_place_an_endpoint_through_the_form(signed_in, api):
    api.local_endpoint("placed-in")
    page = signed_in("admin")
    page.goto(f"{URL}/ui/endpoints/placed-in")
    form = page.locator("#endpoint-form")
    agents = form.locator('[name="placement.agents"]')
    labels = form.locator('[name="placement.labels"]')
    expect(agents).to_have_value("")
    expect(page.locator("dd[data-placement]")).to_have_text("anywhere")

    # A bad label: the API's 400 names placement.labels and the form marks that field.
    set_field(form, "DMZ!", "placement.labels")
    form.get_by_role("button", name="Save endpoint").click()
    expect(labels).to_have_attribute("aria-invalid", "true")
    expect(form.locator("[data-result]")).to_contain_text("placement.labels")
    expect(agents).not_to_have_attribute("aria-invalid", "true")

    set_field(form, AGENT, "placement.agents")
    set_field(form, "dmz, site-a", "placement.labels")
    form.get_by_role("button", name="Save endpoint").click()
    expect(page.locator("dd[data-placement]")).to_have_text(
        f"agents {AGENT}; labels dmz, site-a")
    stored = api.call("GET", "/api/v1/endpoints/placed-in")
    assert stored["config"]["placement"] == {"agents": [AGENT], "labels": ["dmz", "site-a"]}
    # The edit form comes back filled in.
    expect(page.locator('#endpoint-form [name="placement.agents"]')).to_have_value(AGENT)
    expect(page.locator('#endpoint-form [name="placement.labels"]')).to_have_value(
        "dmz, site-a")
    shoot(page, "endpoint-placed")

    page.goto(f"{URL}/ui/endpoints")
    row = page.locator("#endpoints tr", has=page.get_by_role("link", name="placed-in",
                                                              exact=True))
    expect(row.locator("td[data-placement]")).to_have_text(
        f"agents {AGENT}; labels dmz, site-a")
    # Emptied, the placement is left out: anywhere again.
    page.goto(f"{URL}/ui/endpoints/placed-in")
    set_field(form, "", "placement.agents")
    set_field(form, "", "placement.labels")
    form.get_by_role("button", name="Save endpoint").click()
    expect(page.locator("dd[data-placement]")).to_have_text("anywhere")
    assert "placement" not in api.call("GET", "/api/v1/endpoints/placed-in")["config"]
    assert_clean(page)
