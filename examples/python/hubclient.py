"""What every party of the hub needs, written only from the published contracts.

`contracts/published/asyncapi.json` says where a party publishes (the `{namespace}.bus` topic
exchange, with the message type as the routing key), which queue it reads
(`{namespace}.portal`, `{namespace}.desk.{deskId}`, `{namespace}.authority.{authorityId}`),
which types it may send and hear (the operations `portalSends`, `deskReceives`, ...), and the
envelope every message carries (AMQP properties). `contracts/published/schemas/<type>.json` is
the JSON Schema (Draft 2020-12) of each body.

`Contracts` loads both; `Party` is one party's connection: it publishes with publisher confirms
and the envelope's properties, reads its own queue, and validates every body both ways.
"""

import json
import time
import uuid
from pathlib import Path

import jsonschema
import pika

# The repository's published contracts (an agency would vendor a release of this directory).
PUBLISHED = Path(__file__).resolve().parents[2] / "contracts" / "published"


class ContractError(Exception):
    """A body or a type the published contracts do not allow."""


class Contracts:
    """The AsyncAPI document and the JSON Schemas of the bodies."""

    def __init__(self, published=PUBLISHED):
        self.asyncapi = json.loads((published / "asyncapi.json").read_text())
        self._schemas = published / "schemas"
        self._validators = {}

    def operation_types(self, operation):
        """The message types of an AsyncAPI operation (`portalSends`, `deskReceives`, ...)."""
        refs = self.asyncapi["operations"][operation]["messages"]
        return {ref["$ref"].rsplit("/", 1)[-1] for ref in refs}

    def address(self, channel, **parameters):
        """A channel's address with its parameters filled in (`{namespace}.portal`, ...)."""
        address = self.asyncapi["channels"][channel]["address"]
        for name, value in parameters.items():
            address = address.replace("{" + name + "}", value)
        return address

    def validate(self, message_type, body):
        """Raises ContractError unless `body` is valid against the schema of `message_type`."""
        validator = self._validators.get(message_type)
        if validator is None:
            path = self._schemas / f"{message_type}.json"
            if not path.exists():
                raise ContractError(f"no published schema for {message_type}")
            schema = json.loads(path.read_text())
            # Draft 2020-12 with format checking: uuid, date and date-time (rfc3339-validator)
            # are checked, not only annotated.
            validator = jsonschema.Draft202012Validator(
                schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
            )
            self._validators[message_type] = validator
        errors = sorted(validator.iter_errors(body), key=lambda e: list(e.path))
        if errors:
            where = "/".join(str(p) for p in errors[0].path) or "(body)"
            raise ContractError(f"{message_type} at {where}: {errors[0].message}")


class Message:
    """One message a party heard: its type, body and envelope."""

    def __init__(self, properties, body):
        self.type = properties.type
        self.message_id = properties.message_id
        self.correlation_id = properties.correlation_id
        self.body = body

    def __repr__(self):
        return f"<{self.type} {json.dumps(self.body, ensure_ascii=False)[:200]}>"


class Party:
    """One party on the bus: its own broker user, its own queue.

    `sends` and `receives` name the AsyncAPI operations of its role; a type outside them is
    refused here, before the hub would refuse it.
    """

    def __init__(self, contracts, amqp_url, namespace, queue, sends, receives):
        self.contracts = contracts
        self.user = pika.URLParameters(amqp_url).credentials.username
        self.exchange = contracts.address("bus", namespace=namespace)
        self.queue = queue
        self.may_send = contracts.operation_types(sends)
        self.may_hear = contracts.operation_types(receives)
        self.connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
        self.channel = self.connection.channel()
        # Publisher confirms: basic_publish returns only when the broker took the message, and
        # raises if it refused it or (with mandatory) could not route it.
        self.channel.confirm_delivery()
        self.heard = []
        self._seen_ids = set()

    def publish(self, message_type, body, correlation_id=None, reply_to=None, check=True):
        """Publishes `body` as `message_type` on the bus; returns its message_id.

        With `check=False` the party's own list of what it may send is not consulted (the
        hostile example uses that to show what the hub does); the schema is always checked.
        """
        if check and message_type not in self.may_send:
            raise ContractError(f"{self.user} may not send {message_type} (AsyncAPI)")
        self.contracts.validate(message_type, body)
        message_id = str(uuid.uuid4())
        properties = pika.BasicProperties(
            message_id=message_id,  # the hub deduplicates by it; a re-send keeps it
            type=message_type,
            user_id=self.user,  # the broker checks it is the connection's user
            correlation_id=correlation_id,
            reply_to=reply_to,
            timestamp=int(time.time()),
            content_type="application/json",
            delivery_mode=pika.DeliveryMode.Persistent,
        )
        self.channel.basic_publish(
            exchange=self.exchange,
            routing_key=message_type,
            body=json.dumps(body).encode(),
            properties=properties,
            mandatory=True,
        )
        return message_id

    def poll(self, timeout=0.2):
        """Takes what arrived in the party's queue within `timeout` into `heard`."""
        deadline = time.monotonic() + timeout
        while True:
            method, properties, raw = self.channel.basic_get(self.queue)
            if method is None:
                if time.monotonic() >= deadline:
                    return
                # The poll interval of a wait with a deadline.
                time.sleep(0.05)
                continue
            message = self.receive(properties, raw)
            if message is not None:
                self.heard.append(message)
            # Acknowledge only after the message is handled (here: validated and kept).
            self.channel.basic_ack(method.delivery_tag)

    def receive(self, properties, raw):
        """A delivery as a validated Message; None for a redelivery already handled."""
        body = json.loads(raw)
        if properties.type not in self.may_hear:
            raise ContractError(f"{self.user} heard {properties.type}, not in its operation")
        self.contracts.validate(properties.type, body)
        # A redelivery keeps its message_id: handle each id once.
        if properties.message_id in self._seen_ids:
            return None
        self._seen_ids.add(properties.message_id)
        return Message(properties, body)

    def wait_for(self, what, match, timeout=60, give_up=lambda: None):
        """Waits up to `timeout` seconds for a heard message `match` accepts; returns it.

        `give_up` is asked at every poll: a reason it returns ends the wait with that reason.
        """
        deadline = time.monotonic() + timeout
        while True:
            reason = give_up()
            if reason:
                raise ContractError(f"{self.user}: no {what}: {reason}")
            for message in self.heard:
                if match(message):
                    self.heard.remove(message)
                    return message
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{self.user}: no {what} within {timeout} s; heard {self.heard}")
            self.poll()

    def close(self):
        """Closes the connection."""
        if self.connection.is_open:
            self.connection.close()
