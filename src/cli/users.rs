//! `kgate users add|list|remove`: manage the users file (SCRAM credentials for SASL/PLAIN and
//! SASL/SCRAM) without a running kgate. A running kgate reloads the file when it changes.
//!
//! [`run`] is what `main` calls. The work is done by [`execute`], which takes the terminal as a
//! [`Terminal`] so tests can supply stdin and password prompts.
use std::io::{self, IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::security::credentials::{check_user_name, DEFAULT_ITERATIONS};
use crate::security::{CredentialError, CredentialStore, ScramCredential, ScramMechanism};

const FILE_HELP: &str = "The users file is TOML holding, per user and mechanism, the salt, iteration count and \
SCRAM StoredKey/ServerKey (never a password); kgate creates it with mode 0600. PLAIN logins are checked \
against the same keys. A running kgate reloads the file when it changes.";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MechanismChoice {
    #[value(name = "SCRAM-SHA-256")]
    ScramSha256,
    #[value(name = "SCRAM-SHA-512")]
    ScramSha512,
    /// Both SCRAM mechanisms.
    #[value(name = "all")]
    All,
}

impl MechanismChoice {
    fn mechanisms(self) -> Vec<ScramMechanism> {
        match self {
            MechanismChoice::ScramSha256 => vec![ScramMechanism::Sha256],
            MechanismChoice::ScramSha512 => vec![ScramMechanism::Sha512],
            MechanismChoice::All => ScramMechanism::ALL.to_vec(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum UsersCommand {
    /// Add a user, or set a new password for an existing one.
    #[command(long_about = "Add a user, or set a new password for an existing one.\n\n\
The password is read from the terminal (asked twice), or from stdin with --password-stdin:\n\n  \
printf '%s\\n' \"$PASSWORD\" | kgate users add alice --password-stdin --users-file users.toml\n\n\
The user can then log in with SASL/PLAIN and with the chosen SCRAM mechanisms as principal User:<NAME>. \
Credentials for other mechanisms of the same user are kept.")]
    #[command(after_help = FILE_HELP)]
    Add {
        /// The user name; the principal is User:<NAME>. Case-sensitive. SCRAM clients can only send
        /// 7-bit ASCII names.
        #[arg(value_name = "NAME")]
        name: String,
        /// Which SCRAM credentials to create.
        #[arg(long, value_enum, default_value_t = MechanismChoice::All, ignore_case = true)]
        mechanism: MechanismChoice,
        /// PBKDF2 iterations; Kafka accepts 4096..=16384. More is slower for attackers and for logins.
        #[arg(long, value_name = "N", default_value_t = DEFAULT_ITERATIONS,
              value_parser = clap::value_parser!(u32).range(4096..=16384))]
        iterations: u32,
        /// Read the password from stdin (one line) instead of asking on the terminal.
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        file: UsersFileArg,
    },
    /// List users with their mechanisms and iteration counts (never secrets).
    #[command(after_help = FILE_HELP)]
    List {
        #[command(flatten)]
        file: UsersFileArg,
    },
    /// Remove a user, or only one of its SCRAM credentials.
    #[command(after_help = FILE_HELP)]
    Remove {
        /// The user name.
        #[arg(value_name = "NAME")]
        name: String,
        /// Remove only this mechanism's credential; `all` removes the user.
        #[arg(long, value_enum, default_value_t = MechanismChoice::All, ignore_case = true)]
        mechanism: MechanismChoice,
        #[command(flatten)]
        file: UsersFileArg,
    },
}

/// Which users file: named directly, or the one the server reads (`[security] users_file` of its
/// configuration; a relative path is taken from the current directory, as `kgate serve` takes it).
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
#[group(required = true, multiple = false)]
pub struct UsersFileArg {
    /// The users file (created by add if missing).
    #[arg(long, value_name = "FILE")]
    pub users_file: Option<PathBuf>,
    /// The server's configuration file: its [security] users_file is the one managed.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

impl UsersFileArg {
    pub fn resolve(&self) -> Result<PathBuf, CliError> {
        match (&self.users_file, &self.config) {
            (Some(file), _) => Ok(file.clone()),
            (None, Some(config)) => {
                let config = crate::config::Config::load(config).map_err(|e| CliError {
                    message: format!("{}: {e}", config.display()),
                    exit_code: 64,
                })?;
                config.security.users_file.ok_or_else(|| CliError {
                    message: "the configuration has no [security] users_file: add one (e.g. users_file = \
                              \"users.toml\") or give --users-file"
                        .into(),
                    exit_code: 64,
                })
            }
            (None, None) => Err(CliError {
                message: "give --users-file FILE or --config kgate.toml".into(),
                exit_code: 64,
            }),
        }
    }
}

/// Where passwords come from. [`execute`] never prints or stores what it reads here.
pub trait Terminal {
    fn stdin_is_terminal(&self) -> bool;
    /// All of stdin.
    fn read_stdin(&mut self) -> io::Result<String>;
    /// Asks on the terminal without echo.
    fn prompt_password(&mut self, prompt: &str) -> io::Result<String>;
}

/// The process's real stdin and controlling terminal.
pub struct SystemTerminal;

impl Terminal for SystemTerminal {
    fn stdin_is_terminal(&self) -> bool {
        io::stdin().is_terminal()
    }

    fn read_stdin(&mut self) -> io::Result<String> {
        let mut text = String::new();
        io::stdin().take(64 * 1024).read_to_string(&mut text)?;
        Ok(text)
    }

    fn prompt_password(&mut self, prompt: &str) -> io::Result<String> {
        rpassword::prompt_password(prompt)
    }
}

/// A failed command: the message for stderr and the exit code (sysexits.h values, like `kgate serve`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    pub message: String,
    pub exit_code: u8,
}

impl CliError {
    /// EX_USAGE
    fn usage(message: impl Into<String>) -> CliError {
        CliError {
            message: message.into(),
            exit_code: 64,
        }
    }

    fn not_found(message: impl Into<String>) -> CliError {
        CliError {
            message: message.into(),
            exit_code: 1,
        }
    }

    fn from_store(err: CredentialError) -> CliError {
        let message = err.to_string();
        match err {
            CredentialError::Io { source, .. } => {
                let hint = match source.kind() {
                    io::ErrorKind::NotFound => " (does the directory exist?)",
                    io::ErrorKind::PermissionDenied => {
                        " (check the owner and permissions of the file and its directory)"
                    }
                    _ => "",
                };
                CliError {
                    message: format!("{message}{hint}"),
                    exit_code: 74,
                }
            }
            CredentialError::Invalid { .. } | CredentialError::FileBroken { .. } => CliError {
                message: format!(
                    "{message}\nFix the file by hand (see `kgate users add --help` for the format) or remove it."
                ),
                exit_code: 65,
            },
            CredentialError::Rejected(_) => CliError::usage(message),
            CredentialError::NoUsersFile | CredentialError::Random(_) => CliError { message, exit_code: 70 },
        }
    }
}

/// Runs the command on the real terminal: output on stdout, errors on stderr.
pub fn run(cmd: UsersCommand) -> ExitCode {
    match execute(cmd, &mut SystemTerminal) {
        Ok(output) => {
            print!("{output}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kgate: {}", e.message);
            ExitCode::from(e.exit_code)
        }
    }
}

/// Runs the command and returns what to print on stdout.
pub fn execute(cmd: UsersCommand, terminal: &mut dyn Terminal) -> Result<String, CliError> {
    match cmd {
        UsersCommand::Add {
            name,
            mechanism,
            iterations,
            password_stdin,
            file,
        } => add(&name, mechanism, iterations, password_stdin, &file.resolve()?, terminal),
        UsersCommand::List { file } => list(&file.resolve()?),
        UsersCommand::Remove { name, mechanism, file } => remove(&name, mechanism, &file.resolve()?),
    }
}

fn open(path: &Path) -> Result<std::sync::Arc<CredentialStore>, CliError> {
    CredentialStore::open(path).map_err(CliError::from_store)
}

fn read_password(name: &str, from_stdin: bool, terminal: &mut dyn Terminal) -> Result<String, CliError> {
    if from_stdin {
        let text = terminal.read_stdin().map_err(|e| CliError {
            message: format!("cannot read the password from stdin: {e}"),
            exit_code: 74,
        })?;
        let line = text
            .strip_suffix('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .unwrap_or(&text);
        if line.contains(['\n', '\r']) {
            return Err(CliError::usage(
                "stdin holds more than one line; give only the password, on one line",
            ));
        }
        if line.is_empty() {
            return Err(CliError::usage(
                "the password read from stdin is empty; nothing was changed",
            ));
        }
        return Ok(line.to_owned());
    }
    if !terminal.stdin_is_terminal() {
        return Err(CliError::usage(format!(
            "stdin is not a terminal, so the password cannot be asked for; pass it on stdin with \
             --password-stdin, e.g.\n  printf '%s\\n' \"$PASSWORD\" | kgate users add {name} --password-stdin --users-file FILE"
        )));
    }
    let io_err = |e: io::Error| CliError {
        message: format!("cannot read the password from the terminal: {e}"),
        exit_code: 74,
    };
    let first = terminal
        .prompt_password(&format!("Password for {name}: "))
        .map_err(io_err)?;
    if first.is_empty() {
        return Err(CliError::usage("the password is empty; nothing was changed"));
    }
    let second = terminal.prompt_password("Repeat the password: ").map_err(io_err)?;
    if first != second {
        return Err(CliError::usage("the two passwords differ; nothing was changed"));
    }
    Ok(first)
}

fn mechanism_list(mechanisms: &[ScramMechanism]) -> String {
    mechanisms.iter().map(|m| m.name()).collect::<Vec<_>>().join(", ")
}

fn add(
    name: &str,
    choice: MechanismChoice,
    iterations: u32,
    password_stdin: bool,
    path: &Path,
    terminal: &mut dyn Terminal,
) -> Result<String, CliError> {
    check_user_name(name).map_err(CliError::from_store)?;
    let mechanisms = choice.mechanisms();
    for m in &mechanisms {
        if !m.iterations_in_range(iterations) {
            return Err(CliError::usage(format!(
                "--iterations must be within {}..={} for {m}",
                m.min_iterations(),
                m.max_iterations()
            )));
        }
    }
    // Open first: a broken file is reported before the password is asked for.
    let store = open(path)?;
    let password = read_password(name, password_stdin, terminal)?;
    let credentials = mechanisms
        .iter()
        .map(|m| ScramCredential::generate(*m, &password, iterations).map(|c| (*m, c)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(CliError::from_store)?;
    drop(password);
    let existed = store
        .update(|table| {
            let existed = table.contains_user(name);
            for (m, c) in credentials {
                table.upsert(name, m, c);
            }
            existed
        })
        .map_err(CliError::from_store)?;
    let mut out = format!(
        "{} user {name:?} {} {}: {} ({iterations} iterations)\n",
        if existed { "updated" } else { "added" },
        if existed { "in" } else { "to" },
        path.display(),
        mechanism_list(&mechanisms)
    );
    if !name.is_ascii() {
        // Kafka's SCRAM grammar (ScramMessages.SASLNAME) is 7-bit.
        out.push_str("note: SCRAM clients cannot send non-ASCII user names; this user can log in with PLAIN only\n");
    }
    Ok(out)
}

fn list(path: &Path) -> Result<String, CliError> {
    let store = open(path)?;
    let users = store.users();
    if users.is_empty() {
        return Ok(if path.exists() {
            format!("no users in {}\n", path.display())
        } else {
            format!("{} does not exist yet: no users\n", path.display())
        });
    }
    let rows: Vec<(String, String, String)> = users
        .iter()
        .flat_map(|(name, creds)| {
            creds
                .iter()
                .map(move |(m, i)| (name.clone(), m.name().to_owned(), i.to_string()))
        })
        .collect();
    let width = |f: fn(&(String, String, String)) -> &String, header: &str| {
        rows.iter()
            .map(|r| f(r).chars().count())
            .chain([header.len()])
            .max()
            .unwrap_or(0)
    };
    let (w_user, w_mech) = (width(|r| &r.0, "USER"), width(|r| &r.1, "MECHANISM"));
    let mut out = format!("{:<w_user$}  {:<w_mech$}  ITERATIONS\n", "USER", "MECHANISM");
    for (user, mech, iters) in &rows {
        out.push_str(&format!("{user:<w_user$}  {mech:<w_mech$}  {iters}\n"));
    }
    Ok(out)
}

fn remove(name: &str, choice: MechanismChoice, path: &Path) -> Result<String, CliError> {
    let store = open(path)?;
    let mechanism = match choice {
        MechanismChoice::All => None,
        MechanismChoice::ScramSha256 => Some(ScramMechanism::Sha256),
        MechanismChoice::ScramSha512 => Some(ScramMechanism::Sha512),
    };
    let removed = store.remove(name, mechanism).map_err(CliError::from_store)?;
    let file = path.display();
    match (removed, mechanism) {
        (true, None) => Ok(format!("removed user {name:?} from {file}\n")),
        (true, Some(m)) => Ok(format!("removed the {m} credential of user {name:?} from {file}\n")),
        (false, None) => Err(CliError::not_found(format!(
            "there is no user {name:?} in {file}; `kgate users list --users-file {file}` shows who is there"
        ))),
        (false, Some(m)) => Err(CliError::not_found(format!(
            "user {name:?} has no {m} credential in {file}; `kgate users list --users-file {file}` shows what is there"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, FromArgMatches, Parser};

    /// Parses like `kgate users ...` would.
    #[derive(Parser, Debug)]
    #[command(name = "kgate-users")]
    struct TestCli {
        #[command(subcommand)]
        cmd: UsersCommand,
    }

    fn parse(args: &[&str]) -> Result<UsersCommand, clap::Error> {
        let matches =
            TestCli::command().try_get_matches_from(std::iter::once("kgate-users").chain(args.iter().copied()))?;
        TestCli::from_arg_matches(&matches).map(|c| c.cmd)
    }

    #[derive(Default)]
    struct FakeTerminal {
        tty: bool,
        stdin: String,
        prompts: Vec<String>,
        asked: Vec<String>,
    }

    impl Terminal for FakeTerminal {
        fn stdin_is_terminal(&self) -> bool {
            self.tty
        }
        fn read_stdin(&mut self) -> io::Result<String> {
            Ok(std::mem::take(&mut self.stdin))
        }
        fn prompt_password(&mut self, prompt: &str) -> io::Result<String> {
            self.asked.push(prompt.to_owned());
            if self.prompts.is_empty() {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "no more input"));
            }
            Ok(self.prompts.remove(0))
        }
    }

    fn stdin(text: &str) -> FakeTerminal {
        FakeTerminal {
            stdin: text.into(),
            ..Default::default()
        }
    }

    fn file_arg(dir: &tempfile::TempDir) -> String {
        dir.path().join("users.toml").to_string_lossy().into_owned()
    }

    fn exec(args: &[&str], term: &mut FakeTerminal) -> Result<String, CliError> {
        execute(parse(args).expect("arguments parse"), term)
    }

    #[test]
    fn the_servers_config_names_the_users_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let users = dir.path().join("server-users.toml");
        let config = dir.path().join("kgate.toml");
        std::fs::write(
            &config,
            format!("[security]\nusers_file = {:?}\n", users.display().to_string()),
        )
        .expect("write");
        let config_arg = config.to_string_lossy().into_owned();
        let out = exec(
            &["add", "carol", "--password-stdin", "--config", &config_arg],
            &mut stdin("pw-123456\n"),
        )
        .expect("add through --config");
        assert!(out.contains("carol") && users.is_file(), "{out}");
        let listed = exec(&["list", "--config", &config_arg], &mut stdin("")).expect("list");
        assert!(listed.contains("carol"), "{listed}");
        exec(&["remove", "carol", "--config", &config_arg], &mut stdin("")).expect("remove");
        assert!(
            !exec(&["list", "--users-file", &users.to_string_lossy()], &mut stdin(""))
                .expect("list")
                .contains("carol")
        );

        std::fs::write(&config, "[broker]\nnode_id = 1\n").expect("write");
        let e = exec(&["list", "--config", &config_arg], &mut stdin("")).expect_err("no users_file");
        assert!(
            e.exit_code == 64 && e.message.contains("no [security] users_file"),
            "{}",
            e.message
        );
        std::fs::write(&config, "[security]\nno_such_key = 1\n").expect("write");
        let e = exec(&["list", "--config", &config_arg], &mut stdin("")).expect_err("broken config");
        assert!(e.exit_code == 64 && e.message.contains("kgate.toml"), "{}", e.message);
        assert!(parse(&["list"]).is_err(), "a users file or a config is required");
        assert!(
            parse(&["list", "--users-file", "a", "--config", "b"]).is_err(),
            "not both"
        );
    }

    #[test]
    fn add_from_stdin_list_and_remove() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = file_arg(&dir);
        let out = exec(
            &["add", "alice", "--password-stdin", "--users-file", &f],
            &mut stdin("s3cret-pw\n"),
        )
        .expect("add");
        assert!(
            out.starts_with("added user \"alice\" to ")
                && out.contains("SCRAM-SHA-256, SCRAM-SHA-512 (8192 iterations)"),
            "{out}"
        );
        assert!(!out.contains("note:"), "{out}");
        let out = exec(
            &[
                "add",
                "bob",
                "--mechanism",
                "SCRAM-SHA-512",
                "--iterations",
                "4096",
                "--password-stdin",
                "--users-file",
                &f,
            ],
            &mut stdin("bob-pw\r\n"),
        )
        .expect("add bob");
        assert!(out.contains("SCRAM-SHA-512 (4096 iterations)"), "{out}");
        let out = exec(
            &["add", "zoë", "--password-stdin", "--users-file", &f],
            &mut stdin("pw"),
        )
        .expect("add zoë");
        assert!(out.contains("PLAIN only"), "{out}");
        exec(&["remove", "zoë", "--users-file", &f], &mut FakeTerminal::default()).expect("remove zoë");

        let store = CredentialStore::open(Path::new(&f)).expect("open");
        assert!(store.verify_password("alice", "s3cret-pw"));
        assert!(store.verify_password("bob", "bob-pw"), "CRLF stripped");
        assert!(store.scram("bob", ScramMechanism::Sha256).is_none());

        let listed = exec(&["list", "--users-file", &f], &mut FakeTerminal::default()).expect("list");
        assert_eq!(
            listed,
            "USER   MECHANISM      ITERATIONS\n\
             alice  SCRAM-SHA-256  8192\n\
             alice  SCRAM-SHA-512  8192\n\
             bob    SCRAM-SHA-512  4096\n"
        );
        let text = std::fs::read_to_string(&f).expect("read");
        assert!(!text.contains("s3cret-pw") && !listed.contains("s3cret-pw"));

        // Changing a password keeps the other mechanism's credential.
        let out = exec(
            &[
                "add",
                "alice",
                "--mechanism",
                "scram-sha-256",
                "--password-stdin",
                "--users-file",
                &f,
            ],
            &mut stdin("new-pw"),
        )
        .expect("update");
        assert!(out.starts_with("updated user \"alice\""), "{out}");
        let store = CredentialStore::open(Path::new(&f)).expect("open");
        assert_eq!(store.users()[0].1.len(), 2);

        let out = exec(
            &["remove", "alice", "--mechanism", "SCRAM-SHA-512", "--users-file", &f],
            &mut FakeTerminal::default(),
        )
        .expect("remove one");
        assert!(out.contains("removed the SCRAM-SHA-512 credential"), "{out}");
        let err = exec(
            &["remove", "alice", "--mechanism", "SCRAM-SHA-512", "--users-file", &f],
            &mut FakeTerminal::default(),
        )
        .expect_err("already gone");
        assert_eq!(err.exit_code, 1);
        assert!(err.message.contains("kgate users list"), "{}", err.message);
        exec(&["remove", "alice", "--users-file", &f], &mut FakeTerminal::default()).expect("remove user");
        exec(&["remove", "bob", "--users-file", &f], &mut FakeTerminal::default()).expect("remove user");
        let listed = exec(&["list", "--users-file", &f], &mut FakeTerminal::default()).expect("list");
        assert!(listed.starts_with("no users in"), "{listed}");
    }

    #[test]
    fn prompt_twice_on_a_terminal() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = file_arg(&dir);
        let mut term = FakeTerminal {
            tty: true,
            prompts: vec!["pw-1".into(), "pw-1".into()],
            ..Default::default()
        };
        exec(&["add", "carol", "--users-file", &f], &mut term).expect("add");
        assert_eq!(term.asked, ["Password for carol: ", "Repeat the password: "]);
        assert!(CredentialStore::open(Path::new(&f))
            .expect("open")
            .verify_password("carol", "pw-1"));

        let mut term = FakeTerminal {
            tty: true,
            prompts: vec!["pw-1".into(), "pw-2".into()],
            ..Default::default()
        };
        let err = exec(&["add", "dave", "--users-file", &f], &mut term).expect_err("mismatch");
        assert_eq!(err.exit_code, 64);
        assert!(
            err.message.contains("differ") && !err.message.contains("pw-"),
            "{}",
            err.message
        );
        assert!(CredentialStore::open(Path::new(&f))
            .expect("open")
            .scram("dave", ScramMechanism::Sha256)
            .is_none());
    }

    #[test]
    fn no_terminal_without_password_stdin_is_refused_with_advice() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = file_arg(&dir);
        let mut term = FakeTerminal {
            tty: false,
            prompts: vec!["x".into(), "x".into()],
            ..Default::default()
        };
        let err = exec(&["add", "erin", "--users-file", &f], &mut term).expect_err("no tty");
        assert_eq!(err.exit_code, 64);
        assert!(err.message.contains("--password-stdin"), "{}", err.message);
        assert!(term.asked.is_empty(), "never prompted");
        assert!(!Path::new(&f).exists());
    }

    #[test]
    fn bad_input_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = file_arg(&dir);
        for (input, needle) in [("\n", "empty"), ("", "empty"), ("a\nb\n", "more than one line")] {
            let err = exec(&["add", "x", "--password-stdin", "--users-file", &f], &mut stdin(input)).expect_err(input);
            assert_eq!(err.exit_code, 64);
            assert!(err.message.contains(needle), "{input:?}: {}", err.message);
        }
        let err = exec(&["add", "", "--password-stdin", "--users-file", &f], &mut stdin("pw")).expect_err("empty name");
        assert_eq!(err.exit_code, 64);
        assert!(parse(&["add", "x", "--iterations", "100", "--users-file", &f]).is_err());
        assert!(parse(&["add", "x", "--iterations", "16385", "--users-file", &f]).is_err());
        assert!(parse(&["add", "x", "--mechanism", "SCRAM-SHA-1", "--users-file", &f]).is_err());
        assert!(parse(&["add", "x"]).is_err(), "--users-file is required");
        assert!(!Path::new(&f).exists());

        let missing_dir = dir.path().join("no/such/dir/users.toml").to_string_lossy().into_owned();
        let err = exec(
            &["add", "x", "--password-stdin", "--users-file", &missing_dir],
            &mut stdin("pw"),
        )
        .expect_err("no dir");
        assert_eq!(err.exit_code, 74);
        assert!(err.message.contains("does the directory exist"), "{}", err.message);
    }

    #[test]
    fn broken_file_is_reported_before_asking_for_the_password() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = file_arg(&dir);
        std::fs::write(&f, "[[users]]\nname = 1\n").expect("write");
        let mut term = FakeTerminal {
            tty: true,
            prompts: vec!["x".into(), "x".into()],
            ..Default::default()
        };
        let err = exec(&["add", "x", "--users-file", &f], &mut term).expect_err("broken");
        assert_eq!(err.exit_code, 65);
        assert!(term.asked.is_empty());
        assert_eq!(
            exec(&["list", "--users-file", &f], &mut FakeTerminal::default())
                .expect_err("broken")
                .exit_code,
            65
        );
    }

    #[test]
    fn help_texts_render() {
        for sub in ["add", "list", "remove"] {
            let err = parse(&[sub, "--help"]).expect_err("help exits");
            let help = err.to_string();
            assert!(help.contains("--users-file"), "{sub}: {help}");
            assert!(help.contains("never a password"), "{sub}: {help}");
        }
        let help = parse(&["add", "--help"]).expect_err("help").to_string();
        assert!(
            help.contains("--password-stdin") && help.contains("SCRAM-SHA-512") && help.contains("[default: 8192]"),
            "{help}"
        );
    }
}
