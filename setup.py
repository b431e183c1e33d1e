"""Build step for the one compiled part: the decoder's kernels (dr_inspect/decode/_native.c).

Everything else is in pyproject.toml. The extension is optional: where no C compiler is found,
the install still succeeds and the decoder runs its numpy code (dr_inspect/decode/native.py).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("dr_inspect.decode._native", ["dr_inspect/decode/_native.c"],
                             optional=True)])
