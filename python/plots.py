"""PNG figures from the CSV files the outeffhop CLI writes. Usage: plots.py memory RESULTS.csv OUT.png TITLE"""
import csv
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


if __name__ == "__main__":
    if len(sys.argv) != 5 or sys.argv[1] != "memory":
        sys.exit(__doc__)
    memory(sys.argv[2], sys.argv[3], sys.argv[4])
