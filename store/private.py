"""Files and directories only the hub's own user may read: the store, ``var/``, the
secrets file, the files directory (0700 directories, 0600 files).

Set explicitly at creation, whatever the process's umask (``hub.py`` also sets 077).
An existing path is left as its owner made it.
"""

from __future__ import annotations

import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """Create ``path`` and every missing parent as 0700 directories."""
    missing: list[Path] = []
    p = Path(path)
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue  # another process made it first
        os.chmod(d, DIR_MODE)
    return Path(path)


def private_file(path: Path) -> Path:
    """Create ``path`` (empty, 0600) if it does not exist, its directory as 0700."""
    path = Path(path)
    private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return path
    os.fchmod(fd, FILE_MODE)
    os.close(fd)
    return path
