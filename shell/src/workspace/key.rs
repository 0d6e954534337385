//! Workspace keys (SPEC 4.2, 9.5 invariant 3): directory names derived from identifiers.

use sha2::{Digest, Sha256};

/// Longest sanitised stem kept before the hash suffix, so that a key stays well under the
/// 255-byte file name limit of common filesystems.
const MAX_STEM: usize = 128;

/// The directory name for an issue identifier.
///
/// Every character outside `[A-Za-z0-9._-]` becomes `_`. When that changed anything, or the
/// result is empty, starts with `.` (`.`, `..`, and the reserved `.symphony`), is longer than
/// 128 characters, or itself ends like a hashed key (`--` and 16 lowercase hex digits), `--`
/// and the first 16 hex digits of the SHA-256 of the original identifier are appended (the
/// stem cut to 128 characters). So keys are injective: a plain key never has the hashed shape,
/// every hashed key has it, and distinct identifiers that sanitise alike (`A/B`, `A_B`) get
/// distinct hashes. An identifier that needs no change keeps it as its key.
pub fn workspace_key(identifier: &str) -> String {
    let sanitized: String = identifier
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let plain = sanitized == identifier
        && !sanitized.is_empty()
        && !sanitized.starts_with('.')
        && sanitized.len() <= MAX_STEM
        && !has_hashed_shape(&sanitized);
    if plain {
        return sanitized;
    }
    let digest = Sha256::digest(identifier.as_bytes());
    let mut key: String = sanitized.chars().take(MAX_STEM).collect();
    key.push_str("--");
    for byte in &digest[..8] {
        key.push_str(&format!("{byte:02x}"));
    }
    key
}

/// Ends with `--` and 16 lowercase hex digits, as every hashed key does.
fn has_hashed_shape(key: &str) -> bool {
    key.len() >= 18
        && key.is_char_boundary(key.len() - 18)
        && key[key.len() - 18..].starts_with("--")
        && key[key.len() - 16..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_identifiers_are_their_own_key() {
        assert_eq!(workspace_key("MT-649"), "MT-649");
        assert_eq!(workspace_key("GH-12.fix_a"), "GH-12.fix_a");
    }

    #[test]
    fn changed_identifiers_get_a_stable_hash_suffix() {
        // SHA-256("A/B") starts 2f1b...; the suffix is its first 16 hex digits.
        let key = workspace_key("A/B");
        assert!(key.starts_with("A_B--"), "{key}");
        assert_eq!(key.len(), "A_B--".len() + 16);
        assert_eq!(key, workspace_key("A/B"), "stable");
        assert_ne!(key, workspace_key("A_B"));
        assert_eq!(workspace_key("A_B"), "A_B");
    }

    #[test]
    fn special_names_and_long_identifiers_are_suffixed() {
        for special in ["", ".", ".."] {
            let key = workspace_key(special);
            assert!(key.len() == special.len() + 18, "{key:?}");
        }
        let long = "x".repeat(300);
        let key = workspace_key(&long);
        assert_eq!(key.len(), 128 + 18);
        assert_ne!(key, workspace_key(&"x".repeat(301)));
    }

    #[test]
    fn an_identifier_shaped_like_a_hashed_key_is_hashed_too() {
        // `sp ace` hashes to `sp_ace--<16 hex>`; an issue literally named that must not share
        // its directory (this happened).
        let hashed = workspace_key("sp ace");
        assert!(has_hashed_shape(&hashed), "{hashed}");
        let lookalike = workspace_key(&hashed);
        assert_ne!(lookalike, hashed);
        assert!(lookalike.starts_with(&hashed) && lookalike.len() == hashed.len() + 18);
        assert_eq!(
            workspace_key("MT-1--0123456789ABCDEF"),
            "MT-1--0123456789ABCDEF"
        );
        assert_ne!(
            workspace_key(".symphony"),
            ".symphony",
            "reserved for markers"
        );
    }

    proptest::proptest! {
        /// Distinct identifiers never share a key, including identifiers built from other
        /// identifiers' keys.
        #[test]
        fn keys_are_injective(
            a in "[a-zA-Z0-9 ._/-]{0,12}",
            b in "[a-zA-Z0-9 ._/-]{0,12}",
            take_key in proptest::bool::ANY,
        ) {
            let b = if take_key { workspace_key(&a) } else { b };
            if a != b {
                proptest::prop_assert_ne!(workspace_key(&a), workspace_key(&b));
            }
        }
    }
}
