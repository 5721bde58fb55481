"""A file named like markup shows as text: in the New transfer form's folder browser, in
the jobs list and on the job's page (its path and, for a missing one, the error naming it).
No element is made from the name and no script runs."""

import re

from conftest import URL, assert_clean, set_field, shoot
from playwright.sync_api import expect

NAME = "<img src=x onerror=alert(1)>.txt"


def assert_text_not_markup(page, text=NAME):
    expect(page.get_by_text(text).first).to_be_visible()
    assert page.locator("img").count() == 0, "an <img> was made from a file name"
    assert page.fo_dialogs == [], page.fo_dialogs


def test_a_file_named_like_markup_shows_as_text(signed_in, api, operator_api):
    source = api.local_endpoint("xss-in")
    api.local_endpoint("xss-out")
    (source / NAME).write_text("markup in the name\n")
    page = signed_in("operator")

    page.goto(f"{URL}/ui/transfers/new")
    form = page.locator("#transfer-form")
    set_field(form, "xss-in", "spec.source", "source")
    form.get_by_role("button", name="Browse").first.click()
    assert_text_not_markup(page)
    shoot(page, "transfer-browse")
    # Picking it puts the name, as typed, into the source path.
    page.locator("#transfer-form").get_by_text(NAME).first.click()
    expect(form.locator('[name="spec.source_path"]')).to_have_value(NAME)
    assert page.locator("img").count() == 0

    job = operator_api.submit("xss-in", NAME, "xss-out", NAME)
    operator_api.wait_job(job["id"], lambda j: j["state"] == "succeeded")
    missing = operator_api.submit("xss-in", "missing-" + NAME, "xss-out", NAME,
                                  retry={"max_attempts": 1, "base_delay_ms": 100,
                                         "max_delay_ms": 100})
    dead = operator_api.wait_job(missing["id"], lambda j: j["state"] == "dead")
    assert "missing-" + NAME in (dead["last_error"] or ""), dead["last_error"]

    page.goto(f"{URL}/ui/jobs")
    assert_text_not_markup(page)
    page.goto(f"{URL}/ui/jobs/{job['id']}")
    assert_text_not_markup(page)
    shoot(page, "job-markup-name")
    page.goto(f"{URL}/ui/jobs/{missing['id']}")
    # The error message names the file, as text.
    expect(page.get_by_text(re.compile(re.escape("missing-" + NAME))).first).to_be_visible()
    assert page.locator("img").count() == 0
    assert_clean(page)
