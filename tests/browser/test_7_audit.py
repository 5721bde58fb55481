"""The audit page shows what the scenarios before it did through the console: the
endpoints created, the job submitted, the cancel and the retry, each with who did it.
Runs last (the files run in order); run alone it has nothing to look for and fails."""

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
    page.goto(f"{URL}/ui/audit")
    shoot(page, "audit")
    for action, what in expected:
        row = page.locator("main tr, main li").filter(has_text=action).filter(has_text=what)
        expect(row.first).to_be_visible()
        expect(row.first).to_contain_text(ACTORS[action])
    assert_clean(page)
