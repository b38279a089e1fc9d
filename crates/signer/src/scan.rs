//! Byte classes: lookup tables built at compile time, and branch-free
//! scans written so that the compiler vectorizes them (the checks every link
//! passes through on the way in and out: path, user id, filename are folds
//! without early exit, over whole 16-byte blocks).

/// A 256-entry lookup table, built at compile time: `byte_table!(init, |b|
/// value)` is `init` everywhere, then `value` for each byte `b`.
macro_rules! byte_table {
    ($init:expr, |$b:ident| $value:expr) => {{
        let mut table = [$init; 256];
        let mut i = 0;
        while i < 256 {
            let $b = i as u8;
            table[i] = $value;
            i += 1;
        }
        table
    }};
}
pub(crate) use byte_table;

/// ORs `f(b)` over every byte of `bytes`, in whole 16-byte blocks so that
/// all of it vectorizes: a scalar loop over the remainder would cost as much
/// as the rest on a typical path. The remainder is covered by a last block
/// that overlaps the one before it (harmless for an OR); a string shorter
/// than a block is scanned byte by byte.
#[inline]
pub(crate) fn any_byte(bytes: &[u8], f: impl Fn(u8) -> u8) -> u8 {
    // One lane per position, ORed across blocks, then once across lanes.
    let mut lanes = [0u8; 16];
    // A function, not a closure, so that it can be forced inline.
    #[inline(always)]
    fn or_block(lanes: &mut [u8; 16], block: &[u8; 16], f: &impl Fn(u8) -> u8) {
        for (lane, &b) in lanes.iter_mut().zip(block) {
            *lane |= f(b);
        }
    }
    let mut rest = bytes;
    while let Some((block, tail)) = rest.split_first_chunk::<16>() {
        or_block(&mut lanes, block, &f);
        rest = tail;
    }
    match bytes.last_chunk::<16>() {
        Some(block) if !rest.is_empty() => or_block(&mut lanes, block, &f),
        Some(_) => {}
        None => return any_byte_short(bytes, f),
    }
    lanes.iter().fold(0, |any, &lane| any | lane)
}

/// [`any_byte`] for fewer than 16 bytes (a user id, most often): from 8
/// bytes on, the first 8 and the last 8, which overlap (harmless for an
/// OR), as two vector halves; a scalar loop below that.
#[inline]
fn any_byte_short(bytes: &[u8], f: impl Fn(u8) -> u8) -> u8 {
    let (Some(head), Some(tail)) = (bytes.first_chunk::<8>(), bytes.last_chunk::<8>()) else {
        return bytes.iter().fold(0, |any, &b| any | f(b));
    };
    let mut lanes = [0u8; 8];
    for ((lane, &h), &t) in lanes.iter_mut().zip(head).zip(tail) {
        *lane = f(h) | f(t);
    }
    lanes.iter().fold(0, |any, &lane| any | lane)
}

/// ORs `f(a, b)` over every pair of neighbours `(bytes[i], bytes[i + 1])`,
/// blockwise like [`any_byte`].
#[inline]
pub(crate) fn any_pair(bytes: &[u8], f: impl Fn(u8, u8) -> u8) -> u8 {
    let mut lanes = [0u8; 16];
    // A function, not a closure, so that it can be forced inline: left to
    // itself, the compiler may call it once per block.
    #[inline(always)]
    fn or_blocks(lanes: &mut [u8; 16], a: &[u8; 16], b: &[u8; 16], f: &impl Fn(u8, u8) -> u8) {
        for ((lane, &a), &b) in lanes.iter_mut().zip(a).zip(b) {
            *lane |= f(a, b);
        }
    }
    // The 16 pairs starting at `i`, if there are that many.
    let block_at = |i: usize| {
        let a = bytes.get(i..)?.first_chunk::<16>()?;
        let b = bytes.get(i + 1..)?.first_chunk::<16>()?;
        Some((a, b))
    };
    let pairs = bytes.len().saturating_sub(1);
    if pairs < 16 {
        // Fewer pairs than a block: a scalar loop beats copying into one.
        return bytes
            .iter()
            .zip(bytes.get(1..).unwrap_or_default())
            .fold(0, |any, (&a, &b)| any | f(a, b));
    }
    let mut i = 0;
    while let Some((a, b)) = block_at(i) {
        or_blocks(&mut lanes, a, b, &f);
        i += 16;
    }
    // The last block overlaps the pairs already seen: harmless for an OR.
    if let (true, Some((a, b))) = (i < pairs, block_at(pairs - 16)) {
        or_blocks(&mut lanes, a, b, &f);
    }
    lanes.iter().fold(0, |any, &lane| any | lane)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_pair_is_any_window(bytes in proptest::collection::vec(0u8..4, 0..70)) {
            let f = |a: u8, b: u8| u8::from(a == 1 && b == 2);
            let expected = bytes.windows(2).any(|w| f(w[0], w[1]) == 1);
            prop_assert_eq!(any_pair(&bytes, f) != 0, expected);
        }

        #[test]
        fn any_byte_is_any(bytes in proptest::collection::vec(any::<u8>(), 0..70), probe in any::<u8>()) {
            let hit = any_byte(&bytes, |b| u8::from(b == probe)) != 0;
            prop_assert_eq!(hit, bytes.contains(&probe));
        }
    }
}
