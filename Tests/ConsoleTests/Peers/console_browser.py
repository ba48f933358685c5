#!/usr/bin/env python3
"""Walks through Conduit's web console in a headless Chromium, as a person would.

Signs in (a wrong password first), makes an AWS IoT integration against moto, makes a device,
accepts it and waits for it to be provisioned, writes its shadow (and loses a race on purpose),
queues a downlink, watches a message arrive live, tries script injection and a forged POST, and
checks that a reader sees no control and is refused when posting anyway. The page contract (ids,
field names, URLs) is the console's; every step saves a screenshot.

Prints one "ok: ..." line per step; exits 1 with the failure (and FAILED-<step>.png/.html in the
screenshots folder) on the first one that does not hold.
"""

import argparse
import json
import os
import re
import socket
import signal
import subprocess
import sys
import time
import traceback
from urllib.parse import urlparse

import boto3
from selenium import webdriver
from selenium.common.exceptions import (
    ElementClickInterceptedException,
    ElementNotInteractableException,
    NoAlertPresentException,
    NoSuchElementException,
    StaleElementReferenceException,
    TimeoutException,
    UnexpectedAlertPresentException,
    WebDriverException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

# Generous: a loaded CI machine makes everything slow; nothing here asserts a duration.
WAIT = 30
PROVISIONING_WAIT = 60

ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
DEVICE = "console-1"
XSS_DEVICE = "xss-1"
XSS_NAME = "<script>alert(1)</script>"

# Installed before any page script runs (CDP): records every EventSource the page opens, so the
# live step can wait until the page is really listening before the device publishes, instead of
# guessing with a sleep.
EVENT_SOURCE_HOOK = """
(() => {
  const Native = window.EventSource;
  if (!Native || Native.__conduitTestHook) return;
  window.__eventSources = [];
  class Recorded extends Native {
    constructor(...args) { super(...args); window.__eventSources.push(this); }
  }
  Recorded.__conduitTestHook = true;
  window.EventSource = Recorded;
})();
"""

# Every POST form on the page but the sign-out one, as a short description of each.
MUTATING_FORMS = """
return Array.from(document.querySelectorAll('form'))
  .filter(f => (f.getAttribute('method') || '').trim().toLowerCase() === 'post')
  .filter(f => !f.querySelector('#sign-out'))
  // getAttribute: a field named "id" or "action" shadows the form's own properties.
  .map(f => (f.getAttribute('id') ? '#' + f.getAttribute('id') + ' ' : '') + (f.getAttribute('action') || '(no action)'));
"""

# Builds a form outside the page's own markup and submits it: what a forged cross-site form
# or a hand-made request from the page would send (the session cookie goes along).
FORGED_POST = """
const [action, fields] = arguments;
const form = document.createElement('form');
form.method = 'post';
form.action = action;
for (const [name, value] of Object.entries(fields)) {
  const input = document.createElement('input');
  input.type = 'hidden';
  input.name = name;
  input.value = value;
  form.appendChild(input);
}
document.body.appendChild(form);
HTMLFormElement.prototype.submit.call(form);
"""

# What #flash says: its kind (the class of #flash itself or of a .flash inside it) and its text.
FLASH = """
const flash = document.getElementById('flash');
if (!flash) return null;
const kinds = [];
for (const e of [flash, ...flash.querySelectorAll('*')]) {
  for (const kind of ['ok', 'error']) {
    if (e.classList.contains(kind) && !kinds.includes(kind)) kinds.push(kind);
  }
}
return {kinds: kinds, text: flash.innerText.trim()};
"""


class Walk:
    def __init__(self, args):
        self.args = args
        self.base = args.base.rstrip("/")
        self.screens = args.screenshots
        self.shots = 0
        self.step = "start"
        self.integration_id = None
        self.secret = None
        self.driver = None
        self.aws = boto3.client(
            "iot-data",
            endpoint_url=args.moto,
            region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key="x",
        )

    # --- the browser -----------------------------------------------------------------------

    def start_browser(self):
        options = webdriver.ChromeOptions()
        options.binary_location = "/usr/bin/chromium"
        for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
            options.add_argument(argument)
        self.driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        self.driver.set_window_size(1280, 900)
        self.driver.set_page_load_timeout(60)
        self.driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": EVENT_SOURCE_HOOK})

    def quit(self):
        if self.driver is not None:
            self.driver.quit()
            self.driver = None

    # --- helpers ---------------------------------------------------------------------------

    def path(self):
        return urlparse(self.driver.current_url).path

    def go(self, path):
        self.driver.get(self.base + path)

    def shot(self, name):
        """Saves the whole page, not just the window: the window grows to the page's height for it."""
        self.shots += 1
        width, height = self.driver.get_window_size()["width"], self.driver.get_window_size()["height"]
        full = self.driver.execute_script("return document.documentElement.scrollHeight")
        if full > height:
            self.driver.set_window_size(width, min(full + 120, 6000))
        self.driver.save_screenshot(os.path.join(self.screens, f"{self.shots:02d}-{name}.png"))
        if full > height:
            self.driver.set_window_size(width, height)

    def where(self):
        try:
            return f"(page {self.driver.current_url}, titled {self.driver.title!r})"
        except Exception:  # noqa: BLE001 - only for a message
            return "(page unknown)"

    def find(self, css):
        try:
            return self.driver.find_element(By.CSS_SELECTOR, css)
        except NoSuchElementException:
            raise AssertionError(f"expected an element {css} {self.where()}, there is none") from None

    def present(self, css):
        return len(self.driver.find_elements(By.CSS_SELECTOR, css)) > 0

    @staticmethod
    def replaced(error):
        """Whether a WebDriver error means the element's document was replaced under it (a page
        still settling after a redirect): Chromium says so as a stale element, or as an inspector
        error that the node "does not belong to the document"."""
        return isinstance(error, StaleElementReferenceException) or (
            isinstance(error, WebDriverException) and "does not belong to the document" in str(error))

    def settled(self, read):
        """read(), found and read again while the page replaces what it reads."""
        for _ in range(25):
            try:
                return read()
            except WebDriverException as error:
                if not self.replaced(error):
                    raise
            time.sleep(0.2)
        return read()

    def text(self, css):
        """The element's text, read once the page has settled."""
        return self.settled(lambda: self.find(css).text.strip())

    def attribute(self, css, name):
        """An attribute of the element (a field's value), read once the page has settled."""
        return self.settled(lambda: self.find(css).get_attribute(name))

    def wait_for(self, what, probe, seen=None, timeout=WAIT):
        """Polls probe() until it returns something truthy, and returns that. An element that is
        missing or replaced meanwhile means "not yet". On timeout, says what it waited for and,
        with seen(), what was there instead."""
        try:
            return WebDriverWait(
                self.driver, timeout, poll_frequency=0.2,
                ignored_exceptions=(NoSuchElementException, StaleElementReferenceException, AssertionError),
            ).until(lambda _: self.probing(probe))
        except TimeoutException:
            detail = ""
            if seen is not None:
                try:
                    detail = f"; saw {seen()!r}"
                except Exception as error:  # noqa: BLE001 - only for the message
                    detail = f"; could not read what is there: {error}"
            raise AssertionError(f"expected {what} within {timeout} s {self.where()}{detail}") from None

    def probing(self, probe):
        """probe(), where an element whose document was replaced means "not yet"."""
        try:
            return probe()
        except WebDriverException as error:
            if self.replaced(error):
                return None
            raise

    def wait_for_path(self, path):
        self.wait_for(f"to be on {path}", lambda: self.path() == path, seen=lambda: self.driver.current_url)

    def wait_for_new_page(self, old_html):
        """After a click or a submit that navigates: until the old document is gone and the new
        one has loaded."""
        self.wait_for("the next page to load", lambda: EC.staleness_of(old_html)(self.driver))
        self.wait_for("the page to finish loading",
                      lambda: self.driver.execute_script("return document.readyState") == "complete")

    def submit_with(self, css):
        """Clicks a submit button as a person would, and waits for the page it leads to."""
        button = self.find(css)
        old = self.driver.find_element(By.TAG_NAME, "html")
        self.click(button)
        self.wait_for_new_page(old)

    def click(self, element):
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
        element.click()

    def fill(self, css, value):
        field = self.find(css)
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", field)
        field.clear()
        field.send_keys(value)

    def choose(self, css):
        """Selects a radio button; through its label when the input itself is styled away."""
        radio = self.find(css)
        try:
            self.click(radio)
        except (ElementNotInteractableException, ElementClickInterceptedException):
            radio_id = radio.get_attribute("id")
            self.click(self.find(f'label[for="{radio_id}"]'))
        if not radio.is_selected():
            raise AssertionError(f"expected {css} to be selected after clicking it {self.where()}")

    def select(self, css, value):
        """Picks the option whose value is `value` (an `<option>` without a value attribute has its
        text as its value, which select_by_value does not see)."""
        menu = Select(self.find(css))
        for index, option in enumerate(menu.options):
            if option.get_attribute("value") == value:
                menu.select_by_index(index)
                return
        offered = [option.get_attribute("value") for option in menu.options]
        raise AssertionError(f"expected {css} to offer {value!r} {self.where()}, it offers {offered}")

    def flash(self):
        return self.driver.execute_script(FLASH)

    def expect_flash_not_error(self, doing):
        flash = self.flash()
        if flash and "error" in flash["kinds"]:
            raise AssertionError(f"expected {doing} to succeed {self.where()}; #flash says {flash['text']!r}")

    def expect_no_alert(self, where):
        try:
            alert = self.driver.switch_to.alert
        except NoAlertPresentException:
            return
        message = alert.text
        alert.accept()
        raise AssertionError(f"expected no alert on {where}, a script ran and alerted {message!r}")

    def page_text(self):
        return self.driver.find_element(By.TAG_NAME, "body").text

    def forge_post(self, action, fields):
        """Submits a POST the page's own markup does not offer; returns the answer's text."""
        old = self.driver.find_element(By.TAG_NAME, "html")
        self.driver.execute_script(FORGED_POST, action, fields)
        self.wait_for_new_page(old)
        return self.page_text()

    def sign_in(self, email, password):
        if self.path() != "/login":
            self.go("/login")
        self.fill("#email", email)
        self.fill("#password", password)
        self.submit_with("#sign-in")

    def device_status(self, device):
        self.go(f"/devices/{device}")
        return self.text("#device-status")

    def shadow(self):
        answer = self.aws.get_thing_shadow(thingName=DEVICE)
        return json.loads(answer["payload"].read())

    # --- the steps -------------------------------------------------------------------------

    def run(self, name, body):
        """Runs one step; on failure keeps what the browser showed, then lets the failure go on."""
        self.step = name
        try:
            try:
                body()
            except UnexpectedAlertPresentException as error:
                # Chromium dismissed an alert a page script raised: injected script ran.
                raise AssertionError(f"expected no alert {self.where()}, a page script alerted {error.alert_text!r}") from error
        except BaseException:
            if self.driver is not None:
                try:
                    self.driver.save_screenshot(os.path.join(self.screens, f"FAILED-{name}.png"))
                    with open(os.path.join(self.screens, f"FAILED-{name}.html"), "w", encoding="utf-8") as page:
                        page.write(self.driver.page_source)
                except Exception as error:  # noqa: BLE001 - the original failure matters more
                    print(f"(could not save the failed page: {error})", file=sys.stderr)
            raise

    def sign_in_step(self):
        self.go("/")
        self.wait_for_path("/login")
        self.shot("login")

        self.sign_in(self.args.admin_email, self.args.admin_password + "-wrong")
        if self.path() != "/login":
            raise AssertionError(f"expected a wrong password to stay on /login, landed on {self.driver.current_url}")
        flash = self.flash()
        if not flash or "error" not in flash["kinds"]:
            raise AssertionError(f"expected #flash with an error after a wrong password, saw {flash!r}")
        if "wrong email or password" not in flash["text"].lower():
            raise AssertionError(f"expected #flash to say 'wrong email or password', it says {flash['text']!r}")
        self.shot("login-wrong-password")

        self.sign_in(self.args.admin_email, self.args.admin_password)
        self.wait_for_path("/devices")
        whoami = self.text("#whoami")
        if self.args.admin_email not in whoami or "admin" not in whoami.replace(self.args.admin_email, "").lower():
            raise AssertionError(f"expected #whoami to show {self.args.admin_email} and the role admin, it shows {whoami!r}")
        self.shot("devices")
        print("ok: signed out lands on /login; a wrong password is refused with an error; the admin signs in to /devices", flush=True)

    def integration_step(self):
        self.go("/integrations/new")
        self.find("#integration-form")
        self.fill("#name", "moto")
        self.select("#region", "us-east-1")
        self.choose("#cred-keys")
        self.fill("#access-key-id", ACCESS_KEY_ID)
        self.fill("#secret-access-key", SECRET_ACCESS_KEY)
        endpoint = self.find("#endpoint-url")
        if not endpoint.is_displayed():
            # In the collapsed "Advanced" section: open it as a person would.
            details = endpoint.find_element(By.XPATH, "ancestor::details[1]")
            self.click(details.find_element(By.TAG_NAME, "summary"))
            self.wait_for("#endpoint-url to show once Advanced is open", endpoint.is_displayed)
        self.fill("#endpoint-url", self.args.moto)
        # The downlink gateway connects to a loopback port nothing listens on (which the
        # operator's allowlist names): never to the public data endpoint moto names.
        self.fill("#mqtt-endpoint", self.args.gateway_endpoint)
        self.fill("#thing-group", "console-test")
        # One shared policy with thing policy variables; the device provisioned below gets it.
        self.choose("#policy-shared")
        self.fill("#uplink-topic", "conduit/{deviceId}/up")
        self.choose("#bind-labels")
        self.fill("#bind-values", "console")
        self.shot("integration-new")

        self.submit_with("#check-credentials")
        result = self.wait_for("#check-result", lambda: self.find("#check-result"))
        classes = (result.get_attribute("class") or "").split()
        if "ok" not in classes:
            raise AssertionError(f"expected #check-result.ok for moto's credentials, saw class {classes} saying {result.text!r}")
        # The form comes back with what was typed, the secret too, so saving needs no retyping.
        for css, typed in (("#name", "moto"), ("#access-key-id", ACCESS_KEY_ID), ("#secret-access-key", SECRET_ACCESS_KEY),
                           ("#endpoint-url", self.args.moto), ("#bind-values", "console")):
            kept = self.find(css).get_attribute("value")
            if kept != typed:
                raise AssertionError(f"expected {css} to keep {typed!r} after checking the credentials, it has {kept!r}")
        self.shot("integration-checked")

        self.submit_with("#save-integration")
        match = self.wait_for(
            "to land on /integrations/ID", lambda: re.fullmatch(r"/integrations/([^/]+)", self.path()),
            seen=lambda: (self.driver.current_url, self.flash()),
        )
        if match.group(1) in ("new", ""):
            raise AssertionError(f"expected /integrations/ID after saving, still on {self.driver.current_url}; #flash: {self.flash()!r}")
        self.integration_id = match.group(1)
        self.expect_flash_not_error("saving the integration")
        shared = f"conduit-shared@{self.integration_id}"
        if shared not in self.driver.find_element(By.TAG_NAME, "main").text:
            raise AssertionError(f"expected the integration's page to name its shared policy {shared}")
        self.shot("integration")
        print(f"ok: integration 'moto' checked against moto and saved as {self.integration_id}", flush=True)

    def rules_step(self):
        """A rule added through its form (JSON), tried on a message, and listed with its counts."""
        self.go("/rules/new")
        definition = json.dumps({
            "source": {"devices": [DEVICE]}, "subtopic": "up", "value": "$.lightValue",
            "states": {"Above": {"above": 350}, "Below": {"below": 300}},
            "actions": [{"on": {"to": "Above"}, "downlink": {"payload": {"lightStatus": "off", "level": "{value}"}}},
                        {"on": {"to": "Below"}, "downlink": {"payload": {"lightStatus": "on"}}}],
        }, indent=2)
        # A bad definition first: refused, naming the field, with what was typed kept.
        self.fill("#rule-name", "lights")
        self.fill("#rule-definition", definition.replace('"above": 350', '"above": 250'))
        self.submit_with("#create-rule")
        flash = self.flash()
        if not flash or "error" not in flash["kinds"] or "overlap" not in flash["text"]:
            raise AssertionError(f"expected overlapping bands to be refused by name, #flash says {flash!r}")
        self.shot("rule-refused")
        self.fill("#rule-definition", definition)
        self.submit_with("#create-rule")
        match = self.wait_for("to land on /rules/ID", lambda: re.fullmatch(r"/rules/(rule_[^/]+)", self.path()), seen=lambda: self.flash())
        self.expect_flash_not_error("adding the rule")
        rule_path = match.group(0)
        self.fill("#dry-message", '{"lightValue": 420}')
        self.select("#dry-state", "Below")
        self.fill("#dry-device", DEVICE)
        self.submit_with("#run-dry-run")
        if self.text("#dry-to") != "Above" or self.text("#dry-from") != "Below":
            raise AssertionError(f"expected the dry run to go Below -> Above, it says {self.text('#dry-run-result')!r}")
        actions = self.text("#dry-actions")
        if "downlink" not in actions or DEVICE not in actions or '"level":420' not in actions:
            raise AssertionError(f"expected the dry run to show the rendered downlink to {DEVICE}, it shows {actions!r}")
        self.shot("rule-dry-run")
        # Edited: a bad change refused with what was typed kept, then a new threshold saved.
        self.submit_with("#edit-rule")
        self.wait_for_path(rule_path + "/edit")
        edited = self.find("#rule-definition").get_attribute("value")
        if '"above" : 350' not in edited and '"above": 350' not in edited:
            raise AssertionError(f"expected the edit form to hold the rule's definition, it holds {edited!r}")
        self.fill("#rule-definition", definition.replace('"above": 350', '"above": "high"'))
        self.submit_with("#save-rule")
        flash = self.flash()
        if not flash or "error" not in flash["kinds"] or "states.Above" not in flash["text"]:
            raise AssertionError(f"expected a non-numeric bound to be refused by name, #flash says {flash!r}")
        self.fill("#rule-name", "lights-360")
        self.fill("#rule-definition", definition.replace('"above": 350', '"above": 360'))
        self.submit_with("#save-rule")
        self.wait_for_path(rule_path)
        self.expect_flash_not_error("saving the rule")
        flash = self.flash()
        if not flash or "afresh" not in flash["text"]:
            raise AssertionError(f"expected the save to say its devices start afresh, #flash says {flash!r}")
        if "360" not in self.text("#rule-definition"):
            raise AssertionError(f"expected the saved definition to show 360, it shows {self.text('#rule-definition')!r}")
        self.shot("rule-edited")
        self.go("/rules")
        row = self.find(f'tr[data-rule-id="{rule_path.split("/")[-1]}"]')
        if "lights-360" not in row.text:
            raise AssertionError(f"expected the rule in /rules, the row says {row.text!r}")
        self.shot("rules")
        self.rule_path = rule_path
        print("ok: a rule added through its form, refused first for overlapping bands, tried on a message, edited, listed", flush=True)

    def webhooks_step(self):
        """A webhook added: its secret shown once, then its page with its delivery log."""
        self.go("/webhooks")
        self.fill("#webhook-name", "ops")
        # A loopback address the operator did not allow: refused by rule, before any connection.
        self.fill("#webhook-url", "http://127.0.0.1:9/hooks")
        self.submit_with("#create-webhook")
        flash = self.flash()
        if not flash or "error" not in flash["kinds"] or "url" not in flash["text"]:
            raise AssertionError(f"expected a private address to be refused, #flash says {flash!r}")
        self.fill("#webhook-url", self.args.webhook_url)
        self.submit_with("#create-webhook")
        secret = self.text("#webhook-secret")
        if not secret.startswith("whsec_"):
            raise AssertionError(f"expected the new webhook's secret, saw {secret!r}")
        self.shot("webhook-secret")
        self.submit_with("#to-webhook")
        if secret in self.page_text():
            raise AssertionError("expected the secret to be shown once only")
        self.find("#webhook-url")
        self.shot("webhook")
        webhook_path = self.path()
        # Rules and webhooks on a phone, and in dark mode.
        self.driver.set_window_size(375, 900)
        try:
            for path, name in ((self.rule_path, "rule-narrow"), ("/rules", "rules-narrow"), (webhook_path, "webhook-narrow"), ("/webhooks", "webhooks-narrow")):
                self.go(path)
                self.shot(name)
        finally:
            self.driver.set_window_size(1280, 900)
        self.driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
        try:
            for path, name in ((self.rule_path, "rule-dark"), (webhook_path, "webhook-dark")):
                self.go(path)
                self.shot(name)
        finally:
            self.driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "light"}]})
        print("ok: a webhook added (a loopback address not allowed refused first), its secret shown once; rules and webhooks on a phone and in dark mode", flush=True)

    def open_new_device_form(self):
        """The "New device" form is folded away under its summary: unfold it as a person would."""
        panel = self.find("#create-device-panel")
        if panel.get_attribute("open") is None:
            self.click(panel.find_element(By.TAG_NAME, "summary"))
            self.wait_for("#new-id to show once New device is open", lambda: self.find("#new-id").is_displayed())

    def device_step(self):
        self.go("/devices")
        self.open_new_device_form()
        self.fill("#new-id", DEVICE)
        self.fill("#new-name", "Console One")
        self.fill("#new-labels", "console")
        self.submit_with("#create-device-submit")
        self.secret = self.wait_for("a non-empty #device-secret", lambda: self.text("#device-secret"),
                                    seen=lambda: self.flash())
        self.shot("device-created")

        self.submit_with("#open-device")
        self.wait_for_path(f"/devices/{DEVICE}")
        self.submit_with("#accept")
        self.expect_flash_not_error(f"accepting {DEVICE}")
        # Where the answer's redirect leads is the console's choice: look at the device itself.
        if self.path() != f"/devices/{DEVICE}":
            self.go(f"/devices/{DEVICE}")
        status = self.text("#device-status")
        if status != "accepted":
            raise AssertionError(f"expected #device-status 'accepted' after clicking #accept, it is {status!r}; #flash: {self.flash()!r}")
        self.shot("device-accepted")

        # Provisioning runs in the background: the page shows where it stands when loaded.
        state_css = f'#aws tr[data-integration-id="{self.integration_id}"] .aws-state'
        error_css = f'#aws tr[data-integration-id="{self.integration_id}"] .aws-error'
        deadline = time.monotonic() + PROVISIONING_WAIT
        while True:
            state = self.text(state_css) if self.present(state_css) else None
            if state == "provisioned":
                break
            if time.monotonic() > deadline:
                error = self.text(error_css) if self.present(error_css) else ""
                raise AssertionError(
                    f"expected {state_css} to read 'provisioned' within {PROVISIONING_WAIT} s, it reads {state!r}"
                    f" (.aws-error: {error!r}) {self.where()}"
                )
            time.sleep(1)
            self.go(f"/devices/{DEVICE}")  # a reload, always as a GET
        self.shot("device-provisioned")
        print(f"ok: device {DEVICE} created (secret shown once), accepted and provisioned in moto", flush=True)

    def shadow_step(self):
        desired = {"led": "on", "rate": 5}
        self.go(f"/devices/{DEVICE}")
        self.find("#shadow-form")
        # Which integration's shadow this is, and that the device's own shadow topics use it.
        serves = self.text("#shadow-integration")
        if "the shadow the device's own $aws/things/…/shadow topics use" not in serves:
            raise AssertionError(f"expected #shadow-integration to say the device's shadow topics use it, it says {serves!r}")
        self.fill("#shadow-desired-input", json.dumps(desired))
        self.submit_with("#save-desired")
        self.expect_flash_not_error("saving the desired state")
        self.wait_for('#shadow-desired to show "led"', lambda: "led" in self.text("#shadow-desired"),
                      seen=lambda: (self.text("#shadow-desired"), self.flash()))
        in_moto = self.shadow().get("state", {}).get("desired")
        if in_moto != desired:
            raise AssertionError(f"expected moto's shadow of {DEVICE} to desire {desired}, it desires {in_moto!r}")
        self.shot("shadow-saved")

        # The race: the page is loaded, then the shadow changes behind its back.
        self.go(f"/devices/{DEVICE}")
        version_shown = self.text("#shadow-version")
        self.aws.update_thing_shadow(thingName=DEVICE, payload=json.dumps({"state": {"desired": {"led": "off"}}}))
        now = self.shadow()
        stale_text = '{"led": "blink", "rate": 5}'
        self.fill("#shadow-desired-input", stale_text)
        self.submit_with("#save-desired")
        self.wait_for("#shadow-conflict to show", lambda: self.find("#shadow-conflict").is_displayed(), seen=lambda: self.flash())
        conflict = self.text("#shadow-conflict")
        if str(now["version"]) not in conflict:
            raise AssertionError(f"expected #shadow-conflict to name the version now, {now['version']}, it says {conflict!r}")
        kept = self.attribute("#shadow-desired-input", "value")
        if "blink" not in kept:
            raise AssertionError(f"expected the conflict to keep what was typed ({stale_text}), the textarea has {kept!r}")
        led = self.shadow().get("state", {}).get("desired", {}).get("led")
        if led != "off":
            raise AssertionError(f"expected moto to keep led 'off' after the conflict (nothing written), it has {led!r}")
        self.shot("shadow-conflict")
        print(f"ok: desired state saved to moto; a stale page (version {version_shown}) gets #shadow-conflict and overwrites nothing", flush=True)

    def downlink_step(self):
        self.go(f"/devices/{DEVICE}")
        self.fill("#downlink-payload", "hello device")
        self.select("#downlink-encoding", "text")
        self.fill("#downlink-port", "7")
        self.submit_with("#queue-downlink")
        self.expect_flash_not_error("queueing the downlink")
        self.wait_for('a #downlinks tr.downlink row showing "hello device"',
                      lambda: any("hello device" in row.text for row in self.driver.find_elements(By.CSS_SELECTOR, "#downlinks tr.downlink")),
                      seen=lambda: [row.text for row in self.driver.find_elements(By.CSS_SELECTOR, "#downlinks tr")])
        self.shot("downlink-queued")
        print("ok: downlink 'hello device' queued and listed", flush=True)

    def live_step(self):
        self.go(f"/devices/{DEVICE}")
        self.find("#message-list")
        # Publish only once the page listens: a message sent before that is not a live one.
        self.wait_for(
            "the device page to open its server-sent events (an EventSource in OPEN state)",
            lambda: self.driver.execute_script("return (window.__eventSources || []).some(e => e.readyState === 1)"),
            seen=lambda: self.driver.execute_script("return (window.__eventSources || []).map(e => [e.url, e.readyState])"),
        )
        # Survives only if the document is not reloaded.
        self.driver.execute_script("window.__noReload = 42")
        publish = subprocess.run(
            ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.args.mqtt_port), "-i", DEVICE, "-u", DEVICE, "-P", self.secret,
             "-q", "1", "-t", f"devices/{DEVICE}/up", "-m", '{"temp": 21.5}'],
            capture_output=True, text=True, timeout=WAIT,
        )
        if publish.returncode != 0:
            raise AssertionError(f"expected mosquitto_pub to publish as {DEVICE}, it exited {publish.returncode}: {publish.stderr.strip()}")
        payloads = "#message-list li.message .message-payload"
        self.wait_for(
            f'{payloads} to show 21.5 without a reload',
            lambda: any("21.5" in p.text for p in self.driver.find_elements(By.CSS_SELECTOR, payloads)),
            seen=lambda: [p.text for p in self.driver.find_elements(By.CSS_SELECTOR, payloads)],
        )
        marker = self.driver.execute_script("return window.__noReload")
        if marker != 42:
            raise AssertionError(f"expected the message to arrive without a reload (window.__noReload still 42), it is {marker!r}")
        self.shot("message-live")
        print("ok: a message published over MQTT appears on the open device page without a reload", flush=True)

    def xss_step(self):
        self.go("/devices")
        self.open_new_device_form()
        self.fill("#new-id", XSS_DEVICE)
        self.fill("#new-name", XSS_NAME)
        self.submit_with("#create-device-submit")
        self.expect_no_alert("the page answering the device's creation")
        self.wait_for("a non-empty #device-secret", lambda: self.text("#device-secret"), seen=lambda: self.flash())
        self.shot("xss-created")

        self.go("/devices")
        self.expect_no_alert("/devices")
        name = self.text(f'#devices tr[data-device-id="{XSS_DEVICE}"] .device-name')
        if name != XSS_NAME:
            raise AssertionError(f"expected the .device-name of {XSS_DEVICE} to read exactly {XSS_NAME!r}, it reads {name!r}")
        self.shot("devices-xss")

        self.go(f"/devices/{XSS_DEVICE}")
        self.expect_no_alert(f"/devices/{XSS_DEVICE}")
        name = self.text("#device-name")
        if name != XSS_NAME:
            raise AssertionError(f"expected #device-name to read exactly {XSS_NAME!r}, it reads {name!r}")
        self.shot("device-xss")
        print("ok: a device named <script>alert(1)</script> is shown as text, no script runs", flush=True)

    def csrf_step(self):
        for label, fields in (("without a csrf field", {}), ("with a wrong csrf", {"csrf": "not-the-token"})):
            self.go("/devices")
            answer = self.forge_post(f"/devices/{XSS_DEVICE}/accept", fields)
            if not re.search(r"csrf|refused", answer, re.IGNORECASE):
                raise AssertionError(f"expected a POST {label} to be refused with a page naming CSRF, the page says {answer[:500]!r}")
            self.shot("csrf-refused" if not fields else "csrf-wrong-refused")
            status = self.device_status(XSS_DEVICE)
            if status != "pending":
                raise AssertionError(f"expected {XSS_DEVICE} to stay pending after a POST {label}, it is {status!r}")
        self.shot("device-still-pending")
        print("ok: a POST without a csrf field, or with a wrong one, is refused and changes nothing", flush=True)

    def admin_pages_step(self):
        self.go("/integrations")
        self.find(f'#integrations tr[data-integration-id="{self.integration_id}"]')
        self.shot("integrations")

        self.go(f"/integrations/{self.integration_id}")
        name = self.text("#integration-name")
        if "moto" not in name:
            raise AssertionError(f"expected #integration-name to show 'moto', it shows {name!r}")
        if SECRET_ACCESS_KEY in self.driver.page_source:
            raise AssertionError(f"expected /integrations/{self.integration_id} never to show the secret access key, it is in the page")
        self.shot("integration-detail")

        self.go("/events")
        self.find("#events")
        self.shot("events")

        self.go("/settings/users")
        for email, role in ((self.args.admin_email, "admin"), (self.args.reader_email, "reader")):
            # The role is the selected option of the row's role form.
            shown = self.find(f'#users tr[data-user-email="{email}"] .user-role select').get_attribute("value")
            if shown != role:
                raise AssertionError(f"expected /settings/users to list {email} as {role}, it shows {shown!r}")
        self.shot("users")

        self.go("/settings/tokens")
        self.find("#tokens")
        self.shot("tokens")

        # The device page on a phone.
        self.driver.set_window_size(375, 900)
        try:
            self.go(f"/devices/{DEVICE}")
            self.find("#device-id")
            self.shot("device-narrow")
            # The integration and its form (the policy choices among them) on a phone.
            self.go(f"/integrations/{self.integration_id}")
            self.find("#integration-name")
            self.shot("integration-narrow")
            self.go(f"/integrations/{self.integration_id}/edit")
            self.find("#integration-form")
            self.shot("integration-form-narrow")
        finally:
            self.driver.set_window_size(1280, 900)

        # The same page with the system set to dark: the stylesheet follows prefers-color-scheme.
        self.driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
        try:
            self.go(f"/devices/{DEVICE}")
            background = self.driver.execute_script("return getComputedStyle(document.body).backgroundColor")
            if background in ("rgb(246, 247, 249)", "rgb(255, 255, 255)"):
                raise AssertionError(f"expected a dark background with prefers-color-scheme: dark, the body is {background}")
            self.shot("device-dark")
            self.go(f"/integrations/{self.integration_id}/edit")
            self.find("#integration-form")
            self.shot("integration-form-dark")
        finally:
            self.driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "light"}]})
        print("ok: /integrations, the integration, /events, /settings/users and /settings/tokens render for the admin; the device page on a phone and in dark mode", flush=True)

    def reader_step(self):
        self.submit_with("#sign-out")
        # Signed out for real: a page sends to /login again.
        self.go("/devices")
        self.wait_for_path("/login")
        self.shot("signed-out")

        self.sign_in(self.args.reader_email, self.args.reader_password)
        self.wait_for_path("/devices")
        whoami = self.text("#whoami")
        if self.args.reader_email not in whoami or "reader" not in whoami.replace(self.args.reader_email, "").lower():
            raise AssertionError(f"expected #whoami to show {self.args.reader_email} and the role reader, it shows {whoami!r}")

        for path, name in (("/devices", "reader-devices"), (f"/devices/{DEVICE}", "reader-device"), ("/events", "reader-events")):
            self.go(path)
            self.find("#main")
            self.shot(name)
            forms = self.driver.execute_script(MUTATING_FORMS)
            if forms:
                raise AssertionError(f"expected no POST form but sign-out for a reader on {path}, found {forms}")
            for css in ("#bulk-form", "#create-device", "#shadow-form", "#downlink-form",
                        "#nav-integrations", "#nav-users", "#nav-tokens"):
                if self.present(css):
                    raise AssertionError(f"expected no {css} for a reader on {path}, there is one")

        # Forged anyway, with the reader's own valid csrf value: the role is what refuses it.
        self.go("/devices")
        csrf = self.driver.execute_script(
            "const b = document.querySelector('#sign-out'); const i = b && b.form && b.form.querySelector('input[name=csrf]');"
            " return i ? i.value : null;"
        )
        if not csrf:
            raise AssertionError("expected the sign-out form to carry a hidden csrf input with a value, it has none")
        answer = self.forge_post(f"/devices/{XSS_DEVICE}/accept", {"csrf": csrf})
        if not re.search(r"403|forbid|role|not allowed|permission", answer, re.IGNORECASE):
            raise AssertionError(f"expected the reader's POST to be refused for the role (403), the page says {answer[:500]!r}")
        if re.search(r"csrf", answer, re.IGNORECASE):
            raise AssertionError(f"expected the reader's POST with a valid csrf to be refused for the role, not for CSRF: {answer[:500]!r}")
        self.shot("reader-forbidden")
        status = self.device_status(XSS_DEVICE)
        if status != "pending":
            raise AssertionError(f"expected {XSS_DEVICE} to stay pending after the reader's POST, it is {status!r}")
        self.shot("reader-device-still-pending")
        print("ok: the reader sees no control on /devices, the device page and /events, and a forged POST is refused (403)", flush=True)

    def walk(self):
        self.start_browser()
        self.run("sign-in", self.sign_in_step)
        self.run("integration", self.integration_step)
        self.run("device", self.device_step)
        self.run("rules", self.rules_step)
        self.run("webhooks", self.webhooks_step)
        self.run("shadow", self.shadow_step)
        self.run("downlink", self.downlink_step)
        self.run("live-message", self.live_step)
        self.run("xss", self.xss_step)
        self.run("csrf", self.csrf_step)
        self.run("admin-pages", self.admin_pages_step)
        self.run("reader", self.reader_step)


def unused_loopback_port():
    """A loopback TCP port nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the console, http://127.0.0.1:PORT")
    parser.add_argument("--moto", required=True, help="moto_server's URL, standing in for AWS IoT")
    parser.add_argument("--mqtt-port", required=True, type=int, help="Conduit's MQTT broker port")
    parser.add_argument("--gateway-endpoint", required=True, help="host:port for the downlink gateway, in Conduit's endpoint allowlist")
    parser.add_argument("--webhook-url", required=True, help="a webhook receiver's URL the operator allowlisted")
    parser.add_argument("--admin-email", required=True)
    parser.add_argument("--admin-password", required=True)
    parser.add_argument("--reader-email", required=True)
    parser.add_argument("--reader-password", required=True)
    parser.add_argument("--screenshots", required=True, help="a folder for the screenshots")
    args = parser.parse_args()
    os.makedirs(args.screenshots, exist_ok=True)

    # Stopped from outside (timeout(1) sends SIGTERM): unwind, so finally quits Chromium.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped by SIGTERM"))

    walk = Walk(args)
    try:
        walk.walk()
    except BaseException as error:  # noqa: BLE001 - every failure ends the walk the same way
        message = str(error) or type(error).__name__
        print(f"FAILED at step {walk.step}: {message}", file=sys.stderr, flush=True)
        if not isinstance(error, (AssertionError, SystemExit)):
            traceback.print_exc()
        return 1
    finally:
        walk.quit()
    print(f"ok: every step passed; screenshots in {args.screenshots}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
