"""PNG figures from the files the outeffhop CLI writes. Usage:
    plots.py memory RESULTS.csv OUT.png TITLE
    plots.py tracking TRACKING.jsonl OUT.png TITLE     (outeffhop experiment writes RUNS_DIR/NAME/TASK/tracking.jsonl)
    plots.py layers RUNS.json OUT.png TITLE            (outeffhop experiment writes RUNS_DIR/NAME/TASK/runs.json)
    plots.py components RUNS.json OUT.png TITLE
    plots.py forecast RUNS.json OUT.png TITLE          (forecasting tasks: the first test window per variant)
    plots.py validation VALIDATION.jsonl OUT.png TITLE (early stopping: every validation check of every run)
    plots.py outliers OUTLIERS.json OUT.png TITLE      (outeffhop experiment writes RUNS_DIR/NAME/outliers.json)"""
import csv
import json
import statistics
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def band_line(axis, xs, samples, **line_args):
    """The mean of each x's samples as a line with a band of +-1 (population) std; returns the line."""
    means = [statistics.fmean(v) for v in samples]
    stds = [statistics.pstdev(v) for v in samples]
    line, = axis.plot(xs, means, **line_args)
    axis.fill_between(xs, [m - d for m, d in zip(means, stds)], [m + d for m, d in zip(means, stds)],
                      color=line.get_color(), alpha=0.15)
    return line


def save(fig, title, out_png):
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out_png, dpi=120)


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
            band_line(axis, xs, [points[x][k] for x in xs], marker="o", markersize=3, label=model)
    for axis, label in zip(axes, ("success rate (cosine >= 0.8)", "mean squared difference")):
        axis.set_xlabel({"n": "stored patterns N", "sigma": "noise sigma", "steps": "update steps"}[x_key])
        axis.set_ylabel(label)
        if x_key == "n":
            axis.set_xscale("log")
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    save(fig, title, out_png)


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
            band_line(axis, steps, [points[s][k] for s in steps], marker="o", markersize=2, label=variant)
    for axis, label in zip(axes, ("training loss", "average kurtosis", "maximum infinity norm")):
        axis.set_xlabel("training step")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    save(fig, title, out_png)


def grouped_bars(axis, groups, series):
    """Bars per group (x axis), one colour per series: {series: {group: [values over seeds]}}, mean with std."""
    width = 0.8 / max(1, len(series))
    for i, (name, values) in enumerate(series.items()):
        xs = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
        means = [statistics.fmean(values.get(g, [0])) for g in groups]
        stds = [statistics.pstdev(values.get(g, [0])) for g in groups]
        axis.bar(xs, means, width, yerr=stds, label=name, capsize=2)
    axis.set_xticks(range(len(groups)))


def layers(runs_json, out_png, title):
    """Maximum infinity norm and average kurtosis per layer of the evaluated models, one bar per variant (mean over
    seeds): the layout of the paper's Figure 3. Layer -1 holds the modules outside the layers (embeddings, final
    LayerNorm)."""
    runs = json.load(open(runs_json))
    groups = sorted({l["layer"] for r in runs for l in r["outliers"]["layers"]})
    fig, axes = plt.subplots(1, 2, figsize=(13, 4))
    for axis, key, label in ((axes[0], "max_inf_norm", "maximum infinity norm"),
                             (axes[1], "avg_kurtosis", "average kurtosis")):
        series = defaultdict(lambda: defaultdict(list))
        for r in runs:
            for l in r["outliers"]["layers"]:
                series[r["variant"]][groups.index(l["layer"])].append(l[key])
        grouped_bars(axis, list(range(len(groups))), series)
        axis.set_xticklabels(["outside" if g < 0 else str(g) for g in groups])
        axis.set_xlabel("layer")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3, axis="y")
    axes[0].legend(fontsize=8)
    save(fig, title, out_png)


def components(runs_json, out_png, title):
    """Infinity norm and kurtosis of each hooked module of the last layer, one bar per variant (mean over seeds): the
    layout of the paper's Figure 4."""
    runs = json.load(open(runs_json))
    last = max(l["layer"] for r in runs for l in r["outliers"]["layers"])
    marker = None
    for r in runs:
        for m in r["outliers"]["modules"]:
            for word in ("layers", "layer", "blocks", "encode_blocks"):
                if f".{word}.{last}." in m["module"] or m["module"].endswith(f".{word}.{last}"):
                    marker = f".{word}.{last}"
    names = []
    for r in runs:
        for m in r["outliers"]["modules"]:
            if marker and marker in m["module"]:
                short = m["module"].split(marker, 1)[1].lstrip(".") or "(layer output)"
                if short not in names:
                    names.append(short)
    fig, axes = plt.subplots(2, 1, figsize=(max(8, 0.9 * len(names)), 8))
    for axis, key, label in ((axes[0], "inf_norm", "infinity norm"), (axes[1], "kurtosis", "kurtosis")):
        series = defaultdict(lambda: defaultdict(list))
        for r in runs:
            for m in r["outliers"]["modules"]:
                if marker and marker in m["module"]:
                    short = m["module"].split(marker, 1)[1].lstrip(".") or "(layer output)"
                    series[r["variant"]][names.index(short)].append(m[key])
        grouped_bars(axis, list(range(len(names))), series)
        axis.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
        axis.set_ylabel(label)
        axis.grid(alpha=0.3, axis="y")
    axes[0].legend(fontsize=8)
    axes[0].set_title(f"modules of layer {last}")
    save(fig, title, out_png)


def forecast(runs_json, out_png, title):
    """The last series (OT for ETT, WetBulbCelsius for WTH) of the first test window: the end of the input, the
    target and each variant's prediction (its first seed), on the z-scored scale."""
    runs = [r for r in json.load(open(runs_json)) if "forecast_sample" in r]
    fig, axis = plt.subplots(figsize=(10, 4))
    if runs:
        sample = runs[0]["forecast_sample"]
        history = [row[-1] for row in sample["input"]][-48:]
        target = [row[-1] for row in sample["target"]]
        start = len(history)
        axis.plot(range(start), history, color="black", label=f"input (last {start} steps)")
        axis.plot(range(start, start + len(target)), target, color="black", linestyle="--", label="target")
        seen = set()
        for r in sorted(runs, key=lambda r: r["seed"]):
            if r["variant"] in seen:
                continue
            seen.add(r["variant"])
            prediction = [row[-1] for row in r["forecast_sample"]["prediction"]]
            axis.plot(range(start, start + len(prediction)), prediction, label=f'{r["variant"]} (seed {r["seed"]})')
    axis.set_xlabel("time step")
    axis.set_ylabel("last series, z-scored")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    save(fig, title, out_png)


def validation(validation_jsonl, out_png, title):
    """The validation loss at every check, one line per variant (mean over the seeds checked at that step, band of
    +-1 std), each run's best check marked: whether the variants' order settles or changes as training goes on.
    Runs stop early at different steps, so the late points can rest on fewer seeds (the legend gives their number)."""
    series = defaultdict(lambda: defaultdict(list))
    best = {}  # (variant, seed) -> (step, loss) of the run's best check
    for line in open(validation_jsonl):
        r = json.loads(line)
        series[r["variant"]][r["step"]].append(r["validation_loss"])
        if r["best"]:
            best[(r["variant"], r["seed"])] = (r["step"], r["validation_loss"])
    fig, axis = plt.subplots(figsize=(8, 4.5))
    for variant, points in series.items():
        steps = sorted(points)
        seeds = len({seed for (v, seed) in best if v == variant})
        label = f"{variant} ({seeds} seed{'' if seeds == 1 else 's'})"
        line = band_line(axis, steps, [points[s] for s in steps], marker="o", markersize=2, label=label)
        marks = [b for (v, _), b in best.items() if v == variant]
        axis.scatter([m[0] for m in marks], [m[1] for m in marks], color=line.get_color(), marker="*", s=60,
                     zorder=3)
    axis.scatter([], [], color="black", marker="*", s=60, label="each run's best check (the model evaluated)")
    axis.set_xlabel("training step")
    axis.set_ylabel("validation loss")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    save(fig, title, out_png)


def outliers(outliers_json, out_png, title):
    """Each variant minus its task's baseline in max inf-norm, avg kurtosis and (where the task has them) the KL of its
    quantization (the task's "scheme", W8A8 by default) on its evaluation set and on each further one (the held-out
    books), one marker per seed and the mean with +-1 std: the at-a-glance comparison of the paired tables, a row per
    task. Below the dashed zero line: fewer outliers, or a cheaper quantization, than the baseline in that seed."""
    tasks = json.load(open(outliers_json))
    seeds = sorted({s for task in tasks for v in task["variants"] for s in v["seeds"]})
    extra_sets = sorted({name for task in tasks for v in task["variants"] for name in v.get("extra_w8a8_kl_mnats", {})})
    measures = [(key, label) for key, label in (("max_inf_norm", "max inf-norm"), ("avg_kurtosis", "avg kurtosis"),
                                                ("w8a8_kl_mnats", "{scheme} KL (mnats)"))
                if any(key in task["variants"][0] for task in tasks)]
    measures += [(("extra_w8a8_kl_mnats", name), f"{{scheme}} {name} KL (mnats)") for name in extra_sets]

    def differences(variant, key):  # a measure's differences in a variant's entry, None where it has none
        if isinstance(key, tuple):
            return variant.get(key[0], {}).get(key[1])
        return variant.get(key)

    markers = "osD^vP*X"
    fig, axes = plt.subplots(len(tasks), len(measures), figsize=(6.5 * len(measures), 3.2 * len(tasks)),
                             squeeze=False)
    for row, task in zip(axes, tasks):
        for axis, (key, label) in zip(row, measures):
            if differences(task["variants"][0], key) is None:
                axis.set_axis_off()
                continue
            for x, v in enumerate(task["variants"]):
                diff = differences(v, key)
                for seed, d in zip(v["seeds"], diff):
                    k = seeds.index(seed)
                    axis.scatter(x + 0.08 * (k - (len(seeds) - 1) / 2), d, color=f"C{k % 10}",
                                 marker=markers[k % len(markers)], s=28, zorder=3,
                                 label=f"seed {seed}" if x == 0 else None)
                axis.errorbar(x + 0.3, statistics.fmean(diff), yerr=statistics.pstdev(diff), color="black",
                              marker="_", markersize=12, capsize=3, label="mean ± std" if x == 0 else None)
            axis.axhline(0, color="gray", linestyle="--", linewidth=1)
            axis.set_xticks(range(len(task["variants"])))
            axis.set_xticklabels([v["variant"].replace("(", "\n(") for v in task["variants"]], fontsize=8)
            axis.set_xlim(-0.5, len(task["variants"]) - 0.3)
            axis.set_ylabel("Δ " + label.format(scheme=task.get("scheme", "W8A8")))
            axis.set_title(f"{task['task']}: variant − {task['baseline']}", fontsize=10)
            axis.grid(alpha=0.3, axis="y")
    axes[0][0].legend(fontsize=8)
    save(fig, title, out_png)


KINDS = {"memory": memory, "tracking": tracking, "layers": layers, "components": components, "forecast": forecast,
         "validation": validation, "outliers": outliers}

if __name__ == "__main__":
    if len(sys.argv) != 5 or sys.argv[1] not in KINDS:
        sys.exit(__doc__)
    KINDS[sys.argv[1]](sys.argv[2], sys.argv[3], sys.argv[4])
