//! Validation errors: what was wrong with which field, in words an agency's developer can act on.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One field that failed validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FieldError {
    /// Path of the field in the body, dotted (`person.document.number`).
    pub field: String,
    /// What is wrong with it, in one sentence.
    pub problem: String,
}

/// Every problem found in one body; empty means valid.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ValidationErrors {
    /// The fields that failed, in the order they were checked.
    pub fields: Vec<FieldError>,
}

impl ValidationErrors {
    /// An empty set of errors.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a problem with `field`.
    pub fn add(&mut self, field: impl Into<String>, problem: impl Into<String>) {
        self.fields.push(FieldError {
            field: field.into(),
            problem: problem.into(),
        });
    }

    /// Records a problem with `field` when `ok` is false.
    pub fn check(&mut self, ok: bool, field: &str, problem: &str) {
        if !ok {
            self.add(field, problem);
        }
    }

    /// `Ok(())` when nothing was recorded, the errors otherwise.
    pub fn into_result(self) -> Result<(), ValidationErrors> {
        if self.fields.is_empty() {
            Ok(())
        } else {
            Err(self)
        }
    }

    /// True when no problem was recorded.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}

impl std::fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.fields.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", e.field, e.problem)?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_ok_and_problems_are_listed_in_order() {
        assert!(ValidationErrors::new().into_result().is_ok());
        let mut e = ValidationErrors::new();
        e.check(true, "a", "never recorded");
        e.check(false, "b", "must not be empty");
        e.add("c.d", "must be positive");
        let err = e.into_result().expect_err("two problems were recorded");
        assert_eq!(
            err.to_string(),
            "b: must not be empty; c.d: must be positive"
        );
    }
}
