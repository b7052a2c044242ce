//! `recsys-serve`: the server alone, with exactly the flags of `recsys serve`. It names only
//! `recsys-serving`, never this package's library, so rustc links no training code and no
//! libtorch: a serving pod maps none of it. The user tower runs in plain Rust and the ranker's
//! trees in the QuickScorer-style forest.

use clap::Parser;
use recsys_serving::serve_command::{self, ServeArgs};

#[derive(Parser)]
#[command(
    name = "recsys-serve",
    version,
    about = "Serve a published recsys model version over gRPC (and HTTP/JSON)"
)]
struct Cli {
    #[command(flatten)]
    serve: ServeArgs,
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
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve_command::run(cli.serve))
}
