//! Simulators of the external systems (see README.md).
