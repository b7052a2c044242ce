//! The Experiment controller against the strict fake API and a real Prometheus: the treatment
//! becomes the RecModel's second arm with the experiment's salt, looks read the per-arm sums
//! Prometheus scraped, and the decision promotes (recorded where Git never looks), rolls
//! back, stays inconclusive on an A/A test, pauses on a broken split, survives a restart and
//! a Prometheus outage, and aborts when the control changes underneath it.

use crate::support::fake_api::FakeApi;
use crate::support::prometheus::{Exporter, Prometheus};
use crate::support::world::*;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use recsys_core::stats::Sums;
use recsys_operator::controllers::experiment::{self, prometheus};
use recsys_operator::crd::v1alpha1::Experiment;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

const EXP: &str = "/apis/recsys.dev/v1alpha1/namespaces/recsys/experiments/movies-v2";
const PROMOTION: &str = "/api/v1/namespaces/recsys/configmaps/movies-promotion";

/// A deterministic generator (xorshift) so that every run sees the same users.
struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `n` users, each with 1–20 impressions, clicking each with a per-user rate around `ctr`
/// (users differ: the clustering that makes impression-level tests lie).
fn users(rng: &mut Rng, n: usize, ctr: f64) -> Sums {
    let mut s = Sums::default();
    for _ in 0..n {
        let x = 1.0 + (rng.uniform() * 20.0).floor();
        let rate = (ctr * 2.0 * rng.uniform()).min(1.0);
        let y = (0..x as usize).filter(|_| rng.uniform() < rate).count() as f64;
        let c = if rng.uniform() < 0.1 { 1.0 } else { 0.0 };
        s.n += 1.0;
        s.sx += x;
        s.sy += y;
        s.sc += c;
        s.sxx += x * x;
        s.syy += y * y;
        s.scc += c * c;
        s.sxy += x * y;
    }
    s
}

/// The router's metrics text for one table (same names and labels as `recsys route`).
fn router_text(salt: &str, control: &Sums, treatment: &Sums) -> String {
    let mut out = String::from("# TYPE recsys_experiment_users gauge\n");
    for (arm, s) in [("stable", control), ("canary", treatment)] {
        out.push_str(&format!(
            "recsys_experiment_users{{arm=\"{arm}\",salt=\"{salt}\"}} {}\n",
            s.n
        ));
    }
    out.push_str("# TYPE recsys_experiment_sum gauge\n");
    for (arm, s) in [("stable", control), ("canary", treatment)] {
        for (field, v) in s.fields().into_iter().skip(1) {
            out.push_str(&format!(
                "recsys_experiment_sum{{arm=\"{arm}\",salt=\"{salt}\",sum=\"{field}\"}} {v}\n"
            ));
        }
    }
    out
}

struct Lab {
    fake: FakeApi,
    exporter: Exporter,
    prometheus: Prometheus,
    t0: Timestamp,
}

impl Lab {
    fn new() -> Self {
        let exporter = Exporter::start();
        let prometheus = Prometheus::start(&[(&exporter.addr, "movies-router-0")]);
        Self {
            fake: FakeApi::default(),
            exporter,
            prometheus,
            t0: Timestamp::from_second(1_790_000_000).unwrap(),
        }
    }

    fn at(&self, minutes: i64) -> Timestamp {
        self.t0 + SignedDuration::from_mins(minutes)
    }

    fn create_experiment(&self, extra: Value) {
        let mut spec = json!({
            "recModel": "movies", "treatment": {"modelUri": uri("v2")}, "trafficPercent": 50,
            "design": {"alpha": 0.05, "power": 0.8, "baseline": 0.1,
                       "minimumDetectableEffect": 0.1, "minDuration": "1h",
                       "maxDuration": "2d", "intervalSeconds": 60},
            "guardrails": [{"name": "conversions", "userMetric": "conversionsPerUser",
                            "margin": 0.03}],
            "prometheusUrl": self.prometheus.url,
        });
        spec.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        self.fake.put(
            EXP,
            json!({"apiVersion": "recsys.dev/v1alpha1", "kind": "Experiment",
                   "metadata": {"name": "movies-v2", "namespace": "recsys"}, "spec": spec}),
        );
    }

    fn experiment(&self) -> Arc<Experiment> {
        Arc::new(serde_json::from_value(self.fake.get(EXP).unwrap()).unwrap())
    }

    fn status(&self) -> Value {
        status(&self.fake, EXP)
    }

    async fn look(&self, ctx: &Arc<recsys_operator::controllers::Context>, minutes: i64) -> Value {
        experiment::reconcile_at(self.experiment(), Arc::clone(ctx), self.at(minutes))
            .await
            .unwrap();
        self.status()
    }

    fn salt(&self) -> String {
        self.experiment().metadata.uid.clone().unwrap()
    }

    /// Publishes the arms' sums and waits until Prometheus has scraped them.
    async fn publish(&self, control: &Sums, treatment: &Sums) {
        let salt = self.salt();
        self.exporter.set(router_text(&salt, control, treatment));
        let q = experiment::users_query(&salt);
        let want = control.n + treatment.n;
        for _ in 0..100 {
            if let Ok(samples) = prometheus::query(&self.prometheus.url, &q).await {
                if samples.iter().map(|s| s.value).sum::<f64>() == want {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("Prometheus never scraped {want} users");
    }

    /// RecModel v1 serving, then the experiment's treatment arm built, rolled out and routed.
    async fn serving_with_treatment(&self, ctx: &Arc<recsys_operator::controllers::Context>) {
        let fake = &self.fake;
        serving(fake, ctx, "v1").await;
        assert_eq!(status(fake, RM)["stableVersion"], "v1");
        let s = self.look(ctx, 0).await;
        assert_eq!(s["phase"], "Pending", "{s}");
        // The RecModel gives the treatment its own index, pods, then routes it.
        reconcile_model(fake, ctx).await;
        publish(fake, &derived_path(fake, "v2"), "v2");
        reconcile_model(fake, ctx).await;
        roll_out(fake, "movies-canary");
        reconcile_model(fake, ctx).await;
        let table = routing(fake);
        assert_eq!(table["salt"], json!(self.salt()), "{table}");
        assert_eq!(table["arms"][1]["name"], "canary");
        assert_eq!(status(fake, RM)["experiment"], "movies-v2");
        let s = self.look(ctx, 0).await;
        assert_eq!(s["phase"], "Running", "{s}");
        assert_eq!(s["controlVersion"], "v1");
        assert_eq!(s["treatmentVersion"], "v2");
    }
}

/// `kubectl get experiments` as the CRD's printer columns render this status.
fn kubectl_get(exp: &Value) -> String {
    let crd = recsys_operator::crd::all()
        .into_iter()
        .find(|(f, _)| f.starts_with("experiments"))
        .unwrap()
        .1;
    let columns = crd.spec.versions[0]
        .additional_printer_columns
        .clone()
        .unwrap();
    let mut header = vec!["NAME".to_owned()];
    let mut row = vec![exp["metadata"]["name"].as_str().unwrap().to_owned()];
    for c in &columns {
        header.push(c.name.to_uppercase());
        let mut v = exp;
        for key in c.json_path.trim_start_matches('.').split('.') {
            v = &v[key];
        }
        row.push(match (c.type_.as_str(), v) {
            ("date", _) => "2d".to_owned(),
            (_, Value::String(s)) => s.clone(),
            (_, Value::Null) => "<none>".to_owned(),
            (_, other) => other.to_string(),
        });
    }
    let widths: Vec<usize> = header
        .iter()
        .zip(&row)
        .map(|(h, r)| h.len().max(r.len()))
        .collect();
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("   ")
            .trim_end()
            .to_owned()
    };
    format!("{}\n{}", line(&header), line(&row))
}

#[tokio::test]
async fn a_better_treatment_is_promoted_without_touching_the_spec_and_git_wins_afterwards() {
    let lab = Lab::new();
    let ctx = context(&lab.fake);
    lab.create_experiment(json!({}));
    lab.serving_with_treatment(&ctx).await;
    let mut rng = Rng(7);
    let (c, t) = (users(&mut rng, 6_000, 0.10), users(&mut rng, 6_000, 0.12));
    lab.publish(&c, &t).await;

    // Significant, but before the minimum duration: keep going.
    let s = lab.look(&ctx, 30).await;
    assert_eq!(s["decision"], "Continue", "{s}");
    assert_eq!(s["reason"], "minimum duration not reached");
    assert_eq!(s["users"], "6000/6000");
    // A look before the interval has passed changes nothing.
    let before = lab.fake.requests().len();
    lab.look(&ctx, 30).await;
    assert_eq!(
        lab.fake.requests().len(),
        before + 1,
        "only the RecModel read"
    );

    let s = lab.look(&ctx, 90).await;
    assert_eq!(s["phase"], "Concluded", "{s}");
    assert_eq!(s["decision"], "Promote");
    assert!(s["lift"].as_str().unwrap().starts_with('+'), "{s}");
    let table = kubectl_get(&lab.fake.get(EXP).unwrap());
    println!("$ kubectl get experiments\n{table}");
    assert!(
        table.contains("Concluded") && table.contains("Promote") && table.contains("6000/6000")
    );

    // Recorded in an operator-owned ConfigMap; the RecModel serves v2 while Git says v1.
    let cm = lab.fake.get(PROMOTION).expect("promotion recorded");
    assert_eq!(cm["data"]["promotedFrom"], json!(uri("v1")));
    assert_eq!(cm["data"]["modelUri"], json!(uri("v2")));
    assert_eq!(cm["metadata"]["ownerReferences"][0]["kind"], "RecModel");
    reconcile_model(&lab.fake, &ctx).await;
    assert!(args(&lab.fake, "movies-stable").contains(&uri("v2")));
    roll_out(&lab.fake, "movies-stable");
    reconcile_model(&lab.fake, &ctx).await;
    let rm = status(&lab.fake, RM);
    assert_eq!(rm["stableVersion"], "v2", "{rm}");
    assert_eq!(rm["promotedBy"], "movies-v2");
    assert_eq!(
        condition(&rm, "Promoted"),
        ("True".into(), "ExperimentPromoted".into())
    );
    assert!(rm.get("experiment").is_none(), "treatment unrouted: {rm}");
    assert_eq!(
        lab.fake.get(RM).unwrap()["spec"]["modelUri"],
        json!(uri("v1"))
    );
    assert!(!lab.fake.applied().iter().any(|p| p == RM || p == EXP));

    // Git adopts v2: the record is dropped and the spec rules again.
    apply_spec(&lab.fake, "v2", None);
    reconcile_model(&lab.fake, &ctx).await;
    assert!(lab.fake.get(PROMOTION).is_none());
    let rm = status(&lab.fake, RM);
    assert_eq!(condition(&rm, "Promoted").0, "False");
    assert!(args(&lab.fake, "movies-stable").contains(&uri("v2")));
}

#[tokio::test]
async fn a_worse_treatment_is_rolled_back_early_and_an_a_a_test_never_promotes() {
    let lab = Lab::new();
    let ctx = context(&lab.fake);
    lab.create_experiment(json!({}));
    lab.serving_with_treatment(&ctx).await;
    let mut rng = Rng(11);
    lab.publish(&users(&mut rng, 5_000, 0.10), &users(&mut rng, 5_000, 0.07))
        .await;
    // Deterioration ends it at once, minimum duration or not.
    let s = lab.look(&ctx, 5).await;
    assert_eq!(s["decision"], "Rollback", "{s}");
    assert_eq!(s["phase"], "Concluded");
    println!(
        "worse treatment: Rollback at minute 5, users {}, lift {}",
        s["users"], s["lift"]
    );
    assert!(lab.fake.get(PROMOTION).is_none());
    // The treatment leaves the routing table (and drains) on the RecModel's next reconcile.
    reconcile_model(&lab.fake, &ctx).await;
    assert_eq!(routing(&lab.fake)["arms"].as_array().unwrap().len(), 1);
    assert_eq!(status(&lab.fake, RM)["stableVersion"], "v1");

    // A/A: the same model on both arms' users, watched every two hours until the planned
    // sample (about 39,500 users) is reached, just before the maximum duration of two days.
    let lab = Lab::new();
    let ctx = context(&lab.fake);
    lab.create_experiment(json!({}));
    lab.serving_with_treatment(&ctx).await;
    let mut rng = Rng(5);
    let (mut c, mut t) = (Sums::default(), Sums::default());
    let mut last = Value::Null;
    for hour in (2..=48).step_by(2) {
        let (dc, dt) = (users(&mut rng, 900, 0.10), users(&mut rng, 900, 0.10));
        for (acc, d) in [(&mut c, dc), (&mut t, dt)] {
            for (f, v) in d.fields() {
                let cur = acc.fields().iter().find(|(g, _)| *g == f).unwrap().1;
                acc.set(f, cur + v);
            }
        }
        lab.publish(&c, &t).await;
        last = lab.look(&ctx, hour * 60).await;
        assert_ne!(last["decision"], "Promote", "hour {hour}: {last}");
        assert_ne!(last["decision"], "Rollback", "hour {hour}: {last}");
        if last["phase"] == "Concluded" {
            break;
        }
    }
    println!(
        "A/A: {} after {} looks, users {}, started {}, decided {}",
        last["decision"], last["looks"], last["users"], last["startedAt"], last["decidedAt"]
    );
    assert_eq!(last["decision"], "Inconclusive", "{last}");
    assert!(lab.fake.get(PROMOTION).is_none());
}

#[tokio::test]
async fn a_broken_split_pauses_an_outage_decides_nothing_and_a_restart_reaches_the_same_decision() {
    let lab = Lab::new();
    let ctx = context(&lab.fake);
    lab.create_experiment(json!({}));
    lab.serving_with_treatment(&ctx).await;
    let mut rng = Rng(3);
    // 50/50 planned, 6000 vs 5000 observed: sample-ratio mismatch.
    lab.publish(&users(&mut rng, 6_000, 0.1), &users(&mut rng, 5_000, 0.1))
        .await;
    let s = lab.look(&ctx, 90).await;
    assert_eq!(s["phase"], "Paused", "{s}");
    assert_eq!(
        condition(&s, "Paused"),
        ("True".into(), "SampleRatioMismatch".into())
    );
    assert!(lab
        .fake
        .events()
        .iter()
        .any(|e| e["reason"] == "SampleRatioMismatch"));

    // Fixed split and a clear win; but Prometheus is unreachable: nothing is decided.
    let (c, t) = (users(&mut rng, 6_000, 0.10), users(&mut rng, 6_000, 0.12));
    lab.publish(&c, &t).await;
    let mut broken = lab.experiment();
    Arc::make_mut(&mut broken).spec.prometheus_url = Some("http://127.0.0.1:9".into());
    experiment::reconcile_at(broken, Arc::clone(&ctx), lab.at(100))
        .await
        .unwrap();
    let s = lab.status();
    assert_eq!(s["phase"], "Paused", "an outage changes no phase: {s}");
    assert_eq!(
        condition(&s, "Degraded"),
        ("True".into(), "MetricsUnavailable".into())
    );
    assert!(
        s["reason"]
            .as_str()
            .unwrap()
            .starts_with("no look: Prometheus"),
        "{s}"
    );

    // Two operators that each read the same stored status decide the same.
    let stored = lab.fake.get(EXP).unwrap();
    let s = lab.look(&ctx, 110).await;
    assert_eq!(s["decision"], "Promote", "{s}");
    let first = (s["lift"].clone(), s["pValue"].clone(), s["users"].clone());
    let restarted = FakeApi::default();
    for path in [RM, II, EXP] {
        let obj = if path == EXP {
            stored.clone()
        } else {
            lab.fake.get(path).unwrap()
        };
        restarted.put(path, obj.clone());
        restarted.set_status(path, obj["status"].clone());
    }
    let ctx2 = context(&restarted);
    let again: Arc<Experiment> =
        Arc::new(serde_json::from_value(restarted.get(EXP).unwrap()).unwrap());
    experiment::reconcile_at(again, ctx2, lab.at(110))
        .await
        .unwrap();
    let s2 = status(&restarted, EXP);
    assert_eq!(s2["decision"], "Promote");
    assert_eq!(
        (
            s2["lift"].clone(),
            s2["pValue"].clone(),
            s2["users"].clone()
        ),
        first
    );
}

#[tokio::test]
async fn a_control_changed_mid_experiment_aborts_it() {
    let lab = Lab::new();
    let ctx = context(&lab.fake);
    lab.create_experiment(json!({}));
    lab.serving_with_treatment(&ctx).await;
    // Someone changes the RecModel's version in Git mid-experiment.
    apply_spec(&lab.fake, "v1b", None);
    ready_index(&lab.fake, "v1b");
    reconcile_model(&lab.fake, &ctx).await;
    let s = lab.look(&ctx, 10).await;
    assert_eq!(s["phase"], "Concluded", "{s}");
    assert_eq!(s["decision"], "Aborted");
    assert!(
        s["reason"]
            .as_str()
            .unwrap()
            .contains("control arm changed"),
        "{s}"
    );
    assert!(lab.fake.get(PROMOTION).is_none());
}
