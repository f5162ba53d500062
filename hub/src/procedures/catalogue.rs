//! The procedures catalogue (placeholder).
