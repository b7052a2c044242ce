//! `recsys`: the data plane's one binary. Pipeline jobs and the server are subcommands so the
//! operator's Jobs and Deployments run the same image.

use clap::{Parser, Subcommand};
use recsys::pipeline::demo::{self, DemoOptions, SplitKind};
use recsys::serving::{grpc, Engine};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "recsys",
    version,
    about = "Recommendation data plane: train, evaluate, serve"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train, evaluate, publish and serve on MovieLens 100K, then ask for one recommendation.
    Demo {
        /// Directory with ml-100k.{inter,item,user}; found automatically when omitted.
        #[arg(long, env = "RECSYS_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// Where versioned artifact directories are written.
        #[arg(long, default_value = "artifacts")]
        artifacts_dir: PathBuf,
        /// External user id to recommend for (default: a warm test user).
        #[arg(long)]
        user: Option<String>,
        /// Upper bound on two-tower epochs (early stopping usually ends sooner).
        #[arg(long, default_value_t = 30)]
        max_epochs: usize,
        /// Ranker hyper-parameter configurations to try (time-based cross-validation).
        #[arg(long, default_value_t = 12)]
        ranker_trials: usize,
        /// Which evaluation split to use.
        #[arg(long, value_enum, default_value = "seed")]
        split: SplitKind,
    },
    /// Serve a published model version over gRPC.
    Serve {
        /// A version directory written by `recsys demo` (or a training job).
        #[arg(long)]
        model_dir: PathBuf,
        #[arg(long, default_value = "127.0.0.1:50051")]
        addr: SocketAddr,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    recsys_models::set_torch_threads(2);
    match Cli::parse().command {
        Command::Demo {
            data_dir,
            artifacts_dir,
            user,
            max_epochs,
            ranker_trials,
            split,
        } => {
            demo::run(DemoOptions {
                data_dir,
                artifacts_dir,
                user,
                max_epochs,
                split,
                ranker_trials,
            })
            .await?;
        }
        Command::Serve { model_dir, addr } => {
            let engine = Arc::new(Engine::load(&model_dir)?);
            let (bound, server) = grpc::bind(engine, addr).await?;
            eprintln!("serving {} on {bound}", model_dir.display());
            server.await?;
        }
    }
    Ok(())
}
