"""Numba kernels: plain arrays in, plain arrays out; no pandas, no ids, no model objects.

Every kernel has a NumPy reference implementation next to it (``*_reference``) that the tests
compare it with.
"""
