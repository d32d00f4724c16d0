"""The built image, checked from its filesystem and config: both entry points run as its non-root user,
nothing in it is writable by that user but the shared temp dirs, its venv holds exactly grove-py and the
lock, no build leftovers (wheels, pip caches, compilers), and the OCI labels are there."""

from __future__ import annotations

import os
import re
import stat
from datetime import datetime
from pathlib import Path

from packaging.markers import default_environment
from packaging.version import Version

from tests.image.conftest import RunInImage
from tools import image

VERSION = image.project_version()


def test_operator_entry_point_prints_the_version(run_in_image: RunInImage) -> None:
    proc = run_in_image(["grove-operator", "--version"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"grove-operator {VERSION}"


def test_initc_entry_point_answers_help(run_in_image: RunInImage) -> None:
    proc = run_in_image(["grove-initc", "--help"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: grove-initc")


def test_default_command_is_the_operator_and_both_are_on_path(
    image_rootfs: image.Rootfs, run_in_image: RunInImage
) -> None:
    assert image_rootfs.config.cmd == ("grove-operator",)
    proc = run_in_image(["sh", "-c", "for c in grove-operator grove-initc; do command -v $c; done"])
    assert proc.stdout.split() == [
        f"{image.VENV_DIR}/bin/grove-operator",
        f"{image.VENV_DIR}/bin/grove-initc",
    ]


def test_compiled_dependencies_load_on_the_base(run_in_image: RunInImage) -> None:
    """The wheels were fetched for the image's target, not the host's: their native parts must load."""
    modules = "uvloop, orjson, yaml, multidict, yarl, frozenlist, propcache, pydantic_core, cryptography.x509"
    proc = run_in_image(["python3", "-c", f"import {modules}, grove_operator.main, initc.main; print('ok')"])
    assert (proc.returncode, proc.stdout.strip()) == (0, "ok"), proc.stderr


def test_user_is_numeric_and_not_root(image_rootfs: image.Rootfs, run_in_image: RunInImage) -> None:
    """runAsNonRoot can only verify a numeric user; it must not be root's uid or gid."""
    match = re.fullmatch(r"(\d+):(\d+)", image_rootfs.config.user)
    assert match, image_rootfs.config.user
    assert int(match[1]) != 0 and int(match[2]) != 0
    proc = run_in_image(["id", "-u"])
    assert proc.stdout.strip() == match[1]


def test_nothing_is_writable_by_the_user_but_shared_temp_dirs(
    image_rootfs: image.Rootfs, run_in_image: RunInImage
) -> None:
    """The root filesystem is read-only in the Deployment anyway; in the image the user owns nothing, and
    the only places it may write are the base's sticky, world-writable temp dirs (/tmp, /run/lock, ...)."""
    find = ["find", "/", "-xdev", "(", "-path", "/proc", "-o", "-path", "/sys", "-o", "-path", "/dev", ")"]
    proc = run_in_image([*find, "-prune", "-o", "-writable", "-print"])
    writable = proc.stdout.split()
    assert "/tmp" in writable, proc.stderr  # find did run, as the user
    unexpected = []
    for path in writable:
        mode = (image_rootfs.path / path.lstrip("/")).resolve().stat().st_mode
        if not (stat.S_ISDIR(mode) and mode & stat.S_ISVTX and mode & stat.S_IWOTH):
            unexpected.append(path)
    assert unexpected == []
    uid, gid = (int(part) for part in image_rootfs.config.user.split(":"))
    owned = []
    for dirpath, dirnames, filenames in os.walk(image_rootfs.path):
        for name in [*dirnames, *filenames]:
            info = os.lstat(os.path.join(dirpath, name))
            if info.st_uid == uid or info.st_gid == gid:
                owned.append(os.path.join(dirpath, name))
    assert owned == []


def test_venv_holds_exactly_grove_py_and_the_lock(site_packages: Path) -> None:
    """No pip, setuptools or wheel, nothing the lock does not pin, every pin at its version."""
    installed = image.dist_info_pins(os.listdir(site_packages))
    expected = {**image.parse_lock(image.LOCK_FILE.read_text()), image.PROJECT_NAME: Version(VERSION)}
    assert installed == expected


def test_lock_is_the_closure_of_the_installed_metadata(site_packages: Path) -> None:
    """Walked through the image's own metadata (the locked versions), grove-py needs exactly the lock."""
    requires = image.installed_requirements(site_packages)
    closure = image.dependency_closure(
        [image.PROJECT_NAME], lambda name: requires[name], default_environment()
    )
    assert closure - {image.PROJECT_NAME} == set(image.parse_lock(image.LOCK_FILE.read_text()))


def test_no_build_leftovers(image_rootfs: image.Rootfs) -> None:
    """Wheels, the lock copy and the installer's venv stay in the build stage; no pip cache anywhere."""
    root = image_rootfs.path
    for gone in ("wheels", "requirements.lock", "opt/pip-tool", "root/.cache"):
        assert not (root / gone).exists(), gone
    caches = [p for p in root.rglob("pip") if p.is_dir() and p.parent.name == ".cache"]
    assert caches == []
    assert not list((root / image.VENV_DIR.lstrip("/")).rglob("pip*.dist-info"))


def test_no_compilers(image_rootfs: image.Rootfs) -> None:
    compiler = re.compile(r"(.*-)?(cc|c\+\+|gcc|g\+\+|clang|clang\+\+|cpp)(-[\d.]+)?")
    found = [
        str(path)
        for folder in (
            "usr/bin",
            "usr/local/bin",
            "bin",
            "usr/sbin",
            "sbin",
            image.VENV_DIR.lstrip("/") + "/bin",
        )
        if (image_rootfs.path / folder).is_dir() and not (image_rootfs.path / folder).is_symlink()
        for path in (image_rootfs.path / folder).iterdir()
        if compiler.fullmatch(path.name)
    ]
    assert found == []


def test_oci_labels(image_rootfs: image.Rootfs) -> None:
    labels = image_rootfs.config.labels
    prefix = "org.opencontainers.image."
    assert labels[prefix + "title"] == "grove-py"
    assert labels[prefix + "licenses"] == "Apache-2.0"
    assert labels[prefix + "version"] == VERSION
    for key in ("description", "source", "revision"):
        assert labels[prefix + key], key
    assert datetime.fromisoformat(labels[prefix + "created"]).tzinfo is not None
    assert labels[image.INPUTS_LABEL]
