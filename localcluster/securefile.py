"""Writing keys, tokens and kubeconfigs so that no other user can ever open them.

`path.write_bytes(data)` followed by `chmod(path, 0o600)` leaves a window in which the file exists with the
umask's mode (usually 0644) and the secret is already in it. Here the file is created by `mkstemp`
(`O_CREAT | O_EXCL`, mode 0600, in the target's directory), filled, given its final owner and mode through
its descriptor, and only then renamed over the target: readers see the old file or the new one whole, and
nobody but the owner sees anything before that.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

PRIVATE = 0o600


def write_atomic(
    path: Path, data: bytes, *, mode: int = PRIVATE, owner: tuple[int, int] | None = None
) -> None:
    """Write `data` to `path` (replacing it), created 0600 and changed to `mode` (and `owner`, uid and gid)
    before it takes the name `path`."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if owner is not None:
                os.fchown(fd, *owner)
            if mode != PRIVATE:
                os.fchmod(fd, mode)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
