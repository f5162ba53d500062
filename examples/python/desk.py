"""An issuance desk: it takes a person's application for an identifier, has the person read
back the code the hub sent to their phone, and prints the notice of issuance.

It connects as its own broker user `desk-<deskId>`, publishes its commands
(`issuance.apply.v1`, `issuance.confirm_phone.v1`, ...) to the bus and hears the events of its
own applications in `{namespace}.desk.{deskId}`: `issuance.phone_code_sent.v1`,
`issuance.identifier_issued.v1`, `issuance.rejected.v1`, ...
"""

import time

from hubclient import ContractError, Party


class Desk(Party):
    """Desk `desk_id`, connected with `amqp_url` (whose user is `desk-<desk_id>`)."""

    def __init__(self, contracts, amqp_url, namespace, desk_id):
        queue = contracts.address("deskQueue", namespace=namespace, deskId=desk_id)
        super().__init__(contracts, amqp_url, namespace, queue, "deskSends", "deskReceives")
        self.desk_id = desk_id

    def apply(self, number, person, phone):
        """Sends the application `number` of `person` (as the MVD population lists them)."""
        body = {
            "application": {
                "number": number,
                "date": time.strftime("%Y-%m-%d"),
                "desk_id": self.desk_id,  # a desk sends only for itself
                "worker_id": "worker-1",
            },
            "person": {
                "identification_number": person["identification_number"],
                "surname": person["surname"],
                "given_name": person["given_name"],
                "patronymic": person["patronymic"],
                "birth_date": person["birth_date"],
                "status": person["status"],
            },
            "document": person["document"],
            "phone": phone,
            "consent_to_mvd_check": True,
        }
        self.publish("issuance.apply.v1", body)

    def confirm_phone(self, number, code):
        """Sends the code the person read from their phone."""
        body = {"desk_id": self.desk_id, "application_number": number, "code": code}
        self.publish("issuance.confirm_phone.v1", body)

    def event(self, message_type, number, timeout=60):
        """Waits for event `message_type` about application `number`; a rejection fails."""

        def about(m):
            body = m.body
            return number in (
                body.get("application_number"),
                body.get("notice", {}).get("application", {}).get("number"),
            )

        message = self.wait_for(
            f"{message_type} for {number}",
            lambda m: about(m) and m.type in (message_type, "issuance.rejected.v1"),
            timeout,
        )
        if message.type != message_type:
            raise ContractError(f"application {number} rejected: {message.body}")
        return message.body
