"""The zc.buildout route: `pip install zc.buildout` then `buildout`, in a copy of the working tree.

The copy holds the files a commit of this working tree would hold (`git ls-files`, new files
included). Buildout must produce the scripts and the supervisor config in build/, with the
supervisor programs pointing there, and must leave every project file as it was.
"""

from __future__ import annotations

import configparser
import dataclasses
import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.long]

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ("api", "manager", "initialize", "supervisord", "supervisorctl", "test")
INDEX = "https://pypi.org/simple/zc-buildout/"


@dataclasses.dataclass
class Buildout:
    """A buildout made in a copy of the project, and how to run things in it."""

    root: Path
    buildout: Path
    env: dict[str, str]
    before: dict[str, tuple[str, int]]
    untracked_before: set[str]

    @property
    def bin_dir(self) -> Path:
        return self.root / "build" / "bin"

    def run(self, *command: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """Run a command in the copy; output is captured as text."""
        return subprocess.run(
            [str(part) for part in command],
            cwd=self.root,
            env=env or self.env,
            capture_output=True,
            text=True,
            timeout=600,
        )

    def run_buildout(self, *args: str) -> None:
        """Run buildout; fail with the end of its output if it fails."""
        done = self.run(self.buildout, *args)
        assert done.returncode == 0, "buildout %s failed:\n%s" % (" ".join(args), (done.stdout + done.stderr)[-4000:])


def not_available(reason: str) -> None:
    """Skip locally, but fail under CI: the buildout route must be proven there."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def project_files() -> list[str]:
    """The files a commit of the working tree would hold: tracked and new, not ignored."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [name for name in listed.split("\0") if name and os.path.lexists(ROOT / name)]


def fingerprints(root: Path, names: list[str]) -> dict[str, tuple[str, int]]:
    """Content hash and permission bits of each file."""
    prints = {}
    for name in names:
        path = root / name
        digest = hashlib.sha256(os.readlink(path).encode() if path.is_symlink() else path.read_bytes())
        prints[name] = (digest.hexdigest(), path.lstat().st_mode & 0o7777)
    return prints


def untracked(root: Path) -> set[str]:
    """Files git would offer to add: anything buildout makes must not be among them."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return {name for name in listed.split("\0") if name}


def clean_env(home: Path) -> dict[str, str]:
    """The caller's environment without tasker's, Python's and buildout's own settings."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("TASKER_", "BUILDOUT_")) and name not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
    }
    # Run mode development reads its passwords from the environment (or var/tasker.env).
    env.update(BUILDOUT_HOME=str(home), MYSQL_PASSWD="buildout-test", RABBITMQ_PASSWD="buildout-test")
    return env


def supervisor_programs(conf: Path) -> dict[str, str]:
    """Program name -> command of a supervisord config."""
    parser = configparser.RawConfigParser()
    parser.read(conf)
    return {
        section.split(":", 1)[1]: parser.get(section, "command")
        for section in parser.sections()
        if section.startswith("program:")
    }


def assert_programs_run_from(conf: Path, bin_dir: Path, mode: str) -> None:
    """Every program of `conf` runs a script of `bin_dir` in run mode `mode`."""
    programs = supervisor_programs(conf)
    assert "api" in programs and any(name.startswith("manager-") for name in programs), programs
    for name, command in programs.items():
        executable, *args = shlex.split(command)
        assert Path(executable).parent == bin_dir and os.access(executable, os.X_OK), (name, command)
        assert args[-2:] == ["--mode", mode], (name, command)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Buildout:
    """A copy of the project after `pip install zc.buildout` and `buildout` in a fresh venv."""
    if not shutil.which("git") or not (ROOT / ".git").exists():
        not_available("the buildout test copies the project's git files: git and a checkout are needed")
    try:
        urllib.request.urlopen(INDEX, timeout=15).close()
    except OSError as exc:
        not_available("PyPI is not reachable (%s): buildout cannot fetch its eggs" % exc)
    base = tmp_path_factory.mktemp("buildout")
    root, home = base / "project", base / "home"
    home.mkdir()
    names = project_files()
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, root / name, follow_symlinks=False)
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    env = clean_env(home)
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=env, timeout=300)
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "zc.buildout"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, "pip install zc.buildout failed:\n%s" % (done.stdout + done.stderr)[-4000:]
    made = Buildout(root, venv / "bin" / "buildout", env, fingerprints(root, names), untracked(root))
    made.run_buildout()
    return made


def test_buildout_generates_every_script_executable(built: Buildout) -> None:
    missing = [name for name in SCRIPTS if not os.access(built.bin_dir / name, os.X_OK)]
    assert not missing, "not generated or not executable in build/bin: %s" % missing
    assert built.run(built.bin_dir / "test", "--version").returncode == 0


def test_buildout_manager_refuses_an_unknown_task_type_in_one_line(built: Buildout) -> None:
    done = built.run(built.bin_dir / "manager", "--tasktype", "nope", "--endpoint", "x", "--mode", "test")
    assert done.returncode != 0
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "nope" in done.stderr and "Traceback" not in done.stderr


def test_buildout_initialize_answers_help(built: Buildout) -> None:
    done = built.run(built.bin_dir / "initialize", "--help")
    assert done.returncode == 0, done.stderr
    assert "usage: initialize" in done.stdout


def test_buildout_supervisor_config_runs_the_programs_from_buildouts_bin(built: Buildout) -> None:
    conf = built.root / "var" / "run" / "supervisord-development.conf"
    assert conf.stat().st_mode & 0o777 == 0o600
    assert_programs_run_from(conf, built.bin_dir, "development")


def test_buildout_supervisorctl_keeps_the_programs_in_buildouts_bin(built: Buildout) -> None:
    # supervisorctl renders the config again at each call; a TASKER_BIN_DIR pointing at the
    # tracked bin/ must not win over the buildout's own bin directory.
    conf = built.root / "var" / "run" / "supervisord-development.conf"
    conf.unlink()
    env = dict(built.env, TASKER_BIN_DIR=str(built.root / "bin"))
    done = built.run(built.bin_dir / "supervisorctl", "status", env=env)
    assert done.returncode != 0, "no supervisord runs in the copy, status must fail: %s" % done.stdout
    assert_programs_run_from(conf, built.bin_dir, "development")


def test_buildout_mode_option_renders_that_run_modes_config(built: Buildout) -> None:
    try:
        built.run_buildout("-N", "mode=test")
        assert_programs_run_from(built.root / "var" / "test" / "run" / "supervisord-test.conf", built.bin_dir, "test")
        assert "'TASKER_MODE', 'test'" in (built.bin_dir / "supervisorctl").read_text()
    finally:
        built.run_buildout("-N")


def test_buildout_leaves_every_project_file_unchanged_and_ignores_what_it_made(built: Buildout) -> None:
    after = fingerprints(built.root, list(built.before))
    changed = sorted(name for name in built.before if after[name] != built.before[name])
    assert not changed, "buildout changed project files: %s" % changed
    new = sorted(untracked(built.root) - built.untracked_before)
    assert not new, "buildout made files that .gitignore does not cover: %s" % new[:20]
