#!/usr/bin/env python3
"""A whole journey through the hub, played by a desk, the portal and a queue authority written
only against contracts/published (asyncapi.json and schemas/):

1. the desk issues an identifier (the SMS code and then the temporary password are read from
   the person's phone, i.e. the operator simulator's inbox);
2. the portal logs in with the temporary password, is told to change it, changes it, and logs
   in again (a session);
3. the portal applies for a free procedure and for a paid one (paid at the ERIP simulator, as
   the person would at a bank);
4. the authority registers both and decides them with a signed decision (its official's key
   token at the GosSUOK simulator), and the portal hears both decisions with their signer.

Everything it needs comes from the environment (the lab's or a test's stage):

  HUB_NAMESPACE       the hub's namespace (HUB_NAMESPACE of the hub)
  DESK_AMQP_URL       amqp://desk-<deskId>:<password>@host:5672/%2f
  PORTAL_AMQP_URL     amqp://portal:<password>@host:5672/%2f
  AUTHORITY_AMQP_URL  amqp://<authority's broker user>:<password>@host:5672/%2f
  DESK_ID             the desk's id (HUB_DESKS of the hub)
  AUTHORITY_ID        a queue authority with a free and a paid procedure (minsk-civil-registry)
  SIM_MVD_URL, SIM_A1_URL, SIM_ERIP_URL, SIM_GOSSUOK_URL   the simulators
  PERSON_INDEX        which person of the population applies (default 0)

Exits 0 when every step came out as expected; otherwise prints what did not and exits 1.
"""

import os
import sys
import time

import simulators
from authority import AuthorityThread, QueueAuthority
from desk import Desk
from hubclient import Contracts
from portal import Portal

# The two procedures of the civil registry: a birth registration (free) and a duplicate
# certificate (21.00 BYN), with their forms (the catalogue's fields).
FREE = ("5.1", {
    "child_surname": "Ivanova",
    "child_given_name": "Anna",
    "birth_date": time.strftime("%Y-%m-%d"),
    "sex": "female",
    "parents_married": True,
})
PAID = ("5.13", {"record_kind": "birth", "record_year": 1990})
NEW_PASSWORD = "Python2026pass"


def env(name, default=None):
    value = os.environ.get(name, default)
    if value is None:
        sys.exit(f"journey.py: {name} is not set")
    return value


def step(text):
    print(f"-- {text}", flush=True)


def issue_identifier(desk, person, phone, sms_url):
    """The desk's part: returns (identifier, temporary password)."""
    number = f"PY-{int(time.time() * 1000) % 10**9}"
    before = len(simulators.sms_texts(sms_url, phone))
    desk.apply(number, person, phone)
    sent = desk.event("issuance.phone_code_sent.v1", number)
    step(f"desk: code sent to {sent['phone_masked']}")
    code = simulators.code_in(simulators.nth_sms(sms_url, phone, before + 1))
    desk.confirm_phone(number, code)
    notice = desk.event("issuance.identifier_issued.v1", number)["notice"]
    step(f"desk: identifier issued, notice {notice['notice_number']}")
    password = simulators.password_in(simulators.nth_sms(sms_url, phone, before + 2))
    return notice["identifier"], password


def open_session(portal, identifier, temporary):
    """The portal's part: the first login, the password change, the session."""
    first = portal.log_in(identifier, temporary)
    assert first["outcome"] == "must_change_password", f"first login: {first}"
    changed = portal.change_password(identifier, temporary, NEW_PASSWORD)
    assert changed["outcome"] == "ok", f"password change: {changed}"
    login = portal.log_in(identifier, NEW_PASSWORD)
    assert login["outcome"] == "ok" and login.get("session_token"), f"login: {login}"
    step(f"portal: logged in, assurance level {login['assurance_level']}")
    return login["session_token"]


def apply_and_hear_decision(portal, session, procedure, erip_url, authority_thread):
    """Applies, pays if there is a fee, and waits for the signed decision (or the hub's
    refusal of it, which the authority hears, or the authority's own failure)."""
    authority = authority_thread.authority
    token = authority.token
    code, form = procedure
    application_id = portal.submit(session, code, form)
    accepted = portal.event("procedure.accepted.v1", application_id)
    step(f"portal: {code} accepted as {accepted['number']}, fee {accepted['amount_kopecks']}")
    if accepted.get("order_number"):
        simulators.pay_at_bank(erip_url, accepted["order_number"])
        paid = portal.event("procedure.payment_received.v1", application_id)
        assert paid["amount_kopecks"] == accepted["amount_kopecks"], f"paid: {paid}"
        step(f"portal: {code} paid {paid['amount_kopecks']} kopecks")
    registered = portal.event("procedure.registered.v1", application_id)
    step(f"portal: {code} registered as {registered['registration_number']}")

    def no_decision_coming():
        if authority_thread.error:
            return f"the authority failed: {authority_thread.error!r}"
        for r in authority.refusals:
            if r["application_id"] == application_id:
                return f"the hub refused the decision: {r['reason']}: {r['detail']}"
        return None

    decided = portal.event("procedure.decided.v1", application_id, give_up=no_decision_coming)
    signer = (decided.get("signed") or {}).get("signer") or {}
    assert decided["verdict"] == "granted", f"decision: {decided}"
    assert signer.get("certificate_serial") == token.serial, f"signer: {signer}"
    step(f"portal: {code} {decided['verdict']}, signed by {signer['name']}")


def official_token(gossuok_url, persons, authority_id):
    """An official of the authority: the first person GosSUOK issues a certificate for."""
    for person in persons:
        try:
            return simulators.SigningToken(gossuok_url, person["identification_number"], authority_id)
        except OSError:
            continue
    raise RuntimeError("GosSUOK issued no official's certificate")


def main():
    namespace, authority_id = env("HUB_NAMESPACE"), env("AUTHORITY_ID")
    sms_url, erip_url = env("SIM_A1_URL"), env("SIM_ERIP_URL")
    contracts = Contracts()
    persons = simulators.good_persons(env("SIM_MVD_URL"))
    index = int(env("PERSON_INDEX", "0"))
    person = persons[index]
    # An A1 number (+375 44), not ported (..77), blocked (..9999) or silent (..8888).
    phone = f"+37544{(300 + index) % 1000:03d}1234"

    token = official_token(env("SIM_GOSSUOK_URL"), persons[index + 1:], authority_id)
    step(f"authority: official's certificate {token.serial}")
    authority = AuthorityThread(lambda: QueueAuthority(
        contracts, env("AUTHORITY_AMQP_URL"), namespace, authority_id, token))
    authority.start()
    if not authority.ready.wait(30) or authority.error:
        raise RuntimeError(f"the authority did not start: {authority.error!r}")
    desk = Desk(contracts, env("DESK_AMQP_URL"), namespace, env("DESK_ID"))
    portal = Portal(contracts, env("PORTAL_AMQP_URL"), namespace)
    try:
        identifier, temporary = issue_identifier(desk, person, phone, sms_url)
        session = open_session(portal, identifier, temporary)
        for procedure in (FREE, PAID):
            apply_and_hear_decision(portal, session, procedure, erip_url, authority)
    finally:
        authority.stop.set()
        authority.join(30)
        desk.close()
        portal.close()
    if authority.error:
        raise authority.error
    assert len(authority.authority.decided) == 2, f"decided: {authority.authority.decided}"
    assert not authority.authority.refusals, f"refused: {authority.authority.refusals}"
    step("journey complete: every body sent and heard was valid against its schema")


if __name__ == "__main__":
    main()
