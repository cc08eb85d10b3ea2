//! SHA-256 of many short messages, four at a time.
//!
//! A span digest hashes ≈ 400 bytes (`leaf::span_digest`), and one message's SHA-256 is a chain:
//! each round waits for the one before, so the CPU's SHA unit idles between them. Four messages'
//! rounds interleaved keep it busy: on the AMD EPYC host a 411-byte message took 145–168 ns four
//! at a time against 255–291 ns alone through `sha2` (which uses the same SHA extensions; aws-lc's
//! SHA-256 measured the same), 208–215 two at a time; six and eight were no faster than four (148,
//! 153: the SHA instructions reach only the first sixteen vector registers, so more lanes spill).
//! The span digests are the larger part of what the audit log adds to ingest (docs/benchmarks.md,
//! Audit trail). Linux interleaves dm-verity's hashes the same way (`sha256_finup_2x`).
//!
//! Where the CPU has no SHA extensions (or is not x86-64), `sha2` hashes each message alone: the
//! digests are SHA-256 either way, checked against `sha2` for every length and mix of lengths in
//! the tests below.

use sha2::{Digest, Sha256};

/// Calls `each` with the SHA-256 of every message in turn, in order; a message is the
/// concatenation of its parts.
pub fn each<'a, M>(messages: impl IntoIterator<Item = M>, each: impl FnMut([u8; 32]))
where
    M: AsRef<[&'a [u8]]>,
{
    #[cfg(target_arch = "x86_64")]
    return shani::each(messages, each);
    #[cfg(not(target_arch = "x86_64"))]
    one_by_one(messages, each);
}

/// `sha2`, one message after another.
fn one_by_one<'a, M>(messages: impl IntoIterator<Item = M>, mut each: impl FnMut([u8; 32]))
where
    M: AsRef<[&'a [u8]]>,
{
    for m in messages {
        let mut h = Sha256::new();
        for part in m.as_ref() {
            h.update(part);
        }
        each(h.finalize().into());
    }
}

/// The SHA-extension code. Its functions are `unsafe fn`s with `target_feature` because the
/// workspace's Rust (1.85) has neither safe target-feature functions nor safe intrinsics; each is
/// unsafe only in needing the CPU features, which [`shani::each`] checks with
/// [`shani::available`] before it calls them.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code, unsafe_op_in_unsafe_fn, clippy::cast_possible_wrap, clippy::cast_sign_loss)]
mod shani {
    use std::arch::x86_64::{
        _mm_add_epi32, _mm_alignr_epi8, _mm_extract_epi32, _mm_set_epi32, _mm_setzero_si128, _mm_sha256msg1_epu32,
        _mm_sha256msg2_epu32, _mm_sha256rnds2_epu32, _mm_shuffle_epi32,
    };

    /// Messages hashed together.
    const LANES: usize = 4;

    type Block = [u8; 64];

    /// FIPS 180-4's initial hash value.
    const H0: [u32; 8] =
        [0x6a09_e667, 0xbb67_ae85, 0x3c6e_f372, 0xa54f_f53a, 0x510e_527f, 0x9b05_688c, 0x1f83_d9ab, 0x5be0_cd19];

    /// FIPS 180-4's round constants.
    #[rustfmt::skip]
    const K: [u32; 64] = [
        0x428a_2f98, 0x7137_4491, 0xb5c0_fbcf, 0xe9b5_dba5, 0x3956_c25b, 0x59f1_11f1, 0x923f_82a4, 0xab1c_5ed5,
        0xd807_aa98, 0x1283_5b01, 0x2431_85be, 0x550c_7dc3, 0x72be_5d74, 0x80de_b1fe, 0x9bdc_06a7, 0xc19b_f174,
        0xe49b_69c1, 0xefbe_4786, 0x0fc1_9dc6, 0x240c_a1cc, 0x2de9_2c6f, 0x4a74_84aa, 0x5cb0_a9dc, 0x76f9_88da,
        0x983e_5152, 0xa831_c66d, 0xb003_27c8, 0xbf59_7fc7, 0xc6e0_0bf3, 0xd5a7_9147, 0x06ca_6351, 0x1429_2967,
        0x27b7_0a85, 0x2e1b_2138, 0x4d2c_6dfc, 0x5338_0d13, 0x650a_7354, 0x766a_0abb, 0x81c2_c92e, 0x9272_2c85,
        0xa2bf_e8a1, 0xa81a_664b, 0xc24b_8b70, 0xc76c_51a3, 0xd192_e819, 0xd699_0624, 0xf40e_3585, 0x106a_a070,
        0x19a4_c116, 0x1e37_6c08, 0x2748_774c, 0x34b0_bcb5, 0x391c_0cb3, 0x4ed8_aa4a, 0x5b9c_ca4f, 0x682e_6ff3,
        0x748f_82ee, 0x78a5_636f, 0x84c8_7814, 0x8cc7_0208, 0x90be_fffa, 0xa450_6ceb, 0xbef9_a3f7, 0xc671_78f2,
    ];

    /// Whether this CPU has the instructions [`compress`] uses (std caches the answer).
    pub(super) fn available() -> bool {
        std::arch::is_x86_feature_detected!("sha")
            && std::arch::is_x86_feature_detected!("sse4.1")
            && std::arch::is_x86_feature_detected!("ssse3")
    }

    /// [`super::each`]: four at a time where the CPU has the instructions, else one by one.
    pub(super) fn each<'a, M>(messages: impl IntoIterator<Item = M>, mut each: impl FnMut([u8; 32]))
    where
        M: AsRef<[&'a [u8]]>,
    {
        if !available() {
            return super::one_by_one(messages, each);
        }
        let mut lanes: [Vec<Block>; LANES] = Default::default();
        let mut filled = 0;
        for m in messages {
            pad(m.as_ref(), &mut lanes[filled]);
            filled += 1;
            if filled == LANES {
                // SAFETY: `available()` said the CPU has every feature `hash` enables (above).
                let digests = unsafe { hash(&lanes) };
                digests.into_iter().for_each(&mut each);
                filled = 0;
            }
        }
        for lane in &lanes[..filled] {
            // SAFETY: as above.
            each(unsafe { hash_one(lane) });
        }
    }

    /// Writes the message of `parts`, padded (FIPS 180-4 § 5.1.1), into `out` as whole blocks.
    fn pad(parts: &[&[u8]], out: &mut Vec<Block>) {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        out.clear();
        out.resize((len + 9).div_ceil(64), [0; 64]);
        let bytes = out.as_flattened_mut();
        let mut at = 0;
        for p in parts {
            bytes[at..at + p.len()].copy_from_slice(p);
            at += p.len();
        }
        bytes[at] = 0x80;
        let end = bytes.len();
        bytes[end - 8..].copy_from_slice(&((len as u64) * 8).to_be_bytes());
    }

    /// The digests of four padded messages: their common blocks interleaved, the longer ones'
    /// remaining blocks each alone.
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    unsafe fn hash(lanes: &[Vec<Block>; LANES]) -> [[u8; 32]; LANES] {
        let common = lanes.iter().map(Vec::len).min().unwrap_or(0);
        let mut heads: [&[Block]; LANES] = [&[]; LANES];
        for (head, lane) in heads.iter_mut().zip(lanes) {
            *head = &lane[..common];
        }
        let mut states = [H0; LANES];
        compress(&mut states, heads);
        let mut out = [[0; 32]; LANES];
        for ((o, state), lane) in out.iter_mut().zip(states).zip(lanes) {
            let mut state = [state];
            compress(&mut state, [&lane[common..]]);
            *o = digest_bytes(&state[0]);
        }
        out
    }

    /// The digest of one padded message.
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    unsafe fn hash_one(blocks: &[Block]) -> [u8; 32] {
        let mut state = [H0];
        compress(&mut state, [blocks]);
        digest_bytes(&state[0])
    }

    fn digest_bytes(state: &[u32; 8]) -> [u8; 32] {
        let mut out = [0; 32];
        for (o, w) in out.chunks_exact_mut(4).zip(state) {
            o.copy_from_slice(&w.to_be_bytes());
        }
        out
    }

    /// Message words `4q..4q + 4` of a block, first word in the lowest lane.
    macro_rules! words {
        ($block:expr, $q:expr) => {{
            let q = &$block[16 * $q..16 * $q + 16];
            let be = |j: usize| u32::from_be_bytes([q[4 * j], q[4 * j + 1], q[4 * j + 2], q[4 * j + 3]]) as i32;
            _mm_set_epi32(be(3), be(2), be(1), be(0))
        }};
    }

    /// Rounds `4r..4r + 4` of one state with schedule words `w`.
    macro_rules! rounds4 {
        ($abef:expr, $cdgh:expr, $w:expr, $r:expr) => {{
            let k = &K[4 * $r..4 * $r + 4];
            let wk = _mm_add_epi32($w, _mm_set_epi32(k[3] as i32, k[2] as i32, k[1] as i32, k[0] as i32));
            $cdgh = _mm_sha256rnds2_epu32($cdgh, $abef, wk);
            $abef = _mm_sha256rnds2_epu32($abef, $cdgh, _mm_shuffle_epi32(wk, 0x0E));
        }};
    }

    /// Runs `N` states over as many blocks each (every slice as long as the first), round by round
    /// in turn. The rounds are Intel's SHA-extension sequence: the state in two registers (ABEF and
    /// CDGH), four rounds per message-schedule step. No closures and no helper calls in the loop:
    /// a version whose helpers were functions and `array::from_fn` closures ran 30 % slower in one
    /// build than in another, as the compiler's inlining went (168 against 217 ns a span digest).
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    unsafe fn compress<const N: usize>(states: &mut [[u32; 8]; N], blocks: [&[Block]; N]) {
        let mut abef = [_mm_setzero_si128(); N];
        let mut cdgh = [_mm_setzero_si128(); N];
        for l in 0..N {
            // Lanes low to high: F E B A and H G D C.
            let s = &states[l];
            abef[l] = _mm_set_epi32(s[0] as i32, s[1] as i32, s[4] as i32, s[5] as i32);
            cdgh[l] = _mm_set_epi32(s[2] as i32, s[3] as i32, s[6] as i32, s[7] as i32);
        }
        let mut w = [[_mm_setzero_si128(); 4]; N];
        #[allow(clippy::needless_range_loop)] // `b` indexes the N slices in step.
        for b in 0..blocks[0].len() {
            let (abef0, cdgh0) = (abef, cdgh);
            for l in 0..N {
                let block = &blocks[l][b];
                w[l] = [words!(block, 0), words!(block, 1), words!(block, 2), words!(block, 3)];
            }
            for r in 0..16 {
                for l in 0..N {
                    if r >= 4 {
                        // The next four schedule words from the sixteen before them.
                        let [w0, w1, w2, w3] = [w[l][r % 4], w[l][(r + 1) % 4], w[l][(r + 2) % 4], w[l][(r + 3) % 4]];
                        let t = _mm_add_epi32(_mm_sha256msg1_epu32(w0, w1), _mm_alignr_epi8(w3, w2, 4));
                        w[l][r % 4] = _mm_sha256msg2_epu32(t, w3);
                    }
                    rounds4!(abef[l], cdgh[l], w[l][r % 4], r);
                }
            }
            for l in 0..N {
                abef[l] = _mm_add_epi32(abef[l], abef0[l]);
                cdgh[l] = _mm_add_epi32(cdgh[l], cdgh0[l]);
            }
        }
        for l in 0..N {
            let (x, y) = (abef[l], cdgh[l]);
            states[l] = [
                _mm_extract_epi32(x, 3) as u32,
                _mm_extract_epi32(x, 2) as u32,
                _mm_extract_epi32(y, 3) as u32,
                _mm_extract_epi32(y, 2) as u32,
                _mm_extract_epi32(x, 1) as u32,
                _mm_extract_epi32(x, 0) as u32,
                _mm_extract_epi32(y, 1) as u32,
                _mm_extract_epi32(y, 0) as u32,
            ];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic message of `len` bytes, different per `seed`.
    fn message(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
    }

    fn expected(parts: &[&[u8]]) -> [u8; 32] {
        let mut h = Sha256::new();
        for p in parts {
            h.update(p);
        }
        h.finalize().into()
    }

    fn check(messages: &[Vec<Vec<u8>>]) {
        let parts: Vec<Vec<&[u8]>> = messages.iter().map(|m| m.iter().map(Vec::as_slice).collect()).collect();
        let want: Vec<[u8; 32]> = parts.iter().map(|p| expected(p)).collect();
        let mut got = Vec::new();
        each(&parts, |d| got.push(d));
        assert_eq!(
            got,
            want,
            "lengths {:?}",
            parts.iter().map(|p| p.iter().map(|x| x.len()).collect::<Vec<_>>()).collect::<Vec<_>>()
        );
        let mut alone = Vec::new();
        one_by_one(&parts, |d| alone.push(d));
        assert_eq!(alone, want);
    }

    #[test]
    fn matches_sha2_for_every_length_around_the_block_edges() {
        // Every length from empty to three blocks, four at a time with equal lengths, and also as
        // messages of two parts split anywhere.
        for len in 0..200 {
            check(&(0..4).map(|s| vec![message(len, s)]).collect::<Vec<_>>());
            let m = message(len, 9);
            let (a, b) = m.split_at(len / 3);
            check(&std::array::from_fn::<_, 5, _>(|_| vec![a.to_vec(), b.to_vec()]));
        }
    }

    #[test]
    fn matches_sha2_with_lanes_of_unequal_length_and_a_remainder() {
        // Lanes that end at different blocks (0 to 7 blocks), and counts that leave 1 to 3 messages
        // over for the one-at-a-time tail.
        let lens = [0, 55, 56, 63, 64, 119, 120, 411, 1000, 3, 447, 448, 129];
        for count in 1..=lens.len() {
            for rotate in 0..lens.len() {
                let messages: Vec<Vec<Vec<u8>>> = (0..count)
                    .map(|i| vec![b"tracex span v1\0".to_vec(), message(lens[(i + rotate) % lens.len()], i as u8)])
                    .collect();
                check(&messages);
            }
        }
    }

    #[test]
    fn the_published_vectors() {
        // FIPS 180-2's examples, "abc" and the 448-bit message, with the empty string.
        let vectors: [(&[u8], &str); 3] = [
            (b"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
            (b"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
            (
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
                "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
            ),
        ];
        let mut got = Vec::new();
        each(vectors.iter().map(|(m, _)| [*m]), |d| got.push(hex::encode(d)));
        assert_eq!(got, vectors.iter().map(|(_, h)| (*h).to_owned()).collect::<Vec<_>>());
    }
}
