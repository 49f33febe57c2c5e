"""optim.de: differential evolution (DE/best/1/bin), as Lua's optim/de.lua. Lua draws from its
own torch.Generator seeded 1; pynn uses its own generator seeded 1 (the same numbers once
pynn's generators are Torch's Mersenne Twister). Returns best_solution, fx."""
import numpy as np

from ._util import A, get


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
    gen = np.random.default_rng(1)

    P, Ch = A(pop), A(children)
    P[...] = gen.uniform(minRegion, maxRegion, P.shape)
    for i in range(popsize):
        fitness[i] = opfunc(pop.select(1, i + 1))[0]
        F[fes - 1] = fitness[i]
        fes += 1
    index = int(np.argmax(fitness))     # Lua takes fitness:max(1) here (sic)
    best_fitness = fitness[index]
    A(best_solution)[...] = P[index]
    BS = A(best_solution)

    while fes < maxFEs:
        for i in range(popsize):
            while True:
                r1 = int(gen.integers(0, popsize))
                if r1 != i:
                    break
            while True:
                r2 = int(gen.integers(0, popsize))
                if r2 != r1 and r2 != i:
                    break
            jrand = int(gen.integers(0, D))
            for j in range(D):
                if gen.uniform(0, 1) < crossoverRate or j == jrand:
                    Ch[i, j] = BS[j] + scaleFactor * (P[r1, j] - P[r2, j])
                else:
                    Ch[i, j] = P[i, j]
            children_fitness[i] = opfunc(children.select(1, i + 1))[0]
            if fes <= maxFEs:
                F[fes - 1] = children_fitness[i]
            fes += 1
        for i in range(popsize):
            if children_fitness[i] <= fitness[i]:
                P[i] = Ch[i]
                fitness[i] = children_fitness[i]
                if fitness[i] < best_fitness:
                    best_fitness = fitness[i]
                    BS[...] = Ch[i]
    return best_solution, fx
