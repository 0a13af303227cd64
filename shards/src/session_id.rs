//! Session identifiers: 128 random bits that route back to their shard.
//!
//! A [`SessionId`] is 16 bytes drawn from the OS CSPRNG. It is printed and
//! parsed as 32 hex characters (the form that travels in the
//! `Mcp-Session-Id` header).
//!
//! [`SessionId::mint`] rejection-samples: it keeps drawing ids until
//! [`shard_for`]`(id.as_bytes(), shards)` names the minting shard. Any shard
//! (or any process using the same routing function) can then find the owner
//! of a session from the id alone, without a shared table. Rejection
//! sampling keeps the accepted ids uniformly distributed over the subset
//! that routes to the shard, so the id loses only `log2(shards)` bits of
//! unpredictability, never more.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

use crate::routing::shard_for;

/// Number of bytes in a session id.
const ID_LEN: usize = 16;

/// Candidate ids drawn per call to the OS random source while minting.
const CANDIDATES_PER_DRAW: usize = 16;

/// Attempts per shard before [`SessionId::mint`] gives up. With `n` shards
/// each candidate is accepted with probability `1/n`, so exhausting
/// `64 * n` candidates has probability about `e^-64`.
const ATTEMPTS_PER_SHARD: usize = 64;

/// An opaque 128-bit session identifier.
///
/// `Debug` and `Display` both render 32 lowercase hex characters; [`FromStr`]
/// accepts exactly 32 hex characters (either case).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId([u8; ID_LEN]);

/// Why [`SessionId::mint`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum MintError {
    /// The OS random number generator failed.
    #[error("OS random source failed: {0}")]
    Entropy(#[source] getrandom::Error),
    /// No candidate routed to the shard within the attempt budget.
    #[error("no id routing to shard {shard} of {shards} after {attempts} attempts")]
    Exhausted {
        /// The shard that asked for an id.
        shard: usize,
        /// Total number of shards.
        shards: usize,
        /// Candidates drawn before giving up.
        attempts: usize,
    },
    /// `shard` is not in `0..shards` (a programming error).
    #[error("shard {shard} out of range for {shards} shards")]
    InvalidShard {
        /// The shard that asked for an id.
        shard: usize,
        /// Total number of shards.
        shards: usize,
    },
}

/// Why a string is not a [`SessionId`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ParseSessionIdError {
    /// The string is not exactly 32 bytes long.
    #[error("session id must be 32 hex characters, got {len} bytes")]
    Length {
        /// Length of the rejected string, in bytes.
        len: usize,
    },
    /// A character is not an ASCII hex digit.
    #[error("session id has a non-hex character at byte {index}")]
    InvalidHex {
        /// Byte offset of the first offending character.
        index: usize,
    },
}

impl SessionId {
    /// Wraps 16 raw bytes.
    pub const fn from_bytes(bytes: [u8; ID_LEN]) -> Self {
        Self(bytes)
    }

    /// The raw bytes; this is what [`shard_for`] hashes.
    pub const fn as_bytes(&self) -> &[u8; ID_LEN] {
        &self.0
    }

    /// Mints a fresh id owned by `shard` of `shards`.
    ///
    /// Draws candidates from the OS CSPRNG (`getrandom::fill`) until one
    /// satisfies `shard_for(id.as_bytes(), shards) == shard`, trying at most
    /// `64 * shards` candidates.
    ///
    /// # Errors
    ///
    /// [`MintError::InvalidShard`] if `shard >= shards`,
    /// [`MintError::Entropy`] if the OS random source fails,
    /// [`MintError::Exhausted`] if no candidate routed to `shard` in time.
    pub fn mint(shard: usize, shards: usize) -> Result<SessionId, MintError> {
        if shard >= shards {
            return Err(MintError::InvalidShard { shard, shards });
        }
        let budget = ATTEMPTS_PER_SHARD.saturating_mul(shards);
        let mut pool = [0u8; ID_LEN * CANDIDATES_PER_DRAW];
        let mut attempts = 0usize;
        while attempts < budget {
            getrandom::fill(&mut pool).map_err(MintError::Entropy)?;
            for chunk in pool.chunks_exact(ID_LEN) {
                if attempts == budget {
                    break;
                }
                attempts += 1;
                let mut bytes = [0u8; ID_LEN];
                bytes.copy_from_slice(chunk);
                let id = SessionId(bytes);
                if shard_for(id.as_bytes(), shards) == shard {
                    // Do not leave unused candidates lying around on the stack
                    // longer than needed; they are as secret as the id.
                    pool.fill(0);
                    return Ok(id);
                }
            }
        }
        pool.fill(0);
        Err(MintError::Exhausted {
            shard,
            shards,
            attempts,
        })
    }

    /// The shard, of `shards`, that owns this id: `shard_for(self.as_bytes(),
    /// shards)`.
    pub fn shard(&self, shards: usize) -> usize {
        shard_for(self.as_bytes(), shards)
    }
}

/// Free-function form of [`SessionId::mint`].
///
/// # Errors
///
/// As [`SessionId::mint`].
pub fn mint(shard: usize, shards: usize) -> Result<SessionId, MintError> {
    SessionId::mint(shard, shards)
}

/// Lowercase hex digits, indexed by nibble.
const HEX: &[u8; 16] = b"0123456789abcdef";

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = [0u8; ID_LEN * 2];
        for (pair, byte) in out.chunks_exact_mut(2).zip(self.0) {
            pair[0] = HEX[usize::from(byte >> 4)];
            pair[1] = HEX[usize::from(byte & 0x0f)];
        }
        // Every byte written above comes from `HEX`, which is ASCII, so the
        // buffer is valid UTF-8; the fallback is unreachable.
        let text = std::str::from_utf8(&out).map_err(|_| fmt::Error)?;
        f.write_str(text)
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Value of one ASCII hex digit, either case.
fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl FromStr for SessionId {
    type Err = ParseSessionIdError;

    /// Parses exactly 32 ASCII hex characters (either case).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.as_bytes();
        if text.len() != ID_LEN * 2 {
            return Err(ParseSessionIdError::Length { len: text.len() });
        }
        let mut bytes = [0u8; ID_LEN];
        for (i, (byte, pair)) in bytes.iter_mut().zip(text.chunks_exact(2)).enumerate() {
            let hi = nibble(pair[0]).ok_or(ParseSessionIdError::InvalidHex { index: 2 * i })?;
            let lo = nibble(pair[1]).ok_or(ParseSessionIdError::InvalidHex { index: 2 * i + 1 })?;
            *byte = (hi << 4) | lo;
        }
        Ok(SessionId(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn minted_ids_route_back_to_their_shard() {
        for shards in 1..=8 {
            for shard in 0..shards {
                for _ in 0..20 {
                    let id = SessionId::mint(shard, shards).expect("mint");
                    assert_eq!(shard_for(id.as_bytes(), shards), shard);
                    assert_eq!(id.shard(shards), shard);
                }
            }
        }
    }

    #[test]
    fn minted_ids_are_distinct() {
        let ids: HashSet<SessionId> = (0..1_000).map(|_| mint(3, 8).expect("mint")).collect();
        assert_eq!(ids.len(), 1_000);
    }

    #[test]
    fn mint_works_for_many_shards() {
        let id = SessionId::mint(127, 128).expect("mint");
        assert_eq!(id.shard(128), 127);
    }

    #[test]
    fn mint_rejects_out_of_range_shard() {
        assert_eq!(
            SessionId::mint(4, 4),
            Err(MintError::InvalidShard {
                shard: 4,
                shards: 4
            })
        );
        assert_eq!(
            SessionId::mint(0, 0),
            Err(MintError::InvalidShard {
                shard: 0,
                shards: 0
            })
        );
    }

    #[test]
    fn display_is_32_lowercase_hex() {
        let id = SessionId::from_bytes([
            0x00, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0xff, 0x10, 0x20, 0x30, 0x40,
            0x50, 0xa0,
        ]);
        assert_eq!(id.to_string(), "000123456789abcdefff1020304050a0");
        assert_eq!(format!("{id:?}"), "000123456789abcdefff1020304050a0");
    }

    #[test]
    fn parse_display_round_trip() {
        for shards in 1..=4 {
            let id = SessionId::mint(0, shards).expect("mint");
            let text = id.to_string();
            assert_eq!(text.len(), 32);
            assert!(text
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
            assert_eq!(text.parse::<SessionId>(), Ok(id));
            assert_eq!(text.to_ascii_uppercase().parse::<SessionId>(), Ok(id));
        }
        let raw = [0xa5u8; 16];
        assert_eq!(SessionId::from_bytes(raw).as_bytes(), &raw);
    }

    #[test]
    fn bad_strings_are_rejected() {
        assert_eq!(
            "".parse::<SessionId>(),
            Err(ParseSessionIdError::Length { len: 0 })
        );
        assert_eq!(
            "0".repeat(31).parse::<SessionId>(),
            Err(ParseSessionIdError::Length { len: 31 })
        );
        assert_eq!(
            "0".repeat(33).parse::<SessionId>(),
            Err(ParseSessionIdError::Length { len: 33 })
        );
        let mut bad = "0".repeat(32);
        bad.replace_range(5..6, "g");
        assert_eq!(
            bad.parse::<SessionId>(),
            Err(ParseSessionIdError::InvalidHex { index: 5 })
        );
        let mut bad = "0".repeat(32);
        bad.replace_range(0..1, " ");
        assert_eq!(
            bad.parse::<SessionId>(),
            Err(ParseSessionIdError::InvalidHex { index: 0 })
        );
        // 32 bytes but multi-byte UTF-8: rejected as non-hex, no panic.
        let bad = format!("{}é", "0".repeat(30));
        assert_eq!(bad.len(), 32);
        assert_eq!(
            bad.parse::<SessionId>(),
            Err(ParseSessionIdError::InvalidHex { index: 30 })
        );
        assert!("0x000000000000000000000000000000"
            .parse::<SessionId>()
            .is_err());
    }

    #[test]
    fn errors_display() {
        let e = MintError::Exhausted {
            shard: 1,
            shards: 2,
            attempts: 128,
        };
        assert!(e.to_string().contains("128"));
        assert!(ParseSessionIdError::Length { len: 3 }
            .to_string()
            .contains('3'));
    }
}
