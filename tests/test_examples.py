"""The ported Lua training scripts in examples/ run and learn: the loss falls."""
import importlib.util
import io
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np

EXAMPLES = Path(__file__).resolve().parents[1] / 'examples'


def _load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / (name + '.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_char_rnn_train_loss_falls(tmp_path):
    mod = _load('char_rnn_train')
    out = io.StringIO()
    with redirect_stdout(out):
        train_losses, val_losses = mod.main(['-max_iters', '60', '-print_every', '10',
                                             '-checkpoint_dir', str(tmp_path)])
    losses = [train_losses[i] for i in sorted(train_losses)]
    assert len(losses) == 60 and all(np.isfinite(losses))
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5]), losses
    assert val_losses and list(val_losses.values())[-1] < losses[0]
    # the checkpoint loads back with a runnable gModule, as char-rnn's sample.lua needs
    import pynn
    ck = pynn.load(str(next(tmp_path.glob('*.t7'))))
    assert type(ck['protos']['rnn']).__name__ == 'gModule'
    assert 'train_loss' in out.getvalue()


def test_cifar_train_loss_falls(tmp_path):
    mod = _load('cifar_train')
    out = io.StringIO()
    with redirect_stdout(out):
        losses, accuracy = mod.main(['-epochs', '2', '-trainSize', '384', '-save', str(tmp_path)])
    assert losses[1] < losses[0], losses
    assert accuracy > 0.35   # 4 classes: chance is 0.25
    text = out.getvalue()
    assert 'ConfusionMatrix:' in text and '[class: airplane]' in text
    log = (tmp_path / 'train.log').read_text().splitlines()
    assert log[0] == '% mean class accuracy (train set)\t' and len(log) == 3


def test_char_rnn_memory_small():
    """The unrolled char-rnn LSTM (small sizes) optimizes and saves memory in both modes."""
    mod = _load('char_rnn_memory')
    for mode in ('inference', 'training'):
        before, after, _ = mod.measure(seq_length=3, batch_size=4, rnn_size=8, num_layers=2,
                                       vocab=6, mode=mode, planner='optnet')
        assert after['total_size'] < before['total_size']
