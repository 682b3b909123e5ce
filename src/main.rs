//! `harness`: thin entry point. Parsing and all work happen in the library; this maps the
//! outcome to the documented exit codes (0 ok, 1 failed runs or regression, 2 bad input).

use std::process::ExitCode;

// Counts heap bytes so `harness bench` can report the peak memory of a training step.
#[global_allocator]
static ALLOC: kdbench::util::alloc::CountingAlloc = kdbench::util::alloc::CountingAlloc;

fn main() -> ExitCode {
    // Behave like other Unix tools when stdout is closed early (`harness status | head`):
    // end quietly instead of panicking on a broken pipe.
    #[cfg(unix)]
    // SAFETY: called first thing in main, before any thread exists; SIG_DFL is a valid handler.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    kdbench::util::alloc::keep_freed_memory();
    match kdbench::cli::run(std::env::args_os()) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
