//! `ferrymq`: parse the command line, resolve settings, start logging, run the broker.
//! Everything of substance lives in the library half (`lib.rs`).

use std::io::Write;
use std::process::ExitCode;

use ferrymq::cli::{Cli, Command, Io, ServeArgs};
use ferrymq::{app, logging};

// mimalloc: lower fragmentation and faster small allocations than glibc malloc under many
// threads allocating and freeing message buffers.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

// No `#[tokio::main]`: the broker and the load generator each start the runtime they need
// (`ferrymq bench --threads`), and the other commands need none.
fn main() -> ExitCode {
    match Cli::command_from_args() {
        Command::Serve(args) => match tokio::runtime::Runtime::new() {
            Ok(runtime) => runtime.block_on(serve(args)),
            Err(err) => {
                eprintln!("ferrymq: error: cannot start the runtime: {err}");
                ExitCode::FAILURE
            }
        },
        Command::CheckConfig(args) => args.run(&mut std::io::stdout(), &mut std::io::stderr()),
        Command::HashPassword(args) => args.run(
            &mut std::io::stdin().lock(),
            &mut std::io::stdout(),
            &mut std::io::stderr(),
        ),
        Command::Bench(args) => ferrymq_bench::main(args),
        Command::Users(args) => with_terminal(|io| args.run(io)),
        Command::Vhosts(args) => with_terminal(|io| args.run(io)),
        Command::Permissions(args) => with_terminal(|io| args.run(io)),
        Command::ImportDefinitions(args) => with_terminal(|io| args.run(io)),
        Command::ExportDefinitions(args) => with_terminal(|io| args.run(io)),
    }
}

/// Runs a command with the process's standard input, output and error.
fn with_terminal(run: impl FnOnce(&mut Io<'_>) -> ExitCode) -> ExitCode {
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    run(&mut Io {
        input: &mut input,
        out: &mut out,
        err: &mut err,
    })
}

async fn serve(args: ServeArgs) -> ExitCode {
    let settings = match args.settings() {
        Ok(settings) => settings,
        Err(problems) => {
            let mut err = std::io::stderr();
            let _ = writeln!(err, "{problems}");
            let _ = writeln!(err, "ferrymq: error: invalid configuration, not starting");
            return ExitCode::FAILURE;
        }
    };
    if let Err(err) = logging::init(&settings.log_level) {
        eprintln!("ferrymq: error: {err:#}");
        return ExitCode::FAILURE;
    }
    tracing::info!(
        config = ?args.config,
        mqtt_listen = ?settings.mqtt_listen,
        ws_listen = ?settings.websocket.iter().map(|l| l.address).collect::<Vec<_>>(),
        tls = settings.tls.is_some(),
        data_dir = %settings.data_dir.display(),
        allow_anonymous = settings.auth.allow_anonymous,
        users = settings.auth.users.len(),
        "FerryMQ {} starting",
        env!("CARGO_PKG_VERSION"),
    );
    match app::run(settings).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("ferrymq: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
