"""The committed report of the embedded profile (docs/report): present, within its size budget,
linked from the top of the README with its main figure, and not stale: built from the notebooks,
parameters and code versions that are in the checkout now (``report.stale``). Building a report
from the smoke profile and opening it in a browser is in ``test_notebooks.py`` (it needs the smoke
notebooks' outputs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from e2h_utils.pipeline import report

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "docs" / "report"
BUDGET_MB = 6.0


def test_the_committed_report_exists_and_is_not_stale():
    assert (SITE / "index.html").is_file() and (SITE / report.REPORT_FILE).is_file(), \
        "docs/report is missing: run `make reproduce` then `make report` (PROFILE=embedded) and commit docs/report"
    recorded = json.loads((SITE / report.REPORT_FILE).read_text())
    assert recorded["profile"] == "embedded"
    problems = report.stale(SITE, "embedded")
    assert not problems, ("the committed report is older than its sources: " + "; ".join(problems)
                          + ". Run `make reproduce` and `make report` (PROFILE=embedded) and commit docs/report")


def test_the_committed_report_fits_its_size_budget_and_links_only_inside_itself():
    files = [p for p in SITE.rglob("*") if p.is_file()]
    size = sum(p.stat().st_size for p in files) / 1e6
    assert size < BUDGET_MB, f"docs/report is {size:.1f} MB (budget {BUDGET_MB} MB)"
    for page in SITE.rglob("*.html"):
        text = page.read_text()
        assert "<script src=" not in text, f"{page}: a script from outside the site"
        for href in __import__("re").findall(r'(?:href|src)="([^"#:]+)"', text):
            if href.startswith(("data", "mailto")):
                continue
            assert (page.parent / href).resolve().is_file(), f"{page.relative_to(SITE)}: broken link {href}"


def test_notebook_pages_share_one_stylesheet():
    """JupyterLab's CSS (~250 kB) is written once, not inlined in every notebook page."""
    pages = sorted((SITE / "notebooks").glob("*.html"))
    assert pages and (SITE / "notebooks" / report.NOTEBOOK_CSS).is_file()
    for page in pages:
        head = page.read_text().split("</head>")[0]
        assert "<style" not in head and f'href="{report.NOTEBOOK_CSS}"' in head, page.name


def test_head_styles_move_to_the_shared_stylesheet_and_body_styles_stay():
    page = ('<html><head><meta charset="utf-8">\n<style type="text/css">\n  a { color: red; }\n</style>\n'
            '<style>b { x: 1 }</style></head><body><style>td { y: 2 }</style><p>hi</p></body></html>')
    out, css = report.split_head_styles(page)
    assert css == "a { color: red; }\n\nb { x: 1 }\n"
    head, body = out.split("</head>")
    assert "<style" not in head and head.endswith(f'<link rel="stylesheet" href="{report.NOTEBOOK_CSS}">\n')
    assert "<style>td { y: 2 }</style><p>hi</p>" in body
    with pytest.raises(report.ReportError, match="no </head>"):
        report.split_head_styles("<html><body></body></html>")


def test_the_readme_links_the_report_and_shows_its_main_figure():
    readme = (ROOT / "README.md").read_text()
    top = readme[:2500]
    assert "docs/report/index.html" in top, "link the report near the top of the README"
    figure = "docs/report/figures/easy_to_hard/sgr.png"
    assert f"]({figure})" in top and (ROOT / figure).is_file()


def test_no_outputs_is_a_clear_error(tmp_path, monkeypatch):
    import shutil

    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    shutil.copytree(ROOT / "parameters", tmp_path / "parameters")
    monkeypatch.setenv("E2H_HOME", str(tmp_path))
    with pytest.raises(report.ReportError, match="make reproduce PROFILE=smoke"):
        report.build("smoke", tmp_path / "site")
    assert report.main(["--profile", "smoke", "--out", str(tmp_path / "site")]) == 2
    assert not (tmp_path / "site").exists()


def test_sources_digest_follows_the_notebook_parameters_and_code_versions(tmp_path, monkeypatch):
    import shutil

    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    shutil.copytree(ROOT / "parameters", tmp_path / "parameters")
    monkeypatch.setenv("E2H_HOME", str(tmp_path))
    before = report.sources_digest("embedded", "label_noise")
    shared = tmp_path / "parameters" / "embedded" / "_shared.yaml"
    shared.write_text(shared.read_text() + "\n# a comment\n")
    after_shared = report.sources_digest("embedded", "label_noise")
    assert after_shared != before  # an included file counts
    monkeypatch.setattr(report, "code_versions", lambda: {"scorer": 99})
    assert report.sources_digest("embedded", "label_noise") != after_shared


def test_the_readme_claims_are_the_reports():
    """The README's results table is generated from the committed report's claims tables."""
    readme = (ROOT / "README.md").read_text()
    assert report.README_BEGIN in readme, "the README needs its generated claims block"
    start, end = readme.index(report.README_BEGIN), readme.index(report.README_END) + len(report.README_END)
    assert readme[start:end] == report.claims_block(SITE), \
        "the README's claims table differs from docs/report: run `make report` (PROFILE=embedded)"


def test_each_claim_appears_once_from_the_notebook_that_measures_it_and_decided_ones_lead(tmp_path):
    """E1 is tested by easy_to_hard (the measurement) and by the walkthrough's live experiment: the
    README and the front page show it once, from easy_to_hard; decided claims come first, then the
    table, then demonstrations."""
    import pandas as pd

    def write(name, rows):
        folder = tmp_path / "tables" / name
        folder.mkdir(parents=True)
        pd.DataFrame(rows, columns=["claim", "the paper says", "this run", "verdict"]).to_csv(folder / "claims.csv",
                                                                                            index=False)
    write("walkthrough", [["E1", "easy recovers", "live: 30 items", "inconclusive (CI too wide)"]])
    write("easy_to_hard", [["E1", "easy recovers", "500 items: gap 0.4 [-2, 3]", "inconclusive (CI too wide)"],
                           ["E2", "no ICL difference", "hard − easy 1 [-3, 4]", "consistent"]])
    write("easy_to_hard_evaluators", [["V1", "evaluators", "demonstration, not a measurement only: gsm8k",
                                       "no verdict (demonstration, not a measurement)"]])
    rows = report.claim_rows({name: tmp_path / "tables" / name / "claims.csv" for name, *_ in report.CARDS})
    assert rows["claim"].tolist() == ["E1", "E2", "V1"]
    assert rows.set_index("claim").loc["E1", "notebook"] == "easy_to_hard"
    block = report.claims_block(tmp_path)
    assert block.count("| E1 |") == 1 and "500 items" in block and "live: 30 items" not in block
    lead, table = block.index("Decided by this run"), block.index("| claim |")
    assert lead < block.index("**E2 consistent**") < table < block.index("Demonstrations, not measurements")
    html = report._findings_html(rows, "embedded")
    assert html.index("Decided by this run") < html.index("Not decided") < html.index("Demonstrations")


def test_demonstrations_are_listed_from_the_tables_that_mark_them(tmp_path):
    import pandas as pd

    folder = tmp_path / "tables" / "easy_to_hard"
    folder.mkdir(parents=True)
    pd.DataFrame({"dataset": ["arc", "gsm8k"], "measure": ["grade", "num_steps"], "method": ["icl", "icl_cot"],
                  "quantity": ["gap", "gap"], "demonstration": [False, True]}).to_csv(
        folder / "results.csv", index=False)
    pd.DataFrame({"claim": ["E2"], "the paper says": ["x"], "this run": ["y"], "verdict": ["consistent"]}).to_csv(
        folder / "claims.csv", index=False)
    assert report.demonstrations_of({"easy_to_hard": folder}) == {"easy_to_hard": ["gsm8k/num_steps/icl_cot"]}
    block = report.claims_block(tmp_path)
    assert "read by no claim: gsm8k/num_steps/icl_cot (easy_to_hard)" in block


def test_a_profile_path_is_refused(capsys):
    assert report.main(["--profile", "../../x", "--out", "/tmp/never"]) == 2
    assert "is not a profile name" in capsys.readouterr().err and not Path("/tmp/never").exists()
