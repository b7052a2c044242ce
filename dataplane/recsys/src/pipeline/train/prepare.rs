//! Step 1 of `train`: the labelled events in one canonical order, cut into train, validation
//! and test windows (the test window moved past the live version's data), with each window's
//! relevant items per user.

use super::{fmt_time, Labels, TrainOptions};
use crate::pipeline::labels::relevant_by_user;
use anyhow::{ensure, Context};
use recsys_core::{SplitWindows, TimeSplit};
use recsys_data::Dataset;

pub(super) struct Prepared {
    pub data: Dataset,
    /// The newest event's time.
    pub last: i64,
    pub windows: SplitWindows,
    pub split: TimeSplit,
    pub validation_labels: Labels,
    /// The test window's relevant items per user: who is evaluated.
    pub relevant: Labels,
}

pub(super) fn prepare(mut data: Dataset, options: &TrainOptions) -> anyhow::Result<Prepared> {
    options.labels.apply(&mut data.interactions);
    // One canonical order (stable by time): the same events in any file order train the same
    // version.
    data.interactions.sort_by_key(|r| r.timestamp);
    let last = data.last_timestamp().context("no interactions")?;
    let windows = test_after_live_data(options.windows.cut(&data)?, last, options)?;
    let split = TimeSplit::new(&data.interactions, windows);
    print_split(&data, &split, windows, options);
    let validation_labels = relevant_by_user(&split.validation);
    let relevant = relevant_by_user(&split.test);
    ensure!(
        !split.train.is_empty() && !validation_labels.is_empty() && !relevant.is_empty(),
        "the split leaves no training rows or no relevant validation/test events under `{}`: \
         check the label policy and the windows",
        options.labels
    );
    Ok(Prepared {
        data,
        last,
        windows,
        split,
        validation_labels,
        relevant,
    })
}

/// Two versions compare fairly only on events neither trained on: the test window starts no
/// earlier than the live version's data ended.
fn test_after_live_data(
    mut windows: SplitWindows,
    last: i64,
    options: &TrainOptions,
) -> anyhow::Result<SplitWindows> {
    if let Some(live) = &options.live {
        if let Some(cutoff) = live.data_cutoff()?.filter(|c| *c > windows.test_start) {
            ensure!(
                cutoff <= last,
                "the live version trained on every event here (its data ends {}, the last event is {}): nothing is left to compare it on",
                fmt_time(cutoff),
                fmt_time(last)
            );
            println!(
                "test      from {}, where the live version's data ended",
                fmt_time(cutoff)
            );
            windows.test_start = cutoff;
        }
    }
    Ok(windows)
}

fn print_split(data: &Dataset, split: &TimeSplit, windows: SplitWindows, options: &TrainOptions) {
    let relevant_rows = data.interactions.iter().filter(|r| r.relevant).count();
    println!(
        "data      {} users, {} items, {} events ({relevant_rows} relevant under `{}`)",
        data.users.len(),
        data.items.len(),
        data.interactions.len(),
        options.labels
    );
    println!(
        "split     {}: train < {} ≤ validation < {} ≤ test  ({} / {} / {} rows)",
        options.windows.name(),
        fmt_time(windows.validation_start),
        fmt_time(windows.test_start),
        split.train.len(),
        split.validation.len(),
        split.test.len()
    );
}
