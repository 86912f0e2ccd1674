"""The foundation every other layer stands on: errors, explicit randomness, atomic files, devices, memory, checks.

Nothing here imports another part of ``sei``.
"""
