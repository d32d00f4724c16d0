"""Locate or build the control-plane binaries.

No prebuilt Kubernetes/etcd/KWOK binaries can be downloaded on the machines this project targets, so they
are compiled from the Go module proxy (how: docs/local-cluster.md, "The control-plane binaries") into a
cache folder outside the repository. A build takes minutes, hence: reuse what exists, honour the envtest
convention `KUBEBUILDER_ASSETS`, build only what is missing, build under a file lock so concurrent `up`s
don't compile twice, and move finished binaries into place atomically so an interrupted build never
leaves a half-written executable that would later be mistaken for a good one.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from localcluster import versions

Progress = Callable[[str], None]


class BuildError(RuntimeError):
    """A Go build failed; the message carries the tail of go's output."""


@dataclass(frozen=True)
class Binaries:
    """Absolute paths of every executable the cluster needs."""

    etcd: Path
    kube_apiserver: Path
    kube_scheduler: Path
    kube_controller_manager: Path
    kwok: Path

    @classmethod
    def from_mapping(cls, found: Mapping[str, Path]) -> Binaries:
        return cls(**{name.replace("-", "_"): found[name] for name in versions.ALL_BINARIES})

    def as_dict(self) -> dict[str, Path]:
        return {name: getattr(self, name.replace("-", "_")) for name in versions.ALL_BINARIES}


def cache_root(env: Mapping[str, str] | None = None) -> Path:
    """`$GROVE_CACHE_DIR`, else `${XDG_CACHE_HOME:-~/.cache}/grove-py`: outside the repo, binaries are big."""
    env = os.environ if env is None else env
    if env.get("GROVE_CACHE_DIR"):
        return Path(env["GROVE_CACHE_DIR"]).expanduser().absolute()
    xdg = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser().absolute() / "grove-py"


def cache_bin_dir(env: Mapping[str, str] | None = None) -> Path:
    """The versioned folder the builds go to."""
    return cache_root(env) / versions.bin_dir_name()


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def locate(assets_dir: Path | None, cache_dir: Path) -> dict[str, Path | None]:
    """Where each binary is: `assets_dir` (KUBEBUILDER_ASSETS) wins over the cache; None when absent."""
    found: dict[str, Path | None] = {}
    for name in versions.ALL_BINARIES:
        found[name] = None
        for folder in (assets_dir, cache_dir):
            if folder is not None and _is_executable(folder / name):
                found[name] = (folder / name).absolute()
                break
    return found


def assets_dir_from_env(env: Mapping[str, str] | None = None) -> Path | None:
    env = os.environ if env is None else env
    value = env.get("KUBEBUILDER_ASSETS")
    return Path(value).expanduser().absolute() if value else None


# --- wrapper Go modules ------------------------------------------------------------------------------

_REQUIRE_LINE = re.compile(r"^(?:require\s+)?([^\s()]+)\s+(v\S+)$")


def staging_modules(gomod_text: str) -> list[str]:
    """Modules that k8s.io/kubernetes requires at exactly `v0.0.0` (its staging repos).

    Upstream resolves them with `replace => ./staging/...`, which a dependent module can't use; we replace
    them with their published versions instead. Pseudo-versions (`v0.0.0-2026...`) are real versions and
    must be left alone.
    """
    modules: list[str] = []
    in_require = False
    for raw in gomod_text.splitlines():
        line = raw.split("//", 1)[0].strip()  # drop comments such as `// indirect`
        if not line:
            continue
        if line.startswith("require ("):
            in_require = True
            continue
        if in_require and line == ")":
            in_require = False
            continue
        if in_require or line.startswith("require "):
            match = _REQUIRE_LINE.match(line)
            if match and match.group(2) == "v0.0.0" and match.group(1) not in modules:
                modules.append(match.group(1))
    return modules


def wrapper_gomod(
    module: str,
    go_version: str,
    requires: Mapping[str, str],
    replace_version: str = "",
    replaces: list[str] | None = None,
) -> str:
    """Text of a wrapper go.mod requiring `requires` and replacing each of `replaces` by `replace_version`."""
    lines = [f"module {module}", "", f"go {go_version}", ""]
    lines += [f"require {mod} {ver}" for mod, ver in requires.items()]
    if replaces:
        lines.append("")
        lines += [f"replace {mod} => {mod} {replace_version}" for mod in replaces]
    return "\n".join(lines) + "\n"


def tools_go(packages: list[str]) -> str:
    """A `tools` build-tagged file importing `packages`, so `go mod tidy` records their dependencies."""
    imports = "\n".join(f'\t_ "{pkg}"' for pkg in packages)
    return f"//go:build tools\n\npackage tools\n\nimport (\n{imports}\n)\n"


# --- building ----------------------------------------------------------------------------------------


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _go(args: list[str], cwd: Path, log: Path, extra_env: Mapping[str, str] | None = None) -> str:
    """Run `go args...`, appending output to `log`; raise BuildError with the output's tail on failure."""
    go = shutil.which("go")
    if go is None:
        raise BuildError("the Go toolchain (`go`) is not on PATH; it is needed to build the cluster binaries")
    env = {**os.environ, **(extra_env or {})}
    proc = subprocess.run([go, *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    output = proc.stdout + proc.stderr
    with log.open("a") as fh:
        fh.write(f"$ go {' '.join(args)}  (cwd {cwd})\n{output}\n")
    if proc.returncode != 0:
        raise BuildError(
            f"`go {' '.join(args)}` failed (exit {proc.returncode}) in {cwd}; full log {log}:\n"
            + _tail(output)
        )
    return proc.stdout


def _go_version(log: Path, cwd: Path) -> str:
    return _go(["env", "GOVERSION"], cwd, log).strip().removeprefix("go").split("-")[0]


def _write_module(folder: Path, gomod: str, packages: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "go.mod").exists() or (folder / "go.mod.in").read_text() != gomod:
        # go.mod.in remembers what we generated; `go mod tidy` rewrites go.mod itself.
        (folder / "go.mod").write_text(gomod)
        (folder / "go.mod.in").write_text(gomod)
        (folder / "go.sum").unlink(missing_ok=True)
    (folder / "tools.go").write_text(tools_go(packages))


def _build_kubernetes(src_root: Path, out: Path, log: Path) -> None:
    info = json.loads(
        _go(["mod", "download", "-json", f"k8s.io/kubernetes@{versions.K8S_VERSION}"], src_root, log)
    )
    upstream = Path(info["GoMod"]).read_text()
    packages = [f"k8s.io/kubernetes/cmd/{name}" for name in versions.K8S_BINARIES]
    folder = src_root / f"k8s-{versions.K8S_VERSION}"
    gomod = wrapper_gomod(
        "grove-py/localcluster/k8s",
        _go_version(log, src_root),
        {"k8s.io/kubernetes": versions.K8S_VERSION},
        versions.STAGING_VERSION,
        staging_modules(upstream),
    )
    _write_module(folder, gomod, packages)
    _go(["mod", "tidy"], folder, log)
    build_date = json.loads(Path(info["Info"]).read_text()).get("Time", "1970-01-01T00:00:00Z")
    _go(["build", "-ldflags", version_ldflags(build_date), "-o", f"{out}/", *packages], folder, log)


def version_ldflags(build_date: str) -> str:
    """Linker flags stamping the release version into the binaries.

    Kubernetes' own build scripts inject these; without them a module build reports
    `v0.0.0-master+$Format:%H$` from `/version`, which confuses clients checking the server version.
    """
    major, minor = versions.K8S_VERSION.removeprefix("v").split(".")[:2]
    values = {
        "gitVersion": versions.K8S_VERSION,
        "gitMajor": major,
        "gitMinor": minor,
        "gitTreeState": "clean",
        "buildDate": build_date,
    }
    flags = [
        f"-X {package}.{name}={value}"
        for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
        for name, value in values.items()
    ]
    return " ".join(flags)


def _build_etcd(src_root: Path, out: Path, log: Path) -> None:
    package = "go.etcd.io/etcd/server/v3"
    folder = src_root / f"etcd-{versions.ETCD_VERSION}"
    gomod = wrapper_gomod(
        "grove-py/localcluster/etcd", _go_version(log, src_root), {package: versions.ETCD_VERSION}
    )
    _write_module(folder, gomod, [package])
    _go(["mod", "tidy"], folder, log)
    _go(["build", "-o", str(out / "etcd"), package], folder, log)


def _build_kwok(src_root: Path, out: Path, log: Path) -> None:
    _go(["install", f"sigs.k8s.io/kwok/cmd/kwok@{versions.KWOK_VERSION}"], src_root, log, {"GOBIN": str(out)})


# (binaries produced, progress message, builder)
_GROUPS: list[tuple[tuple[str, ...], str, Callable[[Path, Path, Path], None]]] = [
    (("etcd",), f"building etcd {versions.ETCD_VERSION} (first time ~30 s)…", _build_etcd),
    (
        versions.K8S_BINARIES,
        f"building {', '.join(versions.K8S_BINARIES)} {versions.K8S_VERSION} (first time ~5 min)…",
        _build_kubernetes,
    ),
    (("kwok",), f"building kwok {versions.KWOK_VERSION} (first time ~90 s)…", _build_kwok),
]


@contextmanager
def file_lock(path: Path, discard: Callable[[], bool] = lambda: False) -> Iterator[None]:
    """An exclusive fcntl lock on `path`: a second concurrent build (another tree or test session sharing
    the cache) waits, then finds what the first one built. The lock file is deleted (still held) on the
    way out when `discard()` says so."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            if discard():
                path.unlink(missing_ok=True)
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure(progress: Progress = print, env: Mapping[str, str] | None = None) -> Binaries:
    """Every binary's path, building the missing ones into the cache first."""
    assets = assets_dir_from_env(env)
    bin_dir = cache_bin_dir(env)
    found = locate(assets, bin_dir)
    if all(found.values()):
        return Binaries.from_mapping({k: v for k, v in found.items() if v is not None})
    root = cache_root(env)
    with file_lock(root / f"{versions.bin_dir_name()}.lock"):
        found = locate(assets, bin_dir)  # someone else may have built while we waited for the lock
        bin_dir.mkdir(parents=True, exist_ok=True)
        src_root = root / "src"
        src_root.mkdir(parents=True, exist_ok=True)
        log = root / "build.log"
        for names, message, build in _GROUPS:
            missing = [name for name in names if found[name] is None]
            if not missing:
                continue
            progress(message)
            with tempfile.TemporaryDirectory(prefix=".build-", dir=bin_dir) as tmp:
                build(src_root, Path(tmp), log)
                for name in missing:
                    built = Path(tmp) / name
                    if not _is_executable(built):
                        raise BuildError(f"the build finished but produced no {name} in {tmp}; see {log}")
                    os.replace(built, bin_dir / name)  # atomic: same filesystem
                    found[name] = bin_dir / name
            progress(f"built {', '.join(missing)} into {bin_dir}")
    return Binaries.from_mapping({k: v for k, v in found.items() if v is not None})


def ensure_helm(progress: Progress = print, env: Mapping[str, str] | None = None) -> Path:
    """The pinned helm binary (`versions.HELM_VERSION`), built from the Go module proxy into the cache on
    first use (about 3 minutes), or `$GROVE_HELM` when set (a helm the user already has)."""
    env = os.environ if env is None else env
    if env.get("GROVE_HELM"):
        return Path(env["GROVE_HELM"]).absolute()
    root = cache_root(env)
    folder = root / f"helm-{versions.HELM_VERSION}"
    helm = folder / "helm"
    if _is_executable(helm):
        return helm
    with file_lock(root / f"helm-{versions.HELM_VERSION}.lock"):
        if _is_executable(helm):
            return helm
        folder.mkdir(parents=True, exist_ok=True)
        progress(f"building helm {versions.HELM_VERSION} (first time ~3 min)…")
        with tempfile.TemporaryDirectory(prefix=".build-", dir=folder) as tmp:
            _go(
                ["install", f"{versions.HELM_PACKAGE}@{versions.HELM_VERSION}"],
                folder,
                root / "build.log",
                {"GOBIN": tmp},
            )
            os.replace(Path(tmp) / "helm", helm)
        progress(f"built helm into {folder}")
    return helm
