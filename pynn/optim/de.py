"""optim.de: differential evolution (DE/best/1/bin), as Lua's optim/de.lua. Like Lua, every call
draws from its own Torch generator seeded 1 (`torch.Generator(); torch.manualSeed(gen, 1)`), in
Lua's order: the population with pop:uniform(gen, minRegion, maxRegion), then per child
torch.random(gen, 1, popsize) for r1 and r2, torch.random(gen, 1, D) for jrand and one
torch.uniform(gen, 0, 1) per coordinate. The global stream is untouched. Returns
best_solution, fx."""
import numpy as np

from ..rng import Generator
from ._util import A


def de(opfunc, x, config=None, state=None):
    config = {} if config is None else config
    popsize = config.get('popsize')
    scaleFactor = config.get('scaleFactor')
    crossoverRate = config.get('crossoverRate')
    maxFEs = int(config.get('maxFEs'))
    maxRegion = config.get('maxRegion')
    minRegion = config.get('minRegion')
    D = A(x).size
    if popsize is None:
        popsize = 10 * D
    if maxRegion is None:
        maxRegion = 30
    if minRegion is None:
        minRegion = -30

    fx = x.new(maxFEs).zero()
    F = A(fx)
    pop = x.new(popsize, D)
    children = x.new(popsize, D)
    fitness = np.zeros(popsize)
    children_fitness = np.zeros(popsize)
    fes = 1
    best_solution = x.new(D)
    gen = Generator(1)

    def rand_int(a, b):          # torch.random(gen, a, b)
        return int(gen.words(1)[0]) % (b + 1 - a) + a

    def uniform(a, b):           # torch.uniform(gen, a, b)
        return float(gen.uniform01(1)[0]) * (b - a) + a

    P, Ch = A(pop), A(children)
    # pop:uniform(gen, a, b): row-major fill
    P[...] = (gen.uniform01(P.size) * (maxRegion - minRegion) + minRegion).reshape(P.shape)
    for i in range(popsize):
        fitness[i] = opfunc(pop.select(1, i + 1))[0]
        F[fes - 1] = fitness[i]
        fes += 1
    index = int(np.argmax(fitness))     # Lua takes fitness:max(1) here (sic)
    best_fitness = fitness[index]
    A(best_solution)[...] = P[index]
    BS = A(best_solution)

    while fes < maxFEs:
        for i in range(1, popsize + 1):
            while True:
                r1 = rand_int(1, popsize)
                if r1 != i:
                    break
            while True:
                r2 = rand_int(1, popsize)
                if r2 != r1 and r2 != i:
                    break
            jrand = rand_int(1, D)
            for j in range(D):
                # Lua compares i (the individual), not j, with jrand (sic)
                if uniform(0, 1) < crossoverRate or i == jrand:
                    Ch[i - 1, j] = BS[j] + scaleFactor * (P[r1 - 1, j] - P[r2 - 1, j])
                else:
                    Ch[i - 1, j] = P[i - 1, j]
            children_fitness[i - 1] = opfunc(children.select(1, i))[0]
            if fes > maxFEs:
                raise IndexError('de: fx[%d] out of range (maxFEs %d), as Lua errors' % (fes, maxFEs))
            F[fes - 1] = children_fitness[i - 1]
            fes += 1
        for i in range(popsize):
            if children_fitness[i] <= fitness[i]:
                P[i] = Ch[i]
                fitness[i] = children_fitness[i]
                if fitness[i] < best_fitness:
                    best_fitness = fitness[i]
                    BS[...] = Ch[i]
    return best_solution, fx
