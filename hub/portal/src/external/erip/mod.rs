//! ERIP, the payment system: the [worker](worker) registers the invoice of an application's
//! state fee (keyed by the procedure saga's order number) and cancels it when the application
//! ends unpaid; ERIP posts its signed notifications (each payment, expired, cancelled, each
//! payment refunded or reversed) to the [callback](callback), which hands them to the procedure
//! saga once each. The client, the
//! wire contract and the signature check are [`adapters::erip`].

pub mod callback;
pub mod worker;
