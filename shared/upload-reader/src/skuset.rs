//! A compact set of the SKUs seen in one file: 64-bit hashes in an open-addressing table,
//! 12 bytes a slot, so a million-row file needs about 24 MB instead of a `HashSet<String>`'s
//! ~100 MB. Two different SKUs sharing a 64-bit hash (odds ~ n²/2⁶⁵, about 3·10⁻⁸ for a
//! million SKUs) would make the second look like a duplicate; that risk is accepted.

/// What the set knows about a SKU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// First time this SKU appears in the file.
    New,
    /// Appeared before, but no earlier row with it was accepted.
    OnlyRejected,
    /// An earlier row with this SKU was accepted on this line.
    AcceptedOn(u32),
}

/// Slot layout: `[hash_lo, hash_hi, line]`; hash 0 marks an empty slot; line 0 means
/// "present, never accepted".
pub struct SkuSet {
    slots: Vec<[u32; 3]>,
    len: usize,
}

impl Default for SkuSet {
    fn default() -> Self {
        Self::with_capacity(1 << 12)
    }
}

impl SkuSet {
    pub fn with_capacity(n: usize) -> Self {
        let cap = (n * 4 / 3).next_power_of_two().max(16);
        Self {
            slots: vec![[0; 3]; cap],
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn hash(sku: &[u8]) -> u64 {
        hash_bytes(sku)
    }

    /// The key of a pair (a SKU in one marketplace); `hash_pair(a, b"") == hash(a)`.
    pub fn hash_pair(a: &[u8], b: &[u8]) -> u64 {
        if b.is_empty() {
            return hash_bytes(a);
        }
        let h =
            fmix(hash_bytes(a).rotate_left(17) ^ hash_bytes(b).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        h.max(1)
    }

    /// Whether a SKU appeared in the file at all (accepted or not).
    pub fn contains(&self, sku: &[u8]) -> bool {
        self.find(hash_bytes(sku)).is_ok()
    }

    /// Whether a pair ([`SkuSet::hash_pair`]) appeared in the file at all.
    pub fn contains_pair(&self, a: &[u8], b: &[u8]) -> bool {
        self.find(Self::hash_pair(a, b)).is_ok()
    }

    /// Records that a row with `sku` was seen on `line`; `accepted` says whether the row
    /// passed every other check. Returns what was known before.
    pub fn note(&mut self, sku: &[u8], line: u64, accepted: bool) -> Seen {
        self.note_hash(hash_bytes(sku), line, accepted)
    }

    /// Asks the CPU to start loading the slot for `h`: a million-SKU table does not fit in
    /// cache, and the reader issues this one row ahead so the miss overlaps other work.
    #[inline]
    pub fn prefetch(&self, h: u64) {
        #[cfg(target_arch = "x86_64")]
        {
            let i = (h >> 20) as usize & (self.slots.len() - 1);
            let p = self.slots[i..].as_ptr() as *const i8;
            // SAFETY: a prefetch is only a hint; it never faults, and `p` is in bounds anyway.
            unsafe { std::arch::x86_64::_mm_prefetch(p, std::arch::x86_64::_MM_HINT_T0) };
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = h;
    }

    /// [`note`](Self::note) for a key already hashed with [`SkuSet::hash`].
    pub fn note_hash(&mut self, h: u64, line: u64, accepted: bool) -> Seen {
        let line = if accepted {
            line.clamp(1, u32::MAX as u64) as u32
        } else {
            0
        };
        match self.find(h) {
            Ok(i) => {
                let before = self.slots[i][2];
                if before == 0 {
                    self.slots[i][2] = line;
                    Seen::OnlyRejected
                } else {
                    Seen::AcceptedOn(before)
                }
            }
            Err(i) => {
                self.slots[i] = [h as u32, (h >> 32) as u32, line];
                self.len += 1;
                if self.len * 4 > self.slots.len() * 3 {
                    self.grow();
                }
                Seen::New
            }
        }
    }

    /// `Ok(slot)` holding `h`, or `Err(empty slot)` where it would go.
    #[inline]
    fn find(&self, h: u64) -> Result<usize, usize> {
        let mask = self.slots.len() - 1;
        let (lo, hi) = (h as u32, (h >> 32) as u32);
        let mut i = (h >> 20) as usize & mask;
        loop {
            let s = self.slots[i];
            if s[0] == lo && s[1] == hi {
                return Ok(i);
            }
            if s[0] == 0 && s[1] == 0 {
                return Err(i);
            }
            i = (i + 1) & mask;
        }
    }

    fn grow(&mut self) {
        let bigger = vec![[0; 3]; self.slots.len() * 2];
        let old = std::mem::replace(&mut self.slots, bigger);
        for s in old {
            if s[0] != 0 || s[1] != 0 {
                let h = s[0] as u64 | (s[1] as u64) << 32;
                if let Err(i) = self.find(h) {
                    self.slots[i] = s;
                }
            }
        }
    }
}

/// Word-at-a-time hash: each 8-byte word goes through a 64×64→128-bit multiply folded back
/// to 64 bits (as in wyhash/foldhash), which spreads every input bit over the whole state;
/// then a final avalanche. Never returns 0 (the empty mark).
#[inline]
fn hash_bytes(b: &[u8]) -> u64 {
    const K1: u64 = 0x9E37_79B9_7F4A_7C15;
    const K2: u64 = 0xD6E8_FEB8_6659_FD93;
    #[inline]
    fn fold(a: u64, b: u64) -> u64 {
        let r = (a as u128) * (b as u128);
        (r as u64) ^ ((r >> 64) as u64)
    }
    let mut h = (b.len() as u64) ^ K2;
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes(c.try_into().expect("8 bytes"));
        h = fold(h ^ w, K1);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut buf = [0u8; 8];
        buf[..rest.len()].copy_from_slice(rest);
        h = fold(h ^ u64::from_le_bytes(buf), K1);
    }
    fmix(h ^ K2).max(1)
}

/// murmur3's 64-bit finaliser: every input bit reaches every output bit.
#[inline]
fn fmix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_accepted_row_wins_and_later_ones_are_duplicates() {
        let mut s = SkuSet::default();
        assert_eq!(s.note(b"A-1", 2, true), Seen::New);
        assert_eq!(s.note(b"A-1", 5, true), Seen::AcceptedOn(2));
        assert_eq!(s.note(b"a-1", 6, true), Seen::New, "case is preserved");
        assert!(s.contains(b"A-1") && !s.contains(b"B"));
    }

    #[test]
    fn a_rejected_row_does_not_block_a_later_good_one() {
        let mut s = SkuSet::default();
        assert_eq!(s.note(b"X", 2, false), Seen::New);
        assert_eq!(s.note(b"X", 3, true), Seen::OnlyRejected);
        assert_eq!(s.note(b"X", 4, true), Seen::AcceptedOn(3));
        assert!(s.contains(b"X"));
    }

    #[test]
    fn similar_skus_do_not_collide() {
        // Spreadsheet SKUs are numbered; a weak hash makes them collide in bulk.
        let mut seen = std::collections::HashSet::new();
        for i in 0..300_000u64 {
            for key in [
                format!("SKU-{i:08}"),
                format!("{i}"),
                format!("A-{i:05}-XL"),
            ] {
                assert!(
                    seen.insert(hash_bytes(key.as_bytes())),
                    "collision at {key}"
                );
            }
        }
    }

    #[test]
    fn grows_and_keeps_everything() {
        let mut s = SkuSet::with_capacity(4);
        for i in 0..200_000u64 {
            assert_eq!(
                s.note(format!("SKU-{i}").as_bytes(), i + 2, true),
                Seen::New
            );
        }
        assert_eq!(s.len(), 200_000);
        for i in (0..200_000u64).step_by(997) {
            assert_eq!(
                s.note(format!("SKU-{i}").as_bytes(), 1, true),
                Seen::AcceptedOn(i as u32 + 2)
            );
        }
    }
}
