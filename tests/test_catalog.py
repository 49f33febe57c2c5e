"""docs/modules.md and the catalog of the final Lua nn's classes."""
import json
from pathlib import Path

import pytest

from pynn.nn import catalog, registry

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / '..' / 'shared' / 'reference' / 'lua-nn' / 'MANIFEST.json'


def test_modules_doc_is_generated_from_the_registry():
    assert (ROOT / 'docs' / 'modules.md').read_text() == catalog.markdown(), \
        'docs/modules.md is stale: run python -m pynn.nn.catalog'


@pytest.mark.skipif(not MANIFEST.exists(), reason='Lua nn fixtures not found at ../shared/reference/lua-nn')
def test_catalog_lists_the_classes_and_families_of_the_lua_fixtures():
    lua = {(c['family'], c['class']) for c in json.loads(MANIFEST.read_text())}
    ours = {(fam, 'nn.' + name) for fam, names in catalog.FINAL_NN.items() for name in names}
    assert ours == lua


def test_pynn_has_every_class_of_the_final_nn():
    reg = registry()
    missing = ['nn.' + n for names in catalog.FINAL_NN.values() for n in names if 'nn.' + n not in reg]
    assert not missing
