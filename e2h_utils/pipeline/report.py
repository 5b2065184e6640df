"""``make report``: a profile's executed notebooks as a static site a reader opens in a browser.

    python -m e2h_utils.pipeline.report --profile embedded          # -> docs/report/ (committed)
    python -m e2h_utils.pipeline.report --profile smoke --out DIR   # any profile, any folder

Reads ``outputs/<profile>/<notebook>/`` (what ``make reproduce`` wrote) and writes:

- ``index.html``: the paper in two sentences, one card per research question (its main figure,
  its claims with their verdicts from ``tables/claims.csv``), links to every rendered notebook,
  figure and table, the fidelity ledger, and the run's provenance (commit, model, profile, wall
  time per notebook);
- ``notebooks/<name>.html``: each executed notebook through nbconvert, code cells collapsed,
  figures inline, nothing fetched from the network (no MathJax, require.js or widget scripts), all
  pages sharing one stylesheet, ``notebooks/notebook.css``;
- ``figures/<name>/*.png`` and ``tables/<name>/*.html`` (sortable, with the CSV beside it);
- ``fidelity.html``: ``docs/fidelity.md``;
- ``report.json``: what the site was built from, per notebook the digest of its sources (the
  notebook, its parameter files and the versions of the code that computes results), so a test can
  tell when a committed report has gone stale (``sources_digest``).

The site is built in a temporary folder and swapped into place, so a failed build leaves the last
good site as it was. Only the Python standard library, nbconvert and mistune (nbconvert's own
Markdown renderer) are used: nothing is downloaded at build time.
"""

from __future__ import annotations

import argparse
import hashlib
import html
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, cast

import pandas as pd

from e2h_utils import paths
from e2h_utils.pipeline.profiles import discover, parameter_files
from e2h_utils.pipeline.reproduce import FINGERPRINT_FILE

REPORT_FILE = "report.json"
NOTEBOOK_CSS = "notebook.css"  # the notebook pages' one stylesheet, in notebooks/
_STYLE = re.compile(r"<style[^>]*>(.*?)</style>\s*", re.DOTALL)
TEMPLATE_DIR = Path(__file__).with_name("report_template")
# the order of the cards: the question, its notebook, its main figure
CARDS = (
    ("walkthrough", "Start here", "The paper in one sitting: one dataset, one measure, SGR, a live experiment",
     "live_experiment"),
    ("hardness_measures", "RQ1", "Are the hardness measures related?", "correlations"),
    ("easy_to_hard", "RQ2", "How much of the supervision gap does easy training data recover?", "sgr"),
    ("sample_count", "RQ3", "How does it depend on the number of training examples, and on labelling cost?",
     "learning_curves"),
    ("label_noise", "RQ3", "What if hard labels are noisier?", "label_noise"),
    ("model_scale", "RQ4", "Does easy-to-hard generalization change with model scale?", "accuracy_by_model"),
    ("train_test_gap", "RQ4", "Does the gap between training and test hardness matter?", "third_grade_to_college"),
    ("easy_to_hard_evaluators", "Sun et al.", "Do evaluators trained on easy problems re-rank solutions to hard ones?",
     "rerank_by_n"),
)
PAPER = ("Hase, Bansal, Clark and Wiegreffe (ACL 2024) ask whether a language model trained on <em>easy</em> "
         "data does well on <em>hard</em> test items, and measure it with the Supervision Gap Recovered: "
         "SGR = (easy − unsupervised) / (hard − unsupervised), all three accuracies on the same hard items. "
         "They find easy data recovers most of the gap (SGR mostly 70–100%) for in-context learning, linear "
         "probes and QLoRA across ARC, MMLU-STEM-5, StrategyQA and GSM8K. Sun et al. (2024) ask the same of "
         "<em>evaluators</em>: do reward models trained on easy MATH problems re-rank a generator's solutions to "
         "hard ones better than majority voting?")
# a notebook's links to the repository, as they are inside the site (notebooks/<name>.html)
LINKS = {"../docs/fidelity.md": "../fidelity.html", "../README.md": "../index.html"}
VERDICT_CLASS = {"consistent": "ok", "inconsistent": "bad", "inconclusive": "na"}
STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1100px; margin: 0 auto;
       padding: 1em 1.5em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { font-size: 1.25em; margin-top: 1.6em; }
nav a, a { color: #0b5cad; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(320px, 1fr)); gap: 1em; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 0.8em 1em; background: #fff; }
.card img { width: 100%; border: 1px solid #eee; }
.card .rq { font-size: 0.8em; text-transform: uppercase; color: #777; letter-spacing: 0.05em; }
.card h3 { margin: 0.2em 0 0.5em; font-size: 1.05em; }
.verdict { font-size: 0.8em; padding: 0.1em 0.45em; border-radius: 3px; white-space: nowrap; }
.verdict.ok { background: #d8f0dc; } .verdict.bad { background: #f6d5d2; } .verdict.na { background: #eee; }
ul.claims { padding-left: 1.1em; font-size: 0.9em; } ul.claims li { margin-bottom: 0.35em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }
th { background: #f5f5f5; cursor: pointer; }
.muted { color: #777; font-size: 0.9em; }
"""
SORTABLE = """
document.querySelectorAll('table.sortable').forEach(function (table) {
  table.querySelectorAll('th').forEach(function (th, column) {
    th.title = 'sort';
    th.addEventListener('click', function () {
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      var up = th.dataset.order !== 'up'; th.dataset.order = up ? 'up' : 'down';
      rows.sort(function (a, b) {
        var x = a.cells[column].innerText, y = b.cells[column].innerText;
        var nx = parseFloat(x), ny = parseFloat(y);
        var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
        return up ? c : -c;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


class ReportError(RuntimeError):
    """The profile has nothing to report, or a notebook's outputs are incomplete."""


@dataclass
class NotebookOutputs:
    name: str
    folder: Path
    fingerprint: dict
    provenance: dict

    @property
    def executed(self) -> Path:
        return self.folder / f"{self.name}.ipynb"


def default_out(profile: str) -> Path:
    """The embedded profile's report is committed (``docs/report``); others stay with their outputs."""
    return paths.project_root() / "docs" / "report" if profile == "embedded" else paths.outputs_dir(profile) / "report"


def code_versions() -> dict[str, int]:
    """The versions of the code that computes stored results (every result's key carries them)."""
    from e2h_utils.data.hardness import LEVELS_VERSION
    from e2h_utils.engine.generation import COT_VERSION
    from e2h_utils.engine.scoring import SCORER_VERSION
    from e2h_utils.methods.features import FEATURE_VERSION
    from e2h_utils.methods.probe import PROBE_VERSION
    from e2h_utils.methods.qlora import QLORA_VERSION

    return {"scorer": SCORER_VERSION, "levels": LEVELS_VERSION, "cot": COT_VERSION, "features": FEATURE_VERSION,
            "probe": PROBE_VERSION, "qlora": QLORA_VERSION}


def sources_digest(profile: str, name: str) -> str:
    """What a notebook's outputs under ``profile`` are built from, besides the package's plumbing:
    the notebook, its parameter files and the code versions that define its results."""
    digest = hashlib.sha256()
    digest.update((paths.notebooks_dir() / f"{name}.ipynb").read_bytes())
    for path in parameter_files(paths.parameters_dir() / profile / f"{name}.yaml"):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    digest.update(json.dumps(code_versions(), sort_keys=True).encode())
    return digest.hexdigest()[:16]


def commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=paths.project_root(), capture_output=True,
                             text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "e2h_utils", "notebooks", "parameters"],
                               cwd=paths.project_root(), capture_output=True, text=True, timeout=10).stdout.strip()
        return out.stdout.strip() + ("+uncommitted changes" if dirty else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def collect(profile: str) -> list[NotebookOutputs]:
    found = []
    for job in discover(profile):
        folder = job.output_dir
        if not (folder / f"{job.name}.ipynb").is_file():
            continue
        def read(file: str) -> dict:
            try:
                return json.loads((folder / file).read_text())
            except (OSError, ValueError):
                return {}
        found.append(NotebookOutputs(job.name, folder, read(FINGERPRINT_FILE), read("provenance.json")))
    if not found:
        raise ReportError(f"no executed notebooks under {paths.outputs_dir(profile)}: run `make reproduce "
                          f"PROFILE={profile}` first, then `make report PROFILE={profile}`")
    return found


# --- pages -----------------------------------------------------------------------------------------

def _page(title: str, body: str, up: str = "") -> str:
    nav = f'<nav class="muted"><a href="{up}index.html">← the report</a></nav>' if up else ""
    return (f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<link rel=\"icon\" href=\"data:,\">\n"
            f"<title>{html.escape(title)}</title>\n"
            f"<style>{STYLE}</style>\n</head>\n<body>\n{nav}\n{body}\n<script>{SORTABLE}</script>\n</body>\n</html>\n")


def host_text(host: dict | None) -> str:
    """One line for a notebook's machine (``provenance.host``); outputs from before it was recorded say so."""
    if not host:
        return "not recorded"
    gpu = f", {host['gpu']}" if host.get("gpu") else ""
    return f"{host.get('cpu', '?')}, {host.get('cores', '?')} cores, {host.get('matmul_gflops', '?')} GFLOP/s{gpu}"


def _table_html(frame: pd.DataFrame) -> str:
    frame = frame.copy()
    for column in frame.columns:
        if pd.api.types.is_float_dtype(frame[column]):
            frame[column] = frame[column].map(lambda v: "" if pd.isna(v) else f"{v:.4g}")
    return frame.to_html(index=False, classes="sortable", border=0, na_rep="", escape=True)


def render_notebook(source: Path, target: Path) -> None:
    """``target``: the notebook's page. The stylesheets nbconvert inlines in the page's head (JupyterLab's
    ~250 kB, the same for every notebook) go once into ``NOTEBOOK_CSS`` beside it, which the page links."""
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="e2h", extra_template_basedirs=[str(TEMPLATE_DIR)])
    notebook = nbformat.read(str(source), as_version=4)
    notebook.metadata.pop("widgets", None)  # widget state would need the widget manager's scripts
    body, _ = exporter.from_notebook_node(notebook)
    for old, new in LINKS.items():  # links between notebooks and docs, as they are inside the site
        body = body.replace(f'href="{old}"', f'href="{new}"')
    body, css = split_head_styles(body)
    shared = target.with_name(NOTEBOOK_CSS)
    if shared.is_file() and shared.read_text(encoding="utf-8") != css:
        raise ReportError(f"{target.name}: its page styles differ from those of the notebooks rendered before it "
                          f"({shared}); every notebook page is meant to share one stylesheet")
    shared.write_text(css, encoding="utf-8")
    target.write_text(body, encoding="utf-8")


def split_head_styles(page: str) -> tuple[str, str]:
    """(the page with the ``<style>`` blocks of its ``<head>`` replaced by one link to ``NOTEBOOK_CSS``,
    their CSS). Styles in the body (a table's own styling, say) stay where they are."""
    end = page.find("</head>")
    if end < 0:
        raise ReportError("the rendered notebook has no </head>: nbconvert's template changed")
    head, rest = page[:end], page[end:]
    css = [m.group(1).strip() for m in _STYLE.finditer(head)]
    head = _STYLE.sub("", head)
    return head + f'<link rel="stylesheet" href="{NOTEBOOK_CSS}">\n' + rest, "\n\n".join(css) + "\n"


def render_markdown(text: str) -> str:
    import mistune

    return cast(str, mistune.create_markdown(plugins=["table"])(text))  # the default renderer writes HTML


def _claims(folder: Path) -> pd.DataFrame:
    path = folder / "tables" / "claims.csv"
    return pd.read_csv(path) if path.is_file() else pd.DataFrame()


def _findings_html(rows: pd.DataFrame, profile: str, demos: Mapping[str, list[str]] | None = None) -> str:
    """The front page's lead: what the run decides (with its numbers), what it leaves open, and what is a
    demonstration only; each claim once (``claim_rows``)."""
    if rows.empty:
        return ""
    title = "What a 135M model shows" if profile in ("embedded", "smoke") else f"What the {profile} profile shows"
    parts: dict[str, list[str]] = {kind: [] for kind in ("decided", "open", "demonstration")}
    for _, row in rows.iterrows():
        verdict = str(row["verdict"])
        css = VERDICT_CLASS.get(verdict.split(" ")[0], "na")
        parts[_kind(verdict)].append(
            f'<li><span class="verdict {css}">{html.escape(verdict)}</span> '
            f'<strong>{html.escape(str(row["claim"]))}</strong> '
            f'{html.escape(str(row["the paper says"]))}<br><span class="muted">this run: '
            f'{html.escape(str(row["this run"]))} '
            f'(<a href="notebooks/{row["notebook"]}.html">{row["notebook"]}</a>)</span></li>')
    heads = {"decided": "Decided by this run", "open": "Not decided at this size (each says what would decide it)",
             "demonstration": "Demonstrations, not measurements"}
    if demos:
        parts["demonstration"].append(f'<li>runs shown at demonstration size, read by no claim: '
                                      f'{html.escape(_demo_text(demos))}</li>')
    body = "".join(f'<h3>{heads[k]}</h3><ul class="claims">{"".join(v)}</ul>' for k, v in parts.items() if v)
    return f'<h2 id="findings">{html.escape(title)}</h2>{body}'


def _card(outputs: NotebookOutputs, rq: str, question: str, figure: str, tables: list[str], figures: list[str]) -> str:
    name = outputs.name
    thumb = (f"figures/{name}/{figure}.png" if figure in figures
             else (f"figures/{name}/{figures[0]}.png" if figures else ""))
    image = f'<a href="notebooks/{name}.html"><img src="{thumb}" alt="{html.escape(figure)}"></a>' if thumb else ""
    claims = _claims(outputs.folder)
    items = []
    for _, row in claims.iterrows():
        verdict = str(row["verdict"])
        css = VERDICT_CLASS.get(verdict.split(" ")[0], "na")
        items.append(f'<li><span class="verdict {css}">{html.escape(verdict)}</span> '
                     f'{html.escape(str(row["the paper says"]))}'
                     f'<br><span class="muted">this run: {html.escape(str(row["this run"]))}</span></li>')
    claim_list = (f'<ul class="claims">{"".join(items)}</ul>' if items
                  else '<p class="muted">no claim of the paper is tested here</p>')
    figure_links = ", ".join(f'<a href="figures/{name}/{f}.png">{html.escape(f)}</a>' for f in figures)
    table_links = ", ".join(f'<a href="tables/{name}/{t}.html">{html.escape(t)}</a>' for t in tables)
    links = "<br>".join(part for part in (f'<a href="notebooks/{name}.html"><strong>the notebook</strong></a>',
                                          f"figures: {figure_links}" if figures else "",
                                          f"tables: {table_links}" if tables else "") if part)
    seconds = outputs.fingerprint.get("seconds")
    ran = (f'<p class="muted">ran in {seconds:.0f} s; {len(outputs.provenance.get("runs", []))} runs</p>' if seconds
           else "")
    return (f'<div class="card" id="{name}"><div class="rq">{html.escape(rq)}</div><h3>{html.escape(question)}</h3>'
            f'{image}{claim_list}<p>{links}</p>{ran}</div>')


def build(profile: str, out: Path | None = None) -> Path:
    """Build the site of ``profile`` into ``out`` (default: ``default_out``); returns the folder. Holds the
    profile's lock (``reproduce.profile_lock``): never while a run of the profile writes its outputs, nor
    two builds at once."""
    from e2h_utils.pipeline.reproduce import profile_lock

    with profile_lock(profile):
        return _build(profile, out)


def _build(profile: str, out: Path | None = None) -> Path:
    outputs = {o.name: o for o in collect(profile)}
    out = Path(out) if out is not None else default_out(profile)
    staging = out.with_name(f".{out.name}.building")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "notebooks").mkdir(parents=True)
    built: dict[str, dict[str, Any]]
    cards, built = [], {}
    models: dict[str, str] = {}
    for name, rq, question, figure in CARDS:
        if name not in outputs:
            continue
        nb = outputs[name]
        render_notebook(nb.executed, staging / "notebooks" / f"{name}.html")
        figures = (sorted(p.stem for p in (nb.folder / "figures").glob("*.png")) if (nb.folder / "figures").is_dir()
                   else [])
        for stem in figures:
            (staging / "figures" / name).mkdir(parents=True, exist_ok=True)
            shutil.copy2(nb.folder / "figures" / f"{stem}.png", staging / "figures" / name / f"{stem}.png")
        tables = sorted(p.stem for p in (nb.folder / "tables").glob("*.csv")) if (nb.folder / "tables").is_dir() else []
        for stem in tables:
            (staging / "tables" / name).mkdir(parents=True, exist_ok=True)
            frame = pd.read_csv(nb.folder / "tables" / f"{stem}.csv")
            shutil.copy2(nb.folder / "tables" / f"{stem}.csv", staging / "tables" / name / f"{stem}.csv")
            (staging / "tables" / name / f"{stem}.html").write_text(_page(
                f"{name}: {stem}", f"<h1>{html.escape(name)}: {html.escape(stem)}</h1>"
                f'<p class="muted">{len(frame)} rows; click a column to sort; <a href="{stem}.csv">CSV</a></p>'
                + _table_html(frame), up="../../"), encoding="utf-8")
        cards.append(_card(nb, rq, question, figure, tables, figures))
        for model, info in nb.provenance.get("models", {}).items():
            models[model] = info.get("identity", "")
        built[name] = {"sources": sources_digest(profile, name), "fingerprint": nb.fingerprint.get("fingerprint"),
                       "finished": nb.fingerprint.get("finished"), "seconds": nb.fingerprint.get("seconds"),
                       "host": host_text(nb.provenance.get("host"))}
    ledger = paths.project_root() / "docs" / "fidelity.md"
    if ledger.is_file():
        (staging / "fidelity.html").write_text(_page("fidelity ledger", render_markdown(ledger.read_text()), up=""),
                                               encoding="utf-8")
    rows = "".join(f"<tr><td><a href=\"notebooks/{n}.html\">{n}</a></td><td>{info['seconds'] or ''}</td>"
                   f"<td>{html.escape(str(info['finished'] or ''))}</td><td>{html.escape(info['host'])}</td></tr>"
                   for n, info in built.items())
    total = sum(info["seconds"] or 0 for info in built.values())
    model_text = ", ".join(f"{html.escape(m)} (<code>{html.escape(i)}</code>)" for m, i in models.items()) or "unknown"
    built_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    revision = commit()
    body = f"""
<h1>Easy-to-hard generalization, reproduced: profile <code>{html.escape(profile)}</code></h1>
<p>{PAPER}</p>
<p>This report shows what the <code>{html.escape(profile)}</code> profile of this reproduction found, claim by
claim, with 95% paired-bootstrap confidence intervals. Every difference from the authors' code is in the
<a href="fidelity.html">fidelity ledger</a>; a verdict is <span class="verdict ok">consistent</span>,
<span class="verdict bad">inconsistent</span> or <span class="verdict na">inconclusive</span> (CIs too wide, or not run
in this profile), computed from the CIs by the rules in <code>e2h_utils.analysis.claims</code>.</p>
{_findings_html(claim_rows({name: o.folder / "tables" / "claims.csv" for name, o in outputs.items()}), profile,
                demonstrations_of({name: o.folder / "tables" for name, o in outputs.items()}))}
<div class="cards">{''.join(cards)}</div>
<h2>Provenance</h2>
<p>Profile <code>{html.escape(profile)}</code>; model(s) {model_text}; \
built from commit <code>{html.escape(revision)}</code>
on {built_at}; the notebooks ran {total / 60:.1f} min in all.</p>
<table class="sortable"><thead><tr><th>notebook</th><th>seconds</th><th>finished</th>\
<th>machine (float32 matrix-product rate)</th></tr></thead><tbody>{rows}</tbody></table>
<p class="muted">Built by <code>make report PROFILE={html.escape(profile)}</code> \
from <code>outputs/{html.escape(profile)}/</code>.</p>
"""
    (staging / "index.html").write_text(_page(f"e2h report: {profile}", body), encoding="utf-8")
    (staging / REPORT_FILE).write_text(json.dumps({"profile": profile, "commit": revision, "built": built_at,
                                                   "code_versions": code_versions(), "notebooks": built},
                                                  indent=1, sort_keys=True) + "\n", encoding="utf-8")
    old = out.with_name(f".{out.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        out.rename(old)
    staging.rename(out)
    shutil.rmtree(old, ignore_errors=True)
    return out


README_BEGIN = "<!-- claims: generated by `make report` from docs/report; do not edit by hand -->"
README_END = "<!-- end of claims -->"
DECIDED = ("consistent", "inconsistent")


def claim_rows(files: Mapping[str, Path]) -> pd.DataFrame:
    """Each claim once, from the claims table of the notebook that measures it (the first notebook
    its registry entry names: E1 from easy_to_hard, not the walkthrough's live experiment), in the
    registry's order. ``files``: notebook name -> its ``claims.csv``."""
    from e2h_utils.analysis import claims

    rows = []
    for claim in claims.CLAIMS:
        for name in claim.notebooks:
            path = Path(files[name]) if name in files else None
            if path is None or not path.is_file():
                continue
            table = pd.read_csv(path)
            match = table[table["claim"] == claim.id]
            if len(match):
                rows.append({**match.iloc[0].to_dict(), "notebook": name})
                break
    return pd.DataFrame(rows, columns=["claim", "the paper says", "this run", "verdict", "notebook"])


def demonstrations_of(folders: Mapping[str, Path]) -> dict[str, list[str]]:
    """Per notebook, the runs its tables mark as demonstrations (``estimates.mark_demonstrations``),
    read from every CSV in ``folders`` (notebook name -> its tables folder)."""
    from e2h_utils.analysis import claims

    out = {}
    for name, folder in folders.items():
        frames = {path.stem: pd.read_csv(path) for path in sorted(Path(folder).glob("*.csv"))}
        shown = claims.demonstrations(frames)
        if shown:
            out[name] = shown
    return out


def _demo_text(demos: Mapping[str, list[str]]) -> str:
    return "; ".join(f"{', '.join(runs)} ({name})" for name, runs in demos.items())


def _kind(verdict: str) -> str:
    word = str(verdict).split(" (")[0]
    return "decided" if word in DECIDED else "demonstration" if word == "no verdict" else "open"


def claims_block(site: Path) -> str:
    """The README's findings and claims table, read from a built site's claims tables (so the README's
    results cannot drift from the outputs): first what the run decides, with its numbers, then the
    table with each claim once, then what is a demonstration only."""
    rows = claim_rows({name: Path(site) / "tables" / name / "claims.csv" for name, *_ in CARDS})
    rows = rows.assign(kind=[_kind(v) for v in rows["verdict"]])
    decided = [f"- **{r['claim']} {r['verdict']}**: {r['the paper says']} This run: {r['this run']}."
               for _, r in rows[rows["kind"] == "decided"].iterrows()] or ["- no claim is decided by this run"]
    table = ["| claim | the paper says | this run (embedded profile) | verdict |", "|---|---|---|---|"]
    table += [f"| {r['claim']} | {r['the paper says']} | {r['this run']} | **{r['verdict']}** |"
              for _, r in rows.iterrows()]
    demo = [f"- {r['claim']}: {r['this run']}" for _, r in rows[rows["kind"] == "demonstration"].iterrows()]
    demos = demonstrations_of({name: Path(site) / "tables" / name for name, *_ in CARDS})
    demo += [f"- runs shown at demonstration size, read by no claim: {_demo_text(demos)}"] if demos else []
    return "\n".join([README_BEGIN, "**Decided by this run** (each claim once, from the notebook that measures it):",
                      "", *decided, "",
                      "Every claim, once (inconclusive ones say what would decide them):", "", *table,
                      *(["", "**Demonstrations, not measurements** (shown, never given a verdict):", "", *demo]
                        if demo else []), README_END])


def update_readme(site: Path, readme: Path | None = None) -> bool:
    """Replace the claims block of the README with the one of ``site``; True when it changed."""
    readme = readme or paths.project_root() / "README.md"
    text = readme.read_text(encoding="utf-8")
    if README_BEGIN not in text or README_END not in text:
        raise ReportError(f"{readme} has no claims block ({README_BEGIN} ... {README_END})")
    start, end = text.index(README_BEGIN), text.index(README_END) + len(README_END)
    new = text[:start] + claims_block(site) + text[end:]
    if new != text:
        readme.write_text(new, encoding="utf-8")
    return new != text


def stale(report: Path, profile: str) -> list[str]:
    """Notebooks whose sources changed since ``report`` was built (empty: up to date)."""
    recorded = json.loads((Path(report) / REPORT_FILE).read_text())
    problems = []
    for job in discover(profile):
        entry = recorded["notebooks"].get(job.name)
        if entry is None:
            problems.append(f"{job.name}: not in the report")
        elif entry["sources"] != sources_digest(profile, job.name):
            problems.append(f"{job.name}: its notebook, parameters or code versions changed since the report was built")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build a profile's report: a static site of its executed notebooks.")
    parser.add_argument("--profile", default="embedded")
    parser.add_argument("--out", type=Path, help="where to write it (default: docs/report for embedded, else "
                                                 "outputs/<profile>/report)")
    args = parser.parse_args(argv)
    try:
        out = build(args.profile, args.out)
        if args.profile == "embedded" and args.out is None and update_readme(out):
            print("README.md: the claims table was updated from the report")
    except (ReportError, ValueError, RuntimeError) as error:  # a profile that is not a name; the profile is locked
        print(f"error: {error}", file=sys.stderr)
        return 2
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"report: {out / 'index.html'} ({size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
