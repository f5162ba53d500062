//! The mail server (an SMTP relay): the [worker](worker) composes and sends the portal's
//! e-mail (activation links after a registration, notes to account holders), an activation
//! token opened from its seal only just before the send. Nothing calls back. The client is
//! [`adapters::email`].

pub mod worker;
