"""An authority on the bus: its back-office registers each application it receives and decides
it with a signed decision.

It connects as its own broker user (the catalogue's `broker_user`, e.g. `authority-minsk-zags`)
and reads `{namespace}.authority.{authorityId}`:

- `authority.application.v1` -> `authority.registered.v1` (its registration number), then
  `authority.decided.v2`: the decision document signed by an official's key token;
- `authority.decision_refused.v1` -> the hub did not accept a decision (bad signature, a
  certificate not the authority's, ...): kept in `refusals`, the application still waits;
- `authority.withdrawal.v1` -> `authority.withdrawal_answered.v1` (accepted: it decides at once,
  so there is never anything to stop).

Every answer echoes the `correlation_id` of the message it answers. A delivery is acknowledged
only after its answers are confirmed by the broker; one that fails goes back to the queue.
"""

import threading
import time

from hubclient import Party

# The signed bytes of a decision (README, "Signed decisions"): UTF-8 lines joined by "\n".
SIGNED_BYTES_PREFIX = "by.portal.decision.v1"


class QueueAuthority(Party):
    """Authority `authority_id` with its official's `token` (simulators.SigningToken)."""

    def __init__(self, contracts, amqp_url, namespace, authority_id, token):
        queue = contracts.address("authorityQueue", namespace=namespace, authorityId=authority_id)
        super().__init__(
            contracts, amqp_url, namespace, queue, "authoritySends", "authorityReceives"
        )
        self.authority_id = authority_id
        self.token = token
        self.decided = []  # application ids it decided
        self.refusals = []  # authority.decision_refused.v1 bodies

    def serve(self, stop):
        """Handles its queue until the threading.Event `stop` is set."""
        while not stop.is_set():
            method, properties, raw = self.channel.basic_get(self.queue)
            if method is None:
                time.sleep(0.05)  # the poll interval of an idle consumer
                continue
            try:
                message = self.receive(properties, raw)
                if message is not None:
                    self.handle(message)
            except Exception:
                # Not handled: back to the queue, and the caller hears why.
                self.channel.basic_nack(method.delivery_tag, requeue=True)
                raise
            self.channel.basic_ack(method.delivery_tag)

    def handle(self, message):
        """One message of its queue."""
        body, correlation = message.body, message.correlation_id
        if message.type == "authority.application.v1":
            application_id = body["application_id"]
            number = f"{self.authority_id.upper()}-{application_id[:8]}"
            self.publish(
                "authority.registered.v1",
                {"application_id": application_id, "registration_number": number},
                correlation_id=correlation,
            )
            decision = self.signed_decision(application_id, "granted", "Issued as applied for.")
            self.publish("authority.decided.v2", decision, correlation_id=correlation)
            self.decided.append(application_id)
        elif message.type == "authority.decision_refused.v1":
            self.refusals.append(body)
        elif message.type == "authority.withdrawal.v1":
            answer = {"application_id": body["application_id"], "accepted": True}
            self.publish("authority.withdrawal_answered.v1", answer, correlation_id=correlation)
        # Other types of its operation (complaints, receipts, answers to information
        # requests) are not part of this example: acknowledged and left alone.

    def signed_decision(self, application_id, verdict, text):
        """The `authority.decided.v2` body: the document and the official's signature of it."""
        now = time.gmtime()
        date = time.strftime("%Y-%m-%d", now)
        number = f"{self.authority_id.upper()}-D-{application_id.replace('-', '')[:8]}"
        document = {
            "application_id": application_id,
            "authority_id": self.authority_id,
            "number": number,
            "date": date,
            "verdict": verdict,
            "text": text,
        }
        signed_bytes = "\n".join(
            [SIGNED_BYTES_PREFIX, application_id, self.authority_id, number, date, verdict, text]
        ).encode("utf-8")
        return {
            "application_id": application_id,
            "document": document,
            "decided_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", now),
            "signature": {
                "signature": self.token.sign(signed_bytes),
                "certificate": self.token.certificate,
                "chain": self.token.chain,
            },
        }


class AuthorityThread(threading.Thread):
    """Runs a QueueAuthority in a thread of its own (pika connections are per thread)."""

    def __init__(self, make_authority):
        super().__init__(daemon=True)
        self._make = make_authority
        self.stop = threading.Event()
        self.ready = threading.Event()
        self.authority = None
        self.error = None

    def run(self):
        try:
            self.authority = self._make()
            self.ready.set()
            self.authority.serve(self.stop)
        except Exception as e:  # reported by the journey
            self.error = e
            self.ready.set()
        finally:
            if self.authority is not None:
                self.authority.close()
