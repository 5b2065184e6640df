"""A profile: its folder of parameter files (``parameters/<profile>/``), the notebooks they
parameterize (``Job``: one notebook under one profile, with its output folders), and how a
notebook's YAML is read (duplicate keys refused, ``include: _shared.yaml``). ``reproduce``, the
plan and the report read profiles here, so none of them imports another for it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import yaml

from e2h_utils import paths


@dataclass(frozen=True)
class Job:
    """One notebook to execute under one profile."""

    name: str
    notebook: Path
    yaml_path: Path
    profile: str
    outputs: str = ""  # the folder under outputs/ (default: the profile; a dry run: <profile>-dry-run)

    @property
    def folder(self) -> Path:
        return paths.outputs_dir(self.outputs or self.profile)

    @property
    def output_dir(self) -> Path:
        """The good output: ``outputs/<profile>/<name>/``."""
        return self.folder / self.name

    @property
    def partial_dir(self) -> Path:
        """Where a run in progress writes: ``outputs/<profile>/.<name>.partial/``."""
        return self.folder / f".{self.name}.partial"

    @property
    def failed_dir(self) -> Path:
        """The last failed attempt: ``outputs/<profile>/<name>.FAILED/``."""
        return self.folder / f"{self.name}.FAILED"


def profiles() -> list[str]:
    """The profiles that exist: the folders under ``parameters/``."""
    root = paths.parameters_dir()
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def _profile_dir(profile: str) -> Path:
    folder = paths.parameters_dir() / paths.check_profile_name(profile)
    if not profile or not folder.is_dir():
        home = os.environ.get("E2H_HOME")
        hint = (f" (E2H_HOME={home} sets the project folder{'' if Path(home).is_dir() else ', and it does not exist'}: "
                "unset it or point it at the project)" if home and not paths.parameters_dir().is_dir() else "")
        raise ValueError(
            f"unknown profile {profile!r}: no folder {folder}. "
            f"Profiles: {', '.join(profiles()) or '(none)'}{hint}"
        )
    return folder


def scan(profile: str) -> tuple[list[Job], list[str]]:
    """(jobs, names of notebooks without a YAML for ``profile``), both sorted by name."""
    folder = _profile_dir(profile)
    notebooks = {p.stem: p for p in paths.notebooks_dir().glob("*.ipynb")}
    # files starting with "_" are not a notebook's parameters (_run.yaml: e2h_utils.engine.runtime)
    yamls = {p.stem: p for p in list(folder.glob("*.yaml")) + list(folder.glob("*.yml")) if not p.name.startswith("_")}
    orphans = sorted(str(yamls[name]) for name in yamls.keys() - notebooks.keys())
    if orphans:
        raise FileNotFoundError(
            f"parameter file(s) without a notebook in {paths.notebooks_dir()}: {', '.join(orphans)}"
        )
    jobs = [Job(name, notebooks[name], yamls[name], profile) for name in sorted(yamls)]
    return jobs, sorted(notebooks.keys() - yamls.keys())


def discover(profile: str) -> list[Job]:
    """One job per notebook with a ``parameters/<profile>/<name>.yaml``, sorted by name.

    A notebook without a YAML is skipped with a notice; a YAML without a notebook is an error.
    """
    jobs, unparameterised = scan(profile)
    for name in unparameterised:
        print(f"{name}: skipped (no parameters/{profile}/{name}.yaml)")
    return jobs


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice is an error, not "last one wins"."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first on line {seen[key] + 1})", key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def load_yaml(yaml_path: Path) -> dict:
    """The flat parameter mapping of a YAML file. Syntax errors and duplicate keys are
    ``ValueError``s naming the file and line; an empty file is an error too (a profile's YAML
    sets its notebook's parameters, and an empty one is almost always a mistake)."""
    try:
        text = Path(yaml_path).read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        line = Path(yaml_path).read_bytes()[:error.start].count(b"\n") + 1
        raise ValueError(f"{yaml_path}, line {line}: not UTF-8 text (byte {error.object[error.start]:#x}); "
                         "save the file as UTF-8") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
        where = f"{yaml_path}, line {mark.line + 1}" if mark is not None else str(yaml_path)
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ValueError(f"{where}: invalid YAML: {problem}. Fix that line (YAML needs 'key: value' "
                         "with consistent indentation)") from None
    if data is None:
        raise ValueError(f"{yaml_path} is empty: give the notebook's parameters as 'name: value' lines "
                         "(see the other profiles' YAML of the same notebook)")
    if not isinstance(data, dict):
        raise ValueError(f"{yaml_path}: expected a mapping of parameter name -> value, got {type(data).__name__}")
    return data


INCLUDE = "include"  # `include: _shared.yaml` in a notebook's YAML: the profile's shared settings
RESERVED_FILES = ("_run.yaml",)  # a profile's run settings (e2h_utils.engine.runtime), never included


def included_file(yaml_path: Path) -> Path | None:
    """The shared file a notebook's YAML includes (a ``_``-file of the same profile folder), if any."""
    name = load_yaml(yaml_path).get(INCLUDE)
    if name is None:
        return None
    if (not isinstance(name, str) or "/" in name or not name.startswith("_") or name in RESERVED_FILES
            or not name.endswith((".yaml", ".yml"))):
        raise ValueError(f"{yaml_path}: include: give a shared file of the same folder whose name starts with "
                         f"'_' (e.g. include: _shared.yaml; not {', '.join(RESERVED_FILES)}), not {name!r}")
    path = Path(yaml_path).parent / name
    if not path.is_file():
        raise FileNotFoundError(f"{yaml_path}: include: {path} does not exist (create it, or remove the "
                                "include line)")
    if INCLUDE in load_yaml(path):
        raise ValueError(f"{path}: an included file cannot include another one (one level, like a profile)")
    return path


def parameter_files(yaml_path: Path) -> list[Path]:
    """The files a notebook's parameters come from: its YAML and the shared file it includes."""
    shared = included_file(yaml_path)
    return [Path(yaml_path)] + ([shared] if shared else [])


def value_origins(yaml_path: Path, declared: Iterable[str] | None = None) -> dict[str, Path]:
    """The file each value of ``load_parameters(yaml_path, declared)`` comes from: the notebook's YAML
    where it sets the key, else the shared file it includes (so an error names the file to fix)."""
    shared_path = included_file(yaml_path)
    origins: dict[str, Path] = {}
    if shared_path is not None:
        names = None if declared is None else set(declared)
        origins = {key: shared_path for key in load_yaml(shared_path) if names is None or key in names}
    origins.update({key: yaml_path for key in load_yaml(yaml_path) if key != INCLUDE})
    return origins


def load_parameters(yaml_path: Path, declared: Iterable[str] | None = None) -> dict:
    """A notebook's parameters under a profile: the values of its YAML over those of the shared
    file it includes (``include: _shared.yaml``, as lm-evaluation-harness task files include a
    base). Of the shared values only those the notebook ``declared`` are taken (all when None):
    the shared file holds the settings several notebooks use (the model, k, the bootstrap), so a
    setting lives once and results are shared between notebooks because their settings agree."""
    values = load_yaml(yaml_path)
    shared_path = included_file(yaml_path)
    values.pop(INCLUDE, None)
    if shared_path is None:
        return values
    shared = load_yaml(shared_path)
    if declared is not None:
        declared = set(declared)
        shared = {key: value for key, value in shared.items() if key in declared}
    return {**shared, **values}
