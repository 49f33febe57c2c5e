"""Packages: everything under pynn/, and the repository's top-level models/ folder (optnet's
model builders) installed as `pynn.models`, never as a top-level `models` package that would
clash with a user's own. The rest of the metadata is in pyproject.toml."""
from setuptools import find_packages, setup

setup(packages=find_packages(include=['pynn', 'pynn.*']) + ['pynn.models'],
      package_dir={'pynn.models': 'models'})
