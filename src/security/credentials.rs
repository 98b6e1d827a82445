//! SCRAM credentials and the users file.
//!
//! kgate never stores passwords. For every user and SCRAM mechanism it keeps what a Kafka broker keeps
//! (KRaft `UserScramCredentialRecord`, ZooKeeper `/config/users/<user>`): the salt, the iteration
//! count, `StoredKey = H(HMAC(SaltedPassword, "Client Key"))` and
//! `ServerKey = HMAC(SaltedPassword, "Server Key")`. SASL/PLAIN is checked against the same records by
//! deriving the StoredKey from the offered password ([`CredentialStore::verify_password`]), so one users
//! file serves PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512.
//!
//! # The users file
//!
//! TOML, managed with `kgate users add|list|remove` or by hand:
//!
//! ```toml
//! [[users]]
//! name = "alice"
//!
//! [[users.scram]]
//! mechanism = "SCRAM-SHA-256"   # or "SCRAM-SHA-512"; at most one entry per mechanism and user
//! iterations = 8192             # 4096..=16384, Kafka's limits
//! salt = "<base64>"             # any non-empty bytes
//! stored_key = "<base64>"       # 32 bytes for SHA-256, 64 for SHA-512
//! server_key = "<base64>"       # same length as stored_key
//! ```
//!
//! Base64 is the standard alphabet with padding. Unknown keys, duplicate users and out-of-range values
//! make the whole file invalid; every problem is reported at once.
//!
//! * A missing file is an empty store; the first write creates it.
//! * Writes are atomic: a temporary file in the same directory (mode 0600), `fsync`, `rename`, then
//!   `fsync` of the directory. kgate rewrites the whole file, so comments are not kept. Writers in one
//!   process are serialised and re-read the file first when it changed on disk; two processes writing
//!   at the same instant (e.g. the CLI and an AlterUserScramCredentials request) can still lose one
//!   update, as with any unlocked file.
//! * A running kgate notices changes (file length, mtime, inode) with
//!   [`CredentialStore::spawn_reloader`]. A file that does not parse is logged and ignored: the previous
//!   contents stay in force until a valid file appears. A deleted file removes every user.
//! * Nothing secret is ever logged, and `Debug` output of credentials is redacted.
use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use subtle::{Choice, ConstantTimeEq};

use super::crypto;

/// The iteration count `kgate users add` uses unless told otherwise.
pub const DEFAULT_ITERATIONS: u32 = 8192;
/// Length of the random salt kgate generates for new passwords.
pub const SALT_LEN: usize = 32;

/// Kafka's SCRAM mechanisms (`ScramMechanism.java`): type 1 = SCRAM-SHA-256, type 2 = SCRAM-SHA-512,
/// both with iterations 4096..=16384.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ScramMechanism {
    Sha256,
    Sha512,
}

impl ScramMechanism {
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::Sha256, ScramMechanism::Sha512];
    pub const MIN_ITERATIONS: u32 = 4096;
    pub const MAX_ITERATIONS: u32 = 16384;

    /// The SASL mechanism name, e.g. "SCRAM-SHA-256".
    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// Exact, case-sensitive, like Kafka's `ScramMechanism.forMechanismName`.
    pub fn from_name(name: &str) -> Option<Self> {
        ScramMechanism::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The `Mechanism` byte of the Alter/DescribeUserScramCredentials APIs.
    pub fn kafka_type(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    pub fn from_kafka_type(t: i8) -> Option<Self> {
        ScramMechanism::ALL.into_iter().find(|m| m.kafka_type() == t)
    }

    pub fn min_iterations(self) -> u32 {
        Self::MIN_ITERATIONS
    }

    pub fn max_iterations(self) -> u32 {
        Self::MAX_ITERATIONS
    }

    pub fn iterations_in_range(self, iterations: u32) -> bool {
        (self.min_iterations()..=self.max_iterations()).contains(&iterations)
    }

    /// Output length of the hash, which is also the length of every key.
    pub fn digest_len(self) -> usize {
        match self {
            ScramMechanism::Sha256 => 32,
            ScramMechanism::Sha512 => 64,
        }
    }
}

impl fmt::Display for ScramMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One user's credential for one mechanism. `Debug` shows only the iteration count and lengths.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramCredential {
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

impl ScramCredential {
    /// What the controller does with an AlterUserScramCredentials upsertion (`ScramControlManager.finishUpsertion`).
    pub fn from_salted_password(
        mechanism: ScramMechanism,
        salt: Vec<u8>,
        salted_password: &[u8],
        iterations: u32,
    ) -> ScramCredential {
        ScramCredential {
            salt,
            iterations,
            stored_key: crypto::stored_key(mechanism, salted_password),
            server_key: crypto::server_key(mechanism, salted_password),
        }
    }

    /// Derives the credential for `password` with the given salt (PBKDF2: takes milliseconds).
    pub fn from_password(mechanism: ScramMechanism, password: &str, salt: Vec<u8>, iterations: u32) -> ScramCredential {
        let salted = crypto::salted_password(mechanism, password.as_bytes(), &salt, iterations);
        ScramCredential::from_salted_password(mechanism, salt, &salted, iterations)
    }

    /// A new credential with a random [`SALT_LEN`]-byte salt.
    pub fn generate(
        mechanism: ScramMechanism,
        password: &str,
        iterations: u32,
    ) -> Result<ScramCredential, CredentialError> {
        let salt = crypto::random_bytes(SALT_LEN).map_err(|e| CredentialError::Random(e.to_string()))?;
        Ok(ScramCredential::from_password(mechanism, password, salt, iterations))
    }

    /// Whether `password` derives this credential's StoredKey. Constant time in the comparison.
    fn matches_password(&self, mechanism: ScramMechanism, password: &[u8]) -> Choice {
        let salted = crypto::salted_password(mechanism, password, &self.salt, self.iterations);
        crypto::stored_key(mechanism, &salted).ct_eq(&self.stored_key)
    }
}

impl fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramCredential")
            .field("iterations", &self.iterations)
            .field("salt", &format_args!("<{} bytes>", self.salt.len()))
            .field("stored_key", &format_args!("<redacted>"))
            .field("server_key", &format_args!("<redacted>"))
            .finish()
    }
}

/// All users and their credentials: the in-memory form of the users file.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct UserTable {
    users: BTreeMap<String, BTreeMap<ScramMechanism, ScramCredential>>,
}

impl UserTable {
    pub fn get(&self, user: &str, mechanism: ScramMechanism) -> Option<&ScramCredential> {
        self.users.get(user)?.get(&mechanism)
    }

    pub fn contains_user(&self, user: &str) -> bool {
        self.users.contains_key(user)
    }

    /// The user's mechanisms and iteration counts, in mechanism order; `None` for an unknown user.
    pub fn mechanisms(&self, user: &str) -> Option<Vec<(ScramMechanism, u32)>> {
        let creds = self.users.get(user)?;
        Some(creds.iter().map(|(m, c)| (*m, c.iterations)).collect())
    }

    pub fn upsert(&mut self, user: &str, mechanism: ScramMechanism, credential: ScramCredential) {
        self.users
            .entry(user.to_owned())
            .or_default()
            .insert(mechanism, credential);
    }

    /// Removes one credential (or all of the user's with `None`). A user left without credentials is
    /// removed too. Returns whether anything was removed.
    pub fn remove(&mut self, user: &str, mechanism: Option<ScramMechanism>) -> bool {
        let Some(creds) = self.users.get_mut(user) else {
            return false;
        };
        let removed = match mechanism {
            None => {
                self.users.remove(user);
                return true;
            }
            Some(m) => creds.remove(&m).is_some(),
        };
        if creds.is_empty() {
            self.users.remove(user);
        }
        removed
    }

    /// Every user with its mechanisms and iteration counts, sorted by name.
    pub fn users(&self) -> Vec<(String, Vec<(ScramMechanism, u32)>)> {
        self.users
            .iter()
            .map(|(name, creds)| (name.clone(), creds.iter().map(|(m, c)| (*m, c.iterations)).collect()))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

impl fmt::Debug for UserTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.users()).finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("cannot {action} users file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("users file {} is invalid: {}", path.display(), problems.join("; "))]
    Invalid { path: PathBuf, problems: Vec<String> },
    /// The file on disk did not parse when last read; writing now would throw away what the operator
    /// is editing.
    #[error("users file {} is invalid ({reason}); fix or remove it before changing users", path.display())]
    FileBroken { path: PathBuf, reason: String },
    #[error("no users file is configured; set users_file in the [security] section of the config")]
    NoUsersFile,
    /// The caller's input was refused (empty name, iterations out of range...). The text says why.
    #[error("{0}")]
    Rejected(String),
    #[error("the operating system's random number generator failed: {0}")]
    Random(String),
}

/// What the last look at the users file found: used to notice changes cheaply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Missing,
    File(FileStamp),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    mtime: Option<SystemTime>,
    dev: u64,
    ino: u64,
}

impl FileStamp {
    fn of(meta: &fs::Metadata) -> FileStamp {
        FileStamp {
            len: meta.len(),
            mtime: meta.modified().ok(),
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

#[derive(Default)]
struct DiskState {
    seen: Option<Seen>,
    /// Why the file currently on disk was refused, if it was.
    broken: Option<String>,
}

/// The users file in memory. Cheap to read from many connections at once; see the module docs.
pub struct CredentialStore {
    path: Option<PathBuf>,
    table: RwLock<Arc<UserTable>>,
    /// Serialises reloads and writes.
    disk: Mutex<DiskState>,
}

impl fmt::Debug for CredentialStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialStore")
            .field("path", &self.path)
            .field("users", &self.snapshot().len())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl CredentialStore {
    /// Loads the users file. A missing file is an empty store (the first write creates it); a file that
    /// cannot be read or does not parse is an error.
    pub fn open(path: &Path) -> Result<Arc<CredentialStore>, CredentialError> {
        let store = CredentialStore {
            path: Some(path.to_owned()),
            table: RwLock::new(Arc::new(UserTable::default())),
            disk: Mutex::new(DiskState::default()),
        };
        {
            let mut disk = lock(&store.disk);
            store.refresh_locked(&mut disk, false)?;
        }
        if let Ok(meta) = fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    mode = format_args!("{mode:o}"),
                    "users file is accessible to other users; run `chmod 600` on it"
                );
            }
        }
        Ok(Arc::new(store))
    }

    /// A store with no users and no file (no `users_file` configured). Writes fail with
    /// [`CredentialError::NoUsersFile`].
    pub fn empty() -> Arc<CredentialStore> {
        Arc::new(CredentialStore {
            path: None,
            table: RwLock::new(Arc::new(UserTable::default())),
            disk: Mutex::new(DiskState::default()),
        })
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The current contents (a cheap `Arc` clone).
    pub fn snapshot(&self) -> Arc<UserTable> {
        self.table.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    pub fn scram(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential> {
        self.snapshot().get(user, mechanism).cloned()
    }

    /// SASL/PLAIN: whether `password` matches any of the user's stored SCRAM credentials (the StoredKey
    /// is derived with the stored salt and iterations and compared in constant time). Unknown users get
    /// `false` after the same amount of PBKDF2 work as a user with one SHA-256 credential at
    /// [`DEFAULT_ITERATIONS`]. Takes milliseconds of CPU: call it off the async executor.
    pub fn verify_password(&self, user: &str, password: &str) -> bool {
        let table = self.snapshot();
        let creds: Vec<(ScramMechanism, &ScramCredential)> = ScramMechanism::ALL
            .into_iter()
            .filter_map(|m| table.get(user, m).map(|c| (m, c)))
            .filter(|(m, c)| m.iterations_in_range(c.iterations))
            .collect();
        if creds.is_empty() {
            let dummy = ScramCredential {
                salt: b"kgate-unknown-user".to_vec(),
                iterations: DEFAULT_ITERATIONS,
                stored_key: vec![0; 32],
                server_key: Vec::new(),
            };
            let _ = std::hint::black_box(dummy.matches_password(ScramMechanism::Sha256, password.as_bytes()));
            return false;
        }
        let mut ok = Choice::from(0);
        for (mechanism, cred) in creds {
            ok |= cred.matches_password(mechanism, password.as_bytes());
        }
        ok.into()
    }

    /// Sets (or replaces) the user's credential for `mechanism` from a password, with a random salt,
    /// and saves the file.
    pub fn upsert_password(
        &self,
        user: &str,
        mechanism: ScramMechanism,
        iterations: u32,
        password: &str,
    ) -> Result<(), CredentialError> {
        check_user_name(user)?;
        check_iterations(mechanism, iterations)?;
        if password.is_empty() {
            return Err(CredentialError::Rejected("the password must not be empty".into()));
        }
        let credential = ScramCredential::generate(mechanism, password, iterations)?;
        self.update(|t| t.upsert(user, mechanism, credential))
    }

    /// Sets the user's credential from a salt and SaltedPassword, as AlterUserScramCredentials sends them.
    pub fn upsert_salted(
        &self,
        user: &str,
        mechanism: ScramMechanism,
        iterations: u32,
        salt: &[u8],
        salted_password: &[u8],
    ) -> Result<(), CredentialError> {
        check_user_name(user)?;
        check_iterations(mechanism, iterations)?;
        check_salted(mechanism, salt, salted_password)?;
        let credential = ScramCredential::from_salted_password(mechanism, salt.to_vec(), salted_password, iterations);
        self.update(|t| t.upsert(user, mechanism, credential))
    }

    /// Removes one credential, or all of the user's with `None`. `Ok(false)` if there was nothing to remove.
    pub fn remove(&self, user: &str, mechanism: Option<ScramMechanism>) -> Result<bool, CredentialError> {
        self.update(|t| t.remove(user, mechanism))
    }

    /// Every user with its mechanisms and iteration counts, sorted by name.
    pub fn users(&self) -> Vec<(String, Vec<(ScramMechanism, u32)>)> {
        self.snapshot().users()
    }

    /// Runs `edit` on a copy of the current table (re-read from disk first if the file changed) and,
    /// if the copy differs afterwards, saves it atomically and makes it current. Everything `edit`
    /// decides is based on the state it sees, so checks and changes are atomic with respect to other
    /// writers in this process.
    pub fn update<R>(&self, edit: impl FnOnce(&mut UserTable) -> R) -> Result<R, CredentialError> {
        let Some(path) = &self.path else {
            return Err(CredentialError::NoUsersFile);
        };
        let mut disk = lock(&self.disk);
        self.refresh_locked(&mut disk, true)?;
        if let Some(reason) = &disk.broken {
            return Err(CredentialError::FileBroken {
                path: path.clone(),
                reason: reason.clone(),
            });
        }
        let current = self.snapshot();
        let mut table = (*current).clone();
        let result = edit(&mut table);
        if table != *current {
            let stamp = write_atomically(path, render(path, &table)?.as_bytes())?;
            disk.seen = Some(Seen::File(stamp));
            *self.table.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(table);
        }
        Ok(result)
    }

    /// Re-reads the file if its length, mtime or inode changed. `Ok(true)` when new contents were
    /// loaded (or the file disappeared: no users). A file that cannot be read or parsed is logged once
    /// and returned as an error; the previous contents stay in force.
    pub fn reload_if_changed(&self) -> Result<bool, CredentialError> {
        let mut disk = lock(&self.disk);
        self.refresh_locked(&mut disk, true)
    }

    /// Checks the file every `every` (at least 10 ms) on a blocking thread. The task ends when the
    /// store is dropped.
    pub fn spawn_reloader(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        let every = every.max(Duration::from_millis(10));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(store) = weak.upgrade() else { break };
                // Errors were logged by reload_if_changed.
                let _ = tokio::task::spawn_blocking(move || store.reload_if_changed()).await;
            }
        })
    }

    fn refresh_locked(&self, disk: &mut DiskState, log: bool) -> Result<bool, CredentialError> {
        let Some(path) = &self.path else {
            return Ok(false);
        };
        let io_err = |action, source| CredentialError::Io {
            path: path.clone(),
            action,
            source,
        };
        let now = match fs::metadata(path) {
            Ok(meta) => Seen::File(FileStamp::of(&meta)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Seen::Missing,
            Err(e) => {
                let err = io_err("check", e);
                if log {
                    tracing::warn!(error = %err, "keeping the users loaded before");
                }
                return Err(err);
            }
        };
        if disk.seen == Some(now) {
            return Ok(false);
        }
        let loaded = match now {
            Seen::Missing => Ok(UserTable::default()),
            Seen::File(_) => fs::read(path)
                .map_err(|e| io_err("read", e))
                .and_then(|bytes| parse(path, &bytes)),
        };
        disk.seen = Some(now);
        match loaded {
            Ok(table) => {
                if log {
                    match now {
                        Seen::Missing => tracing::warn!(
                            path = %path.display(),
                            "users file was removed: no SASL users remain"
                        ),
                        Seen::File(_) => {
                            tracing::info!(path = %path.display(), users = table.len(), "users file reloaded")
                        }
                    }
                }
                disk.broken = None;
                *self.table.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(table);
                Ok(true)
            }
            Err(err) => {
                if log {
                    tracing::warn!(
                        error = %err,
                        users = self.snapshot().len(),
                        "ignoring the changed users file; keeping the users loaded before"
                    );
                }
                disk.broken = Some(match &err {
                    CredentialError::Invalid { problems, .. } => problems.join("; "),
                    other => other.to_string(),
                });
                Err(err)
            }
        }
    }
}

pub(crate) fn check_user_name(user: &str) -> Result<(), CredentialError> {
    if user.is_empty() {
        return Err(CredentialError::Rejected("the user name must not be empty".into()));
    }
    if user.chars().any(char::is_control) {
        return Err(CredentialError::Rejected(
            "the user name must not contain control characters".into(),
        ));
    }
    Ok(())
}

pub(crate) fn check_iterations(mechanism: ScramMechanism, iterations: u32) -> Result<(), CredentialError> {
    if mechanism.iterations_in_range(iterations) {
        return Ok(());
    }
    Err(CredentialError::Rejected(format!(
        "iterations {iterations} is outside {}..={}, the range Kafka accepts for {mechanism}",
        mechanism.min_iterations(),
        mechanism.max_iterations()
    )))
}

/// kgate refuses credentials no password could produce: an empty salt, or a SaltedPassword whose length
/// is not the hash length (Kafka's controller accepts both).
pub(crate) fn check_salted(
    mechanism: ScramMechanism,
    salt: &[u8],
    salted_password: &[u8],
) -> Result<(), CredentialError> {
    if salt.is_empty() {
        return Err(CredentialError::Rejected("the salt must not be empty".into()));
    }
    if salted_password.len() != mechanism.digest_len() {
        return Err(CredentialError::Rejected(format!(
            "the salted password must be {} bytes for {mechanism}, not {}",
            mechanism.digest_len(),
            salted_password.len()
        )));
    }
    Ok(())
}

#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileRepr {
    #[serde(default)]
    users: Vec<UserRepr>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserRepr {
    name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    scram: Vec<ScramRepr>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScramRepr {
    mechanism: String,
    iterations: u32,
    salt: String,
    stored_key: String,
    server_key: String,
}

const FILE_HEADER: &str = "\
# kgate users file: salted SCRAM keys, never passwords. Manage it with `kgate users add|list|remove`.
# Keep it private (mode 0600): whoever reads it can guess passwords offline and pose as kgate to SCRAM clients.
";

fn render(path: &Path, table: &UserTable) -> Result<String, CredentialError> {
    let repr = FileRepr {
        users: table
            .users
            .iter()
            .map(|(name, creds)| UserRepr {
                name: name.clone(),
                scram: creds
                    .iter()
                    .map(|(m, c)| ScramRepr {
                        mechanism: m.name().to_owned(),
                        iterations: c.iterations,
                        salt: crypto::b64_encode(&c.salt),
                        stored_key: crypto::b64_encode(&c.stored_key),
                        server_key: crypto::b64_encode(&c.server_key),
                    })
                    .collect(),
            })
            .collect(),
    };
    let body = toml::to_string(&repr).map_err(|e| CredentialError::Io {
        path: path.to_owned(),
        action: "serialise",
        source: io::Error::other(e),
    })?;
    // A blank line before each user, for people reading the file.
    Ok(format!("{FILE_HEADER}{}", body.replace("[[users]]\n", "\n[[users]]\n")))
}

/// Parses and validates the whole file, collecting every problem. Error texts never quote keys or salts.
fn parse(path: &Path, bytes: &[u8]) -> Result<UserTable, CredentialError> {
    let invalid = |problems: Vec<String>| CredentialError::Invalid {
        path: path.to_owned(),
        problems,
    };
    let text = std::str::from_utf8(bytes).map_err(|_| invalid(vec!["not UTF-8 text".into()]))?;
    let repr: FileRepr = toml::from_str(text).map_err(|e| {
        // The error's Display quotes the offending line, which may hold keys: report only the position.
        let at = e
            .span()
            .map(|s| {
                let before = &text[..s.start.min(text.len())];
                format!(" at line {}", before.matches('\n').count() + 1)
            })
            .unwrap_or_default();
        invalid(vec![format!("{}{at}", e.message().trim_end())])
    })?;
    let mut problems = Vec::new();
    let mut table = UserTable::default();
    for (i, user) in repr.users.iter().enumerate() {
        let who = if user.name.is_empty() {
            format!("users[{i}]")
        } else {
            format!("user {:?}", user.name)
        };
        if let Err(e) = check_user_name(&user.name) {
            problems.push(format!("{who}: {e}"));
            continue;
        }
        if table.users.contains_key(&user.name) {
            problems.push(format!("{who} appears more than once"));
            continue;
        }
        let creds = table.users.entry(user.name.clone()).or_default();
        for s in &user.scram {
            let Some(mechanism) = ScramMechanism::from_name(&s.mechanism) else {
                problems.push(format!(
                    "{who}: unknown mechanism {:?} (use SCRAM-SHA-256 or SCRAM-SHA-512)",
                    s.mechanism
                ));
                continue;
            };
            let what = format!("{who} {mechanism}");
            if creds.contains_key(&mechanism) {
                problems.push(format!("{what} appears more than once"));
                continue;
            }
            let mut ok = true;
            if let Err(e) = check_iterations(mechanism, s.iterations) {
                problems.push(format!("{what}: {e}"));
                ok = false;
            }
            let mut decode = |field: &str, value: &str, want_len: Option<usize>| -> Option<Vec<u8>> {
                match crypto::b64_decode_strict(value) {
                    None => problems.push(format!("{what}: {field} is not valid base64")),
                    Some(b) if b.is_empty() => problems.push(format!("{what}: {field} is empty")),
                    Some(b) if want_len.is_some_and(|n| n != b.len()) => problems.push(format!(
                        "{what}: {field} must be {} bytes, not {}",
                        want_len.unwrap_or_default(),
                        b.len()
                    )),
                    Some(b) => return Some(b),
                }
                None
            };
            let salt = decode("salt", &s.salt, None);
            let stored_key = decode("stored_key", &s.stored_key, Some(mechanism.digest_len()));
            let server_key = decode("server_key", &s.server_key, Some(mechanism.digest_len()));
            if let (true, Some(salt), Some(stored_key), Some(server_key)) = (ok, salt, stored_key, server_key) {
                creds.insert(
                    mechanism,
                    ScramCredential {
                        salt,
                        iterations: s.iterations,
                        stored_key,
                        server_key,
                    },
                );
            }
        }
    }
    if problems.is_empty() {
        Ok(table)
    } else {
        Err(invalid(problems))
    }
}

/// Temporary file in the same directory (mode 0600, created exclusively), write, fsync, rename over
/// `path`, fsync the directory. Returns the stamp of the new file.
fn write_atomically(path: &Path, contents: &[u8]) -> Result<FileStamp, CredentialError> {
    let io_err = |source| CredentialError::Io {
        path: path.to_owned(),
        action: "write",
        source,
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let Some(file_name) = path.file_name() else {
        return Err(io_err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the path does not name a file",
        )));
    };
    let suffix: String = crypto::random_bytes(6)
        .map_err(|e| CredentialError::Random(e.to_string()))?
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{suffix}",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| -> io::Result<FileStamp> {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
        file.write_all(contents)?;
        file.sync_all()?;
        let stamp = FileStamp::of(&file.metadata()?);
        drop(file);
        fs::rename(&tmp, path)?;
        fs::File::open(dir)?.sync_all()?;
        Ok(stamp)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PW: &str = "correct horse battery staple";

    fn temp_store() -> (tempfile::TempDir, PathBuf, Arc<CredentialStore>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("users.toml");
        let store = CredentialStore::open(&path).expect("open");
        (dir, path, store)
    }

    #[test]
    fn mechanism_names_types_and_limits() {
        assert_eq!(ScramMechanism::from_name("SCRAM-SHA-256"), Some(ScramMechanism::Sha256));
        assert_eq!(ScramMechanism::from_name("SCRAM-SHA-512"), Some(ScramMechanism::Sha512));
        assert_eq!(
            ScramMechanism::from_name("scram-sha-256"),
            None,
            "case-sensitive like Kafka"
        );
        assert_eq!(ScramMechanism::from_kafka_type(1), Some(ScramMechanism::Sha256));
        assert_eq!(ScramMechanism::from_kafka_type(2), Some(ScramMechanism::Sha512));
        assert_eq!(ScramMechanism::from_kafka_type(0), None);
        assert_eq!(ScramMechanism::from_kafka_type(3), None);
        for m in ScramMechanism::ALL {
            assert!(!m.iterations_in_range(4095));
            assert!(m.iterations_in_range(4096));
            assert!(m.iterations_in_range(16384));
            assert!(!m.iterations_in_range(16385));
        }
    }

    #[test]
    fn missing_file_is_an_empty_store_created_on_first_write_with_mode_0600() {
        let (_dir, path, store) = temp_store();
        assert!(store.users().is_empty());
        assert!(!path.exists());
        store
            .upsert_password("alice", ScramMechanism::Sha256, 4096, PW)
            .expect("upsert");
        let mode = fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let leftovers: Vec<_> = fs::read_dir(path.parent().expect("dir"))
            .expect("readdir")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty(), "no temporary files left behind");
    }

    #[test]
    fn persisted_credentials_survive_reopen_and_match_the_documented_format() {
        let (_dir, path, store) = temp_store();
        store
            .upsert_password("alice", ScramMechanism::Sha256, 8192, PW)
            .expect("upsert");
        store
            .upsert_password("alice", ScramMechanism::Sha512, 4096, PW)
            .expect("upsert");
        store
            .upsert_password("bob,=x", ScramMechanism::Sha512, 5000, "other")
            .expect("upsert");
        let text = fs::read_to_string(&path).expect("read");
        assert!(text.contains("[[users]]") && text.contains("[[users.scram]]"), "{text}");
        assert!(text.contains("mechanism = \"SCRAM-SHA-256\"") && text.contains("iterations = 8192"));
        assert!(!text.contains(PW), "no password in the file");

        let reopened = CredentialStore::open(&path).expect("reopen");
        assert_eq!(
            reopened.users(),
            vec![
                (
                    "alice".to_string(),
                    vec![(ScramMechanism::Sha256, 8192), (ScramMechanism::Sha512, 4096)]
                ),
                ("bob,=x".to_string(), vec![(ScramMechanism::Sha512, 5000)]),
            ]
        );
        assert_eq!(
            reopened.scram("alice", ScramMechanism::Sha256),
            store.scram("alice", ScramMechanism::Sha256)
        );
        assert!(reopened.verify_password("alice", PW));
        assert!(reopened.verify_password("bob,=x", "other"));
    }

    #[test]
    fn verify_password_for_both_mechanisms() {
        let (_dir, _path, store) = temp_store();
        store
            .upsert_password("a256", ScramMechanism::Sha256, 4096, PW)
            .expect("upsert");
        store
            .upsert_password("a512", ScramMechanism::Sha512, 4096, PW)
            .expect("upsert");
        for user in ["a256", "a512"] {
            assert!(store.verify_password(user, PW), "{user}");
            assert!(!store.verify_password(user, "wrong"), "{user}");
            assert!(!store.verify_password(user, &PW.to_uppercase()), "{user}");
            assert!(!store.verify_password(user, ""), "{user}");
        }
        assert!(!store.verify_password("nobody", PW));
        assert!(!store.verify_password("A256", PW), "user names are case-sensitive");
        // The stored key is what Kafka's ScramFormatter derives: H(HMAC(Hi(pw, salt, i), "Client Key")).
        let c = store.scram("a512", ScramMechanism::Sha512).expect("cred");
        let salted = crypto::salted_password(ScramMechanism::Sha512, PW.as_bytes(), &c.salt, 4096);
        assert_eq!(
            c.stored_key,
            crypto::hash(
                ScramMechanism::Sha512,
                &crypto::hmac(ScramMechanism::Sha512, &salted, b"Client Key")
            )
        );
        assert_eq!(
            c.server_key,
            crypto::hmac(ScramMechanism::Sha512, &salted, b"Server Key")
        );
        assert_eq!(c.salt.len(), SALT_LEN);
    }

    #[test]
    fn upsert_salted_matches_upsert_password() {
        let (_dir, _path, store) = temp_store();
        let salt = b"fixed-salt".to_vec();
        let salted = crypto::salted_password(ScramMechanism::Sha256, PW.as_bytes(), &salt, 4096);
        store
            .upsert_salted("carol", ScramMechanism::Sha256, 4096, &salt, &salted)
            .expect("upsert");
        assert!(store.verify_password("carol", PW));
        let expected = ScramCredential::from_password(ScramMechanism::Sha256, PW, salt, 4096);
        assert_eq!(store.scram("carol", ScramMechanism::Sha256), Some(expected));
    }

    #[test]
    fn invalid_input_is_rejected_without_touching_the_file() {
        let (_dir, path, store) = temp_store();
        let m = ScramMechanism::Sha256;
        assert!(matches!(
            store.upsert_password("", m, 4096, PW),
            Err(CredentialError::Rejected(_))
        ));
        assert!(matches!(
            store.upsert_password("a\0b", m, 4096, PW),
            Err(CredentialError::Rejected(_))
        ));
        assert!(matches!(
            store.upsert_password("a", m, 4095, PW),
            Err(CredentialError::Rejected(_))
        ));
        assert!(matches!(
            store.upsert_password("a", m, 16385, PW),
            Err(CredentialError::Rejected(_))
        ));
        assert!(matches!(
            store.upsert_password("a", m, 4096, ""),
            Err(CredentialError::Rejected(_))
        ));
        assert!(matches!(
            store.upsert_salted("a", m, 4096, b"", &[0; 32]),
            Err(CredentialError::Rejected(_))
        ));
        assert!(matches!(
            store.upsert_salted("a", m, 4096, b"s", &[]),
            Err(CredentialError::Rejected(_))
        ));
        assert!(matches!(
            store.upsert_salted("a", m, 4096, b"s", &[0; 64]),
            Err(CredentialError::Rejected(_))
        ));
        assert!(!path.exists());
        let empty = CredentialStore::empty();
        assert!(matches!(
            empty.upsert_password("a", m, 4096, PW),
            Err(CredentialError::NoUsersFile)
        ));
        assert!(!empty.verify_password("a", PW));
    }

    #[test]
    fn remove_one_mechanism_or_all() {
        let (_dir, path, store) = temp_store();
        for m in ScramMechanism::ALL {
            store.upsert_password("alice", m, 4096, PW).expect("upsert");
            store.upsert_password("bob", m, 4096, PW).expect("upsert");
        }
        assert!(store.remove("alice", Some(ScramMechanism::Sha256)).expect("remove"));
        assert!(!store
            .remove("alice", Some(ScramMechanism::Sha256))
            .expect("remove again"));
        assert_eq!(store.users()[0], ("alice".into(), vec![(ScramMechanism::Sha512, 4096)]));
        assert!(store
            .remove("alice", Some(ScramMechanism::Sha512))
            .expect("remove last"));
        assert!(store.remove("bob", None).expect("remove all"));
        assert!(!store.remove("nobody", None).expect("nothing"));
        assert!(store.users().is_empty());
        assert!(CredentialStore::open(&path).expect("reopen").users().is_empty());
    }

    fn valid_file_for(user: &str) -> String {
        let c = ScramCredential::from_password(ScramMechanism::Sha256, PW, b"salt".to_vec(), 4096);
        format!(
            "[[users]]\nname = \"{user}\"\n[[users.scram]]\nmechanism = \"SCRAM-SHA-256\"\niterations = 4096\n\
             salt = \"{}\"\nstored_key = \"{}\"\nserver_key = \"{}\"\n",
            crypto::b64_encode(&c.salt),
            crypto::b64_encode(&c.stored_key),
            crypto::b64_encode(&c.server_key)
        )
    }

    #[test]
    fn hand_written_file_loads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("users.toml");
        fs::write(&path, valid_file_for("dave")).expect("write");
        let store = CredentialStore::open(&path).expect("open");
        assert!(store.verify_password("dave", PW));
    }

    #[test]
    fn reload_picks_up_changes_and_keeps_old_contents_when_the_file_breaks() {
        let (_dir, path, store) = temp_store();
        assert!(!store.reload_if_changed().expect("nothing yet"));
        fs::write(&path, valid_file_for("erin")).expect("write");
        assert!(store.reload_if_changed().expect("reload"));
        assert!(store.verify_password("erin", PW));
        assert!(
            !store.reload_if_changed().expect("unchanged"),
            "no reload without a change"
        );

        // Written by someone else (a different length): picked up.
        let two = format!("{}{}", valid_file_for("erin"), valid_file_for("frank"));
        fs::write(&path, &two).expect("write");
        assert!(store.reload_if_changed().expect("reload"));
        assert_eq!(store.users().len(), 2);

        // A broken file: error, old contents kept, reported once.
        fs::write(&path, "[[users]]\nname = \"x\"\nbogus = 1\n").expect("write");
        assert!(matches!(
            store.reload_if_changed(),
            Err(CredentialError::Invalid { .. })
        ));
        assert_eq!(store.users().len(), 2);
        assert!(store.verify_password("frank", PW));
        assert!(!store.reload_if_changed().expect("same broken file is not re-reported"));
        // ...and writes refuse to overwrite it.
        assert!(matches!(
            store.upsert_password("gina", ScramMechanism::Sha256, 4096, PW),
            Err(CredentialError::FileBroken { .. })
        ));

        // Fixed again.
        fs::write(&path, valid_file_for("gina")).expect("write");
        assert!(store.reload_if_changed().expect("reload"));
        assert_eq!(store.users().len(), 1);

        // Removed: no users.
        fs::remove_file(&path).expect("rm");
        assert!(store.reload_if_changed().expect("reload"));
        assert!(store.users().is_empty());
    }

    #[test]
    fn writes_merge_with_changes_made_on_disk() {
        let (_dir, path, store) = temp_store();
        store
            .upsert_password("alice", ScramMechanism::Sha256, 4096, PW)
            .expect("upsert");
        let other = CredentialStore::open(&path).expect("second handle, like the CLI");
        other
            .upsert_password("bob", ScramMechanism::Sha256, 4096, PW)
            .expect("upsert");
        store
            .upsert_password("carol", ScramMechanism::Sha256, 4096, PW)
            .expect("upsert");
        let names: Vec<String> = CredentialStore::open(&path)
            .expect("open")
            .users()
            .into_iter()
            .map(|u| u.0)
            .collect();
        assert_eq!(names, ["alice", "bob", "carol"]);
    }

    #[test]
    fn invalid_files_report_every_problem_without_quoting_secrets() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("users.toml");
        let secret = crypto::b64_encode(&[7u8; 32]);
        let text = format!(
            "[[users]]\nname = \"a\"\n[[users.scram]]\nmechanism = \"SCRAM-SHA-1\"\niterations = 4096\n\
             salt = \"c2FsdA==\"\nstored_key = \"{secret}\"\nserver_key = \"{secret}\"\n\
             [[users.scram]]\nmechanism = \"SCRAM-SHA-512\"\niterations = 100\n\
             salt = \"\"\nstored_key = \"{secret}\"\nserver_key = \"!!\"\n\
             [[users]]\nname = \"a\"\n[[users]]\nname = \"\"\n"
        );
        fs::write(&path, text).expect("write");
        let err = CredentialStore::open(&path).expect_err("invalid");
        let CredentialError::Invalid { problems, .. } = &err else {
            panic!("{err}")
        };
        let all = problems.join("\n");
        for needle in [
            "SCRAM-SHA-1",
            "iterations 100",
            "salt is empty",
            "stored_key must be 64 bytes",
            "server_key is not valid base64",
            "more than once",
            "users[2]",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
        }
        assert!(!err.to_string().contains(&secret));

        // A TOML syntax error reports a line, not the line's contents.
        fs::write(&path, format!("[[users]]\nname = \"a\"\nstored_key = {secret}\n")).expect("write");
        let err = CredentialStore::open(&path).expect_err("invalid").to_string();
        assert!(err.contains("line 3"), "{err}");
        assert!(!err.contains(&secret[..20]), "{err}");
    }

    #[test]
    fn debug_output_is_redacted() {
        let c = ScramCredential::from_password(ScramMechanism::Sha256, PW, b"NaCl-salt".to_vec(), 4096);
        let shown = format!("{c:?}");
        assert!(shown.contains("4096"));
        for secret in [
            crypto::b64_encode(&c.stored_key),
            crypto::b64_encode(&c.server_key),
            format!("{:?}", c.stored_key),
            format!("{:?}", c.salt),
        ] {
            assert!(!shown.contains(&secret), "{shown}");
        }
        assert!(!shown.contains("NaCl") && !shown.contains(PW));
        let (_dir, _path, store) = temp_store();
        store
            .upsert_password("alice", ScramMechanism::Sha256, 4096, PW)
            .expect("upsert");
        let shown = format!("{store:?} {:?}", store.snapshot());
        assert!(shown.contains("alice") && !shown.contains(PW), "{shown}");
        let key = crypto::b64_encode(&store.scram("alice", ScramMechanism::Sha256).expect("cred").stored_key);
        assert!(!shown.contains(&key));
    }

    #[tokio::test]
    async fn reloader_task_applies_changes_and_stops_with_the_store() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("users.toml");
        let store = CredentialStore::open(&path).expect("open");
        let task = store.spawn_reloader(Duration::from_millis(20));
        fs::write(&path, valid_file_for("hank")).expect("write");
        let mut seen = false;
        for _ in 0..200 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            if store.scram("hank", ScramMechanism::Sha256).is_some() {
                seen = true;
                break;
            }
        }
        assert!(seen, "the reloader picked up the new file");
        drop(store);
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("task ends")
            .expect("no panic");
    }
}
