//! Flag groups several subcommands share: the entity files, the dataset columns, the windows.

use recsys::demo::SplitKind;
use recsys::pipeline::feature_job;
use recsys_data::remote;

/// The profile and metadata files behind the feature definition's attribute columns.
#[derive(clap::Args, Debug)]
pub struct DatasetArgs {
    /// The item metadata column holding categories (several separated by `|`).
    #[arg(long, default_value = "category")]
    pub category_column: String,
}

impl DatasetArgs {
    pub fn load_local(
        &self,
        events: &std::path::Path,
        files: &EntityFileArgs,
        scratch: &remote::Scratch,
    ) -> anyhow::Result<recsys_data::Dataset> {
        let files = files.load(scratch)?;
        recsys_data::event_dataset::load(events, &files, &self.columns())
    }

    pub fn load(
        &self,
        events: &str,
        files: &EntityFileArgs,
        scratch: &remote::Scratch,
    ) -> anyhow::Result<recsys_data::Dataset> {
        let events = remote::fetch(events, &scratch.path().join("events"))?;
        let files = files.load(scratch)?;
        recsys_data::event_dataset::load(&events, &files, &self.columns())
    }

    pub fn columns(&self) -> recsys_data::event_dataset::MetadataColumns {
        recsys_data::event_dataset::MetadataColumns {
            category: self.category_column.clone(),
            ..Default::default()
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct WindowArgs {
    /// `seed`: trailing validation and test windows; `global`: fractions of rows by time.
    #[arg(long, value_enum, default_value = "seed")]
    pub split: SplitKind,
    /// Seed split: validation starts this many days before the last event…
    #[arg(long, default_value_t = 14)]
    pub validation_days: i64,
    /// …and test this many.
    #[arg(long, default_value_t = 7)]
    pub test_days: i64,
    /// Global split: share of rows before validation…
    #[arg(long, default_value_t = 0.8)]
    pub train_fraction: f64,
    /// …and of validation rows.
    #[arg(long, default_value_t = 0.1)]
    pub validation_fraction: f64,
    /// Length and number of the rolling windows before validation whose candidates train
    /// the ranker.
    #[arg(long, default_value_t = 7)]
    pub ranker_window_days: i64,
    /// Window counts the ranker's time-CV chooses from (the most are built), e.g. `4,8`.
    #[arg(long, value_delimiter = ',', default_values_t = [4], value_parser = clap::value_parser!(u16).range(1..))]
    pub ranker_windows: Vec<u16>,
}

impl WindowArgs {
    pub fn config(&self) -> recsys::pipeline::train::WindowConfig {
        recsys::pipeline::train::WindowConfig {
            split: self.split,
            validation_days: self.validation_days,
            test_days: self.test_days,
            train_fraction: self.train_fraction,
            validation_fraction: self.validation_fraction,
            ranker_window_days: self.ranker_window_days,
            ranker_windows: self
                .ranker_windows
                .iter()
                .map(|&w| usize::from(w))
                .collect(),
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct EntityFileArgs {
    /// User profiles (CSV, JSONL or Parquet with a `user_id` column; a path or a URI).
    #[arg(long)]
    pub users: Option<String>,
    /// Item metadata (CSV, JSONL or Parquet with an `item_id` column; a path or a URI).
    #[arg(long)]
    pub items: Option<String>,
}

impl EntityFileArgs {
    pub fn load(&self, scratch: &remote::Scratch) -> anyhow::Result<feature_job::EntityFiles> {
        let fetch = |location: &Option<String>, name: &str| {
            location
                .as_deref()
                .map(|l| remote::fetch(l, &scratch.path().join(name)))
                .transpose()
        };
        let users = fetch(&self.users, "users")?;
        let items = fetch(&self.items, "items")?;
        feature_job::EntityFiles::load(users.as_deref(), items.as_deref())
    }
}
