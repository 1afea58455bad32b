"""Shared pytest setup for the loopbreaker.notion collection.

Plain ``pytest`` (``make unit``) runs from the repository root, which is not laid
out as ``ansible_collections/loopbreaker/notion``. This conftest finds (or makes)
a directory that is, and installs Ansible's collection finder on it, so tests
can ``import ansible_collections.loopbreaker.notion.plugins...`` exactly as
``ansible-test units`` would let them.

Where the collection is found, in order:
1. ``$ANSIBLE_COLLECTIONS_PATH`` entries holding a link to this repository
   (``make`` exports ``.venv``);
2. ``.venv/ansible_collections/loopbreaker/notion`` (made by ``make venv``);
3. a temporary ``ansible_collections/loopbreaker/notion`` symlink, removed at exit.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

NAMESPACE = "loopbreaker"
NAME = "notion"
REPO_ROOT = Path(__file__).resolve().parent.parent


def _holds_this_collection(collections_dir: Path) -> bool:
    candidate = collections_dir / "ansible_collections" / NAMESPACE / NAME
    try:
        return candidate.resolve() == REPO_ROOT
    except OSError:
        return False


def _collections_dir() -> Path:
    """Return a directory D where D/ansible_collections/loopbreaker/notion is this repository."""
    candidates = [Path(p) for p in os.environ.get("ANSIBLE_COLLECTIONS_PATH", "").split(os.pathsep) if p]
    candidates.append(REPO_ROOT / ".venv")
    for candidate in candidates:
        if _holds_this_collection(candidate):
            return candidate.absolute()

    tmp = Path(tempfile.mkdtemp(prefix=f"{NAMESPACE}.{NAME}-collections-"))
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    link = tmp / "ansible_collections" / NAMESPACE / NAME
    link.parent.mkdir(parents=True)
    link.symlink_to(REPO_ROOT, target_is_directory=True)
    return tmp


def _install_collection_finder(collections_dir: Path) -> None:
    # pylint: disable-next=import-outside-toplevel
    from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder

    if any(type(finder).__name__ == "_AnsibleCollectionFinder" for finder in sys.meta_path):
        return  # ansible-test units (or an earlier conftest) already did it
    # scan_sys_paths=False: only this collection (and ansible.builtin), never the user's.
    # pylint: disable-next=protected-access
    _AnsibleCollectionFinder(paths=[str(collections_dir)], scan_sys_paths=False)._install()


# Every test reaches nothing but loopback (diagnose's probes refuse any other name or address), also
# when pytest runs without make.
os.environ.setdefault('LOOPBREAKER_LOOPBACK_ONLY', '1')

COLLECTIONS_DIR = _collections_dir()
_install_collection_finder(COLLECTIONS_DIR)


@pytest.fixture(scope="session")
def collection_root() -> Path:
    """The repository root, which is the collection root."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def collections_dir() -> Path:
    """A directory suitable for ANSIBLE_COLLECTIONS_PATH that provides loopbreaker.notion."""
    return COLLECTIONS_DIR


@pytest.fixture
def ansible_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for ``subprocess`` runs of ansible-playbook & co.

    A copy of ``os.environ`` with this collection on the collection path, the
    running interpreter's bin/ first on PATH and as the default module
    interpreter, and Ansible's home, temp directories and config isolated
    from the user's.
    """
    home = tmp_path_factory.mktemp("ansible-home")
    repo_cfg = REPO_ROOT / "ansible.cfg"
    config = repo_cfg if repo_cfg.is_file() else home / "ansible.cfg"
    if config != repo_cfg:
        config.write_text("# empty: keeps ~/.ansible.cfg out of test runs\n", encoding="utf-8")
    # Not resolved: a venv's python is a symlink, and resolving it leaves the venv.
    venv_bin = str(Path(sys.executable).parent)
    env = dict(os.environ)
    env.update(
        ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS_DIR),
        ANSIBLE_HOME=str(home),
        ANSIBLE_LOCAL_TEMP=str(home / "tmp"),
        ANSIBLE_REMOTE_TEMP=str(home / "remote-tmp"),
        ANSIBLE_CONFIG=str(config),
        # Interpreter discovery can pick a broken pyenv shim (python3.13 here); hosts
        # that run Python modules locally use this interpreter unless the inventory says otherwise.
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        PATH=os.pathsep.join([venv_bin] + [p for p in env.get("PATH", "").split(os.pathsep) if p and p != venv_bin]),
    )
    return env
