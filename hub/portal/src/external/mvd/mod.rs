//! MVD, the population registry: the [worker](worker) asks it to reconcile an applicant's
//! stated data and identity document, for the issuance saga, and answers the saga with the
//! registry's verdict. MVD calls nothing back. The client and the wire contract are
//! [`adapters::mvd`].

pub mod worker;
