"""Every path the project uses comes from here, never from the working directory.

Environment variables (all optional):

- ``E2H_MIRROR``  offline mirror of the upstream data sources; unset means go online.
- ``E2H_HOME``    project root holding ``results/``, ``outputs/`` and ``.cache/``
                  (default: the checkout this package lives in).
- ``E2H_CACHE``   cache of downloads and converted models (default: ``$E2H_HOME/.cache``).
- ``E2H_RESULTS`` the result store (default: ``$E2H_HOME/results``; the dry run sets it).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

MIRROR_ENV = "E2H_MIRROR"
RESULTS_ENV = "E2H_RESULTS"


def project_root() -> Path:
    """The checkout: holds notebooks/, parameters/, results/, outputs/."""
    home = os.environ.get("E2H_HOME")
    return Path(home).expanduser().resolve() if home else Path(__file__).resolve().parents[1]


def cache_dir() -> Path:
    """Downloads (online mode) and converted models."""
    cache = os.environ.get("E2H_CACHE")
    return Path(cache).expanduser().resolve() if cache else project_root() / ".cache"


def models_cache_dir() -> Path:
    return cache_dir() / "models"


def downloads_cache_dir() -> Path:
    return cache_dir() / "downloads"


def results_dir() -> Path:
    """Item-level results of experiment runs, keyed by the hash of their spec."""
    value = os.environ.get(RESULTS_ENV)
    return Path(value).expanduser().resolve() if value else project_root() / "results"


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def check_profile_name(profile: str) -> str:
    """``profile`` if it is a plain name (letters, digits, ``_ . -``; no path separators, no ``..``): a
    profile names a folder under ``parameters/`` and one under ``outputs/``, never a path elsewhere."""
    if not isinstance(profile, str) or not _NAME.fullmatch(profile) or ".." in profile:
        raise ValueError(f"profile {profile!r} is not a profile name: give the name of a folder under "
                         f"{project_root() / 'parameters'} (letters, digits, '_', '.', '-'; no '/' or '..')")
    return profile


def lock_file(profile: str) -> Path:
    """The lock of one profile's runs (``make reproduce``, ``make report``): outside ``outputs/``, so
    ``make clean`` during a run cannot delete it, and outside ``.cache/`` (``make clean-all``)."""
    return project_root() / ".locks" / f"{check_profile_name(profile)}.lock"


def outputs_dir(profile: str) -> Path:
    """Executed notebooks, figures and tables of one parameter profile."""
    return project_root() / "outputs" / check_profile_name(profile)


def notebooks_dir() -> Path:
    return project_root() / "notebooks"


def parameters_dir() -> Path:
    return project_root() / "parameters"


def mirror_root() -> Path | None:
    """The offline mirror named by ``E2H_MIRROR``, or None to go online.

    A relative value is resolved against the project root (not the working directory), so the
    README's ``E2H_MIRROR=../shared/offline-mirror`` means the same from ``make``, from
    ``notebooks/`` in JupyterLab and from a papermill kernel. A set but missing folder is an
    error rather than a silent switch to the network.
    """
    value = os.environ.get(MIRROR_ENV)
    if not value:
        return None
    given = Path(value).expanduser()
    root = (given if given.is_absolute() else project_root() / given).resolve()
    if not root.is_dir():
        how = "" if given.is_absolute() else f" (a relative path, resolved against the project root {project_root()})"
        raise FileNotFoundError(
            f"{MIRROR_ENV}={value!r}{how} is {root}, which is not a folder. Point it at the offline mirror "
            f"with an absolute path (e.g. export {MIRROR_ENV}=$(realpath ../shared/offline-mirror) from the "
            f"project root) or unset it to load from the network."
        )
    return root
