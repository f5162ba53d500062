"""The world outside the bus, as the lab simulates it: the person's phone (an operator
simulator's inbox), the bank (the ERIP simulator), the population (the MVD simulator) and an
official's signing token (the GosSUOK simulator). A real agency has the real ones; only the
journey needs these. Plain HTTP with the standard library.
"""

import base64
import json
import re
import time
import urllib.request


def _call(method, url, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


def good_persons(mvd_url, limit=500):
    """Persons of the MVD simulator's population every issuance rule lets through."""
    page = _call("GET", f"{mvd_url.rstrip('/')}/sim/population?offset=0&limit={limit}")
    today = time.strftime("%Y-%m-%d")
    adult = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 16 * 366 * 86400))
    return [
        p
        for p in page["persons"]
        if p["document_status"] == "valid"
        and p["previous_surname"] is None
        and p["check_digit_valid"]
        and p["document"]["expires_on"] > today
        and p["birth_date"] < adult
    ]


def sms_texts(operator_url, phone):
    """The texts the phone `phone` (+375...) received so far, oldest first."""
    inbox = _call("GET", f"{operator_url.rstrip('/')}/sim/inbox/{phone.lstrip('+')}")
    return [m["text"] for m in inbox["messages"]]


def nth_sms(operator_url, phone, n, timeout=60):
    """Waits for the n-th (1-based) SMS on `phone`; returns its text."""
    deadline = time.monotonic() + timeout
    while True:
        texts = sms_texts(operator_url, phone)
        if len(texts) >= n:
            return texts[n - 1]
        if time.monotonic() >= deadline:
            raise TimeoutError(f"no SMS number {n} on the phone within {timeout} s")
        time.sleep(0.1)  # the poll interval of a wait with a deadline


def code_in(text):
    """The six-digit code in an SMS."""
    return re.search(r"(?<!\d)\d{6}(?!\d)", text).group(0)


def password_in(text):
    """The temporary password in the issuance SMS (`... пароль: <password>. ...`)."""
    return text.split("пароль: ", 1)[1].split(".", 1)[0]


def pay_at_bank(erip_url, order_number):
    """The person pays the invoice with this order number at a bank (the ERIP simulator)."""
    return _call(
        "POST",
        f"{erip_url.rstrip('/')}/sim/invoices/by-account/{order_number}/pay",
        {"channel": "bank"},
    )


class SigningToken:
    """An official's certificate and key token at the GosSUOK simulator.

    The certificate names the authority (its catalogue id) as the subject's organizationName;
    the token signs (bign over belt-hash) whatever bytes it is given.
    """

    def __init__(self, gossuok_url, identification_number, authority_id):
        self.url = gossuok_url.rstrip("/")
        issued = _call(
            "POST",
            f"{self.url}/sim/certificates",
            {"identification_number": identification_number, "organization": authority_id},
        )
        self.serial = issued["serial"]
        self.certificate = issued["certificate"]  # DER, base64
        self.chain = issued["chain"]  # the intermediates, DER, base64

    def sign(self, data):
        """The signature of `data` (bytes), base64."""
        signed = _call(
            "POST",
            f"{self.url}/sim/certificates/{self.serial}/sign",
            {"data": base64.b64encode(data).decode()},
        )
        return signed["signature"]
