"""PNG figures from the files the outeffhop CLI writes. Usage:
    plots.py memory RESULTS.csv OUT.png TITLE
    plots.py tracking TRACKING.jsonl OUT.png TITLE     (outeffhop lm --out DIR writes DIR/tracking.jsonl)"""
import csv
import json
import statistics
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def memory(results_csv, out_png, title):
    """Success rate and squared error against the swept variable (memories or sigma), one line per model,
    mean with a band of +-1 std over seeds: the layout of the paper's Figures 5 and 6."""
    rows = list(csv.DictReader(open(results_csv)))
    # The swept variable: steps when several step counts were run (retrieval curves), else N or sigma.
    distinct = {k: len({r[k] for r in rows}) for k in ("n", "sigma", "steps")}
    x_key = "steps" if distinct["steps"] > 1 else ("n" if rows[0]["experiment"] == "capacity" else "sigma")
    series = defaultdict(lambda: defaultdict(lambda: ([], [])))
    for r in rows:
        point = series[r["model"]][float(r[x_key])]
        point[0].append(float(r["success_rate"]))
        point[1].append(float(r["mean_sqdiff"]))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for model, points in series.items():
        xs = sorted(points)
        for axis, k in zip(axes, (0, 1)):
            means = [statistics.fmean(points[x][k]) for x in xs]
            stds = [statistics.pstdev(points[x][k]) for x in xs]
            axis.plot(xs, means, marker="o", markersize=3, label=model)
            axis.fill_between(xs, [m - s for m, s in zip(means, stds)], [m + s for m, s in zip(means, stds)],
                              alpha=0.15)
    for axis, label in zip(axes, ("success rate (cosine >= 0.8)", "mean squared difference")):
        axis.set_xlabel({"n": "stored patterns N", "sigma": "noise sigma", "steps": "update steps"}[x_key])
        axis.set_ylabel(label)
        if x_key == "n":
            axis.set_xscale("log")
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out_png, dpi=120)


def tracking(tracking_jsonl, out_png, title):
    """Training loss, average kurtosis and maximum infinity norm over training steps, one line per variant (mean over
    seeds, band of +-1 std): the layout of the paper's Figure 2."""
    series = defaultdict(lambda: defaultdict(lambda: ([], [], [])))
    for line in open(tracking_jsonl):
        r = json.loads(line)
        point = series[r["variant"]][r["step"]]
        for i, key in enumerate(("loss", "avg_kurtosis", "max_inf_norm")):
            point[i].append(r[key])
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for variant, points in series.items():
        steps = sorted(points)
        for k, axis in enumerate(axes):
            means = [statistics.fmean(points[s][k]) for s in steps]
            stds = [statistics.pstdev(points[s][k]) for s in steps]
            axis.plot(steps, means, marker="o", markersize=2, label=variant)
            axis.fill_between(steps, [m - d for m, d in zip(means, stds)], [m + d for m, d in zip(means, stds)],
                              alpha=0.15)
    for axis, label in zip(axes, ("training loss (nats/token)", "average kurtosis", "maximum infinity norm")):
        axis.set_xlabel("training step")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out_png, dpi=120)


if __name__ == "__main__":
    if len(sys.argv) != 5 or sys.argv[1] not in ("memory", "tracking"):
        sys.exit(__doc__)
    {"memory": memory, "tracking": tracking}[sys.argv[1]](sys.argv[2], sys.argv[3], sys.argv[4])
