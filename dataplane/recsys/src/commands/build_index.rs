//! `recsys build-index`: build an ANN index over a model version's items, measure its recall
//! against exact search, and publish it only at or above the target (the ItemIndex Job).

use recsys::pipeline::index_build;
use recsys::pipeline::index_build::IndexBuildOptions;
use recsys_models::IndexKind;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The model version whose item vectors are indexed: a path or an s3:// / file://
    /// URI.
    #[arg(long)]
    pub model_dir: String,
    /// Where the index and its manifest are published: a directory or a URI.
    #[arg(long)]
    pub output: String,
    /// flat, ivf, ivfsq8, hnsw or ivfpq.
    #[arg(long = "type", default_value = "flat")]
    pub index_type: String,
    #[arg(long)]
    pub nlist: Option<u32>,
    /// Lists probed per query (IVF kinds); without it, the fewest that reach the recall
    /// target are found and kept.
    #[arg(long)]
    pub nprobe: Option<u32>,
    /// HNSW links per node, or PQ sub-quantizers for ivfpq.
    #[arg(long)]
    pub m: Option<u32>,
    #[arg(long)]
    pub ef_search: Option<u32>,
    #[arg(long, default_value_t = 500)]
    pub recall_k: usize,
    #[arg(long, default_value_t = 0.95)]
    pub recall_target: f64,
    #[arg(long, default_value_t = 1000)]
    pub sample_queries: usize,
    /// Also write the result line here (the pod's termination message).
    #[arg(long)]
    pub result_file: Option<PathBuf>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let Args {
        model_dir,
        output,
        index_type,
        nlist,
        nprobe,
        m,
        ef_search,
        recall_k,
        recall_target,
        sample_queries,
        result_file,
    } = args;
    let kind = index_kind(&index_type, nlist, nprobe, m, ef_search)?;
    index_build::run(&IndexBuildOptions {
        model_dir,
        output,
        kind,
        tune_probes: nprobe.is_none(),
        recall_k,
        recall_target,
        sample_queries,
        result_file,
    })?;
    Ok(())
}

fn index_kind(
    index_type: &str,
    nlist: Option<u32>,
    nprobe: Option<u32>,
    m: Option<u32>,
    ef_search: Option<u32>,
) -> anyhow::Result<IndexKind> {
    let need = |v: Option<u32>, what: &str| {
        v.ok_or_else(|| anyhow::anyhow!("--type {index_type} needs --{what}"))
    };
    Ok(match index_type {
        "flat" => IndexKind::Flat,
        "ivf" => IndexKind::Ivf {
            nlist: need(nlist, "nlist")?,
            nprobe: nprobe.unwrap_or(1),
        },
        "ivfpq" => IndexKind::IvfPq {
            nlist: need(nlist, "nlist")?,
            nprobe: nprobe.unwrap_or(1),
            m: need(m, "m")?,
            nbits: 8,
        },
        "ivfsq8" => IndexKind::IvfSq8 {
            nlist: need(nlist, "nlist")?,
            nprobe: nprobe.unwrap_or(1),
        },
        "hnsw" => IndexKind::Hnsw {
            m: m.unwrap_or(32),
            ef_search: ef_search.unwrap_or(256),
        },
        other => anyhow::bail!("unknown index type {other:?}: flat, ivf, ivfsq8, hnsw or ivfpq"),
    })
}
