//! The `vsva` command.
//!
//! * `vsva demo [--json]` — runs the demonstration of what vsva can do so far and prints a
//!   report (one line per check, then counters); exit status 0 only if every check passed.

mod demo;
mod report;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "vsva",
    version,
    about = "Shared Virtual Addressing and its virtualization, as executable models"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the demonstration and print a report.
    Demo {
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo { json } => {
            let report = demo::run()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report.to_json())?);
            } else {
                print!("{}", report.to_text());
            }
            if !report.all_passed() {
                std::process::exit(1);
            }
        }
    }
    Ok(())
}
