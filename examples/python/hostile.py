#!/usr/bin/env python3
"""What the hub does with a message its sender may not send: the desk publishes the portal's
`cabinet.login.v1` (a valid body, the desk's own broker user, its own queue as reply_to).

The broker takes it (the publish is confirmed: the desk is allowed on the bus), but the hub's
access matrix refuses it before any handler sees it: it is dead-lettered with a reason that
names the user, its role and the type, and nobody answers. A party cannot see the dead letter
(the hub's operators do: `hub dlq list`); this script prints its message_id so that whoever
runs it (the CI test) can look it up.

Environment: HUB_NAMESPACE, DESK_AMQP_URL, DESK_ID (as for journey.py).
"""

import os
import uuid

from desk import Desk
from hubclient import ContractError, Contracts


def main():
    contracts = Contracts()
    desk = Desk(contracts, os.environ["DESK_AMQP_URL"], os.environ["HUB_NAMESPACE"],
                os.environ["DESK_ID"])
    body = {"identifier": "3270287A012PB2", "password": "Whatever-2026"}
    # The desk's own client refuses it first: cabinet.login.v1 is not in deskSends.
    try:
        desk.publish("cabinet.login.v1", body)
        raise AssertionError("the client let the desk send cabinet.login.v1")
    except ContractError as refused:
        print(f"-- client: {refused}")
    # Sent anyway (check=False), as a misbehaving or compromised desk would.
    message_id = desk.publish("cabinet.login.v1", body, correlation_id=str(uuid.uuid4()),
                              reply_to=desk.queue, check=False)
    print("-- desk published cabinet.login.v1; the broker confirmed it")
    print(f"HOSTILE_MESSAGE_ID={message_id}", flush=True)
    desk.close()


if __name__ == "__main__":
    main()
