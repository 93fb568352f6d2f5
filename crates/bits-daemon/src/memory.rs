//! Handing freed heap back to the system.
//!
//! glibc keeps what a program frees in its arenas for later reuse. After
//! a request that came with 100,000 files (the request, its parse, its
//! checks and its rows are all freed once it is answered) the daemon would
//! keep twice its live size for the rest of its life; a background service
//! that holds jobs for days should not. Trimming walks the arenas, so it
//! runs only after such work, on the blocking pool.

/// Files in one request from which its garbage is worth handing back.
pub const MANY_FILES: usize = 1_000;

/// Returns the free memory of every arena to the system, in the background,
/// once the work that follows a large request (the client's next calls,
/// the scheduler's pass) has freed its own temporaries too.
pub fn give_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    tokio::spawn(async {
        tokio::time::sleep(SETTLE).await;
        // Nothing waits for it: its only result is whether memory went back.
        tokio::task::spawn_blocking(|| {
            // SAFETY: malloc_trim only reorganises the allocator's own free
            // lists; it is thread-safe and touches no live allocation.
            unsafe { libc::malloc_trim(0) };
        });
    });
}

/// How long after a large request its memory is handed back.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const SETTLE: std::time::Duration = std::time::Duration::from_secs(1);
