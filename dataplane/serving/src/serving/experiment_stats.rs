//! Exact per-arm sufficient statistics of an experiment, kept by the router, which is where
//! the arm is known for certain: it comes from the routing table (salt and user id), never
//! from what a client reports. A user counts as exposed when the router first assigns them;
//! their impressions (x), clicks (y) and conversions (c) then update, atomically in Redis so
//! that router replicas share one set of numbers, the arm's n, Σx, Σy, Σc, Σx², Σy², Σc²,
//! Σxy. Without Redis the numbers live in this process (right for one replica only).
//! Prometheus reads them from the router's `/metrics`, labelled by arm only (the arms of the
//! routing table: a handful), and the Experiment controller from Prometheus.

pub use recsys_core::stats::Sums;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// What a feedback event adds to its user's counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Counter {
    /// Impressions: the CTR's denominator.
    Impressions,
    /// Clicks: the CTR's numerator.
    Clicks,
    /// Purchases: conversions per user.
    Conversions,
}

impl Counter {
    pub fn of_feedback(event_type: &str) -> Option<Self> {
        match event_type {
            "impression" => Some(Self::Impressions),
            "click" => Some(Self::Clicks),
            "purchase" => Some(Self::Conversions),
            _ => None,
        }
    }

    fn field(self) -> &'static str {
        match self {
            Self::Impressions => "x",
            Self::Clicks => "y",
            Self::Conversions => "c",
        }
    }
}

/// Adds `d` to a user's counter and the arm's sums; `old` are the user's counts before.
fn apply(sums: &mut Sums, user: &mut [f64; 3], counter: Counter, d: f64) {
    let [x, y, c] = *user;
    match counter {
        Counter::Impressions => {
            sums.sx += d;
            sums.sxx += 2.0 * x * d + d * d;
            sums.sxy += d * y;
            user[0] += d;
        }
        Counter::Clicks => {
            sums.sy += d;
            sums.syy += 2.0 * y * d + d * d;
            sums.sxy += d * x;
            user[1] += d;
        }
        Counter::Conversions => {
            sums.sc += d;
            sums.scc += 2.0 * c * d + d * d;
            user[2] += d;
        }
    }
}

/// The update as one Lua script, so concurrent replicas never interleave between reading a
/// user's counts and adding to the sums. KEYS: users set, user hash, arm hash. ARGV: user,
/// field (x, y, c or "" for an exposure only), delta, user-hash TTL seconds.
const UPDATE: &str = r#"
if redis.call('SADD', KEYS[1], ARGV[1]) == 1 then redis.call('HINCRBY', KEYS[3], 'n', 1) end
local f = ARGV[2]
if f == '' then return 0 end
local d = tonumber(ARGV[3])
local x = tonumber(redis.call('HGET', KEYS[2], 'x') or '0')
local y = tonumber(redis.call('HGET', KEYS[2], 'y') or '0')
local c = tonumber(redis.call('HGET', KEYS[2], 'c') or '0')
local old = ({x = x, y = y, c = c})[f]
redis.call('HINCRBYFLOAT', KEYS[2], f, d)
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[4]))
redis.call('HINCRBYFLOAT', KEYS[3], 's' .. f, d)
redis.call('HINCRBYFLOAT', KEYS[3], 's' .. f .. f, 2 * old * d + d * d)
if f == 'x' then redis.call('HINCRBYFLOAT', KEYS[3], 'sxy', d * y) end
if f == 'y' then redis.call('HINCRBYFLOAT', KEYS[3], 'sxy', d * x) end
return 1
"#;

/// How long a user's counts are kept after their last event (an experiment's horizon).
const USER_TTL_SECS: u64 = 90 * 86_400;

#[derive(Default)]
struct Local {
    users: HashMap<(String, String), [f64; 3]>,
    exposed: HashSet<(String, String)>,
    sums: HashMap<String, Sums>,
}

pub struct ExperimentStats {
    redis: Option<redis::Client>,
    /// One connection, reused; dropped on any error and remade on the next call.
    connection: Mutex<Option<redis::Connection>>,
    local: Mutex<Local>,
}

impl ExperimentStats {
    pub fn new(redis: Option<redis::Client>) -> Self {
        Self {
            redis,
            connection: Mutex::new(None),
            local: Mutex::new(Local::default()),
        }
    }

    fn keys(salt: &str, arm: &str, user: &str) -> [String; 3] {
        let base = format!("recsys:exp:{salt}:{arm}");
        [
            format!("{base}:users"),
            format!("{base}:u:{user}"),
            format!("{base}:sums"),
        ]
    }

    /// Runs `f` on the shared connection (made on first use).
    fn with_connection<T>(
        &self,
        client: &redis::Client,
        f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> anyhow::Result<T> {
        let mut slot = self.connection.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(client.get_connection_with_timeout(std::time::Duration::from_secs(2))?);
        }
        let result = f(slot.as_mut().expect("connected above"));
        if result.is_err() {
            *slot = None;
        }
        Ok(result?)
    }

    /// Records that `user` was assigned to `arm` (idempotent) and, with a counter, adds to it.
    pub fn record(
        &self,
        salt: &str,
        arm: &str,
        user: &str,
        counter: Option<(Counter, f64)>,
    ) -> anyhow::Result<()> {
        match &self.redis {
            Some(client) => {
                let keys = Self::keys(salt, arm, user);
                let (field, d) = counter.map_or(("", 0.0), |(c, d)| (c.field(), d));
                let _: i64 = self.with_connection(client, |conn| {
                    redis::cmd("EVAL")
                        .arg(UPDATE)
                        .arg(3)
                        .arg(&keys)
                        .arg(user)
                        .arg(field)
                        .arg(d)
                        .arg(USER_TTL_SECS)
                        .query(conn)
                })?;
                Ok(())
            }
            None => {
                let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
                let key = (arm.to_owned(), user.to_owned());
                let new = local.exposed.insert(key.clone());
                let Local { users, sums, .. } = &mut *local;
                let sums = sums.entry(arm.to_owned()).or_default();
                if new {
                    sums.n += 1.0;
                }
                if let Some((c, d)) = counter {
                    apply(sums, users.entry(key).or_default(), c, d);
                }
                Ok(())
            }
        }
    }

    /// The sums of `arm` now.
    pub fn sums(&self, salt: &str, arm: &str) -> anyhow::Result<Sums> {
        match &self.redis {
            Some(client) => {
                let key = &Self::keys(salt, arm, "")[2];
                let fields: HashMap<String, f64> = self
                    .with_connection(client, |conn| redis::cmd("HGETALL").arg(key).query(conn))?;
                let mut s = Sums::default();
                for (k, v) in fields {
                    s.set(&k, v);
                }
                Ok(s)
            }
            None => Ok(self
                .local
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .sums
                .get(arm)
                .copied()
                .unwrap_or_default()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use recsys_core::stats::ArmStats;

    #[test]
    fn incremental_sums_equal_the_sums_of_final_per_user_counts() {
        let stats = ExperimentStats::new(None);
        let events = [
            ("a", Counter::Impressions, 1.0),
            ("a", Counter::Impressions, 1.0),
            ("b", Counter::Impressions, 1.0),
            ("a", Counter::Clicks, 1.0),
            ("b", Counter::Conversions, 1.0),
            ("a", Counter::Impressions, 1.0),
            ("b", Counter::Clicks, 1.0),
            ("b", Counter::Conversions, 1.0),
        ];
        stats.record("s", "treatment", "c", None).unwrap();
        for (u, c, d) in events {
            stats.record("s", "treatment", u, Some((c, d))).unwrap();
        }
        // Final counts: a (x 3, y 1, c 0), b (x 1, y 1, c 2), c exposed only.
        let mut expected = ArmStats::default();
        for (x, y) in [(3.0, 1.0), (1.0, 1.0), (0.0, 0.0)] {
            expected.add(x, y);
        }
        let sums = stats.sums("s", "treatment").unwrap();
        assert_eq!(sums.ctr(), expected);
        assert_eq!((sums.sc, sums.scc), (2.0, 4.0));
        assert_eq!(sums.conversions().n, 3.0);
        assert_eq!(stats.sums("s", "control").unwrap(), Sums::default());
    }
}
