"""Summary of ``routing_signals.py`` output: variants' figures with paired-bootstrap CIs, and
gated single-aspect rules (anchor another number of places when one signal passes a
threshold, else 5) simulated per question (development data only).

    python benchmarks/routing_signals_report.py SIGNALS.json ROUTING_DEV_TRAIN.json
"""
# ruff: noqa
import json, sys, numpy as np

from aspectrag.evaluate.metrics import paired_bootstrap
def ci(a, b):
    m, lo, hi = paired_bootstrap(np.asarray(a), np.asarray(b), None, n_boot=2000)["mean"]
    return f"{m:+.4f} [{lo:+.4f}, {hi:+.4f}]"
d = json.load(open(sys.argv[1]))
b = json.load(open(sys.argv[2]))["scifact-train"]
H = np.array(b["hybrid"]["per_query"]); A = np.array(b["auto"]["per_query"])
S = {k: np.asarray(v) for k, v in d["scifact"]["scores"].items()}
Sh = {k: np.asarray(v) for k, v in d["hotpot"]["scores"].items()}
MQh = None
print("SciFact train vs hybrid / vs auto; HotpotQA both@10 (auto 0.905, multiquery 0.910)")
for k in ["m=5,w=1", "m=4,w=1", "m=3,w=1", "m=5,w=0.25", "docs=3", "docs=5", "clauses=0", "clauses=2", "clauses=5", "clauses=10", "clauses=1048576"]:
    print(f"  {k:16s} SF {S[k].mean():.4f} vs hybrid {ci(S[k], H)} vs auto {ci(S[k], A)}  hotpot {Sh[k].mean():.3f} vs auto {ci(Sh[k], Sh['m=5,w=1'])}")
def feats(r):
    F = r["features"]; sc = np.array([f["scores"] for f in F])
    ov = np.array([f["prf_overlap10"] if f["prf_overlap10"] is not None else -1 for f in F])
    return {"gap12": sc[:,0]-sc[:,1], "gap1_10": sc[:,0]-sc[:,9], "s1": sc[:,0], "ov": ov.astype(float), "words": np.array([f["words"] for f in F], float)}
fs, fh = feats(d["scifact"]), feats(d["hotpot"])
print("gated: anchor HI places when feature >= t (or <= t), else 5")
best = []
for name in fs:
    for hi in ["m=10,w=1", "hybrid", "m=3,w=1", "m=0,w=1"]:
        for t in np.quantile(fs[name], [.1, .25, .5, .75, .9]):
            for sign in (1, -1):
                g = sign * fs[name] >= sign * t; gh = sign * fh[name] >= sign * t
                v = np.where(g, S[hi], S["m=5,w=1"]); vh = np.where(gh, Sh[hi], Sh["m=5,w=1"])
                best.append((v.mean() - A.mean(), name, hi, round(float(t), 3), sign, round(float(vh.mean()), 3), v))
best.sort(key=lambda x: -x[0])
for x in best[:8]:
    print(f"  {x[1]} {'>=' if x[4] > 0 else '<='} {x[3]} -> {x[2]}: SF {x[6].mean():.4f} vs auto {ci(x[6], A)} vs hybrid {ci(x[6], H)} hotpot {x[5]}")
