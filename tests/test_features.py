"""e2h_utils.methods.features (and scoring.choice_hidden_states): hidden-state features for probes,
their on-disk cache, and the probe / QLoRA methods of the experiment runner.

Uses the tiny random Llama of ``conftest`` and a small synthetic ARC-like frame (in-vocabulary
words, grades 3-8) built like the one of ``test_experiments``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from e2h_utils.data import datasets as data
from e2h_utils.methods import base as methods
from e2h_utils.engine import models
from e2h_utils.data import prompts
from e2h_utils.engine import scoring
from e2h_utils.engine.runtime import RunSettings
from e2h_utils.experiments.runner import Runner
from e2h_utils.experiments.spec import ExperimentSpec, Training, key_payload
from e2h_utils.experiments.spec import TestSelection as Selection  # renamed: pytest collects Test*
from e2h_utils.methods.base import MethodError, Probe, ZeroShot, build
from e2h_utils.methods.probe import ProbeConfig
from e2h_utils.methods.features import FeatureCache, default_layers, features_for
from e2h_utils.experiments.store import CorruptResult, ResultStore
from e2h_utils.engine.scoring import ScoringItem

N_SPECIAL = 4  # <unk> <pad> <s> </s> come first in the tiny vocabulary
HIDDEN = 32  # the tiny model's hidden size

NOUNS = ["sun", "moon", "rock", "tree", "water", "fire", "ice", "sand", "seed", "leaf", "cloud", "rain",
         "snow", "wind", "plant", "animal", "cell", "soil", "star", "planet", "apple", "dog", "cat", "bird"]
ADJECTIVES = ["big", "small", "hot", "cold", "fast", "slow", "tall", "long", "short", "warm", "cool", "high"]


def make_frame(seed: int = 0, n_rows: int = 60) -> pd.DataFrame:
    """Like ``test_experiments.make_frame``: grades 3-8 cycling, so 30 easy / 20 medium / 10 hard."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_rows):
        choices = [str(w) for w in rng.choice(NOUNS, size=4, replace=False)]
        label = int(rng.integers(4))
        extra = " ".join(str(w) for w in rng.choice(ADJECTIVES, size=int(rng.integers(0, 6))))
        rows.append({"id": f"arc-{i:03d}", "split": "test", "question": f"which one is {extra} ?".replace("  ", " "),
                     "choices": choices, "label": label, "answer": choices[label], "reasoning": None,
                     "grade": float(3 + i % 6), "arc_annotated": True, "mdl_holdout": False})
    return data.tidy(pd.DataFrame(rows).sample(frac=1.0, random_state=seed), "arc")


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return make_frame()


@pytest.fixture
def counter(monkeypatch):
    """Counts the items passed to ``scoring.choice_hidden_states`` (one entry per call)."""
    calls: list[int] = []
    real = scoring.choice_hidden_states

    def counting(model, items, *args, **kwargs):
        calls.append(len(items))
        return real(model, items, *args, **kwargs)

    monkeypatch.setattr(scoring, "choice_hidden_states", counting)
    return calls


def random_items(vocab: int, n: int, seed: int) -> list[ScoringItem]:
    rng = np.random.default_rng(seed)

    def tokens(k: int) -> tuple[int, ...]:
        return tuple(int(t) for t in rng.integers(N_SPECIAL, vocab, size=k))

    lengths = [1, 20] + [int(x) for x in rng.integers(1, 21, size=n - 2)]
    return [ScoringItem(tokens(length), tuple(tokens(int(rng.integers(1, 6))) for _ in range(int(rng.integers(2, 6)))))
            for length in lengths]


@torch.no_grad()
def plain_hidden_states(model, items, layers, prefix=()) -> list[np.ndarray]:
    """Reference: one unbatched forward per (item, choice), last position of each layer."""
    decoder = model.get_decoder()
    out = []
    for item in items:
        rows = []
        for choice in item.choice_ids:
            ids = torch.tensor([list(prefix) + list(item.prompt_ids) + list(choice)])
            states = decoder(input_ids=ids, output_hidden_states=True).hidden_states
            rows.append(torch.cat([states[layer][0, -1] for layer in layers]).numpy())
        out.append(np.stack(rows))
    return out


# --- choice_hidden_states ------------------------------------------------------------------


@pytest.mark.parametrize("budget", [None, (24, 40), (8, 8)], ids=["default", "small", "tiny"])
def test_choice_hidden_states_match_plain(tiny_lm, budget):
    model, tokenizer = tiny_lm
    items = random_items(len(tokenizer), 8, seed=11)
    layers = (0, 1, 2)
    kwargs = {} if budget is None else {"batch_tokens": budget[0], "kv_tokens": budget[1]}
    got = scoring.choice_hidden_states(model, items, layers, pad_id=tokenizer.pad_token_id, **kwargs)
    want = plain_hidden_states(model, items, layers)
    assert len(got) == len(items)
    for g, w, item in zip(got, want, items):
        assert g.shape == (len(item.choice_ids), len(layers) * HIDDEN)
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)


def test_choice_hidden_states_layer_order(tiny_lm):
    model, tokenizer = tiny_lm
    items = random_items(len(tokenizer), 3, seed=12)
    both = scoring.choice_hidden_states(model, items, (2, 1), pad_id=tokenizer.pad_token_id)
    last = scoring.choice_hidden_states(model, items, (2,), pad_id=tokenizer.pad_token_id)
    middle = scoring.choice_hidden_states(model, items, (1,), pad_id=tokenizer.pad_token_id)
    for b, s, m in zip(both, last, middle):
        np.testing.assert_allclose(b, np.concatenate([s, m], axis=1), rtol=1e-5, atol=1e-6)


def test_default_layers(tiny_lm):
    assert default_layers(tiny_lm.model) == (2, 2)  # 3 states: ceil(3 / 2) = 2 and 2, as the authors index
    config = type("Config", (), {"num_hidden_layers": 32})()
    assert default_layers(type("Model", (), {"config": config})()) == (17, 32)
    config = type("Config", (), {"num_hidden_layers": 80})()  # Llama-2-70b: states 41 and 80
    assert default_layers(type("Model", (), {"config": config})()) == (41, 80)


# --- features_for and its cache ------------------------------------------------------------


def test_features_for_shapes_and_values(tiny_lm, frame, tmp_path, counter):
    rows = frame.iloc[:5]
    got = features_for(tiny_lm, rows, "arc", cache=FeatureCache(tmp_path), progress=False)
    assert list(got) == list(rows["id"])
    assert counter == [5]
    fmt = prompts.get_format(None, "arc")
    items = [scoring.make_item(tiny_lm.tokenizer, fmt.prompt(r), fmt.continuations(r)) for r in rows.to_dict("records")]
    want = plain_hidden_states(tiny_lm.model, items, default_layers(tiny_lm.model))
    for i, w in zip(rows["id"], want):
        assert got[i].shape == (4, 2 * HIDDEN)
        np.testing.assert_allclose(got[i], w, rtol=1e-4, atol=1e-5)


def test_features_cache_reuse(tiny_lm, frame, tmp_path, counter):
    cache = FeatureCache(tmp_path)
    first = features_for(tiny_lm, frame.iloc[:6], "arc", cache=cache, progress=False)
    assert counter == [6]
    again = features_for(tiny_lm, frame.iloc[:6], "arc", cache=cache, progress=False)
    assert counter == [6]  # nothing extracted the second time
    for i in first:
        np.testing.assert_array_equal(first[i], again[i])
    # some new rows (and repeated ones): only the new rows are extracted
    mixed = pd.concat([frame.iloc[4:10], frame.iloc[4:5]])
    more = features_for(tiny_lm, mixed, "arc", cache=cache, progress=False)
    assert counter == [6, 4]
    assert set(more) == set(frame["id"].iloc[4:10])
    for i in frame["id"].iloc[4:6]:
        np.testing.assert_array_equal(more[i], first[i])
    files = list(tmp_path.rglob("*.npz"))
    assert len(files) == 1
    assert files[0].parent == tmp_path / "arc" / "features"
    # a fresh cache object over the same folder sees every row
    everything = features_for(tiny_lm, frame.iloc[:10], "arc", cache=FeatureCache(tmp_path), progress=False)
    assert counter == [6, 4] and len(everything) == 10
    # other layers: another key, another file
    features_for(tiny_lm, frame.iloc[:2], "arc", layers=[0, 2], cache=cache, progress=False)
    assert counter == [6, 4, 2]
    assert len(list((tmp_path / "arc" / "features").glob("*.npz"))) == 2


def test_features_cache_corrupt_file(tiny_lm, frame, tmp_path):
    cache = FeatureCache(tmp_path)
    features_for(tiny_lm, frame.iloc[:2], "arc", cache=cache, progress=False)
    (path,) = list(tmp_path.rglob("*.npz"))
    path.write_bytes(b"not an npz file")
    with pytest.raises(CorruptResult) as info:
        features_for(tiny_lm, frame.iloc[:2], "arc", cache=cache, progress=False)
    assert str(path) in str(info.value)


def _write_items(root: str, payload: dict, ids: list[str], start, results) -> None:
    """One writer process: waits for the start, then merges its items into the shared cache."""
    start.wait()
    cache = FeatureCache(Path(root))
    cache.merge(payload, {i: ("d" + i, np.full((2, 3), float(len(i)), dtype=np.float32)) for i in ids})
    results.put(len(cache.load(payload)))


def test_two_writers_of_one_feature_cache_keep_both_their_items(tmp_path):
    """The probe feature cache used to lose updates with two writers (each saved what it had loaded
    before the other wrote); merges are locked and read the file again inside the lock."""
    import multiprocessing

    payload = {"kind": "hidden_states", "dataset": "arc", "layers": [1], "model_identity": "m", "version": 1}
    FeatureCache(tmp_path).merge(payload, {"base": ("d", np.zeros((2, 3), dtype=np.float32))})
    context = multiprocessing.get_context("fork")
    start, results = context.Event(), context.Queue()
    writers = [context.Process(target=_write_items, args=(str(tmp_path), payload, [f"{w}-{k}" for k in range(40)],
                                                          start, results)) for w in ("a", "b", "c")]
    for writer in writers:
        writer.start()
    start.set()
    for writer in writers:
        writer.join(60)
        assert writer.exitcode == 0
    stored = FeatureCache(tmp_path).load(payload)
    assert len(stored) == 1 + 3 * 40 and stored["b-7"][0] == "db-7"


def test_features_for_includes_bos(tiny_lm, frame, tmp_path):
    spec = dataclasses.replace(tiny_lm.spec, add_bos=True)
    lm = models.LoadedModel(tiny_lm.model, tiny_lm.tokenizer, spec, tiny_lm.path, models.model_identity(spec), True,
                            budget=tiny_lm.budget)
    assert lm.bos_ids() == [tiny_lm.tokenizer.bos_token_id]
    rows = frame.iloc[:2]
    got = features_for(lm, rows, "arc", cache=FeatureCache(tmp_path), progress=False)
    fmt = prompts.get_format(None, "arc")
    items = [scoring.make_item(lm.tokenizer, fmt.prompt(r), fmt.continuations(r)) for r in rows.to_dict("records")]
    want = plain_hidden_states(lm.model, items, default_layers(lm.model), prefix=lm.bos_ids())
    for i, w in zip(rows["id"], want):
        np.testing.assert_allclose(got[i], w, rtol=1e-4, atol=1e-5)


# --- the experiment runner: probe (and QLoRA) ----------------------------------------------


def probe_spec(lm, train_level="easy", method="probe", n_train=6, options=None, **kwargs) -> ExperimentSpec:
    """An ARC grade spec of the YAML method ``method`` (``methods.build``: n_train examples,
    ``options``, default epochs 20) trained on ``train_level`` ("none": its zero-shot baseline)."""
    kwargs.setdefault("seeds", (0,))
    kwargs.setdefault("test", Selection(test_fraction=0.5, max_per_level=4))
    typed = build(method, n_train, dict({"epochs": 20} if options is None else options))
    if train_level == "none":
        return ExperimentSpec(dataset="arc", measure="grade", method=typed.baseline(), training=None,
                              model=lm.spec.name, **kwargs)
    return ExperimentSpec(dataset="arc", measure="grade", method=typed, training=Training(train_level),
                          model=lm.spec.name, **kwargs)


def run(lm, spec, frame, store, settings=None):
    return Runner(lm, store=store, settings=settings, frames={"arc": frame}, progress=False).run(spec)


def test_probe_options_normalised_and_checked():
    method = build("probe", 6, {"epochs": 20, "layers": [1, 2]})
    assert isinstance(method, Probe) and method.layers == (1, 2) and method.config.epochs == 20
    assert method == build("probe", 6, {"layers": (1, 2), "epochs": 20})  # one method, however written
    assert dict(method.options()) == {"layers": (1, 2), "epochs": 20, "lr": 0.05, "l2": 1.0, "max_grad_norm": 1.0,
                                      "lr_floor": 0.1, "max_refits": 6}
    assert set(methods.option_names("probe")) == {"layers", "epochs", "lr", "l2", "max_grad_norm", "lr_floor",
                                                  "max_refits"}
    with pytest.raises(MethodError) as info:
        build("probe", 6, {"epoch": 20})
    for name in methods.option_names("probe"):
        assert name in str(info.value)
    assert "epoch" in str(info.value)
    with pytest.raises(MethodError, match="none"):  # icl takes no options
        build("icl", 6, {"epochs": 1})
    with pytest.raises(MethodError, match="min_updates"):  # an unknown qlora option: the valid ones listed
        build("qlora", 6, {"rank": 4})
    with pytest.raises(MethodError, match="run setting"):  # micro_batch is a run setting now, not an option
        build("qlora", 6, {"micro_batch": 4})


def test_run_experiment_probe(tiny_lm, frame, tmp_path):
    store = ResultStore(tmp_path)
    spec = probe_spec(tiny_lm, seeds=(0, 1))
    assert spec.method == Probe(6, ProbeConfig(epochs=20))  # only the option given differs from the defaults
    out = run(tiny_lm, spec, frame, store)
    assert len(out) == 2 * 12
    by_id = frame.set_index("id")
    for seed, part in out.groupby("seed"):
        assert part["item_id"].is_unique
        assert part["level"].value_counts().to_dict() == {"easy": 4, "medium": 4, "hard": 4}
    for row in out.to_dict("records"):
        probs = np.asarray(row["probs"])
        assert probs.shape == (4,) and probs.sum() == pytest.approx(1.0)
        assert row["pred"] == int(np.argmax(probs))
        assert row["correct"] == float(row["pred"] == by_id.loc[row["item_id"], "label"])
        examples = list(row["example_ids"])
        assert len(examples) == 6 and row["item_id"] not in examples
        assert (by_id.loc[examples, "grade_level"] == "easy").all()
    assert (out["method"] == "probe").all() and (out["n_shots"] == 6).all()
    assert sorted(p.name for p in (tmp_path / "arc" / "probe").rglob("*.parquet")) == ["seed-0.parquet",
                                                                                      "seed-1.parquet"]
    assert len(list((tmp_path / "arc" / "features").glob("*.npz"))) == 1
    # other options, other results
    assert probe_spec(tiny_lm, options={"epochs": 5}).canonical() != spec.canonical()
    assert key_payload(probe_spec(tiny_lm, options={"epochs": 5}), "m", frame) != key_payload(spec, "m", frame)


def test_zero_shot_shared_across_methods(tiny_lm, frame, tmp_path, counter):
    icl = probe_spec(tiny_lm, "none", method="icl", options=())
    probe = probe_spec(tiny_lm, "none")
    qlora = probe_spec(tiny_lm, "none", method="qlora", options={"min_updates": 2})
    assert icl.method == probe.method == qlora.method == ZeroShot()  # every method's baseline: zero-shot
    assert (key_payload(icl, tiny_lm.identity, frame) == key_payload(probe, tiny_lm.identity, frame)
            == key_payload(qlora, tiny_lm.identity, frame))
    store = ResultStore(tmp_path)
    a = run(tiny_lm, icl, frame, store)
    b = run(tiny_lm, probe, frame, store)
    assert counter == []  # zero-shot needs no features
    assert len(list(tmp_path.rglob("*.parquet"))) == 1
    cols = [c for c in a.columns if c != "method"]
    pd.testing.assert_frame_equal(a[cols], b[cols])
    assert (b["method"] == "zero_shot").all()  # the method column names the method run (its kind)


def test_probe_reuses_cached_features(tiny_lm, frame, tmp_path, counter):
    store = ResultStore(tmp_path)
    first = run(tiny_lm, probe_spec(tiny_lm, seeds=(0,)), frame, store)
    assert counter == [6 + 12]  # 6 training items + 12 test items
    second = run(tiny_lm, probe_spec(tiny_lm, seeds=(1,)), frame, store)
    new = set(second["example_ids"].iloc[0]) - set(first["example_ids"].iloc[0])
    assert sum(counter[1:]) == len(new) < counter[0]
    # the same features whatever the seed: a third run over known items extracts nothing
    run(tiny_lm, probe_spec(tiny_lm, seeds=(0, 1), options={"epochs": 5}), frame, store)
    assert sum(counter[1:]) == len(new)


def test_run_experiment_qlora(tiny_model_dir, frame, tmp_path):
    lm = models.load_model(str(tiny_model_dir))  # only its spec is used: QLoRA loads a fresh base
    spec = probe_spec(lm, method="qlora", n_train=4,
                      options={"quantization": "none", "min_updates": 2, "min_epochs": 1, "max_batch": 4,
                               "target_modules": ["q_proj", "v_proj"]})
    assert spec.method.config.target_modules == ("q_proj", "v_proj")
    assert dict(spec.method.options())["target_modules"] == ("q_proj", "v_proj")
    # keeping adapters is a run setting now (RunSettings.keep_adapters), no longer a method option
    settings = RunSettings(keep_adapters=str(tmp_path / "adapters"))
    out = run(lm, spec, frame, ResultStore(tmp_path), settings)
    assert len(out) == 12 and (out["n_shots"] == 4).all()
    assert all(len(losses) == 2 and np.isfinite(losses).all() for losses in out["train_losses"])
    # one folder per run and seed under keep_adapters, laid out like the store: <dataset>/<method>/<key>/seed-<s>
    key = ResultStore(tmp_path).folder(key_payload(spec, lm.identity, frame)).name
    assert (tmp_path / "adapters" / "arc" / "qlora" / key / "seed-0" / "adapter_config.json").is_file()


def test_features_of_changed_text_are_extracted_again(tiny_lm, frame, tmp_path, counter):
    cache = FeatureCache(tmp_path)
    rows = frame.head(4)
    features_for(tiny_lm, rows, "arc", cache=cache, progress=False)
    assert counter == [4]
    changed = rows.copy()
    changed.loc[changed.index[1], "question"] = changed.loc[changed.index[1], "question"] + " again"
    features_for(tiny_lm, changed, "arc", cache=cache, progress=False)
    assert counter == [4, 1]  # only the changed item, not served stale
    features_for(tiny_lm, changed, "arc", cache=cache, progress=False)
    assert counter == [4, 1]
