//! What users without history get, chosen on validation like the baselines: a popularity
//! list counted over all time, over a trailing window, or with exponentially decaying weights,
//! of every event or of the events the label policy counts as relevant. Which of those serves
//! a dataset best depends on how dense its timeline is (a week of a sparse dataset is a
//! handful of users) and on what its events mean, so no window is fixed here. Where users have a
//! profile, a list per segment of one profile column (gender, age band, occupation, region),
//! backed by everyone's list, competes with the one list on the same users.

use super::evaluate::LIST_LENGTH;
use recsys_core::{metrics, ranking, Interaction, ItemId, UserId};
use recsys_data::features::profile::ProfileKey;
use recsys_data::features::FeatureSnapshot;
use recsys_version::bundle::{ColdStart, SegmentLists};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

const DAY: f64 = 86_400.0;
/// Cold users the choice wants: about ±0.03 of standard error on a mean NDCG@10. A short
/// validation window of a sparse dataset has fewer, so earlier windows of the same length are
/// backtested too (their newcomers, judged on lists as of each window's start) until this
/// many are found or `MAX_BACKTEST_WINDOWS` have been tried.
const COLD_USERS_WANTED: usize = 100;
/// How many windows before validation the backtest may step back.
const MAX_BACKTEST_WINDOWS: usize = 12;
/// With fewer cold users than this, even after the backtest, every validation user votes (their
/// lists differ only by the seen items removed); the model competes with the list only on at
/// least this many of validation's own cold users.
pub const MIN_COLD_USERS: usize = 20;
/// How far, in standard errors of the paired per-user difference, a list must beat a simpler
/// one on the judged users to replace it (the one-standard-error rule of model selection). The
/// choice is the best of about 40 lists and blends on about 100 users, so the winner's margin
/// over the simplest list is partly luck; within that noise the simpler list stands.
pub const NOISE_STANDARD_ERRORS: f64 = 1.0;
/// Items a version's cold list keeps.
pub const LIST_SIZE: usize = 1000;
/// How much of everyone's list backs a segment's: a segment's list scores items by its own
/// share plus this multiple of everyone's, so a small segment's few counts do not decide alone.
pub const PROFILE_WEIGHTS: [f32; 3] = [0.25, 1.0, 4.0];

/// Which events a popularity list counts: every one, or only those the label policy calls
/// relevant (an item watched by many but liked by few is a poor first suggestion).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Counted {
    #[default]
    AllEvents,
    RelevantEvents,
}

impl Counted {
    /// In the order the choice tries them (ties go to the first).
    pub const ALL: [Self; 2] = [Self::AllEvents, Self::RelevantEvents];

    /// The rows this choice counts.
    pub fn rows(self, rows: &[Interaction]) -> Cow<'_, [Interaction]> {
        match self {
            Self::AllEvents => Cow::Borrowed(rows),
            Self::RelevantEvents => {
                Cow::Owned(rows.iter().filter(|r| r.relevant).copied().collect())
            }
        }
    }
}

impl std::fmt::Display for Counted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::AllEvents => "every event",
            Self::RelevantEvents => "relevant events",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ColdPolicy {
    AllTime,
    Window { days: u32 },
    Decay { half_life_days: u32 },
}

impl ColdPolicy {
    pub fn candidates() -> Vec<Self> {
        let mut out = vec![Self::AllTime];
        out.extend([1, 3, 7, 14, 30, 60, 90, 180, 365].map(|days| Self::Window { days }));
        out.extend([1, 7, 30, 90].map(|half_life_days| Self::Decay { half_life_days }));
        out
    }

    /// Item scores as of `as_of` from the rows before it; all-time counts break ties (scaled
    /// below one event) so items outside a window still rank by long-run popularity.
    pub fn scores(self, rows: &[Interaction], num_items: usize, as_of: i64) -> Vec<f32> {
        let mut all = vec![0f64; num_items];
        let mut primary = vec![0f64; num_items];
        for r in rows.iter().filter(|r| r.timestamp < as_of) {
            let Some(slot) = all.get_mut(r.item as usize) else {
                continue;
            };
            *slot += 1.0;
            primary[r.item as usize] += self.weight(as_of - r.timestamp);
        }
        let total = all.iter().sum::<f64>().max(1.0);
        primary
            .iter()
            .zip(&all)
            .map(|(&p, &a)| (p + a / total) as f32)
            .collect()
    }
}

impl ColdPolicy {
    /// What one event `age_secs` before the list's moment counts for.
    fn weight(self, age_secs: i64) -> f64 {
        let age_days = age_secs as f64 / DAY;
        match self {
            Self::AllTime => 1.0,
            Self::Window { days } => f64::from(u8::from(age_days <= f64::from(days))),
            Self::Decay { half_life_days } => 0.5f64.powf(age_days / f64::from(half_life_days)),
        }
    }

    /// Scores per segment of `key` (segments with no counted event are left out): the
    /// segment's share of the policy's weight for each item, plus `weight_of_all` times
    /// everyone's share (`everyone`: this policy's [`ColdPolicy::scores`] at `as_of`, so ties
    /// still break by all-time counts).
    pub fn segment_scores(
        self,
        blend: ProfileBlend,
        snapshot: &FeatureSnapshot,
        rows: &[Interaction],
        as_of: i64,
        everyone: &[f32],
    ) -> BTreeMap<String, Vec<f32>> {
        let num_items = snapshot.items.len();
        let total: f64 = everyone
            .iter()
            .map(|&x| f64::from(x))
            .sum::<f64>()
            .max(1e-12);
        let (names, of_user) = segments(snapshot, blend.key);
        let mut counts = vec![vec![0f64; num_items]; names.len()];
        for r in rows.iter().filter(|r| r.timestamp < as_of) {
            let Some(&Some(s)) = of_user.get(r.user as usize) else {
                continue;
            };
            if let Some(slot) = counts[s].get_mut(r.item as usize) {
                *slot += self.weight(as_of - r.timestamp);
            }
        }
        names
            .into_iter()
            .zip(counts)
            .filter_map(|(name, own)| {
                let sum: f64 = own.iter().sum();
                (sum > 0.0).then(|| {
                    let scores = own
                        .iter()
                        .zip(everyone)
                        .map(|(&c, &e)| {
                            (c / sum + f64::from(blend.weight_of_all) * f64::from(e) / total) as f32
                        })
                        .collect();
                    (name, scores)
                })
            })
            .collect()
    }
}

/// The segment names of `key` among the snapshot's users, and each user's segment index.
fn segments(snapshot: &FeatureSnapshot, key: ProfileKey) -> (Vec<String>, Vec<Option<usize>>) {
    let of_user: Vec<Option<String>> = (0..snapshot.users.len() as u32)
        .map(|u| key.segment(snapshot, u))
        .collect();
    let names: Vec<String> = of_user
        .iter()
        .flatten()
        .cloned()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let index = of_user
        .iter()
        .map(|s| s.as_ref().and_then(|s| names.binary_search(s).ok()))
        .collect();
    (names, index)
}

/// Which profile column splits the cold list, and how much everyone's list backs each
/// segment's.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ProfileBlend {
    pub key: ProfileKey,
    pub weight_of_all: f32,
}

impl std::fmt::Display for ColdPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::AllTime => f.write_str("all-time counts"),
            Self::Window { days } => write!(f, "counts over the last {days} d"),
            Self::Decay { half_life_days } => {
                write!(f, "counts decayed with a {half_life_days} d half-life")
            }
        }
    }
}

/// The choice and what it scored on validation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ColdChoice {
    pub policy: ColdPolicy,
    /// Which events the chosen lists count (every event in versions before this field).
    #[serde(default)]
    pub counted: Counted,
    pub validation_ndcg_at_10: f64,
    /// Users the choice was made on, and whether they were the cold ones.
    pub users: usize,
    pub cold_users_only: bool,
    /// Windows their newcomers came from: 1 is the validation window alone, more means
    /// earlier windows of its length were backtested.
    #[serde(default = "one")]
    pub windows: usize,
    /// The chosen list's NDCG@10 on validation's own cold users alone (when there are at
    /// least [`MIN_COLD_USERS`]): what the model competes with on the same users.
    #[serde(default)]
    pub validation_cold_ndcg_at_10: Option<f64>,
    pub tried: Vec<(ColdPolicy, Counted, f64)>,
    /// Lists per profile segment under the same policy, when they beat the one list on the
    /// same users (`validation_ndcg_at_10` is then theirs).
    #[serde(default)]
    pub profile: Option<ProfileBlend>,
    /// Every profile blend tried, with its NDCG@10 on the same users.
    #[serde(default)]
    pub profile_tried: Vec<(ProfileBlend, f64)>,
    /// Lists that scored best but did not beat a simpler one by more than the noise, so the
    /// simpler one was kept.
    #[serde(default)]
    pub set_aside: Vec<SetAside>,
}

/// A list that won on the judged users by less than [`NOISE_STANDARD_ERRORS`], and the simpler
/// one kept instead.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SetAside {
    pub list: String,
    pub kept: String,
    /// Paired mean NDCG@10 difference (set aside − kept) and its standard error.
    pub difference: f64,
    pub standard_error: f64,
}

fn one() -> usize {
    1
}

/// Users judged as of one moment, with what each found relevant after it.
pub(super) struct Judged {
    pub as_of: i64,
    pub users: Vec<(UserId, HashSet<ItemId>)>,
    /// Whether seen items are removed (validation's warm users); cold users have none.
    pub exclude_seen: bool,
}

/// Newcomers of earlier windows of `window_secs` before `cutoff`: users whose first row in
/// `train` falls inside one, with the relevant items of that window.
fn backtest_windows(
    train: &[Interaction],
    cutoff: i64,
    window_secs: i64,
    have: usize,
) -> Vec<Judged> {
    newcomer_windows(
        train,
        cutoff,
        window_secs,
        MAX_BACKTEST_WINDOWS,
        COLD_USERS_WANTED.saturating_sub(have),
    )
}

/// Newcomers of up to `max_windows` windows of `window_secs` stepping back from `cutoff`
/// (newest first), until `wanted` users are found or the data begins.
pub(super) fn newcomer_windows(
    train: &[Interaction],
    cutoff: i64,
    window_secs: i64,
    max_windows: usize,
    wanted: usize,
) -> Vec<Judged> {
    let mut first_seen: BTreeMap<UserId, i64> = BTreeMap::new();
    for r in train {
        let t = first_seen.entry(r.user).or_insert(r.timestamp);
        *t = (*t).min(r.timestamp);
    }
    let earliest = first_seen.values().copied().min().unwrap_or(cutoff);
    let mut out = Vec::new();
    let mut found = 0;
    for k in 1..=max_windows as i64 {
        if found >= wanted || window_secs <= 0 {
            break;
        }
        let (start, end) = (cutoff - k * window_secs, cutoff - (k - 1) * window_secs);
        if start <= earliest {
            break;
        }
        let mut labels: BTreeMap<UserId, HashSet<ItemId>> = BTreeMap::new();
        for r in train
            .iter()
            .filter(|r| r.relevant && (start..end).contains(&r.timestamp))
        {
            if (start..end).contains(&first_seen[&r.user]) {
                labels.entry(r.user).or_default().insert(r.item);
            }
        }
        found += labels.len();
        out.push(Judged {
            as_of: start,
            users: labels.into_iter().collect(),
            exclude_seen: false,
        });
    }
    out
}

/// Chooses the policy with the best NDCG@10 for users without history, fit on `train` as of
/// `snapshot.cutoff` and judged on validation's cold users (`labels`), plus the newcomers of
/// earlier windows of `window_secs` when validation has fewer than `COLD_USERS_WANTED`; ties
/// go to the earlier (simpler) candidate. The winner replaces most-popular (all-time counts of
/// every event), and the best profile blend replaces the one list, only by more than
/// [`NOISE_STANDARD_ERRORS`] standard errors of the paired difference on the same users.
pub fn choose(
    snapshot: &FeatureSnapshot,
    train: &[Interaction],
    labels: &BTreeMap<UserId, HashSet<ItemId>>,
    window_secs: i64,
) -> ColdChoice {
    let cold: Vec<(UserId, HashSet<ItemId>)> = labels
        .iter()
        .filter(|(&u, _)| snapshot.users[u as usize].history_len == 0)
        .map(|(&u, items)| (u, items.clone()))
        .collect();
    let mut judged = backtest_windows(train, snapshot.cutoff, window_secs, cold.len());
    judged.insert(
        0,
        Judged {
            as_of: snapshot.cutoff,
            users: cold,
            exclude_seen: true,
        },
    );
    let cold_count: usize = judged.iter().map(|j| j.users.len()).sum();
    let cold_users_only = cold_count >= MIN_COLD_USERS;
    if !cold_users_only {
        judged = vec![Judged {
            as_of: snapshot.cutoff,
            users: labels.iter().map(|(&u, i)| (u, i.clone())).collect(),
            exclude_seen: true,
        }];
    }
    let users: usize = judged.iter().map(|j| j.users.len()).sum();
    let num_items = snapshot.items.len();
    // Per policy: each judged user's NDCG@10, by judged set (validation's own first).
    let mut tried = Vec::new();
    let mut per_user = Vec::new();
    for counted in Counted::ALL {
        let rows = counted.rows(train);
        for policy in ColdPolicy::candidates() {
            let scored = ndcg_per_user(&judged, snapshot, |t| {
                Scores::one(policy.scores(&rows, num_items, t))
            });
            tried.push((policy, counted, mean_over(&scored)));
            per_user.push(scored);
        }
    }
    let best = (0..tried.len()).fold(
        0,
        |best, i| {
            if tried[i].2 > tried[best].2 {
                i
            } else {
                best
            }
        },
    );
    // The first candidate, all-time counts of every event, is most-popular itself.
    let mut set_aside = Vec::new();
    let name = |i: usize| format!("{} of {}", tried[i].0, tried[i].1);
    let chosen = if best == 0 {
        0
    } else {
        match beats_beyond_noise(&per_user[best], &per_user[0]) {
            Ok(()) => best,
            Err((difference, standard_error)) => {
                set_aside.push(SetAside {
                    list: name(best),
                    kept: name(0),
                    difference,
                    standard_error,
                });
                0
            }
        }
    };
    let (policy, counted, mut validation_ndcg_at_10) = tried[chosen];
    let rows = counted.rows(train);
    let mut on_own = own_mean(&per_user[chosen]);
    // Segments need cold users to judge them: with every validation user voting, none.
    let mut profile = None;
    let mut profile_tried = Vec::new();
    let mut best_blend: Option<(ProfileBlend, Vec<Vec<f64>>, f64)> = None;
    for key in ProfileKey::ALL.into_iter().filter(|_| cold_users_only) {
        // A column that puts every judged user in one segment (or none) cannot help.
        let distinct: BTreeSet<String> = judged
            .iter()
            .flat_map(|j| {
                j.users
                    .iter()
                    .filter_map(|(u, _)| key.segment(snapshot, *u))
            })
            .collect();
        if distinct.len() < 2 {
            continue;
        }
        for weight_of_all in PROFILE_WEIGHTS {
            let blend = ProfileBlend { key, weight_of_all };
            let scored = ndcg_per_user(&judged, snapshot, |t| {
                Scores::of(policy, Some(blend), snapshot, &rows, t)
            });
            let mean = mean_over(&scored);
            profile_tried.push((blend, mean));
            if mean > best_blend.as_ref().map_or(validation_ndcg_at_10, |b| b.2) {
                best_blend = Some((blend, scored, mean));
            }
        }
    }
    if let Some((blend, scored, mean)) = best_blend {
        match beats_beyond_noise(&scored, &per_user[chosen]) {
            Ok(()) => {
                validation_ndcg_at_10 = mean;
                on_own = own_mean(&scored);
                profile = Some(blend);
            }
            Err((difference, standard_error)) => set_aside.push(SetAside {
                list: format!(
                    "{}, per {} (+{} × everyone's)",
                    name(chosen),
                    blend.key,
                    blend.weight_of_all
                ),
                kept: name(chosen),
                difference,
                standard_error,
            }),
        }
    }
    let validation_cold_ndcg_at_10 =
        (cold_users_only && judged[0].users.len() >= MIN_COLD_USERS).then_some(on_own);
    ColdChoice {
        policy,
        counted,
        validation_ndcg_at_10,
        users,
        cold_users_only,
        windows: if cold_users_only { judged.len() } else { 1 },
        validation_cold_ndcg_at_10,
        tried,
        profile,
        profile_tried,
        set_aside,
    }
}

/// Mean NDCG@10 over every judged user of every set.
fn mean_over(scored: &[Vec<f64>]) -> f64 {
    let (sum, n) = scored
        .iter()
        .flatten()
        .fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    sum / n.max(1) as f64
}

/// Mean NDCG@10 over validation's own users (the first judged set).
fn own_mean(scored: &[Vec<f64>]) -> f64 {
    scored
        .first()
        .map_or(0.0, |own| own.iter().sum::<f64>() / own.len().max(1) as f64)
}

/// Whether `candidate` beats `simpler` on the same users by more than
/// [`NOISE_STANDARD_ERRORS`] standard errors of their paired difference; if not, that
/// difference and its standard error.
fn beats_beyond_noise(candidate: &[Vec<f64>], simpler: &[Vec<f64>]) -> Result<(), (f64, f64)> {
    let diffs: Vec<f64> = candidate
        .iter()
        .flatten()
        .zip(simpler.iter().flatten())
        .map(|(a, b)| a - b)
        .collect();
    let (mean, standard_error) = mean_and_standard_error(&diffs);
    if mean > 0.0 && mean > NOISE_STANDARD_ERRORS * standard_error {
        Ok(())
    } else {
        Err((mean, standard_error))
    }
}

/// The mean of paired differences and its standard error (0 with fewer than two).
pub(super) fn mean_and_standard_error(diffs: &[f64]) -> (f64, f64) {
    let n = diffs.len() as f64;
    let mean = diffs.iter().sum::<f64>() / n.max(1.0);
    let standard_error = if diffs.len() > 1 {
        let variance = diffs.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (n - 1.0);
        (variance / n).sqrt()
    } else {
        0.0
    };
    (mean, standard_error)
}

/// Item scores as of one moment: everyone's, and per segment of `key` when a blend is tried.
pub(super) struct Scores {
    pub everyone: Vec<f32>,
    pub by_segment: BTreeMap<String, Vec<f32>>,
    pub key: Option<ProfileKey>,
}

impl Scores {
    pub fn one(everyone: Vec<f32>) -> Self {
        Self {
            everyone,
            by_segment: BTreeMap::new(),
            key: None,
        }
    }

    /// `policy`'s scores at `as_of` over `rows`, per segment of `blend`'s column when given.
    pub fn of(
        policy: ColdPolicy,
        blend: Option<ProfileBlend>,
        snapshot: &FeatureSnapshot,
        rows: &[Interaction],
        as_of: i64,
    ) -> Self {
        let everyone = policy.scores(rows, snapshot.items.len(), as_of);
        match blend {
            Some(blend) => Self {
                by_segment: policy.segment_scores(blend, snapshot, rows, as_of, &everyone),
                everyone,
                key: Some(blend.key),
            },
            None => Self::one(everyone),
        }
    }
}

/// NDCG@10 of each judged set's users, each ranked by the scores of their segment (everyone's
/// without one) as of the set's moment.
pub(super) fn ndcg_per_user(
    judged: &[Judged],
    snapshot: &FeatureSnapshot,
    scores_at: impl Fn(i64) -> Scores,
) -> Vec<Vec<f64>> {
    judged
        .iter()
        .map(|j| {
            let scores = scores_at(j.as_of);
            // Without seen items to remove, everyone in a segment gets the same list: rank the
            // catalog once per segment, not once per user (a year of newcomers on a large
            // catalog would otherwise sort it thousands of times).
            let mut shared: HashMap<Option<String>, Vec<ItemId>> = HashMap::new();
            j.users
                .iter()
                .map(|(u, relevant)| {
                    let segment = scores
                        .key
                        .and_then(|k| k.segment(snapshot, *u))
                        .filter(|s| scores.by_segment.contains_key(s));
                    let ranked = segment
                        .as_ref()
                        .map_or(&scores.everyone, |s| &scores.by_segment[s]);
                    if j.exclude_seen {
                        let top =
                            ranking::top_k_dense(ranked, LIST_LENGTH, |i| snapshot.has_seen(*u, i));
                        metrics::ndcg_at_k(&top, relevant, 10)
                    } else {
                        let top = shared.entry(segment).or_insert_with(|| {
                            ranking::top_k_dense(ranked, LIST_LENGTH, |_| false)
                        });
                        metrics::ndcg_at_k(top, relevant, 10)
                    }
                })
                .collect()
        })
        .collect()
}

/// What a version stores: the chosen policy's top items (dense ids, best first) as of its
/// state, and its segments' lists when the choice has a profile blend.
pub fn list(
    choice: &ColdChoice,
    snapshot: &FeatureSnapshot,
    rows: &[Interaction],
    as_of: i64,
    model_for_known_cold_users: bool,
) -> ColdStart {
    let top = |scores: &[f32]| {
        let mut scored: Vec<(u32, f32)> = scores
            .iter()
            .enumerate()
            .map(|(i, &s)| (i as u32, s))
            .collect();
        ranking::top_k_pairs(&mut scored, LIST_SIZE)
            .into_iter()
            .map(|i| (i, scores[i as usize]))
            .collect()
    };
    let policy = choice.policy;
    let rows = choice.counted.rows(rows);
    let everyone = policy.scores(&rows, snapshot.items.len(), as_of);
    let by_profile = choice.profile.map(|blend| SegmentLists {
        key: blend.key,
        lists: policy
            .segment_scores(blend, snapshot, &rows, as_of, &everyone)
            .into_iter()
            .map(|(name, scores)| (name, top(&scores)))
            .collect(),
    });
    let policy_name = match choice.profile {
        Some(blend) => format!(
            "{policy} of {}, per {} (+{} × everyone's)",
            choice.counted, blend.key, blend.weight_of_all
        ),
        None => format!("{policy} of {}", choice.counted),
    };
    ColdStart {
        policy: policy_name,
        as_of,
        items: top(&everyone),
        model_for_known_cold_users,
        by_profile,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use recsys_core::validation::EventType;

    fn row(item: u32, day: f64) -> Interaction {
        Interaction {
            user: 0,
            item,
            timestamp: (day * DAY) as i64,
            value: 1.0,
            kind: EventType::Click,
            relevant: false,
        }
    }

    #[test]
    fn policies_weigh_time_as_declared() {
        // Item 0: 5 old events; item 1: 2 events yesterday.
        let mut rows: Vec<Interaction> = (0..5).map(|_| row(0, 1.0)).collect();
        rows.extend([row(1, 99.0), row(1, 99.5)]);
        rows.push(row(2, 200.0)); // after as_of: never counted
        let as_of = (100.0 * DAY) as i64;
        let all = ColdPolicy::AllTime.scores(&rows, 3, as_of);
        assert!(all[0] > all[1] && all[2] == 0.0);
        let week = ColdPolicy::Window { days: 7 }.scores(&rows, 3, as_of);
        assert!(
            week[1] > week[0] && week[0] > 0.0,
            "ties broken by all time"
        );
        let decay = ColdPolicy::Decay { half_life_days: 7 }.scores(&rows, 3, as_of);
        assert!(decay[1] > decay[0]);
        let slow = ColdPolicy::Decay {
            half_life_days: 365,
        }
        .scores(&rows, 3, as_of);
        assert!(slow[0] > slow[1]);
        let snapshot = FeatureSnapshot {
            users: vec![Default::default()],
            items: vec![Default::default(); 3],
            ..Default::default()
        };
        let list = list(
            &choice(ColdPolicy::Window { days: 7 }),
            &snapshot,
            &rows,
            as_of,
            false,
        );
        assert_eq!(
            list.items.iter().map(|x| x.0).collect::<Vec<_>>(),
            [1, 0, 2]
        );
    }

    fn choice(policy: ColdPolicy) -> ColdChoice {
        ColdChoice {
            policy,
            counted: Counted::AllEvents,
            validation_ndcg_at_10: 0.0,
            users: 0,
            cold_users_only: true,
            windows: 1,
            validation_cold_ndcg_at_10: None,
            tried: Vec::new(),
            profile: None,
            profile_tried: Vec::new(),
            set_aside: Vec::new(),
        }
    }

    /// 80 users (even: F, odd: M) and 30 items: before day 100 each of the first 40 users has
    /// their gender's five items (women 0..5, men 5..10) three times and items 10..30 once, so
    /// everyone's list puts 0..10 first in id order; users 40..80 arrive in validation and find
    /// their gender's items relevant (the one list serves the men's items 6th to 10th).
    type Labels = BTreeMap<UserId, HashSet<ItemId>>;

    fn gendered_world() -> (FeatureSnapshot, Vec<Interaction>, Labels) {
        let snapshot = FeatureSnapshot {
            cutoff: (100.0 * DAY) as i64,
            users: (0..80)
                .map(|u| recsys_data::features::UserFeatures {
                    gender: Some(if u % 2 == 0 { "F" } else { "M" }.into()),
                    history_len: u32::from(u < 40),
                    ..Default::default()
                })
                .collect(),
            items: vec![Default::default(); 30],
            ..Default::default()
        };
        let mut rows = Vec::new();
        for u in 0..40u32 {
            let own = if u % 2 == 0 { 0..5 } else { 5..10 };
            for day in [88.0, 89.0, 90.0] {
                rows.extend(own.clone().map(|i| by(u, i, day, true)));
            }
            rows.extend((10..30).map(|i| by(u, i, 91.0, false)));
        }
        let labels = (40..80u32)
            .map(|u| {
                let own = if u % 2 == 0 { 0..5 } else { 5..10 };
                (u, own.collect())
            })
            .collect();
        (snapshot, rows, labels)
    }

    #[test]
    fn a_profile_column_that_separates_tastes_wins_and_serves_each_segment_its_list() {
        let (snapshot, rows, labels) = gendered_world();
        let chosen = choose(&snapshot, &rows, &labels, (7.0 * DAY) as i64);
        let blend = chosen
            .profile
            .expect("gender separates the newcomers' tastes");
        assert_eq!(blend.key, ProfileKey::Gender);
        assert!(chosen.cold_users_only);
        let one_list = chosen.tried.iter().map(|t| t.2).fold(0.0, f64::max);
        assert!(chosen.validation_ndcg_at_10 > one_list);
        assert!(chosen.set_aside.is_empty(), "{:?}", chosen.set_aside);
        assert_eq!(
            chosen.validation_cold_ndcg_at_10,
            Some(chosen.validation_ndcg_at_10)
        );

        let stored = list(&chosen, &snapshot, &rows, snapshot.cutoff, false);
        let first_five = |user| {
            let mut top: Vec<u32> = stored.for_user(&snapshot, user)[..5]
                .iter()
                .map(|x| x.0)
                .collect();
            top.sort_unstable();
            top
        };
        assert_eq!(first_five(Some(40)), [0, 1, 2, 3, 4]);
        assert_eq!(first_five(Some(41)), [5, 6, 7, 8, 9]);
        // A user the version does not know gets the one list.
        assert_eq!(stored.for_user(&snapshot, None), &stored.items[..]);
        assert!(stored.all_items().all(|i| i < 30));
        // The file round-trips.
        let json = serde_json::to_string(&stored).unwrap();
        assert_eq!(serde_json::from_str::<ColdStart>(&json).unwrap(), stored);
    }

    #[test]
    fn without_profiles_the_one_list_stands() {
        let (mut snapshot, rows, labels) = gendered_world();
        for u in &mut snapshot.users {
            u.gender = None;
        }
        let chosen = choose(&snapshot, &rows, &labels, (7.0 * DAY) as i64);
        assert_eq!(chosen.profile, None);
        assert!(
            chosen.profile_tried.is_empty(),
            "no column has two segments"
        );
        let stored = list(&chosen, &snapshot, &rows, snapshot.cutoff, false);
        assert!(stored.by_profile.is_none());
    }

    fn by(user: u32, item: u32, day: f64, relevant: bool) -> Interaction {
        Interaction {
            user,
            relevant,
            ..row(item, day)
        }
    }

    /// 80 users without profiles, as of day 100: 0..40 have history, 40..80 do not.
    fn old_and_new_users(items: usize) -> FeatureSnapshot {
        FeatureSnapshot {
            cutoff: (100.0 * DAY) as i64,
            users: (0..80)
                .map(|u| recsys_data::features::UserFeatures {
                    history_len: u32::from(u < 40),
                    ..Default::default()
                })
                .collect(),
            items: vec![Default::default(); items],
            ..Default::default()
        }
    }

    #[test]
    fn counting_only_relevant_events_wins_when_what_is_busy_is_not_what_is_liked() {
        // Before day 100, 40 users each like items 5..10 once and then view items 0..5 three
        // times (never relevant): by every time weighting the viewed items are the busier.
        // Users 40..80 arrive in validation and like items 5..10.
        let snapshot = old_and_new_users(10);
        let mut rows = Vec::new();
        for u in 0..40u32 {
            rows.extend((5..10).map(|i| by(u, i, 90.0, true)));
            for day in [93.0, 94.0, 95.0] {
                rows.extend((0..5).map(|i| by(u, i, day, false)));
            }
        }
        let labels: Labels = (40..80u32).map(|u| (u, (5..10).collect())).collect();
        let chosen = choose(&snapshot, &rows, &labels, (7.0 * DAY) as i64);
        assert_eq!(chosen.counted, Counted::RelevantEvents);
        let best_of_every_event = chosen
            .tried
            .iter()
            .filter(|t| t.1 == Counted::AllEvents)
            .map(|t| t.2)
            .fold(0.0, f64::max);
        assert!(chosen.validation_ndcg_at_10 > best_of_every_event);
        let stored = list(&chosen, &snapshot, &rows, snapshot.cutoff, false);
        let mut top: Vec<u32> = stored.items[..5].iter().map(|x| x.0).collect();
        top.sort_unstable();
        assert_eq!(top, [5, 6, 7, 8, 9]);
        assert!(
            stored.policy.contains("relevant events"),
            "{}",
            stored.policy
        );

        // When the busy items are also the liked ones, every event is counted (the tie goes
        // to the simpler choice).
        for r in &mut rows {
            r.relevant = r.item < 5;
        }
        let labels: Labels = (40..80u32).map(|u| (u, (0..5).collect())).collect();
        let chosen = choose(&snapshot, &rows, &labels, (7.0 * DAY) as i64);
        assert_eq!(chosen.counted, Counted::AllEvents);
    }

    #[test]
    fn the_backtest_judges_each_windows_newcomers_on_that_window() {
        // Weekly windows before day 70: user 1 arrives on day 64 (window 1), user 2 on day 50
        // (window 3) with a relevant item there and another after; user 0 has been around since
        // day 0 and is never a newcomer. Day 0 is the earliest row, so the backtest stops before
        // a window that would start there.
        let rows = vec![
            by(0, 9, 0.0, true),
            by(2, 5, 50.0, true),
            by(2, 6, 58.0, true),
            by(0, 7, 60.0, true),
            by(1, 3, 64.0, true),
            by(1, 4, 65.0, false),
        ];
        let week = (7.0 * DAY) as i64;
        let cutoff = (70.0 * DAY) as i64;
        let windows = backtest_windows(&rows, cutoff, week, 0);
        assert_eq!(
            windows.len(),
            9,
            "days 7..70 in weeks; the window from day 0 is skipped"
        );
        let found: Vec<_> = windows
            .into_iter()
            .filter(|w| !w.users.is_empty())
            .map(|w| (w.as_of, w.users))
            .collect();
        assert_eq!(
            found,
            [
                (cutoff - week, vec![(1, HashSet::from([3]))]),
                (cutoff - 3 * week, vec![(2, HashSet::from([5]))]),
            ]
        );
        // Enough cold users already: nothing is backtested.
        assert!(backtest_windows(&rows, cutoff, week, COLD_USERS_WANTED).is_empty());
    }

    #[test]
    fn serialized_policy_is_tagged() {
        let json = serde_json::to_string(&ColdPolicy::Decay { half_life_days: 30 }).unwrap();
        assert_eq!(json, r#"{"kind":"decay","half_life_days":30}"#);
    }

    /// 40 old users (first seen on day 0) make items 0..5 popular; two of them touch item 5 on
    /// day 99, so a short window puts it first (all-time counts put it 6th). Newcomers 40..80:
    /// `fans` of them like item 5, one likes item 0, the rest item 29 (in no top 10).
    fn a_recent_item_world(fans: u32) -> (FeatureSnapshot, Vec<Interaction>, Labels) {
        let snapshot = old_and_new_users(30);
        let mut rows: Vec<Interaction> = (0..40u32)
            .flat_map(|u| (0..5).map(move |i| by(u, i, 0.0, true)))
            .collect();
        rows.extend([by(0, 5, 99.0, true), by(1, 5, 99.0, true)]);
        let labels = (40..80u32)
            .map(|u| {
                let liked = match u - 40 {
                    k if k < fans => 5,
                    k if k == fans => 0,
                    _ => 29,
                };
                (u, HashSet::from([liked]))
            })
            .collect();
        (snapshot, rows, labels)
    }

    #[test]
    fn a_win_inside_the_noise_keeps_most_popular() {
        // Two fans: the short window wins on the mean (+0.023) by less than one standard
        // error (0.025), so all-time counts stand and the winner is recorded as set aside.
        let (snapshot, rows, labels) = a_recent_item_world(2);
        let chosen = choose(&snapshot, &rows, &labels, (7.0 * DAY) as i64);
        let best = chosen.tried.iter().map(|t| t.2).fold(0.0, f64::max);
        assert!(best > chosen.validation_ndcg_at_10, "{chosen:?}");
        assert_eq!(
            (chosen.policy, chosen.counted),
            (ColdPolicy::AllTime, Counted::AllEvents)
        );
        let [aside] = &chosen.set_aside[..] else {
            panic!("{:?}", chosen.set_aside);
        };
        assert!(aside.kept.starts_with("all-time counts"), "{aside:?}");
        assert!(aside.difference > 0.0 && aside.difference <= aside.standard_error);

        // Ten fans: the same win is well beyond the noise and replaces most-popular.
        let (snapshot, rows, labels) = a_recent_item_world(10);
        let chosen = choose(&snapshot, &rows, &labels, (7.0 * DAY) as i64);
        assert_ne!(chosen.policy, ColdPolicy::AllTime);
        assert!(chosen.set_aside.is_empty());
    }

    #[test]
    fn a_difference_must_exceed_its_standard_error() {
        let one_set = |v: &[f64]| vec![v.to_vec()];
        let zeros = one_set(&[0.0; 4]);
        assert_eq!(beats_beyond_noise(&one_set(&[0.1; 4]), &zeros), Ok(()));
        // One user carrying the whole win: the mean equals its standard error.
        let (mean, se) = beats_beyond_noise(&one_set(&[0.0, 0.0, 0.0, 0.8]), &zeros).unwrap_err();
        assert!(
            (mean - 0.2).abs() < 1e-12 && (se - 0.2).abs() < 1e-12,
            "{mean} {se}"
        );
        assert!(beats_beyond_noise(&zeros, &one_set(&[0.1; 4])).is_err());
    }
}
