"""The fidelity ledger (docs/fidelity.md) against the paper profile and the code.

- every row has a unique id; every paper-profile departure names the YAML keys that carry it, and
  each of those lines says ``# ledger <id>`` (and no other line does);
- every row marked *checked* is checked here against the code;
- every notebook links the ledger.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
import yaml

from e2h_utils.data import answers
from e2h_utils.data import datasets as data
from e2h_utils.experiments.spec import ExperimentSpec, Training
from e2h_utils.methods.base import CoT, ICL, QLoRA, ZeroShot
from e2h_utils.methods import features
from e2h_utils.data import hardness
from e2h_utils.engine import models
from e2h_utils.data import prompts
from e2h_utils.methods import qlora
from e2h_utils.methods.probe import ProbeConfig
from e2h_utils.methods.qlora import QLoRAConfig

ROOT = Path(__file__).resolve().parents[1]
LEDGER = ROOT / "docs" / "fidelity.md"
PAPER = ROOT / "parameters" / "paper"
ROW = re.compile(r"^\|\s*([FES]\d\d)\s*\|")
KEY = re.compile(r"`([a-z_]+)\.([a-z_]+)`")


def ledger_rows() -> dict[str, list[str]]:
    rows = {}
    for line in LEDGER.read_text().splitlines():
        match = ROW.match(line)
        if match:
            assert match.group(1) not in rows, f"duplicate ledger id {match.group(1)}"
            rows[match.group(1)] = [cell.strip() for cell in line.strip().strip("|").split("|")]
    return rows


ROWS = ledger_rows()
# the paper profile against the authors: Hase et al.'s code (F) and Sun et al.'s evaluators (S)
PAPER_ROWS = {key: cells for key, cells in ROWS.items() if key.startswith(("F", "S"))}


def paper_profile_cell(cells: list[str]) -> str:
    return cells[4]


def yaml_ledger_comments() -> dict[tuple[str, str], str]:
    """(notebook, key) -> ledger id, from ``# ledger Fxx`` comments of the paper YAMLs."""
    found = {}
    for path in sorted(PAPER.glob("*.yaml")):
        for line in path.read_text().splitlines():
            match = re.match(r"^([a-z_]+):.*#\s*ledger\s+([FS]\d\d)\b", line)
            if match:
                found[(path.stem, match.group(1))] = match.group(2)
    return found


def test_ledger_has_rows_and_sections():
    assert len(PAPER_ROWS) >= 30 and any(key.startswith("E") for key in ROWS)
    for key, cells in PAPER_ROWS.items():
        assert len(cells) == 6, key
        assert re.match(r"^(same|differs|extension)", paper_profile_cell(cells)), (key, paper_profile_cell(cells))
        if paper_profile_cell(cells).startswith("differs"):
            assert cells[5], f"{key}: a departure needs its reason"


def test_every_departing_yaml_key_has_its_row_and_back():
    comments = yaml_ledger_comments()
    listed = {}
    for key, cells in PAPER_ROWS.items():
        cell = paper_profile_cell(cells)
        if cell.startswith("differs"):
            for notebook, name in KEY.findall(cell):
                listed[(notebook, name)] = key
    assert listed, "no departing YAML key listed in the ledger"
    for (notebook, name), key in listed.items():
        params = yaml.safe_load((PAPER / f"{notebook}.yaml").read_text())
        assert name in params, f"{key} names {notebook}.{name}, which parameters/paper/{notebook}.yaml lacks"
        assert comments.get((notebook, name)) == key, \
            f"parameters/paper/{notebook}.yaml: the line of {name!r} should end with '# ledger {key}'"
    for (notebook, name), key in comments.items():
        assert key in PAPER_ROWS, f"parameters/paper/{notebook}.yaml names ledger row {key}, which does not exist"
        assert listed.get((notebook, name)) == key, f"ledger row {key} should list `{notebook}.{name}`"


def test_every_notebook_links_the_ledger():
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        text = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
        assert "docs/fidelity.md" in text, path.name


# --- rows checked against the code ------------------------------------------------------------------


def _f01():
    arc = [m for m in hardness.measures("arc") if m.in_paper]
    assert arc and all(m.population == hardness.ARC_POPULATION for m in arc)


def _f03():
    for dataset in ("arc", "mmlu_stem5", "gsm8k"):
        assert "answer_chars" in [m.name for m in hardness.measures(dataset)]


def _f04():
    solution = "a = <<1+1=2>>2\nb\n#### 1,234"
    assert data.gsm8k_reasoning(solution) == "a = <<1+1=2>>2\nb"
    assert data.gsm8k_final_answer(solution) == "1,234"


def _f20():
    fmt = prompts.get_format("mc_lettered")
    row = {"question": "Q?", "choices": ["x", "y"], "label": 1}
    assert fmt.prompt(row) == "Question: Q? \nA) x\nB) y\nAnswer:"
    assert fmt.example(row) == "Question: Q? \nA) x\nB) y \nAnswer: y" and fmt.separator == "\n\n"


def _f21():
    fmt = prompts.get_format("qa_yes_no")
    row = {"question": "Q?", "choices": ["yes", "no"], "label": 0}
    assert (fmt.prompt(row), fmt.example(row)) == ("Q: Q?\nA:", "Q: Q? \nA: yes")


def _f24():
    model = type("Model", (), {"config": type("Config", (), {"num_hidden_layers": 80})()})()
    assert features.default_layers(model) == (41, 80)


def _f40():
    config = ProbeConfig()
    assert (config.epochs, config.lr, config.l2, config.max_grad_norm, config.lr_floor) == (100, 0.05, 1.0, 1.0, 0.1)


def _paper(notebook: str):
    """The typed settings the paper profile runs ``notebook`` with."""
    from e2h_utils.experiments import settings
    from e2h_utils.pipeline import plan

    return settings.parse(notebook, plan.notebook_parameters("paper", notebook))


def _f50():
    from e2h_utils.engine import resources

    config = QLoRAConfig()
    assert (config.r, config.alpha, config.dropout, config.target_modules) == (16, 32, 0.1, ("q_proj", "v_proj"))
    targets = {name: resources.lora_target_modules(models.model_type_of(name), config.target_modules)
               for name in models.PINNED}
    assert targets["tiiuae/falcon-7b"] == ("query_key_value",) and targets["mosaicml/mpt-7b"] == ("Wqkv",)
    assert targets["Qwen/Qwen-72B"] == ("c_attn",)
    assert {targets[n] for n in models.PINNED if n.split("/")[0] in ("meta-llama", "huggyllama", "mistralai")} \
        == {("q_proj", "v_proj")}


def _f51():
    assert qlora.schedule(160, QLoRAConfig()) == (50, 4, 3)
    assert qlora.COT_MIN_UPDATES == 150 and qlora.schedule(160, QLoRAConfig(min_updates=150)) == (50, 4, 38)
    e2h = _paper("easy_to_hard")
    answer, cot = e2h.method("qlora", "arc"), e2h.cot_method("qlora_cot", "strategyqa").inner
    assert answer.config.authors_batch == cot.config.authors_batch == 4  # the 70b on 4 GPUs (run_jobs.py:108)
    assert all(m.config.authors_batch == 4 for _, _, m in _paper("sample_count").targets(
        {"qlora": ["arc/grade"]}))
    for config, n_answers, counts in ((answer.config, 4, (9, 12)), (answer.config, 2, (9, 12)),
                                      (cot.config, 1, (126, 152))):
        counter = qlora.authors_counter(160, config, n_answers)
        assert (counter.performed, counter.scheduled) == counts


def _f52():
    config = QLoRAConfig(quantization="none")
    optimizer = qlora.make_optimizer([torch.nn.Parameter(torch.zeros(2))], config)
    assert type(optimizer) is torch.optim.AdamW
    assert optimizer.param_groups[0]["lr"] == 1e-4 and optimizer.param_groups[0]["weight_decay"] == 1e-5
    assert qlora.lr_factor(10, 10, config.lr_floor) == pytest.approx(0.1)


def _f54():
    assert models.ModelSpec("meta-llama/Llama-2-70b-hf", quantization="auto").resolved_quantization == "8bit"
    assert models.ModelSpec("mistralai/Mixtral-8x7B-v0.1", quantization="auto").resolved_quantization == "none"
    assert QLoRAConfig().quantization == "8bit"
    cfg = _paper("model_scale")
    assert (cfg.model_dtype, cfg.model_quantization) == ("authors", "auto")
    for name in ("meta-llama/Llama-2-70b-hf", "mistralai/Mixtral-8x7B-v0.1", "Qwen/Qwen-72B"):
        assert models.ModelSpec(name, dtype=cfg.model_dtype).resolved_dtype == "float16", name


def _f71():
    options = _paper("hardness_measures").mdl
    assert (options.quantization, options.dtype) == ("auto", "authors")
    for name, (quant, dtype) in {"huggyllama/llama-7b": ("8bit", "float16"), "tiiuae/falcon-7b": ("none", "float32"),
                                 "mistralai/Mistral-7B-v0.1": ("8bit", "float16"),
                                 "mosaicml/mpt-7b": ("none", "float32")}.items():
        spec = models.ModelSpec(name, dtype=options.dtype, quantization=options.quantization)
        assert (spec.resolved_quantization, spec.resolved_dtype) == (quant, dtype), name
        qlora = [s.learner for s in options.specs(name) if isinstance(s.learner, QLoRA)]
        assert {learner.config.quantization for learner in qlora} == {quant}, name


def _f83():
    cfg = _paper("model_scale")
    assert list(cfg.robustness_models) == ["meta-llama/Llama-2-70b-hf", "mistralai/Mixtral-8x7B-v0.1", "Qwen/Qwen-72B"]
    entries = cfg.robustness_plan(cfg.robustness_models[0])
    assert entries and {e.easy.method.inner.k for e in entries} == {4}
    assert {e.easy.dataset for e in entries} == {"strategyqa"} and {e.easy.method.kind for e in entries} == {"icl_cot"}


def _f55():
    class Fixed(torch.nn.Module):  # uniform logits over 4 tokens: every target token costs log 4
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(1))

        def forward(self, input_ids, attention_mask):
            return type("Out", (), {"logits": torch.zeros(*input_ids.shape, 4) + self.weight})()

    loss = qlora.lm_loss(Fixed(), [([1], [2, 3]), ([1], [2, 3, 1, 2])], pad_id=0)
    assert float(loss) == pytest.approx(3 * torch.log(torch.tensor(4.0)).item())  # (2 + 4) / 2 tokens


def _f60():
    row = {"question": "q", "reasoning": "a\n<<1=1>>b", "answer": "7"}
    assert prompts.get_cot_format(None, "gsm8k").target(row) == " a\n<<1=1>>b So the answer is 7"


def _f61():
    spec = ExperimentSpec("strategyqa", "num_steps", CoT(ICL(8)), Training("easy"))
    assert spec.unsupervised().method == ZeroShot() and spec.unsupervised().training is None  # answer-scored
    gsm8k = ExperimentSpec("gsm8k", "num_steps", CoT(ICL(8)), Training("easy"))
    assert gsm8k.unsupervised().method == CoT(ZeroShot(), max_new_tokens=300)  # zero-shot CoT
    assert prompts.get_cot_format(None, "gsm8k").zero_shot_prompt({"question": "q"}).startswith(
        "This worksheet contain math word problems.")


def _f62():
    assert answers.extract("So the answer is 12.\nQ: the answer is 3", "number") == "12"
    assert answers.extract("the answer is 5. no, the answer is 6", "number") == "5."  # the first, as theirs
    assert answers.extract("12", "number") is None and not answers.is_correct("1000", "1,000", "number")


CHECKS = {"F01": _f01, "F03": _f03, "F04": _f04, "F20": _f20, "F21": _f21, "F24": _f24, "F40": _f40, "F50": _f50,
          "F51": _f51, "F52": _f52, "F54": _f54, "F55": _f55, "F60": _f60, "F61": _f61, "F62": _f62, "F71": _f71,
          "F83": _f83}


def test_checked_rows_have_a_check():
    checked = {key for key, cells in PAPER_ROWS.items() if "(checked)" in paper_profile_cell(cells)}
    assert checked == set(CHECKS), f"rows marked checked without a check: {sorted(checked - set(CHECKS))}; " \
                                   f"checks without a checked row: {sorted(set(CHECKS) - checked)}"


@pytest.mark.parametrize("key", sorted(CHECKS))
def test_checked_row_is_true_of_the_code(key):
    CHECKS[key]()
