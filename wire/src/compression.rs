//! The compressors of OP_COMPRESSED: noop, snappy, zlib and zstd.
//!
//! Decompression is where a tiny message can ask for a huge allocation, so every decompressor
//! here is told the exact output size the message declared (already checked against the message
//! size limit), writes at most one byte more than that, and fails if the output differs.

use std::fmt;
use std::io::Read;

use crate::error::WireError;

/// A compressor negotiated in the handshake (`compression` in `hello`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compressor {
    /// Id 0: the payload is stored as is.
    Noop,
    /// Id 1: Snappy raw format.
    Snappy,
    /// Id 2: zlib (RFC 1950).
    Zlib,
    /// Id 3: Zstandard.
    Zstd,
}

/// zlib level drivers use when none is configured.
const ZLIB_DEFAULT_LEVEL: u32 = 6;
/// zstd level drivers use when none is configured.
const ZSTD_DEFAULT_LEVEL: i32 = 3;
/// Snappy never expands more than this: its densest element, a 3-byte copy, yields 64 bytes.
const SNAPPY_MAX_RATIO: usize = 22;

impl Compressor {
    /// Every compressor tenantgate can speak, in its order of preference.
    pub const ALL: [Compressor; 3] = [Compressor::Zstd, Compressor::Snappy, Compressor::Zlib];

    /// The id carried in OP_COMPRESSED.
    pub const fn id(self) -> u8 {
        match self {
            Compressor::Noop => 0,
            Compressor::Snappy => 1,
            Compressor::Zlib => 2,
            Compressor::Zstd => 3,
        }
    }

    /// The compressor with this id.
    pub fn from_id(id: u8) -> Result<Self, WireError> {
        match id {
            0 => Ok(Compressor::Noop),
            1 => Ok(Compressor::Snappy),
            2 => Ok(Compressor::Zlib),
            3 => Ok(Compressor::Zstd),
            other => Err(WireError::UnknownCompressor(other)),
        }
    }

    /// The name used in the handshake's `compression` array and in connection strings.
    pub const fn name(self) -> &'static str {
        match self {
            Compressor::Noop => "noop",
            Compressor::Snappy => "snappy",
            Compressor::Zlib => "zlib",
            Compressor::Zstd => "zstd",
        }
    }

    /// The compressor with this handshake name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "noop" => Some(Compressor::Noop),
            "snappy" => Some(Compressor::Snappy),
            "zlib" => Some(Compressor::Zlib),
            "zstd" => Some(Compressor::Zstd),
            _ => None,
        }
    }

    /// Compresses `data` with the driver-default level.
    pub fn compress(self, data: &[u8]) -> Result<Vec<u8>, WireError> {
        let err = |e: &dyn fmt::Display| WireError::Compression {
            compressor: self,
            reason: e.to_string(),
        };
        match self {
            Compressor::Noop => Ok(data.to_vec()),
            Compressor::Snappy => snap::raw::Encoder::new()
                .compress_vec(data)
                .map_err(|e| err(&e)),
            Compressor::Zlib => {
                use std::io::Write;
                let mut enc = flate2::write::ZlibEncoder::new(
                    Vec::with_capacity(data.len() / 2 + 64),
                    flate2::Compression::new(ZLIB_DEFAULT_LEVEL),
                );
                enc.write_all(data).map_err(|e| err(&e))?;
                enc.finish().map_err(|e| err(&e))
            }
            Compressor::Zstd => zstd::bulk::compress(data, ZSTD_DEFAULT_LEVEL).map_err(|e| err(&e)),
        }
    }

    /// Decompresses `input`, which must expand to exactly `size` bytes, appending them to `out`.
    /// `size` has already been checked against the message size limit by the caller.
    pub(crate) fn decompress_into(
        self,
        input: &[u8],
        size: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), WireError> {
        let err = |reason: String| WireError::Decompression {
            compressor: self,
            reason,
        };
        let start = out.len();
        match self {
            Compressor::Noop => out.extend_from_slice(input),
            Compressor::Snappy => {
                if size
                    > input
                        .len()
                        .saturating_mul(SNAPPY_MAX_RATIO)
                        .saturating_add(64)
                {
                    return Err(WireError::InvalidUncompressedSize {
                        declared: size as i64,
                        reason: "larger than snappy can expand the compressed bytes",
                    });
                }
                let declared = snap::raw::decompress_len(input).map_err(|e| err(e.to_string()))?;
                if declared != size {
                    return Err(err(format!(
                        "stream declares {declared} bytes, message declares {size}"
                    )));
                }
                out.resize(start + size, 0);
                let n = snap::raw::Decoder::new()
                    .decompress(input, &mut out[start..])
                    .map_err(|e| err(e.to_string()))?;
                out.truncate(start + n);
            }
            Compressor::Zlib => {
                let limit = size as u64 + 1;
                flate2::read::ZlibDecoder::new(input)
                    .take(limit)
                    .read_to_end(out)
                    .map_err(|e| err(e.to_string()))?;
            }
            Compressor::Zstd => {
                let limit = size as u64 + 1;
                let decoder = zstd::stream::read::Decoder::with_buffer(input)
                    .map_err(|e| err(e.to_string()))?;
                decoder
                    .take(limit)
                    .read_to_end(out)
                    .map_err(|e| err(e.to_string()))?;
            }
        }
        let produced = out.len() - start;
        if produced != size {
            return Err(err(format!(
                "produced {produced} bytes, message declares {size}"
            )));
        }
        Ok(())
    }
}

impl fmt::Display for Compressor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_compressor_round_trips() {
        let data: Vec<u8> = (0..10_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for c in [
            Compressor::Noop,
            Compressor::Snappy,
            Compressor::Zlib,
            Compressor::Zstd,
        ] {
            let packed = c.compress(&data).expect("compresses");
            let mut out = Vec::new();
            c.decompress_into(&packed, data.len(), &mut out)
                .expect("decompresses");
            assert_eq!(out, data, "{c}");
            assert_eq!(Compressor::from_id(c.id()), Ok(c));
            assert_eq!(Compressor::from_name(c.name()), Some(c));
        }
    }

    #[test]
    fn output_longer_or_shorter_than_declared_is_refused() {
        let data = vec![7u8; 100_000];
        for c in [Compressor::Snappy, Compressor::Zlib, Compressor::Zstd] {
            let packed = c.compress(&data).expect("compresses");
            let mut out = Vec::new();
            assert!(
                c.decompress_into(&packed, 1_000, &mut out).is_err(),
                "{c} short"
            );
            out.clear();
            assert!(
                c.decompress_into(&packed, 200_000, &mut out).is_err(),
                "{c} long"
            );
            // never wrote more than one byte past the declared size
            assert!(out.len() <= 200_001);
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let junk = [0xffu8; 64];
        for c in [Compressor::Snappy, Compressor::Zlib, Compressor::Zstd] {
            let mut out = Vec::new();
            assert!(c.decompress_into(&junk, 1_000, &mut out).is_err(), "{c}");
        }
        assert_eq!(Compressor::from_id(9), Err(WireError::UnknownCompressor(9)));
    }
}
