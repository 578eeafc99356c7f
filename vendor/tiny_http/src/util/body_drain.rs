//! postmand patch 3: what happens to a request body the handler did not read.
//!
//! Upstream drains the unread rest of a `Content-Length` body when the request is dropped by
//! allocating a buffer of the announced size (tiny-http issue #252, PR #290): a client that
//! announces 10^15 bytes aborts the process. It also leaves an unread chunked body in the
//! socket, where it is then parsed as the next request. Here an unread body is discarded in
//! small chunks up to [`DRAIN_LIMIT`]; a longer one is not read at all and the connection is
//! closed instead, which is also what [`crate::Request::respond_and_close`] asks for. Draining
//! also stops after [`DRAIN_DEADLINE`], so a client that drips its body cannot hold the thread.
//!
//! A chunked body's framing is bounded too ([`FramingLimit`]): chunked_transfer reads a chunk's
//! size line and its extensions into a buffer that grows for as long as the client sends.

use std::io::{Error as IoError, ErrorKind, Read, Result as IoResult};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most bytes of an unread body discarded to keep a connection open.
pub(crate) const DRAIN_LIMIT: usize = 64 * 1024;

/// Longest time spent discarding an unread body (each read may also wait for the connection's
/// read timeout).
pub(crate) const DRAIN_DEADLINE: Duration = Duration::from_secs(1);

/// Longest chunk-size line (with extensions) of a chunked body.
pub(crate) const FRAMING_LINE_LIMIT: usize = 4096;

/// Set once a connection must not read another request.
#[derive(Clone, Default)]
pub(crate) struct CloseFlag(Arc<AtomicBool>);

impl CloseFlag {
    pub(crate) fn set(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub(crate) fn is_set(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// The connection's input: ends (reads 0 bytes) once its [`CloseFlag`] is set, so the
/// connection reads no further request and is closed.
pub(crate) struct CloseGate<R> {
    inner: R,
    flag: CloseFlag,
}

impl<R> CloseGate<R> {
    pub(crate) fn new(inner: R, flag: CloseFlag) -> CloseGate<R> {
        CloseGate { inner, flag }
    }
}

impl<R: Read> Read for CloseGate<R> {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        if self.flag.is_set() {
            return Ok(0);
        }
        self.inner.read(buf)
    }
}

/// A request body that, when dropped unread, discards at most [`DRAIN_LIMIT`] bytes of what
/// is left, or else closes the connection.
pub(crate) struct DrainOnDrop<R: Read> {
    inner: R,
    at_end: bool,
    flag: CloseFlag,
}

impl<R: Read> DrainOnDrop<R> {
    pub(crate) fn new(inner: R, flag: CloseFlag) -> DrainOnDrop<R> {
        DrainOnDrop {
            inner,
            at_end: false,
            flag,
        }
    }
}

impl<R: Read> Read for DrainOnDrop<R> {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        let read = self.inner.read(buf)?;
        if read == 0 && !buf.is_empty() {
            self.at_end = true;
        }
        Ok(read)
    }
}

impl<R: Read> Drop for DrainOnDrop<R> {
    fn drop(&mut self) {
        if self.at_end || self.flag.is_set() {
            return;
        }
        let mut chunk = [0u8; 8192];
        let mut budget = DRAIN_LIMIT;
        let started = Instant::now();
        while budget > 0 && started.elapsed() < DRAIN_DEADLINE {
            let want = budget.min(chunk.len());
            match self.inner.read(&mut chunk[..want]) {
                Ok(0) => return,
                Ok(read) => budget -= read,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        self.flag.set();
    }
}

/// The raw input under chunked_transfer's `Decoder`, which reads a chunk's size line and
/// extensions one byte per `read` until CR, keeping them all. A run of more than
/// [`FRAMING_LINE_LIMIT`] one-byte reads without a line feed is such a line gone on too long:
/// it fails as invalid data. (Chunk data is read with the caller's buffer; only a caller that
/// reads a body one byte at a time could meet the limit with a valid body, and only with more
/// than 4 KiB without a line feed.)
pub(crate) struct FramingLimit<R> {
    inner: R,
    line: usize,
}

impl<R> FramingLimit<R> {
    pub(crate) fn new(inner: R) -> FramingLimit<R> {
        FramingLimit { inner, line: 0 }
    }
}

impl<R: Read> Read for FramingLimit<R> {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        if buf.len() != 1 {
            self.line = 0;
            return self.inner.read(buf);
        }
        let read = self.inner.read(buf)?;
        if read == 1 {
            if buf[0] == b'\n' {
                self.line = 0;
            } else {
                self.line += 1;
                if self.line > FRAMING_LINE_LIMIT {
                    return Err(IoError::new(
                        ErrorKind::InvalidData,
                        "chunked body: chunk-size line too long",
                    ));
                }
            }
        }
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn a_short_unread_body_is_discarded_and_the_connection_stays_open() {
        let flag = CloseFlag::default();
        let mut source = Cursor::new(vec![7u8; 1000]);
        drop(DrainOnDrop::new(
            crate::util::EqualReader::new(&mut source, 1000).0,
            flag.clone(),
        ));
        assert_eq!(source.position(), 1000);
        assert!(!flag.is_set());
    }

    #[test]
    fn a_long_unread_body_is_left_and_the_connection_closes() {
        let flag = CloseFlag::default();
        let mut source = Cursor::new(vec![7u8; DRAIN_LIMIT * 2]);
        drop(DrainOnDrop::new(
            crate::util::EqualReader::new(&mut source, usize::MAX).0,
            flag.clone(),
        ));
        assert!(source.position() as usize <= DRAIN_LIMIT);
        assert!(flag.is_set());
        let mut gate = CloseGate::new(&mut source, flag);
        assert_eq!(gate.read(&mut [0u8; 16]).unwrap(), 0);
    }

    #[test]
    fn an_endless_chunk_size_line_fails_instead_of_growing() {
        let endless = std::io::repeat(b'1');
        let mut body = chunked_transfer::Decoder::new(FramingLimit::new(endless));
        let error = body.read(&mut [0u8; 64]).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidData);
    }

    #[test]
    fn valid_chunks_pass_the_framing_limit() {
        let wire = b"5;name=value\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
        let mut body = chunked_transfer::Decoder::new(FramingLimit::new(&wire[..]));
        let mut text = String::new();
        body.read_to_string(&mut text).unwrap();
        assert_eq!(text, "hello world");
    }
}
