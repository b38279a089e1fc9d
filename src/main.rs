//! The `mediagate` command: keygen, sign, serve, inspect, demo.

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;

/// Writes a line to stdout, returning the error instead of panicking as
/// `println!` does: a reader that went away (`mediagate inspect ... | head
/// -1`) is a `BrokenPipe` error, which `main` takes as a quiet end.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

mod cli;
mod config;
mod demo;
mod inspect;
mod keys;
mod log_line;
mod logging;
mod redis_revocations;
mod revoke;
mod serve;
mod sign;

use cli::{Cli, Command};

/// mimalloc instead of the system allocator: the server allocates and frees
/// small buffers on every request and a task on every connection, which
/// mimalloc does with less CPU than glibc's malloc (BENCHMARKS.md, "Design
/// measurements").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Turns transparent huge pages off for this process, for the server. mimalloc
/// asks for them (`MADV_HUGEPAGE`), and a huge page is resident whole once a
/// byte of it is written: buffers that connections allocate but hardly
/// write, as HTTP/2's codec does, would then count whole for every idle
/// connection (BENCHMARKS.md, "Idle HTTP/2 connections and huge pages").
/// Where the kernel refuses, nothing changes.
fn without_huge_pages() {
    if let Err(e) = rustix::thread::disable_transparent_huge_pages(true) {
        tracing::debug!(error = %e, "transparent huge pages left as they were");
    }
}

/// Runs one command; `Ok(false)` for a negative answer (an invalid link).
fn run(cli: Cli) -> Result<bool> {
    match cli.command {
        Command::Keygen {
            out,
            id,
            no_activate,
        } => keys::keygen(&out, id, !no_activate).map(|()| true),
        Command::Keys { action } => keys::keys(action).map(|()| true),
        Command::Sign(args) => sign::sign(&args).map(|()| true),
        Command::Inspect {
            url,
            keys,
            revocations,
            redis,
            redis_key,
            leeway,
        } => {
            let rules = match redis {
                Some(url) => {
                    redis_revocations::refuse_password_in_args(&url)?;
                    inspect::Rules::Redis(url, redis_key)
                }
                None => inspect::Rules::File(revocations),
            };
            inspect::inspect(&url, keys.keys.as_deref(), rules, leeway)
        }
        Command::Revoke(args) => revoke::revoke(&args).map(|()| true),
        Command::Serve(args) => {
            let _log = logging::init_logging()?;
            without_huge_pages();
            serve::serve(args).map(|()| true)
        }
        Command::Demo { listen } => {
            let _log = logging::init_logging()?;
            without_huge_pages();
            demo::run(listen).map(|()| true)
        }
    }
}

/// An error and its causes on one line, each cause once: the library errors
/// name their cause in their own message and also return it as `source`,
/// which `{:#}` would print a second time.
fn describe(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// A clap error as one line: its first paragraph (the message, and for a
/// missing argument the arguments it lists), without the tips and usage
/// block that follow the first blank line.
fn one_line(text: &str) -> String {
    let words: Vec<&str> = text
        .lines()
        .take_while(|line| !line.trim().is_empty())
        .map(|line| line.trim().trim_start_matches("error: "))
        .collect();
    if words.is_empty() {
        "invalid arguments".to_owned()
    } else {
        words.join(" ")
    }
}

/// Whether `e` comes from writing to a pipe whose reader has gone.
fn broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Writes a line to stderr, ignoring a failure (`eprintln!` would panic on
/// it, and there is nowhere left to report it).
pub(crate) fn warn(line: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion)
                || matches!(
                    e.kind(),
                    ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
                )
            {
                let _ = e.print();
                return if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                    ExitCode::from(2)
                } else {
                    ExitCode::SUCCESS
                };
            }
            warn(format_args!("mediagate: {}", one_line(&e.to_string())));
            return ExitCode::from(2);
        }
    };
    match run(cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        // The reader of our output went away: nothing is wrong with us.
        Err(e) if broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            warn(format_args!("mediagate: error: {}", describe(&e)));
            ExitCode::from(2)
        }
    }
}
