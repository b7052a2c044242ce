//! Leader election on a `coordination.k8s.io/v1` Lease: only the holder reconciles.
//!
//! As client-go does it, expiry is judged by this replica's own clock, never by comparing the
//! lease's `renewTime` with local time (clocks of two nodes disagree): a candidate remembers
//! when it last saw the lease record change, and takes the lease only when it has not changed
//! for a whole lease duration. Writes carry the resourceVersion they read, so of two racing
//! candidates one gets 409 and stays a candidate. The holder renews every retry period and
//! gives up when it could not renew within the renew deadline (shorter than the lease
//! duration, so it stops before anyone else may start). On shutdown the holder releases the
//! lease so a standby takes over at once instead of after a lease duration.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::Api;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Timing of the election (client-go's defaults: 15 s, 10 s, 2 s).
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub lease_duration: Duration,
    /// The holder stops leading when it has not renewed for this long; < `lease_duration`.
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// What a candidate should do with the lease as it stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// No lease yet: create it.
    Create,
    /// Ours, or free, or unchanged for a lease duration: write ourselves in. `transition`
    /// when the holder changes.
    Take { transition: bool },
    /// Someone else holds it.
    Wait,
}

/// Pure rule over the current lease spec; `unchanged_for` is how long, by the local clock,
/// the record has looked the same to this candidate.
pub fn decide(spec: Option<&LeaseSpec>, me: &str, unchanged_for: Duration) -> Decision {
    let Some(spec) = spec else {
        return Decision::Create;
    };
    let holder = spec.holder_identity.as_deref().unwrap_or("");
    if holder == me {
        return Decision::Take { transition: false };
    }
    let duration = Duration::from_secs(spec.lease_duration_seconds.unwrap_or(15).max(1) as u64);
    if holder.is_empty() || unchanged_for >= duration {
        Decision::Take { transition: true }
    } else {
        Decision::Wait
    }
}

/// The parts of a lease record whose change shows its holder is alive.
fn record_key(spec: Option<&LeaseSpec>) -> Option<String> {
    spec.map(|s| {
        format!(
            "{:?}|{:?}|{:?}|{:?}",
            s.holder_identity, s.renew_time, s.acquire_time, s.lease_transitions
        )
    })
}

pub struct LeaderElection {
    api: Api<Lease>,
    name: String,
    identity: String,
    timing: Timing,
    /// The record last seen and when (local clock) it was first seen in that form.
    observed: Mutex<Option<(Option<String>, Instant)>>,
}

impl LeaderElection {
    pub fn new(api: Api<Lease>, name: &str, identity: &str, timing: Timing) -> Self {
        Self {
            api,
            name: name.into(),
            identity: identity.into(),
            timing,
            observed: Mutex::new(None),
        }
    }

    fn spec(&self, now: Timestamp, acquired: Option<MicroTime>, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.timing.lease_duration.as_secs() as i32),
            acquire_time: Some(acquired.unwrap_or(MicroTime(now))),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..Default::default()
        }
    }

    /// How long the record `key` has looked the same to us, remembering it if new.
    fn unchanged_for(&self, key: Option<String>, now: Instant) -> Duration {
        let mut observed = self.observed.lock().unwrap_or_else(|p| p.into_inner());
        match observed.as_ref() {
            Some((seen, since)) if *seen == key => now.saturating_duration_since(*since),
            _ => {
                *observed = Some((key, now));
                Duration::ZERO
            }
        }
    }

    fn remember(&self, lease: &Lease, now: Instant) {
        *self.observed.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((record_key(lease.spec.as_ref()), now));
    }

    /// One attempt to hold the lease; true when we hold it afterwards.
    pub async fn try_acquire_or_renew(&self) -> Result<bool, kube::Error> {
        self.try_acquire_or_renew_at(Instant::now()).await
    }

    /// [`Self::try_acquire_or_renew`] with the local clock's reading given (tests).
    pub async fn try_acquire_or_renew_at(&self, now: Instant) -> Result<bool, kube::Error> {
        let wall = Timestamp::now();
        let current = self.api.get_opt(&self.name).await?;
        let spec = current.as_ref().and_then(|l| l.spec.as_ref());
        let unchanged_for = self.unchanged_for(record_key(spec), now);
        let result = match decide(spec, &self.identity, unchanged_for) {
            Decision::Wait => return Ok(false),
            Decision::Create => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..Default::default()
                    },
                    spec: Some(self.spec(wall, None, 0)),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            Decision::Take { transition } => {
                let Some(mut lease) = current else {
                    return Ok(false);
                };
                let old = lease.spec.clone().unwrap_or_default();
                let transitions = old.lease_transitions.unwrap_or(0) + i32::from(transition);
                let acquired = if transition { None } else { old.acquire_time };
                lease.spec = Some(self.spec(wall, acquired, transitions));
                // `replace` sends the resourceVersion we read: a concurrent writer makes it 409.
                self.api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
            }
        };
        match result {
            Ok(lease) => {
                self.remember(&lease, now);
                Ok(true)
            }
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Blocks until this replica holds the lease.
    pub async fn acquire(&self) {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => return,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "leader election attempt failed"),
            }
            tokio::time::sleep(self.timing.retry_period).await;
        }
    }

    /// Renews every retry period; returns when the lease is lost, or when renewal has failed
    /// for the renew deadline. The caller must stop reconciling at once.
    pub async fn hold(&self) {
        let mut last_success = Instant::now();
        loop {
            tokio::time::sleep(self.timing.retry_period).await;
            match self.try_acquire_or_renew().await {
                Ok(true) => last_success = Instant::now(),
                Ok(false) => return,
                Err(e) => tracing::warn!(error = %e, "lease renewal failed"),
            }
            if last_success.elapsed() >= self.timing.renew_deadline {
                return;
            }
        }
    }

    /// Gives the lease up if we hold it (empty holder, 1 s duration), so a standby need not
    /// wait out a whole lease duration. False when we did not hold it.
    pub async fn release(&self) -> Result<bool, kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            return Ok(false);
        };
        let mine = lease
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.as_deref())
            == Some(self.identity.as_str());
        if !mine {
            return Ok(false);
        }
        let now = MicroTime(Timestamp::now());
        let old = lease.spec.clone().unwrap_or_default();
        lease.spec = Some(LeaseSpec {
            holder_identity: Some(String::new()),
            lease_duration_seconds: Some(1),
            acquire_time: Some(now.clone()),
            renew_time: Some(now),
            lease_transitions: old.lease_transitions,
            ..Default::default()
        });
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: &str) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            ..Default::default()
        }
    }

    #[test]
    fn a_lease_is_taken_only_when_free_ours_or_unchanged_for_its_duration() {
        let s = Duration::from_secs;
        assert_eq!(decide(None, "a", s(0)), Decision::Create);
        assert_eq!(decide(Some(&spec("b")), "a", s(3)), Decision::Wait);
        assert_eq!(
            decide(Some(&spec("b")), "a", s(15)),
            Decision::Take { transition: true }
        );
        assert_eq!(
            decide(Some(&spec("a")), "a", s(0)),
            Decision::Take { transition: false }
        );
        assert_eq!(
            decide(Some(&spec("")), "a", s(0)),
            Decision::Take { transition: true }
        );
        assert!(Timing::default().renew_deadline < Timing::default().lease_duration);
    }
}
