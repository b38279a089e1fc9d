//! Branch-free scans over bytes, written so that the compiler vectorizes
//! them: the checks every link passes through on the way in and out (path,
//! user id, filename) are folds without early exit, over whole 16-byte
//! blocks.

/// ORs `f(b)` over every byte of `bytes`. Runs in whole 16-byte blocks, the
/// last one padded with `pad` (for which `f` must return 0), so that all of
/// it vectorizes: a scalar loop over the remainder would cost as much as the
/// rest on a typical path.
#[inline]
pub(crate) fn any_byte(bytes: &[u8], pad: u8, f: impl Fn(u8) -> u8) -> u8 {
    // One lane per position, ORed across blocks, then once across lanes.
    let mut lanes = [0u8; 16];
    let mut or_block = |block: &[u8]| {
        for (lane, &b) in lanes.iter_mut().zip(block) {
            *lane |= f(b);
        }
    };
    let mut blocks = bytes.chunks_exact(16);
    blocks.by_ref().for_each(&mut or_block);
    let rest = blocks.remainder();
    let mut last = [pad; 16];
    last[..rest.len()].copy_from_slice(rest);
    or_block(&last);
    lanes.iter().fold(0, |any, &lane| any | lane)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_byte_is_any(bytes in proptest::collection::vec(any::<u8>(), 0..70), probe in any::<u8>()) {
            let hit = any_byte(&bytes, probe.wrapping_add(1), |b| u8::from(b == probe)) != 0;
            prop_assert_eq!(hit, bytes.contains(&probe));
        }
    }
}
