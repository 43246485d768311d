"""The one compiled part of Ivoz: the SIP header-block scanner (src/ivoz/sip/_scan.c).

Everything else is declared in pyproject.toml. The extension is optional: without a C
compiler the build goes on and `ivoz.sip.message` uses its pure-Python scanner, which
gives the same results more slowly (`make test` insists on the compiled one under CI).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "ivoz.sip._scan",
            ["src/ivoz/sip/_scan.c"],
            optional=True,
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Werror=implicit-function-declaration"],
        )
    ]
)
