"""Signing in through the console's form: a key gives a session cookie (HttpOnly,
SameSite=Strict) and the dashboard; a wrong key shows an error and gives no session;
signing out ends the session."""

import re

from conftest import KEYS, URL, assert_clean, shoot, sign_in
from playwright.sync_api import expect


def session_cookies(page):
    return [c for c in page.context.cookies() if c["name"] == "fo_session"]


def test_sign_in_with_a_key_opens_the_dashboard(new_page):
    page = new_page()
    page.goto(f"{URL}/ui/jobs")
    # Not signed in: the sign-in form, coming back to the page asked for afterwards.
    expect(page).to_have_url(re.compile(r"/ui/login\?next="))
    shoot(page, "login")
    page.get_by_label("API key or token").fill(KEYS["operator"])
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/ui/jobs$"))
    expect(page.get_by_text("browser-operator · operator")).to_be_attached()
    [cookie] = session_cookies(page)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict", cookie
    # The key itself is nowhere in the browser: not in a cookie, not in the page.
    assert all(KEYS["operator"] not in c["value"] for c in page.context.cookies())
    assert KEYS["operator"] not in page.content()
    # A script cannot read the session cookie.
    assert "fo_session" not in page.evaluate("document.cookie")
    assert_clean(page)


def test_a_wrong_key_shows_an_error_and_gives_no_session(new_page):
    page = new_page()
    page.goto(f"{URL}/ui/login")
    page.get_by_label("API key or token").fill("fo_not_a_key_of_this_server")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/ui/login"))
    shoot(page, "login-refused")
    assert session_cookies(page) == []
    page.goto(f"{URL}/ui/")
    expect(page).to_have_url(re.compile(r"/ui/login\?next="))
    assert_clean(page)


def test_sign_out_ends_the_session(new_page):
    page = new_page()
    sign_in(page, "viewer")
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/ui/login"))
    assert session_cookies(page) == []
    page.goto(f"{URL}/ui/jobs")
    expect(page).to_have_url(re.compile(r"/ui/login\?next="))
    assert_clean(page)


def test_the_console_works_from_the_keyboard(new_page):
    page = new_page()
    page.goto(f"{URL}/ui/login")
    # The key field has the focus; Enter signs in.
    expect(page.get_by_label("API key or token")).to_be_focused()
    page.keyboard.type(KEYS["operator"])
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/ui/$"))
    # The first Tab reaches "Skip to content", which moves the focus to the page's content.
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#main")).to_be_focused()
    # Then the sections are links in order; Enter on the focused one opens it.
    page.goto(f"{URL}/ui/")
    page.keyboard.press("Tab")
    for _ in range(3):
        page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.textContent.trim()")
    assert focused == "Jobs", focused
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/ui/jobs$"))
    assert_clean(page)
