//! Stop signals and the state each leaves behind (docs/hostile-input.md).
//!
//! SIGINT (Ctrl-C), SIGTERM (Slurm's scancel, time-out and preemption) and SIGHUP
//! (a closed terminal or ssh session) all ask the run to stop: the loop finishes its
//! step, the drawing so far is saved and the process exits 128 + the signal. A
//! second signal quits at once without saving, except while a file is being written:
//! then the write finishes first, so that no temporary file is left behind and no
//! final name ever holds a partial file.
//!
//! SIGXFSZ (a file-size limit, `ulimit -f`) is ignored, so that a write past the
//! limit fails with an error like a full disk instead of killing the process.

use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};

/// The first stop signal received (0: none yet).
static SIGNAL: AtomicI32 = AtomicI32::new(0);
/// Writes in progress; a second signal waits for them.
static WRITING: AtomicUsize = AtomicUsize::new(0);

const AGAIN: &[u8] = b"\nclipdraw: stopped again; quitting without saving\n";

extern "C" fn on_signal(sig: libc::c_int) {
    let first = SIGNAL.compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst).is_ok();
    if first {
        return;
    }
    SECOND.store(true, Ordering::SeqCst);
    // Checked after SECOND is set, so that a write ending meanwhile is not missed
    // (its guard checks SECOND after it stops counting).
    if WRITING.load(Ordering::SeqCst) == 0 {
        quit_again();
    }
}

fn quit_again() {
    // SAFETY: write and _exit are async-signal-safe; nothing else is done here.
    unsafe {
        libc::write(2, AGAIN.as_ptr().cast(), AGAIN.len());
        libc::_exit(128 + SIGNAL.load(Ordering::SeqCst));
    }
}

/// Makes SIGINT, SIGTERM and SIGHUP ask for a stop instead of killing the process,
/// and makes a file-size limit an error instead of a kill.
pub fn install() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only touches atomics and calls write and _exit, all
        // async-signal-safe; `signal` installs it for the whole process.
        unsafe {
            libc::signal(sig, on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t);
        }
    }
    // SAFETY: ignoring a signal has no handler to be unsafe in.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

/// The stop signal received so far, if any.
pub fn stop_signal() -> Option<i32> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// Exit status for a run stopped by `sig`, as shells report it: 128 + the signal.
pub fn exit_status(sig: i32) -> i32 {
    128 + sig
}

/// Held while a file is written: a second stop signal then waits for the write,
/// and the process exits as soon as the guard is dropped.
pub struct Writing(());

impl Writing {
    pub fn start() -> Writing {
        WRITING.fetch_add(1, Ordering::SeqCst);
        Writing(())
    }
}

impl Drop for Writing {
    fn drop(&mut self) {
        let left = WRITING.fetch_sub(1, Ordering::SeqCst) - 1;
        // A second signal arrived during the write: quit now that it is done. The
        // handler runs only once per signal, so it cannot be told to exit later.
        if left == 0 && SECOND.load(Ordering::SeqCst) {
            quit_again();
        }
    }
}

/// Set by the handler for a second signal that arrived during a write.
static SECOND: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
