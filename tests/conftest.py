"""Fixtures shared by the test suite.

Marks (registered in pyproject.toml):

- ``@pytest.mark.slow``: loads the embedded model, executes a notebook, or takes more than ~5 s;
- ``@pytest.mark.integration``: needs the data mirror (``E2H_MIRROR``) or the network.

Fixtures:

- ``mirror``: the offline data mirror for one test (``Path``), or ``None`` when there is none
  but the network is reachable (the code then loads online). ``E2H_MIRROR`` is used when set;
  otherwise ``../shared/offline-mirror`` beside the project root, exported as ``E2H_MIRROR``
  for the test through ``monkeypatch``. With neither mirror nor network the test is skipped.
- ``make_tiny_tokenizer``: a function ``(add_bos: bool = False) -> PreTrainedTokenizerFast``
  building a small word-level tokenizer (lower-cased, whitespace/punctuation split, a few
  hundred words, special tokens ``<unk> <pad> <s> </s>``). No download, no model package.
- ``tiny_model_dir`` (session): a folder holding a tiny random ``LlamaForCausalLM``
  (hidden 32, 2 layers, 4 heads, 2 kv heads, intermediate 64, seed 0, float32) and the tiny
  tokenizer (which does *not* add BOS, like SmolLM2's), saved with ``save_pretrained``:
  a "local folder" model spec for ``e2h_utils.engine.models.load_model``.
- ``tiny_lm`` (session): ``e2h_utils.engine.models.load_model(str(tiny_model_dir))``, a
  ``LoadedModel`` (unpacks as ``model, tokenizer``; ``.add_bos`` is False). Treat it as
  read-only: it is shared by every test of the session.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `from benchmarks.reference import ...` (the plain reference scorers)
    sys.path.insert(0, str(ROOT))

from e2h_utils import paths  # noqa: E402

PROJECT_ROOT = ROOT
DEFAULT_MIRROR = PROJECT_ROOT.parent / "shared" / "offline-mirror"

# --- order and workers ----------------------------------------------------------------------

# `make test` runs two workers with --dist loadfile: every test module is one unit of work, so a module's
# shared fixtures (the smoke notebooks' one project, which the report test reads whole) stay on one
# worker. (pytest-xdist's loadgroup cannot regroup tests under pytest 9: it rewrites a node id pytest no
# longer reads.) The modules of the longest tests go first, in this order, so neither worker is left
# alone with one of them at the end; xdist's own reordering by test count is off (--no-loadscope-reorder).
LONGEST_FIRST = ("tests/test_dry_run.py", "tests/test_notebooks.py", "tests/test_cluster.py",
                 "tests/test_preflight.py")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        module = item.nodeid.split("::")[0]
        return LONGEST_FIRST.index(module) if module in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: every test keeps its place within its module


# --- data mirror -------------------------------------------------------------------------

_network: bool | None = None


def network_available(host: str = "huggingface.co", port: int = 443, timeout: float = 2.0) -> bool:
    """One cheap TCP connect, remembered for the session."""
    global _network
    if _network is None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                _network = True
        except OSError:
            _network = False
    return _network


@pytest.fixture
def mirror(monkeypatch: pytest.MonkeyPatch) -> Path | None:
    """The offline mirror (``E2H_MIRROR`` set for the test), or None to load online."""
    return use_mirror(monkeypatch)


@pytest.fixture(scope="module")
def mirror_module() -> Path | None:
    """``mirror`` for a whole test module (its fixtures share one project)."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        yield use_mirror(monkeypatch)


def use_mirror(monkeypatch: pytest.MonkeyPatch) -> Path | None:
    value = os.environ.get(paths.MIRROR_ENV)
    if value:
        root = Path(value).expanduser().resolve()
        if not root.is_dir():
            pytest.fail(f"{paths.MIRROR_ENV}={value!r} is not a folder; point it at the offline mirror or unset it")
        return root
    if DEFAULT_MIRROR.is_dir():
        monkeypatch.setenv(paths.MIRROR_ENV, str(DEFAULT_MIRROR))
        return DEFAULT_MIRROR
    if network_available():
        monkeypatch.delenv(paths.MIRROR_ENV, raising=False)
        return None
    pytest.skip(f"no data mirror (set {paths.MIRROR_ENV}) and no network")


# --- tiny model --------------------------------------------------------------------------

SPECIAL_TOKENS = ("<unk>", "<pad>", "<s>", "</s>")

_WORDS = """
the a an of to in on at for from by with and or not no yes is are was were be been being
it its this that these those there here what which who whom whose when where why how
i you he she we they me him her us them my your his our their
capital france paris berlin germany london england rome italy madrid spain city country
answer question choice true false correct wrong option best most least more less
water air fire earth sun moon star planet light heat energy force mass weight gravity
plant plants animal animals cell cells seed seeds leaf leaves root roots tree trees
rock rocks soil sand rain snow ice cloud clouds wind weather season summer winter
spring fall day night year years time hour hours minute minutes second seconds
one two three four five six seven eight nine ten hundred thousand million
number numbers many much some all each every both few half whole part parts
has have had do does did can could will would should may might must
make makes made use uses used help helps need needs get gets got give gives gave
go goes went come comes came see sees saw look looks find finds found take takes took
buy buys bought sell sells sold pay pays paid cost costs spend spends spent
money dollar dollars cent cents price total left more than less then after before
apple apples orange oranges egg eggs book books pen pens box boxes bag bags car cars
dog dogs cat cats bird birds fish man men woman women boy boys girl girls friend friends
school student students teacher class grade test
big small large little long short tall high low hot cold warm cool fast slow
new old good bad same different other first last next
up down out over under into through about between during without
because so if but also only very just
""".split()


def _vocabulary() -> list[str]:
    extra = [str(d) for d in range(10)] + [chr(c) for c in range(ord("a"), ord("z") + 1)]
    extra += list(".,;:!?'\"()-+*/=$%#<>")
    vocab: list[str] = list(SPECIAL_TOKENS)
    for word in _WORDS + extra:
        if word not in vocab:
            vocab.append(word)
    return vocab


def build_tiny_tokenizer(add_bos: bool = False):
    """A small word-level ``PreTrainedTokenizerFast``; with ``add_bos`` it prepends ``<s>``."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(_vocabulary())}
    backend = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    if add_bos:
        bos = vocab["<s>"]
        backend.post_processor = processors.TemplateProcessing(
            single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", bos)]
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>"
    )


@pytest.fixture(scope="session")
def make_tiny_tokenizer():
    """``make_tiny_tokenizer(add_bos=False)`` -> a fresh tiny tokenizer (see module docstring)."""
    return build_tiny_tokenizer


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder with a tiny random Llama checkpoint and its tokenizer (a local model spec)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_tiny_tokenizer(add_bos=False)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(torch.float32).eval()
    folder = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_lm(tiny_model_dir: Path):
    """``load_model(str(tiny_model_dir))``: the tiny model as a ``LoadedModel``."""
    from e2h_utils.engine.models import load_model

    return load_model(str(tiny_model_dir))


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one thread for a module of tiny-tensor tests: avoids OpenMP spin-waiting when
    the 2-core machine is busy. Restores the previous setting afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
