//! The `kgate` command: CLI → config → telemetry → app.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use kgate::config::Config;

/// mimalloc reserves large blocks with MAP_NORESERVE (when the kernel allows overcommit, Linux's
/// default). That matters for safety, not only speed: the kafka-protocol crate sizes a Vec from an
/// array length read off the wire before decoding any element, so a tiny malformed request can ask
/// for hundreds of GiB. With glibc malloc that allocation fails and aborts the whole process; with
/// mimalloc it is an untouched lazy mapping, the decode then fails on the short buffer, and only
/// that connection is closed (tests/peers/test_bad_input.py covers it).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "kgate",
    version,
    about = "A Kafka-protocol security gateway with an embedded single-node Kafka broker",
    long_about = "kgate speaks the Kafka protocol. `kgate serve` runs a persistent single-node \
Kafka-compatible broker that real Kafka clients (librdkafka, kafka-python, Java) use unchanged.\n\n\
Logging is controlled with RUST_LOG (e.g. RUST_LOG=kgate=debug)."
)]
struct Cli {
    /// Log line format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the broker: PLAINTEXT on 127.0.0.1:9092 with data in ./data unless a config says otherwise.
    #[command(long_about = "Run kgate with the embedded broker.\n\n\
Without --config: one PLAINTEXT listener on 127.0.0.1:9092, data under ./data, Kafka's defaults \
(auto-created topics with 1 partition, 7-day retention, 1 GiB segments).\n\n\
The config file is TOML; unknown keys are errors and every problem is reported at once \
(exit code 64) before any port is bound. See README.md, \"Configuration reference\".\n\n\
SIGTERM or Ctrl-C stops accepting connections, finishes requests in flight, flushes the logs and exits 0.")]
    Serve {
        /// TOML configuration file.
        #[arg(long, short, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Override `data_dir` from the config.
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Manage the SASL/SCRAM users kgate authenticates (the `security.users_file`).
    #[command(subcommand)]
    Users(kgate::cli::users::UsersCommand),
    /// Make certificates for trying TLS and mTLS (a dev CA, a server certificate, client certificates).
    #[command(subcommand)]
    Certs(kgate::cli::certs::CertsCommand),
    /// Kerberos principal names: what sasl.kerberos.principal.to.local rules make of a principal.
    #[command(subcommand)]
    Principal(kgate::cli::principal::PrincipalCommand),
    /// Kafka ACLs from a policy file: `kgate acls list` shows its bindings, `kgate acls check` decides one
    /// action as Kafka's StandardAuthorizer would and names the binding that decided.
    #[command(subcommand)]
    Acls(kgate::cli::acls::AclsCommand),
    /// Diagnose what a client will run into: `kgate doctor kerberos` walks a Kerberos login step by step,
    /// `kgate doctor listeners` checks every advertised broker address from where the clients run.
    #[command(subcommand)]
    Doctor(kgate::cli::doctor::DoctorCommand),
    /// Check a configuration file and print every problem found, without starting anything.
    CheckConfig {
        #[arg(value_name = "FILE")]
        config: PathBuf,
    },
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    // Usage errors exit 64 (EX_USAGE) like every other usage problem kgate reports; --help and
    // --version print and exit 0.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 64 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    init_logging(cli.log_format);
    match cli.command {
        Command::Serve { config, data_dir } => {
            let loaded = match &config {
                Some(path) => Config::load(path),
                None => Ok(Config::default()),
            };
            let mut config = match loaded {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("kgate: {e}");
                    return ExitCode::from(e.exit_code() as u8);
                }
            };
            if let Some(dir) = data_dir {
                config.data_dir = dir;
            }
            let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("kgate: cannot start the async runtime: {e}");
                    return ExitCode::from(70);
                }
            };
            match runtime.block_on(kgate::app::serve(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("kgate: {e}");
                    ExitCode::from(e.exit_code() as u8)
                }
            }
        }
        Command::Users(cmd) => kgate::cli::users::run(cmd),
        Command::Certs(cmd) => kgate::cli::certs::run(cmd),
        Command::Principal(cmd) => kgate::cli::principal::run(cmd),
        Command::Doctor(cmd) => kgate::cli::doctor::run(cmd),
        Command::Acls(cmd) => kgate::cli::acls::run(cmd),
        Command::CheckConfig { config } => match Config::load(&config).and_then(|c| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| kgate::error::StartupError::InvalidConfig(vec![format!("cannot start a runtime: {e}")]))?;
            runtime.block_on(kgate::app::check(&c))
        }) {
            Ok(()) => {
                println!("{}: ok", config.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("kgate: {e}");
                ExitCode::from(e.exit_code() as u8)
            }
        },
    }
}
