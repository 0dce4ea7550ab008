"""The ``transferkit`` command: a thin Typer layer over the verb modules (``extraction``, ``training``, ...),
one module per verb. Each command imports its verb module by name inside the function, so ``--help`` stays
cheap.

Errors a user can fix print as one red line and exit with status 1; ``--debug`` shows the traceback.
Each module registers its commands on import; the order here is the order in ``--help``.
"""

# isort: off
from . import extract  # noqa: F401
from . import inspect  # noqa: F401
from . import train  # noqa: F401
from . import finetune  # noqa: F401
from . import evaluate  # noqa: F401
from . import predict  # noqa: F401
from . import audit  # noqa: F401
from . import compare  # noqa: F401
from . import export  # noqa: F401
from . import export_features  # noqa: F401
from . import models  # noqa: F401
from . import demo  # noqa: F401
# isort: on
from ._app import app, main

__all__ = ["app", "main"]
