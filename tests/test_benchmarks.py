"""The benchmark scripts run (one short pass each) and print their tables; speed.py also
checks that the network after optnet.optimizeMemory gives the same output."""
import importlib.util
import io
import re
from contextlib import redirect_stdout
from pathlib import Path

import torch

import pynn

BENCH = Path(__file__).resolve().parents[1] / 'benchmarks'


def _run(name, argv):
    spec = importlib.util.spec_from_file_location('bench_' + name, BENCH / (name + '.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    before = pynn.getdefaulttensortype(), torch.get_num_threads()
    out = io.StringIO()
    try:
        with redirect_stdout(out):
            rc = mod.main(argv)
    finally:   # the scripts set both for their runs
        pynn.setdefaulttensortype(before[0])
        torch.set_num_threads(before[1])
    return rc, out.getvalue()


def test_speed_runs_and_prints_every_column():
    rc, out = _run('speed', ['--nets', 'resnet', '--threads', '1', '--repeats', '1', '--gap', '0',
                             '--torch-gemm'])
    assert rc == 0
    lines = out.splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith('resnet-20'))
    assert len(re.findall(r'\d+\.\d+x', lines[i])) == 3, out     # train, inference, +optnet ratios
    assert 'oneDNN off' in lines[i + 1] and len(re.findall(r'\d+\.\d+x', lines[i + 1])) == 3, out
    assert torch.backends.mkldnn.enabled     # restored after the runs without it


def test_conv_algorithms_runs_every_algorithm():
    rc, out = _run('conv_algorithms', ['--repeats', '1', '--gap', '0'])
    assert rc == 0
    rows = [line for line in out.splitlines() if re.match(r'\s*\d+ x \d+ ->', line)]
    assert len(rows) == 12, out
    assert all(line.rstrip().endswith('x') for line in rows)
