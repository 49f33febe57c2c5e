"""`pynn.models`: the original optnet's model builders.

Installed, they are the subpackage pynn.models (setup.py maps the repository's top-level
models/ folder there). From a source checkout, where pynn/ has no models/ inside, the same
folder is loaded under that name, so `from pynn import models` works in both.
"""
import importlib
import importlib.util
import os
import sys

NAME = 'pynn.models'


def load():
    mod = sys.modules.get(NAME)
    if mod is not None:
        return mod
    try:
        return importlib.import_module(NAME)
    except ModuleNotFoundError as e:
        if e.name != NAME:
            raise
    root = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'models')
    init = os.path.join(root, '__init__.py')
    if not os.path.exists(init):
        raise ModuleNotFoundError("No module named %r (nor a models/ folder beside pynn/)" % NAME,
                                  name=NAME)
    spec = importlib.util.spec_from_file_location(NAME, init, submodule_search_locations=[root])
    mod = importlib.util.module_from_spec(spec)
    sys.modules[NAME] = mod
    try:
        spec.loader.exec_module(mod)
    except BaseException:
        del sys.modules[NAME]
        raise
    return mod
