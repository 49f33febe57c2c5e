"""optnet's small test networks (models.lua: basic_parallel ... basic_multiOutput).

Each builder returns (net, input) with the original's layers, order and input
shapes; `batch` replaces the leading input dimension (the original's value is the
default). The first positional argument is accepted and ignored, as Lua ignores the
`opts` that optnet's test harness passes to every builder.
"""
from pynn import nn

from ._common import check_batch, rand_input


def basic_parallel(opt=None, batch=2):
    """ParallelTable(Linear(2,2), Linear(2,1)-Sigmoid-Linear(1,1)) -> JoinTable(2) -> Linear(3,2) -> ReLU(true).
    Input: {rand(batch,2), rand(batch,2)}."""
    batch = check_batch(batch, 'basic_parallel')
    m = nn.Sequential()
    prl = nn.ParallelTable()
    prl.add(nn.Linear(2, 2))
    prl.add(nn.Sequential().add(nn.Linear(2, 1)).add(nn.Sigmoid()).add(nn.Linear(1, 1)))
    m.add(prl)
    m.add(nn.JoinTable(2))
    m.add(nn.Linear(3, 2))
    m.add(nn.ReLU(True))
    return m, [rand_input(batch, 2), rand_input(batch, 2)]


def basic_conv(opt=None, batch=1):
    """SpatialConvolution(1,1,3,3,1,1,1,1) -> View(1024) over 3 input dims -> Linear(1024,100).
    Input: rand(batch,1,32,32)."""
    batch = check_batch(batch, 'basic_conv')
    m = nn.Sequential()
    m.add(nn.SpatialConvolution(1, 1, 3, 3, 1, 1, 1, 1))
    m.add(nn.View(32 * 32).setNumInputDims(3))
    m.add(nn.Linear(32 * 32, 100))
    return m, rand_input(batch, 1, 32, 32)


def basic_deep_conv(opt=None, batch=1):
    """Four (3x3 conv 1->1, pad 1; in-place ReLU), View(1024), Linear(1024,100), ReLU, Linear(100,10)."""
    batch = check_batch(batch, 'basic_deep_conv')
    inplace = True
    m = nn.Sequential()
    for _ in range(4):
        m.add(nn.SpatialConvolution(1, 1, 3, 3, 1, 1, 1, 1))
        m.add(nn.ReLU(inplace))
    m.add(nn.View(32 * 32).setNumInputDims(3))
    m.add(nn.Linear(32 * 32, 100))
    m.add(nn.ReLU(inplace))
    m.add(nn.Linear(100, 10))
    return m, rand_input(batch, 1, 32, 32)


def basic_unpooling(opt=None, batch=1):
    """Conv-ReLU-MaxPool(2) twice, Conv-ReLU, MaxUnpooling of pool 2, Conv-ReLU,
    MaxUnpooling of pool 1, Conv (all 3x3 1->1 pad 1, ReLUs in place). Input: rand(batch,1,32,32)."""
    batch = check_batch(batch, 'basic_unpooling')
    inplace = True
    m = nn.Sequential()
    m.add(nn.SpatialConvolution(1, 1, 3, 3, 1, 1, 1, 1))
    m.add(nn.ReLU(inplace))
    mp1 = nn.SpatialMaxPooling(2, 2, 2, 2)
    m.add(mp1)
    m.add(nn.SpatialConvolution(1, 1, 3, 3, 1, 1, 1, 1))
    m.add(nn.ReLU(inplace))
    mp2 = nn.SpatialMaxPooling(2, 2, 2, 2)
    m.add(mp2)
    m.add(nn.SpatialConvolution(1, 1, 3, 3, 1, 1, 1, 1))
    m.add(nn.ReLU(inplace))
    m.add(nn.SpatialMaxUnpooling(mp2))
    m.add(nn.SpatialConvolution(1, 1, 3, 3, 1, 1, 1, 1))
    m.add(nn.ReLU(inplace))
    m.add(nn.SpatialMaxUnpooling(mp1))
    m.add(nn.SpatialConvolution(1, 1, 3, 3, 1, 1, 1, 1))
    return m, rand_input(batch, 1, 32, 32)


def siamese(opt=None, batch=1):
    """Two branches (4x (3x3 conv 1->1 pad 1, ReLU not in place), View(-1) over 3 dims) in a
    ParallelTable, the second a clone sharing weight/bias/gradWeight/gradBias, then
    PairwiseDistance(2). Input: {rand(batch,1,32,32), rand(batch,1,32,32)}."""
    batch = check_batch(batch, 'siamese')
    inplace = False
    b1 = nn.Sequential()
    for _ in range(4):
        b1.add(nn.SpatialConvolution(1, 1, 3, 3, 1, 1, 1, 1))
        b1.add(nn.ReLU(inplace))
    b1.add(nn.View(-1).setNumInputDims(3))
    b2 = b1.clone('weight', 'bias', 'gradWeight', 'gradBias')
    prl = nn.ParallelTable()
    prl.add(b1)
    prl.add(b2)
    m = nn.Sequential()
    m.add(prl)
    m.add(nn.PairwiseDistance(2))
    return m, [rand_input(batch, 1, 32, 32), rand_input(batch, 1, 32, 32)]


def basic_concat(opt=None, batch=2):
    """ConcatTable of three Linear branches, ConcatTable(SelectTable(1), NarrowTable(2,2)),
    ParallelTable(Linear(1,2), CAddTable()), CMulTable(). Input: rand(batch,2)."""
    batch = check_batch(batch, 'basic_concat')
    m = nn.Sequential()
    cat = nn.ConcatTable()
    b1 = nn.Sequential().add(nn.Linear(2, 1)).add(nn.ReLU(True)).add(nn.Linear(1, 1))
    b2 = nn.Sequential().add(nn.Linear(2, 2)).add(nn.ReLU())
    b3 = nn.Sequential().add(nn.Linear(2, 3)).add(nn.ReLU(True)).add(nn.Linear(3, 2))
    cat.add(b1).add(b2).add(b3)
    cat2 = nn.ConcatTable()
    cat2.add(nn.SelectTable(1)).add(nn.NarrowTable(2, 2))
    prl = nn.ParallelTable()
    prl.add(nn.Sequential().add(nn.Linear(1, 2))).add(nn.CAddTable())
    m.add(cat).add(cat2).add(prl).add(nn.CMulTable())
    return m, rand_input(batch, 2)


def basic_multiOutput(opt=None, batch=2):
    """Three (Linear(2,2), ReLU) then ConcatTable of three Linear(2,2). Input: rand(batch,2)."""
    batch = check_batch(batch, 'basic_multiOutput')
    m = nn.Sequential()
    for _ in range(3):
        m.add(nn.Linear(2, 2))
        m.add(nn.ReLU())
    p = nn.ConcatTable()
    for _ in range(3):
        p.add(nn.Linear(2, 2))
    m.add(p)
    return m, rand_input(batch, 2)
