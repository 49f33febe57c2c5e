"""The original optnet's model builders, as `pynn.optnet.models` (they live in top-level `models/`)."""
from models import *  # noqa: F401,F403
from models import builders  # noqa: F401
