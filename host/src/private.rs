//! What the host keeps in `data_dir` is for its own user alone: the ledger
//! holds the passwords of services added through the admin API, and the
//! key-value store what plugins keep. Folders are made 0700 and files 0600
//! whatever the umask says, and a folder found wider is tightened.

use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// `data_dir` is locked by another process (a host serving from it, or a
/// command working on it); [`lock`] fails with this, so that a caller can
/// say what to do in its own words.
#[derive(Debug, thiserror::Error)]
#[error(
    "data_dir {} is in use by another Orizuru host{holder}; give each host a data_dir of its own",
    data_dir.display()
)]
pub struct InUse {
    /// The folder.
    pub data_dir: PathBuf,
    /// ` (process PID)` when the holder wrote its process id, else empty.
    pub holder: String,
}

/// Takes `data_dir` for this host alone, for as long as the returned file
/// is open: its ledger's reservations are this host's, so a create
/// another run left unfinished can be undone at start. A second host on
/// the same folder is refused, naming the process that holds it.
pub fn lock(data_dir: &Path) -> anyhow::Result<std::fs::File> {
    dir(data_dir)?;
    let path = data_dir.join("host.lock");
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            file.read_to_string(&mut holder).ok();
            let holder = match holder.trim() {
                "" => String::new(),
                pid => format!(" (process {pid})"),
            };
            return Err(InUse {
                data_dir: data_dir.to_owned(),
                holder,
            }
            .into());
        }
        Err(std::fs::TryLockError::Error(err)) => {
            return Err(err).with_context(|| format!("cannot lock {}", path.display()));
        }
    }
    file.set_len(0)?;
    file.rewind()?;
    writeln!(file, "{}", std::process::id())?;
    Ok(file)
}

/// Makes `dir` (and any missing parent) with mode 0700, or tightens it to
/// 0700 when it exists with access for others, saying so in the log.
pub fn dir(dir: &Path) -> anyhow::Result<()> {
    create_dir(dir)?;
    tighten(dir, 0o700)
}

/// Makes `dir` (and any missing parent) with mode 0700; an existing folder
/// is left as it is (a shared cache an operator set up, say).
pub fn create_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Makes the SQLite database `path` with mode 0600 before SQLite opens it
/// (SQLite gives its `-wal` and `-shm` files the database's mode), and
/// tightens an existing database, and those files, to 0600.
pub fn database(path: &Path) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    tighten(path, 0o600)?;
    for suffix in ["-wal", "-shm"] {
        let mut companion = path.as_os_str().to_owned();
        companion.push(suffix);
        let companion = Path::new(&companion);
        if companion.exists() {
            tighten(companion, 0o600)?;
        }
    }
    Ok(())
}

/// Sets `path` to `mode` when others (group, world) may use it now.
#[cfg(unix)]
fn tighten(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let now = std::fs::metadata(path)
        .with_context(|| format!("cannot read the permissions of {}", path.display()))?
        .permissions()
        .mode()
        & 0o777;
    if now & 0o077 == 0 {
        return Ok(());
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).with_context(|| {
        format!(
            "cannot make {} private (mode {mode:o}); make the host's user its owner",
            path.display()
        )
    })?;
    tracing::info!(
        "made {} private: mode {now:o} is now {mode:o}, since it holds credentials",
        path.display()
    );
    Ok(())
}

#[cfg(not(unix))]
fn tighten(_path: &Path, _mode: u32) -> anyhow::Result<()> {
    Ok(())
}
