"""Fixtures of the console's browser tests: Debian's Chromium driven by Playwright (no
browser download), the server scripts/test-browser.sh started (its URL and three declared
keys, admin/operator/viewer, in FILE_ORBIT_BROWSER_* variables), an API client for setting
up endpoints and jobs, and pages signed in through the console's own sign-in form.

Every page a test opens accepts confirmation dialogs (the console asks before cancelling)
and records any other dialog, uncaught script error, console error and CSP violation; a test
that leaves one behind fails."""

import json
import os
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

URL = os.environ["FILE_ORBIT_BROWSER_URL"]
KEYS = {role: os.environ[f"FILE_ORBIT_BROWSER_KEY_{role.upper()}"]
        for role in ("admin", "operator", "viewer")}
FILES = Path(os.environ["FILE_ORBIT_BROWSER_FILES"])
SHOTS = Path(os.environ["FILE_ORBIT_BROWSER_SCREENSHOTS"])
CHROMIUM = os.environ.get("FILE_ORBIT_CHROMIUM", "/usr/bin/chromium")
# Headless, nothing phoning home, shared memory in /tmp (a container's /dev/shm is small).
# Playwright's launch() gives Chromium a fresh temporary user-data directory of its own (and
# removes it), so no profile is shared between runs.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
PHONE, DESKTOP = 390, 1280

# Waits are bounded: 15 s for the page to show what it should.
expect.set_options(timeout=15_000)

# Run in every document before the page's own scripts (and not subject to its CSP):
# reports CSP violations into a list the tests read, and records every value a job's
# progress bar takes in the tab's sessionStorage, so the values survive the reload a job
# page does when its job ends.
WATCH_SCRIPT = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || 'inline'}`);
});
new MutationObserver((changes) => changes.forEach((change) => {
  if (!change.target.matches('[data-job-progress] progress')) return;
  const seen = JSON.parse(sessionStorage.getItem('fo-progress-seen') || '[]');
  seen.push(Number(change.target.value));
  sessionStorage.setItem('fo-progress-seen', JSON.stringify(seen));
})).observe(document, {subtree: true, attributes: true, attributeFilter: ['value']});
"""


class Api:
    """The JSON API with one key, for setting the scene (endpoints, jobs) and checking it."""

    def __init__(self, key):
        self.key = key

    def call(self, method, path, body=None, expect_status=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(URL + path, data=data, method=method, headers={
            "Authorization": f"Bearer {self.key}", "Content-Type": "application/json",
            "Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                status, text = answer.status, answer.read().decode()
        except urllib.error.HTTPError as err:
            status, text = err.code, err.read().decode()
        if expect_status is not None:
            assert status == expect_status, f"{method} {path}: {status} {text}"
        elif status >= 400:
            raise AssertionError(f"{method} {path}: {status} {text}")
        return json.loads(text) if text else None

    def local_endpoint(self, name, bandwidth=None):
        """A local endpoint rooted in a fresh folder of the run's files; its folder."""
        root = FILES / name
        root.mkdir(parents=True, exist_ok=True)
        body = {"type": "local", "root": str(root)}
        if bandwidth:
            body["bandwidth"] = bandwidth
        self.call("PUT", f"/api/v1/endpoints/{name}", body)
        return root

    def submit(self, source, source_path, destination, destination_path, retry=None):
        body = {"spec": {"source": source, "source_path": source_path,
                         "destination": destination, "destination_path": destination_path,
                         "scope": "file"}}
        if retry:
            body["retry"] = retry
        return self.call("POST", "/api/v1/jobs", body, expect_status=201)

    def job(self, job_id):
        return self.call("GET", f"/api/v1/jobs/{job_id}")

    def wait_job(self, job_id, until, timeout=60):
        """Polls the job until `until(job)` holds (bounded by `timeout` seconds)."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if until(job):
                return job
            assert time.monotonic() < deadline, f"job {job_id} still {job['state']}: {job}"
            time.sleep(0.1)


def big_file(path, size):
    """A file of `size` bytes that compresses to nothing useful."""
    with open(path, "wb") as out:
        left = size
        while left:
            chunk = os.urandom(min(left, 1 << 20))
            out.write(chunk)
            left -= len(chunk)
    return path


@pytest.fixture(scope="session")
def api():
    """The admin key's API client."""
    return Api(KEYS["admin"])


@pytest.fixture(scope="session")
def operator_api():
    return Api(KEYS["operator"])


@pytest.fixture(scope="session")
def history():
    """What the scenarios did through the console (for the audit page's test): endpoint
    names created, job ids submitted, cancelled and retried."""
    return {"endpoint.created": [], "job.submitted": [], "job.cancel_requested": [],
            "job.retried": []}


@pytest.fixture(scope="session")
def browser():
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def watch(page):
    """Records on the page what must not happen: dialogs other than confirmations (which
    are accepted), uncaught errors, console errors; CSP violations and progress bars'
    values via WATCH_SCRIPT."""
    page.fo_dialogs = []
    page.fo_errors = []

    def on_dialog(dialog):
        if dialog.type == "confirm":
            dialog.accept()
            return
        page.fo_dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on("pageerror", lambda err: page.fo_errors.append(f"uncaught: {err}"))
    # A refused call's status is reported as "Failed to load resource": the tests check
    # statuses where they matter (a viewer's forged change must be refused).
    page.on("console", lambda msg: msg.type == "error"
            and not msg.text.startswith("Failed to load resource")
            and page.fo_errors.append(f"console: {msg.text} ({page.url})"))
    page.add_init_script(WATCH_SCRIPT)
    return page


def csp_violations(page):
    return page.evaluate("window.__cspViolations || []")


def progress_seen(page):
    """The values job progress bars took in this tab, oldest first."""
    return page.evaluate("JSON.parse(sessionStorage.getItem('fo-progress-seen') || '[]')")


def assert_clean(page):
    """No dialog but confirmations, no script error, no console error, no CSP violation."""
    assert page.fo_dialogs == [], page.fo_dialogs
    assert page.fo_errors == [], page.fo_errors
    assert csp_violations(page) == [], csp_violations(page)


def sign_in(page, role):
    page.goto(f"{URL}/ui/login")
    page.get_by_label("API key or token").fill(KEYS[role])
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/ui/$"))
    # Who is signed in (the principal is "key:<name>"; a phone's header may hide it).
    expect(page.get_by_text(f"browser-{role} · {role}")).to_be_attached()


@pytest.fixture
def new_page(browser):
    """A page in a fresh context (no cookies), watched; `width` defaults to 1280 px."""
    contexts = []

    def make(width=DESKTOP, height=900):
        context = browser.new_context(viewport={"width": width, "height": height})
        # Clicks and navigations wait as long as expectations do.
        context.set_default_timeout(15_000)
        contexts.append(context)
        return watch(context.new_page())

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def signed_in(new_page):
    """signed_in(role, width=1280): a page signed in through /ui/login as that role."""
    pages = []

    def make(role, width=DESKTOP):
        page = new_page(width)
        sign_in(page, role)
        pages.append(page)
        return page

    yield make
    for page in pages:
        if not page.is_closed():
            assert page.fo_dialogs == [], page.fo_dialogs


def shoot(page, name):
    """A full-page screenshot for review: target/browser-screenshots/<name>-<width>.png."""
    width = page.viewport_size["width"]
    page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)


def field(scope, *names):
    """The first form field with one of these names (the API's JSON field names, dotted
    for nested ones)."""
    selector = ", ".join(f'[name="{name}"]' for name in names)
    found = scope.locator(selector).first
    expect(found).to_be_attached()
    return found


def set_field(scope, value, *names):
    """Fills a text field, picks a <select>'s option or ticks a checkbox."""
    found = field(scope, *names)
    tag = found.evaluate("e => e.tagName.toLowerCase() + ':' + (e.type || '')")
    if tag.startswith("select"):
        found.select_option(value)
    elif tag.endswith(":checkbox"):
        found.set_checked(bool(value))
    elif tag.endswith(":radio"):
        scope.locator(f'[name="{names[0]}"][value="{value}"]').check()
    else:
        found.fill(str(value))
