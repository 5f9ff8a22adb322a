"""The synthetic benchmark's report as text: one row per method, the pseudo labels, the margins.

``benchmark_report`` lays out the table of ``python -m bench.semi_supervised`` (AP, AP50, AP75,
A+B ensemble, AP at the first LR drop, wall time, time per step, peak RSS; each method's
left/right inversions on the validation set; the pseudo labels' OKS AP and PCM's statistics;
each margin with its 95 % interval).
"""

from __future__ import annotations

from collections.abc import Collection

from pipeline.evaluation.label_accuracy import format_accuracy_table


def benchmark_report(
    table: dict,
    *,
    seed: int,
    repeat: int,
    train_seed: int,
    labeled: int,
    epochs: int,
    burn_in_steps: int,
    variants: Collection[str],
) -> str:
    """The human-readable report of one benchmark run (``table`` as ``bench.semi_supervised``
    builds it; ``variants``: the rows that are methods)."""
    run = table["run"]
    lines: list[str] = []
    lines.append(
        f"\nSynthetic benchmark, seed {seed}"
        + (f" (repeat {repeat}, training seed {train_seed})" if repeat else "")
        + f": {labeled} labeled persons, pool {run['pool_persons']} persons, {epochs} epochs "
        f"of {run['steps_per_epoch']} steps (one pass over the pool) = {run['steps']} steps per method"
    )
    lines.append(
        f"{'method':<12}{'network':<11}{'AP':>7}{'AP50':>7}{'AP75':>7}{'A+B AP':>8}{'AP@drop':>9}"
        f"{'wall s':>8}{'s/step':>8}{'peak MB':>9}"
    )
    if "burn_in" in table:
        b = table["burn_in"]
        aps = ", ".join(f"{k[3:]} {v:.3f}" for k, v in b.items() if k.startswith("AP_"))
        lines.append(
            f"start: burn-in networks of {burn_in_steps} supervised steps, AP {aps} "
            f"(every reported network starts from a), {b['wall_s']:.0f} s (0 when cached)"
        )
    for method, row in table.items():
        if method not in variants:
            continue
        ens, drop = (row.get(k) for k in ("ensemble_AP", "AP_at_lr_drop"))
        ens, drop = (f"{x:.3f}" if x is not None else "-" for x in (ens, drop))
        lines.append(
            f"{method:<12}{row['network']:<11}{row['AP']:>7.3f}{row['AP50']:>7.3f}{row['AP75']:>7.3f}"
            f"{ens:>8}{drop:>9}"
            f"{row['wall_s']:>8.0f}{row['step_s']:>8.2f}{row['peak_rss_mb']:>9.0f}"
        )
    inversions = [(m, row["left_right"]) for m, row in table.items() if m in variants and "left_right" in row]
    if inversions:
        lines.append(
            "left/right on the validation set (joints right: OKS similarity >= 0.5; swapped: wrong, "
            "but right as the mirror joint), and the AP with every swap undone:"
        )
        for method, lr in inversions:
            lines.append(
                f"  {method:<12}right {_num(lr['correct'])}  swapped {_num(lr['swapped'])}  "
                f"AP {lr['AP']:.3f} -> {lr['AP_swaps_undone']:.3f} with swaps undone"
            )
    if "pseudo_labels" in table:
        q = table["pseudo_labels"]
        lines.append(
            f"pseudo labels on the pool (OKS AP vs truth): A_t {q['A_t']:.3f}  B_t {q['B_t']:.3f}  "
            f"mean(A_t,B_t) {q['mean_AB']:.3f}  PCM {q['PCM']:.3f}"
        )
        lines.append("PCM statistics: " + ", ".join(f"{k} {v:.3f}" for k, v in q["pcm_stats"].items()))
        lines.append(
            "pseudo labels vs truth, joint by joint (ks: OKS similarity; ok: ks >= 0.5; "
            "swap: wrong, but right as the mirror joint), by PCM's position inconsistency:"
        )
        sources = ("A_t", "B_t", "mean_AB", "PCM")
        lines.append(format_accuracy_table(q["by_pi"], sources))
        if q.get("by_pair"):
            current, previous = q["by_pair"]
            lines.append(
                f"where PCM kept the current pair ({current['joints']} joints) its label is "
                f"mean(A_t,B_t); where it picked a previous-epoch teacher ({previous['joints']} joints, "
                f"{100 * previous['fraction']:.1f} %): PCM ks {_num(previous['PCM_similarity'])}, ok "
                f"{_num(previous['PCM_correct'])} against mean(A_t,B_t) ks "
                f"{_num(previous['mean_AB_similarity'])}, ok {_num(previous['mean_AB_correct'])}"
            )
    for pair, m in table.get("margins", {}).items():
        rel = f" ({100 * m['relative']:+.1f} %)" if m.get("relative") is not None else ""
        lines.append(
            f"margin {pair}: {m['diff']:+.4f} AP{rel}, 95 % interval [{m['ci95'][0]:+.4f}, "
            f"{m['ci95'][1]:+.4f}], above in {100 * m['p_a_above_b']:.0f} % of {m['draws']} resamples "
            "of the val images"
        )
    return "\n".join(lines)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
