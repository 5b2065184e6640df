"""Tests of the papermill runner ``e2h_utils.pipeline.reproduce`` on tiny notebooks in a temporary project.

The project root is pointed at ``tmp_path`` through ``E2H_HOME``; the tests that execute a
notebook (a few seconds each, through the ``e2h`` kernel) are marked slow.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import pytest

from e2h_utils import atomic, paths
from e2h_utils.pipeline import profiles, reproduce

REAL_ROOT = Path(__file__).resolve().parents[1]

BODY = """\
from pathlib import Path
if value == 13:
    raise RuntimeError("unlucky value")
Path(output_dir, "value.txt").write_text(f"{profile}:{value}")
"""


def write_notebook(path: Path, body: str = BODY,
                   parameters: str = 'profile = "x"\noutput_dir = "."\nvalue = 1') -> Path:
    """A notebook with a cell tagged ``parameters`` and one cell of ``body``."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "e2h", "language": "python", "display_name": "Python (e2h)"}
    cell = nbformat.v4.new_code_cell(parameters)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, nbformat.v4.new_code_cell(body)]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary project root with notebooks/demo.ipynb and parameters/{smoke,paper}/."""
    monkeypatch.setenv("E2H_HOME", str(tmp_path))
    monkeypatch.delenv(paths.MIRROR_ENV, raising=False)
    # The package source is being edited by others while tests run: pin its digest.
    monkeypatch.setattr(reproduce, "package_digest", lambda: "pinned")
    write_notebook(tmp_path / "notebooks" / "demo.ipynb")
    (tmp_path / "parameters" / "smoke").mkdir(parents=True)
    (tmp_path / "parameters" / "paper").mkdir(parents=True)
    return tmp_path


def set_yaml(project: Path, name: str, text: str, profile: str = "smoke") -> Path:
    path = project / "parameters" / profile / f"{name}.yaml"
    path.write_text(text)
    return path


# --- fast: discovery, parameters, fingerprints ---------------------------------------------


def test_yaml_typo_lists_valid_parameters(project: Path) -> None:
    yaml_path = set_yaml(project, "demo", "# a typo\nvalu: 2\n")
    with pytest.raises(ValueError) as err:
        reproduce.check_parameters(project / "notebooks" / "demo.ipynb", yaml_path)
    message = str(err.value)
    assert "valu" in message and "profile, output_dir, value" in message


def test_yaml_must_not_set_injected_parameters(project: Path) -> None:
    yaml_path = set_yaml(project, "demo", "output_dir: /tmp/elsewhere\n")
    with pytest.raises(ValueError, match="output_dir"):
        reproduce.check_parameters(project / "notebooks" / "demo.ipynb", yaml_path)


def test_yaml_empty_or_list_is_an_error(project: Path) -> None:
    notebook = project / "notebooks" / "demo.ipynb"
    with pytest.raises(ValueError, match=r"demo\.yaml is empty"):  # an empty profile YAML is a mistake, not {}
        reproduce.check_parameters(notebook, set_yaml(project, "demo", "# nothing\n"))
    assert reproduce.check_parameters(notebook, set_yaml(project, "demo", "value: 3\n")) == {"value": 3}
    with pytest.raises(ValueError, match="mapping"):
        reproduce.check_parameters(notebook, set_yaml(project, "demo", "- value\n"))


def test_yaml_syntax_error_names_file_and_line(project: Path) -> None:
    notebook = project / "notebooks" / "demo.ipynb"
    with pytest.raises(ValueError) as info:
        reproduce.check_parameters(notebook, set_yaml(project, "demo", "value: 3\nother: [1, 2\n"))
    message = str(info.value)
    assert "demo.yaml, line 3" in message and "invalid YAML" in message and "Traceback" not in message
    assert len(message.splitlines()) == 1


def test_yaml_duplicate_key_is_an_error(project: Path) -> None:
    notebook = project / "notebooks" / "demo.ipynb"
    with pytest.raises(ValueError,
                       match=r"demo\.yaml, line 3: invalid YAML: duplicate key 'value' \(first on line 1\)"):
        reproduce.check_parameters(notebook, set_yaml(project, "demo", "value: 3\nx: 1\nvalue: 4\n"))


def test_a_shared_file_is_included_under_the_notebooks_own_values(project: Path) -> None:
    """`include: _shared.yaml`: the shared settings a notebook declares, its own YAML winning;
    a change of the shared file reruns the notebooks that include it."""
    write_notebook(project / "notebooks" / "other.ipynb",
                   parameters='profile = "x"\noutput_dir = "."\nvalue = 1\nk = 0')
    set_yaml(project, "_shared", "value: 5\nk: 3\n")
    demo = set_yaml(project, "demo", "include: _shared.yaml\n")
    other = set_yaml(project, "other", "include: _shared.yaml\nvalue: 7\n")
    assert reproduce.check_parameters(project / "notebooks" / "demo.ipynb", demo) == {"value": 5}  # no k: not declared
    assert reproduce.check_parameters(project / "notebooks" / "other.ipynb", other) == {"value": 7, "k": 3}
    assert profiles.parameter_files(demo) == [demo, project / "parameters" / "smoke" / "_shared.yaml"]
    jobs = profiles.discover("smoke")
    assert [job.name for job in jobs] == ["demo", "other"]  # the shared file is no notebook's
    before = reproduce.fingerprint(jobs[0], "p", "d")
    set_yaml(project, "_shared", "value: 6\nk: 3\n")
    assert reproduce.fingerprint(jobs[0], "p", "d") != before


def test_a_typo_in_a_shared_file_stops_the_run_before_any_notebook(project: Path) -> None:
    set_yaml(project, "_shared", "value: 5\nvaleu: 3\n")
    set_yaml(project, "demo", "include: _shared.yaml\n")
    with pytest.raises(ValueError, match=r"_shared.yaml: valeu: no notebook that includes this file"):
        reproduce.run("smoke")
    assert not (project / "outputs" / "smoke" / "demo").exists()


def test_a_shared_key_of_another_notebook_is_no_typo_when_one_notebook_runs(project: Path) -> None:
    """`--only demo`: a shared key only `other` declares is still valid (the file serves both)."""
    write_notebook(project / "notebooks" / "other.ipynb", parameters='profile = "x"\noutput_dir = "."\nk = 0')
    set_yaml(project, "_shared", "value: 5\nk: 3\n")
    set_yaml(project, "demo", "include: _shared.yaml\n")
    set_yaml(project, "other", "include: _shared.yaml\n")
    jobs = profiles.discover("smoke")
    names = {job.name: reproduce.notebook_parameter_names(job.notebook) for job in jobs}
    assert reproduce.check_shared_files(jobs, names) == []
    with pytest.raises(RuntimeError, match="kernel"):  # past the parameter checks (no such kernel)
        reproduce.run("smoke", only=["demo"], kernel="no-such-kernel-e2h")


@pytest.mark.parametrize("line, message", [
    ("include: shared.yaml", "whose name starts with '_'"),
    ("include: _run.yaml", "not _run.yaml"),
    ("include: ../paper/_shared.yaml", "of the same folder"),
    ("include: _missing.yaml", "_missing.yaml does not exist"),
])
def test_a_bad_include_names_the_file_and_the_fix(project: Path, line: str, message: str) -> None:
    demo = set_yaml(project, "demo", f"{line}\nvalue: 2\n")
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        reproduce.check_parameters(project / "notebooks" / "demo.ipynb", demo)


def test_notebook_must_declare_injected_parameters(project: Path) -> None:
    notebook = write_notebook(project / "notebooks" / "bare.ipynb", parameters="value = 1")
    with pytest.raises(ValueError, match="profile, output_dir"):
        reproduce.check_parameters(notebook, set_yaml(project, "bare", "value: 2\n"))


def test_discover_skips_notebook_without_yaml_and_rejects_orphan_yaml(project: Path, capsys) -> None:
    write_notebook(project / "notebooks" / "another.ipynb")
    set_yaml(project, "demo", "value: 2\n")
    assert [job.name for job in profiles.discover("smoke")] == ["demo"]
    assert "another: skipped" in capsys.readouterr().out
    orphan = set_yaml(project, "ghost", "value: 2\n")
    with pytest.raises(FileNotFoundError, match=str(orphan)):
        profiles.discover("smoke")


def test_unknown_profile_lists_profiles(project: Path, capsys) -> None:
    with pytest.raises(ValueError, match="paper, smoke"):
        profiles.discover("smoek")
    assert reproduce.main(["--profile", "smoek"]) == 2
    assert "paper, smoke" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["../../x", "smoke/../paper", "/tmp/x", "..", ""])
def test_a_profile_is_a_name_never_a_path(project: Path, capsys, name: str) -> None:
    """``--profile ../../x`` once wrote outputs and a lock outside outputs/: a profile is a folder name."""
    assert reproduce.main(["--profile", name]) == 2
    assert "is not a profile name" in capsys.readouterr().err or not name
    with pytest.raises(ValueError, match="not a profile name"):
        paths.outputs_dir(name)
    assert not (project.parent / "x").exists() and not (project / "outputs").exists()


def test_unknown_only_name_is_error(project: Path) -> None:
    set_yaml(project, "demo", "value: 2\n")
    with pytest.raises(ValueError, match="nope"):
        reproduce.run("smoke", only=["nope"])


def test_missing_kernel_says_make_setup() -> None:
    with pytest.raises(RuntimeError, match="make setup"):
        reproduce.check_kernel("no-such-kernel-e2h")


def test_fingerprint_inputs(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    yaml_path = set_yaml(project, "demo", "value: 2\n")
    job = profiles.discover("smoke")[0]
    base = reproduce.fingerprint(job)
    assert reproduce.fingerprint(job) == base
    assert reproduce.fingerprint(job, "other package") != base
    mirror, moved = project / "mirror", project / "moved"
    annotations = Path("github/allenai/easy-to-hard-generalization/data/arc-challenge-easy-annotations.json")
    for root in (mirror, moved):
        (root / annotations).parent.mkdir(parents=True)
        (root / annotations).write_text("{}")
    monkeypatch.setenv(paths.MIRROR_ENV, str(mirror))
    with_mirror = reproduce.fingerprint(job)
    assert with_mirror != base
    monkeypatch.setenv(paths.MIRROR_ENV, str(moved))
    assert reproduce.fingerprint(job) == with_mirror  # the same files elsewhere: the same data
    (moved / annotations).write_text('{"changed": 1}')
    assert reproduce.fingerprint(job) != with_mirror  # a changed mirror file reruns the notebooks
    monkeypatch.delenv(paths.MIRROR_ENV)
    yaml_path.write_text("value: 3\n")
    assert reproduce.fingerprint(job) != base
    assert reproduce.fingerprint(profiles.Job("demo", job.notebook, yaml_path, "paper")) != reproduce.fingerprint(job)


def test_package_digest_reads_the_real_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("E2H_HOME", str(tmp_path))  # must not matter
    digest = reproduce.package_digest()
    assert len(digest) == 64 and digest == reproduce.package_digest()


def test_list_runs_nothing(project: Path, capsys) -> None:
    set_yaml(project, "demo", "value: 2\n")
    assert reproduce.main(["--profile", "smoke", "--list"]) == 0
    assert "demo: not run" in capsys.readouterr().out
    assert not (project / "outputs").exists()


def test_real_parameter_files_match_their_notebooks() -> None:
    """Every committed parameters/<profile>/*.yaml names a notebook and only its parameters."""
    for yaml_path in sorted((REAL_ROOT / "parameters").glob("*/*.y*ml")):
        if yaml_path.name in profiles.RESERVED_FILES:  # a profile's run settings (_run.yaml), not a notebook's
            from e2h_utils.engine import runtime

            runtime.load(yaml_path)
            continue
        if yaml_path.name.startswith("_"):  # shared settings: every key is some including notebook's
            jobs = profiles.discover(yaml_path.parent.name)
            assert any(profiles.included_file(job.yaml_path) == yaml_path for job in jobs), yaml_path
            assert reproduce.check_shared_files(
                jobs, {job.name: reproduce.notebook_parameter_names(job.notebook) for job in jobs}) == []
            continue
        notebook = REAL_ROOT / "notebooks" / f"{yaml_path.stem}.ipynb"
        assert notebook.is_file(), f"{yaml_path} has no notebook {notebook}"
        reproduce.check_parameters(notebook, yaml_path)


def test_parameters_cells_are_the_embedded_profile() -> None:
    """Each notebook's defaults are its embedded YAML, so Run All in JupyterLab reads what
    `make reproduce` stored (and every YAML sets every parameter the cell has)."""

    for notebook in sorted((REAL_ROOT / "notebooks").glob("*.ipynb")):
        cell = next(c for c in nbformat.read(notebook, as_version=4).cells
                    if "parameters" in c.metadata.get("tags", []))
        defaults: dict = {}
        exec(cell.source, defaults)  # a cell of plain assignments
        assert defaults["profile"] == "embedded", notebook.name
        defaults = {k: v for k, v in defaults.items() if not k.startswith("__") and k not in reproduce.INJECTED}
        embedded = reproduce.check_parameters(notebook, REAL_ROOT / "parameters" / "embedded" / f"{notebook.stem}.yaml")
        assert embedded == defaults, notebook.name


# --- slow: executing notebooks -------------------------------------------------------------


@pytest.mark.slow
def test_run_then_up_to_date_then_rerun_on_change(project: Path) -> None:
    set_yaml(project, "demo", "value: 2\n")
    assert reproduce.run("smoke") == {"demo": "ran"}
    out = project / "outputs" / "smoke" / "demo"
    executed = out / "demo.ipynb"
    assert executed.is_file() and (out / "value.txt").read_text() == "smoke:2"
    record = json.loads((out / "fingerprint.json").read_text())
    assert record["fingerprint"] == reproduce.fingerprint(profiles.discover("smoke")[0])
    assert [p.name for p in (project / "outputs" / "smoke").glob(".*")] == []  # no partial/old folder left
    injected = nbformat.read(executed, as_version=4).cells[1]
    assert "injected-parameters" in injected.metadata.tags and "value = 2" in injected.source

    mtime = executed.stat().st_mtime_ns
    assert reproduce.run("smoke") == {"demo": "up to date"}
    assert executed.stat().st_mtime_ns == mtime

    set_yaml(project, "demo", "value: 3\n")
    assert reproduce.run("smoke") == {"demo": "ran"}
    assert (out / "value.txt").read_text() == "smoke:3"
    assert reproduce.run("smoke", force=True) == {"demo": "ran"}


@pytest.mark.slow
def test_failure_keeps_good_output_then_fix_replaces_it(project: Path, capsys) -> None:
    write_notebook(project / "notebooks" / "other.ipynb")
    set_yaml(project, "demo", "value: 2\n")
    assert reproduce.run("smoke", only=["demo"]) == {"demo": "ran"}
    out = project / "outputs" / "smoke" / "demo"
    good = {p.name: p.read_bytes() for p in out.iterdir()}

    set_yaml(project, "demo", "value: 13\n")
    set_yaml(project, "other", "value: 5\n")
    assert reproduce.run("smoke") == {"demo": "failed", "other": "ran"}  # a failure does not stop the rest
    failed = project / "outputs" / "smoke" / "demo.FAILED"
    assert "FAILED" in capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in out.iterdir()} == good  # previous good output untouched
    executed = nbformat.read(failed / "demo.ipynb", as_version=4)
    assert any(o.get("ename") == "RuntimeError" for c in executed.cells for o in c.get("outputs", []))
    assert not (failed / "value.txt").exists()
    assert (failed / "kernel.log").is_file() and not (out / "kernel.log").exists()  # kept with the failure only

    assert reproduce.main(["--profile", "smoke"]) == 1  # stale good output, still a failed run
    assert "demo" in capsys.readouterr().err
    assert failed.is_dir()

    set_yaml(project, "demo", "value: 4\n")
    assert reproduce.main(["--profile", "smoke"]) == 0
    assert (out / "value.txt").read_text() == "smoke:4"
    assert not failed.exists()
    assert [p.name for p in (project / "outputs" / "smoke").glob(".*")] == []


# --- faults: one run per profile, interrupts, dead kernels, full disks ----------------------------


@pytest.mark.slow
@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM"])
def test_a_real_ctrl_c_exits_130_with_one_line(project: Path, signum: str) -> None:
    """SIGINT to the runner mid-notebook, as a terminal's Ctrl-C, or SIGTERM, what ``kill PID`` (the lock
    message's advice) sends: exit 130, one line, no traceback from papermill or the kernel, nothing
    half-written."""
    import signal
    import subprocess
    import sys
    import time

    started = project / "started"
    write_notebook(project / "notebooks" / "demo.ipynb",
                   body=f"import time\nfrom pathlib import Path\nPath({str(started)!r}).touch()\ntime.sleep(120)\n")
    set_yaml(project, "demo", "value: 2\n")
    env = {**os.environ, "E2H_HOME": str(project)}
    env.pop(paths.MIRROR_ENV, None)
    # as from a terminal: a shell running the tests in the background (`nohup make test &`) starts
    # them with SIGINT ignored, and a child inherits that; Ctrl-C reaches a foreground run only
    proc = subprocess.Popen([sys.executable, "-m", "e2h_utils.pipeline.reproduce", "--profile", "smoke"], cwd=REAL_ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not started.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert started.exists(), proc.communicate()
    proc.send_signal(getattr(signal, signum))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[-1].startswith("interrupted during demo;") and "Traceback" not in err, err
    smoke = project / "outputs" / "smoke"
    assert not (smoke / "demo").exists() and not (smoke / ".demo.partial").exists()


def test_the_lock_outlives_make_clean_and_keeps_make_report_out(project: Path, capsys) -> None:
    """``make clean`` (rm -rf outputs) during a run must not free the lock, and ``make report`` never reads
    outputs a run is still writing: the lock lies outside outputs/ and the report takes it too."""
    import shutil

    from e2h_utils.pipeline import report

    set_yaml(project, "demo", "value: 2\n")
    with reproduce.profile_lock("smoke") as lock:
        assert paths.outputs_dir("smoke") not in lock.parents and (project / ".cache") not in lock.parents
        shutil.rmtree(project / "outputs", ignore_errors=True)  # make clean
        with pytest.raises(RuntimeError, match="another run of profile 'smoke'"):
            reproduce.run("smoke")
        assert report.main(["--profile", "smoke", "--out", str(project / "site")]) == 2
        assert "another run of profile 'smoke'" in capsys.readouterr().err


def test_a_second_run_of_a_profile_is_refused_naming_the_first(project: Path) -> None:
    set_yaml(project, "demo", "value: 2\n")
    with reproduce.profile_lock("smoke"):
        with pytest.raises(RuntimeError) as info:
            reproduce.run("smoke")
    message = str(info.value)
    assert f"(pid {os.getpid()})" in message and ".locks/smoke.lock" in message and f"kill {os.getpid()}" in message
    assert not (project / "outputs" / "smoke" / "demo").exists()
    assert reproduce.run("smoke") == {"demo": "ran"}  # the lock went with its holder


def test_ctrl_c_prints_one_line_and_keeps_what_finished(project: Path, monkeypatch, capsys) -> None:
    write_notebook(project / "notebooks" / "other.ipynb")
    set_yaml(project, "demo", "value: 2\n")
    set_yaml(project, "other", "value: 3\n")
    import papermill

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    real = papermill.execute_notebook
    monkeypatch.setattr(papermill, "execute_notebook",
                        lambda input_path, *a, **k: (real(input_path, *a, **k) if "demo" in str(input_path)
                                                     else interrupted()))
    assert reproduce.main(["--profile", "smoke"]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("interrupted during other;") and "(demo)" in err[-1] and "run the same command" in err[-1]
    assert "Traceback" not in "\n".join(err)
    assert (project / "outputs" / "smoke" / "demo" / "demo.ipynb").is_file()  # kept
    assert not (project / "outputs" / "smoke" / ".other.partial").exists()


def test_a_dead_kernel_names_the_cell_and_memory(project: Path, monkeypatch, capsys) -> None:
    set_yaml(project, "demo", "value: 2\n")
    import papermill
    from nbclient.exceptions import DeadKernelError

    def dies(input_path, output_path, **kwargs):
        nb = nbformat.read(input_path, as_version=4)
        nb.cells[1].metadata["papermill"] = {"status": "running"}  # as papermill autosaves it
        nbformat.write(nb, output_path)
        raise DeadKernelError("Kernel died")

    monkeypatch.setattr(papermill, "execute_notebook", dies)
    assert reproduce.run("smoke") == {"demo": "failed"}
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert "the kernel died while running cell 2 (from pathlib import Path)" in line and "out of memory" in line
    assert "demo.FAILED" in line and (project / "outputs" / "smoke" / "demo.FAILED" / "error.txt").is_file()


@pytest.mark.slow
def test_a_kernel_killed_for_real_names_the_cell_it_was_running(project: Path, capsys) -> None:
    """A real SIGKILL of the kernel (as the out-of-memory killer sends it): papermill marks the cell
    "completed", yet the message names it (found by a kill-and-resume run of the embedded profile)."""
    write_notebook(project / "notebooks" / "demo.ipynb",
                   body="import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n")
    write_notebook(project / "notebooks" / "later.ipynb")
    set_yaml(project, "demo", "value: 2\n")
    set_yaml(project, "later", "value: 3\n")
    assert reproduce.run("smoke") == {"demo": "failed", "later": "ran"}  # the others go on
    out = capsys.readouterr().out
    assert "demo: FAILED (the kernel died while running cell 3 (import os, signal); most often it ran out of " \
           "memory" in out, out
    assert (project / "outputs" / "smoke" / "demo.FAILED" / "error.txt").is_file()


def test_a_full_disk_keeps_nothing_half_written(project: Path, monkeypatch, capsys) -> None:
    set_yaml(project, "demo", "value: 13\n")  # the notebook fails
    real_write = Path.write_text

    def full(self, *args, **kwargs):
        if self.name == "error.txt":
            raise OSError(28, "No space left on device")
        return real_write(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full)
    assert reproduce.run("smoke") == {"demo": "failed"}
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert "RuntimeError: unlucky value" in line and "No space left on device" in line
    assert ".FAILED" not in line  # no pointer to a folder that does not exist
    outputs = project / "outputs" / "smoke"
    assert not outputs.exists() or [p.name for p in outputs.iterdir()] == []  # no partial, no FAILED


def test_failure_summary_keeps_the_notebooks_exception_type(project: Path, capsys) -> None:
    set_yaml(project, "demo", "value: 13\n")
    assert reproduce.run("smoke") == {"demo": "failed"}
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("demo: FAILED (RuntimeError: unlucky value (cell ") and "demo.FAILED" in line


def test_executed_notebook_names_its_final_folder(project: Path) -> None:
    set_yaml(project, "demo", "value: 2\n")
    reproduce.run("smoke")
    text = (project / "outputs" / "smoke" / "demo" / "demo.ipynb").read_text()
    assert ".demo.partial" not in text and str(project / "outputs" / "smoke" / "demo") in text


# --- run settings (_run.yaml) --------------------------------------------------------------------

def test_a_profiles_run_settings_reach_the_kernel_and_are_not_a_notebook(project: Path) -> None:
    """parameters/<profile>/_run.yaml is not a notebook's YAML; the kernels get it through
    E2H_RUN_SETTINGS, so models.load_model places models as it says."""
    body = ("import os\nfrom pathlib import Path\nfrom e2h_utils.engine import runtime\n"
            "Path(output_dir, 'value.txt').write_text(str(runtime.current().batch_tokens))\n")
    write_notebook(project / "notebooks" / "demo.ipynb", body)
    set_yaml(project, "demo", "value: 2\n")
    (project / "parameters" / "smoke" / "_run.yaml").write_text("batch_tokens: 1234\n")
    assert [job.name for job in profiles.discover("smoke")] == ["demo"]
    assert reproduce.run("smoke") == {"demo": "ran"}
    assert (project / "outputs" / "smoke" / "demo" / "value.txt").read_text() == "1234"


def test_a_bad_run_settings_file_stops_before_any_notebook(project: Path, capsys) -> None:
    set_yaml(project, "demo", "value: 2\n")
    (project / "parameters" / "smoke" / "_run.yaml").write_text("device_map: everywhere\n")
    assert reproduce.main(["--profile", "smoke"]) == 2
    err = capsys.readouterr().err
    assert "_run.yaml" in err and "device_map must be one of auto, single" in err
    assert not (project / "outputs" / "smoke" / "demo").exists()


def test_a_ctrl_c_whose_cleanup_hangs_is_finished_by_the_watchdog(tmp_path: Path) -> None:
    """If papermill does not stop the kernel after Ctrl-C (a kernel that does not answer), the
    runner kills it, removes the partial output and exits 130 with the one line anyway."""
    import subprocess
    import sys
    import time

    partial = tmp_path / ".demo.partial"
    partial.mkdir()
    script = f"""
import os, signal, subprocess, sys, time
from e2h_utils.pipeline import reproduce
kernel = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
print(kernel.pid, flush=True)
reproduce.GRACE_S = 1
reproduce._ACTIVE.update(partial={str(partial)!r}, kernel=kernel.pid, message="interrupted during demo; kept")
signal.signal(signal.SIGINT, reproduce._on_sigint)
try:
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(30)
except KeyboardInterrupt:
    time.sleep(30)  # a cleanup that hangs
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=20)
    assert proc.returncode == 130 and proc.stderr.strip().splitlines()[-1] == "interrupted during demo; kept"
    assert not partial.exists()
    kernel = int(proc.stdout.split()[0])
    with pytest.raises(ProcessLookupError):
        for _ in range(50):
            os.kill(kernel, 0)
            time.sleep(0.1)


# --- the console a newcomer sees ---------------------------------------------------------------


@pytest.mark.slow
def test_the_console_shows_progress_and_none_of_the_known_noise(project: Path) -> None:
    """`make reproduce` as a subprocess: a progress bar per notebook (cells done / cells, elapsed),
    and none of the kernel's "running over TCP without encryption" warnings."""
    import subprocess
    import sys

    set_yaml(project, "demo", "value: 2\n")
    write_notebook(project / "notebooks" / "other.ipynb")
    set_yaml(project, "other", "value: 3\n")
    env = {**os.environ, "E2H_HOME": str(project)}
    env.pop(paths.MIRROR_ENV, None)
    done = subprocess.run([sys.executable, "-m", "e2h_utils.pipeline.reproduce", "--profile", "smoke"], cwd=REAL_ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    console = done.stdout + done.stderr
    assert done.returncode == 0, console
    assert "demo: running" in console and "other: running" in console
    assert "Executing: 100%" in console and "3/3 [00:" in console, console  # cells done / cells, elapsed time
    assert "without encryption" not in console and "Traceback" not in console, console


def test_bitsandbytes_cpu_kernel_notice_is_silenced_by_the_package() -> None:
    """bitsandbytes on a CPU announces that an optional kernel from the Hub could not be fetched;
    importing the package's model layer first silences it (a control shows the notice exists)."""
    import subprocess
    import sys

    notice = "gemm_4bit_forward"
    plain = subprocess.run([sys.executable, "-c", "import bitsandbytes"], capture_output=True, text=True, timeout=120)
    if notice not in plain.stdout + plain.stderr:
        pytest.skip("this bitsandbytes build prints no CPU-kernel notice to silence")
    quiet = subprocess.run([sys.executable, "-c", "import e2h_utils.engine.models, bitsandbytes"], cwd=REAL_ROOT,
                           capture_output=True, text=True, timeout=120)
    assert quiet.returncode == 0, quiet.stderr
    assert notice not in quiet.stdout + quiet.stderr


@pytest.mark.slow
def test_make_setup_repairs_a_missing_kernel(tmp_path: Path) -> None:
    """The hint "run `make setup`" must work after the kernel went missing: the `.venv/.installed`
    stamp alone would answer "Nothing to be done"."""
    import shutil
    import subprocess
    import sys

    venv = Path(sys.prefix)
    kernel = venv / "share" / "jupyter" / "kernels" / reproduce.DEFAULT_KERNEL
    if venv.parent != REAL_ROOT or not (venv / ".installed").is_file() or not kernel.is_dir():
        pytest.skip("runs only inside the project's own .venv made by `make setup`")
    backup = tmp_path / "kernel-backup"  # outside the kernels folder, where it would be a kernel itself
    shutil.move(kernel, backup)
    try:
        try:
            reproduce.check_kernel(reproduce.DEFAULT_KERNEL)
            pytest.skip("another 'e2h' kernel is installed outside .venv")
        except RuntimeError as missing:
            assert "make setup" in str(missing)
        done = subprocess.run(["make", "setup"], cwd=REAL_ROOT, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "reinstalling the Jupyter kernel" in done.stdout
        reproduce.check_kernel(reproduce.DEFAULT_KERNEL)  # found again
    finally:
        if not kernel.is_dir():
            shutil.move(backup, kernel)
        shutil.rmtree(backup, ignore_errors=True)


def test_an_empty_mirror_stops_the_run_before_any_notebook(tmp_path, monkeypatch):
    """An empty E2H_MIRROR used to start all eight notebooks, each failing after the last; now the
    mirror is checked whole first, and nothing runs."""
    import shutil

    shutil.copytree(REAL_ROOT / "notebooks", tmp_path / "notebooks")
    shutil.copytree(REAL_ROOT / "parameters", tmp_path / "parameters")
    monkeypatch.setenv("E2H_HOME", str(tmp_path))
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("E2H_MIRROR", str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="problem.s. with the offline mirror; nothing was run") as info:
        reproduce.run("smoke", progress=False)
    assert "holds none of the" in str(info.value)
    assert not (tmp_path / "outputs" / "smoke").exists()


def test_the_package_warnings_of_an_executed_notebook_reach_the_console(tmp_path: Path, capsys) -> None:
    """A run that did less than asked (k in-context examples cut to what fits) warned only inside the
    executed notebook; reproduce now lists the package's warnings, once each, on the console and in
    fingerprint.json. Other libraries' warnings stay in the notebook."""
    path = write_notebook(tmp_path / "done.ipynb")
    nb = nbformat.read(str(path), as_version=4)
    cut = ("/x/e2h_utils/methods/runners.py:56: UserWarning: only 1 of the 3 in-context examples fit the model's "
           "context of 48 tokens with the longest test item; the prompt holds 1")
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", name="stderr", text=f"{cut}\n  scores = ...\n{cut}\n"),
                           nbformat.v4.new_output("stream", name="stderr",
                                                  text="/x/site-packages/torch/nn.py:3: FutureWarning: old api\n")]
    nbformat.write(nb, path)
    assert reproduce.package_warnings(path) == [
        "UserWarning: only 1 of the 3 in-context examples fit the model's context of 48 tokens with the longest "
        "test item; the prompt holds 1"]
    assert reproduce.package_warnings(path, limit=0) == ["... and 1 more warnings in the executed notebook"]


def test_a_damaged_notebook_a_lock_folder_taken_by_a_file_and_a_cache_that_is_a_file_are_named(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by a fresh probe: a raw JSON error with no file name, a raw errno, a late NotADirectoryError."""
    notebook = project / "notebooks" / "demo.ipynb"
    notebook.write_text(notebook.read_text()[:200])
    with pytest.raises(ValueError, match=r"demo.ipynb cannot be read as a notebook .*restore it"):
        reproduce.notebook_parameter_names(notebook)
    (project / ".locks").write_text("not a folder")
    with pytest.raises(RuntimeError, match=r"cannot take the run lock .*must be a writable folder"):
        with reproduce.profile_lock("smoke"):
            pass
    (project / "cachefile").write_text("")
    monkeypatch.setenv("E2H_CACHE", str(project / "cachefile"))
    with pytest.raises(PermissionError, match=r"cachefile is a file, not a folder .*point E2H_CACHE"):
        atomic.check_writable(paths.cache_dir(), "E2H_CACHE")


def test_an_unknown_profile_under_a_missing_e2h_home_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("E2H_HOME", str(tmp_path / "nohome"))
    with pytest.raises(ValueError, match=r"E2H_HOME=.*nohome sets the project folder, and it does not exist"):
        profiles.scan("smoke")
