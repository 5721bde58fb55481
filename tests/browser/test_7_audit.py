"""The audit page shows what the scenarios before it did through the console: the
endpoints created, the job submitted, the cancel and the retry, each with who did it; its
chain checks out, a filter by subject narrows it, and the CSV export holds the same.
Runs last (the files run in order); run alone it has nothing to look for and fails."""

import re

from conftest import URL, assert_clean, shoot
from playwright.sync_api import expect

# The account each action was done with in the scenarios.
ACTORS = {"endpoint.created": "browser-admin", "job.submitted": "browser-operator",
          "job.cancel_requested": "browser-operator", "job.retried": "browser-operator"}


def subject(action, target):
    return f"job/{target}" if action.startswith("job.") else f"endpoint/{target}"


def test_the_audit_page_shows_what_was_done(signed_in, history):
    expected = [(action, subject(action, target))
                for action, targets in history.items() for target in targets]
    assert {action for action, _ in expected} == set(ACTORS), \
        f"the scenarios before this one did not all run: {history}"
    page = signed_in("viewer")
    # The whole run's records on one page (the default shows the latest ones only).
    page.goto(f"{URL}/ui/audit?limit=1000")
    shoot(page, "audit")
    for action, what in expected:
        expect(row(page, action, what).first).to_contain_text(ACTORS[action])

    page.get_by_role("button", name="Verify chain").click()
    expect(page.locator("#verify-result")).to_contain_text("intact")

    # The compliance report: the export holds the records too.
    with page.expect_download() as download:
        page.get_by_role("link", name="Export CSV").click()
    report = open(download.value.path(), encoding="utf-8").read()
    for action, what in expected:
        assert re.search(rf"{re.escape(action)},{re.escape(what)}(?!\d)", report), (action, what)

    # A filter by subject shows that job's records only.
    action, job = next((a, w) for a, w in expected if a == "job.retried")
    page.get_by_label("Subject contains").fill(job)
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"[?&]subject=job"))
    expect(row(page, action, job).first).to_be_visible()
    subjects = page.locator('main td[data-label="Subject"]').all_inner_texts()
    assert subjects and all(s.startswith(job) for s in subjects), subjects
    shoot(page, "audit-filtered")
    assert_clean(page)


def row(page, action, what):
    """The table rows of `action` on `what` (job/5 is not job/50)."""
    return (page.locator("main tr").filter(has_text=action)
            .filter(has_text=re.compile(re.escape(what) + r"(?!\d)")))
