"""Means over repeats: the synthetic benchmark's AP and margins per seed and over all runs.

    python -m bench.repeat_summary DIR [DIR ...] [--json]

Each DIR is an ``--out-dir`` of ``bench.semi_supervised``: it holds ``seed<N>/<method>/`` (repeat
0) and ``seed<N>_r<R>/<method>/`` (``--repeat R``) run directories. The runs of one (seed, repeat)
may be spread over several DIRs (say supervised and Dual in one, SSPCM in another); one method
run twice for the same seed and repeat is an error, so is a mix of settings (steps per method,
labeled persons, data set). A run without ``eval.json`` has not finished: it is listed and left
out.

Prints, per seed, every repeat's AP of each method (the network the benchmark reports: Dual's A,
every other method's student), the margins SSPCM - Dual, Dual - supervised and SSPCM -
supervised, and their mean, standard deviation and standard error over the repeats (a method's
over its own finished repeats, a margin's over the repeats where both methods finished); then
the same margins pooled over every (seed, repeat) that has both methods. Margins as small as the
benchmark's move between repeats by about their own size, so a single run cannot order two
methods; this is what tells whether a mean margin is more than noise.

Then, per method, the left/right inversions of its runs on the validation set (mean over runs of
``inversion_summary``: joints right, joints swapped with their mirror joint, AP with every swap
undone), and it checks the benchmark's goals, each with the figures behind it (``GOALS``): 3 seeds x 3
repeats; supervised AP between 0.20 and 0.50 on every seed; the oracle at least 1.5x supervised;
supervised plateaued (its end not above its AP at the first LR drop, epoch int(0.7 E), beyond
the noise); Dual - supervised at least +25 % of supervised, with every seed's 95 % interval above
0; SSPCM - Dual above 0 by at least 2 standard errors pooled over the seeds (the standard error of
the seeds' means over their repeats: a seed's runs share its data and burn-ins); and PCM's label more
accurate on the pool than A_t, than B_t and than mean(A_t, B_t) on every seed. A seed's interval
is a paired bootstrap over its validation images of the mean margin over its repeats
(``paired_bootstrap_runs``, ``--draws``); the pseudo-label accuracies are those SSPCM's runs
keep in ``pseudo_label_quality.json``. A goal whose runs or files are missing is reported as not
measured, with what is missing. With ``--json`` the last line is one JSON object
``{"setting": ..., "runs": [...], "seeds": {...}, "pooled": {...}, "left_right": {...},
"goals": [...], "unfinished": [...]}``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path

from bench.semi_supervised import MARGINS, PLATEAU_TAG, QUALITY_FILE, VARIANTS, reported_network
from pipeline.cli import setup_logging
from pipeline.config import ConfigError, load_config
from pipeline.data.skeletons import COCO17
from pipeline.evaluation.inversions import inversion_summary
from pipeline.evaluation.paired_bootstrap import paired_bootstrap_runs

log = logging.getLogger("bench.repeat_summary")
RUN_DIR = re.compile(r"^seed(\d+)(?:_r(\d+))?$")


@dataclass(frozen=True)
class RunResult:
    """One method's finished benchmark run: its reported network's validation AP."""

    seed: int
    repeat: int
    method: str
    ap: float
    path: Path  # the run directory (holds config.yaml and eval.json)


def run_setting(run: Path) -> dict:
    """What must match between runs that are averaged: steps per method, labeled persons, data.

    The data set is named by its directory under the benchmark's data dir without the seed
    (``seed0_d0.5`` -> ``d0.5``), so the seeds of one setting agree.
    """
    cfg = load_config(run / "config.yaml")
    labeled_ann = Path(cfg.data.labeled_ann)
    if run.name == "oracle":  # trains on every label (root/all_labels.json): the setting's data only
        return {
            "steps": cfg.optim.epochs * cfg.optim.steps_per_epoch,
            "data": re.sub(r"^seed\d+_?", "", labeled_ann.parent.name),
        }
    return {
        "steps": cfg.optim.epochs * cfg.optim.steps_per_epoch,
        "labeled_persons": cfg.data.num_labeled,
        "data": re.sub(r"^seed\d+_?", "", labeled_ann.parent.parent.name),
    }


def read_numbers(path: Path, keys: tuple[str, ...], hint: str = "") -> dict[str, float]:
    """The finite numbers ``keys`` of the JSON object in ``path``; ``ValueError`` names the file
    and the field (``hint`` says what a missing field is)."""
    try:
        values = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    for key in keys:
        if not isinstance(values, dict) or key not in values:
            raise ValueError(f"{path}: no field {key!r}{hint}")
        v = values[key]
        if not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"{path}: field {key!r} is {v!r}, not a finite number")
    return {k: float(values[k]) for k in keys}


def read_ap(run: Path, method: str) -> float:
    """Validation AP of the network the benchmark reports for ``method``, from ``eval.json``."""
    key = f"eval/{reported_network(method)}/AP"
    return read_numbers(run / "eval.json", (key,), f" (the {method} run's reported network)")[key]


def collect(dirs: list[Path]) -> tuple[list[RunResult], list[Path], dict]:
    """Finished runs, unfinished run directories and the common setting of ``dirs``.

    Raises ``ValueError`` (naming both runs) for a method run twice for one seed and repeat or
    for runs of different settings, ``FileNotFoundError`` for a missing DIR.
    """
    runs: dict[tuple[int, int, str], RunResult] = {}
    unfinished: list[Path] = []
    setting: dict | None = None
    setting_of: Path | None = None
    for root in dirs:
        if not root.is_dir():
            raise FileNotFoundError(f"benchmark output directory not found: {root}")
        for seed_dir in sorted(root.iterdir()):
            m = RUN_DIR.match(seed_dir.name)
            if not m or not seed_dir.is_dir():
                continue
            seed, repeat = int(m.group(1)), int(m.group(2) or 0)
            for method in VARIANTS:
                run = seed_dir / method
                if not (run / "config.yaml").is_file():
                    continue
                if not (run / "eval.json").is_file():
                    unfinished.append(run)
                    continue
                try:
                    this = run_setting(run)
                except ConfigError as e:
                    raise ValueError(f"{run / 'config.yaml'}: {e}") from None
                if setting is None and method != "oracle":
                    setting, setting_of = this, run
                elif setting is not None and any(this[k] != setting[k] for k in this):
                    field = next(k for k in this if setting[k] != this[k])
                    raise ValueError(
                        f"runs of different settings: {run} has {field} {this[field]!r}, "
                        f"{setting_of} has {setting[field]!r}; summarise one setting at a time"
                    )
                key = (seed, repeat, method)
                if key in runs:
                    raise ValueError(
                        f"{method} of seed {seed} repeat {repeat} found twice: {runs[key].path} and {run}"
                    )
                runs[key] = RunResult(seed, repeat, method, read_ap(run, method), run)
    ordered = sorted(runs.values(), key=lambda r: (r.seed, r.repeat, list(VARIANTS).index(r.method)))
    return ordered, unfinished, setting or {}


def spread(values: list[float]) -> dict:
    """Mean, sample standard deviation, standard error of the mean, count and positives."""
    n = len(values)
    mean = sum(values) / n if n else math.nan
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else math.nan
    return {
        "n": n,
        "mean": mean,
        "sd": sd,
        "se": sd / math.sqrt(n) if n > 1 else math.nan,
        "positive": sum(v > 0 for v in values),
    }


def summarise(runs: list[RunResult]) -> dict:
    """Per seed: each repeat's APs, each method's spread, each margin's spread; margins pooled.

    A margin ``first-second`` counts the (seed, repeat) pairs where both methods finished.
    """
    table: dict[int, dict[int, dict[str, float]]] = {}
    for r in runs:
        table.setdefault(r.seed, {}).setdefault(r.repeat, {})[r.method] = r.ap
    seeds: dict[int, dict] = {}
    pooled: dict[str, list[float]] = {f"{a}-{b}": [] for a, b in MARGINS}
    for seed, repeats in sorted(table.items()):
        methods = [m for m in VARIANTS if any(m in aps for aps in repeats.values())]
        margins: dict[str, list[float]] = {}
        for first, second in MARGINS:
            diffs = [aps[first] - aps[second] for aps in repeats.values() if first in aps and second in aps]
            if diffs:
                margins[f"{first}-{second}"] = diffs
                pooled[f"{first}-{second}"] += diffs
        seeds[seed] = {
            "repeats": {r: dict(aps) for r, aps in sorted(repeats.items())},
            "methods": {m: spread([aps[m] for aps in repeats.values() if m in aps]) for m in methods},
            "margins": {k: spread(v) for k, v in margins.items()},
        }
    return {"seeds": seeds, "pooled": {k: spread(v) for k, v in pooled.items() if v}}


def _fmt(x: float, signed: bool = False) -> str:
    if math.isnan(x):
        return "-"
    return f"{x:+.4f}" if signed else f"{x:.4f}"


def _row(seed: object, label: object, cells: list[str], margins: list[str]) -> str:
    head = f"{seed!s:<6}{label!s:<8}"
    return head + "".join(f"{c:>12}" for c in cells) + "".join(f"{d:>20}" for d in margins)


def _mean_se(margin: dict | None) -> str:
    return "-" if margin is None else f"{_fmt(margin['mean'], True)} se {_fmt(margin['se'])}"


def format_summary(summary: dict, setting: dict) -> str:
    """The per-seed table and the pooled margins as text."""
    methods = [m for m in VARIANTS if any(m in s["methods"] for s in summary["seeds"].values())]
    pairs = [(a, b) for a, b in MARGINS if a in methods and b in methods]
    names = [f"{a}-{b}" for a, b in pairs]
    lines = [
        f"Synthetic benchmark over repeats: {setting.get('steps')} steps per method, "
        f"{setting.get('labeled_persons')} labeled persons, data {setting.get('data')!r}; "
        "AP of the reported network (Dual: A; the others: the student)",
        _row("seed", "repeat", methods, names),
    ]
    for seed, s in summary["seeds"].items():
        for repeat, aps in s["repeats"].items():
            cells = [_fmt(aps.get(m, math.nan)) for m in methods]
            diffs = [_fmt(aps[a] - aps[b], signed=True) if a in aps and b in aps else "-" for a, b in pairs]
            lines.append(_row(seed, repeat, cells, diffs))
        of_method, of_margin = s["methods"], s["margins"]
        mean = [_fmt(of_method[m]["mean"]) if m in of_method else "-" for m in methods]
        lines.append(_row(seed, "mean", mean, [_mean_se(of_margin.get(n)) for n in names]))
        sd = [_fmt(of_method[m]["sd"]) if m in of_method else "-" for m in methods]
        sd_margins = [_fmt(of_margin[n]["sd"]) if n in of_margin else "-" for n in names]
        lines.append(_row(seed, "sd", sd, sd_margins))
    for name, p in summary["pooled"].items():
        lines.append(
            f"all runs {name}: {_fmt(p['mean'], True)} AP (sd {_fmt(p['sd'])}, "
            f"standard error {_fmt(p['se'])}), positive in {p['positive']} of {p['n']}"
        )
    return "\n".join(lines)


# The benchmark's goals: a regime with room for the pool to help, and the methods' order in it.
SUPERVISED_BAND = (0.20, 0.50)
ORACLE_RATIO = 1.5
DUAL_RELATIVE = 0.25
SSPCM_DUAL_SE = 2.0
MIN_SEEDS_FOR_SE = 3
SEEDS_X_REPEATS = (3, 3)
COMPARED = ("supervised", "dual", "sspcm")
# OKS APs on the pool that SSPCM's runs keep: the teachers, their mean and PCM's label.
QUALITY_KEYS = ("A_t", "B_t", "mean_AB", "PCM")


def _by_seed(runs: list[RunResult], method: str) -> dict[int, list[RunResult]]:
    out: dict[int, list[RunResult]] = {}
    for r in runs:
        if r.method == method:
            out.setdefault(r.seed, []).append(r)
    return out


def _results_file(run: RunResult, tag: str = "") -> Path:
    return run.path / f"results_{reported_network(run.method)}{tag}.json"


def _val_ann(run: RunResult) -> Path:
    return Path(load_config(run.path / "config.yaml").data.val_ann)


def _seed_interval(
    pairs: list[tuple[RunResult, RunResult]], draws: int, tags: tuple[str, str] = ("", "")
) -> dict:
    """Paired bootstrap of the mean margin over one seed's repeats (first minus second)."""
    files = [(_results_file(a, tags[0]), _results_file(b, tags[1])) for a, b in pairs]
    missing = [str(f) for pair in files for f in pair if not f.is_file()]
    if missing:
        return {"missing": missing}
    seed = pairs[0][0].seed
    m = paired_bootstrap_runs(_val_ann(pairs[0][0]), files, draws=draws, seed=seed)
    return {"diff": m["diff"], "ci95": m["ci95"], "repeats": len(pairs)}


def _goal(name: str, met: bool | None, measured: str, **figures) -> dict:
    return {"goal": name, "met": met, "measured": measured, **figures}


def _paired(runs: list[RunResult], first: str, second: str) -> dict[int, list[tuple[RunResult, RunResult]]]:
    """Per seed, the (first, second) runs of every repeat where both finished."""
    at = {(r.seed, r.repeat, r.method): r for r in runs}
    out: dict[int, list[tuple[RunResult, RunResult]]] = {}
    for (seed, repeat, method), r in sorted(at.items()):
        if method == first and (seed, repeat, second) in at:
            out.setdefault(seed, []).append((r, at[(seed, repeat, second)]))
    return out


def _interval_text(seed: int, m: dict) -> str:
    if "missing" in m:
        return f"seed {seed}: no results file {m['missing'][0]}"
    low, high = m["ci95"]
    return f"seed {seed} {m['diff']:+.4f} [{low:+.4f}, {high:+.4f}]"


def goals(runs: list[RunResult], summary: dict, draws: int = 200) -> list[dict]:
    """Each of the benchmark's goals: ``met`` (True / False / None = not measured), the figures
    behind it as text (``measured``) and as numbers (per seed)."""
    out = []
    sup = _by_seed(runs, "supervised")
    seeds = sorted({r.seed for r in runs})

    # 3 seeds x 3 repeats of every compared method
    counts = {
        s: min(len([r for r in runs if r.seed == s and r.method == m]) for m in COMPARED) for s in seeds
    }
    full = [s for s, n in counts.items() if n >= SEEDS_X_REPEATS[1]]
    out.append(
        _goal(
            f"{SEEDS_X_REPEATS[0]} seeds x {SEEDS_X_REPEATS[1]} repeats of supervised, Dual and SSPCM",
            len(full) >= SEEDS_X_REPEATS[0],
            ", ".join(f"seed {s}: {n} repeat(s) of all three" for s, n in counts.items()),
            repeats_of_all_three=counts,
        )
    )

    # supervised in the band
    low, high = SUPERVISED_BAND
    mean_sup = {s: sum(r.ap for r in rs) / len(rs) for s, rs in sup.items()}
    out.append(
        _goal(
            f"supervised AP between {low:.2f} and {high:.2f} on every seed",
            all(low <= v <= high for v in mean_sup.values()) if mean_sup else None,
            ", ".join(f"seed {s} {v:.4f}" for s, v in mean_sup.items()) or "no supervised run",
            supervised=mean_sup,
        )
    )

    # oracle ratio
    oracle = _by_seed(runs, "oracle")
    ratio = {
        s: (sum(r.ap for r in rs) / len(rs)) / mean_sup[s] for s, rs in oracle.items() if mean_sup.get(s)
    }
    out.append(
        _goal(
            f"oracle at least {ORACLE_RATIO}x supervised on every seed",
            all(v >= ORACLE_RATIO for v in ratio.values()) and set(ratio) == set(mean_sup) if ratio else None,
            ", ".join(f"seed {s} {v:.2f}x" for s, v in ratio.items()) or "no oracle run",
            oracle_over_supervised=ratio,
        )
    )

    # supervised plateaued: end minus the first LR drop, per seed over its repeats
    plateau = {}
    if draws > 0:
        for s, rs in sup.items():
            plateau[s] = _seed_interval([(r, r) for r in rs], draws, tags=("", PLATEAU_TAG))
    measured = [m for m in plateau.values() if "missing" not in m]
    out.append(
        _goal(
            "supervised plateaued on every seed: its end not above its AP at the first LR drop "
            "(epoch int(0.7 E); the interval of end - drop reaches 0)",
            all(m["ci95"][0] <= 0 for m in measured) if measured and len(measured) == len(plateau) else None,
            "; ".join(_interval_text(s, m) for s, m in plateau.items()) or "not measured (--draws 0)",
            end_minus_at_lr_drop=plateau,
        )
    )

    # Dual - supervised: relative margin pooled, and each seed's interval
    pooled = summary["pooled"].get("dual-supervised")
    dual_pairs = _paired(runs, "dual", "supervised")
    sup_of_pairs = [b.ap for pairs in dual_pairs.values() for _, b in pairs]
    relative = pooled["mean"] / (sum(sup_of_pairs) / len(sup_of_pairs)) if pooled and sup_of_pairs else None
    out.append(
        _goal(
            f"Dual - supervised at least +{DUAL_RELATIVE * 100:g} % of supervised (mean over every run)",
            relative >= DUAL_RELATIVE if relative is not None else None,
            f"{pooled['mean']:+.4f} AP, {relative * 100:+.1f} %" if relative is not None else "no Dual run",
            relative=relative,
        )
    )
    intervals = {s: _seed_interval(pairs, draws) for s, pairs in dual_pairs.items()} if draws > 0 else {}
    measured = [m for m in intervals.values() if "missing" not in m]
    out.append(
        _goal(
            "Dual - supervised: every seed's 95 % interval above 0",
            all(m["ci95"][0] > 0 for m in measured) if measured and len(measured) == len(intervals) else None,
            "; ".join(_interval_text(s, m) for s, m in intervals.items()) or "not measured",
            dual_minus_supervised=intervals,
        )
    )

    # SSPCM - Dual pooled, in standard errors. The runs of one seed share its data and burn-in
    # networks, and most of the spread lies between seeds, so the runs are not independent draws:
    # the margin is the mean over seeds of each seed's mean over its repeats, its standard error
    # the spread of those seed means (judged from MIN_SEEDS_FOR_SE seeds: with two, the standard
    # error is itself too noisy to count). The standard error over every run is printed beside it.
    per_run = summary["pooled"].get("sspcm-dual")
    seed_means = [
        s["margins"]["sspcm-dual"]["mean"] for s in summary["seeds"].values() if "sspcm-dual" in s["margins"]
    ]
    p = spread(seed_means)
    in_se = p["mean"] / p["se"] if p["n"] > 1 and p["se"] > 0 else None
    text = "needs SSPCM and Dual on at least two seeds"
    if in_se is not None:
        text = (
            f"{p['mean']:+.4f} AP over {p['n']} seeds' means, standard error {p['se']:.4f} ({in_se:+.1f} SE)"
            f"; over every run {per_run['mean']:+.4f}, standard error {per_run['se']:.4f}"
            f" ({per_run['n']} runs)"
        )
        if p["n"] < MIN_SEEDS_FOR_SE:
            text += f" (not judged under {MIN_SEEDS_FOR_SE} seeds)"
    out.append(
        _goal(
            f"SSPCM - Dual above 0 by at least {SSPCM_DUAL_SE:g} standard errors, pooled over the seeds",
            (in_se >= SSPCM_DUAL_SE) if in_se is not None and p["n"] >= MIN_SEEDS_FOR_SE else None,
            text,
            mean=p["mean"] if p["n"] else None,
            se=p["se"] if p["n"] else None,
            seeds=p["n"],
            runs=per_run["n"] if per_run else 0,
            se_over_runs=per_run["se"] if per_run else None,
        )
    )

    # PCM's label against A_t, B_t and their mean, per seed (mean over its repeats)
    quality: dict[int, dict[str, float]] = {}
    missing = []
    for s, rs in _by_seed(runs, "sspcm").items():
        files = [r.path / QUALITY_FILE for r in rs]
        missing += [str(f) for f in files if not f.is_file()]
        found = [read_numbers(f, QUALITY_KEYS) for f in files if f.is_file()]
        if found:
            quality[s] = {k: sum(q[k] for q in found) / len(found) for k in QUALITY_KEYS}
    beaten = {s: q["PCM"] > max(q["A_t"], q["B_t"], q["mean_AB"]) for s, q in quality.items()}
    text = "; ".join(
        f"seed {s}: PCM {q['PCM']:.4f}, A_t {q['A_t']:.4f}, B_t {q['B_t']:.4f}, mean {q['mean_AB']:.4f}"
        for s, q in quality.items()
    )
    if missing:
        text = (text + "; " if text else "") + f"no pseudo-label quality file {missing[0]}"
    out.append(
        _goal(
            "PCM's label more accurate on the pool than A_t, than B_t and than mean(A_t, B_t) on every seed",
            all(beaten.values()) if quality and not missing else None,
            text or "no SSPCM run",
            pseudo_labels=quality,
        )
    )
    return out


def format_goals(checked: list[dict]) -> str:
    """One line per goal: met / NOT met / not measured, then the figures."""
    word = {True: "met", False: "NOT met", None: "not measured"}
    lines = ["Goals of the benchmark:"]
    for g in checked:
        lines.append(f"  [{word[g['met']]:>12}] {g['goal']}: {g['measured']}")
    return "\n".join(lines)


def inversions(runs: list[RunResult]) -> dict[str, dict]:
    """Per method, the mean over its runs of ``inversion_summary`` on the validation set (joints
    right, joints swapped with their mirror joint, AP with every swap undone), from each run's
    results file; runs without one are left out (``runs`` counts those used)."""
    per_method: dict[str, list[dict]] = {}
    for r in runs:
        results = _results_file(r)
        if results.is_file():
            per_method.setdefault(r.method, []).append(inversion_summary(_val_ann(r), results, COCO17))
    return {
        method: {
            **{
                k: sum(s[k] for s in found) / len(found)
                for k in ("correct", "swapped", "AP", "AP_swaps_undone")
            },
            "runs": len(found),
        }
        for method, found in per_method.items()
    }


def format_inversions(left_right: dict[str, dict]) -> str:
    lines = [
        "Left/right on the validation set, mean over runs (right: OKS similarity >= 0.5; swapped: "
        "wrong, but right as the mirror joint; AP with every swap undone):"
    ]
    for method, m in left_right.items():
        lines.append(
            f"  {method:<12}right {m['correct']:.3f}  swapped {m['swapped']:.3f}  AP {m['AP']:.4f} -> "
            f"{m['AP_swaps_undone']:.4f}  ({m['runs']} runs)"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("dirs", nargs="+", type=Path, help="--out-dir(s) of bench.semi_supervised")
    parser.add_argument("--json", action="store_true", help="end with one JSON line")
    parser.add_argument(
        "--draws", type=int, default=200, help="bootstrap draws of each seed's margin intervals (0: none)"
    )
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    try:
        runs, unfinished, setting = collect(args.dirs)
    except (ValueError, FileNotFoundError) as e:
        parser.exit(2, f"error: {e}\n")
    for run in unfinished:
        log.warning("left out, not finished (no eval.json): %s", run)
    if not runs:
        parser.exit(2, f"error: no finished benchmark runs under {', '.join(map(str, args.dirs))}\n")
    summary = summarise(runs)
    print(format_summary(summary, setting))
    left_right = inversions(runs)
    if left_right:
        print(format_inversions(left_right))
    checked = goals(runs, summary, draws=args.draws)
    print(format_goals(checked))
    out = {
        "setting": setting,
        "runs": [
            {"seed": r.seed, "repeat": r.repeat, "method": r.method, "AP": r.ap, "path": str(r.path)}
            for r in runs
        ],
        **summary,
        "left_right": left_right,
        "goals": checked,
        "unfinished": [str(p) for p in unfinished],
    }
    if args.json:
        print(json.dumps(_without_nan(out), allow_nan=False))
    return out


def _without_nan(value):
    """``value`` with every NaN (a spread of one run) as None, so the JSON is standard."""
    if isinstance(value, dict):
        return {k: _without_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nan(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


if __name__ == "__main__":
    main()
