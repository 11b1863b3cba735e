"""Readable NumPy/CuPy references of every op: the truth the tests compare against.

They favour clarity over speed and work on whichever array module the input comes from.
"""
