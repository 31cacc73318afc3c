"""The wheel's build step beyond setuptools' own (pyproject.toml holds everything else).

- The man page and the bash/zsh completions are generated from the program's own argument
  parser (oai400d.arguments: stdlib only, so the isolated build environment, which has no
  runtime libraries, can import it) with argparse-manpage and shtab, both build-time only.
  They install as data files: share/man/man1/oai400d.1,
  share/bash-completion/completions/oai400d, share/zsh/site-functions/_oai400d.
- The example config and the systemd files are copied from where the repository keeps them
  (config.example.toml, systemd/) into the package as oai400d/data/, so the tree holds one copy
  that cannot drift from what the wheel ships (oai400d.shipped reads either).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
# data_files take paths relative to this directory; build/ is what setuptools builds in.
GENERATED = Path("build") / "generated"
MAN_PAGE = GENERATED / "oai400d.1"
BASH_COMPLETION = GENERATED / "bash" / "oai400d"
ZSH_COMPLETION = GENERATED / "zsh" / "_oai400d"
DATA_FILES = [
    ("share/man/man1", [str(MAN_PAGE)]),
    ("share/bash-completion/completions", [str(BASH_COMPLETION)]),
    ("share/zsh/site-functions", [str(ZSH_COMPLETION)]),
]
SHIPPED = [
    "config.example.toml",
    "systemd/*.service",
    "systemd/config.toml",
    "systemd/drop-ins/*.conf",
]


def _parser() -> tuple[Any, str]:
    """The program's parser, imported from this source tree (not from an installed oai400d)."""
    sys.path.insert(0, str(HERE / "daemon"))
    try:
        from oai400d import __version__
        from oai400d.arguments import build_parser
    finally:
        sys.path.pop(0)
    return build_parser(), __version__


def generate_docs() -> None:
    """The man page and the completions, into build/generated/."""
    import shtab
    from argparse_manpage.manpage import Manpage

    parser, version = _parser()
    page = Manpage(
        parser,
        _data={
            "project_name": "oai400d",
            "version": version,
            "description": "find OpenAI API errors in application logs, explain them, alert",
            "manual_title": "oai400d manual",
        },
    )
    outputs = {
        MAN_PAGE: str(page),
        BASH_COMPLETION: shtab.complete(parser, shell="bash"),
        ZSH_COMPLETION: shtab.complete(parser, shell="zsh"),
    }
    for relative, text in outputs.items():
        path = HERE / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text if text.endswith("\n") else f"{text}\n", encoding="utf-8")


class BuildWithGenerated(build_py):
    """build_py, plus the generated files and the shipped files copied into the package."""

    def run(self) -> None:
        generate_docs()
        super().run()
        if self.editable_mode:
            return  # an editable install reads the shipped files from the checkout itself
        data = Path(self.build_lib) / "oai400d" / "data"
        for pattern in SHIPPED:
            for source in sorted(HERE.glob(pattern)):
                target = data / source.relative_to(HERE)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, target)


setup(cmdclass={"build_py": BuildWithGenerated}, data_files=DATA_FILES)
