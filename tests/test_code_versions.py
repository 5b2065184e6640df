"""Code that computes stored results cannot change without a decision about those results.

Every stored result's key carries the version of the code that computed it (``PROBE_VERSION``,
``QLORA_VERSION``, ``FEATURE_VERSION``, ``LEVELS_VERSION``, ``SCORER_VERSION``, ``COT_VERSION``).
A version is bumped by hand, so this test keeps each computing module's code digest beside the
version that covers it (``code_versions.json``): when a module's code changes, the test fails
until someone decides either

- the change can alter a result: bump the version (every result it covers is recomputed), or
- it cannot (a rename, a refactor): keep the version,

and then records the new digests with ``python tests/test_code_versions.py --update``; the diff of
``code_versions.json`` shows the decision in review. Why a recorded digest rather than a digest in
the key: a key digest would recompute hours of results after every comment-free refactor, which is
exactly what this project's refactors are; the version makes "same results" a reviewed claim.

The digest is of the module's code only: comments, docstrings and layout do not count.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RECORD = Path(__file__).with_name("code_versions.json")

# module -> the version constant (module.NAME) whose results its code computes
GUARDED = {
    "e2h_utils/methods/probe.py": "e2h_utils.methods.probe.PROBE_VERSION",
    "e2h_utils/methods/qlora.py": "e2h_utils.methods.qlora.QLORA_VERSION",
    "e2h_utils/methods/features.py": "e2h_utils.methods.features.FEATURE_VERSION",
    "e2h_utils/data/hardness.py": "e2h_utils.data.hardness.LEVELS_VERSION",
    "e2h_utils/data/datasets.py": "e2h_utils.data.hardness.LEVELS_VERSION",
    "e2h_utils/engine/scoring.py": "e2h_utils.engine.scoring.SCORER_VERSION",
    "e2h_utils/engine/batching.py": "e2h_utils.engine.scoring.SCORER_VERSION",
    "e2h_utils/data/prompts.py": "e2h_utils.engine.scoring.SCORER_VERSION",
    "e2h_utils/methods/icl.py": "e2h_utils.engine.scoring.SCORER_VERSION",
    "e2h_utils/methods/noise.py": "e2h_utils.engine.scoring.SCORER_VERSION",
    "e2h_utils/methods/base.py": "e2h_utils.engine.scoring.SCORER_VERSION",
    "e2h_utils/methods/runners.py": "e2h_utils.engine.scoring.SCORER_VERSION",
    "e2h_utils/experiments/split.py": "e2h_utils.engine.scoring.SCORER_VERSION",
    "e2h_utils/experiments/runner.py": "e2h_utils.engine.scoring.SCORER_VERSION",
    "e2h_utils/experiments/mdl.py": "e2h_utils.engine.scoring.SCORER_VERSION",
    "e2h_utils/engine/generation.py": "e2h_utils.engine.generation.COT_VERSION",
    "e2h_utils/data/answers.py": "e2h_utils.engine.generation.COT_VERSION",
    # the easy-to-hard evaluators: candidates (their problems, sampling, answers) and evaluators
    "e2h_utils/methods/sampling.py": "e2h_utils.methods.sampling.SAMPLING_VERSION",
    "e2h_utils/data/math_answers.py": "e2h_utils.methods.sampling.SAMPLING_VERSION",
    "e2h_utils/experiments/evaluation.py": "e2h_utils.methods.sampling.SAMPLING_VERSION",
    "e2h_utils/methods/evaluators.py": "e2h_utils.methods.evaluators.EVALUATOR_VERSION",
}


def code_digest(path: Path) -> str:
    """sha256 of the module's syntax tree without docstrings (comments never reach the tree)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
    return hashlib.sha256(ast.unparse(tree).encode()).hexdigest()[:16]


def version_of(name: str) -> int:
    module, constant = name.rsplit(".", 1)
    return int(getattr(importlib.import_module(module), constant))


def current() -> dict:
    return {"python": f"{sys.version_info.major}.{sys.version_info.minor}",
            "modules": {path: {"version": f"{name.rsplit('.', 1)[1]}={version_of(name)}",
                               "digest": code_digest(ROOT / path)} for path, name in GUARDED.items()}}


def test_every_computing_module_is_recorded_with_its_version() -> None:
    record = json.loads(RECORD.read_text())
    if record["python"] != current()["python"]:
        pytest.skip(f"digests were recorded on Python {record['python']} (the syntax tree's text differs "
                    f"across Python versions)")
    now = current()["modules"]
    problems = []
    for path, entry in now.items():
        old = record["modules"].get(path)
        if old is None:
            problems.append(f"{path}: not recorded")
        elif old["digest"] != entry["digest"] and old["version"] == entry["version"]:
            problems.append(f"{path}: its code changed but {entry['version']} did not. If the change can alter a "
                            f"stored result, bump that version; if it cannot, keep it")
        elif old != entry:
            problems.append(f"{path}: {old['version']} -> {entry['version']}, code digest {old['digest']} -> "
                            f"{entry['digest']}")
    stale = sorted(set(record["modules"]) - set(now))
    problems += [f"{path}: recorded but no longer guarded" for path in stale]
    assert not problems, ("\n".join(problems) + "\nthen record the decision: python tests/test_code_versions.py "
                          "--update (and say in the commit which results it recomputes, if any)")


def test_the_digest_ignores_comments_and_docstrings_but_not_code(tmp_path: Path) -> None:
    a = tmp_path / "a.py"
    a.write_text('"""doc"""\nX = 1  # note\n\ndef f():\n    """doc"""\n    return X + 1\n')
    b = tmp_path / "b.py"
    b.write_text('"""other doc"""\n# a comment\nX = 1\ndef f():\n    return X + 1\n')
    c = tmp_path / "c.py"
    c.write_text('X = 1\ndef f():\n    return X + 2\n')
    assert code_digest(a) == code_digest(b) != code_digest(c)


if __name__ == "__main__":
    if sys.argv[1:] != ["--update"]:
        sys.exit("usage: python tests/test_code_versions.py --update")
    sys.path.insert(0, str(ROOT))
    RECORD.write_text(json.dumps(current(), indent=1, sort_keys=True) + "\n")
    print(f"recorded {len(GUARDED)} modules in {RECORD}")
