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
methods; this is what tells whether a mean margin is more than noise. With ``--json`` the last
line is one JSON object ``{"setting": ..., "runs": [...], "seeds": {...}, "pooled": {...},
"unfinished": [...]}``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path

from bench.semi_supervised import MARGINS, VARIANTS, reported_network
from pipeline.cli import setup_logging
from pipeline.config import ConfigError, load_config

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


def read_ap(run: Path, method: str) -> float:
    """Validation AP of the network the benchmark reports for ``method``, from ``eval.json``."""
    path = run / "eval.json"
    key = f"eval/{reported_network(method)}/AP"
    try:
        values = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(values, dict) or key not in values:
        raise ValueError(f"{path}: no field {key!r} (the {method} run's reported network)")
    ap = values[key]
    if not isinstance(ap, (int, float)) or not math.isfinite(ap):
        raise ValueError(f"{path}: field {key!r} is {ap!r}, not a finite number")
    return float(ap)


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


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("dirs", nargs="+", type=Path, help="--out-dir(s) of bench.semi_supervised")
    parser.add_argument("--json", action="store_true", help="end with one JSON line")
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
    out = {
        "setting": setting,
        "runs": [
            {"seed": r.seed, "repeat": r.repeat, "method": r.method, "AP": r.ap, "path": str(r.path)}
            for r in runs
        ],
        **summary,
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
