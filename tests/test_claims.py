"""The claims registry: every claim has its source, rule and notebook, and each check turns CIs into
the verdict its rule says (synthetic result tables; no model)."""

from __future__ import annotations

import pandas as pd

from e2h_utils.analysis import claims, estimates
from e2h_utils.analysis.claims import CONSISTENT, INCONCLUSIVE, INCONSISTENT
from e2h_utils.experiments import settings


def rows(quantity, items, **common):
    """Result-table rows: items are (keys dict, point, lo, hi[, stable])."""
    out = []
    for keys, point, lo, hi, *stable in items:
        row = {"model": "embedded", "dataset": "arc", "measure": "grade", "method": "icl", **common, **keys,
               "quantity": quantity, "point": point, "lo": lo, "hi": hi}
        if stable:
            row["sgr_stable"] = stable[0]
        out.append(row)
    return pd.DataFrame(out)


def verdict(claim_id, **tables):
    claim = next(c for c in claims.CLAIMS if c.id == claim_id)
    return claim.check(tables).verdict


def test_registry_is_complete_and_every_notebook_checks_a_claim():
    ids = [c.id for c in claims.CLAIMS]
    assert len(ids) == len(set(ids)) >= 9
    for claim in claims.CLAIMS:
        assert claim.paper and claim.source.startswith(("Hase et al.", "Sun et al.")) and claim.rule
        assert set(claim.notebooks) <= set(settings.NOTEBOOKS)
    assert {n for c in claims.CLAIMS for n in c.notebooks} == set(settings.NOTEBOOKS)


def test_sgr_mostly_high():
    high = rows("sgr", [({"measure": "grade"}, 0.9, 0.6, 1.2, True), ({"measure": "bloom"}, 0.8, 0.55, 1.0, True)])
    assert verdict("E1", results=high) == CONSISTENT
    low = rows("sgr", [({"measure": "grade"}, 0.2, 0.0, 0.4, True), ({"measure": "bloom"}, 0.3, 0.1, 0.5, True)])
    assert verdict("E1", results=low) == INCONSISTENT
    wide = rows("sgr", [({}, 0.9, 0.29, 2.3, True)])
    assert verdict("E1", results=wide) == INCONCLUSIVE
    unreadable = rows("sgr", [({}, 0.9, -3, 5, False)])  # gap n.s.: the ratio is not read
    out = next(c for c in claims.CLAIMS if c.id == "E1").check({"results": unreadable})
    assert out.verdict == INCONCLUSIVE and "no SGR is readable" in out.this_run and out.why == "CI too wide"
    assert verdict("E1", results=pd.DataFrame()) == INCONCLUSIVE  # not run


def test_icl_no_difference_on_arc_and_mmlu():
    tight = rows("hard_minus_easy", [({}, 0.01, -0.05, 0.06), ({"dataset": "mmlu_stem5"}, 0.0, -0.08, 0.08)])
    assert verdict("E2", results=tight) == CONSISTENT
    excludes = rows("hard_minus_easy", [({}, 0.12, 0.03, 0.2)])
    assert verdict("E2", results=excludes) == INCONSISTENT
    wide = rows("hard_minus_easy", [({}, 0.0, -0.15, 0.14)])
    assert verdict("E2", results=wide) == INCONCLUSIVE
    other = rows("hard_minus_easy", [({"method": "probe"}, 0.2, 0.1, 0.3)])  # not ICL: not this claim's
    assert verdict("E2", results=other) == INCONCLUSIVE


def test_noise_cost_few_scale_grid_college_and_correlations():
    noise = rows("hard_minus_easy", [({"p": 0.0, "noise_hard_rate": 0.0}, 0.2, 0.1, 0.3),
                                     ({"p": 0.3, "noise_hard_rate": 0.6}, -0.05, -0.12, 0.02)])
    assert verdict("N1", results=noise) == CONSISTENT  # the largest p decides
    curve = pd.concat([rows("accuracy", [({"train_level": "easy", "cost": 40.0}, 0.6, 0.55, 0.65)]),
                       rows("accuracy", [({"train_level": "hard", "cost": 40.0}, 0.5, 0.45, 0.55)])])
    assert verdict("S2", curves=curve) == CONSISTENT
    few = rows("sgr", [({"n": 10}, 0.8, 0.6, 1.0, True)])
    assert verdict("S1", few=few) == CONSISTENT
    assert verdict("S1", few=rows("sgr", [({"n": 10}, 0.1, -0.2, 0.4, True)])) == INCONSISTENT
    # gap n.s.: the SGR (here outside its own percentile CI, as a noise ratio can be) is not printed; the gap is
    noisy = pd.concat([rows("sgr", [({"n": 10}, -4.0, -3.77, 4.21, False)]),
                       rows("gap", [({"n": 10}, 0.01, -0.1, 0.12)])])
    out = next(c for c in claims.CLAIMS if c.id == "S1").check({"few": noisy})
    assert out.verdict == INCONCLUSIVE and "-400.0" not in out.this_run
    assert "oracle gap (hard − unsup.) 1.0 [-10.0, 12.0] points, not above zero: SGR not readable" in out.this_run
    one_model = rows("sgr", [({}, 0.9, 0.6, 1.2, True)])
    out = next(c for c in claims.CLAIMS if c.id == "M1").check({"results": one_model})
    assert out.verdict == INCONCLUSIVE and out.why == "not run in this profile"
    scale = pd.concat([rows("sgr", [({"model": "7b"}, 0.9, 0.7, 1.1, True)]),
                       rows("sgr", [({"model": "70b"}, 0.2, 0.05, 0.4, True)])])
    assert verdict("M1", results=scale) == INCONSISTENT
    grid = rows("accuracy", [({"train_level": t, "test_level": "hard"}, p, p - 0.03, p + 0.03)
                             for t, p in (("easy", 0.50), ("medium", 0.58), ("hard", 0.60))])
    assert verdict("T1", level_grid=grid) == CONSISTENT
    college = rows("hard_minus_easy", [({"dataset": "mmlu_stem5"}, 0.02, -0.04, 0.08)])
    assert verdict("T2", college=college) == CONSISTENT
    assert verdict("T2", college=rows("hard_minus_easy", [({}, 0.3, 0.2, 0.4)])) == INCONSISTENT
    weak = pd.DataFrame({"dataset": ["arc"], "median_abs_rho": [0.1], "pairs": [10]})
    assert verdict("H1", correlations=weak) == CONSISTENT


def test_table_has_the_three_columns_the_notebooks_show():
    table = claims.table("easy_to_hard", {"results": rows("sgr", [({}, 0.9, 0.6, 1.2, True)])})
    assert list(table["claim"]) == ["E1", "E2"]
    assert {"the paper says", "this run", "verdict"} <= set(table.columns)
    assert table.loc[1, "verdict"] == "inconclusive (not run in this profile)"  # no hard − easy rows given


def test_evaluator_claims_read_the_largest_n_and_leave_out_what_cannot_be_reranked():
    common = {"method": "probe", "measure": "level"}

    def results(gain, weighted_minus_best, ceiling=0.6):
        frames = []
        for dataset in ("math", "gsm8k"):
            frames.append(rows("easy_gain", [({"n_samples": 1}, -0.5, -0.6, -0.4),
                                             ({"n_samples": 8}, *gain)],
                               dataset=dataset, rule="weighted", train_level="comparison", **common))
            frames.append(rows("weighted_minus_best", [({"n_samples": 8}, *weighted_minus_best)],
                               dataset=dataset, rule="weighted_vs_best_of_n", train_level="easy", **common))
            frames.append(rows("accuracy", [({"n_samples": 8}, ceiling if dataset == "gsm8k" else 0.0, 0.0, 0.1)],
                               dataset=dataset, rule="pass_at_n", train_level="none", **{**common, "method": "none"}))
        return pd.concat(frames, ignore_index=True)

    assert verdict("V1", results=results((0.1, 0.05, 0.15), (0.0, -0.1, 0.1))) == CONSISTENT  # n = 1 is not read
    assert verdict("V1", results=results((-0.1, -0.15, -0.05), (0.0, -0.1, 0.1))) == INCONSISTENT
    assert verdict("V2", results=results((0.1, 0.05, 0.15), (0.05, 0.01, 0.1))) == CONSISTENT
    assert verdict("V2", results=results((0.1, 0.05, 0.15), (0.0, -0.1, 0.1))) == INCONCLUSIVE
    check = next(c for c in claims.CLAIMS if c.id == "V1").check
    found = check({"results": results((0.1, 0.05, 0.15), (0.0, -0.1, 0.1))})
    assert "nothing to re-rank): math" in found.this_run and "gsm8k probe" in found.this_run
    nothing = check({"results": results((0.1, 0.05, 0.15), (0.0, -0.1, 0.1), ceiling=0.0)})
    assert nothing.verdict == INCONCLUSIVE and nothing.why == "nothing to re-rank"
    assert verdict("V1") == INCONCLUSIVE  # not run


def test_demonstration_rows_are_shown_but_never_given_a_verdict():
    """A claim whose only inputs are demonstrations gets no verdict; other claims leave them out and
    say so (a demonstration that looks decisive must not decide anything)."""
    decisive = rows("hard_minus_easy", [({"method": "icl"}, 0.3, 0.2, 0.4)])  # would make E2 inconsistent
    marked = estimates.mark_demonstrations(decisive, methods=["icl"])
    assert marked["demonstration"].tolist() == [True]
    table = claims.table("easy_to_hard", {"results": marked})
    e2 = table.set_index("claim").loc["E2"]
    assert e2["verdict"] == "no verdict (demonstration, not a measurement)"
    assert "demonstration, not a measurement only: arc/grade/icl" in e2["this run"]
    # with a measurement beside it, the demonstration is left out and named
    both = pd.concat([estimates.mark_demonstrations(rows("hard_minus_easy",
                                                         [({"dataset": "mmlu_stem5"}, 0.0, -0.04, 0.04)]),
                                                    methods=["qlora"]), marked], ignore_index=True)
    e2 = claims.table("easy_to_hard", {"results": both}).set_index("claim").loc["E2"]
    assert (e2["verdict"] == CONSISTENT
            and "not read (demonstration, not a measurement): arc/grade/icl" in e2["this run"])
    # evaluators: a demonstration dataset is not read either
    gains = rows("easy_gain", [({"n_samples": 8}, 0.2, 0.1, 0.3)], dataset="gsm8k", rule="weighted",
                 train_level="comparison", method="probe")
    out = claims.table("easy_to_hard_evaluators", {"results": estimates.mark_demonstrations(gains, datasets=["gsm8k"])})
    assert set(out["verdict"]) == {"no verdict (demonstration, not a measurement)"}


def test_an_inconclusive_verdict_says_how_many_items_would_decide_it():
    # E2: hard − easy 2 [-10, 14] on 300 items: within ±10 needs a half-width of 8 (now 12): 300 x (12/8)^2 = 675
    wide = rows("hard_minus_easy", [({"n_items": 300}, 0.02, -0.10, 0.14)])
    out = next(c for c in claims.CLAIMS if c.id == "E2").check({"results": wide})
    assert out.verdict == INCONCLUSIVE and "would need ≈ 680 hard test items (this run: 300)" in out.this_run
    # a gap whose point is at zero: no number of items makes it clearly positive
    flat = pd.concat([rows("sgr", [({"n_items": 500}, 0.5, -3.0, 3.0, False)]),
                      rows("gap", [({"n_items": 500}, 0.0, -0.04, 0.04)])])
    out = next(c for c in claims.CLAIMS if c.id == "E1").check({"results": flat})
    assert out.verdict == INCONCLUSIVE and "no number of items decides it at this point estimate" in out.this_run
    # a small positive gap: the items at which its CI would clear zero
    small = pd.concat([rows("sgr", [({"n_items": 100}, 0.5, -3.0, 3.0, False)]),
                       rows("gap", [({"n_items": 100}, 0.02, -0.02, 0.06)])])
    out = next(c for c in claims.CLAIMS if c.id == "E1").check({"results": small})
    assert "would need ≈ 400 hard test items (this run: 100)" in out.this_run
    # a decided row says nothing of the kind
    tight = rows("hard_minus_easy", [({"n_items": 300}, 0.0, -0.04, 0.04)])
    assert "would need" not in next(c for c in claims.CLAIMS if c.id == "E2").check({"results": tight}).this_run


def test_would_need_says_whether_the_level_holds_the_items():
    # the same row twice: 680 items needed; a level of 427 cannot give them, one of 2,032 can
    def e2(offered):
        wide = rows("hard_minus_easy", [({"n_items": 300, "n_offered": offered}, 0.02, -0.10, 0.14)])
        return next(c for c in claims.CLAIMS if c.id == "E2").check({"results": wide}).this_run

    assert "would need ≈ 680 hard test items, more than the 427 the level offers (this run: 300)" in e2(427)
    assert "would need ≈ 680 hard test items (this run: 300 of the 2,032 the level offers)" in e2(2032)


def test_train_test_gap_and_cost_claims_read_paired_comparisons_when_given():
    # the same accuracies whose unpaired difference would be inconclusive: paired, the CI is narrow
    pairs = rows("hard_minus_easy", [({"lower": "easy", "n_items": 300}, 0.06, 0.02, 0.10),
                                     ({"lower": "medium", "n_items": 300}, 0.01, -0.03, 0.05)])
    out = next(c for c in claims.CLAIMS if c.id == "T1").check({"grid_pairs": pairs})
    assert out.verdict == CONSISTENT and "hard − medium 1.0 [-3.0, 5.0]" in out.this_run
    medium_falls = rows("hard_minus_easy", [({"lower": "easy"}, 0.06, 0.02, 0.10),
                                            ({"lower": "medium"}, 0.05, 0.01, 0.09)])
    assert verdict("T1", grid_pairs=medium_falls) == INCONSISTENT
    cost = rows("hard_minus_easy", [({"cost": 320.0, "n_easy": 320, "n_hard": 160}, -0.02, -0.06, 0.02)])
    out = next(c for c in claims.CLAIMS if c.id == "S2").check({"cost_pairs": cost})
    assert out.verdict == CONSISTENT and "at cost 320 (easy n = 320, hard n = 160)" in out.this_run
    assert verdict("S2", cost_pairs=rows("hard_minus_easy", [({"cost": 320.0, "n_easy": 320, "n_hard": 160},
                                                               0.08, 0.03, 0.13)])) == INCONSISTENT


def test_the_walkthrough_states_its_ci_and_how_many_items_it_would_take():
    from e2h_utils.analysis import takeaways

    live = rows("gap", [({"n_items": 30, "n_seeds": 1}, 0.03, -0.12, 0.18)])
    text = takeaways.live_experiment(live)
    # ±15 points on 30 items; ±5 takes 30 x (15 / 5)^2 = 270
    assert "+3.0 points [-12.0, +18.0] on 30 hard test items and 1 seed, a CI of ±15.0 points" in text
    assert "±5 would need ≈ 270 items" in text and "easy_to_hard" in text


def test_a_readable_but_wide_sgr_says_how_many_items_would_place_it():
    # SGR 73 [18, 139] on 302 items: its lower bound reaches 50% once the half-width is 23 points (now 61)
    sgr = rows("sgr", [({"n_items": 302}, 0.733, 0.181, 1.394, True), ({"dataset": "mmlu_stem5", "n_items": 500},
                                                                        0.812, 0.504, 1.093, True)])
    out = next(c for c in claims.CLAIMS if c.id == "E1").check({"results": sgr})
    assert out.verdict == INCONCLUSIVE
    assert "arc/grade/icl 73.3 [18.1, 139.4] (would need ≈ 2,100 hard test items (this run: 302))" in out.this_run
    assert "81.2 [50.4, 109.3] (would" not in out.this_run  # already high: nothing to decide
