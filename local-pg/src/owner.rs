//! Who runs the PostgreSQL of a data folder: the owner lock.
//!
//! `<base>/owner.lock` is held with `flock(LOCK_EX)` by the process that runs PostgreSQL on the
//! folder — its *owner* — from before `initdb` until that PostgreSQL has stopped. The kernel
//! releases an flock when the last descriptor of its open file closes, so when the owner exits
//! however it exits (also `kill -9`); the descriptor is close-on-exec, so no child keeps it. So
//! the lock is free exactly when no live process owns the folder, and whoever takes it may stop
//! whatever an earlier owner left running there. Every other process is a guest: it uses the
//! owner's PostgreSQL once it is ready and never stops it.
//!
//! `flock` (not `fcntl`) locks belong to an open file, not to a process: a second handle in the
//! owner's own process conflicts too, so the rule holds inside one process as well.
//!
//! The file's text is for the guests: the owner's pid on the first line and, once PostgreSQL is
//! ready, the postmaster's pid on the second. The lock, never the text, decides who owns.

use std::{
    fs::{self, File, OpenOptions},
    os::unix::fs::{FileExt, OpenOptionsExt},
    path::Path,
};

use nix::{
    errno::Errno,
    fcntl::{Flock, FlockArg},
};

use crate::{LocalPgError, failed};

/// The lock file's name inside the base folder.
pub(crate) const LOCK_FILE: &str = "owner.lock";

/// The held owner lock; dropping it (or exiting) releases it.
#[derive(Debug)]
pub(crate) struct OwnerLock {
    file: Flock<File>,
}

/// The outcome of trying to own a folder.
pub(crate) enum Claim {
    /// We own it now.
    Owner(OwnerLock),
    /// A live process owns it.
    Taken,
}

/// Tries (without waiting) to become the owner of `base_dir`, which must exist.
pub(crate) fn claim(base_dir: &Path) -> Result<Claim, LocalPgError> {
    let path = base_dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(|e| failed(format!("opening {}", path.display()), e))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(file) => Ok(Claim::Owner(OwnerLock { file })),
        Err((_, errno)) if errno == Errno::EWOULDBLOCK => Ok(Claim::Taken),
        Err((_, errno)) => Err(failed(format!("locking {}", path.display()), errno)),
    }
}

impl OwnerLock {
    /// Records our pid and, once it is ready, the postmaster's, for the guests.
    pub(crate) fn record(&mut self, postmaster: Option<i32>) -> Result<(), LocalPgError> {
        let mut text = format!("{}\n", std::process::id());
        if let Some(pid) = postmaster {
            text.push_str(&format!("{pid}\n"));
        }
        let file: &File = &self.file;
        file.set_len(0)
            .and_then(|()| file.write_all_at(text.as_bytes(), 0))
            .map_err(|e| failed("writing the owner lock file", e))
    }
}

/// What the owner of a folder recorded (either may be missing while it is being written).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct OwnerRecord {
    /// The owner's pid.
    pub(crate) owner: Option<i32>,
    /// The postmaster's pid, once PostgreSQL is ready.
    pub(crate) postmaster: Option<i32>,
}

/// Reads the record of `base_dir`'s owner (or of its last owner, when none is alive).
pub(crate) fn read_record(base_dir: &Path) -> OwnerRecord {
    let text = fs::read_to_string(base_dir.join(LOCK_FILE)).unwrap_or_default();
    let mut lines = text.lines().map(|l| l.trim().parse::<i32>().ok());
    OwnerRecord {
        owner: lines.next().flatten(),
        postmaster: lines.next().flatten(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn only_one_handle_owns_a_folder_even_within_one_process() {
        let dir = std::env::temp_dir().join(format!("local-pg-unit-{}-lock", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let Ok(Claim::Owner(mut lock)) = claim(&dir) else {
            panic!("the first claim owns the folder")
        };
        assert!(matches!(claim(&dir), Ok(Claim::Taken)));
        lock.record(Some(42)).unwrap();
        let record = read_record(&dir);
        assert_eq!(record.owner, Some(std::process::id() as i32));
        assert_eq!(record.postmaster, Some(42));
        drop(lock);
        assert!(matches!(claim(&dir), Ok(Claim::Owner(_))));
        let _ = fs::remove_dir_all(&dir);
    }
}
