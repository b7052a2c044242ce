//! Simulated experiments with the user as the randomization unit (users differ in how much
//! they see and how likely they click, so clicks are clustered by user):
//!
//! - A/A tests watched at every one of 20 looks: the always-valid mSPRT keeps the false-
//!   positive rate at or below alpha (within sampling error); a user-level z-test repeated at
//!   every look exceeds it, and an impression-level one (the variance that ignores clustering)
//!   exceeds it by far.
//! - With a true lift equal to the MDE and the planned number of users, the fixed-horizon test
//!   reaches at least the planned power.
//!
//! `cargo test --release -p recsys-core --test it sequential_simulation:: -- --nocapture` prints
//! the rates (recorded in docs/experiments.md).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use recsys_core::stats::{power, ratio::compare_ratio, sequential, ztest, ArmStats};

const ALPHA: f64 = 0.05;
const EXPERIMENTS: usize = 400;
const LOOKS: usize = 20;
const USERS_PER_LOOK: usize = 150;

/// One user: impressions and clicks, with a user-level click propensity.
fn user(rng: &mut StdRng, lift: f64) -> (f64, f64) {
    let impressions = 1 + (rng.random::<f64>() * 12.0) as u32;
    let propensity = match rng.random_range(0..10) {
        0..=5 => 0.02,
        6..=8 => 0.08,
        _ => 0.30,
    } * (1.0 + lift);
    let clicks = (0..impressions)
        .filter(|_| rng.random::<f64>() < propensity)
        .count();
    (f64::from(impressions), clicks as f64)
}

/// The impression-level z-test that treats every impression as independent.
fn impression_level_p(c: &ArmStats, t: &ArmStats) -> f64 {
    ztest::two_proportions(c.sum_y, c.sum_x, t.sum_y, t.sum_x, ALPHA).p_value
}

#[test]
fn watched_aa_tests_stay_within_alpha_only_with_the_sequential_test() {
    let mut rng = StdRng::seed_from_u64(20_261_201);
    // τ: the effect the test is tuned to, here a 10 % relative CTR change at a ~6.7 % CTR.
    let tau = 0.0067;
    let (mut seq, mut naive_user, mut naive_impression) = (0, 0, 0);
    for _ in 0..EXPERIMENTS {
        let (mut c, mut t) = (ArmStats::default(), ArmStats::default());
        let mut p_seq: f64 = 1.0;
        let (mut hit_seq, mut hit_user, mut hit_imp) = (false, false, false);
        for _ in 0..LOOKS {
            for _ in 0..USERS_PER_LOOK {
                let (x, y) = user(&mut rng, 0.0);
                c.add(x, y);
                let (x, y) = user(&mut rng, 0.0);
                t.add(x, y);
            }
            let cmp = compare_ratio(&c, &t, ALPHA);
            let variance = c.ratio_variance() + t.ratio_variance();
            p_seq = sequential::always_valid_p(p_seq, cmp.diff, variance, tau);
            hit_seq |= p_seq < ALPHA;
            hit_user |= cmp.p_value < ALPHA;
            hit_imp |= impression_level_p(&c, &t) < ALPHA;
        }
        seq += usize::from(hit_seq);
        naive_user += usize::from(hit_user);
        naive_impression += usize::from(hit_imp);
    }
    let rate = |k: usize| k as f64 / EXPERIMENTS as f64;
    let slack = 2.0 * (ALPHA * (1.0 - ALPHA) / EXPERIMENTS as f64).sqrt();
    eprintln!(
        "A/A, {EXPERIMENTS} experiments × {LOOKS} looks × {USERS_PER_LOOK} users/arm/look: \
         false positives: mSPRT {:.3}, user-level z every look {:.3}, impression-level z every look {:.3}",
        rate(seq),
        rate(naive_user),
        rate(naive_impression)
    );
    assert!(rate(seq) <= ALPHA + slack, "sequential {}", rate(seq));
    assert!(
        rate(naive_user) > ALPHA + slack,
        "naive user-level {}",
        rate(naive_user)
    );
    assert!(
        rate(naive_impression) > rate(naive_user),
        "impression-level {} vs user-level {}",
        rate(naive_impression),
        rate(naive_user)
    );
}

#[test]
fn the_planned_sample_reaches_the_planned_power_at_the_mde() {
    let mut rng = StdRng::seed_from_u64(7);
    let (baseline, mde, target) = (0.10, 0.10, 0.80);
    let plan = power::plan(baseline, mde, ALPHA, target, 0);
    let n = plan.users_per_arm as usize;
    let mut significant = 0;
    for _ in 0..EXPERIMENTS {
        let conversions =
            |rng: &mut StdRng, p: f64| (0..n).filter(|_| rng.random::<f64>() < p).count() as f64;
        let c = conversions(&mut rng, baseline);
        let t = conversions(&mut rng, baseline * (1.0 + mde));
        let test = ztest::two_proportions(c, n as f64, t, n as f64, ALPHA);
        significant += usize::from(test.p_value < ALPHA && test.diff > 0.0);
    }
    let achieved = significant as f64 / EXPERIMENTS as f64;
    let slack = 2.0 * (target * (1.0 - target) / EXPERIMENTS as f64).sqrt();
    eprintln!(
        "power: {n} users/arm planned for {target} at +{:.0}% on {baseline}: {achieved:.3} of {EXPERIMENTS} significant",
        mde * 100.0
    );
    assert!(achieved >= target - slack, "power {achieved}");

    // Guardrails take power, not alpha: more of them, more users.
    let with_guardrails = power::plan(baseline, mde, ALPHA, target, 3);
    assert!(with_guardrails.users_per_arm > plan.users_per_arm);
    assert!((with_guardrails.per_test_power - 0.95).abs() < 1e-12);
}
