//! Leader election against the strict fake API server: the Lease's resourceVersion makes a
//! racing replace fail with 409, and expiry is judged by each candidate's own clock.

use crate::support::fake_api::FakeApi;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use recsys_operator::runtime::leader::{LeaderElection, Timing};
use std::time::{Duration, Instant};

const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/recsys-system/leases/recsys-operator";

fn candidate(fake: &FakeApi, identity: &str) -> LeaderElection {
    LeaderElection::new(
        Api::<Lease>::namespaced(fake.client(), "recsys-system"),
        "recsys-operator",
        identity,
        Timing::default(),
    )
}

fn holder(fake: &FakeApi) -> String {
    fake.get(LEASE).unwrap()["spec"]["holderIdentity"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

#[tokio::test]
async fn a_live_lease_is_never_taken_and_an_expired_one_is() {
    let fake = FakeApi::default();
    let a = candidate(&fake, "a");
    let b = candidate(&fake, "b");
    let t0 = Instant::now();
    let s = Duration::from_secs;

    assert!(a.try_acquire_or_renew_at(t0).await.unwrap(), "a creates it");
    assert_eq!(holder(&fake), "a");
    assert!(!b.try_acquire_or_renew_at(t0).await.unwrap());

    // a renews every few seconds: b, however long it has been waiting, sees the record
    // change and never takes over.
    for k in 1..=6 {
        assert!(a.try_acquire_or_renew_at(t0 + s(4 * k)).await.unwrap());
        assert!(!b.try_acquire_or_renew_at(t0 + s(4 * k + 1)).await.unwrap());
    }
    assert_eq!(holder(&fake), "a");
    let transitions = |f: &FakeApi| f.get(LEASE).unwrap()["spec"]["leaseTransitions"].clone();
    assert_eq!(transitions(&fake), 0);

    // a stops renewing. 14 s after b last saw a change: not yet.
    let last_seen = t0 + s(25);
    assert!(!b.try_acquire_or_renew_at(last_seen + s(14)).await.unwrap());
    // 16 s after: the lease is b's, and the holder changed once.
    assert!(b.try_acquire_or_renew_at(last_seen + s(16)).await.unwrap());
    assert_eq!(holder(&fake), "b");
    assert_eq!(transitions(&fake), 1);
    // a, back, sees b's fresh record and waits.
    assert!(!a.try_acquire_or_renew_at(last_seen + s(17)).await.unwrap());
}

#[tokio::test]
async fn a_racing_replace_gets_409_and_stays_a_candidate() {
    let fake = FakeApi::default();
    let a = candidate(&fake, "a");
    let b = candidate(&fake, "b");
    let t0 = Instant::now();
    assert!(a.try_acquire_or_renew_at(t0).await.unwrap());
    assert!(!b.try_acquire_or_renew_at(t0).await.unwrap());

    // b decides the lease expired, but another writer changes it between b's read and write.
    fake.conflict_next_write(LEASE);
    let later = t0 + Duration::from_secs(20);
    assert!(!b.try_acquire_or_renew_at(later).await.unwrap());
    assert_eq!(holder(&fake), "a");
    let put = fake
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.method == http::Method::PUT)
        .unwrap();
    assert_eq!(put.status, 409);
    assert!(
        put.body.unwrap()["metadata"]["resourceVersion"].is_string(),
        "the replace carries the resourceVersion it read"
    );

    // A genuinely stale resourceVersion is refused by the fake too.
    let api = Api::<Lease>::namespaced(fake.client(), "recsys-system");
    let mut stale = api.get("recsys-operator").await.unwrap();
    assert!(a.try_acquire_or_renew_at(later).await.unwrap(), "a renews");
    stale.spec.as_mut().unwrap().holder_identity = Some("c".into());
    let err = api
        .replace("recsys-operator", &Default::default(), &stale)
        .await
        .unwrap_err();
    assert!(matches!(err, kube::Error::Api(s) if s.code == 409));
    assert_eq!(holder(&fake), "a");
}

#[tokio::test]
async fn a_released_lease_is_taken_at_once() {
    let fake = FakeApi::default();
    let a = candidate(&fake, "a");
    let b = candidate(&fake, "b");
    let t0 = Instant::now();
    assert!(a.try_acquire_or_renew_at(t0).await.unwrap());
    assert!(!b.release().await.unwrap(), "b holds nothing to release");
    assert!(a.release().await.unwrap());
    assert_eq!(holder(&fake), "");
    assert!(
        b.try_acquire_or_renew_at(t0).await.unwrap(),
        "no lease duration to wait"
    );
    assert_eq!(holder(&fake), "b");
}
