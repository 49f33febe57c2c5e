"""Table family, products of the two tensors of the input table: CosineDistance, DotProduct,
MM, MV. Imported by table.py (nn exports them from there)."""
from ..tensor import Tensor
from .module import Module, clear
from .table import _is_table, _fmt
from .table_ops import _xp, _new_list_entry, _two_tensors


def _batch_pair(self, input):
    a, b = _two_tensors(self, input)
    if a.dim() not in (1, 2) or a.size() != b.size():
        self._fail('two vectors or two matrices (batch) of the same size', input)
    return a, b


class CosineDistance(Module):
    """output[k] = <x_k, y_k> / (sqrt(|x_k|^2 + 1e-12) sqrt(|y_k|^2 + 1e-12)), for two vectors
    or two batches of vectors (rows). Buffers as Lua: buffer, w1, w22, w, w32, ones."""

    def __init__(self):
        super().__init__()
        self.gradInput = [Tensor(), Tensor()]

    def _contiguous(self, a, b):
        if not a.isContiguous():
            if not isinstance(self.__dict__.get('_input1'), Tensor):
                self._input1 = a.new()
            self._input1.resizeAs(a).copy(a)
            a = self._input1
        if not b.isContiguous():
            if not isinstance(self.__dict__.get('_input2'), Tensor):
                self._input2 = b.new()
            self._input2.resizeAs(b).copy(b)
            b = self._input2
        return a, b

    def updateOutput(self, input):
        a, b = _batch_pair(self, input)
        a, b = self._contiguous(a, b)
        if a.dim() == 1:
            a, b = a.view(1, -1), b.view(1, -1)
        if self.buffer is None:
            for f in ('buffer', 'w1', 'w22', 'w', 'w32', 'ones'):
                self.__dict__[f] = a.new()
        n = a.size(1)
        self.buffer.resizeAs(a)
        for f in ('w1', 'w22', 'w', 'w32', 'ones'):
            self.__dict__[f].resize(n, 1)
        self.output.resize(n, 1)
        if not self.output.is_meta():
            xa, xb = a.numpy(), b.numpy()
            xp = _xp(xa)
            buf, w1, w22, w, w32 = (self.__dict__[f].numpy() for f in ('buffer', 'w1', 'w22', 'w', 'w32'))
            xp.multiply(xa, xb, out=buf)
            xp.sum(buf, axis=1, keepdims=True, out=w1)
            eps = 1e-12
            xp.multiply(xa, xa, out=buf)
            xp.sum(buf, axis=1, keepdims=True, out=w22)
            w22 += eps
            self.ones.fill(1)
            xp.divide(self.ones.numpy(), w22, out=w22)
            w[...] = w22
            xp.multiply(xb, xb, out=buf)
            xp.sum(buf, axis=1, keepdims=True, out=w32)
            w32 += eps
            xp.divide(self.ones.numpy(), w32, out=w32)
            w *= w32
            xp.sqrt(w, out=w)
            xp.multiply(w1, w, out=self.output.numpy())
        self.output.resize(n)
        return self.output

    def updateGradInput(self, input, gradOutput):
        v1, v2 = _batch_pair(self, input)
        n = 1 if v1.dim() == 1 else v1.size(1)
        if not isinstance(gradOutput, Tensor) or gradOutput.nElement() != n:
            self._fail('gradOutput with %d elements' % n, gradOutput)
        if self.w1 is None or self.w1.size() != (n, 1):
            self._fail('a forward on this input before the backward', input)
        v1, v2 = self._contiguous(v1, v2)
        not_batch = v1.dim() == 1
        if not_batch:
            v1, v2 = v1.view(1, -1), v2.view(1, -1)
        gi = self.gradInput
        if len(gi) != 2:
            _new_list_entry(gi, 0, v1)
            _new_list_entry(gi, 1, v1)
        gw1, gw2 = gi[0], gi[1]
        gw1.resizeAs(v1)
        gw2.resizeAs(v1)
        self.buffer.resize(n, 1)
        if not gw1.is_meta():
            a1, a2 = gw1.numpy(), gw2.numpy()
            x1, x2 = v1.numpy(), v2.numpy()
            xp = _xp(a1)
            buf = self.buffer.numpy()
            w1, w = self.w1.numpy(), self.w.numpy()
            a1[...] = x2
            a2[...] = x1
            xp.multiply(w1, self.w22.numpy(), out=buf)
            a1 -= buf * x1
            a1 *= w
            xp.multiply(w1, self.w32.numpy(), out=buf)
            a2 -= buf * x2
            a2 *= w
            go = gradOutput.numpy().reshape(-1, 1)
            a1 *= go
            a2 *= go
        if not_batch:
            gi[0].resize(gw1.size(2))
            gi[1].resize(gw2.size(2))
        return gi

    def clearState(self):
        clear(self, 'buffer', 'w1', 'w22', 'w', 'w32', 'ones')
        return super().clearState()


class DotProduct(Module):
    """output[k] = <x_k, y_k> for two vectors or two batches of vectors (rows)."""

    def __init__(self):
        super().__init__()
        self.gradInput = [Tensor(), Tensor()]

    def updateOutput(self, input):
        a, b = _batch_pair(self, input)
        if not isinstance(self.buffer, Tensor):
            self.buffer = a.new()
        rows = 1 if a.dim() == 1 else a.size(1)
        self.buffer.resize(rows, a.size(a.dim()))
        self.output.resize(rows, 1)
        if not self.output.is_meta():
            buf = self.buffer.numpy()
            xp = _xp(buf)
            xp.multiply(a.numpy().reshape(buf.shape), b.numpy().reshape(buf.shape), out=buf)
            xp.sum(buf, axis=1, keepdims=True, out=self.output.numpy())
        self.output.resize(rows)
        return self.output

    def updateGradInput(self, input, gradOutput):
        v1, v2 = _batch_pair(self, input)
        rows = 1 if v1.dim() == 1 else v1.size(1)
        if not isinstance(gradOutput, Tensor) or gradOutput.nElement() != rows:
            self._fail('gradOutput with %d elements' % rows, gradOutput)
        gi = self.gradInput
        if len(gi) != 2:
            _new_list_entry(gi, 0, input[0])
            _new_list_entry(gi, 1, input[1])
        not_batch = v1.dim() == 1
        if not_batch:
            v1, v2 = v1.view(1, -1), v2.view(1, -1)
        gw1, gw2 = gi[0], gi[1]
        gw1.resizeAs(v1)
        gw2.resizeAs(v2)
        if not gw1.is_meta():
            go = gradOutput.numpy().reshape(-1, 1)
            xp = _xp(go)
            xp.multiply(v2.numpy(), go, out=gw1.numpy())
            xp.multiply(v1.numpy(), go, out=gw2.numpy())
        if not_batch:
            gi[0].set(gw1.select(1, 1))
            gi[1].set(gw2.select(1, 1))
        return gi

    def clearState(self):
        if isinstance(self.buffer, Tensor):
            self.buffer.set()
        return super().clearState()


class MM(Module):
    """Matrix product of the two tensors of the input table (2D: mm, 3D: batched bmm);
    transA/transB transpose the matrices first."""

    def __init__(self, transA=False, transB=False):
        super().__init__()
        self.transA = transA or False
        self.transB = transB or False
        self.gradInput = [Tensor(), Tensor()]

    def _operands(self, input):
        if not _is_table(input) or len(input) != 2:
            self._fail('a pair of tensors (input must be a pair of minibatch matrices)', input)
        a, b = _two_tensors(self, input)
        if a.dim() not in (2, 3) or b.dim() != a.dim():
            self._fail('two 2D or two 3D tensors', input)
        h, w = (1, 2) if a.dim() == 2 else (2, 3)
        if a.dim() == 3 and a.size(1) != b.size(1):
            self._fail('inputs with the same number of minibatches', input)
        if self.transA:
            a = a.transpose(h, w)
        if self.transB:
            b = b.transpose(h, w)
        if a.size(w) != b.size(h):
            self._fail('matrices whose sizes match (%s x %s)' % (_fmt(a.size()), _fmt(b.size())), input)
        return a, b

    def updateOutput(self, input):
        a, b = self._operands(input)
        if a.dim() == 2:
            self.output.resize(a.size(1), b.size(2))
        else:
            self.output.resize(a.size(1), a.size(2), b.size(3))
        if not self.output.is_meta():
            out = self.output.numpy()
            _xp(out).matmul(a.numpy(), b.numpy(), out=out)
        return self.output

    def updateGradInput(self, input, gradOutput):
        ta, tb = self._operands(input)
        a, b = input[0], input[1]
        if not isinstance(gradOutput, Tensor) or gradOutput.dim() != a.dim() or \
                gradOutput.size() != self.output.size() and gradOutput.size() != \
                (ta.size()[:-1] + tb.size()[-1:]):
            self._fail('gradOutput of size %s' % _fmt(ta.size()[:-1] + tb.size()[-1:]), gradOutput)
        gi = self.gradInput
        _new_list_entry(gi, 0, a).resizeAs(a)
        _new_list_entry(gi, 1, b).resizeAs(b)
        if gi[0].is_meta():
            return gi
        sw = lambda x: _xp(x).swapaxes(x, -1, -2)  # noqa: E731
        xa, xb, go = a.numpy(), b.numpy(), gradOutput.numpy()
        xp = _xp(go)
        if bool(self.transA) == bool(self.transB):
            xa, xb = sw(xa), sw(xb)
        if self.transA:
            xp.matmul(xb, sw(go), out=gi[0].numpy())
        else:
            xp.matmul(go, xb, out=gi[0].numpy())
        if self.transB:
            xp.matmul(sw(go), xa, out=gi[1].numpy())
        else:
            xp.matmul(xa, go, out=gi[1].numpy())
        return gi


class MV(Module):
    """Matrix-vector product of the input table {M, v} (2D x 1D, or batched 3D x 2D); trans
    transposes M first."""

    def __init__(self, trans=False):
        super().__init__()
        self.trans = trans or False
        if not isinstance(self.trans, bool):
            raise TypeError('nn.MV: argument must be a boolean, matrix transpose before multiplication')
        self.gradInput = [Tensor(), Tensor()]

    def _operands(self, input):
        if not _is_table(input) or len(input) != 2:
            self._fail('a pair {matrix, vector}', input)
        M, v = _two_tensors(self, input)
        if not ((M.dim() == 2 and v.dim() == 1) or (M.dim() == 3 and v.dim() == 2)):
            self._fail('a 2D matrix and a 1D vector, or a 3D batch of matrices and a 2D batch of vectors',
                       input)
        if M.dim() == 3 and M.size(1) != v.size(1):
            self._fail('inputs with the same number of minibatches', input)
        Mt = M.transpose(M.dim() - 1, M.dim()) if self.trans else M
        if Mt.size(Mt.dim()) != v.size(v.dim()):
            self._fail('a vector as long as the matrix rows (matrix %s, vector %s)'
                       % (_fmt(M.size()), _fmt(v.size())), input)
        return M, Mt, v

    def updateOutput(self, input):
        M, Mt, v = self._operands(input)
        if M.dim() == 2:
            self.output.resize(Mt.size(1))
        else:
            self.output.resize(Mt.size(1), Mt.size(2), 1)
        if not self.output.is_meta():
            out = self.output.numpy()
            xm, xv = Mt.numpy(), v.numpy()
            if M.dim() == 2:
                _xp(out).matmul(xm, xv, out=out)
            else:
                _xp(out).matmul(xm, xv.reshape(xv.shape + (1,)), out=out)
        if M.dim() == 3:
            self.output.resize(Mt.size(1), Mt.size(2))
        return self.output

    def updateGradInput(self, input, gradOutput):
        M, Mt, v = self._operands(input)
        osize = Mt.size()[:-1]
        if not isinstance(gradOutput, Tensor) or gradOutput.size() != osize:
            self._fail('gradOutput of size %s' % _fmt(osize), gradOutput)
        gi = self.gradInput
        _new_list_entry(gi, 0, M).resizeAs(M)
        _new_list_entry(gi, 1, v).resizeAs(v)
        if M.dim() == 2:
            # Lua: gradInput[2] = M:t() * gradOutput (or M * gradOutput), a new tensor
            gi[1] = v.new().resize(M.size(2) if not self.trans else M.size(1))
        if gi[0].is_meta():
            return gi
        xm, xv, go = M.numpy(), v.numpy(), gradOutput.numpy()
        xp = _xp(go)
        g1, g2 = gi[0].numpy(), gi[1].numpy()
        if M.dim() == 3:
            if self.trans:
                xp.multiply(xv[:, :, None], go[:, None, :], out=g1)
                xp.matmul(xm, go[:, :, None], out=g2.reshape(g2.shape + (1,)))
            else:
                xp.multiply(go[:, :, None], xv[:, None, :], out=g1)
                xp.matmul(xp.swapaxes(xm, 1, 2), go[:, :, None], out=g2.reshape(g2.shape + (1,)))
        else:
            if self.trans:
                xp.multiply(xv[:, None], go[None, :], out=g1)
                xp.matmul(xm, go, out=g2)
            else:
                xp.multiply(go[:, None], xv[None, :], out=g1)
                xp.matmul(xm.T, go, out=g2)
        return gi
