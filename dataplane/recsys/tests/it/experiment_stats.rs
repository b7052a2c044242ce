//! Experiment sums shared by router replicas through a real Redis: two replicas updating the
//! same users concurrently end with exactly the sums of the users' final counts.

use crate::support::RedisServer;
use recsys_core::stats::ArmStats;
use recsys_serving::serving::experiment_stats::{Counter, ExperimentStats};
use std::sync::Arc;

#[test]
fn two_replicas_keep_exact_per_user_sufficient_statistics_in_redis() {
    let redis = RedisServer::start();
    let replica = || {
        Arc::new(ExperimentStats::new(Some(
            redis::Client::open(redis.url()).unwrap(),
        )))
    };
    let (a, b) = (replica(), replica());
    // 40 users; user u sees u % 7 + 1 impressions, clicks u % 3 times and buys u % 2 times,
    // the events split between the replicas and interleaved.
    let work: Vec<(String, Counter)> = (0..40)
        .flat_map(|u| {
            let user = format!("u{u}");
            let mut events = vec![(user.clone(), Counter::Impressions); u % 7 + 1];
            events.extend(vec![(user.clone(), Counter::Clicks); u % 3]);
            events.extend(vec![(user, Counter::Conversions); u % 2]);
            events
        })
        .collect();
    let threads: Vec<_> = [a.clone(), b.clone()]
        .into_iter()
        .enumerate()
        .map(|(k, stats)| {
            let mine: Vec<_> = work.iter().skip(k).step_by(2).cloned().collect();
            std::thread::spawn(move || {
                for (user, counter) in mine {
                    stats.record("salt", "treatment", &user, None).unwrap();
                    stats
                        .record("salt", "treatment", &user, Some((counter, 1.0)))
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut ctr = ArmStats::default();
    let mut conversions = ArmStats::default();
    for u in 0..40 {
        ctr.add((u % 7 + 1) as f64, (u % 3) as f64);
        conversions.add(1.0, (u % 2) as f64);
    }
    for replica in [&a, &b] {
        let sums = replica.sums("salt", "treatment").unwrap();
        assert_eq!(sums.ctr(), ctr);
        assert_eq!(sums.conversions(), conversions);
    }
    assert_eq!(a.sums("salt", "control").unwrap().n, 0.0);
}
