//! The `vlm` command-line tool: parse arguments, call the library, print results.

mod cli;

fn main() -> std::process::ExitCode {
    keep_freed_memory();
    cli::main()
}

/// Inference allocates and frees the same large activation buffers (megabytes each) on every
/// layer. glibc's malloc serves such sizes with fresh `mmap`s and returns them on free, so each
/// layer pays page faults for memory it just released (measured on a 13-tile screenshot with
/// the 256M layout: 15.7 s of system time, 1.5 s with this). Raising the thresholds keeps freed
/// buffers in the heap for reuse.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only adjusts allocator parameters; it is called before any threads exist.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}
