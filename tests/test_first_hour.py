"""What a new user meets first: the installed package, the README's examples, the command line,
and the errors of common mistakes."""
import contextlib
import io
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import pynn
from pynn import nn, optnet
from pynn.optnet import __main__ as cli

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / 'README.md', ROOT / 'CONTRIBUTING.md'] + sorted((ROOT / 'docs').glob('*.md'))


def python_blocks():
    for path in DOCS:
        for i, block in enumerate(re.findall(r'```python\n(.*?)```', path.read_text(), re.S)):
            yield pytest.param(path, block, id='%s-%d' % (path.name, i + 1))


@pytest.mark.parametrize('path,block', list(python_blocks()))
def test_documentation_examples_run_as_printed(path, block, tmp_path, monkeypatch):
    """Every Python block of the README and docs runs as printed; where a block says what it
    prints ('# prints: ...' lines), it prints exactly that."""
    monkeypatch.chdir(tmp_path)
    old = pynn.getdefaulttensortype()
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(block, '%s example' % path.name, 'exec'), {'__name__': '__main__'})
    finally:
        pynn.setdefaulttensortype(old)
    want = [m.group(1) for m in re.finditer(r'^# prints: (.*)$', block, re.M)]
    if want:
        assert out.getvalue().splitlines()[-len(want):] == want


def test_the_wheel_installs_models_under_pynn_only(tmp_path):
    """No top-level `models` package (it would clash with a user's own): the builders are
    pynn.models."""
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps', '--no-build-isolation',
                    '-w', str(tmp_path), str(ROOT)], check=True, cwd=tmp_path)
    names = zipfile.ZipFile(next(tmp_path.glob('pynn-*.whl'))).namelist()
    assert 'pynn/models/__init__.py' in names and 'pynn/models/resnet.py' in names
    assert not [n for n in names if n.startswith('models/')]
    shutil.rmtree(ROOT / 'build', ignore_errors=True)


def run_cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        old = pynn.getdefaulttensortype()
        try:
            code = cli.main(list(argv))
        finally:
            pynn.setdefaulttensortype(old)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize('model', cli.MODELS)
def test_every_subcommand_runs_every_model_on_the_meta_device(model, tmp_path):
    code, out, err = run_cli('report', model, '--meta')
    assert code == 0 and 'before: total_size' in out and 'optimizeMemory took' in out
    assert 'optimizeMemory (inference)' in err        # progress goes to stderr
    code, out, _ = run_cli('report', model, '--meta', '--mode', 'training')
    assert code == 0 and 'after : total_size' in out
    code, out, _ = run_cli('graph', model, '--meta', '--format', 'dot', '--out', str(tmp_path / model))
    assert code == 0 and Path(out.strip()).read_text().startswith('digraph')
    code, out, _ = run_cli('demo', '--model', model, '--meta', '--steps', '1')
    assert code == 0 and 'step  1' in out and 'saved :' in out


def test_unknown_models_are_listed_and_help_names_them(capsys):
    with pytest.raises(SystemExit):
        cli.main(['report', 'resnet50'])
    err = capsys.readouterr().err
    assert "unknown model 'resnet50'" in err and 'googlenet' in err and 'preresnet' in err
    with pytest.raises(SystemExit):
        cli.main(['--help'])
    assert 'basic_multiOutput' in capsys.readouterr().out


def test_graph_without_dot_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv('PATH', str(tmp_path))      # no `dot` anywhere
    with pytest.raises(SystemExit) as e:
        run_cli('graph', 'basic_conv', '--meta', '--out', str(tmp_path / 'g'))
    assert "Graphviz's `dot` program was not found" in str(e.value) and 'apt-get install graphviz' in str(e.value)


@pytest.mark.parametrize('bad', [None, 3, [nn.Linear(2, 2)]])
def test_optnet_functions_reject_non_modules(bad):
    for fn in (optnet.countUsedMemory, optnet.removeOptimization):
        with pytest.raises(TypeError, match=r'optnet\.%s: expected an nn module' % fn.__name__):
            fn(bad)
    with pytest.raises(TypeError, match=r'optnet\.countUsedMemory: expected an nn module .*got Tensor'):
        optnet.countUsedMemory(pynn.rand(2))


def test_constructor_errors_name_the_lua_class_and_the_arguments():
    with pytest.raises(ValueError, match=r'^nn\.Linear\(-1, 3\): .*>= 0'):
        nn.Linear(-1, 3)
    with pytest.raises(TypeError, match=r"^nn\.SpatialConvolution\(3\): missing 3 required .*'nOutputPlane'"):
        nn.SpatialConvolution(3)
    with pytest.raises(TypeError, match=r'^nn\.ClassNLLCriterion\(1, 2, 3, 4, 5\): '):
        nn.ClassNLLCriterion(1, 2, 3, 4, 5)
    assert nn.Linear(2, 3).weight.size() == (3, 2)    # nothing left behind


def test_sequential_insert_returns_the_container_and_remove_the_module():
    a, b, c = nn.Linear(2, 2), nn.Tanh(), nn.ReLU()
    s = nn.Sequential().add(a).add(c)
    assert s.insert(b, 2) is s and s.modules == [a, b, c]
    assert s.remove(1) is a and s.modules == [b, c]
    assert s.remove() is c and s.modules == [b]
    with pytest.raises(IndexError, match=r'remove: index out of range \(1\.\.1\), got 5'):
        s.remove(5)
    with pytest.raises(TypeError, match='insert: expected an nn.Module'):
        s.insert(pynn.rand(2))
    assert s.modules == [b]
