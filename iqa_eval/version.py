"""The package version, on the ground floor so that any module can name it.

Reading it from ``iqa_eval`` itself would import the whole package (the API and everything
under it) from inside the modules the package is made of.
"""

__version__ = "0.1.0"
