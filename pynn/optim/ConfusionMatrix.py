"""optim.ConfusionMatrix: the confusion matrix training scripts print (add, batchAdd, zero,
updateValids, totalValid/averageValid, farFrr, Lua's printed form)."""
import math

import numpy as np

from .. import tensor as T


def _lua_num(v):
    """Lua's tostring of a number (%.14g; integers without a decimal point)."""
    if v != v:
        return 'nan' if math.copysign(1, v) > 0 else '-nan'
    if v in (math.inf, -math.inf):
        return 'inf' if v > 0 else '-inf'
    if float(v).is_integer() and abs(v) < 2 ** 63:
        return '%d' % v
    return '%.14g' % v


class ConfusionMatrix:
    __typename__ = 'optim.ConfusionMatrix'

    def __init__(self, nclasses, classes=None):
        if isinstance(nclasses, (list, tuple)):
            classes = list(nclasses)
            nclasses = len(classes)
        self.mat = T.Tensor(nclasses, nclasses, kind='Long').zero()
        self.valids = T.Tensor(nclasses, kind='Float').zero()
        self.unionvalids = T.Tensor(nclasses, kind='Float').zero()
        self.nclasses = nclasses
        self.totalValid = 0
        self.averageValid = 0
        self.classes = classes or []

    def _add(self, p, t):
        if t > 0:
            self.mat.numpy()[int(t) - 1, int(p) - 1] += 1

    @staticmethod
    def _arr(x):
        return x.numpy() if hasattr(x, 'numpy') else np.asarray(x)

    def add(self, prediction, target):
        if isinstance(prediction, (int, float, np.integer, np.floating)):
            self._add(prediction, target)
            return
        p = self._arr(prediction).astype(np.float32)
        assert p.ndim == 1
        pi = int(np.argmax(p)) + 1
        if isinstance(target, (int, float, np.integer, np.floating)):
            self._add(pi, target)
        else:
            t = self._arr(target).astype(np.float32)
            assert t.ndim == 1
            self._add(pi, int(np.argmax(t)) + 1)

    def batchAdd(self, predictions, targets):
        p = self._arr(predictions).astype(np.float32)
        if p.ndim == 1:
            preds = p
        elif p.ndim == 2:
            preds = p[:, 0] if p.shape[1] == 1 else (np.argmax(p, axis=1) + 1).astype(np.float32)
        else:
            raise ValueError('predictions has invalid number of dimensions')
        t = self._arr(targets).astype(np.float32)
        if t.ndim == 1:
            targs = t
        elif t.ndim == 2:
            targs = t[:, 0] if t.shape[1] == 1 else (np.argmax(t, axis=1) + 1).astype(np.float32)
        else:
            raise ValueError('targets has invalid number of dimensions')
        mask = targs >= 1
        targs = targs[mask].astype(np.int64)
        preds = preds[mask].astype(np.int64)
        flat = self.mat.numpy().reshape(-1)
        np.add.at(flat, (targs - 1) * self.nclasses + preds - 1, 1)

    def zero(self):
        self.mat.zero()
        self.valids.zero()
        self.unionvalids.zero()
        self.totalValid = 0
        self.averageValid = 0

    def updateValids(self):
        m = self.mat.numpy().astype(np.float64)
        diag = np.diag(m)
        rows, cols = m.sum(1), m.sum(0)
        with np.errstate(divide='ignore', invalid='ignore'):
            self.valids.numpy()[...] = diag / rows
            self.unionvalids.numpy()[...] = diag / (rows + cols - diag)
            self.totalValid = float(diag.sum() / m.sum()) if m.sum() else math.nan
        v = self.valids.numpy().astype(np.float64)
        u = self.unionvalids.numpy().astype(np.float64)
        ok = ~np.isnan(v)
        oku = ok & ~np.isnan(u)
        av = 0.0
        for x in v[ok]:          # Lua sums in class order
            av += x
        au = 0.0
        for x in u[oku]:
            au += x
        self.averageValid = av / ok.sum() if ok.sum() else math.nan
        self.averageUnionValid = au / oku.sum() if oku.sum() else math.nan

    def farFrr(self):
        cmat = self.mat.numpy().astype(np.float64)
        n = cmat.shape[0]
        counts = cmat.sum(1)
        classFrrs = -np.ones(n)
        classFars = -np.ones(n)
        frrs, fars = [], []
        for i in range(n):
            if counts[i] != 0:
                frr = 1 - cmat[i, i] / counts[i]
                others = [j for j in range(n) if j != i and counts[j] != 0]
                far = sum(cmat[j, i] / counts[j] for j in others) / len(others) if others else math.nan
                classFrrs[i], classFars[i] = frr, far
                frrs.append(frr)
                fars.append(far)
        return (T.from_numpy(classFrrs), T.from_numpy(classFars),
                T.from_numpy(np.array(frrs)), T.from_numpy(np.array(fars)))

    def __tostring__(self):
        self.updateValids()
        out = ['ConfusionMatrix:\n', '[']
        n = self.nclasses
        maxCnt = int(self.mat.numpy().max())
        nDigits = max(8, 1 + math.ceil(math.log10(maxCnt))) if maxCnt > 0 else 8
        m = self.mat.numpy()
        for t in range(n):
            pclass = '%2.3f' % (float(self.valids.numpy()[t]) * 100)
            out.append('[' if t == 0 else ' [')
            for p in range(n):
                out.append('%*d' % (nDigits, m[t, p]))
            close = ']]  ' if t == n - 1 else ']   '
            if self.classes:
                name = self.classes[t] if t < len(self.classes) else ''
                out.append(close + pclass + '% \t[class: ' + str(name) + ']\n')
            else:
                out.append(close + pclass + '% \n')
        out.append(' + average row correct: ' + _lua_num(self.averageValid * 100) + '% \n')
        out.append(' + average rowUcol correct (VOC measure): ' + _lua_num(self.averageUnionValid * 100) + '% \n')
        out.append(' + global correct: ' + _lua_num(self.totalValid * 100) + '%')
        return ''.join(out)

    __str__ = __tostring__

    def __repr__(self):
        return self.__tostring__()
