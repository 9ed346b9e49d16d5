//! Writing result files so that none is ever half written: each goes to a temporary file
//! beside its destination and is renamed over it only once complete, and a destination is
//! checked writable before an hour-long run rather than after it.

use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// The folder a file path lives in (`.` for a bare name).
fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Checks now that `path` can be written later: its folder exists and takes a new file,
/// and `path` is not a folder. Leaves nothing behind.
pub fn check_writable(path: &Path) -> Result<()> {
    if path.is_dir() {
        return Err(Error::write(
            path,
            std::io::Error::new(std::io::ErrorKind::IsADirectory, "it is a folder"),
        ));
    }
    tempfile::NamedTempFile::new_in(folder_of(path))
        .map(drop)
        .map_err(|e| Error::write(path, e))
}

/// Checks now that files can be written into `dir`, creating it if need be.
pub fn check_writable_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::write(dir, e))?;
    check_writable(&dir.join(".cascade-write-check"))
}

/// Writes `path` all at once: `fill` writes into a temporary file in the same folder,
/// which then replaces `path`. On any error `path` is left as it was.
pub fn atomically(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    let mut file =
        tempfile::NamedTempFile::new_in(folder_of(path)).map_err(|e| Error::write(path, e))?;
    let mut out = std::io::BufWriter::new(file.as_file_mut());
    fill(&mut out)
        .and_then(|()| out.flush())
        .map_err(|e| Error::write(path, e))?;
    drop(out);
    file.as_file()
        .sync_all()
        .map_err(|e| Error::write(path, e))?;
    file.persist(path)
        .map_err(|e| Error::write(path, e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("out.txt");
        atomically(&path, |w| w.write_all(b"first")).unwrap();
        let err = atomically(&path, |w| {
            w.write_all(b"half")?;
            Err(std::io::Error::other("disk full"))
        })
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("cannot write") && err.contains("disk full"),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "first");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn unwritable_destinations_are_found_before_the_work() {
        let d = tempfile::tempdir().unwrap();
        assert!(check_writable(&d.path().join("p.toml")).is_ok());
        assert!(check_writable(d.path()).is_err(), "a folder");
        let err = check_writable(&d.path().join("missing/p.toml")).unwrap_err();
        assert!(err.to_string().starts_with("cannot write"), "{err}");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
    }
}
