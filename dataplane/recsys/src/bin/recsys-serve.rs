//! `recsys-serve`: the server alone, with exactly the flags of `recsys serve`, and the router
//! as `recsys-serve route` with those of `recsys route`. It names only `recsys-serving`, never
//! this package's library, so rustc links no training code and no libtorch: serving and
//! router pods map none of it. The user tower runs in plain Rust and the ranker's trees in the
//! QuickScorer-style forest.

use clap::Parser;
use recsys_serving::route_command::{self, RouteArgs};
use recsys_serving::serve_command::{self, ServeArgs};

/// `recsys-serve <serve flags>`: the server.
#[derive(Parser)]
#[command(
    name = "recsys-serve",
    version,
    about = "Serve a published recsys model version over gRPC (and HTTP/JSON)",
    after_help = "The experiment router: recsys-serve route --help"
)]
struct ServeCli {
    #[command(flatten)]
    serve: ServeArgs,
}

/// `recsys-serve route <route flags>`: the router. A parser of its own, because the server's
/// flags have required values that a subcommand beside them could not waive.
#[derive(Parser)]
#[command(name = "recsys-serve", version)]
struct RouteCli {
    #[command(subcommand)]
    command: RouteCommand,
}

#[derive(clap::Subcommand)]
enum RouteCommand {
    /// The sticky experiment router: forwards each user to the arm the routing table assigns.
    Route(RouteArgs),
}

enum Job {
    Serve(Box<ServeArgs>),
    Route(Box<RouteArgs>),
}

fn main() -> anyhow::Result<()> {
    let routing = std::env::args_os()
        .nth(1)
        .is_some_and(|word| word == "route");
    let job = if routing {
        let RouteCommand::Route(args) = RouteCli::parse().command;
        Job::Route(Box::new(args))
    } else {
        Job::Serve(Box::new(ServeCli::parse().serve))
    };
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
    match job {
        Job::Route(args) => runtime.block_on(route_command::run(*args)),
        Job::Serve(args) => runtime.block_on(serve_command::run(*args)),
    }
}
