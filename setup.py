"""Build the optional native tree hasher (zgos/storage/_treehash.c); everything works without it."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("zgos.storage._treehash", ["zgos/storage/_treehash.c"], optional=True, extra_compile_args=["-O3"])])
