"""Build step for the compiled kernels: the decoder's (dr_inspect/decode/_native.c) and the
columnar toolkit's key numbering (dr_inspect/columnar/_hashids.c).

Everything else is in pyproject.toml. The extensions are optional: where no C compiler is found,
the install still succeeds and the numpy code they stand in for does the work
(dr_inspect/kernels.py).
"""

from setuptools import Extension, setup

setup(ext_modules=[
    Extension("dr_inspect.decode._native", ["dr_inspect/decode/_native.c"], optional=True),
    Extension("dr_inspect.columnar._hashids", ["dr_inspect/columnar/_hashids.c"], optional=True),
])
