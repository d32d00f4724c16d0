"""The container image's build logic without building: the lock against pyproject.toml, and the pure
decisions of tools/image.py (engine, base, tags, wheel targets, lock parsing, image config)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from localcluster import images
from tools import image


# --- the lock is in step with pyproject.toml ---------------------------------------------------------------
def _installed_requires(name: NormalizedName) -> list[str]:
    try:
        return metadata.distribution(name).requires or []
    except metadata.PackageNotFoundError:
        pytest.fail(f"{name} is needed but not installed in this venv: run `make venv`, then `make lock`")


def test_lock_pins_every_dependency_within_its_specifier() -> None:
    """Each [project].dependencies entry is pinned, at a version its specifier allows. On failure: `make lock`."""
    pins = image.parse_lock(image.LOCK_FILE.read_text())
    dependencies = image.project_dependencies()
    assert image.lock_problems(dependencies, pins, closure=set(pins)) == []


def test_lock_is_exactly_the_dependency_closure() -> None:
    """The lock holds the whole dependency closure and nothing else, walked through this venv's metadata.

    `make venv` installs the locked versions (`-c deploy/image/requirements.lock`), so this venv's metadata
    is the image's. On failure: `make lock`.
    """
    pins = image.parse_lock(image.LOCK_FILE.read_text())
    dependencies = image.project_dependencies()
    closure = image.dependency_closure(dependencies, _installed_requires, default_environment())
    drift = {
        name: (metadata.version(name), str(pins[name]))
        for name in sorted(closure & pins.keys())
        if Version(metadata.version(name)) != pins[name]
    }
    assert not drift, f"this venv's versions differ from the lock (installed, locked): {drift}; `make venv`"
    assert image.lock_problems(dependencies, pins, closure) == []


def test_lock_file_is_what_lock_text_writes() -> None:
    """Sorted, normalized and headed as `make lock` writes it, so a regeneration diffs line by line."""
    text = image.LOCK_FILE.read_text()
    pins = image.parse_lock(text)
    report = {"install": [{"metadata": {"name": n, "version": str(v)}} for n, v in pins.items()]}
    assert image.lock_text(report) == text


def test_dockerfile_agrees_with_the_builder() -> None:
    """The Dockerfile's default base, PATH and venv are the ones tools/image.py assumes."""
    text = image.DOCKERFILE.read_text()
    assert f"ARG BASE_IMAGE={image.OFFICIAL_BASE}\n" in text
    assert re.search(r"^ENV PATH=(\S+)", text, re.M)[1] == image.IMAGE_PATH  # type: ignore[index]
    assert f"python3 -m venv --without-pip {image.VENV_DIR}" in text
    assert re.search(r"^USER (\d+):(\d+)$", text, re.M)


# --- lock parsing and checking ------------------------------------------------------------------------------
def test_lock_text_sorts_and_normalizes() -> None:
    report = {
        "install": [
            {"metadata": {"name": "PyYAML", "version": "6.0.4"}},
            {"metadata": {"name": "aiohttp", "version": "3.14.5"}},
            {"metadata": {"name": "typing_extensions", "version": "4.16.0"}},
        ]
    }
    text = image.lock_text(report)
    assert text.startswith("# ")
    assert [line for line in text.splitlines() if not line.startswith("#")] == [
        "aiohttp==3.14.5",
        "pyyaml==6.0.4",
        "typing-extensions==4.16.0",
    ]


def test_parse_lock_reads_pins_and_skips_comments() -> None:
    text = "# header\n\nAiohttp==3.14.5  # why\nPyYAML == 6.0.4\n"
    assert image.parse_lock(text) == {"aiohttp": Version("3.14.5"), "pyyaml": Version("6.0.4")}


@pytest.mark.parametrize(
    "line",
    [
        "aiohttp>=3.10",
        "aiohttp",
        "aiohttp==3.14.5,!=3.14.4",
        'aiohttp==3.14.5; python_version < "3.12"',
        "aiohttp[speedups]==3.14.5",
    ],
)
def test_parse_lock_refuses_anything_but_exact_pins(line: str) -> None:
    with pytest.raises(ValueError, match="line 1"):
        image.parse_lock(line + "\n")


def test_parse_lock_refuses_a_name_pinned_twice() -> None:
    with pytest.raises(ValueError, match="pinned twice"):
        image.parse_lock("six==1.17.0\nSix==1.16.0\n")


REQUIRES: dict[str, list[str]] = {
    "app": ["lib-a>=1", 'lib-b; python_version < "3.0"', 'lib-c[fast]; sys_platform == "linux"'],
    "lib-a": ["lib-d", 'lib-e; extra == "docs"'],
    "lib-b": [],
    "lib-c": ['lib-f; extra == "fast"', "lib-a"],
    "lib-d": ["lib-a"],  # a cycle
    "lib-e": [],
    "lib-f": [],
}


def _requires(name: NormalizedName) -> Sequence[str]:
    return REQUIRES[name]


def test_dependency_closure_follows_markers_extras_and_cycles() -> None:
    env = {**default_environment(), "python_version": "3.11", "sys_platform": "linux"}
    assert image.dependency_closure(["app"], _requires, env) == {"app", "lib-a", "lib-c", "lib-d", "lib-f"}
    env_other = {**env, "sys_platform": "darwin"}
    assert image.dependency_closure(["app"], _requires, env_other) == {"app", "lib-a", "lib-d"}


def test_lock_problems_name_each_mismatch() -> None:
    pins = {canonicalize_name(n): Version(v) for n, v in {"aiohttp": "3.9.0", "six": "1.17.0"}.items()}
    closure = {canonicalize_name(n) for n in ("aiohttp", "pyyaml", "yarl")}
    problems = image.lock_problems(["aiohttp>=3.10", "PyYAML>=6"], pins, closure)
    assert problems == [
        "aiohttp>=3.10: the lock pins aiohttp==3.9.0",
        "PyYAML>=6: not pinned in the lock",
        "pyyaml: needed but not pinned in the lock",
        "yarl: needed but not pinned in the lock",
        "six: pinned in the lock but nothing needs it",
    ]
    in_step = {canonicalize_name(n): Version("6.0.4") for n in ("aiohttp", "pyyaml")}
    assert image.lock_problems(["aiohttp>=3.10", "PyYAML>=6"], in_step, set(in_step)) == []


def test_wheel_and_dist_info_pins() -> None:
    wheels = [
        "grove_py-0.1.0-py3-none-any.whl",
        "PyYAML-6.0.4-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.whl",
        "README.txt",
    ]
    assert image.wheel_pins(wheels) == {"grove-py": Version("0.1.0"), "pyyaml": Version("6.0.4")}
    entries = ["typing_extensions-4.16.0.dist-info", "yaml", "_yaml", "PyYAML-6.0.4.dist-info", "x.pth"]
    assert image.dist_info_pins(entries) == {
        "typing-extensions": Version("4.16.0"),
        "pyyaml": Version("6.0.4"),
    }


# --- engine, base, tags, targets --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("requested", "docker_answers", "expected"),
    [
        ("auto", True, image.DOCKER),
        ("auto", False, image.PODMAN),
        ("docker", False, image.DOCKER),
        ("podman", True, image.PODMAN),
    ],
)
def test_choose_engine(requested: str, docker_answers: bool, expected: image.Engine) -> None:
    assert image.choose_engine(requested, docker_answers) == expected


def test_choose_engine_refuses_unknown() -> None:
    with pytest.raises(ValueError, match="engine must be one of"):
        image.choose_engine("buildah", True)


def test_podman_builds_without_daemon_overlay_or_runtime() -> None:
    assert image.PODMAN.argv("build") == ["podman", "--storage-driver=vfs", "build"]
    assert "--isolation=chroot" in image.PODMAN.build_flags
    assert image.DOCKER.argv("image", "inspect", "x") == ["docker", "image", "inspect", "x"]


@pytest.mark.parametrize(
    ("mode", "official_available", "expected"),
    [
        ("auto", True, "official"),
        ("auto", False, "debian"),
        ("official", True, "official"),
        ("debian", True, "debian"),
        ("debian", False, "debian"),
    ],
)
def test_pick_base(mode: str, official_available: bool, expected: str) -> None:
    assert image.pick_base(mode, official_available) == expected


def test_pick_base_official_without_registry_fails_with_the_way_out() -> None:
    with pytest.raises(image.ImageError, match="--base debian"):
        image.pick_base("official", False)
    with pytest.raises(ValueError, match="base must be one of"):
        image.pick_base("alpine", True)


def test_image_tags_name_the_version_the_operator_defaults_to() -> None:
    assert image.image_tags("0.1.0") == ("localhost/grove-py:0.1.0", "localhost/grove-py:dev")


@pytest.mark.parametrize(
    ("machine", "wheel", "debian"),
    [("x86_64", "x86_64", "amd64"), ("AMD64", "x86_64", "amd64"), ("arm64", "aarch64", "arm64")],
)
def test_target_arch(machine: str, wheel: str, debian: str) -> None:
    assert image.target_arch(machine) == image.Arch(wheel, debian)


def test_target_arch_unknown() -> None:
    with pytest.raises(image.ImageError, match="riscv64"):
        image.target_arch("riscv64")


def test_manylinux_platforms_cover_every_older_glibc() -> None:
    x86 = image.manylinux_platforms("x86_64", 36)
    assert x86[0] == "manylinux_2_36_x86_64"
    assert x86[-2:] == ["manylinux_2_5_x86_64", "manylinux1_x86_64"]
    assert {"manylinux_2_34_x86_64", "manylinux2014_x86_64", "manylinux2010_x86_64"} <= set(x86)
    assert "manylinux_2_37_x86_64" not in x86
    arm = image.manylinux_platforms("aarch64", 36)
    assert "manylinux2014_aarch64" in arm
    assert not any(p.startswith(("manylinux2010", "manylinux1")) for p in arm)


def test_target_pip_args_pick_binary_wheels_for_the_image_python() -> None:
    args = image.target_pip_args("x86_64")
    assert "--only-binary=:all:" in args
    assert args[args.index("--python-version") + 1] == image.TARGET_PYTHON
    abis = [args[i + 1] for i, a in enumerate(args) if a == "--abi"]
    assert abis == ["cp311", "abi3", "none"]
    assert args.count("--platform") == len(image.manylinux_platforms("x86_64"))


def test_debian_base_is_keyed_by_what_it_contains() -> None:
    amd, arm = image.debian_base("amd64"), image.debian_base("arm64")
    assert amd == image.debian_base("amd64")
    assert amd.key != arm.key
    assert amd.ref == f"localhost/grove-py-base:bookworm-{amd.key}"
    argv = amd.mmdebstrap_argv(Path("/c/base.tar"))
    assert argv[:3] == ["mmdebstrap", "--variant=minbase", "--format=tar"]
    assert "--include=python3,python3-venv" in argv
    assert "--architectures=amd64" in argv
    assert argv[argv.index("bookworm") + 1] == "/c/base.tar"


# --- image config, save, rootfs commands ----------------------------------------------------------------
INSPECT = [
    {
        "Id": "sha256:0fb6e5be80a3",
        "Size": 292_000_000,
        "Config": {
            "User": "65532:65532",
            "Env": ["PATH=/opt/grove-py/bin:/usr/bin", "LANG=C.UTF-8", "EMPTY="],
            "Cmd": ["grove-operator"],
            "Labels": {"org.opencontainers.image.licenses": "Apache-2.0"},
        },
    }
]


def test_parse_inspect() -> None:
    config = image.parse_inspect(INSPECT)
    assert config == image.ImageConfig(
        image_id="sha256:0fb6e5be80a3",
        runtime=images.ImageConfig(
            user="65532:65532",
            env=(("PATH", "/opt/grove-py/bin:/usr/bin"), ("LANG", "C.UTF-8"), ("EMPTY", "")),
            cmd=("grove-operator",),
        ),
        labels={"org.opencontainers.image.licenses": "Apache-2.0"},
        size=292_000_000,
    )
    assert (config.user, config.cmd) == ("65532:65532", ("grove-operator",))
    bare = image.parse_inspect([{"Id": "abc", "Config": {"Env": None, "Labels": None}}])
    assert (bare.user, bare.runtime.env, bare.cmd, bare.labels, bare.size) == ("", (), (), {}, 0)


def test_save_argv_writes_an_oci_archive() -> None:
    assert image.save_argv(image.PODMAN, "localhost/grove-py:dev", Path("/o/i.tar")) == [
        "podman",
        "--storage-driver=vfs",
        "image",
        "save",
        "--format",
        "oci-archive",
        "--output",
        "/o/i.tar",
        "localhost/grove-py:dev",
    ]
    assert image.save_argv(image.DOCKER, "x", Path("i.tar")) == [
        "docker",
        "image",
        "save",
        "--output",
        "i.tar",
        "x",
    ]


def test_rootfs_command_runs_as_the_image_user() -> None:
    rootfs = image.Rootfs(Path("/r"), image.parse_inspect(INSPECT))
    argv = rootfs.command(["grove-operator", "--version"])
    assert Path(argv[0]).name == "chroot"
    assert argv[1:] == ["--userspec=65532:65532", "/r", "grove-operator", "--version"]
    assert rootfs.command(["id"], user="0:0")[1] == "--userspec=0:0"
    assert rootfs.env["PATH"].startswith("/opt/grove-py/bin:")


# --- what the image is built from -----------------------------------------------------------------------
def _tree(root: Path) -> None:
    files = {
        "pyproject.toml": (
            '[project]\nname = "p"\nversion = "1"\nreadme = "README.md"\n'
            '[tool.setuptools.packages.find]\ninclude = ["pkg*"]\n'
        ),
        "README.md": "readme",
        "pkg/__init__.py": "",
        "pkg/sub/mod.py": "x = 1",
        "pkg/data.json": "{}",
        "pkg/__pycache__/mod.cpython-311.pyc": "junk",
        "pkg_extra/__init__.py": "",
        "notpkg/__init__.py": "",
        "tests/test_x.py": "",
        "deploy/image/Dockerfile": "FROM x",
        "deploy/image/requirements.lock": "six==1.17.0\n",
        "tools/image.py": "",
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def test_project_files_are_the_wheel_sources(tmp_path: Path) -> None:
    _tree(tmp_path)
    assert [p.as_posix() for p in image.project_files(tmp_path)] == [
        "pyproject.toml",
        "README.md",
        "pkg/__init__.py",
        "pkg/data.json",
        "pkg/sub/mod.py",
        "pkg_extra/__init__.py",
    ]


def test_inputs_digest_changes_with_any_input_but_not_caches(tmp_path: Path) -> None:
    _tree(tmp_path)
    first = image.inputs_digest(tmp_path)
    (tmp_path / "pkg/__pycache__/other.pyc").write_text("more junk")
    (tmp_path / "tests/test_y.py").write_text("")
    assert image.inputs_digest(tmp_path) == first
    for rel in (
        "pkg/sub/mod.py",
        "deploy/image/Dockerfile",
        "deploy/image/requirements.lock",
        "tools/image.py",
    ):
        before = image.inputs_digest(tmp_path)
        (tmp_path / rel).write_text((tmp_path / rel).read_text() + "\n# changed")
        assert image.inputs_digest(tmp_path) != before, rel


def test_steps_time_each_step() -> None:
    lines: list[str] = []
    steps = image.Steps(lines.append)
    with steps("base"):
        pass
    with steps("build"):
        pass
    assert lines[0] == "== base"
    summary = steps.summary()
    assert re.search(r"base\s+\d+\.\d s", summary)
    assert re.search(r"total\s+\d+\.\d s", summary)
