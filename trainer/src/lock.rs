//! One run per output directory: `OUT/.hone.lock` holds the owner's pid.
//!
//! A second `hone finetune` on the same `--out` refuses instead of
//! interleaving its checkpoints with the first one's. A lock left by a
//! process that no longer exists (killed with `kill -9`) is taken over.

use anyhow::{bail, Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Held for the length of a run; the file is removed when dropped.
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
}

fn alive(pid: u32) -> bool {
    // Linux: a live process has /proc/<pid>. Elsewhere assume it is alive (refuse, never interleave).
    if cfg!(target_os = "linux") {
        Path::new(&format!("/proc/{pid}")).exists()
    } else {
        true
    }
}

impl RunLock {
    pub fn acquire(out: &Path) -> Result<RunLock> {
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        let path = out.join(".hone.lock");
        for _ in 0..2 {
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    writeln!(f, "{}", std::process::id())?;
                    f.sync_all()?;
                    return Ok(RunLock { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let owner = std::fs::read_to_string(&path).ok().and_then(|s| s.trim().parse::<u32>().ok());
                    match owner {
                        Some(pid) if alive(pid) => bail!(
                            "{} is in use by another hone run (pid {pid}, lock file {}); \
                             wait for it, or choose another --out",
                            out.display(),
                            path.display()
                        ),
                        // A dead owner (or an unreadable lock): take it over.
                        _ => {
                            std::fs::remove_file(&path).with_context(|| format!("removing stale {}", path.display()))?
                        }
                    }
                }
                Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
            }
        }
        bail!("could not take the lock {}", path.display())
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
