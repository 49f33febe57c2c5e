"""The original optnet's model builders, as `pynn.optnet.models` (the same as `pynn.models`)."""
from pynn import models as _models

globals().update({k: v for k, v in vars(_models).items() if not k.startswith('__')})
builders = _models.builders
