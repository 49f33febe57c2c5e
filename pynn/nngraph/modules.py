"""nngraph's helper modules: JustElement (node:split(1)) and JustTable."""
from ..nn.module import Module


class JustElement(Module):
    __typename__ = 'nngraph.JustElement'

    def __init__(self):
        super().__init__()
        self.gradInput = []

    def updateOutput(self, input):
        if not isinstance(input, list) or len(input) != 1:
            self._fail('a table of one element', input)
        self.output = input[0]
        return self.output

    def updateGradInput(self, input, gradOutput):
        self.gradInput = [gradOutput]
        return self.gradInput


class JustTable(Module):
    __typename__ = 'nngraph.JustTable'

    def __init__(self):
        super().__init__()
        self.output = []

    def updateOutput(self, input):
        self.output = [input]
        return self.output

    def updateGradInput(self, input, gradOutput):
        self.gradInput = gradOutput[0]
        return self.gradInput
