"""An admin creates an SFTP endpoint through the console's form against the test servers'
real sshd and tests it: "Test connection" shows that it is reachable; with a wrong password
it shows the authentication diagnosis in words. The password is never shown back."""

import os
import re

import pytest
from conftest import URL, assert_clean, set_field, shoot
from playwright.sync_api import expect


def sftp_env(name):
    value = os.environ.get(f"FILE_ORBIT_TEST_SFTP_{name}")
    if not value:
        pytest.fail(f"FILE_ORBIT_TEST_SFTP_{name} is not set: start the test servers "
                    "(scripts/test-servers.sh start) and source their env file")
    return value


def create_sftp_endpoint(page, name, password):
    """Fills /ui/endpoints/new as the API's JSON fields and saves it."""
    page.goto(f"{URL}/ui/endpoints")
    page.get_by_role("link", name="New endpoint").click()
    expect(page).to_have_url(re.compile(r"/ui/endpoints/new$"))
    form = page.locator("#endpoint-form")
    set_field(form, name, "name")
    set_field(form, "sftp", "type")
    set_field(form, sftp_env("HOST"), "host")
    set_field(form, sftp_env("PORT"), "port")
    set_field(form, sftp_env("USER"), "user")
    set_field(form, "password", "auth.method")
    set_field(form, password, "auth.password")
    set_field(form, "known_hosts_file", "host_key.check")
    set_field(form, sftp_env("KNOWN_HOSTS"), "host_key.path")
    shoot(page, "endpoint-new")
    form.get_by_role("button", name="Save endpoint").click()
    expect(page).to_have_url(re.compile(rf"/ui/endpoints/{re.escape(name)}$"))


def test_create_an_sftp_endpoint_and_test_it(signed_in, api, history):
    page = signed_in("admin")
    create_sftp_endpoint(page, "browser-sftp", sftp_env("PASSWORD"))
    history["endpoint.created"].append("browser-sftp")
    stored = api.call("GET", "/api/v1/endpoints/browser-sftp")
    assert stored["kind"] == "sftp", stored
    # Secrets are write-only: the page never shows the password.
    assert sftp_env("PASSWORD") not in page.content()
    page.get_by_role("button", name="Test connection").click()
    result = page.locator("#test-result")
    expect(result).to_contain_text("reachable", timeout=30_000)
    expect(result).not_to_contain_text("failed")
    shoot(page, "endpoint")
    assert_clean(page)


def test_a_wrong_password_shows_the_authentication_diagnosis(signed_in, history):
    page = signed_in("admin")
    create_sftp_endpoint(page, "browser-sftp-wrong", "not-the-password")
    history["endpoint.created"].append("browser-sftp-wrong")
    page.get_by_role("button", name="Test connection").click()
    result = page.locator("#test-result")
    expect(result).to_contain_text("authentication failed", timeout=30_000)
    expect(result).to_contain_text("check the user name and the password or key")
    shoot(page, "endpoint-test-failed")
    assert_clean(page)
