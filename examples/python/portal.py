"""The e-services portal: the person's cabinet and their applications.

It connects as the portal's broker user (`portal` unless the hub's HUB_PORTAL_USER says
otherwise) and reads `{namespace}.portal`. Cabinet requests (`cabinet.*`) are questions: each
carries a fresh `correlation_id` and `reply_to` = the portal's own queue, and the hub answers
`cabinet.reply.v1` there with the same `correlation_id`. Procedure commands
(`procedure.submit.v1`, ...) are answered by events about the application
(`procedure.accepted.v1`, `procedure.registered.v1`, `procedure.decided.v1`, ...).
"""

import uuid

from hubclient import ContractError, Party


class Portal(Party):
    """The portal, connected with `amqp_url` (the portal's broker user)."""

    def __init__(self, contracts, amqp_url, namespace):
        queue = contracts.address("portalQueue", namespace=namespace)
        super().__init__(contracts, amqp_url, namespace, queue, "portalSends", "portalReceives")

    def ask(self, message_type, body, timeout=60):
        """Sends a cabinet request and returns the hub's answer (a `cabinet.reply.v1` body)."""
        correlation_id = str(uuid.uuid4())
        self.publish(message_type, body, correlation_id=correlation_id, reply_to=self.queue)
        reply = self.wait_for(
            f"the answer to {message_type}",
            lambda m: m.correlation_id == correlation_id,
            timeout,
        )
        return reply.body

    def log_in(self, identifier, password):
        """`cabinet.login.v1`: the answer's outcome (`ok` with a session, `must_change_password`,
        `wrong_credentials`, ...)."""
        return self.ask("cabinet.login.v1", {"identifier": identifier, "password": password})

    def change_password(self, identifier, current, new):
        """`cabinet.change_password.v1`: replaces the (temporary) password."""
        body = {"identifier": identifier, "current_password": current, "new_password": new}
        return self.ask("cabinet.change_password.v1", body)

    def submit(self, session_token, procedure_code, form):
        """`procedure.submit.v1`; returns the new application's id."""
        application_id = str(uuid.uuid4())
        body = {
            "application_id": application_id,
            "procedure_code": procedure_code,
            "session_token": session_token,
            "form": form,
            "attachments": [],
        }
        self.publish("procedure.submit.v1", body)
        return application_id

    def event(self, message_type, application_id, timeout=60, give_up=lambda: None):
        """Waits for event `message_type` about the application; a rejection fails, and so
        does a reason `give_up` returns (see Party.wait_for)."""
        message = self.wait_for(
            f"{message_type} for {application_id}",
            lambda m: m.body.get("application_id") == application_id
            and m.type in (message_type, "procedure.rejected.v1"),
            timeout,
            give_up,
        )
        if message.type != message_type:
            raise ContractError(f"application {application_id} rejected: {message.body}")
        return message.body
