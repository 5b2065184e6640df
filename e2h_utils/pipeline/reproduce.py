"""Execute the notebooks of one parameter profile with papermill: ``make reproduce``.

Layout (see ``paths``)::

    notebooks/<name>.ipynb                source notebook, with a cell tagged ``parameters``
    parameters/<profile>/<name>.yaml      its parameters under that profile (flat mapping)
    outputs/<profile>/<name>/             executed <name>.ipynb, figures, tables, fingerprint.json
    outputs/<profile>/<name>.FAILED/      the last failed attempt, when there is one

Besides the YAML values every notebook receives ``profile`` and ``output_dir`` (the absolute
folder it writes its figures and tables into); the YAML files must not set those two.

A notebook runs into ``outputs/<profile>/.<name>.partial/`` and is swapped into place only
when it succeeds, so ``outputs/<profile>/<name>/`` always holds a complete run. A job is
skipped as "up to date" when the fingerprint of its inputs (notebook, YAML, profile, package
source, whether ``E2H_MIRROR`` is set) matches the one stored with its output.

Usage::

    python -m e2h_utils.pipeline.reproduce --profile embedded [--only NAME ...] [--force] [--list] [--kernel e2h]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import shutil
import sys
import time
import traceback
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator


from e2h_utils import atomic, paths
from e2h_utils.data import datasets
from e2h_utils.pipeline import validate
from e2h_utils.pipeline.notebooks import notebook_defaults
from e2h_utils.pipeline.profiles import (Job, included_file, load_parameters,
                                         load_yaml, parameter_files, scan, value_origins)

DEFAULT_KERNEL = "e2h"
INJECTED = ("profile", "output_dir")  # parameters the runner sets itself
FINGERPRINT_FILE = "fingerprint.json"

# Statuses returned by ``run`` (and printed by the CLI).
RAN = "ran"
UP_TO_DATE = "up to date"
FAILED = "failed"
SKIPPED = "skipped"  # a notebook without a YAML for the profile


def check_shared_files(jobs: list["Job"], declared: dict[str, list[str]]) -> list[str]:
    """Problems with the shared files the jobs include: a key that no notebook including it declares."""
    users: dict[Path, set[str]] = {}
    for job in jobs:
        shared = included_file(job.yaml_path)
        if shared is not None:
            users.setdefault(shared, set()).update(declared[job.name])
    problems = []
    for shared, names in sorted(users.items()):
        unknown = sorted(str(key) for key in load_yaml(shared) if key not in names)
        if unknown:
            problems.append(f"{shared}: {', '.join(unknown)}: no notebook that includes this file has such a "
                            f"parameter (a typo?). Valid: {', '.join(sorted(names - set(INJECTED)))}")
    return problems


def notebook_parameter_names(notebook: Path) -> list[str]:
    import papermill

    try:
        return list(papermill.inspect_notebook(str(notebook)))
    except Exception as error:  # noqa: BLE001 - nbformat raises several types for a damaged file
        raise ValueError(f"{notebook} cannot be read as a notebook ({type(error).__name__}: "
                         f"{str(error).splitlines()[0][:120] if str(error) else ''}): restore it (git checkout -- "
                         f"{notebook.name} in notebooks/) or fix its JSON") from None


def _with_defaults(job: Job, values: dict) -> dict:
    """A notebook's values as it will run: its parameters cell's literals, then the YAML's values."""
    defaults = {k: v for k, v in notebook_defaults(job.notebook).items() if k not in INJECTED}
    return {**defaults, **values}


def check_parameters(notebook: Path, yaml_path: Path) -> dict:
    """Load ``yaml_path`` and check its keys against the parameters cell of ``notebook``.

    Raises ``ValueError`` for a key the notebook does not declare (a typo must not be
    ignored), for ``profile``/``output_dir`` in the YAML (the runner sets them), and for a
    notebook that does not declare ``profile`` and ``output_dir``.
    """
    valid = notebook_parameter_names(notebook)
    values = load_parameters(yaml_path, declared=valid)
    reserved = sorted(set(values) & set(INJECTED))
    if reserved:
        raise ValueError(f"{yaml_path}: must not set {', '.join(reserved)} (the runner injects them)")
    unknown = sorted(str(key) for key in values if key not in valid)
    if unknown:
        raise ValueError(
            f"{yaml_path}: unknown parameter(s) {', '.join(unknown)} for {notebook}. "
            f"Valid parameters: {', '.join(valid) or '(none: is a cell tagged `parameters`?)'}"
        )
    missing = [name for name in INJECTED if name not in valid]
    if missing:
        raise ValueError(f"{notebook}: its parameters cell must declare {', '.join(missing)}")
    return values


# --- fingerprints -------------------------------------------------------------------------


def package_digest() -> str:
    """sha256 of the package source: every ``e2h_utils/**/*.py`` (relative path + bytes)."""
    import e2h_utils

    root = Path(e2h_utils.__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        _update(digest, path.relative_to(root).as_posix().encode(), path.read_bytes())
    return digest.hexdigest()


def _update(digest, *parts: bytes) -> None:
    """Feed length-prefixed parts, so that different splits never hash alike."""
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)


def data_digest() -> str:
    """The data the notebooks read: a digest of the mirror files' content, or ``online`` (the
    pinned revisions are in the package source)."""
    from e2h_utils.data import sources

    files = datasets.mirror_files()
    return sources.mirror_digest(files) if files else "online"


def fingerprint(job: Job, package: str | None = None, data: str | None = None) -> str:
    """sha256 over the notebook, the YAML, the profile, the package source and the data."""
    digest = hashlib.sha256()
    _update(
        digest,
        job.notebook.read_bytes(),
        *(path.read_bytes() for path in parameter_files(job.yaml_path)),
        job.profile.encode(),
        (package or package_digest()).encode(),
        (data or data_digest()).encode(),
    )
    return digest.hexdigest()


def stored_fingerprint(job: Job) -> str | None:
    """The fingerprint saved with the job's good output, if any."""
    try:
        return json.loads((job.output_dir / FINGERPRINT_FILE).read_text())["fingerprint"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def is_up_to_date(job: Job, package: str | None = None, data: str | None = None) -> bool:
    return stored_fingerprint(job) == fingerprint(job, package, data)


# --- execution ----------------------------------------------------------------------------


def check_kernel(kernel: str) -> None:
    """Fail early, with the fix, when the Jupyter kernel is not installed."""
    from jupyter_client.kernelspec import KernelSpecManager

    found = KernelSpecManager().find_kernel_specs()
    if kernel not in found:
        raise RuntimeError(
            f"Jupyter kernel {kernel!r} is not installed (found: {', '.join(sorted(found)) or 'none'}); "
            "run `make setup`"
        )


def _remove(folder: Path) -> None:
    if folder.exists():
        shutil.rmtree(folder, ignore_errors=True)


def _swap_in(new: Path, target: Path) -> None:
    """Replace folder ``target`` by folder ``new``: rename old away, rename new in, delete old."""
    old = target.with_name(f".{target.name}.old")
    _remove(old)
    if target.exists():
        os.rename(target, old)
    os.rename(new, target)
    _remove(old)


class RunInterrupted(Exception):
    """Ctrl-C during a run: what was kept and how to resume, in one line."""


@contextlib.contextmanager
def profile_lock(profile: str) -> Iterator[Path]:
    """One run of a profile at a time: ``.locks/<profile>.lock`` (``paths.lock_file``), held by the running
    process (the lock goes with the process, so a killed run never leaves a stale one); ``make reproduce``
    and ``make report`` both take it."""
    import fcntl

    path = paths.lock_file(profile)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+", encoding="utf-8")
    except OSError as error:  # .locks is a file, not writable, ...
        raise RuntimeError(f"cannot take the run lock {path} ({error.strerror or error}): {path.parent} must be a "
                           "writable folder (remove or rename whatever is there)") from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            raise RuntimeError(
                f"another run of profile {profile!r} (pid {holder}) holds {path}: wait for it to finish, or stop "
                f"it (kill {holder}) and run again. Two runs of one profile would overwrite each other's output."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield path
    finally:
        handle.close()  # releases the lock


def _running_cell(notebook: Path) -> str:
    """The cell the kernel was running in papermill's saved notebook, as "cell N (first line)":
    the one marked running, else the last one that started (when the kernel dies papermill marks
    the cell it was running "completed", and the cells after it never started)."""
    try:
        cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError):
        return "a cell"
    marks = [cell.get("metadata", {}).get("papermill", {}) for cell in cells]
    running = [i for i, mark in enumerate(marks) if mark.get("status") == "running"]
    started = [i for i, mark in enumerate(marks) if mark.get("start_time") and cells[i].get("cell_type") == "code"]
    if not (running or started):
        return "a cell"
    number = (running or started)[-1]
    first = "".join(cells[number].get("source", "")).strip().splitlines()
    return f"cell {number + 1} ({first[0][:60] if first else ''})"


def failure_summary(exc: BaseException, notebook: Path | None = None) -> str:
    """One line: the notebook's own exception type and message (which names the model, file or
    parameter), or what killed the kernel."""
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        lines = [line for line in str(exc.evalue or "").strip().splitlines() if line.strip()]
        return f"{exc.ename}: {lines[-1] if lines else ''} (cell {exc.exec_count})".strip()
    if type(exc).__name__ == "DeadKernelError":
        where = _running_cell(notebook) if notebook is not None else "a cell"
        return (f"the kernel died while running {where}; most often it ran out of memory (a Linux "
                "out-of-memory kill): free memory or lower the profile's sizes, then run again (finished "
                "results are kept)")
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1] if text else ''}".strip()


# --- Ctrl-C ------------------------------------------------------------------------------------

GRACE_S = 20  # after Ctrl-C, how long papermill may take to stop the kernel before we do it ourselves
_ACTIVE: dict = {}  # the notebook being executed: "partial" folder, "kernel" pid, "message"


def _force_exit() -> None:
    """Finish a Ctrl-C that papermill did not finish within GRACE_S: kill the kernel, remove the
    partial output, print the one line, exit 130 (stored results are whole files: nothing is lost)."""
    import signal

    if _ACTIVE.get("kernel"):
        try:
            os.kill(_ACTIVE["kernel"], signal.SIGKILL)
        except OSError:
            pass
    if _ACTIVE.get("partial"):
        shutil.rmtree(_ACTIVE["partial"], ignore_errors=True)
    print(_ACTIVE.get("message", "interrupted; every stored result is kept: run the same command again to resume"),
          file=sys.stderr, flush=True)
    os._exit(130)


def _on_sigint(signum, frame) -> None:  # noqa: ARG001
    """Ctrl-C (and SIGTERM, what ``kill`` sends): unwind as KeyboardInterrupt (papermill stops the kernel,
    ``execute`` removes the partial output); a watchdog finishes the job if that hangs, and a second Ctrl-C at once."""
    import threading

    if _ACTIVE.get("interrupted"):
        _force_exit()
    _ACTIVE["interrupted"] = True
    watchdog = threading.Timer(GRACE_S, _force_exit)
    watchdog.daemon = True
    watchdog.start()
    raise KeyboardInterrupt


def _kernel_manager(log_path: Path):
    """A kernel manager whose kernel process writes its own log lines (start-up warnings, the
    tracebacks of a kernel shut down mid-message on Ctrl-C) to ``log_path``, not the console;
    what the notebook prints still goes into the notebook."""
    from jupyter_client.manager import AsyncKernelManager

    class QuietKernelManager(AsyncKernelManager):
        async def _async_launch_kernel(self, kernel_cmd, **kw):
            with open(log_path, "ab") as log:  # the kernel process keeps its own copy of the handle
                kw["stdout"] = kw["stderr"] = log
                launched = await super()._async_launch_kernel(kernel_cmd, **kw)
            _ACTIVE["kernel"] = getattr(getattr(self, "provisioner", None), "pid", None)  # for _force_exit
            return launched

    return QuietKernelManager


def _finalize_paths(notebook: Path, partial: Path, final: Path) -> None:
    """The executed notebook names the folder it now lies in, not the partial one it ran in."""
    text = notebook.read_text(encoding="utf-8")
    notebook.write_text(text.replace(str(partial), str(final)), encoding="utf-8")


def execute(job: Job, parameters: dict, kernel: str = DEFAULT_KERNEL, package: str | None = None,
            data: str | None = None, progress: bool = True) -> None:
    """Run the job's notebook into its partial folder and swap it into place on success.

    On failure the attempt moves to ``<name>.FAILED/`` (with ``error.txt``), the previous good
    output stays untouched, and the exception propagates. Ctrl-C removes the partial folder and
    raises ``RunInterrupted``.
    """
    import papermill

    stamp = fingerprint(job, package, data)  # of the inputs as they were when the run started
    _remove(job.partial_dir)
    job.partial_dir.mkdir(parents=True)
    executed = job.partial_dir / f"{job.name}.ipynb"
    started = time.monotonic()
    try:
        papermill.execute_notebook(
            str(job.notebook),
            str(executed),
            parameters={**parameters, "profile": job.profile, "output_dir": str(job.partial_dir)},
            kernel_name=kernel,
            language="python",
            cwd=str(paths.project_root()),
            progress_bar=progress,  # cell i/n and elapsed time on the console
            log_output=False,
            report_mode=False,
            extra_arguments=["--IPKernelApp.log_level=ERROR"],  # no "running over TCP" warning per kernel
            kernel_manager_class=_kernel_manager(job.partial_dir / "kernel.log"),
        )
    except KeyboardInterrupt:
        _remove(job.partial_dir)
        raise RunInterrupted(job.name) from None
    except Exception as exc:
        summary = failure_summary(exc, executed)
        try:
            (job.partial_dir / "error.txt").write_text(summary + "\n\n" + traceback.format_exc())
            _swap_in(job.partial_dir, job.failed_dir)
        except OSError as write_error:  # disk full, read-only: keep nothing half-written
            _remove(job.partial_dir)
            raise RuntimeError(f"{summary}; the attempt could not be kept "
                               f"({write_error.strerror or write_error})") from exc
        raise
    warned = package_warnings(executed)
    for line in warned:  # on the console too, not only inside the executed notebook
        print(f"{job.name}: {line}")
    record = {
        "fingerprint": stamp,
        "warnings": warned,
        "profile": job.profile,
        "notebook": job.notebook.name,
        "parameters": parameters,
        "kernel": kernel,
        "mirror": bool(os.environ.get(paths.MIRROR_ENV)),
        "data": data or data_digest(),
        "seconds": round(time.monotonic() - started, 1),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    _finalize_paths(executed, job.partial_dir, job.output_dir)
    (job.partial_dir / "kernel.log").unlink(missing_ok=True)  # kept only with a failed attempt
    (job.partial_dir / FINGERPRINT_FILE).write_text(json.dumps(record, indent=2, default=str) + "\n")
    _swap_in(job.partial_dir, job.output_dir)
    _remove(job.failed_dir)


_WARNING = re.compile(r"e2h_utils/[\w/]+\.py:\d+: (\w*Warning): (.+)$")


def package_warnings(notebook: Path, limit: int = 20) -> list[str]:
    """The warnings the package raised while a notebook ran (from its cells' stderr), once each, at
    most ``limit``: a run that did something other than asked (fewer in-context examples fit the
    context than the YAML gives) says so on the console, not only inside the executed notebook."""
    import nbformat

    found: list[str] = []
    for cell in nbformat.read(str(notebook), as_version=4).cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") != "stream" or output.get("name") != "stderr":
                continue
            for line in str(output.get("text", "")).splitlines():
                match = _WARNING.search(line)
                if match and f"{match.group(1)}: {match.group(2)}" not in found:
                    found.append(f"{match.group(1)}: {match.group(2)}")
    return found[:limit] + ([f"... and {len(found) - limit} more warnings in the executed notebook"]
                            if len(found) > limit else [])


def _select(profile: str, only: list[str] | None) -> tuple[list[Job], list[str]]:
    """Jobs and unparameterised notebooks of ``profile``, restricted to the names in ``only``."""
    jobs, unparameterised = scan(profile)
    if not only:
        return jobs, unparameterised
    known = {job.name for job in jobs}
    unknown = sorted(set(only) - known)
    if unknown:
        raise ValueError(
            f"--only {', '.join(unknown)}: no such notebook with parameters for profile {profile!r}. "
            f"Jobs: {', '.join(sorted(known)) or '(none)'}"
        )
    return [job for job in jobs if job.name in only], []



@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """``os.environ`` with ``values`` set (the kernels papermill starts inherit it), restored after."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_environment(profile: str, dry_run: bool = False) -> dict[str, str]:
    """What the notebooks' kernels need besides the parameters: the profile's run settings
    (``parameters/<profile>/_run.yaml``, checked here) and, for a dry run, its stand-ins."""
    from e2h_utils.engine import runtime
    from e2h_utils.pipeline import dry_run as dry

    runtime.for_profile(profile)  # a bad _run.yaml stops the run before any notebook starts
    env = {}
    if runtime.profile_file(profile).is_file():
        env[runtime.SETTINGS_ENV] = str(runtime.profile_file(profile))
    if dry_run:
        env.update(dry.environment(profile))
    return env


def run(
    profile: str, only: list[str] | None = None, force: bool = False, kernel: str = DEFAULT_KERNEL,
    progress: bool = True, dry_run: bool = False, executor: str | None = None,
) -> dict[str, str]:
    """Execute the notebooks of ``profile`` (all, or those named in ``only``).

    Returns ``{name: status}`` with status ``"ran"``, ``"up to date"``, ``"failed"`` or
    ``"skipped"`` (no YAML for the profile). Every parameter file is checked, keys and values,
    before anything runs; a bad one raises ``ValueError`` naming the file, key and valid values.
    A failed notebook does not stop the others. One run per profile at a time (``profile_lock``).

    ``dry_run``: the profile's notebooks on a tiny random stand-in model with capped sizes, into
    ``outputs/<profile>-dry-run/`` (``e2h_utils.pipeline.dry_run``). ``executor`` (default: the profile's
    ``_run.yaml``): ``local`` or ``slurm`` computes the plan's runs as submitit jobs first
    (``e2h_utils.pipeline.cluster``); the notebooks then read their results from the store.
    """
    from e2h_utils.pipeline import dry_run as dry

    jobs, unparameterised = _select(profile, only)
    if dry_run:
        jobs = [replace(job, outputs=dry.outputs_name(profile)) for job in jobs]
    statuses = {name: SKIPPED for name in unparameterised}
    for name in unparameterised:
        print(f"{name}: skipped (no parameters/{profile}/{name}.yaml)")
    mirror = datasets.check_mirror()  # every source file as pinned, before the plan reads any
    if mirror:
        raise FileNotFoundError(f"{len(mirror)} problem(s) with the offline mirror; nothing was run:\n  "
                                + "\n  ".join(mirror))
    parameters = {job.name: check_parameters(job.notebook, job.yaml_path) for job in jobs}
    every = scan(profile)[0]  # a shared file serves every notebook of the profile, not only those run now
    problems = check_shared_files(every, {job.name: notebook_parameter_names(job.notebook) for job in every})
    problems += [p for job in jobs for p in validate.check_values(
        _with_defaults(job, parameters[job.name]), job.yaml_path, job.name,
        value_origins(job.yaml_path, notebook_parameter_names(job.notebook)))]
    if not dry_run:  # a dry run loads stand-ins, never a Hub model
        problems += [p for job in jobs for p in validate.unavailable_models(
            _with_defaults(job, parameters[job.name]), job.yaml_path,
            value_origins(job.yaml_path, notebook_parameter_names(job.notebook)))]
    problems = list(dict.fromkeys(problems))  # a shared file's problem once, not once per notebook that reads it
    if problems:
        raise ValueError(f"{len(problems)} problem(s) in the parameters of profile {profile!r}; nothing was run:\n  "
                         + "\n  ".join(problems))
    if dry_run:
        parameters = {name: dry.cap_parameters(values) for name, values in parameters.items()}
    check_kernel(kernel)
    outputs = paths.outputs_dir(dry.outputs_name(profile) if dry_run else profile)
    atomic.check_writable(outputs)
    atomic.check_writable(paths.cache_dir(), "E2H_CACHE")  # the converted model and downloads
    env = run_environment(profile, dry_run)
    with _environment(env), profile_lock(dry.outputs_name(profile) if dry_run else profile):
        atomic.check_writable(paths.results_dir(), paths.RESULTS_ENV)
        kind = executor or _executor_kind(profile)
        if kind != "inprocess":
            from e2h_utils.pipeline import cluster

            cluster.run_plan(profile, kind, notebooks=[job.name for job in jobs], dry_run=dry_run)
        return _run_jobs(jobs, parameters, statuses, force, kernel, progress, outputs)


def _executor_kind(profile: str) -> str:
    from e2h_utils.engine import runtime

    return runtime.for_profile(profile).executor.kind


def _run_jobs(jobs: list[Job], parameters: dict, statuses: dict, force: bool, kernel: str, progress: bool,
              outputs: Path) -> dict[str, str]:
    """Execute each job unless up to date (the loop of ``run``)."""
    package, data = package_digest(), data_digest()
    atomic.clean_stale(outputs)
    for job in jobs:
        if not force and is_up_to_date(job, package, data):
            statuses[job.name] = UP_TO_DATE
            print(f"{job.name}: up to date")
            continue
        print(f"{job.name}: running ...", flush=True)
        started = time.monotonic()
        kept = [name for name, status in statuses.items() if status in (RAN, UP_TO_DATE)]
        _ACTIVE.update(partial=job.partial_dir, kernel=None, message=(
            f"interrupted during {job.name}; its partial output was removed, every stored result and the finished "
            f"notebooks ({', '.join(kept) or 'none'}) are kept: run the same command again to resume (nothing "
            "finished is recomputed)"))
        try:
            execute(job, parameters[job.name], kernel, package, data, progress=progress)
        except RunInterrupted:
            raise RunInterrupted(_ACTIVE["message"]) from None
        except Exception as exc:  # noqa: BLE001 - report it and go on with the next notebook
            statuses[job.name] = FAILED
            where = f"; see {job.failed_dir}" if job.failed_dir.exists() else ""
            print(f"{job.name}: FAILED ({failure_summary(exc, job.failed_dir / f'{job.name}.ipynb')}){where}",
                  flush=True)
            continue
        statuses[job.name] = RAN
        print(f"{job.name}: ran in {time.monotonic() - started:.1f} s", flush=True)
    return dict(sorted(statuses.items()))


def list_jobs(profile: str, only: list[str] | None = None) -> dict[str, str]:
    """``{name: state}`` without running anything: up to date / out of date / not run / skipped."""
    jobs, unparameterised = _select(profile, only)
    states = {name: SKIPPED for name in unparameterised}
    package, data = package_digest(), data_digest()
    for job in jobs:
        stored = stored_fingerprint(job)
        state = ("not run" if stored is None else UP_TO_DATE if stored == fingerprint(job, package, data)
                 else "out of date")
        if job.failed_dir.exists():
            state += f" (last attempt FAILED: {job.failed_dir})"
        states[job.name] = state
    return dict(sorted(states.items()))


# --- command line -------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """The CLI; returns 0 on success, 1 when a notebook failed, 2 on a configuration error."""
    parser = argparse.ArgumentParser(prog="python -m e2h_utils.pipeline.reproduce", description=__doc__.split("\n")[0])
    parser.add_argument("--profile", required=True, help="parameter profile: a folder under parameters/")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these notebooks")
    parser.add_argument("--force", action="store_true", help="rerun notebooks that are up to date")
    parser.add_argument("--list", action="store_true", help="list the jobs and their state, run nothing")
    parser.add_argument("--kernel", default=DEFAULT_KERNEL, help=f"Jupyter kernel (default {DEFAULT_KERNEL})")
    parser.add_argument("--dry-run", action="store_true",
                        help="on a tiny random stand-in model with capped sizes (e2h_utils.pipeline.dry_run)")
    parser.add_argument("--executor", choices=("inprocess", "local", "slurm"), default=None,
                        help="compute the plan's runs as submitit jobs first (default: the profile's _run.yaml)")
    args = parser.parse_args(argv)
    import signal

    if argv is None and signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # the command line
        signal.signal(signal.SIGINT, _on_sigint)
    if argv is None and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:  # `kill PID`, as the lock message says
        signal.signal(signal.SIGTERM, _on_sigint)
    try:
        if args.list:
            for name, state in list_jobs(args.profile, args.only).items():
                print(f"{name}: {state}")
            return 0
        statuses = run(args.profile, only=args.only, force=args.force, kernel=args.kernel, dry_run=args.dry_run,
                       executor=args.executor or None)
    except RunInterrupted as exc:
        print(f"{exc}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("interrupted before any notebook started; nothing was changed", file=sys.stderr)
        return 130
    except (ValueError, OSError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    failed = [name for name, status in statuses.items() if status == FAILED]
    if failed:
        where = args.profile + ("-dry-run" if args.dry_run else "")
        print(f"FAILED ({len(failed)}): {', '.join(failed)}; see outputs/{where}/<name>.FAILED/", file=sys.stderr)
        return 1
    print(f"done: {len(statuses)} notebook(s) under profile {args.profile!r}, none failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
