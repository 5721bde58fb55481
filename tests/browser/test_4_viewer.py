"""A viewer sees no edit controls where an admin or operator sees them, cannot open the
pages that change things, and a change forged from a viewer's page (with or without the
page's CSRF token) is refused by the server."""

import pytest
from conftest import FILES, URL, assert_clean, big_file, shoot
from playwright.sync_api import expect

MIB = 1 << 20
EDIT_CONTROLS = ["Save endpoint", "Cancel", "Retry", "New endpoint", "Test connection",
                 "Submit transfer"]


@pytest.fixture
def scene(api, operator_api):
    """An endpoint, a dead job and a running one (cancelled afterwards)."""
    api.local_endpoint("view-in")
    source = api.local_endpoint("view-slow", bandwidth="100K")
    api.local_endpoint("view-out")
    big_file(source / "slow.bin", 2 * MIB)
    dead = operator_api.submit("view-in", "missing.txt", "view-out", "missing.txt",
                               retry={"max_attempts": 1, "base_delay_ms": 100,
                                      "max_delay_ms": 100})
    running = operator_api.submit("view-slow", "slow.bin", "view-out", "slow.bin")
    operator_api.wait_job(dead["id"], lambda j: j["state"] == "dead")
    operator_api.wait_job(running["id"], lambda j: j["state"] == "leased")
    pages = {"/ui/endpoints": ["New endpoint"],
             "/ui/endpoints/view-in": ["Test connection"],
             f"/ui/jobs/{dead['id']}": ["Retry"],
             f"/ui/jobs/{running['id']}": ["Cancel"],
             "/ui/jobs": []}
    yield {"pages": pages, "running": running["id"]}
    if operator_api.job(running["id"])["state"] in ("queued", "leased"):
        operator_api.call("POST", f"/api/v1/jobs/{running['id']}/cancel")


def controls(page):
    """The edit controls the page offers (buttons and links by their visible name; exact,
    so an endpoint named retry-in is not a Retry)."""
    found = []
    for name in EDIT_CONTROLS:
        for role in ("button", "link"):
            if page.get_by_role(role, name=name, exact=True).count():
                found.append(name)
    return found


def test_a_viewer_sees_no_edit_controls(signed_in, scene):
    admin, viewer = signed_in("admin"), signed_in("viewer")
    for path, offered in scene["pages"].items():
        admin.goto(URL + path)
        # The same page offers them to an admin: the check below can fail.
        for name in offered:
            expect(admin.get_by_role("button", name=name, exact=True).or_(
                admin.get_by_role("link", name=name, exact=True)).first).to_be_visible()
        viewer.goto(URL + path)
        expect(viewer.get_by_text("browser-viewer · viewer")).to_be_attached()
        assert controls(viewer) == [], f"{path} offers a viewer {controls(viewer)}"
        # Nothing on the page calls the API to change something.
        assert viewer.locator("main form[data-api], main button[data-api]").count() == 0, path
    shoot(viewer, "viewer-job")
    # No navigation to what a viewer cannot do, and the pages themselves refuse.
    expect(viewer.get_by_role("link", name="New transfer")).to_have_count(0)
    for path in ("/ui/endpoints/new", "/ui/transfers/new", "/ui/keys"):
        answer = viewer.goto(URL + path)
        assert answer.status == 403, f"{path}: {answer.status}"
        expect(viewer.get_by_text("Not allowed")).to_be_visible()
    assert_clean(admin)
    assert_clean(viewer)


def forged(page, method, path, with_token):
    """A change sent from the page's own script context, as an attacker's script would."""
    return page.evaluate(
        """async ([method, path, withToken, root]) => {
          const headers = {'Content-Type': 'application/json'};
          if (withToken) headers['X-CSRF-Token'] =
            document.querySelector('meta[name="csrf-token"]').content;
          const answer = await fetch(path, {method, headers, credentials: 'same-origin',
            body: JSON.stringify({type: 'local', root})});
          return answer.status;
        }""", [method, path, with_token, str(FILES / "forged")])


def test_a_change_forged_with_a_viewers_session_is_refused(signed_in, api, operator_api, scene):
    page = signed_in("viewer")
    page.goto(f"{URL}/ui/endpoints")
    assert page.locator('meta[name="csrf-token"]').get_attribute("content")
    for with_token in (True, False):
        assert forged(page, "PUT", "/api/v1/endpoints/x", with_token) == 403
        assert forged(page, "POST", f"/api/v1/jobs/{scene['running']}/cancel", with_token) == 403
    api.call("GET", "/api/v1/endpoints/x", expect_status=404)
    assert operator_api.job(scene["running"])["state"] == "leased"
    assert_clean(page)


def test_the_api_needs_the_pages_csrf_token(signed_in, api):
    """The same call from an admin's page: refused without the page's token, done with it
    (so the viewer's refusal above is the role's, with the token)."""
    page = signed_in("admin")
    page.goto(f"{URL}/ui/endpoints")
    assert forged(page, "PUT", "/api/v1/endpoints/csrf-check", False) == 403
    api.call("GET", "/api/v1/endpoints/csrf-check", expect_status=404)
    assert forged(page, "PUT", "/api/v1/endpoints/csrf-check", True) == 201
    api.call("GET", "/api/v1/endpoints/csrf-check", expect_status=200)
    assert_clean(page)
