"""Transfers from the console: an operator submits one from the New transfer form and
watches its progress bar move and reach 100%; cancels a running one with "Cancel"; retries
a dead one with "Retry" (which then succeeds)."""

import re

from conftest import URL, assert_clean, big_file, progress_seen, set_field, shoot
from playwright.sync_api import expect

MIB = 1 << 20
BAR = "[data-job-progress] progress"


def fill_transfer(page, source, source_path, destination, destination_path):
    """The New transfer form's fields, named as the job request's JSON (`spec.` nested)."""
    form = page.locator("#transfer-form")
    set_field(form, source, "spec.source", "source")
    set_field(form, source_path, "spec.source_path", "source_path")
    set_field(form, destination, "spec.destination", "destination")
    set_field(form, destination_path, "spec.destination_path", "destination_path")
    scope = form.locator('[name="spec.scope"], [name="scope"]')
    if scope.count():
        set_field(form, "file", "spec.scope", "scope")
    return form


def job_id_of(page):
    return int(re.search(r"/ui/jobs/(\d+)$", page.url).group(1))


def test_submit_a_transfer_from_the_form_and_watch_it_reach_100(
        signed_in, api, operator_api, history):
    # 24 MiB at 6 MiB/s: about four seconds of a moving bar.
    source = api.local_endpoint("form-in", bandwidth="6M")
    destination = api.local_endpoint("form-out")
    big_file(source / "big.bin", 24 * MIB)
    page = signed_in("operator")
    page.goto(f"{URL}/ui/transfers/new")
    form = fill_transfer(page, "form-in", "big.bin", "form-out", "copied/big.bin")
    shoot(page, "transfer-new")
    form.get_by_role("button", name="Submit transfer").click()
    expect(page).to_have_url(re.compile(r"/ui/jobs/\d+$"))
    job_id = job_id_of(page)
    history["job.submitted"].append(job_id)
    state = page.locator(f'[data-job-state="{job_id}"]').first
    # The bar moves while the file is on its way ...
    page.wait_for_function(
        f"() => {{ const p = document.querySelector('{BAR}'); return p && p.value > 0 && p.value < 100; }}",
        timeout=20_000)
    shoot(page, "job-running")
    # ... and reaches 100% with the state badge following the job; the page then reloads
    # to show the ended job, without a live bar (the tab kept the values the bar took).
    expect(state).to_have_text("succeeded", timeout=30_000)
    expect(page.locator(BAR)).to_have_count(0)
    seen = progress_seen(page)
    assert seen[-1] == 100 and seen == sorted(seen), seen
    shoot(page, "job")
    assert (destination / "copied" / "big.bin").stat().st_size == 24 * MIB
    assert operator_api.job(job_id)["state"] == "succeeded"
    assert_clean(page)


def test_cancel_a_running_job(signed_in, api, operator_api, history):
    # 4 MiB at 100 KiB/s: 40 s, far longer than the test needs.
    source = api.local_endpoint("slow-in", bandwidth="100K")
    api.local_endpoint("slow-out")
    big_file(source / "slow.bin", 4 * MIB)
    job = operator_api.submit("slow-in", "slow.bin", "slow-out", "slow.bin")
    operator_api.wait_job(job["id"], lambda j: j["state"] == "leased"
                          and (j["progress"] or {}).get("bytes", 0) > 0, timeout=30)
    page = signed_in("operator")
    page.goto(f"{URL}/ui/jobs/{job['id']}")
    shoot(page, "job-cancel")
    page.get_by_role("button", name="Cancel").click()
    history["job.cancel_requested"].append(job["id"])
    expect(page.locator(f'[data-job-state="{job["id"]}"]').first).to_have_text(
        "cancelled", timeout=30_000)
    assert operator_api.job(job["id"])["state"] == "cancelled"
    # An ended job offers no Cancel any more.
    page.reload()
    expect(page.get_by_role("button", name="Cancel")).to_have_count(0)
    assert_clean(page)


def test_retry_a_dead_job(signed_in, api, operator_api, history):
    source = api.local_endpoint("retry-in")
    destination = api.local_endpoint("retry-out")
    # Its file is not there and it has one attempt: it dies.
    job = operator_api.submit("retry-in", "late.txt", "retry-out", "late.txt",
                              retry={"max_attempts": 1, "base_delay_ms": 100,
                                     "max_delay_ms": 100})
    dead = operator_api.wait_job(job["id"], lambda j: j["state"] == "dead")
    page = signed_in("operator")
    page.goto(f"{URL}/ui/jobs/{job['id']}")
    expect(page.locator(f'[data-job-state="{job["id"]}"]').first).to_have_text("dead")
    # The reason it died is on the page.
    expect(page.get_by_text(dead["last_error"][:40], exact=False).first).to_be_visible()
    shoot(page, "job-dead")
    (source / "late.txt").write_text("here now\n")
    page.get_by_role("button", name="Retry").click()
    history["job.retried"].append(job["id"])
    expect(page.locator(f'[data-job-state="{job["id"]}"]').first).to_have_text(
        "succeeded", timeout=30_000)
    assert (destination / "late.txt").read_text() == "here now\n"
    assert_clean(page)


def test_a_list_follows_its_running_jobs_with_one_poll(signed_in, api, operator_api):
    # Two slow jobs (one per worker): a browser keeps few connections to one server, so a
    # list reads its running jobs with one request at a time, never a stream each.
    source = api.local_endpoint("list-in", bandwidth="100K")
    api.local_endpoint("list-out")
    jobs = []
    for name in ("one.bin", "two.bin"):
        big_file(source / name, 4 * MIB)
        jobs.append(operator_api.submit("list-in", name, "list-out", name)["id"])
    for job_id in jobs:
        operator_api.wait_job(job_id, lambda j: j["state"] == "leased"
                              and (j["progress"] or {}).get("bytes", 0) > 0, timeout=30)
    page = signed_in("operator")
    streams = []
    page.on("request", lambda request: "/events" in request.url and streams.append(request.url))
    page.goto(f"{URL}/ui/jobs?state=leased")
    expect(page.locator("[data-job-progress]")).to_have_count(2)
    # Both bars move past the values the page was rendered with.
    start = page.eval_on_selector_all(BAR, "bars => bars.map(b => b.value)")
    page.wait_for_function(
        f"(start) => Array.from(document.querySelectorAll('{BAR}'))"
        ".every((bar, i) => bar.value > start[i])", arg=start, timeout=30_000)
    shoot(page, "jobs-running")
    # Jobs that end show their last state in the list's badges.
    for job_id in jobs:
        operator_api.call("POST", f"/api/v1/jobs/{job_id}/cancel")
    for job_id in jobs:
        expect(page.locator(f'[data-job-state="{job_id}"]').first).to_have_text(
            "cancelled", timeout=30_000)
    assert streams == [], streams
    assert_clean(page)
