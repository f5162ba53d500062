//! Identification numbers, phone numbers and names: parsing, validation, masking.
