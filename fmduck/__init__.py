"""fmduck: Fama-MacBeth (1973) regressions computed where the panel lives, in SQL."""

__version__ = "0.1.0"

from fmduck.errors import EstimationError, FmduckError, InputError, RunExistsError, RunNotFoundError, SpecError  # noqa: E402
from fmduck.spec import Spec  # noqa: E402
from fmduck.model import FamaMacBeth, fama_macbeth  # noqa: E402
from fmduck.results import FamaMacBethResults, list_runs, load_run  # noqa: E402
from fmduck.engine import DuckDBEngine, connect  # noqa: E402

__all__ = [
    "DuckDBEngine", "EstimationError", "FamaMacBeth", "FamaMacBethResults", "FmduckError", "InputError",
    "RunExistsError", "RunNotFoundError", "Spec", "SpecError", "connect", "fama_macbeth", "list_runs", "load_run",
]
