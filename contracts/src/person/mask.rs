//! Masking of personal data for logs, dead-letter headers and operator screens.
//!
//! Identification numbers, phone numbers and names are personal data: the hub logs enough of
//! them to tell two people apart in an incident, and never the whole value.

/// A name with all but its first character hidden, one `*` per hidden character:
/// `"Иванова"` becomes `"И******"`. Counts Unicode scalar values, not bytes.
pub fn mask_name(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        None => String::new(),
        Some(first) => std::iter::once(first).chain(chars.map(|_| '*')).collect(),
    }
}

/// `s` with every character but the first `head` and the last `tail` replaced by `*`. When the
/// string is too short to hide anything that way, every character is hidden.
pub(crate) fn mask_keep_ends(s: &str, head: usize, tail: usize) -> String {
    let n = s.chars().count();
    if n <= head + tail {
        return "*".repeat(n);
    }
    s.chars()
        .enumerate()
        .map(|(i, c)| if i < head || i >= n - tail { c } else { '*' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_keep_their_first_letter() {
        assert_eq!(mask_name("Иванова"), "И******");
        assert_eq!(mask_name("Li"), "L*");
        assert_eq!(mask_name("Я"), "Я");
        assert_eq!(mask_name(""), "");
    }

    #[test]
    fn short_values_are_hidden_entirely() {
        assert_eq!(mask_keep_ends("abcd", 2, 2), "****");
        assert_eq!(mask_keep_ends("abcde", 2, 2), "ab*de");
    }

    proptest! {
        #[test]
        fn a_masked_name_has_the_same_length_and_reveals_one_character(name in "\\PC{0,30}") {
            let masked = mask_name(&name);
            prop_assert_eq!(masked.chars().count(), name.chars().count());
            prop_assert_eq!(masked.chars().next(), name.chars().next());
            prop_assert!(masked.chars().skip(1).all(|c| c == '*'));
        }
    }
}
