//! The properties the fuzz targets in `tests/fuzz/` check, one function per target. The targets call
//! them from libFuzzer; `tests/fuzz_corpus.rs` calls them on every file of the kept corpus, so
//! the corpus is replayed on the stable toolchain and the two can never check different things.
//!
//! Each function takes the fuzzer's raw bytes and panics when a property fails. An input the
//! code under test refuses is fine; a panic, a stack overflow or an answer that depends on how
//! the input was split into reads is a finding.

pub mod condition;
pub mod config;
pub mod frame;
pub mod http;
pub mod json;

/// Read sizes taken from the front of a fuzz input, so the fuzzer chooses how a stream is split
/// into reads. The first byte is a count `n` (modulo 16), the next `n` bytes are read sizes of
/// `byte + 1`, used in turn and then again from the first. With `n = 0` the stream arrives in
/// one read.
#[derive(Clone, Debug)]
pub struct Reads<'a> {
    sizes: &'a [u8],
    next: usize,
}

impl<'a> Reads<'a> {
    /// Splits `data` into the read sizes and the stream they cut.
    pub fn split(data: &'a [u8]) -> (Reads<'a>, &'a [u8]) {
        let Some((&n, rest)) = data.split_first() else {
            return (
                Reads {
                    sizes: &[],
                    next: 0,
                },
                data,
            );
        };
        let n = usize::from(n % 16).min(rest.len());
        let (sizes, stream) = rest.split_at(n);
        (Reads { sizes, next: 0 }, stream)
    }

    /// The size of the next read.
    pub fn next_len(&mut self) -> usize {
        if self.sizes.is_empty() {
            return usize::MAX;
        }
        let size = usize::from(self.sizes[self.next % self.sizes.len()]) + 1;
        self.next += 1;
        size
    }
}
