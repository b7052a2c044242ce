//! recsys-core's A/B statistics against scipy / statsmodels (fixture written by
//! `scripts/stats_reference.py`): closed-form answers agree to 1e-6 or better.

use recsys_core::stats::{
    chi2_sf, holm::holm, norm_cdf, norm_ppf, norm_sf, power, ratio::compare_ratio, srm::srm, ztest,
    ArmStats,
};
use serde_json::Value;

fn fixture() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/stats_reference.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("{v} is not a number"))
}

#[track_caller]
fn close(actual: f64, expected: f64, tolerance: f64, what: &str) {
    let scale = expected.abs().max(1.0);
    assert!(
        (actual - expected).abs() <= tolerance * scale,
        "{what}: {actual} vs reference {expected}"
    );
}

#[test]
fn distributions_agree_with_scipy() {
    let r = fixture();
    for c in r["normal"].as_array().unwrap() {
        let x = f(&c["x"]);
        close(norm_cdf(x), f(&c["cdf"]), 1e-12, "cdf");
        // Relative accuracy in the far tail.
        let sf = f(&c["sf"]);
        assert!((norm_sf(x) - sf).abs() <= 1e-10 * sf.max(1e-300), "sf({x})");
    }
    for c in r["normal_ppf"].as_array().unwrap() {
        close(norm_ppf(f(&c["p"])), f(&c["ppf"]), 1e-9, "ppf");
    }
    for c in r["chi2_sf"].as_array().unwrap() {
        close(
            chi2_sf(f(&c["x"]), f(&c["df"])),
            f(&c["sf"]),
            1e-10,
            "chi2 sf",
        );
    }
}

#[test]
fn two_proportions_agree_with_statsmodels() {
    for c in fixture()["two_proportions"].as_array().unwrap() {
        let t = ztest::two_proportions(f(&c["sc"]), f(&c["nc"]), f(&c["st"]), f(&c["nt"]), 0.05);
        close(t.z, f(&c["z"]), 1e-9, "z");
        close(t.p_value, f(&c["p"]), 1e-9, "p");
        close(t.diff_ci.0, f(&c["diff_lo"]), 1e-9, "diff lo");
        close(t.diff_ci.1, f(&c["diff_hi"]), 1e-9, "diff hi");
        close(t.relative, f(&c["rel"]), 1e-9, "relative");
        close(t.relative_ci.0, f(&c["rel_lo"]), 1e-9, "relative lo");
        close(t.relative_ci.1, f(&c["rel_hi"]), 1e-9, "relative hi");
    }
}

#[test]
fn user_level_ratio_metrics_agree_with_numpy_on_the_raw_users() {
    for c in fixture()["ratio"].as_array().unwrap() {
        let arm = |name: &str| {
            let mut s = ArmStats::default();
            let (x, y) = (
                c[name]["x"].as_array().unwrap(),
                c[name]["y"].as_array().unwrap(),
            );
            for (x, y) in x.iter().zip(y) {
                s.add(f(x), f(y));
            }
            close(s.ratio(), f(&c[name]["ratio"]), 1e-12, "ratio");
            close(
                s.ratio_variance(),
                f(&c[name]["var"]),
                1e-9,
                "delta-method variance",
            );
            s
        };
        let (control, treatment) = (arm("control"), arm("treatment"));
        let t = compare_ratio(&control, &treatment, 0.05);
        close(t.z, f(&c["z"]), 1e-8, "z");
        close(t.p_value, f(&c["p"]), 1e-8, "p");
    }
}

#[test]
fn sample_size_and_power_agree_with_statsmodels() {
    for c in fixture()["power"].as_array().unwrap() {
        let h = power::proportion_effect_size(f(&c["p1"]), f(&c["p2"]));
        close(h.abs(), f(&c["h"]).abs(), 1e-12, "effect size");
        let n = power::sample_size_per_arm(h, 0.05, f(&c["power"]));
        close(n, f(&c["n"]), 1e-6, "users per arm");
        close(
            power::power_per_arm(h, f(&c["n"]), 0.05),
            f(&c["power_at_n"]),
            1e-9,
            "power",
        );
    }
}

#[test]
fn srm_holm_and_non_inferiority_agree_with_scipy_and_statsmodels() {
    let r = fixture();
    for c in r["srm"].as_array().unwrap() {
        let obs: Vec<f64> = c["observed"].as_array().unwrap().iter().map(f).collect();
        let shares: Vec<f64> = c["shares"].as_array().unwrap().iter().map(f).collect();
        let (stat, p) = srm(&obs, &shares);
        close(stat, f(&c["stat"]), 1e-10, "chi-square");
        close(p, f(&c["p"]), 1e-10, "srm p");
    }
    for c in r["holm"].as_array().unwrap() {
        let p: Vec<f64> = c["p"].as_array().unwrap().iter().map(f).collect();
        let expected: Vec<f64> = c["adjusted"].as_array().unwrap().iter().map(f).collect();
        for (a, e) in holm(&p).iter().zip(&expected) {
            close(*a, *e, 1e-12, "holm");
        }
    }
    for c in r["non_inferiority"].as_array().unwrap() {
        let (_, p) = ztest::non_inferiority(f(&c["diff"]), f(&c["se"]), f(&c["margin"]));
        close(p, f(&c["p"]), 1e-12, "non-inferiority p");
    }
}

#[test]
fn cuped_agrees_with_numpy_on_the_raw_users() {
    use recsys_core::stats::cuped::{cuped, CovariateStats};
    for c in fixture()["cuped"].as_array().unwrap() {
        let arm = |name: &str| {
            let mut s = CovariateStats::default();
            let (y, z) = (
                c[name]["y"].as_array().unwrap(),
                c[name]["z"].as_array().unwrap(),
            );
            for (y, z) in y.iter().zip(z) {
                s.add(f(y), f(z));
            }
            s
        };
        let r = cuped(&arm("control"), &arm("treatment"), 0.05);
        close(r.theta, f(&c["theta"]), 1e-9, "theta");
        close(
            r.comparison.diff,
            f(&c["diff"]),
            1e-9,
            "adjusted difference",
        );
        close(r.comparison.z, f(&c["z"]), 1e-8, "z");
        close(r.comparison.p_value, f(&c["p"]), 1e-8, "p");
        close(
            r.variance_reduction,
            f(&c["variance_reduction"]),
            1e-8,
            "variance reduction",
        );
        assert!(r.variance_reduction > 0.3, "a correlated covariate helps");
    }
}
