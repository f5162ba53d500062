//! The money side of an application: every payment the hub learnt of (ERIP's notices, receipts
//! of payments outside ERIP that the authority confirmed), what of it counts toward the fee,
//! what is due back to the person and why, and what ERIP refunded or reversed.
//!
//! The fee is met only by payments that add up to it: a short payment counts and leaves the rest
//! missing; the part of a payment above what was missing is due back (`overpaid`), a payment
//! after the fee was met is due back whole (`already_paid`), and so is one that arrives after the
//! application ended (`expired`, `withdrawn`, `cancelled`). When an application ends without
//! using the fee paid, that is due back too. A refund or a reversal settles what was due back
//! for its payment first; only the rest takes money from the fee.
//!
//! Pure bookkeeping, kept in the saga's state ([`super::saga::Application::ledger`]); operators
//! read the due-back records in the view `payments_due_back` (migration 0016).

use chrono::{DateTime, Utc};
use contracts::procedure::{DueBackReason, ReturnKind};
use serde::{Deserialize, Serialize};

/// The operation id a confirmed bank receipt is recorded under: `bank:<document number>`.
pub fn bank_operation(document_number: &str) -> String {
    format!("bank:{document_number}")
}

/// Where a payment was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentSource {
    /// Through ERIP (its notice).
    Erip,
    /// Outside ERIP, shown by a receipt the authority confirmed.
    Bank,
}

/// One payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    /// ERIP's operation number, or `bank:<document number>`.
    pub operation_id: String,
    /// The amount paid, kopecks.
    pub amount_kopecks: u64,
    /// Of it, what counts toward the fee, kopecks.
    pub counted_kopecks: u64,
    /// ERIP or a bank.
    pub source: PaymentSource,
    /// When the hub learnt of it.
    pub at: DateTime<Utc>,
}

/// Money due back to the person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DueBack {
    /// The payments it comes from.
    pub operation_ids: Vec<String>,
    /// Due back, kopecks.
    pub amount_kopecks: u64,
    /// Of it, settled by ERIP's refunds or reversals, kopecks.
    pub settled_kopecks: u64,
    /// Why.
    pub reason: DueBackReason,
    /// When it was recorded.
    pub recorded_at: DateTime<Utc>,
}

impl DueBack {
    fn outstanding(&self) -> u64 {
        self.amount_kopecks.saturating_sub(self.settled_kopecks)
    }
}

/// A payment ERIP refunded or the bank reversed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Returned {
    /// The payment's operation number.
    pub operation_id: String,
    /// Returned, kopecks.
    pub amount_kopecks: u64,
    /// Refund or reversal.
    pub kind: ReturnKind,
    /// When the hub learnt of it.
    pub at: DateTime<Utc>,
}

/// Every payment of an application, and what became of it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    /// The payments, in the order the hub learnt of them.
    #[serde(default)]
    pub payments: Vec<Payment>,
    /// What is due back.
    #[serde(default)]
    pub due_back: Vec<DueBack>,
    /// Refunds and reversals.
    #[serde(default)]
    pub returns: Vec<Returned>,
}

/// What recording a payment came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    /// Counted toward the fee, kopecks.
    pub counted_kopecks: u64,
    /// Recorded as due back, kopecks (with its reason).
    pub due_back: Option<(u64, DueBackReason)>,
}

/// What a refund or reversal came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settled {
    /// Taken from what was due back, kopecks.
    pub from_due_back_kopecks: u64,
    /// Taken from the fee paid, kopecks.
    pub from_fee_kopecks: u64,
}

impl Ledger {
    /// Whether the payment is recorded already (a repeated notice, a receipt attached twice).
    pub fn knows(&self, operation_id: &str) -> bool {
        self.payments.iter().any(|p| p.operation_id == operation_id)
    }

    /// Whether this refund or reversal is recorded already.
    pub fn knows_return(&self, operation_id: &str, kind: ReturnKind) -> bool {
        self.returns
            .iter()
            .any(|r| r.operation_id == operation_id && r.kind == kind)
    }

    /// Paid toward the fee, kopecks.
    pub fn counted(&self) -> u64 {
        self.payments.iter().map(|p| p.counted_kopecks).sum()
    }

    /// Of `fee`, what is still to pay, kopecks.
    pub fn missing(&self, fee: u64) -> u64 {
        fee.saturating_sub(self.counted())
    }

    /// Everything due back and not yet settled, kopecks.
    pub fn due_back_outstanding(&self) -> u64 {
        self.due_back.iter().map(DueBack::outstanding).sum()
    }

    /// A payment toward a fee of `fee`: it counts up to what is missing; the rest is due back
    /// (`overpaid`, or `already_paid` when nothing was missing).
    pub fn pay_toward(
        &mut self,
        operation_id: &str,
        amount: u64,
        source: PaymentSource,
        fee: u64,
        at: DateTime<Utc>,
    ) -> Recorded {
        let missing = self.missing(fee);
        let counted = amount.min(missing);
        let excess = amount - counted;
        let reason = if counted == 0 {
            DueBackReason::AlreadyPaid
        } else {
            DueBackReason::Overpaid
        };
        self.push(operation_id, amount, counted, source, at);
        let due_back = (excess > 0).then(|| {
            self.owe(vec![operation_id.to_owned()], excess, reason, at);
            (excess, reason)
        });
        Recorded {
            counted_kopecks: counted,
            due_back,
        }
    }

    /// A payment that cannot count (the application ended): due back whole, for `reason`.
    pub fn pay_late(
        &mut self,
        operation_id: &str,
        amount: u64,
        source: PaymentSource,
        reason: DueBackReason,
        at: DateTime<Utc>,
    ) -> Recorded {
        self.push(operation_id, amount, 0, source, at);
        if amount > 0 {
            self.owe(vec![operation_id.to_owned()], amount, reason, at);
        }
        Recorded {
            counted_kopecks: 0,
            due_back: (amount > 0).then_some((amount, reason)),
        }
    }

    /// The application ends without using the fee paid: all of it is due back, for `reason`.
    /// Returns the amount (0 when nothing was paid).
    pub fn release(&mut self, reason: DueBackReason, at: DateTime<Utc>) -> u64 {
        let counted = self.counted();
        if counted > 0 {
            let operations = self
                .payments
                .iter()
                .filter(|p| p.counted_kopecks > 0)
                .map(|p| p.operation_id.clone())
                .collect();
            self.owe(operations, counted, reason, at);
        }
        counted
    }

    /// ERIP refunded or reversed `amount` of payment `operation_id`: it settles what is due back
    /// from that payment first, then takes the rest from what the payment counted toward the fee.
    pub fn returned(
        &mut self,
        operation_id: &str,
        amount: u64,
        kind: ReturnKind,
        at: DateTime<Utc>,
    ) -> Settled {
        self.returns.push(Returned {
            operation_id: operation_id.to_owned(),
            amount_kopecks: amount,
            kind,
            at,
        });
        let mut left = amount;
        for owed in self
            .due_back
            .iter_mut()
            .filter(|d| d.operation_ids.iter().any(|o| o == operation_id))
        {
            let take = left.min(owed.outstanding());
            owed.settled_kopecks += take;
            left -= take;
        }
        let from_due_back = amount - left;
        let mut from_fee = 0;
        if let Some(payment) = self
            .payments
            .iter_mut()
            .find(|p| p.operation_id == operation_id)
        {
            from_fee = left.min(payment.counted_kopecks);
            payment.counted_kopecks -= from_fee;
        }
        Settled {
            from_due_back_kopecks: from_due_back,
            from_fee_kopecks: from_fee,
        }
    }

    fn push(
        &mut self,
        operation_id: &str,
        amount: u64,
        counted: u64,
        source: PaymentSource,
        at: DateTime<Utc>,
    ) {
        self.payments.push(Payment {
            operation_id: operation_id.to_owned(),
            amount_kopecks: amount,
            counted_kopecks: counted,
            source,
            at,
        });
    }

    fn owe(
        &mut self,
        operation_ids: Vec<String>,
        amount: u64,
        reason: DueBackReason,
        at: DateTime<Utc>,
    ) {
        self.due_back.push(DueBack {
            operation_ids,
            amount_kopecks: amount,
            settled_kopecks: 0,
            reason,
            recorded_at: at,
        });
    }
}

/// Kopecks as rubles for the person: `21.00`.
pub fn rubles(kopecks: u64) -> String {
    format!("{}.{:02}", kopecks / 100, kopecks % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        Utc::now()
    }

    #[test]
    fn short_payments_add_up_and_the_excess_is_due_back() {
        let mut l = Ledger::default();
        let first = l.pay_toward("op-1", 1000, PaymentSource::Erip, 2100, now());
        assert_eq!((first.counted_kopecks, first.due_back), (1000, None));
        assert_eq!(l.missing(2100), 1100);
        let second = l.pay_toward("op-2", 1500, PaymentSource::Erip, 2100, now());
        assert_eq!(second.counted_kopecks, 1100);
        assert_eq!(second.due_back, Some((400, DueBackReason::Overpaid)));
        assert_eq!(l.missing(2100), 0);
        let twice = l.pay_toward("op-3", 2100, PaymentSource::Erip, 2100, now());
        assert_eq!(twice.due_back, Some((2100, DueBackReason::AlreadyPaid)));
        assert_eq!(l.due_back_outstanding(), 2500);
        assert!(l.knows("op-2") && !l.knows("op-9"));
    }

    #[test]
    fn a_refund_settles_what_is_due_back_before_it_takes_from_the_fee() {
        let mut l = Ledger::default();
        l.pay_toward("op-1", 2500, PaymentSource::Erip, 2100, now());
        let refund = l.returned("op-1", 400, ReturnKind::Refund, now());
        assert_eq!(
            refund,
            Settled {
                from_due_back_kopecks: 400,
                from_fee_kopecks: 0
            }
        );
        assert_eq!((l.due_back_outstanding(), l.missing(2100)), (0, 0));
        let reversal = l.returned("op-1", 2100, ReturnKind::Reversal, now());
        assert_eq!(reversal.from_fee_kopecks, 2100);
        assert_eq!(l.missing(2100), 2100);
        assert!(l.knows_return("op-1", ReturnKind::Reversal));
    }

    #[test]
    fn an_ended_application_owes_back_what_was_paid_and_what_comes_after() {
        let mut l = Ledger::default();
        l.pay_toward("op-1", 700, PaymentSource::Erip, 2100, now());
        assert_eq!(l.release(DueBackReason::Expired, now()), 700);
        let late = l.pay_late(
            "op-2",
            1400,
            PaymentSource::Erip,
            DueBackReason::Expired,
            now(),
        );
        assert_eq!(late.due_back, Some((1400, DueBackReason::Expired)));
        assert_eq!(l.due_back_outstanding(), 2100);
        assert_eq!(rubles(2100), "21.00");
        assert_eq!(rubles(5), "0.05");
    }
}
