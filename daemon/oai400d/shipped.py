"""The files the package carries for operators: the example config and the systemd files.

The repository keeps them at its root (`config.example.toml`, `systemd/`), the one copy that is
edited; the wheel's build copies them into `oai400d/data/` with the same layout (setup.py).
So an installed wheel reads them from its package data, and a checkout (an editable install,
which has no built package data) from the repository itself.
"""

from __future__ import annotations

from pathlib import Path

EXAMPLE_CONFIG = "config.example.toml"
SYSTEMD_DIR = "systemd"
UNIT = "oai400d.service"
SYSTEMD_CONFIG = "config.toml"  # the unit's /etc/oai400d/config.toml
# The systemd files shipped, relative to systemd/: the unit, its config and its drop-ins (*.conf).
# `oai400d unit NAME` names each by its file name alone.
SYSTEMD_PATTERNS = ("*.service", SYSTEMD_CONFIG, "drop-ins/*.conf")

_PACKAGE_DATA = Path(__file__).resolve().parent / "data"
_CHECKOUT = Path(__file__).resolve().parent.parent.parent


class ShippedFileMissing(LookupError):
    """A file the package should carry is not there (or no such file was ever shipped)."""


def root() -> Path:
    """Where the shipped files are: the package data of a built wheel, else the checkout."""
    if (_PACKAGE_DATA / EXAMPLE_CONFIG).is_file():
        return _PACKAGE_DATA
    return _CHECKOUT


def example_config(for_systemd: bool = False) -> str:
    """The example config: every key with its default, or the systemd unit's config."""
    place = root()
    path = place / SYSTEMD_DIR / SYSTEMD_CONFIG if for_systemd else place / EXAMPLE_CONFIG
    return _read(path)


def systemd_names() -> list[str]:
    """The systemd files that `oai400d unit NAME` prints, the unit first."""
    return sorted(_systemd_files(), key=lambda name: (name != UNIT, name))


def systemd_file(name: str) -> str:
    """One systemd file by its name (e.g. oai400d.service); never a path outside the set."""
    files = _systemd_files()
    if name not in files:
        shipped = ", ".join(systemd_names()) or "none"
        raise ShippedFileMissing(f"no systemd file named {name!r}; shipped: {shipped}")
    return _read(files[name])


def _systemd_files() -> dict[str, Path]:
    directory = root() / SYSTEMD_DIR
    return {
        path.name: path
        for pattern in SYSTEMD_PATTERNS
        for path in sorted(directory.glob(pattern))
        if path.is_file()
    }


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ShippedFileMissing(
            f"{path}: not found; the installation is incomplete (reinstall the oai400d wheel)"
        ) from None
