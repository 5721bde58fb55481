"""Every console page as an admin, at 1280 px and on a 390 px phone: it loads (200), the
browser reports no CSP violation, no script error and no console error, and on the phone
the page does not scroll sideways. A screenshot of each for review."""

import pytest
from conftest import DESKTOP, PHONE, URL, assert_clean, shoot, sign_in

# Sideways slack for rounding (px).
TOLERANCE = 2


@pytest.fixture(scope="module")
def pages(api, operator_api):
    """Every page, with a real job and endpoint behind the pages that show one."""
    source = api.local_endpoint("pages-in")
    api.local_endpoint("pages-out")
    (source / "a.txt").write_text("a\n")
    job = operator_api.submit("pages-in", "a.txt", "pages-out", "a.txt")
    operator_api.wait_job(job["id"], lambda j: j["state"] == "succeeded")
    return {
        "dashboard": "/ui/",
        "jobs": "/ui/jobs",
        "job-page": f"/ui/jobs/{job['id']}",
        "transfer-form": "/ui/transfers/new",
        "endpoints": "/ui/endpoints",
        "endpoint-form": "/ui/endpoints/new",
        "endpoint-page": "/ui/endpoints/pages-in",
        "templates": "/ui/templates",
        "sources": "/ui/sources",
        "notifications": "/ui/notifications",
        "workers": "/ui/workers",
        "agents": "/ui/agents",
        "keys": "/ui/keys",
        "audit": "/ui/audit",
        "logs": "/ui/logs",
    }


@pytest.mark.parametrize("width", [DESKTOP, PHONE])
def test_every_page_keeps_the_csp_and_fits_the_screen(new_page, pages, width):
    page = new_page(width)
    sign_in(page, "admin")
    too_wide = []
    for name, path in pages.items():
        answer = page.goto(URL + path)
        assert answer.status == 200, f"{path}: {answer.status}"
        page.wait_for_load_state("load")
        shoot(page, name)
        scroll = page.evaluate("document.documentElement.scrollWidth")
        if scroll > width + TOLERANCE:
            too_wide.append(f"{path}: {scroll} px")
        assert_clean(page)
    assert too_wide == [], f"pages wider than {width} px: {too_wide}"
