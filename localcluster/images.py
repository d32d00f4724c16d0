"""Container images without a container runtime: an image is its exported root filesystem plus its config.

These machines can unpack an image (tools/image.py `export_rootfs`, `podman export`, `mmdebstrap`) but
cannot run a container, so the host node (localcluster/hostnode.py) and the init runner
(localcluster/initrunner.py) run a container's process with chroot in such a directory. Nothing is pulled:
an image is known only when it was given, exactly as the pod spec names it, with `--rootfs IMAGE=DIR`.

What a runtime takes from the image config (user, environment, entrypoint, default command, working dir)
comes from `--image-config IMAGE=FILE`: the output of `podman image inspect` / `docker image inspect` (a
list whose first item has `Config`), an OCI image config (`config`), or that `Config` object itself.
Without one, an image runs as root with the runtimes' default PATH and no default command, so the pod
must give `command`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# What containerd and CRI-O put in the environment when the image sets no PATH.
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class ImageError(ValueError):
    """A --rootfs / --image-config value that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class ImageConfig:
    """The parts of an image config a runtime uses to start a process."""

    user: str = ""  # "", "uid", "uid:gid", "name" or "name:group" (names looked up in the rootfs)
    env: tuple[tuple[str, str], ...] = ()
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    working_dir: str = ""

    @property
    def environment(self) -> dict[str, str]:
        """The image's environment, with the runtimes' default PATH when the image has none."""
        env = dict(self.env)
        env.setdefault("PATH", DEFAULT_PATH)
        return env


@dataclass(frozen=True)
class ImageRootfs:
    """One image: its name as pod specs spell it, its unpacked filesystem and its config."""

    image: str
    rootfs: Path
    config: ImageConfig = field(default_factory=ImageConfig)
    config_file: Path | None = None  # where the config came from (kept to pass it on as a flag)


def config_from_json(data: Any) -> ImageConfig:
    """The ImageConfig of `image inspect` output, an OCI image config, or a bare `Config` object."""
    if isinstance(data, list):
        if not data:
            raise ImageError("empty image inspect output")
        data = data[0]
    if not isinstance(data, Mapping):
        raise ImageError(f"an image config must be a JSON object or list, not {type(data).__name__}")
    config = data.get("Config") or data.get("config") or data
    env = []
    for entry in config.get("Env") or ():
        name, _, value = str(entry).partition("=")
        env.append((name, value))
    return ImageConfig(
        user=str(config.get("User") or ""),
        env=tuple(env),
        entrypoint=tuple(str(x) for x in config.get("Entrypoint") or ()),
        cmd=tuple(str(x) for x in config.get("Cmd") or ()),
        working_dir=str(config.get("WorkingDir") or ""),
    )


def parse_pairs(values: Iterable[str], flag: str) -> dict[str, Path]:
    """`IMAGE=PATH` flag values as a mapping (the image may contain ':' and '/', so split at the last '=')."""
    pairs: dict[str, Path] = {}
    for value in values:
        image, sep, path = value.rpartition("=")
        if not sep or not image or not path:
            raise ImageError(f"{flag} {value!r}: expected IMAGE=PATH")
        pairs[image] = Path(path).absolute()
    return pairs


def load(rootfs: Sequence[str], configs: Sequence[str] = ()) -> dict[str, ImageRootfs]:
    """The images of `--rootfs IMAGE=DIR` flags with the configs of `--image-config IMAGE=FILE` flags."""
    dirs = parse_pairs(rootfs, "--rootfs")
    files = parse_pairs(configs, "--image-config")
    unknown = sorted(set(files) - set(dirs))
    if unknown:
        raise ImageError(f"--image-config for image(s) without --rootfs: {', '.join(unknown)}")
    images: dict[str, ImageRootfs] = {}
    for image, path in dirs.items():
        if not path.is_dir():
            raise ImageError(f"--rootfs {image}={path}: not a directory")
        file = files.get(image)
        config = ImageConfig()
        if file is not None:
            try:
                config = config_from_json(json.loads(file.read_text()))
            except (OSError, ValueError) as err:
                raise ImageError(f"--image-config {image}={file}: {err}") from err
        images[image] = ImageRootfs(image, path, config, file)
    return images


def config_to_json(config: ImageConfig) -> dict[str, Any]:
    """`config` as an image config's `Config` object (what `config_from_json` reads back)."""
    return {
        "User": config.user,
        "Env": [f"{name}={value}" for name, value in config.env],
        "Entrypoint": list(config.entrypoint),
        "Cmd": list(config.cmd),
        "WorkingDir": config.working_dir,
    }


def flags(images: Iterable[ImageRootfs], config_dir: Path) -> list[str]:
    """The command-line flags that make `load` give these images again, in a child process. A config that
    came from no file (built in Python) is written to `config_dir`, named by its content, so the same
    images always give the same flags."""
    out: list[str] = []
    for image in images:
        out.append(f"--rootfs={image.image}={image.rootfs}")
        file = image.config_file
        if file is None and image.config != ImageConfig():
            text = json.dumps(config_to_json(image.config), sort_keys=True)
            file = config_dir / f"{hashlib.sha256(text.encode()).hexdigest()[:16]}.json"
            config_dir.mkdir(parents=True, exist_ok=True)
            file.write_text(text)
        if file is not None:
            out.append(f"--image-config={image.image}={file}")
    return out
