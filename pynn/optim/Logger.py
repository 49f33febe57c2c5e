"""optim.Logger: the text log Lua's optim writes (a header of names, then one line per add,
numbers as %11.4e, tab-separated), and plot() drawing a PNG with matplotlib (an optional
extra: Lua used gnuplot and wrote an .eps)."""
import os
import sys
import time


class Logger:
    __typename__ = 'optim.Logger'

    def __init__(self, filename=None, timestamp=False):
        if filename:
            self.name = filename
            d = os.path.dirname(filename)
            if d:
                os.makedirs(d, exist_ok=True)
            if timestamp:
                filename = filename + '-' + time.strftime('%Y_%m_%d_%X')
            self.file = open(filename, 'w')
            self.epsfile = self.name + '.eps'
            self.pngfile = self.name + '.png'
        else:
            self.file = sys.stdout
            self.name = 'stdout'
            self.epsfile = self.pngfile = None
            print('<Logger> warning: no path provided, logging to std out')
        self.empty = True
        self.symbols = {}
        self.styles = {}
        self.names = {}
        self.idx = {}
        self.figure = None
        self.showPlot = True
        self.plotRawCmd = None
        self.defaultStyle = '+'
        self.logscale = False
        self.nsymbols = 0

    @staticmethod
    def _pairs(symbols):
        """Lua's pairs order: the array part (1..n) first, then the named keys."""
        if isinstance(symbols, (list, tuple)):
            return list(enumerate(symbols, 1))
        return list(symbols.items())

    def setNames(self, names):
        self.names = {}
        self.empty = False
        self.nsymbols = len(names)
        for k, key in self._pairs(names):
            self.file.write(str(key) + '\t')
            self.names[k] = key
            self.symbols[k] = []
            self.styles[k] = [self.defaultStyle]
            self.idx[key] = k
        self.file.write('\n')
        self.file.flush()
        return self

    def add(self, symbols):
        pairs = self._pairs(symbols)
        if self.empty:
            self.empty = False
            self.nsymbols = len(symbols) if isinstance(symbols, (list, tuple)) else 0
            for k, _ in pairs:
                self.file.write(str(k) + '\t')
                self.symbols[k] = []
                self.styles[k] = [self.defaultStyle]
                self.names[k] = k
            self.idx = self.names
            self.file.write('\n')
        for _, val in pairs:
            if isinstance(val, bool) or not isinstance(val, (int, float, str)):
                raise TypeError('<Logger> can only log numbers and strings')
            if isinstance(val, str):
                self.file.write(val + '\t')
            else:
                self.file.write('%11.4e' % val + '\t')
        self.file.write('\n')
        self.file.flush()
        for k, val in pairs:
            self.symbols.setdefault(k, []).append(val)

    def style(self, symbols):
        for name, style in self._pairs(symbols):
            if isinstance(style, str):
                self.styles[name] = [style]
            elif isinstance(style, (list, tuple)):
                self.styles[name] = list(style)
            else:
                raise TypeError('<Logger> style should be a string or a table of strings')
        return self

    def setlogscale(self, state):
        self.logscale = state

    def display(self, state):
        self.showPlot = state

    _STYLES = {'+': '+', '-': '-', '.': '.', 'o': 'o', '~': '-', '|': '|', 'p': 'o'}

    def plot(self, *names):
        """Draw the logged series to `<name>.png` with matplotlib (Lua drew with gnuplot)."""
        try:
            import matplotlib
            matplotlib.use('Agg')
            import matplotlib.pyplot as plt
        except ImportError:
            if not getattr(self, 'warned', False):
                print('<Logger> warning: cannot plot: matplotlib is not installed')
                self.warned = True
            return None
        keys = [self.idx[n] for n in names] if names else list(self.symbols)
        fig, ax = plt.subplots()
        plotted = False
        for k in keys:
            ys = self.symbols.get(k, [])
            if len(ys) > 1:
                for st in self.styles.get(k, [self.defaultStyle]):
                    ax.plot(range(1, len(ys) + 1), ys, self._STYLES.get(st, '-'), label=str(self.names.get(k, k)))
                plotted = True
        if plotted:
            if self.logscale:
                ax.set_yscale('log')
            ax.grid(True)
            ax.legend()
            ax.set_title('<Logger::%s>' % self.name)
            if self.pngfile:
                fig.savefig(self.pngfile)
        plt.close(fig)
        return self.pngfile if plotted else None
