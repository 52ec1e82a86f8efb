//! mysql_native_password: the per-connection scramble and the check of a client's answer
//! against a stored SHA1(SHA1(password)).
//!
//! Contract: pure functions; comparisons take the same time whatever bytes differ.

use rand::Rng;
use sha1::{Digest, Sha1};

pub const NATIVE_PLUGIN: &str = "mysql_native_password";

/// A fresh 20-byte scramble of printable ASCII without NUL, as MySQL servers generate it.
pub fn new_scramble() -> [u8; 20] {
    let mut rng = rand::rng();
    let mut out = [0u8; 20];
    for b in out.iter_mut() {
        *b = rng.random_range(0x21u8..=0x7e);
    }
    out
}

/// True when `token` (the client's auth response) proves knowledge of the password whose
/// SHA1(SHA1()) is `stage2` (`None` = empty password, which expects an empty token).
pub fn verify_native(scramble: &[u8; 20], stage2: Option<&[u8; 20]>, token: &[u8]) -> bool {
    let Some(stage2) = stage2 else {
        return token.is_empty();
    };
    if token.len() != 20 {
        return false;
    }
    // token = SHA1(pw) XOR SHA1(scramble + stage2); recover SHA1(pw) and hash it again.
    let mut h = Sha1::new();
    h.update(scramble);
    h.update(stage2);
    let mask = h.finalize();
    let mut stage1 = [0u8; 20];
    for i in 0..20 {
        stage1[i] = token[i] ^ mask[i];
    }
    let candidate = Sha1::digest(stage1);
    let mut diff = 0u8;
    for i in 0..20 {
        diff |= candidate[i] ^ stage2[i];
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql_common::scramble::scramble_native;

    fn stage2(pw: &str) -> [u8; 20] {
        Sha1::digest(Sha1::digest(pw.as_bytes())).into()
    }

    #[test]
    fn accepts_right_and_refuses_wrong_password() {
        let s = new_scramble();
        let token = scramble_native(&s, b"secret").unwrap();
        assert!(verify_native(&s, Some(&stage2("secret")), &token));
        assert!(!verify_native(&s, Some(&stage2("other")), &token));
        assert!(!verify_native(&s, Some(&stage2("secret")), &token[..19]));
        assert!(!verify_native(&s, Some(&stage2("secret")), b""));
    }

    #[test]
    fn empty_password() {
        let s = new_scramble();
        assert!(verify_native(&s, None, b""));
        assert!(!verify_native(&s, None, &[1; 20]));
    }

    #[test]
    fn scramble_has_no_nul() {
        assert!(new_scramble().iter().all(|b| *b != 0));
    }
}
