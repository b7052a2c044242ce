//! `recsys ab`: experiment statistics: sample size plans and analyses of per-user counts.

use clap::Subcommand;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let Args { command } = args;
    match command {
        Command::Plan {
            baseline,
            mde,
            alpha,
            power,
            guardrails,
        } => {
            anyhow::ensure!(
                (0.0..1.0).contains(&baseline) && baseline > 0.0,
                "--baseline must be in (0, 1)"
            );
            anyhow::ensure!(
                mde > 0.0 && baseline * (1.0 + mde) < 1.0,
                "--mde must be > 0 and keep the rate below 1"
            );
            let plan = recsys_core::stats::power::plan(baseline, mde, alpha, power, guardrails);
            println!("{}", serde_json::to_string_pretty(&plan)?);
        }
        Command::Analyze {
            input,
            control,
            treatment,
            alpha,
            treatment_percent,
            tau,
        } => {
            anyhow::ensure!(tau > 0.0, "--tau must be positive");
            let settings = recsys_core::stats::analysis::Settings {
                alpha,
                expected_split: (100.0 - treatment_percent, treatment_percent),
                tau,
            };
            let analysis =
                recsys::pipeline::ab::run_analyze(&input, &control, &treatment, &settings)?;
            println!("{}", serde_json::to_string_pretty(&analysis)?);
        }
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum Command {
    /// Users per arm to detect a relative lift `--mde` on a conversion-like `--baseline`,
    /// with the power corrected for `--guardrails` non-inferiority tests.
    Plan {
        #[arg(long)]
        baseline: f64,
        /// Relative minimum detectable effect (0.05 = +5 %).
        #[arg(long)]
        mde: f64,
        #[arg(long, default_value_t = 0.05)]
        alpha: f64,
        #[arg(long, default_value_t = 0.8)]
        power: f64,
        #[arg(long, default_value_t = 0)]
        guardrails: usize,
    },
    /// Analyses per-user counts (CSV arm,user_id,x,y): lift with CI, p-value, always-valid
    /// p-value and interval, SRM p-value. Prints JSON.
    Analyze {
        #[arg(long)]
        input: PathBuf,
        #[arg(long, default_value = "control")]
        control: String,
        #[arg(long, default_value = "treatment")]
        treatment: String,
        #[arg(long, default_value_t = 0.05)]
        alpha: f64,
        /// Planned percent of users in the treatment arm (for the SRM check).
        #[arg(long, default_value_t = 50.0)]
        treatment_percent: f64,
        /// mSPRT mixing scale in the metric's units (the planned absolute MDE).
        #[arg(long)]
        tau: f64,
    },
}
