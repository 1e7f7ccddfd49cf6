"""The package list (the rest of the metadata is in pyproject.toml).

options/ and themes/ stay at the top of the checkout, where the README and users point, and go into
the wheel as engine/options_files and tui/themes: pyproject.toml's `packages.find` can only list
folders that exist under a package, so the two mapped data packages are added here.
"""

from setuptools import find_packages, setup

DATA_PACKAGES = {"engine.options_files": "options", "tui.themes": "themes"}

setup(packages=[*find_packages(include=["engine*", "tui*"]), *DATA_PACKAGES], package_dir=DATA_PACKAGES)
