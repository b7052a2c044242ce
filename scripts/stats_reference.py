#!/usr/bin/env python3
"""Reference values for recsys-core's A/B statistics (core/src/stats), from scipy and
statsmodels. Writes core/tests/fixtures/stats_reference.json, which core/tests/it/stats_reference.rs
compares against at 1e-6 or better. Regenerate (and commit the output) after changing a
definition:

    .venv/bin/pip install scipy statsmodels
    .venv/bin/python scripts/stats_reference.py
"""
import json
import pathlib

import numpy as np
import scipy
import statsmodels
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_effectsize,
    proportions_ztest,
)

OUT = pathlib.Path(__file__).resolve().parent.parent / "core/tests/fixtures/stats_reference.json"
ALPHA = 0.05

cases = {"versions": {"scipy": scipy.__version__, "statsmodels": statsmodels.__version__}}

cases["normal"] = [
    {"x": x, "cdf": stats.norm.cdf(x), "sf": stats.norm.sf(x)}
    for x in [-8.0, -3.2, -1.959963984540054, -0.5, 0.0, 0.3, 1.0, 2.5, 5.0, 8.0]
]
cases["normal_ppf"] = [
    {"p": p, "ppf": stats.norm.ppf(p)} for p in [1e-12, 1e-6, 0.001, 0.025, 0.2, 0.5, 0.8, 0.975, 0.999999]
]
cases["chi2_sf"] = [
    {"x": x, "df": df, "sf": stats.chi2.sf(x, df)}
    for x, df in [(0.1, 1), (3.841458820694124, 1), (10.0, 1), (2.0, 2), (7.5, 3), (0.5, 4), (30.0, 5), (80.0, 10)]
]

props = []
for sc, nc, st, nt in [(480, 10000, 530, 10000), (120, 2000, 95, 2100), (3100, 50000, 3300, 49500), (40, 400, 41, 410)]:
    # statsmodels orders (treatment, control) so that z has the sign of treatment − control.
    z, p = proportions_ztest([st, sc], [nt, nc])
    lo, hi = confint_proportions_2indep(st, nt, sc, nc, method="wald", compare="diff", alpha=ALPHA)
    pc, pt = sc / nc, st / nt
    vc, vt = pc * (1 - pc) / nc, pt * (1 - pt) / nt
    rel = (pt - pc) / pc
    se_rel = np.sqrt(vt / pc**2 + pt**2 * vc / pc**4)
    q = stats.norm.ppf(1 - ALPHA / 2)
    props.append({
        "sc": sc, "nc": nc, "st": st, "nt": nt, "z": z, "p": p,
        "diff_lo": lo, "diff_hi": hi,
        "rel": rel, "rel_lo": rel - q * se_rel, "rel_hi": rel + q * se_rel,
    })
cases["two_proportions"] = props

# Ratio metrics from raw per-user data: the reference works on the users themselves, the
# Rust code on their sufficient statistics.
rng = np.random.default_rng(7)
ratios = []
for n, ctr_c, ctr_t in [(800, 0.05, 0.055), (3000, 0.10, 0.10), (500, 0.02, 0.03)]:
    arms = {}
    for name, ctr in [("control", ctr_c), ("treatment", ctr_t)]:
        x = rng.poisson(12, n) + 1
        taste = rng.beta(2, 2 / ctr - 2, n)  # user-level clustering of clicks
        y = rng.binomial(x, taste)
        mx, my = x.mean(), y.mean()
        cov = np.cov(np.vstack([x, y]), ddof=1)
        var = (cov[1, 1] / mx**2 - 2 * my * cov[0, 1] / mx**3 + my**2 * cov[0, 0] / mx**4) / n
        arms[name] = {"x": x.tolist(), "y": y.tolist(), "ratio": y.sum() / x.sum(), "var": var}
    c, t = arms["control"], arms["treatment"]
    diff = t["ratio"] - c["ratio"]
    se = np.sqrt(c["var"] + t["var"])
    z = diff / se
    ratios.append({**{k: v for k, v in arms.items()}, "z": z, "p": 2 * stats.norm.sf(abs(z))})
cases["ratio"] = ratios

# CUPED: y this period, z the same user's metric before the experiment (shared taste).
cuped = []
for n, lift in [(600, 0.0), (2000, 0.05)]:
    arms = {}
    for name, effect in [("control", 0.0), ("treatment", lift)]:
        taste = rng.gamma(2.0, 1.0, n)
        z = rng.poisson(taste * 3)
        y = rng.poisson(taste * 3 * (1 + effect))
        arms[name] = {"y": y.tolist(), "z": z.tolist()}
    yall = np.r_[arms["control"]["y"], arms["treatment"]["y"]].astype(float)
    zall = np.r_[arms["control"]["z"], arms["treatment"]["z"]].astype(float)
    theta = np.cov(yall, zall, ddof=1)[0, 1] / np.var(zall, ddof=1)
    out = {}
    for name, a in arms.items():
        y, z = np.array(a["y"], float), np.array(a["z"], float)
        adj = y - theta * (z - zall.mean())
        out[name] = (adj.mean(), np.var(adj, ddof=1) / len(adj), np.var(y, ddof=1) / len(y))
    diff = out["treatment"][0] - out["control"][0]
    var = out["treatment"][1] + out["control"][1]
    zstat = diff / np.sqrt(var)
    cuped.append({**arms, "theta": theta, "diff": diff, "z": zstat, "p": 2 * stats.norm.sf(abs(zstat)),
                  "variance_reduction": 1 - var / (out["treatment"][2] + out["control"][2])})
cases["cuped"] = cuped

power = []
for p1, rel in [(0.05, 0.05), (0.10, 0.02), (0.30, 0.10)]:
    p2 = p1 * (1 + rel)
    # statsmodels' effect size is (p1, p2) → 2·asin√p1 − 2·asin√p2; its sign does not matter.
    h = proportion_effectsize(p2, p1)
    for target in [0.8, 0.9, 0.95]:
        n = NormalIndPower().solve_power(effect_size=h, alpha=ALPHA, power=target, ratio=1.0, alternative="two-sided")
        power.append({"p1": p1, "p2": p2, "h": h, "power": target, "n": n,
                      "power_at_n": NormalIndPower().power(effect_size=h, nobs1=n, alpha=ALPHA, ratio=1.0)})
cases["power"] = power

srm = []
for obs, shares in [([5000, 5000], [50, 50]), ([5100, 4900], [50, 50]), ([9120, 880], [90, 10]), ([3400, 3300, 3500], [1, 1, 1])]:
    stat, p = stats.chisquare(obs, f_exp=np.array(shares) / sum(shares) * sum(obs))
    srm.append({"observed": obs, "shares": shares, "stat": stat, "p": p})
cases["srm"] = srm

cases["holm"] = [
    {"p": p, "adjusted": multipletests(p, method="holm")[1].tolist()}
    for p in [[0.01, 0.04, 0.03], [0.2, 0.001, 0.5, 0.04], [0.6]]
]
cases["non_inferiority"] = [
    {"diff": d, "se": se, "margin": m, "p": stats.norm.sf((d + m) / se)}
    for d, se, m in [(-0.001, 0.002, 0.005), (0.0, 0.01, 0.01), (-0.02, 0.01, 0.01)]
]

OUT.parent.mkdir(parents=True, exist_ok=True)
OUT.write_text(json.dumps(cases, indent=1, default=float) + "\n")
print(f"wrote {OUT}")
