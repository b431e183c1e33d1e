"""Whether the compiled kernels run (dr_inspect/decode/_native.c, dr_inspect/columnar/_hashids.c).

They run wherever they were built, unless DR_INSPECT_NATIVE=0 is in the environment; then the
numpy code, which is the reference and the fallback where no C compiler was found at install
time, does all the work. Each kernel's tests compare it with that code.
"""

from __future__ import annotations

import os

ENV = "DR_INSPECT_NATIVE"


def allowed() -> bool:
    """The environment does not turn the kernels off."""
    return os.environ.get(ENV, "1") != "0"
