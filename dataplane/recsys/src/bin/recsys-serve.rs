//! `recsys-serve`: the server alone, with exactly the flags of `recsys serve`, and the router
//! as `recsys-serve route` with those of `recsys route`. It names only `recsys-serving`, never
//! this package's library, so rustc links no training code and no libtorch: serving and
//! router pods map none of it. The user tower runs in plain Rust and the ranker's trees in the
//! QuickScorer-style forest.

use clap::Parser;
use recsys_serving::route_command::{self, RouteArgs};
use recsys_serving::serve_command::{self, ServeArgs};

#[derive(Parser)]
#[command(
    name = "recsys-serve",
    version,
    about = "Serve a published recsys model version over gRPC (and HTTP/JSON), or route an experiment",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(flatten)]
    serve: ServeArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand)]
enum Command {
    /// The sticky experiment router: forwards each user to the arm the routing table assigns.
    Route(RouteArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    recsys_serving::serving::tls::install_default_provider();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Some(Command::Route(args)) => runtime.block_on(route_command::run(args)),
        None => runtime.block_on(serve_command::run(cli.serve)),
    }
}
