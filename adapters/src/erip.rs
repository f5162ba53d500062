//! ERIP (placeholder).
