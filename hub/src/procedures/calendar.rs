//! The Belarus working-day calendar (placeholder).
