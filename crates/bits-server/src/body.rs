//! Response bodies, in particular the streaming file body.
//!
//! [`FileBody`] sends a byte range of an open file in [`CHUNK_SIZE`] pieces.
//! Each piece is read with `pread` on tokio's blocking pool straight into a
//! buffer that hyper then writes to the socket without copying; when hyper is
//! done with it the buffer goes back to a shared [`BufferPool`], so a
//! long transfer allocates no new buffers in steady state. While hyper writes
//! one chunk the next one is already being read (one chunk of read-ahead),
//! which keeps disk and socket busy at the same time.
//!
//! Memory use per response is bounded by a few chunks regardless of the file
//! size, because hyper only asks for the next chunk once it has room for it.

use std::fs::File;
use std::future::Future;
use std::io;
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::task::JoinHandle;

/// Size of one read from disk, and of one body frame handed to hyper. Large
/// enough that per-chunk overhead (a blocking-pool round trip) is negligible
/// next to copying the data, small enough to keep memory use modest.
pub(crate) const CHUNK_SIZE: usize = 256 * 1024;

/// Reads shorter than this get an exactly sized, unpooled buffer: pooled
/// buffers are always [`CHUNK_SIZE`] long, which would be wasteful to zero
/// for a tiny file when the pool happens to be empty.
const SMALL_READ: usize = 16 * 1024;

/// At most this many idle buffers are kept (8 MiB); beyond that returned
/// buffers are freed, so a burst of parallel downloads does not pin memory.
const MAX_POOLED: usize = 32;

/// A free list of [`CHUNK_SIZE`] byte buffers shared by all responses.
#[derive(Debug, Default)]
pub(crate) struct BufferPool {
    free: Mutex<Vec<Vec<u8>>>,
}

impl BufferPool {
    /// A buffer of exactly [`CHUNK_SIZE`] bytes (contents unspecified).
    fn take(&self) -> Vec<u8> {
        let recycled = self
            .free
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .pop();
        recycled.unwrap_or_else(|| vec![0; CHUNK_SIZE])
    }

    /// Returns a buffer for reuse, or frees it if the pool is full.
    fn give_back(&self, buf: Vec<u8>) {
        let mut free = self
            .free
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if free.len() < MAX_POOLED {
            free.push(buf);
        }
    }
}

/// The owner behind a pooled [`Bytes`] chunk: exposes the filled prefix and
/// returns the buffer to the pool once the last reference is dropped.
struct PooledChunk {
    buf: Vec<u8>,
    len: usize,
    pool: Arc<BufferPool>,
}

impl AsRef<[u8]> for PooledChunk {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for PooledChunk {
    fn drop(&mut self) {
        self.pool.give_back(std::mem::take(&mut self.buf));
    }
}

/// Fills `buf` from `file` at `offset`, retrying short reads. Reaching end of
/// file early means the file shrank after its size was sent in the headers;
/// that is an error so the connection is aborted rather than the client
/// silently receiving a short body.
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file shrank while it was being sent",
                ))
            }
            Ok(n) => filled += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

/// Reads `len` bytes at `offset` into a fresh or pooled buffer. Runs on the
/// blocking pool.
fn read_chunk(file: &File, offset: u64, len: usize, pool: Arc<BufferPool>) -> io::Result<Bytes> {
    if len < SMALL_READ {
        let mut buf = vec![0; len];
        read_exact_at(file, &mut buf, offset)?;
        return Ok(Bytes::from(buf));
    }
    let mut chunk = PooledChunk {
        buf: pool.take(),
        len,
        pool,
    };
    read_exact_at(file, &mut chunk.buf[..len], offset)?;
    Ok(Bytes::from_owner(chunk))
}

/// Streams bytes `[offset, end)` of a file.
#[derive(Debug)]
pub(crate) struct FileBody {
    file: Arc<File>,
    pool: Arc<BufferPool>,
    /// Where the next read starts.
    next_offset: u64,
    /// One past the last byte to send.
    end: u64,
    /// Bytes not yet handed to hyper (including the read in flight).
    unsent: u64,
    /// The read in flight, if any.
    pending: Option<JoinHandle<io::Result<Bytes>>>,
}

impl FileBody {
    /// A body sending `len` bytes of `file` starting at `offset`.
    pub(crate) fn new(file: File, offset: u64, len: u64, pool: Arc<BufferPool>) -> Self {
        Self {
            file: Arc::new(file),
            pool,
            next_offset: offset,
            end: offset.saturating_add(len),
            unsent: len,
            pending: None,
        }
    }

    /// Starts reading the next chunk on the blocking pool.
    fn start_read(&mut self) {
        let len = (self.end - self.next_offset).min(CHUNK_SIZE as u64) as usize;
        let file = Arc::clone(&self.file);
        let pool = Arc::clone(&self.pool);
        let offset = self.next_offset;
        self.next_offset += len as u64;
        self.pending = Some(tokio::task::spawn_blocking(move || {
            read_chunk(&file, offset, len, pool)
        }));
    }

    /// Stops the stream after an error: nothing more will be produced.
    fn fail(&mut self, err: io::Error) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.next_offset = self.end;
        self.unsent = 0;
        Poll::Ready(Some(Err(err)))
    }
}

impl Body for FileBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        if this.pending.is_none() {
            if this.next_offset >= this.end {
                return Poll::Ready(None);
            }
            this.start_read();
        }
        let Some(pending) = this.pending.as_mut() else {
            return Poll::Ready(None);
        };
        let joined = ready!(Pin::new(pending).poll(cx));
        this.pending = None;
        match joined {
            Ok(Ok(chunk)) => {
                this.unsent -= chunk.len() as u64;
                // Read ahead: fetch the next chunk while hyper writes this one.
                if this.next_offset < this.end {
                    this.start_read();
                }
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
            Ok(Err(err)) => this.fail(err),
            Err(join_err) => this.fail(io::Error::other(join_err)),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.unsent == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.unsent)
    }
}

/// Every body the server sends.
#[derive(Debug)]
pub(crate) enum ResponseBody {
    /// No body: `HEAD`, `304`, or an empty file.
    Empty,
    /// A small in-memory body (error text, directory listing); `None` once
    /// sent.
    Full(Option<Bytes>),
    /// (Part of) a file, streamed from disk.
    File(FileBody),
}

impl ResponseBody {
    /// An in-memory body.
    pub(crate) fn full(data: impl Into<Bytes>) -> Self {
        Self::Full(Some(data.into()))
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.get_mut() {
            Self::Empty => Poll::Ready(None),
            Self::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            Self::File(file) => Pin::new(file).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Empty => true,
            Self::Full(data) => data.is_none(),
            Self::File(file) => file.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Empty => SizeHint::with_exact(0),
            Self::Full(data) => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
            Self::File(file) => file.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    async fn collect(mut body: FileBody) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
        {
            if let Ok(data) = frame?.into_data() {
                out.extend_from_slice(&data);
            }
        }
        Ok(out)
    }

    fn temp_file(content: &[u8]) -> File {
        let mut file = tempfile::tempfile().expect("tempfile");
        file.write_all(content).expect("write");
        file
    }

    #[tokio::test]
    async fn file_body_streams_exact_range_across_chunks() {
        let content: Vec<u8> = (0..CHUNK_SIZE * 3 + 17).map(|i| (i % 251) as u8).collect();
        let pool = Arc::new(BufferPool::default());
        let start = 5;
        let len = (CHUNK_SIZE * 2 + 100) as u64;
        let body = FileBody::new(temp_file(&content), start, len, Arc::clone(&pool));
        assert_eq!(body.size_hint().exact(), Some(len));
        let got = collect(body).await.expect("stream");
        assert_eq!(got, &content[start as usize..(start + len) as usize]);
        // All pooled buffers came back once the chunks were dropped.
        assert!(!pool.free.lock().expect("lock").is_empty());
    }

    #[tokio::test]
    async fn file_body_fails_when_file_is_shorter_than_promised() {
        let pool = Arc::new(BufferPool::default());
        let body = FileBody::new(temp_file(b"short"), 0, 100, pool);
        let err = collect(body).await.expect_err("must fail");
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
